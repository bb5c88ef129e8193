"""The declarative schema of a submitted file: columns, header, delimiter, rules.

A schema is plain data (strings, numbers, booleans, lists), so that it fits in a
CRD as it is: a Connection may carry one inline (spec.submissions.schema)
instead of the built-in schema of its data type (submissions/builtin.py). The
models share the API's base (camelCase on the wire, unknown fields refused, no
type coercion), and the rules between fields are written once, as CEL for the
API server and as Python for everything else (connectors.api.rules), exactly
like the Connection's.

What a schema can say, and why no more:
- per column: a type, required or not, a maximum length, and what the type
  allows (a regular expression for strings, bounds and decimal places for
  numbers, a strptime format and a maximum age for dates, the allowed values of
  an Enum);
- per file: whether the first line must be the header, the delimiter (or
  Detect), and rules across rows. The one rule across rows is Consecutive (the
  lines of one key, such as an order's items, come one after another). A rule
  such as "unique" is absent on purpose: checking it exactly needs memory that
  grows with the file, and a check must run in bounded memory.

Quoting is RFC 4180's (double quotes, doubled to escape), which every
spreadsheet and CSV library writes; it is not a setting.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .common import Model
from .rules import Rule, broken_rules, cel_extension

ColumnType = Literal["String", "Integer", "Decimal", "Date", "DateTime", "CurrencyCode", "Enum"]
Delimiter = Literal[",", ";", "\t", "|", "Detect"]
# The delimiters Detect chooses from, most common first.
DELIMITERS: tuple[str, ...] = (",", ";", "\t", "|")

# A column name is printable text; the header line is compared with it exactly.
COLUMN_NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"


def _regex(value: str) -> str:
    try:
        re.compile(value)
    except re.error as err:
        raise PydanticCustomError(
            "regex", "pattern is not a valid regular expression: {error}", {"error": str(err)}
        ) from err
    return value


def _date_format(value: str) -> str:
    """A strptime format must read back what it writes, or no value could ever match."""
    sample = datetime.datetime(2024, 12, 31, 23, 59, 58)
    try:
        ok = "%" in value and datetime.datetime.strptime(sample.strftime(value), value) is not None
    except ValueError:
        ok = False
    if not ok:
        raise PydanticCustomError(
            "date_format",
            "format must be a strptime format such as '%Y-%m-%d' or '%d/%m/%Y %H:%M', "
            "not {value!r}", {"value": value},
        )
    return value


COLUMN_RULES: tuple[Rule, ...] = (
    Rule(
        ".values",
        "(self.type == 'Enum') == has(self.values)",
        "values lists the allowed values of an Enum column, and only of one: set type: Enum "
        "with values, or remove values",
        lambda c: (c.type == "Enum") == (c.values is not None),
    ),
    Rule(
        ".pattern",
        "!has(self.pattern) || self.type == 'String'",
        "pattern applies only to String columns: remove it or set type: String",
        lambda c: c.pattern is None or c.type == "String",
    ),
    Rule(
        ".format",
        "!has(self.format) || self.type in ['Date', 'DateTime']",
        "format applies only to Date and DateTime columns (a strptime format such as "
        "'%d/%m/%Y'): remove it",
        lambda c: c.format is None or c.type in ("Date", "DateTime"),
    ),
    Rule(
        ".maxAgeDays",
        "!has(self.maxAgeDays) || self.type in ['Date', 'DateTime']",
        "maxAgeDays applies only to Date and DateTime columns: remove it",
        lambda c: c.max_age_days is None or c.type in ("Date", "DateTime"),
    ),
    Rule(
        ".minimum",
        "(!has(self.minimum) && !has(self.maximum)) || self.type in ['Integer', 'Decimal']",
        "minimum and maximum apply only to Integer and Decimal columns: remove them",
        lambda c: (c.minimum is None and c.maximum is None) or c.type in ("Integer", "Decimal"),
    ),
    Rule(
        ".maximum",
        "!has(self.minimum) || !has(self.maximum) || self.minimum <= self.maximum",
        "maximum must not be below minimum",
        lambda c: c.minimum is None or c.maximum is None or c.minimum <= c.maximum,
    ),
    Rule(
        ".maxScale",
        "!has(self.maxScale) || self.type == 'Decimal'",
        "maxScale (digits after the decimal point) applies only to Decimal columns: remove it",
        lambda c: c.max_scale is None or c.type == "Decimal",
    ),
)


class Column(Model):
    """One column of the file, in the order the file has them."""

    model_config = ConfigDict(**Model.model_config, json_schema_extra=cel_extension(COLUMN_RULES))
    cel_rules: ClassVar[tuple[Rule, ...]] = COLUMN_RULES

    name: Annotated[str, Field(min_length=1, max_length=128, pattern=COLUMN_NAME_PATTERN)]
    """The column's name, as the header line spells it."""
    type: ColumnType = "String"
    """String, Integer, Decimal (a point, no thousands separator), Date (ISO 8601
    YYYY-MM-DD unless format says otherwise), DateTime (ISO 8601, such as
    2025-01-31T13:45:00Z; a date alone means midnight), CurrencyCode (ISO 4217,
    such as USD) or Enum (one of values)."""
    required: bool = False
    """A required value may not be empty."""
    max_length: Annotated[int, Field(ge=1, le=1 << 20)] | None = None
    """The longest value, in characters."""
    pattern: (
        Annotated[str, Field(min_length=1, max_length=256), AfterValidator(_regex)] | None
    ) = None
    """String: a regular expression (Python's) every non-empty value must match in
    full. It runs on the partner's data: keep it free of nested repetition."""
    values: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=256)]],
        Field(min_length=1, max_length=1000),
    ] | None = None
    """Enum: the allowed values, compared exactly (case matters)."""
    minimum: int | None = None
    """Integer and Decimal: the smallest value allowed."""
    maximum: int | None = None
    """Integer and Decimal: the largest value allowed."""
    max_scale: Annotated[int, Field(ge=0, le=18)] | None = None
    """Decimal: the most digits allowed after the decimal point."""
    format: (
        Annotated[str, Field(min_length=2, max_length=64), AfterValidator(_date_format)] | None
    ) = None
    """Date and DateTime: a strptime format such as '%d/%m/%Y' instead of ISO 8601.
    ISO 8601 is checked several times faster."""
    max_age_days: Annotated[int, Field(ge=0, le=36500)] | None = None
    """Date and DateTime: a row whose date is more days before the check than this
    is rejected with a contract error (the date as written, in days)."""

    @model_validator(mode="after")
    def _coherent(self) -> Column:
        _raise_broken(self, COLUMN_RULES)
        return self


