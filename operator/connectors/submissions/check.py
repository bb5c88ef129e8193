"""Checks a submitted file against its schema, streaming, in bounded memory.

    result = check_file(path, schema, now=datetime.now(UTC))

Bad input is a result, never an exception. A file that cannot be read as the
schema's CSV (empty, binary, UTF-16, a header that does not match, a gzip bomb
or damaged gzip) gives a Failed result with one clear error. A bad row (a bad
value, a line that is not UTF-8, a line over the limit however long) is
rejected with its line, column and reason, and the rest of the file goes on.
Only the machine's own failures (the file cannot be opened or read) raise.

Memory does not grow with the file: one block (128 KiB), one line at most
(the line limit, 128 KiB), one batch of rows (about 4 MiB; 512 lines at the
limit at worst), the first errors, and the keys a Consecutive rule remembers
(groups.py: about 70 MB for its million keys, once a file has that many).

How it stays fast (a measure is in bench/bench_check.py): the csv module parses,
in C, lines that reading.py cuts and decodes a block at a time; rows come in
batches, and each column of a batch is checked with a few calls that run in C
(columns.py). A batch whose rows map one to one onto lines, all with the right
number of fields (nearly all batches), needs no Python work per row at all.
"""

from __future__ import annotations

import csv
import datetime
import gc
import os
from collections.abc import Hashable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import TYPE_CHECKING, BinaryIO, cast

from ..api.file_schema import FileSchema
from .columns import ColumnCheck, compile_columns, show
from .groups import ConsecutiveTracker
from .header import read_header
from .outcome import CheckError, CheckResult, ErrorSink, FileProblem, Problem
from .reading import Content, Lines, ReadLimits

if TYPE_CHECKING:
    from _csv import Reader as _Reader


# What a batch of rows should weigh: enough rows to make the per-batch work
# negligible, few enough bytes to stay small.
BATCH_BYTES = 4 << 20


@dataclass(frozen=True)
class CheckSettings:
    max_errors: int = 1000
    """Errors kept (all are counted)."""
    limits: ReadLimits = field(default_factory=ReadLimits)
    """Line length, gzip size and ratio."""
    max_group_keys: int = 1_000_000
    """Keys a Consecutive rule remembers exactly (groups.py)."""
    batch_rows: int = 512
    """The most rows checked together (fewer when rows are long: BATCH_BYTES).
    With the line limit, it bounds a batch's memory: 512 x 128 KiB at worst."""
    pause_gc: bool = True
    """Pause the cyclic garbage collector while checking. A check makes many
    short-lived lists and tuples and no cycles; the collector's passes over them
    cost a fifth of the time. Other threads' cycles wait until the end."""


def check_file(
    source: str | os.PathLike[str] | BinaryIO,
    schema: FileSchema,
    now: datetime.datetime,
    settings: CheckSettings = CheckSettings(),
) -> CheckResult:
    """Checks a file (a path, or a binary stream read to its end) against `schema`.
    `now` is when the check runs, for maximum ages (naive means UTC)."""
    today = (now if now.tzinfo is None else now.astimezone(datetime.UTC)).date()
    with _paused_gc(settings.pause_gc):
        if isinstance(source, str | os.PathLike):
            with open(source, "rb") as stream:
                return _Check(schema, today, settings).run(stream)
        return _Check(schema, today, settings).run(source)


@contextmanager
def _paused_gc(pause: bool) -> Iterator[None]:
    was_enabled = gc.isenabled()
    if pause:
        gc.disable()
    try:
        yield
    finally:
        if pause and was_enabled:
            gc.enable()


