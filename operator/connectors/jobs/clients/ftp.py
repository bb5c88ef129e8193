"""FTP client of the transfer jobs, on ftplib: plain FTP, or FTPS with explicit
(AUTH TLS) or implicit TLS, the certificate verified unless the user turned
that off for a test server. Always passive mode, and the address in a PASV
reply is never trusted (CVE-2021-4189): data connections go to the control
connection's peer.

Names are bytes on the wire. The control connection is read and written as
Latin-1, which maps every byte to one character and back, so no listing line
can fail to decode; names are then decoded as UTF-8 here, and a name that is
not UTF-8 is reported and skipped, not a reason to stop the run.
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
from typing import TypeVar

from ...errors import describe
from .base import (
    NOT_UTF8,
    FileError,
    Listing,
    PermanentError,
    RemoteFile,
    Sink,
    TransientError,
    Unreadable,
    decode_name,
    shown_name,
    tls_context,
)

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
    return TransientError(f"connection lost while {what}: {describe(exc)}")


def wire(name: str) -> str:
    """A name as the Latin-1 control connection carries its UTF-8 bytes."""
    return name.encode("utf-8").decode("latin-1")


def from_wire(text: str) -> bytes:
    return text.encode("latin-1")


def _guard(what: str, action: Callable[[], T]) -> T:
    """Server refusals (5xx) concern the file; anything else means the session
    is unusable and the run is retried."""
    try:
        return action()
    except ftplib.error_perm as exc:
        raise FileError(f"{what}: {describe(exc)}") from None
    except (OSError, EOFError, ftplib.Error) as exc:
        raise _transient(exc, what) from None


def _parse_mdtm(reply: str) -> int:
    stamp = reply.split()[-1][:14]
    moment = datetime.datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=datetime.UTC)
    return int(moment.timestamp())


# Temporary names for uploads, tried in this order. A hidden name keeps the
# partner's software from picking up half a file; some servers (pure-ftpd -x)
# refuse names starting with a dot, and then a visible name with a suffix no
# data file has is the next best.
TEMP_NAMES = (".{name}.part", "{name}.part")


class FtpClient:

    def __init__(self, settings: FtpSettings) -> None:
        self.settings = settings
        self._temp_names = list(TEMP_NAMES)
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
        ftp.encoding = "latin-1"  # every byte round-trips; see the module's docstring
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
            raise PermanentError(
                f"login as {s.username!r} on {where} refused: {describe(exc)}"
            ) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise TransientError(f"cannot connect to {where}: {describe(exc)}") from None
        try:
            ftp.cwd(wire(s.folder))
        except ftplib.error_perm as exc:
            ftp.close()
            raise PermanentError(
                f"cannot open remote.folder {s.folder}: {describe(exc)}"
            ) from None
        except (OSError, EOFError, ftplib.Error) as exc:
            ftp.close()
            raise _transient(exc, "opening the folder") from None
        return ftp

    def list_files(self) -> Listing:
        try:
            listing = self._mlsd()
        except ftplib.error_perm:
            listing = None  # no MLSD (vsftpd), or refused: NLST, then SIZE and MDTM
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, "listing") from None
        if listing is None:
            listing = self._nlst()
        # Listings run in ASCII mode (ftplib sends TYPE A): back to binary, or
        # servers such as proftpd refuse SIZE, and sizes would count newlines.
        _guard("listing", lambda: self.ftp.voidcmd("TYPE I"))
        return listing

    def _nlst(self) -> Listing:
        lines = _guard("listing", lambda: self.ftp.nlst())
        _guard("listing", lambda: self.ftp.voidcmd("TYPE I"))
        listing = Listing()
        for line in lines:
            raw = from_wire(line.rsplit("/", 1)[-1])
            if raw in (b".", b".."):
                continue
            name = decode_name(raw)
            if name is None:
                listing.unreadable.append(Unreadable(shown_name(raw), NOT_UTF8))
                continue
            try:
                size = self.ftp.size(wire(name))
                mtime = _parse_mdtm(self.ftp.sendcmd(f"MDTM {wire(name)}"))
            except ftplib.error_perm as exc:
                if not self._is_folder(name):
                    # A file whose size or time the server will not tell:
                    # reported by the job when it matches the pattern.
                    listing.unreadable.append(
                        Unreadable(name, f"the server does not tell its size: {describe(exc)}")
                    )
                continue
            except ValueError as exc:
                listing.unreadable.append(
                    Unreadable(name, f"unreadable modification time: {describe(exc)}")
                )
                continue
            except (OSError, EOFError, ftplib.Error) as exc:
                raise _transient(exc, "listing") from None
            if size is None:
                listing.unreadable.append(Unreadable(name, "the server does not tell its size"))
                continue
            listing.files.append(RemoteFile(name, size, mtime))
        return listing

    def _is_folder(self, name: str) -> bool:
        """NLST names folders too; SIZE refuses them. CWD tells them apart."""
        try:
            self.ftp.cwd(wire(name))
        except ftplib.error_perm:
            return False
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, "listing") from None
        _guard("listing", lambda: self.ftp.cwd(wire(self.settings.folder)))
        return True

    def _mlsd(self) -> Listing:
        listing = Listing()
        for line, facts in self.ftp.mlsd(facts=["type", "size", "modify"]):
            if facts.get("type", "").lower() != "file":
                continue
            raw = from_wire(line)
            name = decode_name(raw)
            if name is None:
                listing.unreadable.append(Unreadable(shown_name(raw), NOT_UTF8))
                continue
            try:
                size = int(facts["size"])
                mtime = _parse_mdtm(facts["modify"]) if "modify" in facts else 0
            except (KeyError, ValueError):
                listing.unreadable.append(
                    Unreadable(name, "the server's listing gives no readable size or time")
                )
                continue
            listing.files.append(RemoteFile(name, size, mtime))
        return listing

    @contextlib.contextmanager
    def worker(self) -> Iterator[FtpClient]:
        # One control connection carries one transfer at a time.
        yield self

    def fetch(self, file: RemoteFile, sink: Sink) -> None:
        _guard(
            f"downloading {file.name}",
            lambda: self.ftp.retrbinary(f"RETR {wire(file.name)}", sink.write, BLOCK),
        )

    def delete(self, file: RemoteFile) -> None:
        _guard(f"deleting {file.name}", lambda: self.ftp.delete(wire(file.name)))

    def remote_size(self, name: str) -> int | None:
        try:
            self.ftp.voidcmd("TYPE I")
            return self.ftp.size(wire(name))
        except ftplib.error_perm:
            return None
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, f"checking {name}") from None

    def upload(self, name: str, source: Path) -> None:
        """STOR under a temporary name, then RNFR/RNTO, so the partner never
        picks up half a file. The temporary name is hidden (`.NAME.part`);
        when the server refuses it (pure-ftpd -x refuses dot-files), the
        visible `NAME.part`, and the choice is kept for the rest of the run."""
        size = source.stat().st_size
        refusals: list[str] = []
        for pattern in list(self._temp_names):
            temp = pattern.format(name=name)
            try:
                self._store(temp, source)
            except ftplib.error_perm as exc:
                refusals.append(f"{temp}: {describe(exc)}")
                continue
            except (OSError, EOFError, ftplib.Error) as exc:
                raise _transient(exc, f"uploading {name}") from None
            if pattern != self._temp_names[0]:
                # The server refuses the names tried before this one: start
                # with this one for the other files of the run.
                self._temp_names.remove(pattern)
                self._temp_names.insert(0, pattern)
            self._finish_upload(name, temp, size)
            return
        raise FileError(f"uploading {name}: the server refused " + "; ".join(refusals))

    def _store(self, temp: str, source: Path) -> None:
        with source.open("rb") as handle:
            self.ftp.storbinary(f"STOR {wire(temp)}", handle, BLOCK)

    def _finish_upload(self, name: str, temp: str, size: int) -> None:
        stored = self.remote_size(temp)
        if stored is not None and stored != size:
            with contextlib.suppress(ftplib.Error, OSError, EOFError):
                self.ftp.delete(wire(temp))
            raise FileError(f"uploading {name}: the server holds {stored} bytes, expected {size}")
        try:
            self.ftp.rename(wire(temp), wire(name))
        except ftplib.error_perm:
            # Some servers refuse to rename over an existing file.
            with contextlib.suppress(ftplib.error_perm):
                self.ftp.delete(wire(name))
            _guard(f"renaming {temp} to {name}", lambda: self.ftp.rename(wire(temp), wire(name)))
        except (OSError, EOFError, ftplib.Error) as exc:
            raise _transient(exc, f"renaming {name}") from None

    def close(self) -> None:
        try:
            self.ftp.quit()
        except (OSError, EOFError, ftplib.Error):
            self.ftp.close()
