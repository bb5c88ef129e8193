"""Inbound Pull of files (SFTP, FTP): download, verify, land, record.

One download thread fetches files to temporary names in the landing area and
checks their size: SFTP with many files in flight on one session, FTP one
file after the other. The committer, in the calling thread, lands what has
arrived in batches: one sync of the data, the renames, one fsync of the
folder, one ledger write, the receipts. A file is recorded only after it is
durable under its final name, and a crash in between is recovered from the
remote mtime stamped on the landed file.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import functools
import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .clients.base import (
    FileError,
    PipelinedWorker,
    PullClient,
    RemoteFile,
    Sink,
    StreamingWorker,
    TransferError,
)
from .landing import LandingArea, prepare_receipts, publish, sync_files
from .ledger import FETCHED, Entry, Ledger
from .plan import plan_pull
from .spec import TransferSpec
from .summary import Summary

log = logging.getLogger("connectors.transfer")

# A batch lands when it holds this many files or bytes, every BATCH_AGE
# seconds, and when the downloads are over. Each landing costs a few journal
# commits, so batches are large; a crash loses at most one batch of
# downloads, fetched again on the next run. On a journaled ext4, batches of
# 250, 500 and 2,048 files took the same time for 1,000 small files (medians
# of 8 runs, 0.94-0.96 s); an earlier measurement that favoured large batches
# was taken on a filesystem without a journal, where file creation slowed
# down after deletions (see bench/transfer.py).
BATCH_FILES = 2048
BATCH_BYTES = 256 << 20
BATCH_AGE = 1.0


class HashingWriter:
    """Counts and hashes bytes on their way to a file descriptor.

    Blocks are gathered and written and hashed a few MiB at a time: both calls
    release the GIL, and getting it back from paramiko's busy transport thread
    can take a whole switch interval, so one release per 64 KiB block cost more
    than half the throughput of a large download.
    """

    FLUSH_AT = 4 << 20
    # Past this many unsynced bytes, a background thread fdatasyncs the file,
    # so that the fsync before landing a large file finds little left to write
    # instead of the whole file (seconds per GiB) after the download.
    SYNC_EVERY = 64 << 20

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.size = 0
        self.digest = hashlib.sha256()
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._unsynced = 0
        self._syncer: threading.Thread | None = None

    def write(self, data: bytes | memoryview) -> int:
        self._pending.append(data)
        self._pending_size += len(data)
        self.size += len(data)
        if self._pending_size >= self.FLUSH_AT:
            self.flush()
        return len(data)

    def flush(self) -> None:
        if not self._pending:
            return
        block = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending = []
        self._pending_size = 0
        view = memoryview(block)
        while view:
            view = view[os.write(self.fd, view) :]
        self.digest.update(block)
        self._unsynced += len(block)
        if self._unsynced >= self.SYNC_EVERY and not (self._syncer and self._syncer.is_alive()):
            self._unsynced = 0
            self._syncer = threading.Thread(
                target=_datasync_quietly, args=(self.fd,), daemon=True
            )
            self._syncer.start()

    def finish(self) -> None:
        """Writes what is pending and waits for a background sync, before the
        file is closed."""
        self.flush()
        if self._syncer is not None:
            self._syncer.join()


def _datasync_quietly(fd: int) -> None:
    # Only an early start: the landing step fsyncs again and reports errors.
    with contextlib.suppress(OSError):
        os.fdatasync(fd)


def remove(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def hash_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass(frozen=True)
class Downloaded:
    file: RemoteFile
    temp: str
    sha256: str


class Arrival:
    """One file on its way in: a temporary file in the landing area, its bytes
    counted and hashed as they come. It ends as `complete()` (a Downloaded,
    size checked, stamped with the remote mtime, which makes a landed but
    unrecorded file recognisable after a crash) or `discard()` (nothing left)."""

    def __init__(self, file: RemoteFile, landing: LandingArea) -> None:
        self.file = file
        self.temp = landing.temp_name(file.name)
        self._fd = os.open(self.temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self._writer = HashingWriter(self._fd)

    def write(self, data: bytes | memoryview) -> int:
        return self._writer.write(data)

    def complete(self) -> Downloaded:
        try:
            self._writer.finish()
            if self._writer.size != self.file.size:
                raise FileError(
                    f"{self.file.name}: received {self._writer.size} bytes, the server listed "
                    f"{self.file.size} (still being written?); it will be fetched again on "
                    "the next run"
                )
            os.utime(self._fd, (self.file.mtime, self.file.mtime))
            self._close()
        except BaseException:
            self.discard()
            raise
        return Downloaded(self.file, self.temp, self._writer.digest.hexdigest())

    def discard(self) -> None:
        if self._fd >= 0:
            with contextlib.suppress(OSError):
                self._writer.finish()
        with contextlib.suppress(OSError):
            self._close()
        remove(self.temp)

    def _close(self) -> None:
        """Closes the descriptor once: a second close could hit a descriptor
        another thread has opened since under the same number."""
        fd, self._fd = self._fd, -1
        if fd >= 0:
            os.close(fd)


def download(worker: StreamingWorker, file: RemoteFile, landing: LandingArea) -> Downloaded:
    arrival = Arrival(file, landing)
    try:
        worker.fetch(file, arrival)
    except BaseException:
        arrival.discard()
        raise
    return arrival.complete()


def land_batch(
    batch: list[Downloaded], landing: LandingArea, ledger: Ledger, summary: Summary
) -> None:
    if not batch:
        return
    started = time.monotonic()
    files = [(d.temp, landing.final_name(d.file.name)) for d in batch]
    receipts: list[tuple[str, str]] = []
    try:
        receipts = prepare_receipts(landing, [(d.file.name, d.file.size, d.sha256) for d in batch])
        # One wave of fsyncs for files and receipts alike.
        sync_files([temp for temp, _ in files + receipts])
        publish(files)
    except BaseException:
        for temp, _ in files + receipts:
            remove(temp)
        raise
    ledger.record_many(
        [Entry(FETCHED, d.file.name, d.file.size, d.file.mtime, d.sha256) for d in batch]
    )
    # Receipts appear only once the files are recorded.
    publish(receipts)
    for item in batch:
        summary.transferred(item.file.size)
    # One line per batch: a line per file cost a tenth of a second per
    # thousand files, and the ledger and receipts name every file anyway.
    log.info(
        "landed %d files (%d bytes) in %.2f s: %s",
        len(batch),
        sum(d.file.size for d in batch),
        time.monotonic() - started,
        name_some([d.file.name for d in batch]),
    )


def name_some(names: list[str], most: int = 5) -> str:
    """At most `most` names, then how many more."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def recover(file: RemoteFile, landing: LandingArea, ledger: Ledger, summary: Summary) -> None:
    """The previous run landed this file and died before recording it."""
    sha = hash_file(landing.home / file.name)
    ledger.record(Entry(FETCHED, file.name, file.size, file.mtime, sha, note="recovered"))
    landing.write_receipt(file.name, file.size, sha)
    summary.transferred(0)
    log.info("recorded %s, landed by an earlier run", file.name)


