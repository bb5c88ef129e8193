"""The result file a partner gets back for each checked file: `result_<name>`.

It is one CSV table with the header `line,column,error_type,code,message`: one
row per error kept (file-level errors have an empty line), then the counts, as
rows of the same five columns whose error_type is `summary`:

    line,column,error_type,code,message
    4,Amount,validation,not_a_decimal,"Amount must be a decimal number ..., not 'x'"
    ,,summary,status,Complete
    ,,summary,rows_accepted,997
    ...

Why so: a comment line or a second table would break the CSV for every tool
that reads it (spreadsheets, csv modules, `cut`); rows of the same shape keep
it one valid table, a filter on error_type separates errors from counts, and
the counts come last, after the errors they sum up.

The file is pure ASCII (characters beyond it in a partner's values are written
as \\u escapes): no spreadsheet can misread its encoding, so it needs no BOM.
A cell that a spreadsheet would run as a formula (starting with =, +, -, @)
gets a leading apostrophe, since messages quote the partner's own values.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence

from ..landing.names import result_name
from .outcome import CheckError, CheckResult

HEADER = ("line", "column", "error_type", "code", "message")
SUMMARY = "summary"
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def result_file_name(name: str) -> str:
    """The name of the result of the landed file `name`: the landing area's rule,
    whose byte limit every landed name already fits."""
    return result_name(name)


def render_result(result: CheckResult, extra: Sequence[tuple[str, str]] = ()) -> bytes:
    """The result file's content. `extra` adds summary rows before the counts,
    such as ("file", name) or ("trace_id", ...)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(HEADER)
    writer.writerows(_error_row(error) for error in result.errors)
    writer.writerows(_cells(("", "", SUMMARY, key, value))
                     for key, value in _summary(result, extra))
    return out.getvalue().encode("ascii")


def _summary(result: CheckResult, extra: Sequence[tuple[str, str]]) -> Iterable[tuple[str, str]]:
    yield from extra
    yield "status", result.status
    yield "rows_accepted", str(result.rows_accepted)
    yield "rows_rejected", str(result.rows_rejected)
    yield "errors", str(result.error_count)
    yield "errors_listed", str(len(result.errors))


def _error_row(error: CheckError) -> list[str]:
    line = "" if error.line is None else str(error.line)
    return _cells((line, error.column, error.error_type, error.code, error.message))


def _cells(values: Iterable[str]) -> list[str]:
    return [_cell(value) for value in values]


def _cell(value: str) -> str:
    value = value.encode("ascii", "backslashreplace").decode("ascii")
    if value.startswith(_FORMULA_STARTS):
        return "'" + value
    return value