class FileRule(Model):
    """A rule across rows."""

    type: Literal["Consecutive"]
    """Consecutive: all the lines that share the values of `columns` come one after
    another (the items of one order, for example); a key that comes back after
    other lines is rejected with a contract error."""
    columns: Annotated[
        list[Annotated[str, Field(min_length=1, max_length=128)]], Field(min_length=1, max_length=4)
    ]
    """The columns whose values make the key."""


SCHEMA_RULES: tuple[Rule, ...] = (
    Rule(
        ".columns",
        "self.columns.all(c, self.columns.exists_one(d, d.name == c.name))",
        "column names must be unique",
        lambda s: len({c.name for c in s.columns}) == len(s.columns),
    ),
    Rule(
        ".rules",
        "!has(self.rules) || self.rules.all(r, r.columns.all(n, "
        "self.columns.exists(c, c.name == n)))",
        "every column a rule names must be one of the schema's columns",
        lambda s: all(n in {c.name for c in s.columns} for r in s.rules for n in r.columns),
    ),
)


class FileSchema(Model):
    """What a submitted CSV file must look like."""

    model_config = ConfigDict(**Model.model_config, json_schema_extra=cel_extension(SCHEMA_RULES))
    cel_rules: ClassVar[tuple[Rule, ...]] = SCHEMA_RULES

    columns: Annotated[list[Column], Field(min_length=1, max_length=256)]
    """The columns, in the order the file has them."""
    header_required: bool = True
    """The first line must be the header, naming every column in order. When false,
    a first line that names the columns is still read as the header."""
    delimiter: Delimiter = ","
    """The character between values: ",", ";", a tab or "|", or Detect to take
    whichever of these splits the first line into the schema's columns."""
    rules: list[FileRule] = Field(default_factory=list, max_length=8)
    """Rules across rows, such as Consecutive."""

    @model_validator(mode="after")
    def _coherent(self) -> FileSchema:
        _raise_broken(self, SCHEMA_RULES)
        return self

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(column.name for column in self.columns)


def _raise_broken(model: object, rules: tuple[Rule, ...]) -> None:
    """The Python half of the CEL rules: a schema that breaks one is never built,
    so the checker only ever sees coherent schemas."""
    broken = broken_rules(model, rules)
    if broken:
        raise PydanticCustomError(
            "schema_rule", "; ".join(f"{rule.field[1:]}: {rule.message}" for rule in broken)
        )
