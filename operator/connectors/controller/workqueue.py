"""A level-based work queue, the shape controller-runtime uses.

kopf's event handlers only say "this key may need work"; the queue coalesces
repeated keys, never runs one key twice at once, retries failures with
exponential backoff, and the periodic resync re-adds every key, so drift
(a child deleted by hand, a missed event) is repaired whatever caused it.

Each queue is measured under its `kind` (connectors/metrics/operator.py): its
depth, its retries, and each reconcile's result and duration.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

from ..metrics import operator as metrics

log = logging.getLogger(__name__)

K = TypeVar("K", bound=Hashable)


class WorkQueue(Generic[K]):
    def __init__(self, name: str, work: Callable[[K], Awaitable[None]], workers: int = 8,
                 base_delay: float = 0.5, max_delay: float = 300.0,
                 kind: str | None = None) -> None:
        self.name = name
        self.kind = kind or name
        self._work = work
        self._workers = workers
        self._base_delay = base_delay
        self._max_delay = max_delay
        self._queue: asyncio.Queue[K] = asyncio.Queue()
        self._queued: set[K] = set()
        self._running: set[K] = set()
        self._dirty: set[K] = set()  # re-added while running: run once more afterwards
        self._failures: dict[K, int] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self.processed = 0

    @property
    def depth(self) -> int:
        """Keys waiting: queued, or to run again once their running reconcile ends."""
        return len(self._queued) + len(self._dirty)

    def start(self) -> None:
        metrics.queue_depth(self.kind, lambda: self.depth)
        self._tasks = [asyncio.create_task(self._worker()) for _ in range(self._workers)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def add(self, key: K) -> None:
        if key in self._running:
            self._dirty.add(key)
        elif key not in self._queued:
            self._queued.add(key)
            self._queue.put_nowait(key)

    def add_after(self, key: K, delay: float) -> None:
        asyncio.get_running_loop().call_later(delay, self.add, key)

    async def _worker(self) -> None:
        while True:
            key = await self._queue.get()
            self._queued.discard(key)
            self._running.add(key)
            started = time.monotonic()
            try:
                await self._work(key)
            except asyncio.CancelledError:
                raise
            except Exception as error:
                metrics.reconciled(self.kind, time.monotonic() - started, ok=False)
                metrics.retried(self.kind)
                failures = self._failures.get(key, 0) + 1
                self._failures[key] = failures
                delay = min(self._max_delay, self._base_delay * 2 ** (failures - 1))
                delay *= random.uniform(0.8, 1.2)  # noqa: S311 - jitter, not security
                log.warning("%s %s failed (attempt %d), retrying in %.1fs: %s",
                            self.name, key, failures, delay, _describe(error))
                self.add_after(key, delay)
            else:
                metrics.reconciled(self.kind, time.monotonic() - started, ok=True)
                self._failures.pop(key, None)
                self.processed += 1
            finally:
                self._running.discard(key)
                if key in self._dirty:
                    self._dirty.discard(key)
                    self.add(key)


def _describe(error: Exception) -> str:
    """A one-line reason. API errors carry their HTTP status; no bodies, which may echo input."""
    status = getattr(error, "status", None)
    if status is not None:
        return f"{error.__class__.__name__} HTTP {status} {getattr(error, 'reason', '')}".strip()
    return f"{error.__class__.__name__}: {error}"
