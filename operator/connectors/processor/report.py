"""Telling the Connection how its files fared: `status.submissions` (counts and
the last few files) and one event per checked file, aggregated per reason
(connectors/events.py), so a partner sending a thousand bad files makes one
line with a count."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..api.connection import DeliveryState, SubmissionRecord, Submissions
from ..events import ConnectionEvents, EventType
from ..submissions import Submission, SubmissionStore, Summary
from ..submissions.store import DeliveryRecord
from .work import Checked

log = logging.getLogger(__name__)

LAST_SHOWN = 5


class SubmissionReporter(Protocol):
    def checked(self, item: Checked, store: SubmissionStore) -> None: ...

    def delivered(self, connection: str, name: str, sink: str, status: str, message: str,
                  store: SubmissionStore) -> None: ...


class LoggingReporter:
    def checked(self, item: Checked, store: SubmissionStore) -> None:
        log.info("%s", event_message(item))

    def delivered(self, connection: str, name: str, sink: str, status: str, message: str,
                  store: SubmissionStore) -> None:
        log.info("%s", delivery_message(name, sink, status, message))


class KubernetesReporter:
    def __init__(self, namespace: str, api_client: Any) -> None:
        self.events = ConnectionEvents(namespace, api_client, "connectors-processor")

    def checked(self, item: Checked, store: SubmissionStore) -> None:
        body = self._patch(item.connection, store)
        type_, reason = event_reason(item)
        self.events.post(item.connection, type_, reason, event_message(item), body)

    def delivered(self, connection: str, name: str, sink: str, status: str, message: str,
                  store: SubmissionStore) -> None:
        body = self._patch(connection, store)
        type_: EventType = "Normal" if status == "Delivered" else "Warning"
        reason = "FileDelivered" if status == "Delivered" else "DeliveryFailed"
        self.events.post(connection, type_, reason,
                         delivery_message(name, sink, status, message), body)

    def _patch(self, connection: str, store: SubmissionStore) -> dict[str, Any]:
        last = store.history(connection, limit=LAST_SHOWN)
        status = submissions_status(store.summaries(connection).get(connection), last,
                                    {s.id: store.deliveries_of(s.id) for s in last})
        return self.events.patch_status(connection, {"submissions": status})


def delivery_message(name: str, sink: str, status: str, message: str) -> str:
    if status == "Delivered":
        return f"{name} delivered to {sink}"
    return f"{name} not delivered to {sink}: {message}"


def submissions_status(summary: Summary | None, last: list[Submission],
                       deliveries: dict[int, list[DeliveryRecord]] | None = None,
                       ) -> dict[str, Any]:
    """status.submissions. Every field is written: `last` is a list, which a
    merge patch replaces whole, and counts are never absent."""
    records = [record_of(s, (deliveries or {}).get(s.id, [])) for s in last]
    counts = Submissions(last=records) if summary is None else Submissions(
        total=summary.total, waiting=summary.waiting, complete=summary.complete,
        failed=summary.failed, with_rejections=summary.with_rejections,
        rows_accepted=summary.rows_accepted, rows_rejected=summary.rows_rejected,
        last=records)
    return counts.model_dump(by_alias=True, exclude_none=True)


def record_of(submission: Submission,
              deliveries: list[DeliveryRecord] | None = None) -> SubmissionRecord:
    first = submission.errors[0] if submission.errors else None
    states = [DeliveryState(sink=d.sink_id, status=d.status,  # type: ignore[arg-type]
                            attempts=d.attempts,
                            # An error before a success is history, not news.
                            last_error=None if d.status == "Delivered"
                            else (d.last_error or "")[:512] or None)
              for d in (deliveries or [])[:4]]
    return SubmissionRecord(
        name=submission.name, status=submission.status,  # type: ignore[arg-type]
        received_at=submission.received_at, checked_at=submission.checked_at,
        rows_accepted=submission.rows_accepted, rows_rejected=submission.rows_rejected,
        first_error=None if first is None else _error_text(first),
        deliveries=states or None)


def _error_text(error: dict[str, object]) -> str:
    where = f"line {error['line']}: " if error.get("line") is not None else ""
    column = f"{error['column']}: " if error.get("column") else ""
    return f"{where}{column}{error.get('message', '')}"[:512]


def event_reason(item: Checked) -> tuple[EventType, str]:
    if item.result.status == "Failed":
        return "Warning", "FileRejected"
    if item.result.rows_rejected:
        return "Warning", "RowsRejected"
    return "Normal", "FileChecked"


def event_message(item: Checked) -> str:
    result = item.result
    if result.status == "Failed":
        why = result.failure.message if result.failure is not None else "it could not be read"
        sent = f" (sent to {item.answered})" if item.answered else ""
        return f"{item.name} rejected: {why}; {item.result_file} tells the partner{sent}"
    sent = f", and sent to {item.answered}" if item.answered else ""
    return (f"{item.name}: {result.rows_accepted} rows accepted, {result.rows_rejected} "
            f"rejected; {item.result_file} written{sent}")
