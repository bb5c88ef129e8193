"""FTP client of the transfer jobs, on ftplib: plain FTP, or FTPS with explicit
(AUTH TLS) or implicit TLS, the certificate verified unless the user turned
that off for a test server. Always passive mode, and the address in a PASV
reply is never trusted (CVE-2021-4189): data connections go to the control
connection's peer.
"""

from __future__ import annotations

import contextlib
import datetime
import ftplib
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from .base import FileError, PermanentError, RemoteFile, Sink, TransientError, tls_context

BLOCK = 1 << 16
T = TypeVar("T")


@dataclass(frozen=True)
class FtpSettings:
    host: str
    port: int
    folder: str
    username: str
    password: str
    tls: str = "None"
    """None, Explicit or Implicit."""
    insecure: bool = False
    timeout: float = 30.0


class _Ftps(ftplib.FTP_TLS):
    """FTP_TLS that can also speak implicit TLS, and that resumes the control
    connection's TLS session on data connections: vsftpd and others refuse a
    data connection that does not (require_ssl_reuse), a known ftplib gap."""

    implicit = False

    def connect(
        self,
        host: str = "",
        port: int = 0,
        timeout: float = -999,
        source_address: tuple[str, int] | None = None,
    ) -> str:
        if not self.implicit:
            return super().connect(host, port, timeout, source_address)
        if host:
            self.host = host
        if port > 0:
            self.port = port
        if timeout != -999:
            self.timeout = timeout
        raw = socket.create_connection((self.host, self.port), self.timeout)
        self.sock = self.context.wrap_socket(raw, server_hostname=self.host)
        self.af = self.sock.family
        self.file = self.sock.makefile("r", encoding=self.encoding)
        self.welcome = self.getresp()
        return self.welcome

    def ntransfercmd(
        self, cmd: str, rest: int | str | None = None
    ) -> tuple[socket.socket, int | None]:
        conn, size = ftplib.FTP.ntransfercmd(self, cmd, rest)  # noqa: S321 (FTP is what the partner chose)
        if self._prot_p:  # type: ignore[attr-defined]
            session = self.sock.session if isinstance(self.sock, ssl.SSLSocket) else None
            conn = self.context.wrap_socket(conn, server_hostname=self.host, session=session)
        return conn, size


def _transient(exc: BaseException, what: str) -> TransientError:
    return TransientError(f"connection lost while {what}: {exc or type(exc).__name__}")


def _guard(what: str, action: Callable[[], T]) -> T:
    """Server refusals (5xx) concern the file; anything else means the session
    is unusable and the run is retried."""
    try:
        return action()
    except ftplib.error_perm as exc:
        raise FileError(f"{what}: {exc}") from None
    except (OSError, EOFError, ftplib.Error) as exc:
        raise _transient(exc, what) from None


def _parse_mdtm(reply: str) -> int:
    stamp = reply.split()[-1][:14]
    moment = datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


