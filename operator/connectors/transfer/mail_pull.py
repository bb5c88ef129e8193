"""Inbound Pull of email (IMAP): land the attachments the product rules accept,
then mark the message seen; record the messages they refuse."""

from __future__ import annotations

import email.policy
import hashlib
import logging
from email.parser import BytesParser
from typing import Protocol

from .attachments import Attachment, select_attachments
from .landing import LandingArea
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
    key: str, attachment: Attachment, landing: LandingArea, ledger: Ledger, summary: Summary
) -> None:
    temp = landing.temp_path(attachment.name)
    try:
        temp.write_bytes(attachment.payload)
        landing.commit(temp, attachment.name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    sha = hashlib.sha256(attachment.payload).hexdigest()
    size = len(attachment.payload)
    ledger.record(Entry(FETCHED, key, size, 0, sha, note=attachment.name))
    landing.write_receipt(attachment.name, size, sha)
    summary.transferred(size)
    log.info("landed attachment %s (%d bytes)", attachment.name, size)


def ignore_message(
    client: ImapClientLike, uid: int, key: str, reason: str, ledger: Ledger, summary: Summary
) -> None:
    ledger.record(Entry(IGNORED, key, 0, 0, note=reason))
    summary.skip()
    log.info("ignored message %s: %s", key, reason)
    client.mark_seen(uid)


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
            client.mark_seen(uid)
            continue
        size = client.size(uid)
        if size is not None and size > MAX_MESSAGE_BYTES:
            ignore_message(
                client, uid, key, f"message larger than {MAX_MESSAGE_BYTES} bytes", ledger, summary
            )
            continue
        raw = client.fetch(uid)
        if raw is None:
            continue  # expunged meanwhile
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        verdict = select_attachments(message, spec.filename_pattern)
        if not verdict.is_accepted:
            ignore_message(client, uid, key, verdict.reason or "refused", ledger, summary)
            continue
        for attachment in verdict.accepted:
            attachment_key = f"{key}/{attachment.name}"
            if ledger.has(FETCHED, attachment_key, len(attachment.payload), 0):
                summary.skip()
                continue
            land_attachment(attachment_key, attachment, landing, ledger, summary)
        summary.skip(len(verdict.ignored))
        client.mark_seen(uid)
