"""Fetching for an Inbound Pull: each file arrives through the landing package's
receive path (an Arrival: a LandingFile, its size checked against the
listing), one after the other (FTP) or many in flight on one session (SFTP),
and waits with the others of its batch (Arrived) for the committer in pull.py."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from ..landing.area import LandingArea
from ..landing.receive import LandingFile, Received
from .clients.base import (
    FileError,
    PipelinedWorker,
    RemoteFile,
    Sink,
    StreamingWorker,
    TransferError,
)

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


# A download's writes are gathered and written and hashed this many bytes at a
# time (see LandingFile).
GATHER_BYTES = 4 << 20


@dataclass(frozen=True)
class Downloaded:
    file: RemoteFile
    received: Received

    @property
    def temp(self) -> str:
        return self.received.temp


class Arrival:
    """One file on its way in, through the landing package's receive path (a
    LandingFile). It ends as `complete()` (a Downloaded, size checked, stamped
    with the remote mtime, which makes a landed but unrecorded file
    recognisable after a crash) or `discard()` (nothing left)."""

    def __init__(self, file: RemoteFile, landing: LandingArea) -> None:
        self.file = file
        self._landing = LandingFile(landing, file.name, gather_bytes=GATHER_BYTES, mode=0o666)

    def write(self, data: bytes | memoryview) -> int:
        return self._landing.write(data)

    def complete(self) -> Downloaded:
        if self._landing.size != self.file.size:
            self._landing.abort()
            raise FileError(
                f"{self.file.name}: received {self._landing.size} bytes, the server listed "
                f"{self.file.size} (still being written?); it will be fetched again on "
                "the next run"
            )
        return Downloaded(self.file, self._landing.finish(mtime=self.file.mtime))

    def discard(self) -> None:
        self._landing.abort()


def download(worker: StreamingWorker, file: RemoteFile, landing: LandingArea) -> Downloaded:
    arrival = Arrival(file, landing)
    try:
        worker.fetch(file, arrival)
    except BaseException:
        arrival.discard()
        raise
    return arrival.complete()


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
