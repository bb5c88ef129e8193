"""Inbound Pull of email (IMAP): land the attachments the product rules accept,
then mark the message seen; record the messages they refuse.

A refused message (an attachment that does not match filenamePattern, too
large) is ignored, as the product rule says: the job records it in the
ledger, so it is not read again, and leaves it as it was, unseen, so that a
person looking at the mailbox still sees a message nobody processed.

Attachments never overwrite a landed file: two messages that each carry
`daily_report.csv` land as `daily_report.csv` and `daily_report-2.csv`, each
with a receipt whose `source` names its message.
"""

from __future__ import annotations

import email.policy
import logging
from email.parser import BytesParser
from typing import Protocol

from ..landing.area import LandingArea
from ..landing.attachments import Attachment, select_attachments
from ..landing.durable import fsync_dir, publish, remove, rename_no_replace
from ..landing.names import FreeNames, NoLandingName, receipt_name
from ..landing.receive import LandingFile
from .clients.base import FileError
from .ledger import FETCHED, IGNORED, Entry, Ledger
from .spec import TransferSpec
from .summary import Summary

log = logging.getLogger("connectors.transfer")


class ImapClientLike(Protocol):
    uidvalidity: int

    def unseen(self) -> list[int]: ...

    def size(self, uid: int) -> int | None: ...

    def fetch(self, uid: int) -> bytes | None: ...

    def mark_seen(self, uid: int) -> None: ...


# Larger messages are not downloaded: they are refused and recorded.
MAX_MESSAGE_BYTES = 100 * 1024 * 1024


def land_attachment(
    key: str,
    attachment: Attachment,
    source: str,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> str:
    """Lands one attachment under a free name; returns that name."""
    size = len(attachment.payload)
    try:
        final = FreeNames(landing.home_str).choose(attachment.name)
    except NoLandingName as exc:
        raise FileError(str(exc)) from None
    incoming = LandingFile(landing, attachment.name, mode=0o666)
    receipt_temp = ""
    try:
        incoming.write(attachment.payload)
        incoming.sync()
        received = incoming.finish()
        _, receipt_temp = landing.draft_receipt(final, size, received.sha256, source=source)
        rename_no_replace(received.temp, landing.final_name(final))
    except BaseException:
        incoming.abort()
        if receipt_temp:
            remove(receipt_temp)
        raise
    fsync_dir(landing.home_str)
    note = attachment.name if final == attachment.name else f"{attachment.name}, landed as {final}"
    ledger.record(Entry(FETCHED, key, size, 0, received.sha256, note=note))
    publish([(receipt_temp, landing.final_name(receipt_name(final)))])
    summary.transferred(size)
    log.info("landed attachment %s as %s (%d bytes)", attachment.name, final, size)
    return final


def ignore_message(key: str, reason: str, ledger: Ledger, summary: Summary) -> None:
    """Recorded, so that the next runs skip it without reading it; not marked
    seen (see the module's docstring)."""
    ledger.record(Entry(IGNORED, key, 0, 0, note=reason))
    summary.skip()
    log.info("ignored message %s: %s", key, reason)


def describe_source(key: str, message_id: str | None, attachment: str) -> str:
    where = f"email {message_id} ({key})" if message_id else f"email {key}"
    return f"{where}, attachment {attachment}"


def pull_mail(
    client: ImapClientLike,
    spec: TransferSpec,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> None:
    """Unseen messages, oldest first. A message is marked seen only after each
    of its accepted attachments has landed and been recorded; a run that dies
    in between lands the missing attachments next time and skips the rest."""
    mailbox = spec.remote.folder or "INBOX"
    for uid in client.unseen():
        key = f"imap/{mailbox}/{client.uidvalidity}/{uid}"
        if ledger.has(IGNORED, key, 0, 0):
            summary.skip()
            continue
        size = client.size(uid)
        if size is not None and size > MAX_MESSAGE_BYTES:
            ignore_message(key, f"message larger than {MAX_MESSAGE_BYTES} bytes", ledger, summary)
            continue
        raw = client.fetch(uid)
        if raw is None:
            continue  # expunged meanwhile
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        verdict = select_attachments(message, spec.filename_pattern)
        if not verdict.is_accepted:
            ignore_message(key, verdict.reason or "refused", ledger, summary)
            continue
        message_id = message.get("Message-ID")
        for attachment in verdict.accepted:
            attachment_key = f"{key}/{attachment.name}"
            if ledger.has(FETCHED, attachment_key, len(attachment.payload), 0):
                summary.skip()
                continue
            source = describe_source(key, str(message_id) if message_id else None, attachment.name)
            land_attachment(attachment_key, attachment, source, landing, ledger, summary)
        summary.skip(len(verdict.ignored))
        client.mark_seen(uid)
