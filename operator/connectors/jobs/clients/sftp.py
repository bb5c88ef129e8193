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
import paramiko.sftp as sftp_const

from ... import paramiko_speedups
from ...errors import describe
from .base import (
    NOT_UTF8,
    FileError,
    Finish,
    Listing,
    PermanentError,
    RemoteFile,
    Sink,
    TransientError,
    Unreadable,
    decode_name,
    shown_name,
)
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
        raise TransientError(f"cannot connect to {host_name}: {describe(exc)}") from None
    return client


def _is_connection_lost(transport: paramiko.Transport | None) -> bool:
    return transport is None or not transport.is_active()


def _session_lost(sftp: paramiko.SFTPClient) -> bool:
    """The SFTP session is gone: the SSH connection, or only the subsystem
    (the server's sftp process ended while SSH stays up)."""
    channel = sftp.get_channel()
    if channel is None or channel.closed or channel.eof_received:
        return True
    return _is_connection_lost(channel.get_transport())


def _classify(exc: BaseException, lost: bool, what: str) -> Exception:
    """A refusal the server answered (an SFTP status: no such file, permission
    denied, failure) concerns the file. Anything else (the session or the
    connection gone, a timeout, a broken packet) is the connection's, and the
    run is retried with a new one. paramiko turns an SFTP status into an
    IOError/OSError that is neither a socket error nor a ConnectionError."""
    if (
        lost
        or isinstance(exc, EOFError | paramiko.SSHException | socket.timeout | ConnectionError)
        or (isinstance(exc, OSError) and exc.errno in _SOCKET_ERRNOS)
    ):
        return TransientError(f"connection lost while {what}: {describe(exc)}")
    if isinstance(exc, OSError) and exc.errno == errno.ENOENT:
        return FileError(f"{what}: no such file")
    if isinstance(exc, OSError) and exc.errno == errno.EACCES:
        return FileError(f"{what}: permission denied")
    return FileError(f"{what}: {describe(exc)}")


_SOCKET_ERRNOS = frozenset(
    {errno.EPIPE, errno.ECONNRESET, errno.ECONNABORTED, errno.ETIMEDOUT, errno.ENOTCONN}
)


def list_folder(sftp: paramiko.SFTPClient, folder: str) -> Listing:
    """READDIR at the bytes level: paramiko's listdir_attr decodes every name
    as strict UTF-8, and one name in another encoding (Latin-1 from a Windows
    partner) made the whole listing, and so the whole run, fail."""
    request = cast(Any, sftp)._request  # paramiko has no public bytes-level listing
    kind, msg = request(sftp_const.CMD_OPENDIR, folder)
    if kind != sftp_const.CMD_HANDLE:
        raise paramiko.SFTPError("Expected handle")
    handle = msg.get_binary()
    listing = Listing()
    try:
        while True:
            try:
                kind, msg = request(sftp_const.CMD_READDIR, handle)
            except EOFError:
                break  # the end of the folder (SSH_FX_EOF)
            if kind != sftp_const.CMD_NAME:
                raise paramiko.SFTPError("Expected name response")
            for _ in range(msg.get_int()):
                raw = msg.get_string()
                msg.get_string()  # longname
                attrs = cast(Any, paramiko.SFTPAttributes)._from_msg(msg)
                if raw in (b".", b".."):
                    continue
                if not stat_module.S_ISREG(attrs.st_mode or 0):
                    continue
                name = decode_name(raw)
                if name is None:
                    listing.unreadable.append(Unreadable(shown_name(raw), NOT_UTF8))
                    continue
                listing.files.append(
                    RemoteFile(name, attrs.st_size or 0, int(attrs.st_mtime or 0))
                )
    finally:
        with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
            request(sftp_const.CMD_CLOSE, handle)
    return listing


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
        try:
            self.sftp.remove(self._path(file.name))
        except (OSError, EOFError, paramiko.SSHException) as exc:
            raise _classify(exc, _session_lost(self.sftp), f"deleting {file.name}") from None

    def upload(self, name: str, source: Path, temp_name: str) -> None:
        """Writes `temp_name`, then renames it to `name`. The temporary name is
        the same on every attempt, so a run cut off halfway leaves at most one
        temporary file, which the attempt that completes the upload replaces
        and renames away."""
        temp = self._path(temp_name)
        final = self._path(name)
        try:
            with source.open("rb") as handle:
                # putfo turns pipelining on and checks the size with a stat.
                self.sftp.putfo(handle, temp, file_size=source.stat().st_size, confirm=True)
            self._rename(temp, final)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            lost = _session_lost(self.sftp)
            error = _classify(exc, lost, f"uploading {name}")
            if isinstance(error, FileError):
                with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                    self.sftp.remove(temp)
            raise error from None

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
            raise TransientError(f"cannot open an SFTP session: {describe(exc)}") from None
        return SftpWorker(sftp, self.settings.folder, self.settings.files_in_flight)

    def list_files(self) -> Listing:
        sftp = self._main.sftp
        try:
            return list_folder(sftp, self.settings.folder)
        except (OSError, EOFError, paramiko.SSHException) as exc:
            error = _classify(exc, _session_lost(sftp), f"listing {self.settings.folder}")
            if isinstance(error, FileError):
                raise PermanentError(str(error)) from None
            raise error from None

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
            raise _classify(exc, _session_lost(self._main.sftp), f"checking {name}") from None

    def upload(self, name: str, source: Path) -> None:
        self._main.upload(name, source, temp_name=f".{name}.part")

    def close(self) -> None:
        """Ends the session the way OpenSSH's client does: the SFTP channel,
        then an SSH disconnect message (paramiko's close only drops the
        socket, which servers log as a connection lost)."""
        with contextlib.suppress(Exception):
            self._main.sftp.close()
        transport = self.ssh.get_transport()
        if transport is not None and transport.is_active():
            with contextlib.suppress(Exception):
                disconnect(transport)
        self.ssh.close()


def disconnect(transport: paramiko.Transport) -> None:
    """Sends SSH_MSG_DISCONNECT, reason 11 (disconnected by application)."""
    message = paramiko.Message()
    message.add_byte(paramiko.common.cMSG_DISCONNECT)
    message.add_int(11)
    message.add_string("run complete")
    message.add_string("")
    transport._send_user_message(message)  # type: ignore[attr-defined]
