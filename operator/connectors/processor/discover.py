"""Finding landed files: every landing path writes `receipt_<name>.txt` beside the
file, after the file, so a receipt names a file that is whole and in place.

Each pass lists the landing areas of the Connections the processor serves, reads
the receipts it has not seen (or that changed: a file uploaded again under its
name gets a new receipt), and records them in the store. Recording is
idempotent by trace id, so a processor that restarts and reads every receipt
again records nothing twice. A file replaced by a newer upload keeps its receipt
in `.connectors/superseded/<stamp>/` (landing/area.py): those are read too, so
the earlier version is checked as well.

Each recorded file's path is remembered by trace id: the store holds names,
and the current file under a name may be a newer version than the one claimed.
"""

from __future__ import annotations

import datetime
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from ..landing.names import (
    INTERNAL_DIR,
    RECEIPT_PREFIX,
    RECEIPT_SUFFIX,
    SUPERSEDED_DIR,
)
from ..submissions import SubmissionStore
from ..submissions.store import RETENTION_DAYS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Landed:
    connection: str
    name: str
    size: int
    sha256: str
    trace_id: str
    received_at: str
    path: Path


def read_receipt(receipt: Path, connection: str) -> Landed | None:
    """The landed file a receipt describes, or None when it is unreadable or
    describes another Connection's file (a receipt copied in by hand)."""
    try:
        data = json.loads(receipt.read_bytes())
        name = str(data["name"])
        landed = Landed(connection, name, int(data["size"]), str(data["sha256"]),
                        str(data["trace_id"]), str(data["received_at"]),
                        receipt.parent / name)
    except (OSError, ValueError, KeyError, TypeError):
        log.warning("unreadable receipt %s", receipt.name)
        return None
    if data.get("connection") not in (None, connection) or "/" in name:
        log.warning("receipt %s does not describe a file of %s", receipt.name, connection)
        return None
    return landed


@dataclass
class Discovery:
    root: Path
    store: SubmissionStore
    retention_days: float = RETENTION_DAYS
    """Receipts older than this are not recorded: the history has purged them,
    and recording them again would check them twice."""
    # (connection, receipt path) -> mtime_ns when read: unchanged receipts are skipped.
    _seen: dict[tuple[str, str], int] = field(default_factory=dict)
    paths: dict[str, Path] = field(default_factory=dict)
    """Trace id -> the landed file's path, for every file recorded since start."""

    def scan(self, connections: dict[str, str]) -> int:
        """Records the new receipts of `connections` (name -> home); returns how
        many files were recorded for the first time."""
        found: list[Landed] = []
        cutoff = datetime.datetime.now(datetime.UTC) - datetime.timedelta(
            days=self.retention_days)
        for connection, home in connections.items():
            for receipt in self._receipts(self.root / home):
                landed = self._read(connection, receipt)
                if landed is not None and not _older(landed.received_at, cutoff):
                    found.append(landed)
        for landed in found:
            self.paths[landed.trace_id] = landed.path
        return self.store.record_many([
            (f.connection, f.name, f.size, f.sha256, f.trace_id, f.received_at) for f in found])

    def _receipts(self, folder: Path) -> list[Path]:
        found: list[Path] = []
        found += _receipts_in(folder)
        superseded = folder / INTERNAL_DIR / SUPERSEDED_DIR
        for stamp in _subfolders(superseded):
            found += _receipts_in(stamp)
        return found

    def _read(self, connection: str, receipt: Path) -> Landed | None:
        """The receipt's file, when the receipt is new or changed since last read."""
        try:
            mtime = receipt.stat().st_mtime_ns
        except FileNotFoundError:
            return None
        key = (connection, str(receipt))
        if self._seen.get(key) == mtime:
            return None
        self._seen[key] = mtime
        return read_receipt(receipt, connection)


def _older(received_at: str, cutoff: datetime.datetime) -> bool:
    try:
        moment = datetime.datetime.fromisoformat(received_at)
    except ValueError:
        return False  # recorded, and the store says what it makes of it
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment < cutoff


def _receipts_in(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(entry.path) for entry in entries
                    if entry.name.startswith(RECEIPT_PREFIX)
                    and entry.name.endswith(RECEIPT_SUFFIX) and entry.is_file()]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _subfolders(folder: Path) -> list[Path]:
    try:
        with os.scandir(folder) as entries:
            return [Path(entry.path) for entry in entries if entry.is_dir()]
    except (FileNotFoundError, NotADirectoryError):
        return []
