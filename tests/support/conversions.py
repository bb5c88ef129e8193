"""Conversions files for tests of the processor: valid rows dated recently (the
schema refuses conversions older than 88 days), some rows made bad on purpose."""

from __future__ import annotations

import datetime

from connectors.submissions.builtin import CONVERSIONS

HEADER = ",".join(CONVERSIONS.names)


def conversions_file(rows: int, bad_lines: tuple[int, ...] = ()) -> bytes:
    """A conversions CSV of `rows` rows; the rows on the file's lines `bad_lines`
    (line 1 is the header) carry an Amount that is not a number."""
    day = (datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=2)).strftime(
        "%Y-%m-%dT%H:%M:%SZ")
    lines = [HEADER]
    for index in range(rows):
        line_number = index + 2
        amount = "lots" if line_number in bad_lines else f"{index % 100}.50"
        lines.append(f"1001,20001,{day},O{index},clk{index},cust{index},USD,{amount},"
                     f"Books,S{index},1")
    return ("\n".join(lines) + "\n").encode()
