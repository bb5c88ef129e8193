"""`connectors submissions` as text and JSON: the pure formatting of listing.py."""

from __future__ import annotations

import json
import re
from dataclasses import replace

from connectors.submissions import Submission, Summary, listing


def submission(n: int, status: str = "Complete", accepted: int | None = 10,
               rejected: int | None = 0, errors: tuple[dict[str, object], ...] = (),
               error_count: int | None = None, name: str | None = None) -> Submission:
    checked = status in ("Complete", "Failed")
    return Submission(
        id=n, connection="acme-conversions", name=name or f"conversions_{n}.csv", size=100 + n,
        sha256=f"{n:064x}", trace_id=f"trace-{n}", received_at=f"2025-03-0{n}T10:00:00Z",
        status=status, attempts=1 if checked else 0,
        checked_at=f"2025-03-0{n}T10:05:00Z" if checked else None,
        rows_accepted=accepted if checked else None, rows_rejected=rejected if checked else None,
        error_count=(len(errors) if error_count is None else error_count) if checked else None,
        errors=errors)


def error(line: int | None, column: str = "Amount", code: str = "not_a_decimal",
          message: str = "not a decimal number") -> dict[str, object]:
    return {"line": line, "column": column, "errorType": "validation", "code": code,
            "message": message}


SUMMARY = Summary("acme-conversions", total=4, waiting=1, complete=2, failed=1,
                  with_rejections=1, rows_accepted=15, rows_rejected=5,
                  last_received_at="2025-03-04T10:00:00Z",
                  last_checked_at="2025-03-03T10:05:00Z")


def test_the_history_is_a_summary_line_then_one_row_per_submission_in_order() -> None:
    rows = [submission(4, "Received"), submission(3, "Failed", 0, 0, (error(None),)),
            submission(2, accepted=5, rejected=5, errors=(error(2),))]
    lines = listing.history_text("acme-conversions", SUMMARY, rows).splitlines()
    assert lines[0] == ("Connection acme-conversions: 4 submissions: 2 complete (1 with rejected "
                        "rows), 1 failed, 1 waiting; rows 15 accepted, 5 rejected; last received "
                        "2025-03-04T10:00:00Z, last checked 2025-03-03T10:05:00Z")
    assert lines[1] == ""
    assert re.split(r"\s{2,}", lines[2]) == ["ID", "NAME", "STATUS", "ROWS OK", "ROWS REJECTED",
                                     "RECEIVED", "CHECKED"]
    table = [line.split() for line in lines[3:]]
    assert table == [
        ["4", "conversions_4.csv", "Received", "-", "-", "2025-03-04T10:00:00Z", "-"],
        ["3", "conversions_3.csv", "Failed", "0", "0", "2025-03-03T10:00:00Z",
         "2025-03-03T10:05:00Z"],
        ["2", "conversions_2.csv", "Complete", "5", "5", "2025-03-02T10:00:00Z",
         "2025-03-02T10:05:00Z"],
    ]
    # Aligned: every column starts where its header does, on every line.
    assert {line.index("conversions_") for line in lines[3:]} == {lines[2].index("NAME")}
    assert lines[3].index("Received") == lines[2].index("STATUS")
    assert lines[4].index("2025-03-03T10:05") == lines[2].index("CHECKED")


def test_a_connection_without_submissions_is_one_line() -> None:
    assert listing.history_text("nope", None, []) == "Connection nope: no submissions"
    one = replace(SUMMARY, total=1, waiting=1, complete=0, failed=0, with_rejections=0)
    assert listing.summary_line("acme-conversions", one).startswith(
        "Connection acme-conversions: 1 submission: ")
    # --failed and nothing to look at: said after the counts, with no empty table.
    text = listing.history_text("acme-conversions", SUMMARY, [], failed_only=True)
    assert text.splitlines()[1:] == ["none failed or with rejected rows"]


def test_a_control_character_from_a_partner_cannot_break_a_line_or_reach_the_terminal() -> None:
    hostile = submission(1, name="a\nb\x1b[31mred.csv")
    lines = listing.history_text("acme-conversions", SUMMARY, [hostile]).splitlines()
    assert len(lines) == 4
    assert "a\\nb\\x1b[31mred.csv" in lines[3]
    assert "\x1b" not in "\n".join(lines)
    # JSON keeps the value as it is (escaped by JSON itself).
    assert listing.history_dict("acme-conversions", SUMMARY, [hostile])["submissions"][0][
        "name"] == "a\nb\x1b[31mred.csv"


