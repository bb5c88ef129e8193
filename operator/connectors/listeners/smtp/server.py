"""The SMTP listener for Inbound Email Push, on aiosmtpd: two ports, one process.

Each Connection receives mail at `<connection>@<domain>`, in two ways:

- **Mail exchanger** (the main port; 25 behind the Service): partners' mail
  servers deliver like to any MX, without a login. A recipient that is not an
  active Connection of the account table is refused at RCPT (550 5.1.1), the
  same answer whatever the reason; a Connection's allowed senders are checked
  against the envelope sender at RCPT (550 5.7.1); each envelope sender and
  each client address may start only so many messages a minute (450 4.7.1, so
  that real mail servers retry later). STARTTLS is offered whenever a
  certificate is configured, never required: mail servers fall back to clear
  text when TLS is refused, and a message that is refused is lost for good.
  AUTH is neither offered nor taken here. One message may name several
  Connections: it lands in each, or in none.
- **Submission** (`--submission-port`; 587 behind the Service): partners who
  send with the Credential log in (AUTH) only after STARTTLS: without a
  certificate every AUTH is refused. The login goes through the listeners'
  one LoginGate, so a ban, a wrong password or a full session table means
  what it means for SFTP and FTP; the session slot is given back when the
  connection ends. A login may send only to the addresses of the Connections
  its Credential serves (one message may name several of them).

Both ports share the listener's connection cap (core/capacity.py): past it a
connection is greeted with `421 4.7.0 Too many connections, try again later`
and closed, as RFC 5321 allows in place of the 220 greeting; one that has not
logged in (submission: AUTH; mail exchanger: a first accepted recipient)
within the login grace time is told 421 and closed.

Each port is one aiosmtpd Controller: its own thread and event loop, sharing
the account table, the landing code, the reporter and the cap. aiosmtpd holds a message
in memory until DATA ends, so its size is capped (`data_size_limit`: SIZE is
advertised, a larger message is refused with 552), as is the number of MIME
parts. Parsing and landing run in a worker thread so that one large message
does not stall other sessions.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
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
from connectors.landing.attachments import MAX_PARTS
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.capacity import TOO_MANY, ConnectionCap, ConnectionLimits, Ticket
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.login_gate import Admission, LoginGate
from connectors.listeners.core.places import Login
from connectors.listeners.core.report import Peer, TransferReporter, report_refused
from connectors.listeners.core.tls import CertificateReloader
from connectors.listeners.smtp.landing import Inbox, MessageRefused
from connectors.listeners.smtp.policy import (
    NO_AUTH_HERE,
    OWN_ADDRESS_ONLY,
    RATE_LIMITED,
    RECIPIENT_CHANGED,
    MailRate,
    connection_of,
    recipient_refusal,
    reply_text,
)
from connectors.listeners.smtp.tls import renew_certificate, tls_context

log = logging.getLogger(__name__)

# What the greeting calls the server: no software name or version for strangers
# (aiosmtpd's default is "Python SMTP <version>").
IDENT = "Connectors ESMTP"


@dataclass
class SmtpSettings:
    domain: str = "localhost"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    # Submission only: no command but EHLO, STARTTLS, NOOP, QUIT before TLS.
    require_tls: bool = False
    max_message_bytes: int = 25 * 1024 * 1024
    max_parts: int = MAX_PARTS
    idle_timeout: float = 300.0
    max_sessions_per_account: int = 10
    # Mail exchanger: messages per minute per envelope sender and per client
    # address (0: no limit).
    max_messages_per_sender: int = 60
    max_messages_per_client: int = 120
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


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
    """aiosmtpd's SMTP with what a session holds: its place in the listener's
    connection cap and its login's session slot, given back when the connection
    ends, however it ends."""

    admission: Admission | None = None
    ticket: Ticket | None = None
    refused = False
    grace: asyncio.TimerHandle | None = None

    def __init__(self, handler: Any, *, cap: ConnectionCap | None = None,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.cap = cap

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Called again on the TLS transport after STARTTLS: the same connection.
        first = self.transport is None
        if first and self.cap is not None:
            self.ticket = self.cap.open()
            self.refused = self.ticket is None
        super().connection_made(transport)
        if first and self.ticket is not None and self.cap is not None:
            grace = self.cap.limits.login_grace_seconds
            if grace > 0:
                self.grace = self.loop.call_later(grace, self._grace_expired)

    async def _handle_client(self) -> None:
        if self.refused:
            # In place of the greeting (RFC 5321 3.1), then the connection closes.
            await self.push(f"421 4.7.0 {TOO_MANY}")
            if self.transport is not None:
                self.transport.close()
            return
        await super()._handle_client()

    def logged_in(self) -> None:
        """The session logged in (or, on the mail exchanger, named a Connection)."""
        if self.ticket is not None:
            self.ticket.authenticated()
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None

    def _grace_expired(self) -> None:
        self.grace = None
        if self.ticket is None or self.ticket.logged_in or self.transport is None:
            return
        self.ticket.expire()
        if isinstance(self.transport, asyncio.WriteTransport):
            self.transport.write(f"421 4.7.0 No login within "
                                 f"{self.ticket.cap.limits.login_grace_seconds:g} seconds; "
                                 "closing the connection\r\n".encode())
        self.transport.close()

    def hold(self, admission: Admission) -> None:
        if self.admission is not None:
            self.admission.release()
        self.admission = admission
        self.logged_in()

    def connection_lost(self, error: Exception | None) -> None:
        # aiosmtpd calls this a second time after a failed STARTTLS handshake.
        admission, self.admission = self.admission, None
        if admission is not None:
            admission.release()
        if self.grace is not None:
            self.grace.cancel()
            self.grace = None
        if self.ticket is not None:
            self.ticket.close()
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
        else:  # pragma: no cover - the controllers always make a ListenerSMTP
            admission.release()
        # The session keeps the admission (account and address): never the password.
        return AuthResult(success=True, auth_data=admission)


class _Landing:
    """The end of DATA, the same on both ports: land for the recipients."""

    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def land(self, recipients: list[Account], content: bytes, sender: str,
                   peer: Peer) -> str:
        loop = asyncio.get_running_loop()
        try:
            receipts = await loop.run_in_executor(None, self.inbox.receive, recipients,
                                                  content, sender, peer)
        except MessageRefused as refused:
            return reply_text(f"550 5.7.1 Message ignored: {refused}")
        except OSError as err:
            log.error("could not land a message for %s: %s",
                      ",".join(a.connection for a in recipients),
                      err.strerror or type(err).__name__)
            return "451 4.3.0 The message could not be stored; try again later"
        return f"250 OK: {len(receipts)} file(s) received"


class MailExchangeHandler(_Landing):
    """Port 25: any mail server, no login; recipients, senders and rates decide."""

    def __init__(self, accounts: AccountsFile, inbox: Inbox, domain: str,
                 rate: MailRate) -> None:
        super().__init__(inbox)
        self.accounts = accounts
        self.domain = domain
        self.rate = rate

    async def handle_EHLO(self, server: SMTP, session: Session, envelope: Envelope,
                          hostname: str, responses: list[str]) -> list[str]:
        # aiosmtpd advertises AUTH after STARTTLS on every server; not here.
        session.host_name = hostname
        return [line for line in responses if not line[4:].upper().startswith("AUTH")]

    async def handle_AUTH(self, server: SMTP, session: Session, envelope: Envelope,
                          args: list[str]) -> str:
        return NO_AUTH_HERE

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        client = _peer_address(session)
        if not self.rate.admit(address, client):
            log.warning("rate limited sender=%r address=%s", address, client)
            return RATE_LIMITED
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return "250 OK"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        sender = envelope.mail_from or ""
        account, refusal = recipient_refusal(self.accounts, self.domain, address, sender)
        if refusal is not None:
            log.info("recipient refused to=%r sender=%r address=%s: %s", address, sender,
                     _peer_address(session), refusal)
            if account is not None:
                # A known Connection turned its partner away: the platform
                # engineer sees why as a Warning event (aggregated by the reporter).
                report_refused(self.inbox.reporter, account, "smtp",
                               f"mail from {sender!r} refused: not one of the Connection's "
                               "email.allowedSenders", "sender_not_allowed",
                               Peer(_peer_address(session)))
            return refusal
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
        if isinstance(server, ListenerSMTP):
            # A mail server never logs in: naming a Connection is its login.
            server.logged_in()
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        recipients: dict[str, Account] = {}
        for address in envelope.rcpt_tos:
            account, refusal = recipient_refusal(self.accounts, self.domain, address,
                                                 envelope.mail_from or "")
            if account is None or refusal is not None:
                # Suspended, removed or narrowed since RCPT: the retry asks again.
                return RECIPIENT_CHANGED
            recipients[account.connection] = account
        return await self.land(list(recipients.values()), envelope.original_content or b"",
                               envelope.mail_from or "", Peer(_peer_address(session)))


class SubmissionHandler(_Landing):
    """The submission port: a partner logged in with its Credential."""

    def __init__(self, accounts: AccountsFile, inbox: Inbox, domain: str) -> None:
        super().__init__(inbox)
        self.accounts = accounts
        self.domain = domain

    def _login(self, session: Session) -> Login | None:
        """The login as the table has it now (its Connections may have been
        suspended or removed since it logged in)."""
        admission = session.auth_data
        if not isinstance(admission, Admission):
            return None
        return self.accounts.lookup(admission.login.username)

    def _recipient(self, login: Login, address: str) -> Account | None:
        """The login's Connection that `address` names, if any."""
        connection = connection_of(address, self.domain)
        if connection is None:
            return None
        return next((a for a in login.accounts if a.connection.lower() == connection.lower()),
                    None)

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        login = self._login(session)
        if login is None:
            return "530 5.7.0 Authentication required"
        account = self._recipient(login, address)
        if account is None:
            return OWN_ADDRESS_ONLY
        if "upload" not in account.permissions:
            return "550 5.7.1 This Connection does not receive files"
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        login = self._login(session)
        if login is None:
            return "530 5.7.0 Authentication required"
        recipients: dict[str, Account] = {}
        for address in envelope.rcpt_tos:
            account = self._recipient(login, address)
            if account is None:
                return RECIPIENT_CHANGED  # suspended or removed since RCPT
            recipients[account.connection] = account
        return await self.land(list(recipients.values()), envelope.original_content or b"",
                               envelope.mail_from or "",
                               Peer(_peer_address(session), login.username))


