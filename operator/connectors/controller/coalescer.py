"""Coalescing bursts of requests for one key into one run."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

R = TypeVar("R")


class Coalescer(Generic[R]):
    """Runs `work(key)` once for every burst of requests for that key.

    A request waits for a run that starts after it was made, so it always sees
    the state that prompted it.
    """

    def __init__(self, work: Callable[[str], Awaitable[R]], delay: float = 0.2) -> None:
        self._work = work
        self._delay = delay
        self._waiting: dict[str, list[asyncio.Future[R]]] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}

    async def request(self, key: str) -> R:
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._waiting.setdefault(key, []).append(future)
        runner = self._runners.get(key)
        if runner is None or runner.done():
            self._runners[key] = asyncio.create_task(self._run(key))
        return await future

    async def _run(self, key: str) -> None:
        while self._waiting.get(key):
            await asyncio.sleep(self._delay)
            waiters = self._waiting.pop(key, [])
            try:
                result = await self._work(key)
            except Exception as error:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_exception(error)
            else:
                for waiter in waiters:
                    if not waiter.done():
                        waiter.set_result(result)
