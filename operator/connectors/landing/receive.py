"""The one receive path: how a received file is written, hashed and landed.

A file being received is a `LandingFile`: written under a hidden temporary
name in its landing area and hashed on the way. It then lands one of two
ways, which differ only in how its data is made durable and how its final
name is chosen:

- alone, `LandingFile.commit()`: fsync, rename into place (a name that had
  landed before is kept in superseded/), fsync of the folder, then the
  receipt. The listeners land every upload so, before they answer the
  partner's client, which waits for that answer.
- in a batch, `LandingFile.finish()` and then `landing.batch.land_many()`:
  many files made durable by one sync, each renamed under a free name (never
  over a landed file), then their receipts. The transfer jobs land what they
  fetch so, since a sync per file would cap them at a few hundred files a
  second.

`abort()` removes the temporary file, so a dropped connection leaves nothing
behind. What a partner may upload is decided before, by the listeners' rules
(listeners/core/rules.py).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.landing.area import LandingArea
from connectors.landing.durable import hash_file
from connectors.landing.names import INTERNAL_DIR
from connectors.landing.receipts import Receipt

if TYPE_CHECKING:
    # Only the type: the transfer jobs receive through this module and must
    # not pay for importing the API models (pydantic) at every run.
    from connectors.api.accounts import Account

_HASH_CHUNK = 1 << 20

# Written data is hashed and written back to disk in the background every
# FLUSH_EVERY bytes, so that the fsync before landing has little left to do:
# without it a 1 GiB upload ends with seconds of fsync (the page cache holds it
# all), which the client waits for.
FLUSH_EVERY = 32 * 1024 * 1024
_FLUSHER = ThreadPoolExecutor(max_workers=4, thread_name_prefix="landing-flush")

# Every file being received in this process, so that a shutdown can remove
# what its sessions did not: a pod told to stop has seconds, and the threads
# that would abort a dropped upload are daemons that die with the process.
_RECEIVING: set[LandingFile] = set()
_RECEIVING_LOCK = threading.Lock()

# Told, for each file landed alone (commit: the listeners), the seconds from
# the end of its data (its first sync) to its landing: the listener's landing
# latency metric (listeners/main.py sets it; None: nobody asks).
landing_observer: Callable[[float], None] | None = None


def landing_area(data_root: Path, account: Account) -> LandingArea:
    """The account's landing area. Its home comes from the account table, which
    may differ from the Connection's name; the receipt names the Connection."""
    area = LandingArea(data_root, account.connection)
    area.home = data_root / account.home
    area.internal = area.home / INTERNAL_DIR
    return area


@dataclass(frozen=True)
class Received:
    """A file received in full, not yet landed: its temporary file, closed."""

    name: str
    temp: str
    size: int
    sha256: str


