"""status.submissions and the event of a checked file, from the store's records."""

from __future__ import annotations

from connectors.processor.report import event_message, event_reason, submissions_status
from connectors.processor.work import Checked
from connectors.submissions import CheckError, CheckResult
from connectors.submissions.store import Submission, Summary

WHEN = "2026-06-01T10:00:00Z"


def test_status_holds_the_counts_and_the_last_files_first_errors() -> None:
    summary = Summary("acme", 2, 0, 1, 1, 1, 99, 1, WHEN, WHEN)
    checked = Submission(2, "acme", "conversions_2.csv", 10, "s", "t2", WHEN, "Complete", 1,
                         WHEN, 99, 1, 1, ({"line": 7, "column": "Amount", "message": "bad"},))
    failed = Submission(1, "acme", "conversions_1.csv", 0, "s", "t1", WHEN, "Failed", 1, WHEN,
                        0, 0, 1, ({"line": None, "column": "", "message": "the file is empty"},))
    status = submissions_status(summary, [checked, failed])
    assert {k: status[k] for k in ("total", "complete", "failed", "rowsAccepted",
                                   "rowsRejected", "withRejections")} == {
        "total": 2, "complete": 1, "failed": 1, "rowsAccepted": 99, "rowsRejected": 1,
        "withRejections": 1}
    assert [(r["name"], r["firstError"]) for r in status["last"]] == [
        ("conversions_2.csv", "line 7: Amount: bad"), ("conversions_1.csv", "the file is empty")]


def test_no_history_yet_is_zero_counts() -> None:
    assert submissions_status(None, []) == {
        "total": 0, "waiting": 0, "complete": 0, "failed": 0, "withRejections": 0,
        "rowsAccepted": 0, "rowsRejected": 0, "last": []}


def test_events_warn_about_rejections_and_failures() -> None:
    good = CheckResult("Complete", 10, 0, 0, ())
    rejected = CheckResult("Complete", 9, 1, 1, (CheckError(3, "Amount", "validation", "x", "m"),))
    failure = CheckError(None, "", "validation", "empty_file", "the file is empty")
    failed = CheckResult("Failed", 0, 0, 1, (failure,), failure=failure)
    reasons = [event_reason(Checked("c", "f.csv", r, "result_f.csv.csv"))
               for r in (good, rejected, failed)]
    assert reasons == [("Normal", "FileChecked"), ("Warning", "RowsRejected"),
                       ("Warning", "FileRejected")]
    assert event_message(Checked("c", "f.csv", failed, "result_f.csv.csv")) == (
        "f.csv rejected: the file is empty; result_f.csv.csv tells the partner")
