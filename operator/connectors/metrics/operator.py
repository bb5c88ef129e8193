"""The operator's metrics (`connectors run`), served on --metrics-port (8080),
beside its liveness endpoint.

Reconciles and work queues are counted as they happen (controller/workqueue.py,
controller/operator.py). What the Connections are is not counted but read at
each scrape from the operator's cache of them (`ConnectionsCollector`): a
gauge that is recomputed cannot drift from the truth the way increments
can, and a deleted Connection simply disappears.
"""

from __future__ import annotations

import datetime
import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from croniter import croniter
from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from ..api.connection import DEFAULT_SCHEDULE, is_platform_initiated

Key = tuple[str, str]

RECONCILES = Counter(
    "connectors_operator_reconciles_total",
    "Reconciles by kind (Connection, Credential, Namespace: its listeners and processor, "
    "Job: a finished transfer Job) and result (success, error)",
    ["kind", "result"])
RECONCILE_SECONDS = Histogram(
    "connectors_operator_reconcile_duration_seconds",
    "How long one reconcile took, by kind",
    ["kind"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0))
QUEUE_DEPTH = Gauge(
    "connectors_operator_workqueue_depth",
    "Keys waiting in a work queue (Connection, Credential, Namespace)",
    ["queue"])
QUEUE_RETRIES = Counter(
    "connectors_operator_workqueue_retries_total",
    "Keys put back on a work queue after their reconcile failed (with backoff)",
    ["queue"])
WATCH_EVENTS = Counter(
    "connectors_operator_watch_events_total",
    "Objects the watches received, by resource (secrets, configmaps, pods, ...): "
    "the initial listing and every change; the API server sends only the operator's own",
    ["resource"])


def reconciled(kind: str, seconds: float, ok: bool) -> None:
    RECONCILES.labels(kind, "success" if ok else "error").inc()
    RECONCILE_SECONDS.labels(kind).observe(seconds)


def queue_depth(queue: str, depth: Callable[[], int]) -> None:
    """The queue's depth, read at each scrape."""
    QUEUE_DEPTH.labels(queue).set_function(depth)


def retried(queue: str) -> None:
    QUEUE_RETRIES.labels(queue).inc()


def watch_event(resource: str) -> None:
    WATCH_EVENTS.labels(resource).inc()


