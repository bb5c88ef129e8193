"""The first line: which delimiter, and is it the header.

The schema knows the column names, so the delimiter is decided by them, not
guessed from character counts as csv.Sniffer does: the delimiter is the one
that splits the first line into exactly the schema's names (or, for a file
without a header, into as many values as the schema has columns). A header
that does not match is one file-level error that says how it differs: another
delimiter, a different case, missing, unexpected or reordered columns.
"""

from __future__ import annotations

import csv

from ..api.file_schema import DELIMITERS, FileSchema
from .outcome import FileProblem

_NAMES = {",": "a comma", ";": "a semicolon", "\t": "a tab", "|": "a vertical bar"}


def split_line(line: str, delimiter: str) -> list[str]:
    """The values of one line, or [] when it is not readable CSV."""
    try:
        return next(csv.reader([line], delimiter=delimiter, strict=True), [])
    except csv.Error:
        return []


def read_header(line: str, schema: FileSchema) -> tuple[str, bool]:
    """(delimiter, whether `line`, the file's first line, is the header)."""
    if "\r" in line.rstrip("\r\n"):
        # The whole file came as one line: its lines end with CR alone.
        raise FileProblem("line_endings", "the lines end with a carriage return (CR) alone, as "
                          "old Mac files did: save the file with LF or CRLF line endings", 1)
    names = list(schema.names)
    declared = schema.delimiter
    candidates = DELIMITERS if declared == "Detect" else (declared,)
    for delimiter in candidates:
        values = split_line(line, delimiter)
        if values == names:
            return delimiter, True
        if not schema.header_required and len(values) == len(names):
            return delimiter, False
    if not schema.header_required and declared != "Detect":
        return declared, False  # a first row of data, checked like the others
    if declared == "Detect":
        raise FileProblem(
            "delimiter_not_found", "no delimiter (comma, semicolon, tab or vertical bar) splits "
            f"the first line into the {len(names)} columns: {','.join(names)}", 1)
    raise FileProblem(*_mismatch(line, names, declared), 1)


def _mismatch(line: str, names: list[str], delimiter: str) -> tuple[str, str]:
    """(code, message) for a first line that is not the header it should be."""
    expected = f"the first line must be the header {delimiter.join(names)}"
    for other in DELIMITERS:
        if other != delimiter and split_line(line, other) == names:
            return ("wrong_delimiter", f"the values are separated by {_NAMES[other]}; this "
                    f"Connection expects {_NAMES[delimiter]}: {expected}")
    found = split_line(line, delimiter)
    if not found or found == [""]:
        return "header_missing", f"{expected}; the first line is empty"
    if [value.casefold() for value in found] == [name.casefold() for name in names]:
        return "header_mismatch", f"{expected} (column names are case-sensitive)"
    missing = [name for name in names if name not in found]
    unexpected = [value for value in found if value not in names]
    details = []
    if missing:
        details.append("missing: " + ", ".join(missing))
    if unexpected:
        details.append("unexpected: " + ", ".join(_short(value) for value in unexpected[:5]))
    if not details:
        details.append("the columns are in another order or repeated")
    return "header_mismatch", f"{expected}; " + "; ".join(details)


def _short(value: str) -> str:
    return repr(value if len(value) <= 40 else value[:40] + "...")
