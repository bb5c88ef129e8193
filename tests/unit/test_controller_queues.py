"""The work queue, the coalescer and the watch predicates, without a server."""

from __future__ import annotations

import asyncio
from typing import Any

from connectors.controller.coalescer import Coalescer
from connectors.controller.predicates import (
    EchoFilter,
    rotation_requested,
    spec_changed,
    status_changed,
)
from connectors.controller.workqueue import WorkQueue


def body(generation: int = 1, **extra: Any) -> dict[str, Any]:
    return {"kind": "ConfigMap",
            "metadata": {"name": "x", "namespace": "ns", "generation": generation,
                         **extra.pop("metadata", {})}, **extra}


def test_queue_coalesces_and_never_runs_a_key_twice_at_once() -> None:
    async def scenario() -> tuple[list[str], int]:
        running: set[str] = set()
        overlap = 0
        done: list[str] = []

        async def work(key: str) -> None:
            nonlocal overlap
            overlap += key in running
            running.add(key)
            await asyncio.sleep(0.05)
            running.discard(key)
            done.append(key)

        queue = WorkQueue("test", work, workers=4)
        queue.start()
        for _ in range(5):
            queue.add("a")  # queued once
        await asyncio.sleep(0.01)
        queue.add("a")  # while running: once more afterwards, not alongside
        queue.add("b")
        await asyncio.sleep(0.3)
        await queue.stop()
        return done, overlap

    done, overlap = asyncio.run(scenario())
    assert overlap == 0
    assert sorted(done) == ["a", "a", "b"]


def test_queue_retries_a_failure_with_backoff() -> None:
    async def scenario() -> list[float]:
        loop = asyncio.get_running_loop()
        attempts: list[float] = []

        async def work(key: str) -> None:
            attempts.append(loop.time())
            if len(attempts) < 3:
                raise RuntimeError("API down")

        queue = WorkQueue("test", work, workers=1, base_delay=0.05)
        queue.start()
        queue.add("a")
        await asyncio.sleep(0.6)
        await queue.stop()
        return attempts

    attempts = asyncio.run(scenario())
    assert len(attempts) == 3
    first, second = attempts[1] - attempts[0], attempts[2] - attempts[1]
    assert 0.03 < first < second  # 0.05 then 0.1, each with 20 % jitter


def test_coalescer_runs_once_per_burst_and_a_late_request_runs_again() -> None:
    async def scenario() -> tuple[list[int], list[str]]:
        runs: list[str] = []

        async def work(key: str) -> int:
            runs.append(key)
            await asyncio.sleep(0.05)
            return len(runs)

        coalescer: Coalescer[int] = Coalescer(work, delay=0.02)
        burst = await asyncio.gather(*(coalescer.request("ns") for _ in range(20)))
        late = await coalescer.request("ns")
        return [*burst, late], runs

    results, runs = asyncio.run(scenario())
    assert runs == ["ns", "ns"]
    assert set(results[:20]) == {1}
    assert results[20] == 2


def test_predicates() -> None:
    assert spec_changed("ADDED", body(), body())
    assert spec_changed("MODIFIED", None, body())
    assert not spec_changed("MODIFIED", body(1), body(1, status={"x": 1}))
    assert spec_changed("MODIFIED", body(1), body(2))
    rotated = body(metadata={"annotations": {"connectors.dev/rotate": "2026-01-01"}})
    assert rotation_requested(body(), rotated)
    assert not rotation_requested(None, rotated)
    assert status_changed(body(status={"a": 1}), body(status={"a": 2}))
    assert not status_changed(body(status={"a": 1}), body(status={"a": 1}))


def test_echo_filter_tells_others_changes_from_our_own_echoes() -> None:
    echoes = EchoFilter()
    config = {"kind": "ConfigMap", "metadata": {"name": "c", "namespace": "ns"},
              "data": {"k": "v"}}
    assert not echoes.changed_by_others("ADDED", config)  # first sight: we made it
    assert not echoes.changed_by_others("MODIFIED", config)  # the same data: our echo
    edited = {**config, "data": {"k": "edited by hand"}}
    assert echoes.changed_by_others("MODIFIED", edited)
    assert echoes.changed_by_others("DELETED", edited)
    deployment = body(3)
    assert not echoes.changed_by_others("ADDED", deployment)
    assert not echoes.changed_by_others("MODIFIED", body(3, status={"readyReplicas": 1}))
    assert echoes.changed_by_others("MODIFIED", body(4))