class LandingFile:
    """One file being received.

    The receiving thread only writes. Every FLUSH_EVERY bytes a worker thread
    hashes the new range (read back from the page cache) and starts its
    writeback, so the SHA-256 for the receipt and the disk writes both run
    beside the receiving loop instead of inside it (hashlib releases the GIL).

    With `gather_bytes`, writes in order are gathered in memory and written
    and hashed that many bytes at a time. A transfer job downloads in a busy
    paramiko transport's shadow: every write or hash releases the GIL, and
    getting it back can take a whole switch interval, so one release per
    64 KiB block cost more than half the throughput of a large download. The
    listeners write through (a buffer per upload would multiply by their
    sessions in a pod with a memory limit).
    """

    def __init__(self, area: LandingArea, name: str, *, gather_bytes: int = 0,
                 mode: int = 0o640) -> None:
        self.area = area
        self.name = name
        # A string: a transfer job makes thousands, and pathlib's parsing of
        # each cost more than the rest of its bookkeeping.
        self.temp_str = area.temp_name(name)
        # Read access too: the worker reads written ranges back to hash them.
        self._fd: int | None = os.open(
            self.temp_str, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, mode
        )
        with _RECEIVING_LOCK:
            _RECEIVING.add(self)
        self._digest = hashlib.sha256()
        self._hashed_to = 0
        self._written_to = 0
        # Clients may write out of order (SFTP is offset-based); the digest is
        # then computed again from the file at commit.
        self._in_order = True
        self.size = 0
        self._unflushed = 0
        self._flushed_to = 0
        self._flushing: Future[None] | None = None
        self._gather_bytes = gather_bytes
        self._gathered = bytearray()
        # When the data ended: the first sync (monotonic seconds).
        self._data_ended: float | None = None

    @property
    def temp(self) -> Path:
        """The temporary file: a hidden name in the folder of the final one."""
        return Path(self.temp_str)

    @property
    def closed(self) -> bool:
        return self._fd is None

    def write(self, data: bytes | memoryview) -> int:
        """Appends (FTP, email, a transfer job's download)."""
        end = self._written_to + len(self._gathered)
        return self.pwrite(end if self._in_order else self.size, data)

    def pwrite(self, offset: int, data: bytes | memoryview) -> int:
        """Writes at an offset (SFTP)."""
        if self._fd is None:
            raise ValueError("file already closed")
        if self._gather_bytes and self._in_order and (
                offset == self._written_to + len(self._gathered)):
            # Copied: a caller may pass a view of a buffer it reuses.
            self._gathered += data
            self.size = max(self.size, offset + len(data))
            if len(self._gathered) >= self._gather_bytes:
                self._write_gathered()
            return len(data)
        self._write_gathered()
        return self._pwrite(self._fd, offset, data)

    def _pwrite(self, fd: int, offset: int, data: bytes | bytearray | memoryview) -> int:
        view = memoryview(data)
        written = 0
        while written < len(view):
            written += os.pwrite(fd, view[written:], offset + written)
        if offset == self._written_to:
            self._written_to += written
        else:
            self._in_order = False
        self.size = max(self.size, offset + written)
        self._unflushed += written
        if self._unflushed >= FLUSH_EVERY and (self._flushing is None or self._flushing.done()):
            self._unflushed = 0
            self._flushing = _FLUSHER.submit(self._hash_and_flush, fd, self._written_to)
        return written

    def _write_gathered(self) -> None:
        """Writes what was gathered, hashing it on the way while no worker is
        hashing (the worker then finds it hashed and only starts writeback)."""
        if not self._gathered or self._fd is None:
            return
        block = self._gathered
        self._gathered = bytearray()
        if self._hashed_to == self._written_to and (
                self._flushing is None or self._flushing.done()):
            self._digest.update(block)
            self._hashed_to += len(block)
        self._pwrite(self._fd, self._written_to, block)

    def _hash_and_flush(self, fd: int, end: int) -> None:
        """Worker: hashes up to `end`, then starts writeback. One at a time per file."""
        start = self._flushed_to
        if self._in_order:
            self._hash_range(fd, end)
        # Starts writeback of the range without waiting for it (on Linux,
        # DONTNEED writes dirty pages back asynchronously, then drops the clean
        # ones: a 1 GiB upload does not crowd the page cache). Unlike fdatasync
        # it costs no journal commit or disk cache flush per range; the one
        # fsync before landing provides the guarantee.
        os.posix_fadvise(fd, start, end - start, os.POSIX_FADV_DONTNEED)
        self._flushed_to = end

    def _hash_range(self, fd: int, end: int) -> None:
        position = self._hashed_to
        while position < end:
            block = os.pread(fd, min(_HASH_CHUNK, end - position), position)
            if not block:
                break
            self._digest.update(block)
            position += len(block)
        self._hashed_to = position

    def _wait_for_flush(self) -> None:
        if self._flushing is not None:
            try:
                self._flushing.result()
            finally:
                self._flushing = None

    def _settle(self) -> None:
        """Everything written and hashed; the worker idle."""
        if self._fd is None:
            raise ValueError("file already closed")
        if self._data_ended is None:
            self._data_ended = time.monotonic()
        self._write_gathered()
        self._wait_for_flush()
        if self._in_order:
            self._hash_range(self._fd, self._written_to)

    def sync(self) -> None:
        """Puts the written data on disk (safe from any thread; commit() calls it too)."""
        self._settle()
        assert self._fd is not None
        os.fsync(self._fd)

    def sync_in_background(self) -> Future[None]:
        """sync() on a worker thread, for servers whose loop must not block."""
        return _FLUSHER.submit(self.sync)

    def commit(self) -> Receipt:
        """Lands the file alone under its real name and writes its receipt."""
        if self._fd is None:
            raise ValueError("file already closed")
        try:
            self.sync()
        finally:
            self._close()
        try:
            digest = self._digest.hexdigest() if self._in_order else hash_file(self.temp)
            size = self.temp.stat().st_size
        except BaseException:
            self.temp.unlink(missing_ok=True)
            raise
        # land() fsyncs again through its own handle; the data is already on
        # disk, so the second fsync is cheap.
        receipt = self.area.land(self.temp, self.name, size, digest)
        observer = landing_observer
        if observer is not None and self._data_ended is not None:
            observer(time.monotonic() - self._data_ended)
        return receipt

    def finish(self, mtime: float | None = None) -> Received:
        """Closes the file, written and hashed but not synced, for a batch to
        land (landing.batch.land_many); `mtime` stamps it (a transfer job
        stamps the remote file's, to recognise a landed file after a crash).
        On failure nothing is left behind."""
        try:
            self._settle()
            assert self._fd is not None
            if mtime is not None:
                os.utime(self._fd, (mtime, mtime))
            digest = self._digest.hexdigest() if self._in_order else hash_file(self.temp_str)
            self._close()
        except BaseException:
            self.abort()
            raise
        return Received(self.name, self.temp_str, self.size, digest)

    def _close(self) -> None:
        """Closes the descriptor once: a second close could hit a descriptor
        another thread has opened since under the same number."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)
        _forget(self)

    def abort(self) -> None:
        """Removes the temporary file: nothing becomes visible."""
        self._gathered = bytearray()
        if self._fd is not None:
            # The descriptor must outlive a background flush that still uses it.
            with contextlib.suppress(OSError):
                self._wait_for_flush()
            with contextlib.suppress(OSError):
                self._close()
        _forget(self)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.temp_str)


def _forget(landing: LandingFile) -> None:
    with _RECEIVING_LOCK:
        _RECEIVING.discard(landing)


def receiving() -> int:
    """How many files this process is receiving now."""
    with _RECEIVING_LOCK:
        return len(_RECEIVING)


def discard_unfinished(wait_seconds: float) -> int:
    """At shutdown, after the connections were closed: waits up to
    `wait_seconds` for their sessions to abort their uploads, then removes the
    temporary files of those still open; returns how many it removed.

    Only the name is removed, never a descriptor closed under a writer: a
    session that still tries to land the file finds its temporary gone and
    lands nothing."""
    deadline = time.monotonic() + wait_seconds
    while receiving() and time.monotonic() < deadline:
        time.sleep(0.05)
    with _RECEIVING_LOCK:
        left = list(_RECEIVING)
        _RECEIVING.clear()
    for landing in left:
        landing.temp.unlink(missing_ok=True)
    return len(left)
