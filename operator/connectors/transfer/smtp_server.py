"""The SMTP listener for Inbound Email Push, on aiosmtpd.

Each Connection receives mail at `<connection>@<domain>`. The sender logs in
with SMTP AUTH as the Connection's account (only after STARTTLS when a
certificate is mounted) and may send only to its own Connection's address.
A message lands only whole: every attachment must match filenamePattern
(attachments named receipt_* or result_* are skipped), or the whole message is
refused with the reason, which is also recorded as a failed transfer.

aiosmtpd holds a message in memory until DATA ends, so its size is capped
(`data_size_limit`), as is the number of MIME parts. Parsing and landing run
in a worker thread so that one large message does not stall other sessions.
"""

from __future__ import annotations

import asyncio
import email.policy
import logging
import ssl
import warnings
from dataclasses import dataclass
from email.message import EmailMessage, Message
from email.parser import BytesParser
from pathlib import Path
from threading import Event
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from connectors.api.accounts import Account, verify_password
from connectors.transfer.accounts_file import AccountsFile
from connectors.transfer.defender import Defender
from connectors.transfer.landing import Receipt, is_reserved
from connectors.transfer.report import TransferReporter
from connectors.transfer.upload import (
    LandingFile,
    landing_area,
    report_landed,
    report_refused,
    upload_refusal,
)

log = logging.getLogger(__name__)

MAX_NAME_LENGTH = 200


@dataclass
class SmtpSettings:
    domain: str = "localhost"
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    require_tls: bool = False
    max_message_bytes: int = 25 * 1024 * 1024
    max_parts: int = 100
    idle_timeout: float = 300.0


class MessageRefused(Exception):
    """The whole message is ignored, for the reason given."""


def sanitize_filename(raw: str | None) -> str:
    """A safe file name from an attacker-controlled one: no folders (either
    slash), no control characters, no leading dots or spaces, bounded length."""
    if raw is None:
        return ""
    name = raw.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if ch.isprintable())
    return name.strip().lstrip(".").strip()[:MAX_NAME_LENGTH]


@dataclass(frozen=True)
class Attachment:
    name: str
    content: bytes


def attachments_of(message: Message, max_parts: int) -> list[Attachment]:
    """The attachments of a parsed message; raises MessageRefused."""
    parts = list(message.walk())
    if len(parts) > max_parts:
        raise MessageRefused(f"too many MIME parts ({len(parts)} > {max_parts})")
    found: list[Attachment] = []
    for part in parts:
        if part.is_multipart():
            continue
        raw_name = part.get_filename()
        if part.get_content_disposition() != "attachment" and raw_name is None:
            continue  # the body text
        name = sanitize_filename(raw_name)
        if not name:
            raise MessageRefused("an attachment has no usable file name")
        payload = part.get_payload(decode=True)
        found.append(Attachment(name, payload if isinstance(payload, bytes) else b""))
    return found


def select_attachments(account: Account, attachments: list[Attachment]) -> list[Attachment]:
    """The attachments to land; raises MessageRefused if the message must be ignored."""
    wanted = [a for a in attachments if not is_reserved(a.name)]
    if not wanted:
        raise MessageRefused("the message has no attachment to receive")
    seen: set[str] = set()
    for attachment in wanted:
        reason = upload_refusal(account, attachment.name)
        if reason is not None:
            raise MessageRefused(f"attachment {attachment.name!r}: {reason}")
        if attachment.name in seen:
            raise MessageRefused(f"two attachments are named {attachment.name!r}")
        seen.add(attachment.name)
    return wanted


