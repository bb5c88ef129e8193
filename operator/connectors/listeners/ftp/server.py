"""The FTP listener, on pyftpdlib: the same accounts, homes and rules as SFTP.

pyftpdlib serves every session from one thread, so nothing here may block for
long: reports go to a worker thread (BackgroundReporter). Landing an upload
(fsync and rename) does run in the loop, before the 226 reply, so that a
client that sees 226 can rely on the file being there.

A connection past the listener's cap (core/capacity.py) is answered `421 Too
many connections, try again later` instead of the greeting; one not logged in
within the login grace time is closed with a 421.

Three departures from pyftpdlib's defaults:
- uploads go to a hidden temporary file and are renamed into place when the
  data connection ends cleanly (`LandingDTPMixin`, data.py);
- an exhausted passive port range refuses the data connection with 425
  instead of silently binding a random port (`StrictPassiveDTP`, data.py);
- REST, APPE and STOU are refused: a resumed or appended upload cannot land
  atomically.

Who may log in is auth.py; what a partner sees is filesystem.py.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from threading import Event
from typing import Any

from pyftpdlib.handlers import FTPHandler  # type: ignore[import-untyped]
from pyftpdlib.servers import FTPServer  # type: ignore[import-untyped]

from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.capacity import TOO_MANY, ConnectionCap, ConnectionLimits, Ticket
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.downloads import finish_download
from connectors.listeners.core.login_gate import Admission, LoginGate
from connectors.listeners.core.places import PartnerView
from connectors.listeners.core.report import Peer, TransferReporter
from connectors.listeners.core.tls import pyopenssl_server_context
from connectors.listeners.ftp.auth import AccountAuthorizer
from connectors.listeners.ftp.data import (
    LandingDTP,
    LandingDTPMixin,
    PassivePortsExhausted,
    StrictPassiveDTP,
    TLSDataMixin,
)
from connectors.listeners.ftp.filesystem import PartnerFS, Sending

log = logging.getLogger(__name__)


@dataclass
class FtpSettings:
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    require_tls: bool = False
    passive_ports: list[int] | None = None
    masquerade_address: str | None = None
    idle_timeout: float = 600.0
    max_sessions_per_account: int = 10
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


def parse_port_range(text: str | None) -> list[int] | None:
    """'30000-30009' -> [30000, ..., 30009]; None or '' -> None."""
    if not text:
        return None
    first, _, last = text.partition("-")
    low, high = int(first), int(last or first)
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"{text!r} is not a port range FIRST-LAST")
    return list(range(low, high + 1))


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
    cap: ConnectionCap

    admission: Admission | None = None
    # This connection's place in the cap, and the end of its login grace time.
    ticket: Ticket | None = None
    grace: Any = None
    view: PartnerView | None = None
    # The size a client declared with ALLO for its next STOR, and for the
    # current one.
    declared_size: int | None = None
    stor_declared_size: int | None = None
    sending: Sending | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Files this session landed: MFMT may set their times.
        self.landed: set[str] = set()

    @property
    def peer(self) -> Peer:
        """Who this session is, for the audit log."""
        user = self.admission.login.username if self.admission is not None else ""
        return Peer(str(self.remote_ip), user)

    def handle(self) -> None:
        if self.defender.banned(str(self.remote_ip)):
            self.respond("421 Too many failed logins; try again later.")
            self.close_when_done()
            return
        self.ticket = self.cap.open()
        if self.ticket is None:
            self.respond(f"421 {TOO_MANY}")
            self.close_when_done()
            return
        grace = self.cap.limits.login_grace_seconds
        if grace > 0:
            self.grace = self.ioloop.call_later(grace, self._grace_expired,
                                                _errback=self.handle_error)
        super().handle()

    def on_login(self, username: str) -> None:
        if self.ticket is not None:
            self.ticket.authenticated()
        self._cancel_grace()

    def _grace_expired(self) -> None:
        self.grace = None
        if self.ticket is None or self.ticket.logged_in or self._closed or self._closing:
            return
        self.ticket.expire()
        self.respond(f"421 No login within {self.cap.limits.login_grace_seconds:g} seconds; "
                     "closing the connection.")
        self.close_when_done()

    def _cancel_grace(self) -> None:
        if self.grace is not None and not self.grace.cancelled:
            self.grace.cancel()
        self.grace = None

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
        sending, self.sending = self.sending, None
        if sending is None or sending.path != file:
            return
        finish_download(self.reporter, sending.account, "ftp", Path(file), sending.size,
                        sending.inode, self.peer)

    def on_logout(self, username: str) -> None:
        self._release()

    def close(self) -> None:
        self._release()
        self._cancel_grace()
        if self.ticket is not None:
            self.ticket.close()
        super().close()

    def _release(self) -> None:
        if self.admission is not None:
            self.admission.release()
            self.admission = None
        self.view = None


class TlsPolicy:
    """Explicit FTPS for every login whose Connections have not all opted into
    plain FTP (spec.ftp.allowPlainFtp). pyftpdlib can only require TLS for
    everyone, so its own switches stay off and this decides per login: USER and
    PASS need AUTH TLS first, and a data connection needs PROT P.

    The refusal reads the same for an unknown name as for a known one, so it
    tells a prober nothing about which usernames exist."""

    authorizer: AccountAuthorizer
    username: str
    _ssl_established: bool
    _prot: bool

    def process_command(self, cmd: str, *args: Any, **kwargs: Any) -> None:
        refusal = self._tls_refusal(cmd, *args)
        if refusal is not None:
            self.respond(refusal)  # type: ignore[attr-defined]
            return
        super().process_command(cmd, *args, **kwargs)  # type: ignore[misc]

    def _tls_refusal(self, cmd: str, *args: Any) -> str | None:
        if cmd in ("USER", "PASS") and not self._ssl_established:
            username = args[0] if cmd == "USER" else self.username
            if not self.authorizer.plain_ftp(username):
                return "530 This login requires explicit FTPS: send AUTH TLS first."
        if (cmd in ("PASV", "EPSV", "PORT", "EPRT") and not self._prot
                and not self.authorizer.plain_ftp(self.username)):
            return "522 This login requires a protected data channel: send PROT P first."
        return None


def handler_class(settings: FtpSettings, landing_root: Path, reporter: TransferReporter,
                  defender: Defender, authorizer: AccountAuthorizer,
                  cap: ConnectionCap) -> type[FTPHandler]:
    """A handler class configured for one server (pyftpdlib configures by class)."""
    attributes: dict[str, Any] = {
        "authorizer": authorizer,
        "landing_root": landing_root,
        "reporter": reporter,
        "defender": defender,
        "cap": cap,
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
        # TlsPolicy decides per login instead.
        "tls_control_required": False,
        "tls_data_required": False,
        "dtp_handler": tls_dtp,
    })
    bases = (TlsPolicy, PartnerFTPHandler, TLS_FTPHandler) if settings.require_tls else (
        PartnerFTPHandler, TLS_FTPHandler)
    return type("ListenerFTPSHandler", bases, attributes)


def build_server(accounts: AccountsFile, data_root: Path, defender: Defender,
                 reporter: TransferReporter, settings: FtpSettings, address: str,
                 port: int, cap: ConnectionCap | None = None) -> FTPServer:
    gate = LoginGate(accounts, defender, "ftp", settings.max_sessions_per_account)
    authorizer = AccountAuthorizer(accounts, data_root, gate)
    cap = cap or ConnectionCap("ftp", settings.limits)
    handler = handler_class(settings, data_root, reporter, defender, authorizer, cap)
    server = FTPServer((address, port), handler)
    # pyftpdlib's own limit counts every socket of its loop (the listening one,
    # passive acceptors, data connections), not sessions: the cap above decides,
    # this only bounds the sockets, at three per session (control, acceptor,
    # data) and a few more; 0 (no limit) with no cap.
    limit = settings.limits.max_connections
    server.max_cons = 3 * limit + 8 if limit else 0
    return server


STOP_CHECK_SECONDS = 0.5


def serve_until(server: FTPServer, stop: Event) -> None:
    """Runs the loop in short slices so that a signal can stop it.

    Each slice waits at most until the loop's next scheduled call (the
    non-blocking loop returns when that is due): a fixed slice let an idle
    loop run a landing's checks (Settlement) only every half second, so an
    upload's 226 came up to half a second after its file had landed."""
    timeout = STOP_CHECK_SECONDS
    try:
        while not stop.is_set():
            soonest = server.ioloop.loop(timeout=timeout, blocking=False)
            timeout = STOP_CHECK_SECONDS if soonest is None else min(STOP_CHECK_SECONDS,
                                                                      soonest)
    finally:
        server.close_all()


def renew_certificate(server: FTPServer, settings: FtpSettings) -> None:
    """New connections present the renewed certificate; sessions in progress
    keep theirs. Run in the server's loop (see CertificateReloader)."""
    handler = server.handler
    if settings.tls_cert_file is None:
        return
    cert = settings.tls_cert_file
    key = settings.tls_key_file or cert
    handler.ssl_context = pyopenssl_server_context(cert, key)
    handler.data_ssl_context = pyopenssl_server_context(cert, key, tls12_only=True)
