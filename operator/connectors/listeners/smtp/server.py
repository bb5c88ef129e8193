"""The SMTP listener for Inbound Email Push, on aiosmtpd.

Each Connection receives mail at `<connection>@<domain>`. The sender logs in
with SMTP AUTH as the Connection's account, only after STARTTLS: without a
certificate the listener refuses every AUTH (and says so once at start). The
login goes through the listeners' one LoginGate, so a ban, a wrong password or
a full session table means what it means for SFTP and FTP; the session slot is
given back when the connection ends. A sender may send only to its own
Connection's address.

A message lands whole or not at all. Its attachments follow the one rule set of
landing/attachments.py (shared with the IMAP pull): every attachment must match
filenamePattern (receipt_* and result_* are left out), and every name must
pass the listeners' upload rules, before anything is written; a refusal is a
permanent 550 with the reason. Then every attachment is written and synced to
a temporary file, and only then do they land one after the other. A failure
before the first lands removes the temporaries; a failure after it takes back
what this message already landed, so the sender's retry of the 451 does not
duplicate anything.

aiosmtpd holds a message in memory until DATA ends, so its size is capped
(`data_size_limit`), as is the number of MIME parts. Parsing and landing run
in a worker thread so that one large message does not stall other sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import logging
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path
from threading import Event
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import (
    SMTP,
    AuthResult,
    Envelope,
    LoginPassword,
    Session,
    TLSSetupException,
)

from connectors.api.accounts import Account
from connectors.landing.area import LandingArea, Receipt, fsync_dir, receipt_name
from connectors.landing.attachments import MAX_PARTS, Attachment, select_attachments
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.login_gate import Admission, LoginGate
from connectors.listeners.core.places import Login
from connectors.listeners.core.report import TransferReporter, report_landed, report_refused
from connectors.listeners.core.rules import upload_refusal
from connectors.listeners.core.tls import stdlib_server_context

log = logging.getLogger(__name__)

# What the greeting calls the server: no software name or version for strangers
# (aiosmtpd's default is "Python SMTP <version>").
IDENT = "Connectors ESMTP"
# RFC 5321 4.5.3.1.5: a reply line is at most 512 octets with its code and CRLF.
MAX_REPLY = 500


@dataclass
class SmtpSettings:
    domain: str = "localhost"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    require_tls: bool = False
    max_message_bytes: int = 25 * 1024 * 1024
    max_parts: int = MAX_PARTS
    idle_timeout: float = 300.0
    max_sessions_per_account: int = 10


class MessageRefused(Exception):
    """The whole message is ignored, for the reason given: a permanent refusal."""


def parse_message(content: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(content)
    assert isinstance(message, EmailMessage)
    return message


def reply_text(text: str) -> str:
    """`text` fit for an SMTP reply line: printable ASCII (anything else, such
    as a CR LF in a sender's file name, escaped), bounded."""
    safe = "".join(c if " " <= c <= "~" else ascii(c)[1:-1] for c in text)
    return safe[:MAX_REPLY]


def refusal_of(account: Account, content: bytes, max_parts: int) -> tuple[
        list[Attachment], str | None]:
    """The attachments to land, or the reason the message is ignored."""
    verdict = select_attachments(parse_message(content), account.filename_pattern, max_parts)
    if not verdict.is_accepted:
        return [], verdict.reason or "refused"
    for attachment in verdict.accepted:
        reason = upload_refusal(account, attachment.name)
        if reason is not None:
            return [], f"attachment {attachment.name!r}: {reason}"
    return list(verdict.accepted), None


def take_back(area: LandingArea, receipts: Sequence[Receipt]) -> None:
    """Removes files that landed, with their receipts (best effort)."""
    for receipt in receipts:
        for name in (receipt_name(receipt.name), receipt.name):
            try:
                (area.home / name).unlink(missing_ok=True)
            except OSError as err:
                log.error("cannot take back %s of %s: %s", name, area.connection,
                          err.strerror or type(err).__name__)
    with contextlib.suppress(OSError):
        fsync_dir(area.home)


def land_all(area: LandingArea, attachments: Sequence[Attachment]) -> list[Receipt]:
    """Lands every attachment or none (see the module's description)."""
    files: list[LandingFile] = []
    receipts: list[Receipt] = []
    try:
        for attachment in attachments:
            landing = LandingFile(area, attachment.name)
            files.append(landing)
            landing.write(attachment.payload)
        for landing in files:
            landing.sync()
        for landing in files:
            receipts.append(landing.commit())
    except BaseException:
        for landing in files:
            landing.abort()  # a landed file's temporary is gone: a no-op
        if receipts:
            log.warning("taking back %d file(s) of %s already landed from the same message",
                        len(receipts), area.connection)
            take_back(area, receipts)
        raise
    return receipts


class Inbox:
    """Decides about and lands one message (runs in a worker thread)."""

    def __init__(self, data_root: Path, reporter: TransferReporter,
                 max_parts: int = MAX_PARTS) -> None:
        self.data_root = data_root
        self.reporter = reporter
        self.max_parts = max_parts

    def receive(self, account: Account, content: bytes) -> list[Receipt]:
        """Lands the message's attachments; raises MessageRefused, or OSError
        when they could not be stored (then none of them is)."""
        wanted, reason = refusal_of(account, content, self.max_parts)
        if reason is not None:
            report_refused(self.reporter, account, "smtp", f"message ignored: {reason}")
            raise MessageRefused(reason)
        area = landing_area(self.data_root, account)
        area.ensure()
        receipts = land_all(area, wanted)
        report_landed(self.reporter, account, "smtp", receipts)
        return receipts


def _peer_address(session: Session | None) -> str:
    peer = session.peer if session is not None else None
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return "unknown"


def describe_tls_failure(error: BaseException | None) -> str:
    if isinstance(error, ssl.SSLError):
        return error.reason or error.__class__.__name__
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return type(error).__name__ if error is not None else "unknown"


class ListenerSMTP(SMTP):
    """aiosmtpd's SMTP with what a session holds: its login's session slot,
    given back when the connection ends, however it ends."""

    admission: Admission | None = None

    def hold(self, admission: Admission) -> None:
        if self.admission is not None:
            self.admission.release()
        self.admission = admission

    def connection_lost(self, error: Exception | None) -> None:
        # aiosmtpd calls this a second time after a failed STARTTLS handshake.
        admission, self.admission = self.admission, None
        if admission is not None:
            admission.release()
        super().connection_lost(error)

    async def handle_exception(self, error: Exception) -> str:
        address = _peer_address(self.session)
        if isinstance(error, TLSSetupException):
            # A client that cannot agree on TLS (a scanner, an old client): one
            # line, where aiosmtpd would log a traceback per attempt.
            log.info("TLS handshake failed address=%s: %s", address,
                     describe_tls_failure(error.__cause__))
            return "454 4.7.0 TLS not available"
        log.error("SMTP session error address=%s", address, exc_info=error)
        # Never the exception's text: it may name internals.
        return "451 4.3.0 Local error; try again later"


class AccountAuthenticator:
    """aiosmtpd authenticator: the listeners' login gate."""

    def __init__(self, gate: LoginGate) -> None:
        self.gate = gate

    def __call__(self, server: SMTP, session: Session, envelope: Envelope,
                 mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = auth_data.login.decode("utf-8", "replace")
        password = auth_data.password.decode("utf-8", "replace")
        address = _peer_address(session)
        login = self.gate.verify_password(address, username, password)
        if login is None:
            return AuthResult(success=False, handled=False)
        admission = self.gate.admit(address, login)
        if admission is None:
            return AuthResult(success=False, handled=False,
                              message="454 4.7.0 Too many sessions for this account; "
                                      "try again later")
        if isinstance(server, ListenerSMTP):
            server.hold(admission)
        else:  # pragma: no cover - build_controller always makes a ListenerSMTP
            admission.release()
        # The session keeps the admission (account and address): never the password.
        return AuthResult(success=True, auth_data=admission)


class InboundHandler:
    def __init__(self, accounts: AccountsFile, inbox: Inbox, domain: str) -> None:
        self.accounts = accounts
        self.inbox = inbox
        self.domain = domain.lower()

    def _login(self, session: Session) -> Login | None:
        """The logged-in login as the table has it now (its Connections may
        have been suspended or removed since the login)."""
        admission = session.auth_data
        if not isinstance(admission, Admission):
            return None
        return self.accounts.lookup(admission.login.username)

    def _recipient(self, login: Login, address: str) -> Account | None:
        """The login's Connection that `address` names, if any."""
        local, _, domain = address.rpartition("@")
        if domain.lower() != self.domain:
            return None
        return next((a for a in login.accounts if a.connection.lower() == local.lower()), None)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        login = self._login(session)
        if login is None:
            return "530 5.7.0 Authentication required"
        account = self._recipient(login, address)
        if account is None:
            return "550 5.7.1 This account may only send to its own Connections' addresses"
        if "upload" not in account.permissions:
            return "550 5.7.1 This Connection does not receive files"
        if envelope.rcpt_tos and self._recipient(login, envelope.rcpt_tos[0]) != account:
            return "452 4.5.3 One Connection per message: send the rest separately"
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = self._login(session)
        account = self._recipient(login, envelope.rcpt_tos[0]) if login and envelope.rcpt_tos \
            else None
        if account is None:
            return "530 5.7.0 Authentication required"
        content = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            receipts = await loop.run_in_executor(None, self.inbox.receive, account, content)
        except MessageRefused as refused:
            return reply_text(f"550 5.7.1 Message ignored: {refused}")
        except OSError as err:
            log.error("could not land a message for %s: %s", account.connection,
                      err.strerror or type(err).__name__)
            return "451 4.3.0 The message could not be stored; try again later"
        return f"250 OK: {len(receipts)} file(s) received"


class ListenerController(Controller):
    def factory(self) -> ListenerSMTP:
        return ListenerSMTP(self.handler, **self.SMTP_kwargs)


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None:
        return None
    return stdlib_server_context(settings.tls_cert_file,
                                 settings.tls_key_file or settings.tls_cert_file)


def build_controller(accounts: AccountsFile, data_root: Path, defender: Defender,
                     reporter: TransferReporter, settings: SmtpSettings, address: str,
                     port: int) -> Controller:
    context = tls_context(settings)
    if context is None:
        log.warning("no TLS certificate (--tls-cert-file, --tls-key-file): SMTP AUTH is "
                    "refused without TLS, so no partner can log in until one is mounted")
    gate = LoginGate(accounts, defender, "smtp", settings.max_sessions_per_account)
    handler = InboundHandler(accounts, Inbox(data_root, reporter, settings.max_parts),
                             settings.domain)
    return ListenerController(
        handler,
        hostname=address,
        port=port,
        server_hostname=settings.domain,
        ident=IDENT,
        data_size_limit=settings.max_message_bytes,
        tls_context=context,
        require_starttls=context is not None and settings.require_tls,
        # Passwords never travel in clear: no AUTH before STARTTLS, ever.
        auth_require_tls=True,
        auth_required=True,
        authenticator=AccountAuthenticator(gate),
        timeout=settings.idle_timeout,
    )


def serve_until(accounts: AccountsFile, data_root: Path, defender: Defender,
                reporter: TransferReporter, settings: SmtpSettings, address: str,
                port: int, stop: Event) -> None:
    controller = build_controller(accounts, data_root, defender, reporter, settings,
                                  address, port)
    controller.start()
    log.info("smtp listening on %s:%d for *@%s", address, port, settings.domain)
    try:
        while not stop.wait(1.0):
            pass
    finally:
        controller.stop()
