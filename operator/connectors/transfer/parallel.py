"""SFTP downloads spread over several processes, each with its own SSH
connection.

paramiko does its packet work in Python under one GIL: one connection tops out
near one core, whatever the number of channels. Processes lift that limit:
the files of a run are spread over a few shards, and a large file is cut into
byte ranges fetched by different shards into the same temporary file. The
parent process only lands: when every range of a file has arrived, it checks
the byte count, hashes the file and hands it to the batch committer, exactly
as the in-process path does.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .clients.base import FileError, PermanentError, RemoteFile, TransferError, TransientError
from .clients.sftp import SftpClient, SftpSettings
from .inbound import (
    BATCH_BYTES,
    BATCH_FILES,
    BATCH_WAIT,
    Downloaded,
    hash_file,
    land_batch,
    work_lane,
)
from .landing import LandingArea
from .ledger import Ledger
from .summary import Summary

log = logging.getLogger("connectors.transfer")

# Files at least this large are cut into one range per process.
SPLIT_SIZE = 64 << 20
# Starting a process and its connection costs around a second: worth it only
# for a run with much to fetch.
WORTHWHILE_BYTES = 64 << 20
WORTHWHILE_FILES = 200


def worthwhile(files: list[RemoteFile], processes: int) -> bool:
    return processes > 1 and (
        sum(f.size for f in files) >= WORTHWHILE_BYTES or len(files) >= WORTHWHILE_FILES
    )


@dataclass(frozen=True)
class Unit:
    """A byte range [start, end) of a remote file, written at the same offsets
    into `temp`."""

    index: int
    name: str
    start: int
    end: int
    temp: str


def make_units(files: list[RemoteFile], temps: dict[str, Path], shards: int) -> list[list[Unit]]:
    """Pure: assigns ranges to shards, balancing bytes. A large file gives one
    range to each shard; small files go whole to the least loaded shard."""
    plan: list[list[Unit]] = [[] for _ in range(shards)]
    load = [0] * shards
    index = 0
    for file in sorted(files, key=lambda f: -f.size):
        temp = str(temps[file.name])
        if file.size >= SPLIT_SIZE and shards > 1:
            step = -(-file.size // shards)
            for shard in range(shards):
                start, end = shard * step, min(file.size, (shard + 1) * step)
                if start < end:
                    plan[shard].append(Unit(index, file.name, start, end, temp))
                    load[shard] += end - start
                    index += 1
            continue
        shard = load.index(min(load))
        plan[shard].append(Unit(index, file.name, 0, file.size, temp))
        load[shard] += max(file.size, 4096)  # a small file still costs round trips
        index += 1
    return plan


def shard_main(settings: SftpSettings, units: list[Unit], results: Any) -> None:
    """Runs in a child process: one connection, `settings.parallelism` lanes."""
    import sys

    sys.setswitchinterval(0.05)  # as in job.run, for the transport thread
    try:
        client = SftpClient(settings)
    except TransferError as exc:
        results.put(("fatal", isinstance(exc, TransientError), str(exc)))
        results.put(("done",))
        return
    todo: queue.SimpleQueue[Unit] = queue.SimpleQueue()
    for unit in units:
        todo.put(unit)
    stop = threading.Event()

    def fetch(worker: Any, unit: Unit) -> None:
        worker.fetch_range(unit.name, unit.start, unit.end, Path(unit.temp))
        results.put(("unit", unit.index))

    def lane() -> None:
        try:
            work_lane(client.worker(), todo, stop, fetch,
                      lambda unit, exc: results.put(("file-error", unit.index, str(exc))))
        except TransferError as exc:
            stop.set()
            results.put(("fatal", isinstance(exc, TransientError), str(exc)))
        except Exception as exc:
            stop.set()
            results.put(("fatal", True, f"{type(exc).__name__}: {exc}"))

    threads = [
        threading.Thread(target=lane, daemon=True)
        for _ in range(max(1, min(settings.parallelism, len(units))))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    results.put(("done",))


@dataclass
class _Progress:
    file: RemoteFile
    temp: Path
    units_left: int
    failed: bool = False


@contextlib.contextmanager
def _processes(settings: SftpSettings, shards: list[list[Unit]]) -> Iterator[tuple[Any, list[Any]]]:
    # spawn, not fork: the parent already runs paramiko threads, and forking a
    # threaded process can copy a held lock.
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    processes = [
        context.Process(target=shard_main, args=(settings, units, results), daemon=True)
        for units in shards
        if units
    ]
    for process in processes:
        process.start()
    try:
        yield results, processes
    finally:
        for process in processes:
            if process.is_alive():
                process.terminate()
        for process in processes:
            process.join(30)


def fetch_parallel(
    client: SftpClient,
    files: list[RemoteFile],
    processes: int,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> list[RemoteFile]:
    """Same contract as inbound.fetch_all, with `processes` connections."""
    temps = {file.name: landing.temp_path(file.name) for file in files}
    for temp in temps.values():
        temp.touch(mode=0o640)
    shards = make_units(files, temps, processes)
    units = {unit.index: unit for shard in shards for unit in shard}
    progress = {
        file.name: _Progress(
            file, temps[file.name], sum(1 for u in units.values() if u.name == file.name)
        )
        for file in files
    }
    landed: list[RemoteFile] = []
    batch: list[Downloaded] = []
    fatal: tuple[bool, str] | None = None
    try:
        with _processes(client.settings, shards) as (results, children):
            running = len(children)
            while running:
                try:
                    message = results.get(timeout=BATCH_WAIT)
                except queue.Empty:
                    message = None
                    if not any(child.is_alive() for child in children):
                        fatal = fatal or (True, "a transfer process ended unexpectedly")
                        break
                if message is not None:
                    kind = message[0]
                    if kind == "done":
                        running -= 1
                    elif kind == "fatal":
                        fatal = fatal or (bool(message[1]), str(message[2]))
                    else:
                        item = progress[units[message[1]].name]
                        if kind == "file-error" and not item.failed:
                            item.failed = True
                            summary.fail(str(message[2]))
                            log.warning("%s", message[2])
                        item.units_left -= 1
                        if item.units_left == 0 and not item.failed:
                            try:
                                batch.append(_finish(item))
                            except FileError as exc:
                                summary.fail(str(exc))
                                log.warning("%s", exc)
                full = len(batch) >= BATCH_FILES or sum(d.file.size for d in batch) >= BATCH_BYTES
                if batch and (message is None or full or not running):
                    land_batch(batch, landing, ledger, summary)
                    landed.extend(d.file for d in batch)
                    batch = []
            if batch:
                land_batch(batch, landing, ledger, summary)
                landed.extend(d.file for d in batch)
                batch = []
    finally:
        # Whatever did not land (failed, cut off) must not stay half-written.
        for item in progress.values():
            item.temp.unlink(missing_ok=True)
    if fatal is not None:
        retryable, text = fatal
        raise TransientError(text) if retryable else PermanentError(text)
    return landed


def _finish(item: _Progress) -> Downloaded:
    """All ranges arrived; each range checked its own byte count, so the size
    is right unless the server listed a size the file no longer has."""
    started = time.monotonic()
    size = item.temp.stat().st_size
    if size != item.file.size:
        raise FileError(
            f"{item.file.name}: {size} bytes arrived, the server listed {item.file.size}"
        )
    os.utime(item.temp, (item.file.mtime, item.file.mtime))
    downloaded = Downloaded(item.file, item.temp, hash_file(item.temp))
    log.debug("hashed %s in %.2f s", item.file.name, time.monotonic() - started)
    return downloaded
