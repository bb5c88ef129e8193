"""What is delivered to a sink, and what became of it."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from ..submissions.store import Submission

GZIP_MAGIC = b"\x1f\x8b"
READ_SIZE = 1 << 20


@dataclass(frozen=True)
class Delivery:
    """One accepted file: where it is and what the history knows of it."""

    namespace: str
    connection: str
    data_type: str
    name: str
    """The file's name as the partner gave it."""
    path: Path
    """Where it is on the data volume now."""
    size: int
    sha256: str
    """Hex, as checked: the file is not delivered when it no longer matches."""
    trace_id: str
    """The idempotency key: the CloudEvent's id, a part of the object's key."""
    received_at: str
    checked_at: str
    """RFC 3339: when it was landed, and accepted."""
    rows_accepted: int
    rows_rejected: int
    submission_id: int

    @classmethod
    def of(cls, submission: Submission, *, namespace: str, data_type: str,
           path: Path) -> Delivery:
        """A checked submission of the history, found at `path`."""
        return cls(namespace=namespace, connection=submission.connection,
                   data_type=data_type, name=submission.name, path=path,
                   size=submission.size, sha256=submission.sha256,
                   trace_id=submission.trace_id, received_at=submission.received_at,
                   checked_at=submission.checked_at or submission.received_at,
                   rows_accepted=submission.rows_accepted or 0,
                   rows_rejected=submission.rows_rejected or 0,
                   submission_id=submission.id)


@dataclass(frozen=True)
class Outcome:
    """What one attempt at one sink came to."""

    delivered: bool
    retryable: bool
    """Not delivered, but worth another try later (a timeout, 503, 429 ...);
    False with delivered=False: the sink refused for good, or the file cannot
    be sent, and trying again would not help."""
    message: str
    """In words, for the history and the logs; never a secret."""
    retry_after: float | None = None
    """Seconds the sink asked to wait (Retry-After), when it said."""
    unreachable: bool = False
    """The sink as a whole is not answering (connection refused, timeout, 503,
    429): its other files had better wait too."""

    @classmethod
    def done(cls, message: str) -> Outcome:
        return cls(True, False, message)

    @classmethod
    def retry(cls, message: str, *, retry_after: float | None = None,
              unreachable: bool = False) -> Outcome:
        return cls(False, True, message, retry_after, unreachable)

    @classmethod
    def refused(cls, message: str) -> Outcome:
        return cls(False, False, message)


class FileChanged(Exception):
    """The file on the volume is not the one that was checked."""


def content_type(head: bytes) -> str:
    """From the file's first bytes: gzip, or else the CSV every data type is."""
    return "application/gzip" if head.startswith(GZIP_MAGIC) else "text/csv"


@contextmanager
def opened(delivery: Delivery, hmac_key: bytes | None = None
           ) -> Iterator[tuple[BinaryIO, str, str | None]]:
    """The file, open and at its start, with its content type and (given a
    key) the hex HMAC-SHA256 of its bytes. One first pass reads it to prove it
    is still the file that was checked (size and sha256) and to sign it; the
    caller sends from the same open file, so a file replaced on the volume
    meanwhile cannot slip in. FileChanged when it differs;
    FileNotFoundError when it is gone."""
    with open(delivery.path, "rb") as handle:
        digest = hashlib.sha256()
        mac = hmac.new(hmac_key, digestmod=hashlib.sha256) if hmac_key is not None else None
        size = 0
        head = b""
        while chunk := handle.read(READ_SIZE):
            if not head:
                head = chunk[:2]
            digest.update(chunk)
            if mac is not None:
                mac.update(chunk)
            size += len(chunk)
        if size != delivery.size or (delivery.sha256
                                     and digest.hexdigest() != delivery.sha256.lower()):
            raise FileChanged(
                f"{delivery.name} on the volume ({size} bytes, sha256 {digest.hexdigest()[:12]}…)"
                f" is no longer the file that was checked ({delivery.size} bytes, sha256 "
                f"{delivery.sha256[:12]}…)")
        handle.seek(0)
        yield handle, content_type(head), None if mac is None else mac.hexdigest()
