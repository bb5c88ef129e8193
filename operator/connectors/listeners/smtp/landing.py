"""How one message lands: whole, in every recipient Connection's area, or not at all.

Its attachments follow the one rule set of landing/attachments.py (shared with
the IMAP pull): every attachment must match filenamePattern (receipt_* and
result_* are left out), and every name must pass the listeners' upload rules,
for every recipient, before anything is written; a refusal is a permanent 550
with the reason. Then every attachment is written and synced to a temporary
file in each recipient's area, and only then do they land one after the
other. A failure before the first lands removes the temporaries; a failure
after it takes back what this message already landed, in every area, so the
sender's retry of the 451 does not duplicate anything.
"""

from __future__ import annotations

import contextlib
import email.policy
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from pathlib import Path

from connectors.api.accounts import Account
from connectors.landing.area import LandingArea, Receipt, fsync_dir, receipt_name
from connectors.landing.attachments import MAX_PARTS, Attachment, select_attachments
from connectors.landing.mail_origin import MailOrigin, write_origin
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.report import (
    NO_PEER,
    Peer,
    TransferReporter,
    report_landed,
    report_refused,
)
from connectors.listeners.core.rules import Refusal, upload_refusal

log = logging.getLogger(__name__)


class MessageRefused(Exception):
    """The whole message is ignored, for the reason given: a permanent refusal."""


@dataclass(frozen=True)
class Delivery:
    """The attachments one recipient Connection takes from a message."""

    account: Account
    area: LandingArea
    attachments: Sequence[Attachment]


def parse_message(content: bytes) -> EmailMessage:
    message = BytesParser(policy=email.policy.default).parsebytes(content)
    assert isinstance(message, EmailMessage)
    return message


def refusal_of(account: Account, message: EmailMessage, max_parts: int) -> tuple[
        list[Attachment], Refusal | None]:
    """The attachments to land for `account`, or the reason the message is ignored."""
    verdict = select_attachments(message, account.filename_pattern, max_parts)
    if not verdict.is_accepted:
        return [], Refusal(verdict.reason or "refused", verdict.code or "refused")
    for attachment in verdict.accepted:
        reason = upload_refusal(account, attachment.name)
        if reason is not None:
            return [], Refusal(f"attachment {attachment.name!r}: {reason}", reason.code)
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


def _take_back_all(landed: Sequence[tuple[LandingArea, Receipt]]) -> None:
    areas: dict[Path, tuple[LandingArea, list[Receipt]]] = {}
    for area, receipt in landed:
        areas.setdefault(area.home, (area, []))[1].append(receipt)
    for area, receipts in areas.values():
        log.warning("taking back %d file(s) of %s already landed from the same message",
                    len(receipts), area.connection)
        take_back(area, receipts)


def land_all(deliveries: Sequence[Delivery]) -> list[list[Receipt]]:
    """Lands every attachment in every area, or none (see the module's
    description); the receipts, one list per delivery."""
    files: list[tuple[int, LandingFile]] = []
    landed: list[tuple[LandingArea, Receipt]] = []
    receipts: list[list[Receipt]] = [[] for _ in deliveries]
    try:
        for index, delivery in enumerate(deliveries):
            for attachment in delivery.attachments:
                landing = LandingFile(delivery.area, attachment.name)
                files.append((index, landing))
                landing.write(attachment.payload)
        for _, landing in files:
            landing.sync()
        for index, landing in files:
            receipt = landing.commit()
            landed.append((landing.area, receipt))
            receipts[index].append(receipt)
    except BaseException:
        for _, landing in files:
            landing.abort()  # a landed file's temporary is gone: a no-op
        _take_back_all(landed)
        raise
    return receipts


def note_origins(deliveries: Sequence[Delivery], receipts: Sequence[Sequence[Receipt]],
                 message: EmailMessage, sender: str) -> None:
    """Whom to answer about each landed file; only for Connections that reply.
    Best effort: the files have landed, and a lost note only costs the reply."""
    origin = MailOrigin(sender, _header(message, "Message-ID"), _header(message, "Subject"))
    for delivery, landed in zip(deliveries, receipts, strict=True):
        if not delivery.account.reply_with_results:
            continue
        for receipt in landed:
            try:
                write_origin(delivery.area.home, receipt.trace_id, origin)
            except OSError as err:
                log.warning("could not note whom to answer for %s: %s", receipt.name,
                            err.strerror or type(err).__name__)


def _header(message: EmailMessage, name: str) -> str | None:
    value = message.get(name)
    # One line, bounded: it goes back into a reply's headers.
    return " ".join(str(value).split())[:998] if value else None


class Inbox:
    """Decides about and lands one message (runs in a worker thread)."""

    def __init__(self, data_root: Path, reporter: TransferReporter,
                 max_parts: int = MAX_PARTS) -> None:
        self.data_root = data_root
        self.reporter = reporter
        self.max_parts = max_parts

    def receive(self, recipients: Sequence[Account], content: bytes,
                sender: str = "", peer: Peer = NO_PEER) -> list[Receipt]:
        """Lands the message's attachments for every recipient; raises
        MessageRefused, or OSError when they could not be stored (then none of
        them is, for any recipient). `sender`: the envelope's MAIL FROM, kept
        for a reply with the results (landing/mail_origin.py); `peer` is who
        sent it, for the audit log."""
        message = parse_message(content)
        deliveries = [self._delivery(account, message, len(recipients) > 1, peer)
                      for account in recipients]
        for delivery in deliveries:
            delivery.area.ensure()
        receipts = land_all(deliveries)
        if sender:
            note_origins(deliveries, receipts, message, sender)
        for delivery, landed in zip(deliveries, receipts, strict=True):
            report_landed(self.reporter, delivery.account, "smtp", landed, peer)
        return [receipt for landed in receipts for receipt in landed]

    def _delivery(self, account: Account, message: EmailMessage, several: bool,
                  peer: Peer = NO_PEER) -> Delivery:
        wanted, reason = refusal_of(account, message, self.max_parts)
        if reason is not None:
            report_refused(self.reporter, account, "smtp", f"message ignored: {reason}",
                           reason.code, peer)
            # With several recipients, the sender needs to know whose rule it broke.
            raise MessageRefused(f"{account.connection}: {reason}" if several else reason)
        return Delivery(account, landing_area(self.data_root, account), wanted)
