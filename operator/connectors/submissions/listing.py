"""`connectors submissions`: a Connection's history as text or JSON. Pure: from
the store's Submission and Summary objects, no database and no printing.

File names and error messages come from partners: a control character in one
is shown escaped (a newline as \\n), so that a table stays one line per row and
no escape sequence reaches the terminal. The JSON keeps every value as it is.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .store import Submission, Summary

HISTORY_COLUMNS = ("ID", "NAME", "STATUS", "ROWS OK", "ROWS REJECTED", "RECEIVED", "CHECKED")
ERROR_COLUMNS = ("LINE", "COLUMN", "TYPE", "CODE", "MESSAGE")
NONE = "-"
"""What a cell shows for a value not known (yet): a time not checked, a line of
an error about the whole file."""

_CONTROL = {code: f"\\x{code:02x}" for code in [*range(0x20), 0x7F]}
_CONTROL.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})


def cell(value: object) -> str:
    """One value as a table shows it: "-" for None or "", control characters escaped."""
    if value is None or value == "":
        return NONE
    return str(value).translate(_CONTROL)


def render_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Columns aligned with spaces, like `kubectl get`: no borders, no colours."""
    cells = [[cell(value) for value in row] for row in rows]
    lines = [list(headers), *cells]
    widths = [max(len(line[i]) for line in lines) for i in range(len(headers))]
    return "\n".join("   ".join(text.ljust(width) for text, width
                                in zip(line, widths, strict=True)).rstrip()
                     for line in lines)


# ---- the history of one Connection ---------------------------------------------------------

def summary_line(connection: str, summary: Summary | None) -> str:
    """One line of counts over the retention period, before the table."""
    if summary is None or summary.total == 0:
        return f"Connection {cell(connection)}: no submissions"
    files = "1 submission" if summary.total == 1 else f"{summary.total} submissions"
    parts = [f"{summary.complete} complete ({summary.with_rejections} with rejected rows)",
             f"{summary.failed} failed", f"{summary.waiting} waiting"]
    return (f"Connection {cell(connection)}: {files}: {', '.join(parts)}; "
            f"rows {summary.rows_accepted} accepted, {summary.rows_rejected} rejected; "
            f"last received {cell(summary.last_received_at)}, "
            f"last checked {cell(summary.last_checked_at)}")


def history_row(submission: Submission) -> tuple[object, ...]:
    return (submission.id, submission.name, submission.status, submission.rows_accepted,
            submission.rows_rejected, submission.received_at, submission.checked_at)


def history_text(connection: str, summary: Summary | None, submissions: Sequence[Submission],
                 *, failed_only: bool = False) -> str:
    """The summary line, then one line per submission in the order given (the
    store's: newest first)."""
    head = summary_line(connection, summary)
    if not submissions:
        if summary is not None and summary.total and failed_only:
            return f"{head}\nnone failed or with rejected rows"
        return head
    return f"{head}\n\n{render_table(HISTORY_COLUMNS, [history_row(s) for s in submissions])}"


def summary_dict(connection: str, summary: Summary | None) -> dict[str, Any]:
    """The counts, with the keys of the Connection's status.submissions; zeros when
    the Connection has no submissions."""
    if summary is None:
        summary = Summary(connection, total=0, waiting=0, complete=0, failed=0,
                          with_rejections=0, rows_accepted=0, rows_rejected=0,
                          last_received_at=None, last_checked_at=None)
    return {"total": summary.total, "waiting": summary.waiting, "complete": summary.complete,
            "failed": summary.failed, "withRejections": summary.with_rejections,
            "rowsAccepted": summary.rows_accepted, "rowsRejected": summary.rows_rejected,
            "lastReceivedAt": summary.last_received_at,
            "lastCheckedAt": summary.last_checked_at}


def submission_dict(submission: Submission, *, with_errors: bool = False) -> dict[str, Any]:
    """Every field, camelCase as in the API; the stored errors only when asked."""
    found: dict[str, Any] = {
        "id": submission.id, "connection": submission.connection, "name": submission.name,
        "size": submission.size, "sha256": submission.sha256, "traceId": submission.trace_id,
        "status": submission.status, "attempts": submission.attempts,
        "receivedAt": submission.received_at, "checkedAt": submission.checked_at,
        "rowsAccepted": submission.rows_accepted, "rowsRejected": submission.rows_rejected,
        "errorCount": submission.error_count,
    }
    if with_errors:
        found["errors"] = [dict(error) for error in submission.errors]
        found["errorsTruncated"] = errors_truncated(submission)
    return found


def history_dict(connection: str, summary: Summary | None,
                 submissions: Sequence[Submission], *, failed_only: bool = False,
                 ) -> dict[str, Any]:
    """What history_text shows, for `-o json`."""
    return {"connection": connection, "failedOnly": failed_only,
            "summary": summary_dict(connection, summary),
            "submissions": [submission_dict(s) for s in submissions]}


# ---- one submission in full ----------------------------------------------------------------

def errors_truncated(submission: Submission) -> bool:
    """More errors were found than the store kept (it keeps the first ones)."""
    return (submission.error_count or 0) > len(submission.errors)


def detail_text(submission: Submission) -> str:
    """`Label: value` lines, then the stored errors as a table, and a line when
    more errors were found than stored."""
    fields = [("ID", submission.id), ("Connection", submission.connection),
              ("Name", submission.name), ("Size", f"{submission.size} bytes"),
              ("SHA-256", submission.sha256), ("Trace ID", submission.trace_id),
              ("Status", submission.status), ("Attempts", submission.attempts),
              ("Received", submission.received_at), ("Checked", submission.checked_at),
              ("Rows accepted", submission.rows_accepted),
              ("Rows rejected", submission.rows_rejected),
              ("Errors found", submission.error_count)]
    width = max(len(label) for label, _ in fields) + 2
    lines = [f"{label + ':':<{width}}{cell(value)}" for label, value in fields]
    if submission.status in ("Received", "Checking"):
        return "\n".join([*lines, "", "Not checked yet."])
    if submission.errors:
        rows = [(error.get("line"), error.get("column"), error.get("errorType"),
                 error.get("code"), error.get("message")) for error in submission.errors]
        lines += ["", render_table(ERROR_COLUMNS, rows)]
    elif not submission.error_count:
        lines += ["", "No errors."]
    if errors_truncated(submission):
        kept = len(submission.errors)
        shown = f"only the first {kept} are stored, shown above" if kept else "none is stored"
        lines += ["", f"{submission.error_count} errors were found; {shown}."]
    return "\n".join(lines)
