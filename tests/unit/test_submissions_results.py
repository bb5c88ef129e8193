"""The result file: one valid CSV table, errors then counts, safe to open in a
spreadsheet, named by the landing area's rule."""

from __future__ import annotations

import csv
import io

import pytest

from connectors.landing.names import MAX_NAME_BYTES, NAME_MAX, is_reserved, name_bytes
from connectors.submissions import CheckError, CheckResult, render_result, result_file_name


def result(*errors: CheckError, status: str = "Complete", accepted: int = 997,
           rejected: int = 3, count: int | None = None) -> CheckResult:
    return CheckResult(status=status, rows_accepted=accepted, rows_rejected=rejected,  # type: ignore[arg-type]
                       error_count=len(errors) if count is None else count, errors=errors)


def table(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode("ascii"), newline="")))


AMOUNT = CheckError(4, "Amount", "validation", "not_a_decimal", "Amount must be a decimal, not 'x'")
OLD = CheckError(9, "EventDate", "contract", "too_old", "EventDate '2024-01-01' is too old")


def test_errors_then_counts_in_one_table_of_five_columns() -> None:
    rows = table(render_result(result(AMOUNT, OLD), extra=[("file", "conversions_1.csv")]))
    assert rows[0] == ["line", "column", "error_type", "code", "message"]
    assert rows[1] == ["4", "Amount", "validation", "not_a_decimal",
                       "Amount must be a decimal, not 'x'"]
    assert rows[2][:4] == ["9", "EventDate", "contract", "too_old"]
    assert rows[3:] == [["", "", "summary", "file", "conversions_1.csv"],
                        ["", "", "summary", "status", "Complete"],
                        ["", "", "summary", "rows_accepted", "997"],
                        ["", "", "summary", "rows_rejected", "3"],
                        ["", "", "summary", "errors", "2"],
                        ["", "", "summary", "errors_listed", "2"]]
    assert all(len(row) == 5 for row in rows)


def test_lines_end_with_crlf_as_rfc_4180_says() -> None:
    data = render_result(result(AMOUNT))
    assert data.count(b"\r\n") == len(table(data))
    assert b"\n" not in data.replace(b"\r\n", b"")


def test_a_file_level_error_has_an_empty_line_and_the_counts_say_failed() -> None:
    failure = CheckError(None, "", "validation", "gzip_bomb", "the gzip file expands ...")
    rows = table(render_result(result(failure, status="Failed", accepted=0, rejected=0)))
    assert rows[1][:4] == ["", "", "validation", "gzip_bomb"]
    assert ["", "", "summary", "status", "Failed"] in rows


def test_errors_beyond_those_listed_are_still_counted() -> None:
    rows = table(render_result(result(AMOUNT, count=5000)))
    summary = {row[3]: row[4] for row in rows if row[2] == "summary"}
    assert (summary["errors"], summary["errors_listed"]) == ("5000", "1")


@pytest.mark.parametrize(("message", "cell"), [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1", "'+1"),
    ("-1", "'-1"),
    ("@SUM(A1)", "'@SUM(A1)"),
    ("Category 'Bücher' is too long", "Category 'B\\xfccher' is too long"),
    ("OrderId '注文' is unknown", "OrderId '\\u6ce8\\u6587' is unknown"),
    ('quote " and comma ,', 'quote " and comma ,'),
    ("two\nlines", "two\nlines"),
])
def test_cells_are_ascii_and_never_run_as_formulas(message: str, cell: str) -> None:
    error = CheckError(2, "Category", "validation", "too_long", message)
    data = render_result(result(error))
    data.decode("ascii")  # no BOM needed, no encoding to guess
    assert table(data)[1][4] == cell


def test_the_column_a_partner_named_is_escaped_too() -> None:
    error = CheckError(1, "=cmd|' /C calc'!A0", "validation", "header_mismatch", "bad header")
    assert table(render_result(result(error)))[1][1].startswith("'=")


@pytest.mark.parametrize("name", ["conversions_1.csv", "a", "x.csv.gz", "é" * 60])
def test_the_result_name_follows_the_landing_rule_and_is_reserved(name: str) -> None:
    result_name = result_file_name(name)
    assert result_name == f"result_{name}.csv"
    assert is_reserved(result_name)


def test_the_longest_landed_name_still_has_room_for_its_result() -> None:
    longest = "a" * MAX_NAME_BYTES
    assert len(name_bytes(result_file_name(longest))) <= NAME_MAX
