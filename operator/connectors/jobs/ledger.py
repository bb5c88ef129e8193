"""The ledger: what a transfer job has already done, so that a rerun after a
crash or on the next schedule never fetches or sends a file twice.

Append-only JSON lines in <landing home>/.connectors/ledger.jsonl, fsync'd
after every record: a job killed at any moment loses at most the record it
was writing, and a torn last line is skipped on load. Entries are keyed by
(kind, name, size, mtime): a remote file that changes size or mtime is a new
version and is fetched again. A new version never replaces the landed one: it
lands beside it as `stem-2.ext` (pull.py), and its entry's note says
"landed as ...". An ignored email is recorded here and left unseen on the
server (mail_pull.py).
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass, replace
from pathlib import Path

from ..clock import now_rfc3339

LEDGER_NAME = "ledger.jsonl"

# Kinds of entries.
FETCHED = "fetched"
"""An inbound file that landed."""
SENDING = "sending"
"""An outbound file about to be sent: written before the upload starts, so a
rerun knows a crash may have left it delivered."""
SENT = "sent"
"""An outbound file that was delivered."""
IGNORED = "ignored"
"""An inbound email the product rules refused, recorded with the reason."""

Key = tuple[str, str, int, int]


@dataclass(frozen=True)
class Entry:
    kind: str
    name: str
    size: int
    mtime: int
    sha256: str = ""
    at: str = ""
    note: str = ""

    @property
    def key(self) -> Key:
        return (self.kind, self.name, self.size, self.mtime)


class Ledger:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._keys: dict[Key, Entry] = {}
        self._lock = threading.Lock()
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        with self.path.open("r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                try:
                    data = json.loads(line)
                    entry = Entry(**data)
                except (ValueError, TypeError):
                    # A torn line from a job killed mid-write; the work it
                    # described is redone, which the callers make safe.
                    continue
                self._keys[entry.key] = entry

    def has(self, kind: str, name: str, size: int, mtime: int) -> bool:
        return (kind, name, size, mtime) in self._keys

    def get(self, kind: str, name: str, size: int, mtime: int) -> Entry | None:
        return self._keys.get((kind, name, size, mtime))

    def record(self, entry: Entry) -> Entry:
        return self.record_many([entry])[0]

    def record_many(self, entries: list[Entry]) -> list[Entry]:
        """Appends entries with one write and one fsync."""
        stamp = now_rfc3339()
        entries = [e if e.at else replace(e, at=stamp) for e in entries]
        # vars(), not asdict(): the fields are flat, and asdict's deep copy cost
        # a fifth of the committer's time on a run of many small files.
        data = "".join(json.dumps(vars(e), separators=(",", ":")) + "\n" for e in entries)
        with self._lock:
            self.path.parent.mkdir(mode=0o750, parents=True, exist_ok=True)
            # O_APPEND makes each record one write at the end, even if two jobs
            # ever overlapped (the CronJob uses concurrencyPolicy Forbid anyway).
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o640)
            try:
                view = memoryview(data.encode("utf-8"))
                while view:
                    view = view[os.write(fd, view) :]
                os.fsync(fd)
            finally:
                os.close(fd)
            for entry in entries:
                self._keys[entry.key] = entry
        return entries

    def entries(self) -> list[Entry]:
        return list(self._keys.values())
