"""Column checks, compiled from a schema's columns, that check a batch of values
at once.

Each check looks at all the values of one column in a batch (a tuple of
strings) and first asks, with a few calls that run in C (str.join and
str.isdigit, one regular expression over the joined values, set inclusion,
map with a parser), whether they are all fine, which they nearly always are.
Only a batch where that answer is no is checked value by value, to name each
bad one. The two paths must agree: the fast one may only say yes when the slow
one would find nothing, which the tests hold side by side.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable, Iterable, Sequence

from ..api.file_schema import Column
from .currencies import CURRENCY_CODES
from .outcome import ErrorType

# What a single bad value gets: (type, code, message).
Finding = tuple[ErrorType, str, str]
# A batch's findings for one column: (row index, type, code, message).
Found = list[tuple[int, ErrorType, str, str]]

_SHOWN = 40  # characters of a bad value quoted in a message


def show(value: str) -> str:
    """A value quoted for a message: cut short, control characters escaped."""
    cut = value if len(value) <= _SHOWN else value[:_SHOWN] + "..."
    return repr(cut)


class ColumnCheck:
    """What every column has: required, a maximum length; subclasses add the type."""

    kind = "text"

    def __init__(self, column: Column, index: int) -> None:
        self.name = column.name
        self.index = index
        self.required = column.required
        self.max_length = column.max_length

    def problems(self, values: Sequence[str]) -> Found:
        """The bad values of a batch, by row index; empty when all are fine."""
        if self._all_fine(values):
            return []
        found: Found = []
        for row, value in enumerate(values):
            finding = self.finding(value)
            if finding is not None:
                found.append((row, *finding))
        return found

    def _all_fine(self, values: Sequence[str]) -> bool:
        if self.required and not all(values):
            return False
        if self.max_length is not None and max(map(len, values)) > self.max_length:
            return False
        return self.bulk(values)

    def finding(self, value: str) -> Finding | None:
        if not value:
            return ("validation", "required", f"{self.name} is required") if self.required else None
        if self.max_length is not None and len(value) > self.max_length:
            return ("validation", "too_long", f"{self.name} is {len(value)} characters long; "
                                              f"at most {self.max_length} are allowed")
        return self.one(value)

    def bulk(self, values: Sequence[str]) -> bool:
        """True only when one() finds nothing in any non-empty value."""
        return True

    def one(self, value: str) -> Finding | None:
        return None


class StringCheck(ColumnCheck):
    def __init__(self, column: Column, index: int) -> None:
        super().__init__(column, index)
        self.pattern = re.compile(column.pattern) if column.pattern else None

    def bulk(self, values: Sequence[str]) -> bool:
        return self.pattern is None or all(map(self.pattern.fullmatch, filter(None, values)))

    def one(self, value: str) -> Finding | None:
        if self.pattern is None or self.pattern.fullmatch(value):
            return None
        return ("validation", "pattern_mismatch",
                f"{self.name} {show(value)} does not have the expected form "
                f"({self.pattern.pattern})")


class NumberCheck(ColumnCheck):
    """Integer and Decimal: a shape (a regular expression) and bounds."""

    def __init__(self, column: Column, index: int, signed: str, unsigned: str,
                 parse: Callable[[str], float], wrong: str) -> None:
        super().__init__(column, index)
        self.minimum, self.maximum = column.minimum, column.maximum
        self.signed = re.compile(signed)
        # Without negative values, the fast path need not parse a number to know
        # the minimum holds: the unsigned shape says so.
        nonnegative = self.minimum is not None and self.minimum >= 0
        shape = unsigned if nonnegative else signed
        # Possessive quantifiers: a shape never needs to backtrack, and sre runs
        # twice as fast when told so.
        self.shapes = re.compile(f"(?:{shape})?+(?:\n(?:{shape})?+)*+")
        self.parse = parse
        self.wrong = wrong
        self._bounds_in_shape = nonnegative and self.minimum == 0 and self.maximum is None

    def bulk(self, values: Sequence[str]) -> bool:
        joined = "\n".join(values)
        # As many newlines as separators: no value holds one (a quoted value may).
        return (joined.count("\n") == len(values) - 1 and bool(self.shapes.fullmatch(joined))
                and self._in_bounds(values))

    def _in_bounds(self, values: Sequence[str]) -> bool:
        """Whether values of the right shape are all within the bounds."""
        if self._bounds_in_shape or (self.minimum is None and self.maximum is None):
            return True
        # Each distinct value once: numbers with bounds (quantities, counts)
        # repeat a lot, and a set costs less than parsing every value.
        numbers = list(map(self.parse, set(filter(None, values))))
        if not numbers:
            return True
        return (self.minimum is None or min(numbers) >= self.minimum) and (
            self.maximum is None or max(numbers) <= self.maximum)

    def one(self, value: str) -> Finding | None:
        if not self.signed.fullmatch(value):
            return "validation", self.wrong, f"{self.name} must be {self.kind}, not {show(value)}"
        number = self.parse(value)
        if self.minimum is not None and number < self.minimum:
            return ("validation", "below_minimum",
                    f"{self.name} must be at least {self.minimum}, not {show(value)}")
        if self.maximum is not None and number > self.maximum:
            return ("validation", "above_maximum",
                    f"{self.name} must be at most {self.maximum}, not {show(value)}")
        return None


class IntegerCheck(NumberCheck):
    kind = "a whole number such as 42"

    def __init__(self, column: Column, index: int) -> None:
        super().__init__(column, index, r"-?[0-9]++", r"[0-9]++", _whole, "not_an_integer")

    def bulk(self, values: Sequence[str]) -> bool:
        # Unsigned digits, in one pass over the joined values (empty values join
        # to nothing; required was checked before); anything else takes the
        # regular expression.
        joined = "".join(values)
        if joined.isascii() and joined.isdigit():
            return self._in_bounds(values)
        return not joined or super().bulk(values)


def _whole(value: str) -> float:
    """int(), except that a number of more digits than int() converts (4300, a
    guard against slow conversions) is an infinity: beyond any bound."""
    if len(value) <= 4000:
        return int(value)
    return float("-inf") if value.startswith("-") else float("inf")


class DecimalCheck(NumberCheck):
    def __init__(self, column: Column, index: int) -> None:
        scale = column.max_scale
        if scale == 0:
            unsigned = r"[0-9]++"
            self.kind = "a whole number such as 12"
        else:
            digits = "[0-9]++" if scale is None else f"[0-9]{{1,{scale}}}+"
            unsigned = rf"(?:[0-9]++(?:\.{digits})?+|\.{digits})"
            self.kind = ("a decimal number such as 12.50 (a point, no thousands separator"
                         + (f", at most {scale} digits after the point)" if scale else ")"))
        super().__init__(column, index, f"-?{unsigned}", unsigned, float, "not_a_decimal")


class DateCheck(ColumnCheck):
    """Date and DateTime: ISO 8601 (parsed in C) or a strptime format, and a
    maximum age in days. A value's day is its UTC day when it has an offset,
    else the day as written."""

    def __init__(self, column: Column, index: int, today: datetime.date) -> None:
        super().__init__(column, index)
        self.format = column.format
        self.cutoff = (None if column.max_age_days is None
                       else today - datetime.timedelta(days=column.max_age_days))
        self.max_age_days = column.max_age_days
        self.parse: Callable[[str], datetime.date]
        if self.format is not None:
            self.kind = f"a date in the form {self.format}"
            self.parse = self._strptime
        elif column.type == "DateTime":
            self.kind = "an ISO 8601 date and time such as 2025-01-31T13:45:00Z"
            self.parse = datetime.datetime.fromisoformat
        else:
            self.kind = "an ISO 8601 date such as 2025-01-31"
            self.parse = datetime.date.fromisoformat
        self._known: dict[str, datetime.date] = {}  # strptime results, by value

    def _strptime(self, value: str) -> datetime.date:
        assert self.format is not None
        return datetime.datetime.strptime(value, self.format)

    def _oldest(self, values: Iterable[str]) -> datetime.date | None:
        """The earliest of `values`, parsed; ValueError if one does not parse."""
        if self.format is not None:
            # strptime is slow: each distinct value is parsed once (dates repeat).
            values = list(values)
            known = self._known
            if len(known) > 100_000:
                known.clear()
            for value in set(values).difference(known):
                known[value] = self._strptime(value)
            parsed: Iterable[datetime.date] = map(known.__getitem__, values)
        else:
            parsed = map(self.parse, values)
        try:
            return min(parsed, default=None)
        except TypeError:  # times with and without an offset do not compare
            return min(map(_day, map(self.parse, values)), default=None)

    def bulk(self, values: Sequence[str]) -> bool:
        try:
            oldest = self._oldest(filter(None, values))
        except ValueError:
            return False
        return self.cutoff is None or oldest is None or _day(oldest) >= self.cutoff

    def one(self, value: str) -> Finding | None:
        try:
            day = _day(self.parse(value))
        except ValueError:
            return "validation", "not_a_date", f"{self.name} must be {self.kind}, not {show(value)}"
        if self.cutoff is not None and day < self.cutoff:
            return ("contract", "too_old",
                    f"{self.name} {show(value)} is more than {self.max_age_days} days old "
                    f"(the oldest date accepted is {self.cutoff.isoformat()}): "
                    "it is not processed")
        return None


def _day(value: datetime.date) -> datetime.date:
    if isinstance(value, datetime.datetime):
        if value.utcoffset() is not None:
            value = value.astimezone(datetime.UTC)
        return value.date()
    return value


class SetCheck(ColumnCheck):
    """CurrencyCode and Enum: one of a set of values."""

    def __init__(self, column: Column, index: int) -> None:
        super().__init__(column, index)
        if column.type == "CurrencyCode":
            self.allowed = CURRENCY_CODES
            self.code, self.expected = "unknown_currency", "an ISO 4217 currency code such as USD"
        else:
            self.allowed = frozenset(column.values or ())
            shown = ", ".join(column.values or ())
            self.code, self.expected = "not_allowed", f"one of {shown}"
        self._allowed_or_empty = self.allowed | {""}

    def bulk(self, values: Sequence[str]) -> bool:
        return self._allowed_or_empty.issuperset(values)

    def one(self, value: str) -> Finding | None:
        if value in self.allowed:
            return None
        hint = " (values are case-sensitive)" if value.upper() in self.allowed or any(
            value.casefold() == allowed.casefold() for allowed in self.allowed) else ""
        return ("validation", self.code,
                f"{self.name} must be {self.expected}, not {show(value)}{hint}")


def compile_columns(columns: Sequence[Column], today: datetime.date) -> list[ColumnCheck]:
    """The checks of a schema's columns; columns with nothing to check are left out."""
    checks: list[ColumnCheck] = []
    for index, column in enumerate(columns):
        check: ColumnCheck
        if column.type == "String":
            check = StringCheck(column, index)
        elif column.type == "Integer":
            check = IntegerCheck(column, index)
        elif column.type == "Decimal":
            check = DecimalCheck(column, index)
        elif column.type in ("Date", "DateTime"):
            check = DateCheck(column, index, today)
        else:
            check = SetCheck(column, index)
        if not (type(check) is StringCheck and check.pattern is None and not check.required
                and check.max_length is None):
            checks.append(check)
    return checks
