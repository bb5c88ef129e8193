"""Inbound Pull of files (SFTP, FTP): download, verify, land, record.

One download thread fetches files to temporary names in the landing area and
checks their size: SFTP with many files in flight on one session, FTP one
file after the other. The committer, in the calling thread, lands what has
arrived in batches: one sync of the data, the renames, one fsync of the
folder, one ledger write, the receipts. A file is recorded only after it is
durable under its final name, and a crash in between is recovered from the
remote mtime stamped on the landed file.

A landed file is never overwritten. The ledger fetches each version of a
remote file once (name, size, mtime); a new version of a name that already
landed, or a name whose spot is taken, lands beside it under the next free
name, `stem-2.ext`, `stem-3.ext`..., and its receipt names the remote file
in `source`. A file that cannot land at all (a name too long for its
receipt) is reported as failed and fetched again next run; the others of its
batch land.
"""

from __future__ import annotations

import concurrent.futures
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator

from ..landing.area import LandingArea
from ..landing.batch import land_many, publish_receipts
from ..landing.durable import hash_file, remove
from ..landing.names import name_variants, receipt_name
from ..landing.receive import Received
from .clients.base import (
    FileError,
    PipelinedWorker,
    PullClient,
    RemoteFile,
    StreamingWorker,
    Unreadable,
)
from .fetch import BATCH_AGE, Arrived, Downloaded, download, fetch_pipelined
from .ledger import FETCHED, Entry, Ledger
from .plan import plan_pull, wanted
from .spec import TransferSpec
from .summary import Summary

log = logging.getLogger("connectors.transfer")


def land_batch(
    batch: list[Downloaded],
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
    source: Callable[[RemoteFile], str] = lambda file: file.name,
) -> list[RemoteFile]:
    """Lands what is in `batch` (landing.batch.land_many), each file on its
    own: one that cannot land is reported and the others go on. Returns the
    files landed."""
    if not batch:
        return []
    started = time.monotonic()
    by_temp = {item.temp: item for item in batch}

    def cannot_land(received: Received, why: str) -> None:
        message = f"{why}; it will be fetched again on the next run"
        summary.fail(message)
        log.warning("%s", message)

    landed = land_many(landing, [(item.received, source(item.file)) for item in batch],
                       cannot_land)
    if not landed:
        return []
    # Receipts before the ledger: a run killed in between leaves landed files
    # with receipts that the ledger lacks, which the next run recognises and
    # records (recover). The other order left files that no run would give a
    # receipt: the temporaries were swept, and the ledger said they were done.
    publish_receipts(landing, landed)
    files = [(by_temp[item.received.temp].file, item) for item in landed]
    ledger.record_many(
        [
            Entry(
                FETCHED,
                file.name,
                file.size,
                file.mtime,
                item.received.sha256,
                note="" if item.name == file.name else f"landed as {item.name}",
            )
            for file, item in files
        ]
    )
    for file, _ in files:
        summary.transferred(file.size)
    # One line per batch: a line per file cost a tenth of a second per
    # thousand files, and the ledger and receipts name every file anyway.
    log.info(
        "landed %d files (%d bytes) in %.2f s: %s",
        len(landed),
        sum(file.size for file, _ in files),
        time.monotonic() - started,
        name_some([item.name for item in landed]),
    )
    return [file for file, _ in files]


def name_some(names: list[str], most: int = 5) -> str:
    """At most `most` names, then how many more."""
    shown = ", ".join(names[:most])
    return shown if len(names) <= most else f"{shown} and {len(names) - most} more"


def recover(
    file: RemoteFile, landed_as: str, landing: LandingArea, ledger: Ledger, summary: Summary
) -> None:
    """The previous run landed this file (as `landed_as`) and died before
    recording it."""
    sha = hash_file(landing.home / landed_as)
    note = "recovered" if landed_as == file.name else f"recovered, landed as {landed_as}"
    if not (landing.home / receipt_name(landed_as)).exists():
        landing.write_receipt(landed_as, file.size, sha)
    ledger.record(Entry(FETCHED, file.name, file.size, file.mtime, sha, note=note))
    summary.transferred(file.size)
    log.info("recorded %s, landed by an earlier run as %s", file.name, landed_as)


def landed_stats(landing: LandingArea) -> dict[str, tuple[int, int]]:
    stats = {}
    for path in landing.landed_files():
        st = path.stat()
        stats[path.name] = (st.st_size, int(st.st_mtime))
    return stats


def landed_variant(
    file: RemoteFile, stats: dict[str, tuple[int, int]]
) -> str | None:
    """A landed `stem-N.ext` of this remote file with its size and remote mtime:
    a new version that landed beside an older one, unrecorded."""
    for number, candidate in enumerate(name_variants(file.name)):
        if number == 0:
            continue
        if candidate not in stats:
            return None
        if stats[candidate] == (file.size, file.mtime):
            return candidate
    return None


def per_file(summary: Summary, action: Callable[[], None]) -> None:
    """A file error is counted and the run goes on; anything else stops it."""
    try:
        action()
    except FileError as exc:
        summary.fail(str(exc))
        log.warning("%s", exc)


def report_unreadable(
    entries: list[Unreadable], pattern: str | None, summary: Summary
) -> None:
    """Listing entries the job cannot use: failures when they look like the
    Connection's files (so the run says so and the partner can fix them),
    skipped otherwise."""
    for entry in entries:
        if wanted(entry.name, pattern):
            message = f"{entry.name}: {entry.reason}"
            summary.fail(message)
            log.warning("%s", message)
        else:
            summary.skip()


def pull(
    client: PullClient,
    spec: TransferSpec,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> None:
    delete_after = spec.remote.delete_after_transfer
    listing = client.list_files()
    report_unreadable(listing.unreadable, spec.filename_pattern, summary)
    stats = landed_stats(landing)
    plan = plan_pull(listing.files, ledger.has, spec.filename_pattern, stats, delete_after)
    summary.skip(plan.skipped)
    recovered: list[RemoteFile] = []
    for file in plan.recover:
        recover(file, file.name, landing, ledger, summary)
        recovered.append(file)
    fetch: list[RemoteFile] = []
    for file in plan.fetch:
        variant = landed_variant(file, stats)
        if variant is None:
            fetch.append(file)
        else:
            recover(file, variant, landing, ledger, summary)
            recovered.append(file)
    folder = (spec.remote.folder or "/").rstrip("/")
    method = spec.method.lower()
    host = f"{spec.remote.host}:{spec.port}"

    def source(file: RemoteFile) -> str:
        return f"{method}://{host}{folder}/{file.name}"

    landed: list[RemoteFile] = []
    if fetch:
        landed = fetch_all(client, fetch, landing, ledger, summary, source)
    if delete_after:
        # Only what is recorded: a crash before this point leaves the files on
        # the remote, and the next run's plan deletes them.
        with client.worker() as worker:
            for file in (*plan.delete, *recovered, *landed):
                per_file(summary, functools.partial(worker.delete, file))


def fetch_all(
    client: PullClient,
    files: list[RemoteFile],
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
    source: Callable[[RemoteFile], str] = lambda file: file.name,
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
                    landed.extend(land_batch(batch, landing, ledger, summary, source))
        except BaseException:
            stop.set()
            for leftover in batch:
                remove(leftover.temp)
            raise
    error = future.exception()
    if error is not None:
        raise error
    return landed