class ListenerController(Controller):
    def __init__(self, handler: Any, *, cap: ConnectionCap | None = None,
                 **kwargs: Any) -> None:
        super().__init__(handler, **kwargs)
        self.cap = cap

    def factory(self) -> ListenerSMTP:
        return ListenerSMTP(self.handler, cap=self.cap, **self.SMTP_kwargs)


@dataclass
class Shared:
    """What both ports use."""

    accounts: AccountsFile
    inbox: Inbox
    settings: SmtpSettings
    context: ssl.SSLContext | None
    cap: ConnectionCap | None = None


def _controller(shared: Shared, handler: object, address: str, port: int,
                **options: Any) -> Controller:
    settings = shared.settings
    return ListenerController(
        handler,
        cap=shared.cap,
        hostname=address,
        port=port,
        server_hostname=settings.domain,
        ident=IDENT,
        data_size_limit=settings.max_message_bytes,
        tls_context=shared.context,
        # Passwords never travel in clear: no AUTH before STARTTLS, ever.
        auth_require_tls=True,
        timeout=settings.idle_timeout,
        **options,
    )


def mail_exchange_controller(shared: Shared, address: str, port: int) -> Controller:
    settings = shared.settings
    rate = MailRate(settings.max_messages_per_sender, settings.max_messages_per_client)
    handler = MailExchangeHandler(shared.accounts, shared.inbox, settings.domain, rate)
    return _controller(shared, handler, address, port)