def test_one_submission_in_full_with_its_errors() -> None:
    errors = (error(None, "", "wrong_header", "the header\nis wrong"), error(3),
              error(7, "Currency", "unknown_currency", "XYZ is not a currency"))
    text = listing.detail_text(submission(2, accepted=8, rejected=2, errors=errors))
    fields, _, rest = text.partition("\n\n")
    labels = dict(line.split(":", 1) for line in fields.splitlines())
    assert {k: v.strip() for k, v in labels.items()} == {
        "ID": "2", "Connection": "acme-conversions", "Name": "conversions_2.csv",
        "Size": "102 bytes", "SHA-256": f"{2:064x}", "Trace ID": "trace-2",
        "Status": "Complete", "Attempts": "1", "Received": "2025-03-02T10:00:00Z",
        "Checked": "2025-03-02T10:05:00Z", "Rows accepted": "8", "Rows rejected": "2",
        "Errors found": "3"}
    table = rest.splitlines()
    assert table[0].split() == ["LINE", "COLUMN", "TYPE", "CODE", "MESSAGE"]
    assert [line.split(None, 4) for line in table[1:]] == [
        ["-", "-", "validation", "wrong_header", "the header\\nis wrong"],
        ["3", "Amount", "validation", "not_a_decimal", "not a decimal number"],
        ["7", "Currency", "validation", "unknown_currency", "XYZ is not a currency"],
    ]
    assert "were found" not in text


def test_more_errors_found_than_stored_is_said() -> None:
    kept = tuple(error(line) for line in range(2, 5))
    text = listing.detail_text(submission(2, accepted=0, rejected=250, errors=kept,
                                          error_count=250))
    assert text.splitlines()[-1] == ("250 errors were found; only the first 3 are stored, "
                                     "shown above.")
    assert listing.errors_truncated(submission(2, errors=kept, error_count=250))
    assert not listing.errors_truncated(submission(2, errors=kept))
    # None stored at all (the store keeps 0): not "No errors".
    bare = listing.detail_text(submission(2, errors=(), error_count=4))
    assert "No errors." not in bare
    assert bare.splitlines()[-1] == "4 errors were found; none is stored."


def test_a_clean_file_and_a_waiting_one_say_so() -> None:
    assert listing.detail_text(submission(1)).splitlines()[-1] == "No errors."
    waiting = listing.detail_text(submission(4, "Received")).splitlines()
    assert waiting[-1] == "Not checked yet."
    assert "Checked:       -" in waiting


def test_json_holds_what_the_text_shows() -> None:
    rows = [submission(3, "Failed", 0, 0, (error(None),)), submission(1)]
    found = json.loads(json.dumps(listing.history_dict("acme-conversions", SUMMARY, rows,
                                                       failed_only=True)))
    assert found["connection"] == "acme-conversions"
    assert found["failedOnly"] is True
    assert found["summary"] == {"total": 4, "waiting": 1, "complete": 2, "failed": 1,
                                "withRejections": 1, "rowsAccepted": 15, "rowsRejected": 5,
                                "lastReceivedAt": "2025-03-04T10:00:00Z",
                                "lastCheckedAt": "2025-03-03T10:05:00Z"}
    assert [(s["id"], s["status"], s["rowsAccepted"], s["checkedAt"])
            for s in found["submissions"]] == [(3, "Failed", 0, "2025-03-03T10:05:00Z"),
                                               (1, "Complete", 10, "2025-03-01T10:05:00Z")]
    assert "errors" not in found["submissions"][0]
    empty = listing.history_dict("nope", None, [])
    assert empty["summary"]["total"] == 0
    assert empty["submissions"] == []
    full = listing.submission_dict(submission(2, errors=(error(3),), error_count=9),
                                   with_errors=True)
    assert full["errors"] == [error(3)]
    assert (full["errorCount"], full["errorsTruncated"], full["traceId"]) == (9, True, "trace-2")
