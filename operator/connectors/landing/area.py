"""The landing area: where files arrive, safely, and what the platform writes back.

Layout on the namespace's data volume, for a Connection named NAME:

    <root>/NAME/                  the partner's home; inbound files land here
    <root>/NAME/receipt_<f>.txt   written when file <f> has landed
    <root>/NAME/result_<f>...     written by downstream processing
    <root>/NAME/outbox/           outbound files waiting to be sent (Outbound Push)
    <root>/NAME/sent/             outbound files already sent
    <root>/NAME/.connectors/      internal: the ledger and temporary files

A file becomes visible under its real name only by rename(2) from a temporary
name in the same folder after fsync, so downstream processing never sees half a
file, and a crash leaves only a temporary file that the next start removes.
"""

from __future__ import annotations

import datetime
import itertools
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

from ..clock import now_rfc3339
from .durable import _keep, fsync_dir, hash_file
from .names import (
    _TEMP_NAME_BYTES,
    INTERNAL_DIR,
    MAX_NAME_BYTES,
    SUPERSEDED_DIR,
    TEMP_PREFIX,
    TEMP_SUFFIX,
    _bounded,
    is_hidden,
    is_reserved,
    matches_pattern,
    name_refusal,
    receipt_name,
)
from .receipts import Receipt, SourcedReceipt

# The listeners import these from here; they live in names, durable, receipts
# and clock since the landing package was cut by responsibility.
__all__ = [
    "INTERNAL_DIR",
    "MAX_NAME_BYTES",
    "TEMP_PREFIX",
    "LandingArea",
    "Receipt",
    "fsync_dir",
    "hash_file",
    "is_hidden",
    "is_reserved",
    "matches_pattern",
    "name_refusal",
    "now_rfc3339",
    "receipt_name",
    "remove_if_unchanged",
]