class _Check:
    """One check of one file: the state that goes from batch to batch."""

    def __init__(self, schema: FileSchema, today: datetime.date, settings: CheckSettings) -> None:
        self.schema = schema
        self.settings = settings
        self.names = schema.names
        self.width = len(self.names)
        self.columns: list[ColumnCheck] = compile_columns(schema.columns, today)
        self.groups: list[tuple[list[int], ConsecutiveTracker]] = []
        for rule in schema.rules:
            indices = [self.names.index(name) for name in rule.columns]
            blank = "" if len(indices) == 1 else ("",) * len(indices)
            self.groups.append((indices, ConsecutiveTracker(blank, settings.max_group_keys)))
        self.sink = ErrorSink(settings.max_errors)
        self.accepted = 0
        self.rejected = 0
        self.header = False
        self.delimiter: str | None = None

    def run(self, stream: BinaryIO) -> CheckResult:
        content = Content(stream, self.settings.limits)
        try:
            self._read(content)
        except FileProblem as problem:
            failure = CheckError(problem.line, "", "validation", problem.code, problem.message)
            return CheckResult(
                status="Failed", rows_accepted=0, rows_rejected=self.accepted + self.rejected,
                error_count=self.sink.count + 1,
                errors=(failure, *sorted(self.sink.kept, key=_line_order)),
                failure=failure, content_bytes=content.size, compressed=content.compressed,
                delimiter=self.delimiter, header=self.header)
        return CheckResult(
            status="Complete", rows_accepted=self.accepted, rows_rejected=self.rejected,
            error_count=self.sink.count, errors=tuple(sorted(self.sink.kept, key=_line_order)),
            content_bytes=content.size, compressed=content.compressed,
            delimiter=self.delimiter, header=self.header)

    def _read(self, content: Content) -> None:
        chunks = iter(Lines(content, self.settings.limits, self._line_problem))
        first = next(chunks, None)
        if first is None:
            raise FileProblem("empty_file", "the file is empty" + (
                f": it needs a header line ({','.join(self.names)}) and rows"
                if self.schema.header_required else ""))
        self.delimiter, self.header = read_header(first[0], self.schema)
        reader = csv.reader(chain.from_iterable(chain((first,), chunks)),
                            delimiter=self.delimiter, strict=True)
        if self.header:
            next(reader)
        self._rows(reader, content)

    def _rows(self, reader: _Reader, content: Content) -> None:
        most = self.settings.batch_rows
        size = min(64, most)
        while True:
            start, read = reader.line_num, content.size
            batch: list[list[str]] = []
            broken = None
            try:
                # extend keeps the rows read before an error: none is lost.
                batch.extend(islice(reader, size))
            except csv.Error as err:
                broken = str(err)
            except FileProblem:
                self.rejected += len(batch)
                raise
            if batch:
                self._batch(batch, start, reader.line_num, broken is None)
            if broken is not None:
                self._unreadable(reader.line_num, broken)
            elif len(batch) < size:
                return
            size = _batch_size(len(batch), content.size - read, most)

    def _batch(self, batch: list[list[str]], start: int, end: int, whole: bool) -> None:
        """Rows that came from lines start+1..end (and, if not whole, a record
        the csv module could not read after them)."""
        if whole and end - start == len(batch):
            try:
                # zip(strict=True) checks that every row has as many values as
                # the first, without a pass of its own.
                columns = list(zip(*batch, strict=True))
            except ValueError:
                columns = []
            if len(columns) == self.width:
                self._check(batch, range(start + 1, end + 1), columns)
                return
        # A blank line, a record over several lines, a wrong number of fields or
        # a broken record: work out each row's line, by the newlines it holds.
        rows: list[list[str]] = []
        lines: list[int] = []
        line = start + 1
        for row in batch:
            if len(row) == self.width:
                rows.append(row)
                lines.append(line)
            elif row:  # an empty row is a blank line, or one reading.py rejected
                self._wrong_width(line, len(row))
            line += 1 + sum(value.count("\n") for value in row)
        if rows:
            self._check(rows, lines)

    def _check(self, rows: list[list[str]], lines: Sequence[int],
               columns: list[tuple[str, ...]] | None = None) -> None:
        if columns is None:
            columns = list(zip(*rows, strict=True))
        problems: list[Problem] = []
        for check in self.columns:
            for row, kind, code, message in check.problems(columns[check.index]):
                problems.append((row, check.index, kind, code, message))
        for indices, tracker in self.groups:
            keys: Sequence[Hashable] = (
                columns[indices[0]] if len(indices) == 1
                else list(zip(*(columns[index] for index in indices), strict=True)))
            for row in tracker.breaks(keys):
                problems.append((row, indices[0], "contract", "not_consecutive",
                                 self._not_consecutive(indices, keys[row])))
        if not problems:
            self.accepted += len(rows)
            return
        bad = len({problem[0] for problem in problems})
        self.rejected += bad
        self.accepted += len(rows) - bad
        self.sink.add_problems(problems, lines, self.names)

    def _not_consecutive(self, indices: list[int], key: Hashable) -> str:
        names = ",".join(self.names[index] for index in indices)
        parts = (key,) if isinstance(key, str) else cast(tuple[str, ...], key)
        shown = ",".join(map(show, parts))
        return (f"the lines of {names} {shown} must be consecutive: it came earlier in the "
                "file, and other lines came between")

    def _wrong_width(self, line: int, width: int) -> None:
        self.rejected += 1
        hint = (" (is a value with the delimiter in it missing its quotes?)" if width > self.width
                else "")
        self.sink.add(CheckError(line, "", "validation", "field_count",
                                 f"the line has {width} values; the schema has {self.width}"
                                 + hint))

    def _unreadable(self, line: int, reason: str) -> None:
        self.rejected += 1
        code = "field_too_long" if "field larger than field limit" in reason else "csv_syntax"
        self.sink.add(CheckError(line, "", "validation", code,
                                 f"the line cannot be read as CSV: {reason}"))

    def _line_problem(self, line: int, code: str, message: str) -> None:
        self.rejected += 1
        self.sink.add(CheckError(line, "", "validation", code, message))


def _batch_size(rows: int, size: int, most: int) -> int:
    """Rows for the next batch: about BATCH_BYTES of them, judged by the last
    batch, between 16 and `most`. Long rows make short batches, so that memory
    stays near BATCH_BYTES; short rows (nearly every file) make full ones."""
    per_row = max(1, size // max(1, rows))
    return max(16, min(most, BATCH_BYTES // per_row))


def _line_order(error: CheckError) -> int:
    return -1 if error.line is None else error.line
