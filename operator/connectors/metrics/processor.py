"""The processor's metrics (`connectors process`), served on --metrics-port (9091)."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

FILES_CHECKED = Counter(
    "connectors_processor_files_checked_total",
    "Landed files checked, by the outcome: Complete (read, rows counted) or Failed",
    ["namespace", "connection", "status"])
ROWS = Counter(
    "connectors_processor_rows_total",
    "Rows of the checked files: result accepted or rejected",
    ["namespace", "connection", "result"])
BYTES_CHECKED = Counter(
    "connectors_processor_checked_bytes_total",
    "Bytes of the checked files, as landed",
    ["namespace", "connection"])
CHECK_SECONDS = Histogram(
    "connectors_processor_check_seconds",
    "How long checking one file took, its result file included",
    ["namespace", "connection"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0))


_namespace = ""


def configure(namespace: str | None) -> None:
    """The namespace every series is labelled with (the processor's own)."""
    global _namespace
    _namespace = namespace or ""


def checked(connection: str, status: str, rows_accepted: int, rows_rejected: int, size: int,
            seconds: float) -> None:
    FILES_CHECKED.labels(_namespace, connection, status).inc()
    ROWS.labels(_namespace, connection, "accepted").inc(rows_accepted)
    ROWS.labels(_namespace, connection, "rejected").inc(rows_rejected)
    BYTES_CHECKED.labels(_namespace, connection).inc(size)
    CHECK_SECONDS.labels(_namespace, connection).observe(seconds)
