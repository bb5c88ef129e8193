"""Which attachments of an email the platform accepts: pure, shared by the IMAP
transfer job and the SMTP listener.

Product rules (DESIGN.md): every attachment must match the Connection's
filenamePattern, or the whole message is ignored; attachments named receipt_*
or result_* are reserved and ignored. Attachment names come from the sender,
so they are sanitised before anything else looks at them.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from .landing import is_reserved, matches_pattern

# A message with more parts than this is refused outright: walking thousands of
# nested parts costs memory and time, and no partner sends that many files.
MAX_PARTS = 100
MAX_NAME_LENGTH = 200


@dataclass(frozen=True)
class Attachment:
    name: str
    """The sanitised file name."""
    payload: bytes


@dataclass(frozen=True)
class Verdict:
    accepted: tuple[Attachment, ...] = ()
    """Attachments to land; empty when the message is ignored."""
    ignored: tuple[str, ...] = ()
    """Reserved attachments (receipt_*, result_*) left out of an accepted message."""
    reason: str | None = None
    """Why the whole message is ignored, or None when it is accepted."""
    rejected: tuple[str, ...] = field(default=())
    """Sanitised names of the attachments that did not match the pattern."""

    @property
    def is_accepted(self) -> bool:
        return self.reason is None


def sanitize_filename(raw: str | None) -> str | None:
    """The last path component, without control characters; None when nothing
    usable is left.

    Senders control the name, so both `/` and `\\` count as separators (a
    Windows client may send `C:\\x\\y.csv`), and names that would be hidden or
    special (`.`, `..`, a leading dot) are refused rather than guessed at.
    """
    if raw is None:
        return None
    name = unicodedata.normalize("NFC", raw)
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(c for c in name if unicodedata.category(c)[0] != "C")
    name = name.strip()
    if not name or name.startswith("."):
        return None
    if len(name) > MAX_NAME_LENGTH:
        return None
    return name


def _attachment_parts(message: Message) -> list[Message]:
    """Leaf parts that carry a file: an explicit attachment, or any part with a
    file name (some clients send `inline` files with a name)."""
    parts = []
    for part in message.walk():
        if part.is_multipart():
            continue
        disposition = part.get_content_disposition()
        if disposition == "attachment" or part.get_filename() is not None:
            parts.append(part)
    return parts


def count_parts(message: Message) -> int:
    return sum(1 for _ in message.walk())


def select_attachments(message: Message | EmailMessage, pattern: str | None) -> Verdict:
    """Applies the product's attachment rules to one parsed message."""
    if count_parts(message) > MAX_PARTS:
        return Verdict(reason=f"the message has more than {MAX_PARTS} MIME parts")
    accepted: list[Attachment] = []
    ignored: list[str] = []
    rejected: list[str] = []
    for part in _attachment_parts(message):
        name = sanitize_filename(part.get_filename())
        if name is None:
            rejected.append("(unnamed)")
            continue
        if is_reserved(name):
            ignored.append(name)
            continue
        if not matches_pattern(name, pattern):
            rejected.append(name)
            continue
        payload = part.get_payload(decode=True)
        accepted.append(
            Attachment(name=name, payload=payload if isinstance(payload, bytes) else b"")
        )
    if rejected:
        listed = ", ".join(rejected[:5])
        return Verdict(
            ignored=tuple(ignored),
            rejected=tuple(rejected),
            reason=f"attachments not matching filenamePattern {pattern!r}: {listed}",
        )
    if not accepted:
        return Verdict(ignored=tuple(ignored), reason="the message has no attachment to accept")
    names = [a.name for a in accepted]
    if len(set(names)) != len(names):
        return Verdict(reason="the message has two attachments with the same name")
    return Verdict(accepted=tuple(accepted), ignored=tuple(ignored))
