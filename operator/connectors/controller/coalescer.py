"""Coalescing bursts of requests for one key into one run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

R = TypeVar("R")


class Coalescer(Generic[R]):
    """Runs `work(key)` once for every burst of requests for that key.

    A request waits for a run that starts after it was made, so it always sees
    the state that prompted it. Between runs of a key it pauses `delay`, or as
    long as the last run took when that is longer (up to `max_delay`): a run
    whose work grows with the namespace then takes at most about half the time
    while requests keep coming, however many there are.
    """

    def __init__(self, work: Callable[[str], Awaitable[R]], delay: float = 0.2,
                 max_delay: float = 2.0) -> None:
        self._work = work
        self._delay = delay
        self._max_delay = max_delay
        self._waiting: dict[str, list[asyncio.Future[R]]] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        self._took: dict[str, float] = {}
        # The result of the last run of each key that succeeded.
        self.latest: dict[str, R] = {}

    async def request(self, key: str) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        runner = self._runners.get(key)
        if runner is None or runner.done():
            self._runners[key] = asyncio.create_task(self._run(key))
        return await future

    async def _run(self, key: str) -> None:
        loop = asyncio.get_running_loop()
        while self._waiting.get(key):
            await asyncio.sleep(min(max(self._delay, self._took.get(key, 0.0)), self._max_delay))
            waiters = self._waiting.pop(key, [])
            started = loop.time()
            try:
                result = await self._work(key)
            except Exception as error:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
            else:
                self.latest[key] = result
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(result)
            self._took[key] = loop.time() - started
