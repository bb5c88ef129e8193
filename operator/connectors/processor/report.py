"""Telling the Connection how its files fared: `status.submissions` (counts and
the last few files) and one event per checked file, aggregated per reason
(connectors/events.py), so a partner sending a thousand bad files makes one
line with a count."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from ..api.connection import SubmissionRecord, Submissions
from ..events import ConnectionEvents, EventType
from ..submissions import Submission, SubmissionStore, Summary
from .work import Checked

log = logging.getLogger(__name__)

LAST_SHOWN = 5


class SubmissionReporter(Protocol):
    def checked(self, item: Checked, store: SubmissionStore) -> None: ...


class LoggingReporter:
    def checked(self, item: Checked, store: SubmissionStore) -> None:
        log.info("%s", event_message(item))


class KubernetesReporter:
    def __init__(self, namespace: str, api_client: Any) -> None:
        self.events = ConnectionEvents(namespace, api_client, "connectors-processor")

    def checked(self, item: Checked, store: SubmissionStore) -> None:
        status = submissions_status(store.summaries(item.connection).get(item.connection),
                                    store.history(item.connection, limit=LAST_SHOWN))
        body = self.events.patch_status(item.connection, {"submissions": status})
        type_, reason = event_reason(item)
        self.events.post(item.connection, type_, reason, event_message(item), body)


def submissions_status(summary: Summary | None, last: list[Submission]) -> dict[str, Any]:
    """status.submissions. Every field is written: `last` is a list, which a
    merge patch replaces whole, and counts are never absent."""
    records = [record_of(s) for s in last]
    counts = Submissions(last=records) if summary is None else Submissions(
        total=summary.total, waiting=summary.waiting, complete=summary.complete,
        failed=summary.failed, with_rejections=summary.with_rejections,
        rows_accepted=summary.rows_accepted, rows_rejected=summary.rows_rejected,
        last=records)
    return counts.model_dump(by_alias=True, exclude_none=True)


def record_of(submission: Submission) -> SubmissionRecord:
    first = submission.errors[0] if submission.errors else None
    return SubmissionRecord(
        name=submission.name, status=submission.status,  # type: ignore[arg-type]
        received_at=submission.received_at, checked_at=submission.checked_at,
        rows_accepted=submission.rows_accepted, rows_rejected=submission.rows_rejected,
        first_error=None if first is None else _error_text(first))


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