class ConnectionsCollector(Collector):
    """Gauges of the Connections as the cache has them now.

    `bodies` gives the cached Connections; `successes` the completion time
    (seconds since the epoch) of the latest successful transfer Job the
    operator has seen per (namespace, Connection), which outlives a failed
    run's replacing status.lastTransfer."""

    def __init__(self, bodies: Callable[[], Iterable[dict[str, Any]]],
                 successes: Mapping[Key, float] | None = None) -> None:
        self.bodies = bodies
        self.successes = successes if successes is not None else {}

    def describe(self) -> Iterable[GaugeMetricFamily]:
        # Described without reading the cache (registration happens before it is filled).
        return list(self._families().values())

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = self._families()
        by_condition: dict[tuple[str, str, str, str], int] = {}
        for body in list(self.bodies()):
            self._add(body, families, by_condition)
        for (namespace, condition, status, reason), count in sorted(by_condition.items()):
            families["connections"].add_metric([namespace, condition, status, reason], count)
        yield from families.values()

    def _families(self) -> dict[str, GaugeMetricFamily]:
        connection = ["namespace", "connection"]
        return {
            "connections": GaugeMetricFamily(
                "connectors_operator_connections",
                "Connections by condition type, status and reason",
                labels=["namespace", "condition", "status", "reason"]),
            "ready": GaugeMetricFamily(
                "connectors_operator_connection_ready",
                "1 when the Connection's Ready condition is True, else 0", labels=connection),
            "suspended": GaugeMetricFamily(
                "connectors_operator_connection_suspended",
                "1 when the Connection has spec.suspend: true", labels=connection),
            "success_time": GaugeMetricFamily(
                "connectors_operator_last_transfer_success_timestamp_seconds",
                "Platform-initiated Connections: when the last successful transfer finished",
                labels=connection),
            "time": GaugeMetricFamily(
                "connectors_operator_last_transfer_timestamp_seconds",
                "Platform-initiated Connections: when the last transfer finished "
                "(status.lastTransfer.time)", labels=connection),
            "succeeded": GaugeMetricFamily(
                "connectors_operator_last_transfer_succeeded",
                "Platform-initiated Connections: 1 when the last transfer succeeded",
                labels=connection),
            "files": GaugeMetricFamily(
                "connectors_operator_last_transfer_files",
                "Platform-initiated Connections: files of the last transfer", labels=connection),
            "bytes": GaugeMetricFamily(
                "connectors_operator_last_transfer_bytes",
                "Platform-initiated Connections: bytes of the last transfer", labels=connection),
            "interval": GaugeMetricFamily(
                "connectors_operator_transfer_schedule_interval_seconds",
                "Platform-initiated Connections: the longest gap between two runs of the "
                "schedule", labels=connection),
        }

    def _add(self, body: dict[str, Any], families: dict[str, GaugeMetricFamily],
             by_condition: dict[tuple[str, str, str, str], int]) -> None:
        metadata = body.get("metadata") or {}
        namespace, name = str(metadata.get("namespace", "")), str(metadata.get("name", ""))
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        conditions = [c for c in status.get("conditions") or [] if isinstance(c, dict)]
        if not any(c.get("type") == "Ready" for c in conditions):
            conditions.append({"type": "Ready", "status": "Unknown", "reason": "NotReconciled"})
        for condition in conditions:
            key = (namespace, str(condition.get("type", "")), str(condition.get("status", "")),
                   str(condition.get("reason") or ""))
            by_condition[key] = by_condition.get(key, 0) + 1
        ready = any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)
        families["ready"].add_metric([namespace, name], 1.0 if ready else 0.0)
        families["suspended"].add_metric([namespace, name], 1.0 if spec.get("suspend") else 0.0)
        direction, methodology = spec.get("direction"), spec.get("methodology")
        if (direction not in ("Inbound", "Outbound") or methodology not in ("Push", "Pull")
                or not is_platform_initiated(str(direction), str(methodology))):
            return
        last = status.get("lastTransfer") or {}
        finished = parse_time(last.get("time"))
        success = self.successes.get((namespace, name))
        if finished is not None:
            families["time"].add_metric([namespace, name], finished)
            succeeded = last.get("outcome") == "Succeeded"
            families["succeeded"].add_metric([namespace, name], 1.0 if succeeded else 0.0)
            families["files"].add_metric([namespace, name], float(last.get("files") or 0))
            families["bytes"].add_metric([namespace, name], float(last.get("bytes") or 0))
            if succeeded:
                success = max(success or 0.0, finished)
        if success is not None:
            families["success_time"].add_metric([namespace, name], success)
        interval = schedule_interval(str(spec.get("schedule") or DEFAULT_SCHEDULE))
        if interval is not None:
            families["interval"].add_metric([namespace, name], interval)


def parse_time(value: object) -> float | None:
    """RFC 3339 -> seconds since the epoch; None when absent or malformed."""
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.timestamp()


_INTERVALS: dict[str, tuple[float, float | None]] = {}
_INTERVALS_LOCK = threading.Lock()
_INTERVAL_TTL = 3600.0
_INTERVAL_RUNS = 16


def schedule_interval(schedule: str, now: float | None = None) -> float | None:
    """The longest gap between two of the schedule's next runs (a weekday
    schedule's weekend included); None for a schedule that does not parse.
    Kept an hour per schedule."""
    clock = time.time() if now is None else now
    with _INTERVALS_LOCK:
        cached = _INTERVALS.get(schedule)
        if cached is not None and now is None and clock - cached[0] < _INTERVAL_TTL:
            return cached[1]
    interval: float | None = None
    if croniter.is_valid(schedule):
        runs = croniter(schedule, clock)
        times = [runs.get_next(float) for _ in range(_INTERVAL_RUNS)]
        interval = max(b - a for a, b in itertools.pairwise(times))
    with _INTERVALS_LOCK:
        if len(_INTERVALS) > 10_000:
            _INTERVALS.clear()
        _INTERVALS[schedule] = (clock, interval)
    return interval


_registered: ConnectionsCollector | None = None


def register_connections(collector: ConnectionsCollector) -> None:
    """Serves `collector` from the default registry, in place of an earlier one."""
    global _registered
    if _registered is not None:
        REGISTRY.unregister(_registered)
    REGISTRY.register(collector)
    _registered = collector
