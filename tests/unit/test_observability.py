"""Audit lines and the operator's gauges, without a server: the JSON and text
formats, the closed set of audit fields, the Connection gauges read from
cached bodies, the schedule interval, and the work queue's retry counter."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import REGISTRY, CollectorRegistry

from connectors import logs
from connectors.controller.workqueue import WorkQueue
from connectors.metrics.operator import ConnectionsCollector, parse_time, schedule_interval


@pytest.fixture
def captured() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    yield stream
    for handler in list(root.handlers):
        root.removeHandler(handler)
    for handler in saved[0]:
        root.addHandler(handler)
    root.setLevel(saved[1])
    logs.set_audit_defaults()


def test_json_lines_carry_the_audit_object(captured: io.StringIO) -> None:
    logs.configure("info", "json", captured)
    logs.set_audit_defaults(namespace="partners")
    logging.getLogger("connectors.listen").info("plain %s", "line")
    logs.audit("upload", result="landed", user="acme", file="a b\nc.csv", size=3)
    first, second = (json.loads(line) for line in captured.getvalue().splitlines())
    assert first["message"] == "plain line"
    assert "audit" not in first
    assert first["time"].endswith("Z")
    assert second["logger"] == "connectors.audit"
    assert second["audit"] == {"event": "upload", "namespace": "partners", "result": "landed",
                               "user": "acme", "file": "a b\nc.csv", "size": 3}


def test_text_audit_lines_quote_what_a_partner_chose(captured: io.StringIO) -> None:
    logs.configure("info", "text", captured)
    logs.audit("upload", result="landed", file='x" result="refused', reason="")
    [line] = captured.getvalue().splitlines()
    assert line.endswith('connectors.audit: upload result="landed" file="x\\" result=\\"refused"')


def test_audit_fields_are_a_closed_set(captured: io.StringIO) -> None:
    logs.configure("info", "json", captured)
    with pytest.raises(ValueError, match="password"):
        logs.audit("login", password="hunter22")
    assert captured.getvalue() == ""


def connection(name: str, *, direction: str = "Inbound", methodology: str = "Pull",
               ready: str = "True", reason: str = "TransferScheduled",
               suspend: bool = False, schedule: str | None = None,
               last: dict[str, Any] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"direction": direction, "methodology": methodology,
                            "suspend": suspend}
    if schedule:
        spec["schedule"] = schedule
    status: dict[str, Any] = {"conditions": [
        {"type": "Validated", "status": "True", "reason": "Valid"},
        {"type": "Ready", "status": ready, "reason": reason}]}
    if last is not None:
        status["lastTransfer"] = last
    return {"metadata": {"namespace": "ns", "name": name}, "spec": spec, "status": status}


def gauges(bodies: list[dict[str, Any]],
           successes: dict[tuple[str, str], float] | None = None) -> dict[tuple[Any, ...], float]:
    registry = CollectorRegistry()
    registry.register(ConnectionsCollector(lambda: bodies, successes))
    return {(s.name, *sorted(s.labels.items())): s.value
            for family in registry.collect() for s in family.samples}


def test_connection_gauges_from_the_cache() -> None:
    found = gauges([
        connection("pull", last={"time": "2026-11-30T10:00:00Z", "files": 2, "bytes": 10,
                                 "outcome": "Failed"}),
        connection("push", methodology="Push", ready="False", reason="ListenerNotReady"),
        connection("paused", ready="False", reason="Suspended", suspend=True),
        {"metadata": {"namespace": "ns", "name": "new"}, "spec": {}},
    ], successes={("ns", "pull"): 1000.0})
    ns = ("namespace", "ns")

    def count(condition: str, status: str, reason: str) -> float:
        return found.get(("connectors_operator_connections", ("condition", condition), ns,
                          ("reason", reason), ("status", status)), 0)

    assert count("Ready", "True", "TransferScheduled") == 1
    assert count("Ready", "False", "ListenerNotReady") == 1
    assert count("Ready", "False", "Suspended") == 1
    assert count("Ready", "Unknown", "NotReconciled") == 1  # no status yet
    assert count("Validated", "True", "Valid") == 3

    def one(name: str, connection_name: str) -> float | None:
        return found.get((name, ("connection", connection_name), ns))

    assert one("connectors_operator_connection_ready", "pull") == 1
    assert one("connectors_operator_connection_ready", "push") == 0
    assert one("connectors_operator_connection_suspended", "paused") == 1
    assert one("connectors_operator_last_transfer_files", "pull") == 2
    assert one("connectors_operator_last_transfer_succeeded", "pull") == 0
    # The last transfer failed: the success time is the one remembered.
    assert one("connectors_operator_last_transfer_success_timestamp_seconds", "pull") == 1000.0
    assert one("connectors_operator_transfer_schedule_interval_seconds", "pull") == 900
    # A listener Connection, and one whose spec says nothing, have no transfer gauges.
    assert one("connectors_operator_transfer_schedule_interval_seconds", "push") is None
    assert one("connectors_operator_transfer_schedule_interval_seconds", "new") is None


def test_schedule_interval_is_the_longest_gap() -> None:
    monday = parse_time("2026-11-30T00:00:00Z")
    assert schedule_interval("*/15 * * * *", now=monday) == 900
    # Weekdays at nine: Friday to Monday is the longest gap.
    assert schedule_interval("0 9 * * 1-5", now=monday) == 3 * 86400
    assert schedule_interval("61 * * * *", now=monday) is None


def test_a_failed_reconcile_counts_a_retry() -> None:
    def value(name: str, **labels: str) -> float:
        sample = REGISTRY.get_sample_value(name, labels)
        return sample or 0.0

    before = (value("connectors_operator_workqueue_retries_total", queue="UnitTest"),
              value("connectors_operator_reconciles_total", kind="UnitTest", result="error"),
              value("connectors_operator_reconciles_total", kind="UnitTest", result="success"))
    calls: list[str] = []

    async def work(key: str) -> None:
        calls.append(key)
        if len(calls) == 1:
            raise RuntimeError("first time")

    async def main() -> None:
        queue = WorkQueue("unit", work, workers=1, base_delay=0.01, kind="UnitTest")
        queue.start()
        queue.add("a")
        for _ in range(200):
            if len(calls) >= 2:
                break
            await asyncio.sleep(0.01)
        await queue.stop()

    asyncio.run(main())
    assert calls == ["a", "a"]
    after = (value("connectors_operator_workqueue_retries_total", queue="UnitTest"),
             value("connectors_operator_reconciles_total", kind="UnitTest", result="error"),
             value("connectors_operator_reconciles_total", kind="UnitTest", result="success"))
    assert tuple(a - b for a, b in zip(after, before, strict=True)) == (1, 1, 1)