def parse_message(content: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(content)
    assert isinstance(message, EmailMessage)
    return message


class Inbox:
    """Decides about and lands one message (runs in a worker thread)."""

    def __init__(self, data_root: Path, reporter: TransferReporter, max_parts: int) -> None:
        self.data_root = data_root
        self.reporter = reporter
        self.max_parts = max_parts

    def receive(self, account: Account, content: bytes) -> list[Receipt]:
        """Lands the message's attachments; raises MessageRefused."""
        try:
            wanted = select_attachments(
                account, attachments_of(parse_message(content), self.max_parts))
        except MessageRefused as refused:
            report_refused(self.reporter, account, "smtp", f"message ignored: {refused}")
            raise
        area = landing_area(self.data_root, account)
        area.ensure()
        receipts = [self._land(area, a) for a in wanted]
        report_landed(self.reporter, account, "smtp", receipts)
        return receipts

    @staticmethod
    def _land(area: Any, attachment: Attachment) -> Receipt:
        landing = LandingFile(area, attachment.name)
        try:
            landing.write(attachment.content)
        except BaseException:
            landing.abort()
            raise
        return landing.commit()


class AccountAuthenticator:
    """aiosmtpd authenticator over the account table, scored by the defender."""

    def __init__(self, accounts: AccountsFile, defender: Defender) -> None:
        self.accounts = accounts
        self.defender = defender

    def __call__(self, server: SMTP, session: Session, envelope: Envelope,
                 mechanism: str, auth_data: Any) -> AuthResult:
        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        username = auth_data.login.decode("utf-8", "replace")
        address = str(session.peer[0]) if session.peer else "unknown"
        if self.defender.banned(address, username):
            return AuthResult(success=False, handled=False)
        account = self.accounts.lookup(username)
        password = auth_data.password.decode("utf-8", "replace")
        if account is None or not verify_password(password, account.password_hash):
            log.info("password rejected for user %r from %s", username, address)
            if self.defender.failure(address, username):
                log.warning("banning %s / user %r after repeated failures", address, username)
            return AuthResult(success=False, handled=False)
        self.defender.success(address, username)
        # Only the username is kept in the session: never the password.
        return AuthResult(success=True, auth_data=username)


class InboundHandler:
    def __init__(self, accounts: AccountsFile, inbox: Inbox, domain: str) -> None:
        self.accounts = accounts
        self.inbox = inbox
        self.domain = domain.lower()

    def _account(self, session: Session) -> Account | None:
        username = session.auth_data if isinstance(session.auth_data, str) else None
        return self.accounts.lookup(username) if username else None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        account = self._account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        local, _, domain = address.rpartition("@")
        if domain.lower() != self.domain or local.lower() != account.connection.lower():
            return "550 5.7.1 This account may only send to its own Connection's address"
        if "upload" not in account.permissions:
            return "550 5.7.1 This Connection does not receive files"
        if address not in envelope.rcpt_tos:
            envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        account = self._account(session)
        if account is None:
            return "530 5.7.0 Authentication required"
        content = envelope.original_content or b""
        loop = asyncio.get_running_loop()
        try:
            receipts = await loop.run_in_executor(None, self.inbox.receive, account, content)
        except MessageRefused as refused:
            return f"550 5.7.1 Message ignored: {refused}"[:500]
        except OSError as err:
            log.error("could not land a message for %s: %s", account.connection, err.strerror)
            return "451 4.3.0 The message could not be stored; try again later"
        return f"250 OK: {len(receipts)} file(s) received"


def tls_context(settings: SmtpSettings) -> ssl.SSLContext | None:
    if settings.tls_cert_file is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(settings.tls_cert_file, settings.tls_key_file)
    return context


def build_controller(accounts: AccountsFile, data_root: Path, defender: Defender,
                     reporter: TransferReporter, settings: SmtpSettings, address: str,
                     port: int) -> Controller:
    context = tls_context(settings)
    if context is None:
        log.warning("no TLS certificate: SMTP AUTH passwords travel in clear text")
        # aiosmtpd warns on every connection; the warning above says it once.
        warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
    handler = InboundHandler(accounts, Inbox(data_root, reporter, settings.max_parts),
                             settings.domain)
    return Controller(
        handler,
        hostname=address,
        port=port,
        server_hostname=settings.domain,
        data_size_limit=settings.max_message_bytes,
        tls_context=context,
        require_starttls=context is not None and settings.require_tls,
        # Passwords never travel in clear when TLS is possible.
        auth_require_tls=context is not None,
        auth_required=True,
        authenticator=AccountAuthenticator(accounts, defender),
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
