"""The FTP listener, on pyftpdlib: the same accounts, homes and rules as SFTP.

pyftpdlib serves every session from one thread, so nothing here may block for
long: reports go to a worker thread (BackgroundReporter). Landing an upload
(fsync and rename) does run in the loop, before the 226 reply, so that a
client that sees 226 can rely on the file being there.

Three departures from pyftpdlib's defaults:
- uploads go to a hidden temporary file and are renamed into place when the
  data connection ends cleanly (`LandingDTPMixin`);
- an exhausted passive port range refuses the data connection with 425
  instead of silently binding a random port (`StrictPassiveDTP`);
- REST, APPE and STOU are refused: a resumed or appended upload cannot land
  atomically.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from threading import Event
from typing import Any

from OpenSSL import SSL
from pyftpdlib.authorizers import AuthenticationFailed  # type: ignore[import-untyped]
from pyftpdlib.filesystems import (  # type: ignore[import-untyped]
    AbstractedFS,
    FilesystemError,
)
from pyftpdlib.handlers import DTPHandler, FTPHandler  # type: ignore[import-untyped]
from pyftpdlib.servers import FTPServer  # type: ignore[import-untyped]

try:  # pyftpdlib 2.x moved it; 1.5 exported it from handlers
    from pyftpdlib.handlers.ftp.dispatchers import (  # type: ignore[import-untyped]
        PassiveDTP,
    )
except ImportError:  # pragma: no cover
    from pyftpdlib.handlers import PassiveDTP

from connectors.api.accounts import Account
from connectors.landing.area import Receipt
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.downloads import finish_download
from connectors.listeners.core.jail import Jail, PathRefused
from connectors.listeners.core.login_gate import Admission, LoginGate
from connectors.listeners.core.report import (
    TransferReporter,
    report_landed,
    report_refused,
)
from connectors.listeners.core.rules import may_read, may_see, upload_refusal
from connectors.listeners.core.tls import pyopenssl_server_context

log = logging.getLogger(__name__)

_DISCONNECTED = frozenset({errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN,
                           errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT})

# Bytes read from a data connection per loop turn: pyftpdlib's 64 KiB default
# costs one Python round trip per 64 KiB; larger reads keep up with vsftpd.
DATA_READ_SIZE = 1024 * 1024


@dataclass
class FtpSettings:
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    require_tls: bool = False
    passive_ports: list[int] | None = None
    masquerade_address: str | None = None
    idle_timeout: float = 600.0
    max_sessions_per_account: int = 10
    max_connections: int = 512


def parse_port_range(text: str | None) -> list[int] | None:
    """'30000-30009' -> [30000, ..., 30009]; None or '' -> None."""
    if not text:
        return None
    first, _, last = text.partition("-")
    low, high = int(first), int(last or first)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{text!r} is not a port range FIRST-LAST")
    return list(range(low, high + 1))


def ftp_permissions(account: Account) -> str:
    """pyftpdlib permission letters: e (cd), l (list), r (download), w (upload),
    T (MFMT: PartnerFS.utime allows it only on a file the session just landed).
    Never a (append), d (delete), f (rename), m (mkdir) or M (chmod)."""
    letters = ""
    if "list" in account.permissions:
        letters += "el"
    if "download" in account.permissions or "readReceipts" in account.permissions:
        letters += "r"
    if "upload" in account.permissions:
        letters += "wT"
    return letters or "e"


class AccountAuthorizer:
    """pyftpdlib's authorizer interface, over the reloading account table."""

    def __init__(self, accounts: AccountsFile, data_root: Path, gate: LoginGate) -> None:
        self.accounts = accounts
        self.data_root = data_root
        self.gate = gate

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        address = str(handler.remote_ip)
        account = self.gate.verify_password(address, username, password)
        if account is None:
            raise AuthenticationFailed("Authentication failed.")
        admission = self.gate.admit(address, account)
        if admission is None:
            raise AuthenticationFailed("Too many sessions for this account.")
        handler.admission = admission
        handler.account = account

    def get_home_dir(self, username: str) -> str:
        account = self._account(username)
        area = landing_area(self.data_root, account)
        area.ensure()
        return os.path.realpath(area.home)

    def has_user(self, username: str) -> bool:
        return self.accounts.lookup(username) is not None

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        account = self.accounts.lookup(username)
        return account is not None and perm in ftp_permissions(account)

    def get_perms(self, username: str) -> str:
        account = self.accounts.lookup(username)
        return ftp_permissions(account) if account is not None else ""

    def get_msg_login(self, username: str) -> str:
        return "Login successful."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        return None

    def terminate_impersonation(self, username: str) -> None:
        return None

    def _account(self, username: str) -> Account:
        account = self.accounts.lookup(username)
        if account is None:
            raise AuthenticationFailed("Authentication failed.")
        return account