def landed_stats(landing: LandingArea) -> dict[str, tuple[int, int]]:
    stats = {}
    for path in landing.landed_files():
        st = path.stat()
        stats[path.name] = (st.st_size, int(st.st_mtime))
    return stats


def per_file(summary: Summary, action: Callable[[], None]) -> None:
    """A file error is counted and the run goes on; anything else stops it."""
    try:
        action()
    except FileError as exc:
        summary.fail(str(exc))
        log.warning("%s", exc)


def pull(
    client: PullClient,
    spec: TransferSpec,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> None:
    delete_after = spec.remote.delete_after_transfer
    plan = plan_pull(
        client.list_files(), ledger.has, spec.filename_pattern, landed_stats(landing), delete_after
    )
    summary.skip(plan.skipped)
    for file in plan.recover:
        recover(file, landing, ledger, summary)
    landed: list[RemoteFile] = []
    if plan.fetch:
        landed = fetch_all(client, list(plan.fetch), landing, ledger, summary)
    if delete_after:
        # Only what is recorded: a crash before this point leaves the files on
        # the remote, and the next run's plan deletes them.
        with client.worker() as worker:
            for file in (*plan.delete, *plan.recover, *landed):
                per_file(summary, functools.partial(worker.delete, file))


class Arrived:
    """Downloaded files on their way from the download thread to the
    committer. The committer is woken only when a batch is full or the
    downloads are over, not for every file: each wake-up is a hand-over of
    the GIL, and a thousand of them showed in a run of small files."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Downloaded] = []
        self._bytes = 0
        self._due = threading.Event()
        self._closed = False

    def put(self, item: Downloaded) -> None:
        with self._lock:
            self._items.append(item)
            self._bytes += item.file.size
            if len(self._items) >= BATCH_FILES or self._bytes >= BATCH_BYTES:
                self._due.set()

    def close(self) -> None:
        """No more files will come."""
        with self._lock:
            self._closed = True
            self._due.set()

    def take(self, timeout: float) -> tuple[list[Downloaded], bool]:
        """Waits until a batch is due or `timeout` passed; returns what has
        arrived, and whether that is the last of it."""
        self._due.wait(timeout)
        with self._lock:
            items, self._items, self._bytes = self._items, [], 0
            if not self._closed:
                self._due.clear()
            return items, self._closed


def fetch_all(
    client: PullClient,
    files: list[RemoteFile],
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> list[RemoteFile]:
    """Downloads in one thread and lands in batches in this one; returns the
    files landed. On a connection failure the files already downloaded are
    still landed, then the failure propagates (the job retries with a new
    connection)."""
    arrived = Arrived()
    stop = threading.Event()

    def file_failed(file: RemoteFile, exc: FileError) -> None:
        summary.fail(str(exc))
        log.warning("%s", exc)

    def pending() -> Iterator[RemoteFile]:
        for file in files:
            if stop.is_set():
                return
            yield file

    def downloads() -> None:
        try:
            with client.worker() as worker:
                if isinstance(worker, PipelinedWorker):
                    fetch_pipelined(worker, pending(), landing, arrived.put, file_failed, stop)
                else:
                    assert isinstance(worker, StreamingWorker)
                    for file in pending():
                        try:
                            arrived.put(download(worker, file, landing))
                        except FileError as exc:
                            file_failed(file, exc)
        except BaseException:
            stop.set()
            raise
        finally:
            arrived.close()

    landed: list[RemoteFile] = []
    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="download") as pool:
        future = pool.submit(downloads)
        last = False
        batch: list[Downloaded] = []
        try:
            while not last:
                batch, last = arrived.take(BATCH_AGE)
                if batch:
                    land_batch(batch, landing, ledger, summary)
                    landed.extend(d.file for d in batch)
        except BaseException:
            stop.set()
            for leftover in batch:
                remove(leftover.temp)
            raise
    error = future.exception()
    if error is not None:
        raise error
    return landed


def fetch_pipelined(
    worker: PipelinedWorker,
    files: Iterator[RemoteFile],
    landing: LandingArea,
    arrived: Callable[[Downloaded], None],
    file_failed: Callable[[RemoteFile, FileError], None],
    stop: threading.Event,
) -> None:
    """Many files in flight at once; each arrives or fails on its own."""

    def finish(file: RemoteFile, sink: Sink, error: TransferError | None) -> None:
        assert isinstance(sink, Arrival)
        if error is not None:
            sink.discard()
            if isinstance(error, FileError):
                file_failed(file, error)
            return
        try:
            arrived(sink.complete())
        except FileError as exc:
            file_failed(file, exc)

    worker.fetch_many(files, lambda file: Arrival(file, landing), finish, stop.is_set)
