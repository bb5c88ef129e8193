"""Which attachments of an email the platform accepts: pure, the one rule set of
the IMAP transfer job and the SMTP listener.

Product rules (DESIGN.md): every attachment must match the Connection's
filenamePattern, or the whole message is ignored; attachments named receipt_*
or result_* are reserved and ignored. Attachment names come from the sender:
a name that is not plainly a file name (control or format characters, a
leading dot, too long in bytes for the file and its receipt) is refused, and
so is the whole message, rather than guessed at.

One reading is not a refusal: a name with folders in it (`../x.csv`,
`C:\\tmp\\x.csv`) stands for its last component, as RFC 2183 section 2.3 asks
of a receiving agent ("The filename should be treated as a terminal component
only"), with both slashes counted as separators since Windows clients send
backslashes.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field
from email.message import EmailMessage, Message

from .names import is_reserved, matches_pattern, name_refusal

# A message with more parts than this is refused outright: walking thousands of
# nested parts costs memory and time, and no partner sends that many files.
MAX_PARTS = 100


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
    """The attachments that made the message ignored: sanitised names that did
    not match the pattern, and refused names as ASCII literals (ascii())."""
    code: str = ""
    """The reason as one bounded word, for metrics: too_many_parts, bad_name,
    pattern_mismatch, no_attachment or duplicate_name."""

    @property
    def is_accepted(self) -> bool:
        return self.reason is None


def _terminal(raw: str) -> str:
    """The last path component, NFC, without surrounding blanks."""
    name = unicodedata.normalize("NFC", raw)
    return name.replace("\\", "/").rsplit("/", 1)[-1].strip()


def _shape_refusal(name: str) -> str | None:
    """Why `name` (a terminal component) is not plainly a file name."""
    if not name:
        return "an attachment has no file name"
    if any(unicodedata.category(c)[0] == "C" for c in name):
        return "file names may not contain control or format characters"
    if name.startswith("."):
        return "names starting with '.' are reserved"
    return None


def filename_refusal(raw: str | None) -> str | None:
    """Why the attachment name `raw` is refused, or None when it is usable
    (its usable form is `sanitize_filename(raw)`)."""
    if raw is None:
        return "an attachment has no file name"
    name = _terminal(raw)
    return _shape_refusal(name) or name_refusal(name)


def sanitize_filename(raw: str | None) -> str | None:
    """The file name an attachment lands under, or None when it is refused
    (see filename_refusal for why)."""
    if raw is None or filename_refusal(raw) is not None:
        return None
    return _terminal(raw)


def _shown(label: str, limit: int = 60) -> str:
    """A refused name for a reason text: bounded (it may be long on purpose)."""
    return label if len(label) <= limit else f"{label[:limit - 4]}...{label[-1]}"


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


def select_attachments(message: Message | EmailMessage, pattern: str | None,
                       max_parts: int = MAX_PARTS) -> Verdict:
    """Applies the product's attachment rules to one parsed message."""
    if count_parts(message) > max_parts:
        return Verdict(reason=f"too many MIME parts: the message has more than {max_parts}",
                       code="too_many_parts")
    accepted: list[Attachment] = []
    ignored: list[str] = []
    refused: list[tuple[str, str]] = []  # (name as an ASCII literal, why)
    unmatched: list[str] = []
    for part in _attachment_parts(message):
        raw = part.get_filename()
        name = _terminal(raw) if raw is not None else ""
        shape = _shape_refusal(name)
        if shape is not None:
            refused.append((ascii(raw), shape))
            continue
        # Before the length rule: a partner may send back one of our own
        # receipts, whose name is longer than any landed file's.
        if is_reserved(name):
            ignored.append(name)
            continue
        size = name_refusal(name)
        if size is not None:
            refused.append((ascii(name), size))
            continue
        if not matches_pattern(name, pattern):
            unmatched.append(name)
            continue
        payload = part.get_payload(decode=True)
        accepted.append(
            Attachment(name=name, payload=payload if isinstance(payload, bytes) else b"")
        )
    if refused:
        return Verdict(
            ignored=tuple(ignored),
            rejected=tuple(label for label, _ in refused) + tuple(unmatched),
            reason="attachment name refused: "
            + "; ".join(f"{why}: {_shown(label)}" for label, why in refused[:3]),
            code="bad_name",
        )
    if unmatched:
        listed = ", ".join(unmatched[:5])
        return Verdict(
            ignored=tuple(ignored),
            rejected=tuple(unmatched),
            reason=f"attachments not matching filenamePattern {pattern!r}: {listed}",
            code="pattern_mismatch",
        )
    if not accepted:
        return Verdict(ignored=tuple(ignored), reason="the message has no attachment to accept",
                       code="no_attachment")
    names = [a.name for a in accepted]
    if len(set(names)) != len(names):
        return Verdict(reason="the message has two attachments with the same name",
                       code="duplicate_name")
    return Verdict(accepted=tuple(accepted), ignored=tuple(ignored))
