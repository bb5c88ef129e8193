"""What a check finds: errors, counts, and the bounded list of errors kept."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

ErrorType = Literal["validation", "contract"]
Status = Literal["Complete", "Failed"]


class FileProblem(Exception):
    """The file cannot be read as the schema's CSV: the check stops, and the
    submission is Failed with this one error. `line` is None when the problem
    is the file as a whole (not CSV, a gzip bomb)."""

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.line = line


@dataclass(frozen=True, slots=True)
class CheckError:
    """One error. `line` is the file's line number (1 is the first line, the
    header when there is one); None when the error is about the whole file.
    `column` is empty when the error is not about one column."""

    line: int | None
    column: str
    error_type: ErrorType
    code: str
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"line": self.line, "column": self.column, "errorType": self.error_type,
                "code": self.code, "message": self.message}


@dataclass(frozen=True)
class CheckResult:
    """The outcome of checking one file.

    Complete: the file was read to its end; rows_accepted go on downstream,
    rows_rejected do not. Failed: the file could not be read as the schema's
    CSV (`failure` says why); nothing of it goes downstream, so rows_accepted
    is 0 and rows_rejected counts the rows read before the check stopped.
    error_count counts every error; `errors` keeps the first ones found (the
    setting max_errors), sorted by line, the failure first.
    """

    status: Status
    rows_accepted: int
    rows_rejected: int
    error_count: int
    errors: tuple[CheckError, ...]
    failure: CheckError | None = None
    content_bytes: int = 0
    compressed: bool = False
    delimiter: str | None = None
    header: bool = False

    @property
    def errors_truncated(self) -> bool:
        return self.error_count > len(self.errors)


# A problem found in a batch of rows: (row index in the batch, column index, type,
# code, message). Tuples sort by row then column: the order errors are reported in.
Problem = tuple[int, int, ErrorType, str, str]


class ErrorSink:
    """Counts every error and keeps the first `limit`, so that a file where every
    row is wrong costs no more memory than one with a single error."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.count = 0
        self.kept: list[CheckError] = []

    @property
    def full(self) -> bool:
        return len(self.kept) >= self.limit

    def add(self, error: CheckError) -> None:
        self.count += 1
        if not self.full:
            self.kept.append(error)

    def add_problems(self, problems: list[Problem], lines: Sequence[int],
                     names: Sequence[str]) -> None:
        """Problems of one batch; `lines[i]` is the line of the batch's row i."""
        self.count += len(problems)
        room = self.limit - len(self.kept)
        if room <= 0:
            return
        problems.sort()
        self.kept.extend(
            CheckError(lines[row], names[column] if column >= 0 else "", kind, code, message)
            for row, column, kind, code, message in problems[:room]
        )