def submission_controller(shared: Shared, defender: Defender, address: str,
                          port: int) -> Controller:
    settings = shared.settings
    gate = LoginGate(shared.accounts, defender, "smtp", settings.max_sessions_per_account)
    handler = SubmissionHandler(shared.accounts, shared.inbox, settings.domain)
    return _controller(shared, handler, address, port,
                       require_starttls=shared.context is not None and settings.require_tls,
                       auth_required=True, authenticator=AccountAuthenticator(gate))


def build_controllers(accounts: AccountsFile, data_root: Path, defender: Defender,
                      reporter: TransferReporter, settings: SmtpSettings, address: str,
                      port: int, submission_port: int,
                      cap: ConnectionCap | None = None) -> list[Controller]:
    """The mail exchanger on `port`, and the submission port unless it is 0."""
    context = tls_context(settings)
    if context is None:
        log.warning("no TLS certificate (--tls-cert-file, --tls-key-file): STARTTLS is not "
                    "offered, and the submission port refuses AUTH without TLS, so no "
                    "partner can log in until one is mounted")
    shared = Shared(accounts, Inbox(data_root, reporter, settings.max_parts), settings,
                    context, cap or ConnectionCap("smtp", settings.limits))
    controllers = [mail_exchange_controller(shared, address, port)]
    if submission_port:
        controllers.append(submission_controller(shared, defender, address, submission_port))
    return controllers


def serve_until(accounts: AccountsFile, data_root: Path, defender: Defender,
                reporter: TransferReporter, settings: SmtpSettings, address: str,
                port: int, submission_port: int, stop: Event,
                reloader: CertificateReloader | None = None,
                cap: ConnectionCap | None = None) -> None:
    controllers = build_controllers(accounts, data_root, defender, reporter, settings,
                                    address, port, submission_port, cap)
    if reloader is not None:
        reloader.subscribe(lambda: renew_certificate(controllers, settings))
        reloader.start()
    started: list[Controller] = []
    try:
        for controller in controllers:
            controller.start()
            started.append(controller)
        log.info("smtp listening on %s:%d for *@%s (mail exchanger: no login)", address, port,
                 settings.domain)
        if submission_port:
            log.info("smtp submission listening on %s:%d (login after STARTTLS)", address,
                     submission_port)
        while not stop.wait(1.0):
            pass
    finally:
        if reloader is not None:
            reloader.stop()
        for controller in reversed(started):
            controller.stop()