class FtpClient:

    def __init__(self, settings: FtpSettings) -> None:
        self.settings = settings
        self.ftp = self._connect()

    def _connect(self) -> ftplib.FTP:
        s = self.settings
        ftp: ftplib.FTP
        if s.tls in ("Explicit", "Implicit"):
            ftps = _Ftps(context=tls_context(s.insecure), timeout=s.timeout)
            ftps.implicit = s.tls == "Implicit"
            ftp = ftps
        else:
            ftp = ftplib.FTP(timeout=s.timeout)  # noqa: S321 (plain FTP only when remote.tls is None)
        # Already ftplib's default; set so that no future default can change it.
        ftp.trust_server_pasv_ipv4_address = False  # type: ignore[attr-defined]
        where = f"{s.host}:{s.port}"
        try:
            ftp.connect(s.host, s.port)
            if isinstance(ftp, _Ftps) and not ftp.implicit:
                ftp.auth()
            ftp.login(s.username, s.password)
            if isinstance(ftp, _Ftps):
                ftp.prot_p()
            ftp.set_pasv(True)
            ftp.voidcmd("TYPE I")
        except ssl.SSLCertVerificationError as exc:
            ftp.close()
            raise PermanentError(
                f"the TLS certificate of {where} does not verify ({exc.verify_message}); "
                "fix the server's certificate, or set remote.insecureSkipTlsVerify for a test "
                "server"
            ) from None
        except ftplib.error_perm as exc:
            ftp.close()
            # A 530 reply: ftplib's message is the server's text, never the password.
            raise PermanentError(f"login as {s.username!r} on {where} refused: {exc}") from None
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise TransientError(
                f"cannot connect to {where}: {exc or type(exc).__name__}"
            ) from None
        try:
            ftp.cwd(s.folder)
        except ftplib.error_perm as exc:
            ftp.close()
            raise PermanentError(f"cannot open remote.folder {s.folder}: {exc}") from None
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise _transient(exc, "opening the folder") from None
        return ftp

    def list_files(self) -> list[RemoteFile]:
        try:
            return self._mlsd()
        except ftplib.error_perm:
            pass  # no MLSD (vsftpd): NLST, then SIZE and MDTM per entry
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, "listing") from None
        names = _guard("listing", lambda: self.ftp.nlst())
        files = []
        for name in names:
            name = name.rsplit("/", 1)[-1]
            try:
                size = self.ftp.size(name)
                mtime = _parse_mdtm(self.ftp.sendcmd(f"MDTM {name}"))
            except ftplib.error_perm:
                continue  # a folder, or a file that vanished
            except (OSError, EOFError, ftplib.Error) as exc:
                raise _transient(exc, "listing") from None
            if size is not None:
                files.append(RemoteFile(name, size, mtime))
        return files

    def _mlsd(self) -> list[RemoteFile]:
        files = []
        for name, facts in self.ftp.mlsd(facts=["type", "size", "modify"]):
            if facts.get("type") != "file":
                continue
            mtime = _parse_mdtm(facts["modify"]) if "modify" in facts else 0
            files.append(RemoteFile(name, int(facts.get("size", 0)), mtime))
        return files

    @contextlib.contextmanager
    def worker(self) -> Iterator[FtpClient]:
        # One control connection carries one transfer at a time.
        yield self

    def fetch(self, file: RemoteFile, sink: Sink) -> None:
        _guard(
            f"downloading {file.name}",
            lambda: self.ftp.retrbinary(f"RETR {file.name}", sink.write, BLOCK),
        )

    def delete(self, file: RemoteFile) -> None:
        _guard(f"deleting {file.name}", lambda: self.ftp.delete(file.name))

    def remote_size(self, name: str) -> int | None:
        try:
            return self.ftp.size(name)
        except ftplib.error_perm:
            return None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, f"checking {name}") from None

    def upload(self, name: str, source: Path) -> None:
        """STOR under a hidden temporary name, then RNFR/RNTO, so the partner
        never picks up half a file."""
        temp = f".{name}.part"

        def store() -> Any:
            with source.open("rb") as handle:
                return self.ftp.storbinary(f"STOR {temp}", handle, BLOCK)

        _guard(f"uploading {name}", store)
        size = self.remote_size(temp)
        if size is not None and size != source.stat().st_size:
            with contextlib.suppress(ftplib.Error, OSError):
                self.ftp.delete(temp)
            raise FileError(
                f"uploading {name}: the server holds {size} bytes, expected {source.stat().st_size}"
            )
        try:
            self.ftp.rename(temp, name)
        except ftplib.error_perm:
            # Some servers refuse to rename over an existing file.
            with contextlib.suppress(ftplib.error_perm):
                self.ftp.delete(name)
            _guard(f"renaming {temp} to {name}", lambda: self.ftp.rename(temp, name))
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, f"renaming {name}") from None

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()