def remove_if_unchanged(path: Path, inode: tuple[int, int]) -> bool:
    """Removes a file a partner downloaded (deleteAfterDownload), unless the
    name now holds another file (device, inode): a newer file the platform put
    there meanwhile, which the partner has not seen."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        return False
    if (info.st_dev, info.st_ino) != inode:
        return False
    path.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return True


class LandingArea:
    """One Connection's folder on the data volume."""

    def __init__(self, root: Path, connection: str) -> None:
        self.connection = connection
        self.home = root / connection
        self.internal = self.home / INTERNAL_DIR
        # Temporary names: a random part per LandingArea and a counter, unique
        # across processes and threads without a getrandom call per file.
        self._temp_token = secrets.token_hex(6)
        self._temp_count = itertools.count()

    def ensure(self) -> None:
        for path in (self.home, self.internal):
            path.mkdir(mode=0o750, parents=True, exist_ok=True)

    @property
    def home_str(self) -> str:
        return str(self.home)  # pathlib keeps the string once made

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def sent(self) -> Path:
        return self.home / "sent"

    def temp_path(self, name: str, folder: Path | None = None) -> Path:
        """A hidden temporary name in the same folder as the final name, so the
        final rename stays on one filesystem and is atomic."""
        return Path(self.temp_name(name, str(folder or self.home)))

    def temp_name(self, name: str, folder: str | None = None) -> str:
        """temp_path as a string, for the many-files path."""
        unique = f"{self._temp_token}-{next(self._temp_count)}"
        # Callers pass checked names; a separator or NUL never reaches the path.
        readable = _bounded(name.replace("/", "_").replace("\x00", "_"), _TEMP_NAME_BYTES)
        return f"{folder or self.home_str}/{TEMP_PREFIX}{unique}.{readable}{TEMP_SUFFIX}"

    def final_name(self, name: str) -> str:
        return f"{self.home_str}/{name}"

    def remove_stale_temporaries(self, min_age_seconds: float = 0.0) -> int:
        """Removes temporary files a crash left behind; returns how many.

        With `min_age_seconds`, only those not written for that long: a new
        listener pod starts while the old one may still be receiving, and an
        upload in flight writes more often than the idle timeout."""
        removed = 0
        if not self.home.is_dir():
            return 0
        cutoff = time.time() - min_age_seconds
        for entry in self.home.iterdir():
            if not (entry.name.startswith(TEMP_PREFIX) and entry.name.endswith(TEMP_SUFFIX)):
                continue
            try:
                if min_age_seconds and entry.stat().st_mtime > cutoff:
                    continue
            except FileNotFoundError:
                continue
            entry.unlink(missing_ok=True)
            removed += 1
        return removed

    def commit(self, temp: Path, name: str, folder: Path | None = None) -> Path:
        """fsync the temporary file, rename it into place, fsync the folder."""
        final = (folder or self.home) / name
        with temp.open("rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temp, final)
        fsync_dir(final.parent)
        return final

    def draft_receipt(
        self, name: str, size: int, sha256: str, received_at: str | None = None,
        source: str | None = None,
    ) -> tuple[Receipt, str]:
        """The receipt of a landed file, written to a temporary name: (receipt,
        temp). With `source`, where a transfer job got the file."""
        fields = (str(uuid.uuid4()), name, size, sha256, received_at or now_rfc3339(),
                  self.connection)
        receipt = Receipt(*fields) if source is None else SourcedReceipt(*fields, source)
        temp = self.temp_name(receipt_name(name))
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            os.write(fd, receipt.render().encode())  # a few hundred bytes: one write
        finally:
            os.close(fd)
        return receipt, temp

    def write_receipt(self, name: str, size: int, sha256: str) -> Receipt:
        receipt, temp = self.draft_receipt(name, size, sha256)
        try:
            self.commit(Path(temp), receipt_name(name))
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        return receipt

    def land(self, temp: Path, name: str, size: int, sha256: str) -> Receipt:
        """Lands a fully written temporary file under `name` with its receipt.

        The receipt is written first, under a temporary name, so that a
        receipt that cannot be made stops the landing before anything is
        visible. Then the file is renamed into place, then the receipt: a
        receipt never describes a file that is not there. If the receipt's
        rename fails after the file landed, the file is taken back, so the
        client's retry (it was told of the failure) does not duplicate it.
        """
        try:
            receipt, receipt_temp = self.draft_receipt(name, size, sha256)
        except BaseException:
            temp.unlink(missing_ok=True)
            raise
        final = self.home / name
        try:
            self.keep_superseded(name)
            self.commit(temp, name)
        except BaseException:
            temp.unlink(missing_ok=True)
            Path(receipt_temp).unlink(missing_ok=True)
            raise
        try:
            self.commit(Path(receipt_temp), receipt_name(name))
        except BaseException:
            Path(receipt_temp).unlink(missing_ok=True)
            final.unlink(missing_ok=True)
            raise
        return receipt

    def keep_superseded(self, name: str) -> Path | None:
        """A new upload under a name that already landed replaces it, as on
        any SFTP or FTP server; the earlier version is not lost: it is
        hard-linked, with its receipt, into .connectors/superseded/<stamp>/
        first, where processing finds it. Returns that folder, or None."""
        final = self.home / name
        if not final.is_file():
            return None
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S.%fZ")
        unique = f"{stamp}-{self._temp_token}-{next(self._temp_count)}"
        folder = self.internal / SUPERSEDED_DIR / unique
        folder.mkdir(mode=0o750, parents=True)
        _keep(final, folder / name)
        receipt = self.home / receipt_name(name)
        if receipt.is_file():
            _keep(receipt, folder / receipt_name(name))
        fsync_dir(folder)
        return folder

    def restore_receipts(self) -> int:
        """Writes the receipt of every landed file that has none: what a crash
        between a file's rename and its receipt's leaves. The file itself was
        made durable before its rename, so it is whole. Returns how many."""
        restored = 0
        for path in self.landed_files():
            if (self.home / receipt_name(path.name)).exists():
                continue
            self.write_receipt(path.name, path.stat().st_size, hash_file(path))
            restored += 1
        return restored

    def landed_files(self) -> Iterator[Path]:
        """Files that have landed: not hidden, not receipts or results, not folders."""
        if not self.home.is_dir():
            return
        for entry in sorted(self.home.iterdir()):
            if entry.is_file() and not is_hidden(entry.name) and not is_reserved(entry.name):
                yield entry
