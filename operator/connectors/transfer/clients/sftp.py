"""SFTP client of the transfer jobs, on paramiko.

Trust: the known_hosts file the operator writes from remote.hostKeys is the
only source of trusted keys; the system's files are never loaded and an
unknown key is refused with the key shown, so the user can pin it. Never
Transport.connect() without a host key: it skips verification silently.

Speed: one SSH connection and one SFTP session. Downloads are pipelined
across files by sftp_pipeline (paramiko fetches one file at a time); uploads
use paramiko's pipelined putfo, since an unpipelined paramiko write loop runs
near 1 MB/s.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import hashlib
import posixpath
import socket
import stat as stat_module
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import paramiko

from .. import paramiko_speedups
from .base import FileError, Finish, PermanentError, RemoteFile, Sink, TransientError
from .sftp_pipeline import FILES_IN_FLIGHT, Pipeline, run_pipeline

# paramiko's speed is bounded by Python work per SSH packet, not by bytes:
# offering the server packets of up to 256 KiB, rather than paramiko's 32 KiB,
# lets a 64 KiB read come back in one packet, which measured 3-4x faster on a
# large file against OpenSSH on loopback (bench/transfer.py).
MAX_PACKET = 1 << 18
# Preferred ciphers, fastest first in Python: AES-GCM is one pass (no separate
# HMAC over the packet).
CIPHERS = (
    "aes128-gcm@openssh.com",
    "aes256-gcm@openssh.com",
    "aes128-ctr",
    "aes256-ctr",
)


class HostKeyRejected(PermanentError):
    def __init__(self, host: str, key: paramiko.PKey) -> None:
        self.host = host
        self.line = f"{key.get_name()} {key.get_base64()}"
        digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
        super().__init__(
            f"host key of {host} is not in remote.hostKeys, refusing to connect: the "
            f"server presented {self.line} (SHA256:{digest}); if this is the partner's "
            "server, add that key to remote.hostKeys"
        )


class _Reject(paramiko.MissingHostKeyPolicy):
    """RejectPolicy, but the error carries the key the server presented."""

    def missing_host_key(
        self, client: paramiko.SSHClient, hostname: str, key: paramiko.PKey
    ) -> None:
        raise HostKeyRejected(hostname, key)


@dataclass(frozen=True)
class SftpSettings:
    host: str
    port: int
    folder: str
    username: str
    known_hosts: Path
    password: str | None = None
    private_key: Path | None = None
    timeout: float = 30.0
    files_in_flight: int = FILES_IN_FLIGHT
    """Downloads open at once on the session (see sftp_pipeline)."""


def _transport_factory(sock: Any, /, **kwargs: Any) -> paramiko.Transport:
    transport = paramiko.Transport(sock, **kwargs)
    options = transport.get_security_options()
    offered = [c for c in CIPHERS if c in options.ciphers]
    options.ciphers = tuple(offered + [c for c in options.ciphers if c not in offered])
    # Larger windows keep more data in flight on fast links.
    transport.default_window_size = paramiko.common.MAX_WINDOW_SIZE
    transport.packetizer.REKEY_BYTES = pow(2, 40)
    transport.packetizer.REKEY_PACKETS = pow(2, 40)
    return transport


def connect(settings: SftpSettings) -> paramiko.SSHClient:
    paramiko_speedups.install()
    client = paramiko.SSHClient()
    # Only the operator's file: no ~/.ssh/known_hosts, no /etc/ssh.
    try:
        client.load_host_keys(str(settings.known_hosts))
    except OSError as exc:
        raise PermanentError(
            f"cannot read the trusted host keys {settings.known_hosts} ({exc.strerror}); "
            "the operator writes them from remote.hostKeys"
        ) from None
    client.set_missing_host_key_policy(_Reject())
    try:
        pkey = paramiko.PKey.from_path(settings.private_key) if settings.private_key else None
    except (OSError, paramiko.SSHException, ValueError) as exc:
        # Never the key itself: only which file and what kind of problem.
        raise PermanentError(
            f"cannot load the private key {settings.private_key}: {type(exc).__name__}"
        ) from None
    host_name = settings.host if settings.port == 22 else f"[{settings.host}]:{settings.port}"
    try:
        client.connect(
            settings.host,
            port=settings.port,
            username=settings.username,
            password=settings.password,
            pkey=pkey,
            timeout=settings.timeout,
            banner_timeout=settings.timeout,
            auth_timeout=settings.timeout,
            channel_timeout=settings.timeout,
            look_for_keys=False,
            allow_agent=False,
            transport_factory=cast(Any, _transport_factory),
        )
    except HostKeyRejected:
        client.close()
        raise
    except paramiko.BadHostKeyException as exc:
        client.close()
        raise HostKeyRejected(host_name, exc.key) from None
    except paramiko.AuthenticationException:
        client.close()
        # paramiko's message may name the methods tried; never the secret.
        raise PermanentError(
            f"authentication as {settings.username!r} failed on {host_name}: check the "
            "Credential (password, or that the partner authorized the public key)"
        ) from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        client.close()
        raise TransientError(f"cannot connect to {host_name}: {exc}") from None
    return client


def _is_connection_lost(transport: paramiko.Transport | None) -> bool:
    return transport is None or not transport.is_active()


def _classify(exc: BaseException, transport: paramiko.Transport | None, what: str) -> Exception:
    """A failure while the session is up concerns the file; once the session is
    gone it is the connection's, and the run is retried."""
    if _is_connection_lost(transport) or isinstance(exc, socket.timeout | ConnectionError):
        return TransientError(f"connection lost while {what}: {exc or type(exc).__name__}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
        return FileError(f"{what}: no such file")
    if isinstance(exc, OSError) and exc.errno == errno.EACCES:
        return FileError(f"{what}: permission denied")
    return FileError(f"{what}: {exc or type(exc).__name__}")


class SftpWorker:
    """The SFTP session: what the job does with files on the partner's server."""

    def __init__(self, sftp: paramiko.SFTPClient, folder: str, files_in_flight: int) -> None:
        self.sftp = sftp
        self.folder = folder
        self.files_in_flight = max(1, files_in_flight)

    def _path(self, name: str) -> str:
        return posixpath.join(self.folder, name)

    def fetch_many(
        self,
        files: Iterator[RemoteFile],
        start: Callable[[RemoteFile], Sink],
        finish: Finish,
        stopped: Callable[[], bool],
    ) -> None:
        """Downloads pipelined across files on this session's channel (see
        sftp_pipeline). paramiko's own calls wait until it returns: they read
        the same channel, and nothing of the pipeline is left on it when it
        completes."""
        channel = self.sftp.get_channel()
        assert channel is not None
        pipeline = Pipeline(
            files, self.folder, start, finish, files_in_flight=self.files_in_flight
        )
        try:
            run_pipeline(channel, pipeline, stopped)
        except TransientError as exc:
            pipeline.abandon(exc)
            raise
        except BaseException:
            pipeline.abandon(TransientError("the download was interrupted"))
            raise
        pipeline.abandon(TransientError("the run stopped before this file"))

    def delete(self, file: RemoteFile) -> None:
        transport = self.sftp.get_channel().get_transport()  # type: ignore[union-attr]
        try:
            self.sftp.remove(self._path(file.name))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise _classify(exc, transport, f"deleting {file.name}") from None

    def upload(self, name: str, source: Path, temp_name: str) -> None:
        transport = self.sftp.get_channel().get_transport()  # type: ignore[union-attr]
        temp = self._path(temp_name)
        final = self._path(name)
        try:
            with source.open("rb") as handle:
                # putfo turns pipelining on and checks the size with a stat.
                self.sftp.putfo(handle, temp, file_size=source.stat().st_size, confirm=True)
            self._rename(temp, final)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            if not _is_connection_lost(transport):
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    self.sftp.remove(temp)
            raise _classify(exc, transport, f"uploading {name}") from None

    def _rename(self, temp: str, final: str) -> None:
        """posix-rename@openssh.com replaces an existing file atomically; plain
        SFTP rename refuses to overwrite, so fall back to remove + rename."""
        try:
            self.sftp.posix_rename(temp, final)
            return
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self.sftp.remove(final)
        self.sftp.rename(temp, final)

    def size(self, name: str) -> int | None:
        try:
            attrs = self.sftp.stat(self._path(name))
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            raise
        return attrs.st_size


class SftpClient:
    """One SSH connection to the partner, with one SFTP session on it."""

    def __init__(self, settings: SftpSettings) -> None:
        self.settings = settings
        self.ssh = connect(settings)
        self._main = self._open_session()

    def _open_session(self) -> SftpWorker:
        try:
            sftp = paramiko.SFTPClient.from_transport(
                self.ssh.get_transport(),  # type: ignore[arg-type]
                window_size=paramiko.common.MAX_WINDOW_SIZE,
                max_packet_size=MAX_PACKET,
            )
            if sftp is None:
                raise paramiko.SSHException("the server refused the SFTP subsystem")
            # A server that stops answering must not hold the run forever.
            sftp.get_channel().settimeout(self.settings.timeout)  # type: ignore[union-attr]
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise TransientError(f"cannot open an SFTP session: {exc}") from None
        return SftpWorker(sftp, self.settings.folder, self.settings.files_in_flight)

    def list_files(self) -> list[RemoteFile]:
        transport = self.ssh.get_transport()
        try:
            entries = self._main.sftp.listdir_attr(self.settings.folder)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            error = _classify(exc, transport, f"listing {self.settings.folder}")
            if isinstance(error, FileError):
                raise PermanentError(str(error)) from None
            raise error from None
        files = []
        for attrs in entries:
            mode = attrs.st_mode or 0
            if not stat_module.S_ISREG(mode):
                continue
            files.append(RemoteFile(attrs.filename, attrs.st_size or 0, int(attrs.st_mtime or 0)))
        return files

    @contextlib.contextmanager
    def worker(self) -> Iterator[SftpWorker]:
        # The one session: a second channel would cost a round trip or two
        # to open and buy nothing, since one pipeline keeps the server busy.
        yield self._main

    # Push
    def remote_size(self, name: str) -> int | None:
        try:
            return self._main.size(name)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise _classify(exc, self.ssh.get_transport(), f"checking {name}") from None

    def upload(self, name: str, source: Path) -> None:
        self._main.upload(name, source, temp_name=f".{name}.part")

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._main.sftp.close()
        self.ssh.close()