class FtpUpload:
    """The file object pyftpdlib writes a STOR into."""

    def __init__(self, landing: LandingFile) -> None:
        self.landing = landing
        # pyftpdlib logs and reports `name`: the final path, not the temporary one.
        self.name = str(landing.area.home / landing.name)
        # Set while the decision to land waits (see LandingDTPMixin): pyftpdlib's
        # close() must not discard the file in the meantime.
        self.pending = False

    @property
    def closed(self) -> bool:
        return self.landing.closed

    def write(self, data: bytes | memoryview) -> int:
        return self.landing.write(data)

    def commit(self) -> Receipt:
        self.pending = False
        return self.landing.commit()

    def discard(self) -> None:
        self.pending = False
        self.landing.abort()

    def close(self) -> None:
        """Closing without commit() is an abort: the temporary file goes."""
        if not self.pending and not self.landing.closed:
            self.landing.abort()


class PartnerFS(AbstractedFS):  # type: ignore[misc]
    """The partner's home as `/`, with hidden entries and escapes refused."""

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__(root, cmd_channel)
        self.jail = Jail(Path(root))

    @property
    def account(self) -> Account:
        account: Account = self.cmd_channel.account
        return account

    def validpath(self, path: str) -> bool:
        try:
            virtual = self.jail.virtual(Path(path)) if os.path.isabs(path) else path
            self.jail.real(virtual)
        except PathRefused:
            return False
        return True

    def listdir(self, path: str) -> list[str]:
        self._check_visible(path)
        return [name for name in super().listdir(path) if may_see(self.account, name)]

    def listdirinfo(self, path: str) -> list[str]:
        return self.listdir(path)

    def _visible(self, path: str) -> bool:
        """Whether the partner may see every part of a real path below the home
        (listeners/core/rules.py): anything else answers as if absent."""
        relative = os.path.relpath(path, self.jail.home)
        if relative == ".":
            return True
        return not relative.startswith("..") and all(
            may_see(self.account, name) for name in relative.split(os.sep))

    def _check_visible(self, path: str) -> None:
        if not self._visible(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    def stat(self, path: str) -> os.stat_result:
        self._check_visible(path)
        return os.stat(path)

    def lstat(self, path: str) -> os.stat_result:
        self._check_visible(path)
        return os.lstat(path)

    def getsize(self, path: str) -> int:
        self._check_visible(path)
        return os.path.getsize(path)

    def getmtime(self, path: str) -> float:
        self._check_visible(path)
        return os.path.getmtime(path)

    def isfile(self, path: str) -> bool:
        return self._visible(path) and os.path.isfile(path)

    def isdir(self, path: str) -> bool:
        return self._visible(path) and os.path.isdir(path)

    def lexists(self, path: str) -> bool:
        return self._visible(path) and os.path.lexists(path)

    def open(self, filename: str, mode: str) -> Any:
        if "w" in mode or "a" in mode or "+" in mode:
            return self._open_upload(filename, mode)
        name = os.path.basename(filename)
        self._check_visible(filename)
        if not may_read(self.account, name):
            raise FilesystemError("This account may not download this file")
        handle = super().open(filename, mode)
        info = os.fstat(handle.fileno())
        # What on_file_sent needs to tell this file from a newer one of that name.
        self.cmd_channel.sending = (filename, info.st_size, (info.st_dev, info.st_ino))
        return handle

    def _open_upload(self, filename: str, mode: str) -> FtpUpload:
        if mode != "wb":
            raise FilesystemError("Resume and append are not supported: uploads land whole")
        folder, name = os.path.split(filename)
        if os.path.realpath(folder) != str(self.jail.home):
            reason: str | None = "uploads go to the top of the home folder"
        else:
            reason = upload_refusal(self.account, name)
        if reason is not None:
            log.info("upload refused user=%r name=%r: %s", self.account.username, name, reason)
            report_refused(self.cmd_channel.reporter, self.account, "ftp",
                           f"upload of {name!r} refused: {reason}")
            raise FilesystemError(reason[0].upper() + reason[1:])
        area = landing_area(self.cmd_channel.landing_root, self.account)
        return FtpUpload(LandingFile(area, name))

    # Partners change nothing but by uploading (see listeners/core/rules.py).
    def mkdir(self, path: str) -> None:
        raise FilesystemError("Permission denied")

    def rmdir(self, path: str) -> None:
        raise FilesystemError("Permission denied")

    def remove(self, path: str) -> None:
        raise FilesystemError("Permission denied")

    def rename(self, src: str, dst: str) -> None:
        raise FilesystemError("Permission denied")

    def chmod(self, path: str, mode: int) -> None:
        raise FilesystemError("Permission denied")

    def utime(self, path: str, timeval: float) -> None:
        """MFMT, which clients such as rclone send after an upload and retry
        the whole upload when refused: allowed on a file this session landed."""
        folder, name = os.path.split(path)
        if os.path.realpath(folder) != str(self.jail.home) or name not in self.cmd_channel.landed:
            raise FilesystemError("Only a file this session uploaded may have its time set")
        os.utime(os.path.join(self.jail.home, name), (timeval, timeval))


class PassivePortsExhausted(OSError):
    pass


class StrictPassiveDTP(PassiveDTP):  # type: ignore[misc]
    """PASV/EPSV that never leaves the configured port range."""

    def _in_range(self, port: int) -> bool:
        ports = self.cmd_channel.passive_ports
        return ports is None or port in ports

    def bind(self, addr: tuple[str, int]) -> None:
        if not self._in_range(addr[1]):
            # pyftpdlib's fallback to a kernel-chosen port: refuse instead.
            self.close()
            raise PassivePortsExhausted("passive port range exhausted")
        super().bind(addr)

    def listen(self, num: int) -> None:
        # Reached unbound when every port in the range gave EPERM.
        if not self._in_range(self.socket.getsockname()[1]):
            self.close()
            raise PassivePortsExhausted("passive port range exhausted")
        super().listen(num)


def client_vanished(control: Any) -> bool:
    """True when the control connection is closed or reset.

    Peeks at the TCP socket under any TLS layer: a killed client sends no TLS
    close_notify, only a FIN (or a reset).
    """
    try:
        fileno = control.fileno()
    except (OSError, AttributeError):
        return True
    if fileno < 0:
        return True
    try:
        with socket.socket(fileno=os.dup(fileno)) as raw:
            data = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return data == b""


class LandingDTPMixin:
    """Lands or discards an upload when its data connection ends.

    The data connection's end is the only end-of-file marker FTP has, and a
    client killed mid-upload ends it too. A killed client's control connection
    closes at the same moment, but its FIN may be processed just after the
    data connection's. So the decision waits SETTLE_SECONDS, then lands the
    file only if the control connection is still there. The wait overlaps the
    fsync, which runs on a worker thread so the loop keeps serving others; the
    226 reply comes after landing, so a client that sees it can rely on the file.
    """

    ac_in_buffer_size = DATA_READ_SIZE
    # sendfile() count per loop turn for downloads (pyftpdlib: 64 KiB).
    ac_out_buffer_size = DATA_READ_SIZE
    SETTLE_SECONDS = 0.2
    POLL_SECONDS = 0.01

    receive: bool
    transfer_finished: bool
    file_obj: Any
    cmd_channel: Any
    _closed: bool
    _resp: tuple[str, Any] | None

    socket: Any
    _data_wrapper: Any
    tot_bytes_received: int
    _read_buffer: memoryview | None = None

    def handle_read(self) -> None:
        """Receives an upload into one reused buffer.

        pyftpdlib's handle_read calls recv(size), which allocates (and for 1 MiB,
        maps and unmaps) a new buffer per call; recv_into a reused one does not.
        TLS sockets and ASCII-mode transfers keep pyftpdlib's path.
        """
        upload = self.file_obj
        if (not isinstance(upload, FtpUpload) or self._data_wrapper is not None
                or type(self.socket) is not socket.socket):
            super().handle_read()  # type: ignore[misc]
            return
        if self._read_buffer is None:
            self._read_buffer = memoryview(bytearray(DATA_READ_SIZE))
        try:
            count = self.socket.recv_into(self._read_buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            if err.errno not in _DISCONNECTED:
                raise
            # A reset is no end of file: the upload is incomplete.
            self._resp = ("426 Connection reset; transfer aborted.", log.info)
            self.close()
            return
        if count == 0:
            self.handle_close()  # type: ignore[attr-defined]
            return
        self.tot_bytes_received += count
        upload.write(self._read_buffer[:count])


    def ended_cleanly(self) -> bool:
        """Whether the data connection's end proves that every byte arrived.

        On TLS only the client's close_notify does: a reset or a bare FIN
        looks the same to pyftpdlib as a finished upload, and a reset makes
        the kernel discard what had not been read yet. Without close_notify,
        the size the client declared with ALLO, if it matches, proves it too.
        """
        if not isinstance(self.socket, SSL.Connection):
            return True
        if self.socket.get_shutdown() & SSL.RECEIVED_SHUTDOWN:
            return True
        declared = self.cmd_channel.stor_declared_size
        return declared is not None and declared == self.tot_bytes_received

    cmd: str | None

    def close(self) -> None:
        if self.cmd is None:
            # No command used this data connection (its STOR was refused, say):
            # pyftpdlib would answer its close with a stray "226", which the
            # client takes as the reply to its next command.
            self._resp = None
        upload = self.file_obj if not self._closed else None
        if isinstance(upload, FtpUpload) and not upload.closed and not upload.pending:
            if self.transfer_finished and not self.ended_cleanly():
                log.info("upload of %r ended without TLS close_notify after %d bytes: "
                         "discarded", upload.landing.name, self.tot_bytes_received)
                self.transfer_finished = False
                self._resp = ("426 Data connection closed without TLS close_notify; "
                              "upload discarded, send it again.", log.info)
            if self.transfer_finished:
                upload.pending = True
                self._resp = None  # answered once the upload has landed
                Settlement(self.cmd_channel, upload, self.SETTLE_SECONDS,
                           self.POLL_SECONDS).start()
            else:
                log.info("incomplete upload of %r discarded", upload.landing.name)
                upload.close()
        super().close()  # type: ignore[misc]


class Settlement:
    """Decides about one finished upload from the loop, without blocking it."""

    def __init__(self, control: Any, upload: FtpUpload, settle: float, poll: float) -> None:
        self.control = control
        self.upload = upload
        self.poll = poll
        self.deadline = time.monotonic() + settle
        self.synced = upload.landing.sync_in_background()

    def start(self) -> None:
        self._later(self.poll)

    def _later(self, seconds: float) -> None:
        self.control.ioloop.call_later(seconds, self._check, _errback=self._failed)

    def _check(self) -> None:
        if time.monotonic() < self.deadline or not self.synced.done():
            self._later(self.poll)
            return
        if self.control._closed or client_vanished(self.control.socket):
            log.info("client gone: upload of %r discarded", self.upload.landing.name)
            self.upload.discard()
            return
        try:
            self.synced.result()
            receipt = self.upload.commit()
        except OSError as err:
            log.error("could not land %r: %s", self.upload.landing.name, err.strerror)
            self.upload.discard()
            self.control.respond("451 The file could not be stored.")
            return
        self.control.landed.add(receipt.name)
        report_landed(self.control.reporter, self.control.account, "ftp", [receipt])
        self.control.respond("226 Transfer complete.")

    def _failed(self) -> None:
        log.exception("landing %r failed", self.upload.landing.name)
        with contextlib.suppress(Exception):
            self.synced.result(timeout=60)  # the fd must outlive the fsync using it
        self.upload.discard()
        if not self.control._closed:
            self.control.respond("451 The file could not be stored.")


class LandingDTP(LandingDTPMixin, DTPHandler):  # type: ignore[misc]
    # pyftpdlib's loop calls handle_read_event, which DTPHandler binds to its own
    # handle_read at class creation: rebind it to ours. Only here: on TLS the
    # read event drives the handshake and the shutdown (SSLConnectionMixin).
    handle_read_event = LandingDTPMixin.handle_read


class TLSDataMixin:
    """FTPS data connections use the handler's `data_ssl_context` (TLS 1.2,
    see tls.pyopenssl_server_context), and a failed handshake is one log line."""

    cmd_channel: Any

    def secure_connection(self, ssl_context: Any) -> None:
        context = getattr(self.cmd_channel, "data_ssl_context", None) or ssl_context
        super().secure_connection(context)  # type: ignore[misc]


class PartnerFTPHandler(FTPHandler):  # type: ignore[misc]
    """Session policy shared by the plain and the TLS handler."""

    abstracted_fs = PartnerFS
    dtp_handler = LandingDTP
    passive_dtp = StrictPassiveDTP
    permit_foreign_addresses = False
    banner = "Connectors FTP ready."
    # Set per server by build_server().
    landing_root: Path
    reporter: TransferReporter
    defender: Defender

    account: Account | None = None
    admission: Admission | None = None
    # The size a client declared with ALLO for its next STOR, and for the
    # current one.
    declared_size: int | None = None
    stor_declared_size: int | None = None
    # The file a RETR is sending: (path, size, (device, inode)).
    sending: tuple[str, int, tuple[int, int]] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Files this session landed: MFMT may set their times.
        self.landed: set[str] = set()

    def handle(self) -> None:
        if self.defender.banned(str(self.remote_ip)):
            self.respond("421 Too many failed logins; try again later.")
            self.close_when_done()
            return
        super().handle()

    def _make_epasv(self, extmode: bool = False) -> None:
        try:
            super()._make_epasv(extmode)
        except PassivePortsExhausted:
            log.warning("passive port range exhausted; refusing a data connection")
            self._dtp_acceptor = None
            self.respond("425 No passive port available; try again later.")

    def ftp_FEAT(self, line: str) -> None:
        """pyftpdlib's list, less REST STREAM: resume is refused (see ftp_REST)."""
        features = ["EPRT", "EPSV", "MDTM", "MFMT", "SIZE", "TVFS", "UTF8",
                    *self._extra_feats]
        if "MLST" in self.proto_cmds:
            facts = "".join(f"{fact}{'*' if fact in self._current_facts else ''};"
                            for fact in self._available_facts)
            features.append(f"MLST {facts}")
        self.push("211-Features supported:\r\n")
        self.push("".join(f" {feature}\r\n" for feature in sorted(features)))
        self.respond("211 End FEAT.")

    def ftp_ALLO(self, line: str) -> None:
        """Keeps the declared size of the next upload (RFC 959 ALLO <size>):
        on TLS it can prove an upload complete without close_notify."""
        size = line.split()[0] if line.split() else ""
        self.declared_size = int(size) if size.isdigit() else None
        self.respond("202 No storage allocation necessary.")

    def ftp_STOR(self, file: str, mode: str = "w") -> Any:
        # An ALLO declares the size of the next upload only.
        self.stor_declared_size, self.declared_size = self.declared_size, None
        return super().ftp_STOR(file, mode)

    def ftp_REST(self, line: str) -> None:
        self.respond("502 Resume is not supported: uploads land whole.")

    def ftp_APPE(self, file: str) -> None:
        self.respond("502 Append is not supported: uploads land whole.")

    def ftp_STOU(self, line: str) -> None:
        self.respond("502 STOU is not supported: name the file.")

    def on_file_sent(self, file: str) -> None:
        """A RETR ran to its end (resume is refused, so it sent the whole file)."""
        if self.account is None or self.sending is None or self.sending[0] != file:
            return
        _, size, inode = self.sending
        self.sending = None
        finish_download(self.reporter, self.account, "ftp", Path(file), size, inode)

    def on_logout(self, username: str) -> None:
        self._release()

    def close(self) -> None:
        self._release()
        super().close()

    def _release(self) -> None:
        if self.admission is not None:
            self.admission.release()
            self.admission = None
        self.account = None


def handler_class(settings: FtpSettings, landing_root: Path, reporter: TransferReporter,
                  defender: Defender, authorizer: AccountAuthorizer) -> type[FTPHandler]:
    """A handler class configured for one server (pyftpdlib configures by class)."""
    attributes: dict[str, Any] = {
        "authorizer": authorizer,
        "landing_root": landing_root,
        "reporter": reporter,
        "defender": defender,
        "passive_ports": settings.passive_ports,
        "masquerade_address": settings.masquerade_address,
        "timeout": settings.idle_timeout,
    }
    if settings.tls_cert_file is None:
        return type("ListenerFTPHandler", (PartnerFTPHandler,), attributes)
    from pyftpdlib.handlers import TLS_DTPHandler, TLS_FTPHandler

    tls_dtp = type("LandingTLSDTP", (TLSDataMixin, LandingDTPMixin, TLS_DTPHandler), {})
    cert = settings.tls_cert_file
    key = settings.tls_key_file or cert
    attributes.update({
        "certfile": str(cert),
        "keyfile": str(key),
        "ssl_context": pyopenssl_server_context(cert, key),
        "data_ssl_context": pyopenssl_server_context(cert, key, tls12_only=True),
        "tls_control_required": settings.require_tls,
        "tls_data_required": settings.require_tls,
        "dtp_handler": tls_dtp,
    })
    return type("ListenerFTPSHandler", (PartnerFTPHandler, TLS_FTPHandler), attributes)


def build_server(accounts: AccountsFile, data_root: Path, defender: Defender,
                 reporter: TransferReporter, settings: FtpSettings, address: str,
                 port: int) -> FTPServer:
    gate = LoginGate(accounts, defender, "ftp", settings.max_sessions_per_account)
    authorizer = AccountAuthorizer(accounts, data_root, gate)
    handler = handler_class(settings, data_root, reporter, defender, authorizer)
    server = FTPServer((address, port), handler)
    server.max_cons = settings.max_connections
    return server


def serve_until(server: FTPServer, stop: Event) -> None:
    """Runs the loop in short slices so that a signal can stop it."""
    try:
        while not stop.is_set():
            server.ioloop.loop(timeout=0.5, blocking=False)
    finally:
        server.close_all()
