"""The checker: rows accepted and rejected, errors named by line and column, and
bad input of every kind answered with a result, never a crash."""

from __future__ import annotations

import datetime
import gc
import gzip
import io
import tracemalloc
from pathlib import Path

import pytest

from connectors.api.file_schema import Column, FileRule, FileSchema
from connectors.submissions import CheckResult, CheckSettings, ReadLimits, check_file
from connectors.submissions.builtin import CONVERSIONS

NOW = datetime.datetime(2025, 3, 1, 12, 0, tzinfo=datetime.UTC)
HEADER = ("CampaignId,ActionTrackerId,EventDate,OrderId,ClickId,CustomerId,CurrencyCode,Amount,"
          "Category,Sku,Quantity")


def row(order: str = "O1", sku: str = "S1", **changes: str) -> str:
    values = {"CampaignId": "1001", "ActionTrackerId": "20001",
              "EventDate": "2025-02-20T10:00:00Z", "OrderId": order, "ClickId": "clk1",
              "CustomerId": "cust1", "CurrencyCode": "USD", "Amount": "12.50",
              "Category": "Books", "Sku": sku, "Quantity": "1"}
    values.update(changes)
    return ",".join(values[name] for name in HEADER.split(","))


def conversions(*rows: str, header: str = HEADER, end: str = "\n") -> bytes:
    return "".join(line + end for line in (header, *rows)).encode()


def check(data: bytes, schema: FileSchema = CONVERSIONS, **settings: object) -> CheckResult:
    return check_file(io.BytesIO(data), schema, NOW, CheckSettings(**settings))  # type: ignore[arg-type]


def codes(result: CheckResult) -> list[tuple[int | None, str, str]]:
    return [(error.line, error.column, error.code) for error in result.errors]


def test_a_good_file_is_complete_with_every_row_accepted(tmp_path: Path) -> None:
    path = tmp_path / "conversions.csv"
    path.write_bytes(conversions(row("O1", "S1"), row("O1", "S2"), row("O2")))
    result = check_file(path, CONVERSIONS, NOW)
    assert (result.status, result.rows_accepted, result.rows_rejected) == ("Complete", 3, 0)
    assert result.errors == ()
    assert result.error_count == 0
    assert result.header
    assert result.delimiter == ","
    assert not result.compressed
    assert result.content_bytes == path.stat().st_size


@pytest.mark.parametrize(("column", "value", "code", "kind"), [
    ("CampaignId", "", "required", "validation"),
    ("CampaignId", "12a", "not_an_integer", "validation"),
    ("CampaignId", "1.5", "not_an_integer", "validation"),
    ("CampaignId", "\uff11", "not_an_integer", "validation"),  # a fullwidth digit
    ("Quantity", "0", "below_minimum", "validation"),
    ("Quantity", "-2", "below_minimum", "validation"),
    ("Amount", "\"12,50\"", "not_a_decimal", "validation"),
    ("Amount", "1.23456", "not_a_decimal", "validation"),
    ("Amount", "1e5", "not_a_decimal", "validation"),
    ("Amount", "-1", "below_minimum", "validation"),
    ("Amount", "1.", "not_a_decimal", "validation"),
    ("EventDate", "31/01/2025", "not_a_date", "validation"),
    ("EventDate", "2025-02-30T10:00:00Z", "not_a_date", "validation"),
    ("EventDate", "2024-01-01T00:00:00Z", "too_old", "contract"),
    ("CurrencyCode", "usd", "unknown_currency", "validation"),
    ("CurrencyCode", "ABC", "unknown_currency", "validation"),
    ("OrderId", "x" * 65, "too_long", "validation"),
    ("Sku", "", "required", "validation"),
])
def test_a_bad_value_rejects_its_row_and_names_line_and_column(
        column: str, value: str, code: str, kind: str) -> None:
    result = check(conversions(row("O1"), row("O2", **{column: value}), row("O3")))
    assert (result.status, result.rows_accepted, result.rows_rejected) == ("Complete", 2, 1)
    assert codes(result) == [(3, column, code)]
    assert result.errors[0].error_type == kind
    assert column in result.errors[0].message


@pytest.mark.parametrize(("value", "accepted"), [
    ("2024-12-03", True),  # exactly 88 days before 2025-03-01
    ("2024-12-02T23:59:59", False),  # 89 days
    ("2024-12-03T01:00:00+05:00", False),  # 2024-12-02 in UTC
    ("2024-12-02T22:00:00-05:00", True),  # 2024-12-03 in UTC
    ("2025-02-28 23:00", True),
])
def test_conversions_older_than_88_days_are_rejected_by_contract(
        value: str, accepted: bool) -> None:
    result = check(conversions(row(EventDate=value)))
    assert result.rows_accepted == int(accepted)
    assert codes(result) == ([] if accepted else [(2, "EventDate", "too_old")])


def test_the_age_rule_reads_naive_and_offset_times_in_one_batch() -> None:
    result = check(conversions(row("O1", EventDate="2025-02-01T10:00:00"),
                               row("O2", EventDate="2025-02-01T10:00:00Z"),
                               row("O3", EventDate="2024-01-01T10:00:00+01:00")))
    assert codes(result) == [(4, "EventDate", "too_old")]


def test_lines_of_one_order_must_be_consecutive() -> None:
    result = check(conversions(row("O1", "S1"), row("O1", "S2"), row("O2"), row("O1", "S3"),
                               row("O1", "S4"), row("O3")))
    assert (result.rows_accepted, result.rows_rejected) == (4, 2)
    assert codes(result) == [(5, "OrderId", "not_consecutive"), (6, "OrderId", "not_consecutive")]
    assert result.errors[0].error_type == "contract"


@pytest.mark.parametrize("batch_rows", [1, 2, 3, 1024])
def test_consecutive_holds_across_batches(batch_rows: int) -> None:
    orders = ["A", "A", "B", "B", "B", "C", "A", "D", "D", "B"]
    result = check(conversions(*(row(order, f"S{i}") for i, order in enumerate(orders))),
                   batch_rows=batch_rows)
    assert [error.line for error in result.errors] == [8, 11]


def test_rows_without_a_key_neither_close_a_key_nor_break_the_rule() -> None:
    schema = FileSchema(columns=[Column(name="OrderId"), Column(name="Sku")],
                        rules=[FileRule(type="Consecutive", columns=["OrderId"])])
    data = b"OrderId,Sku\nA,1\n,2\nA,3\n,4\nB,5\n"
    result = check(data, schema)
    assert (result.rows_accepted, result.rows_rejected) == (5, 0)


def test_a_consecutive_rule_over_two_columns() -> None:
    schema = FileSchema(columns=[Column(name="Store"), Column(name="OrderId")],
                        rules=[FileRule(type="Consecutive", columns=["Store", "OrderId"])])
    result = check(b"Store,OrderId\nS1,A\nS2,A\nS1,A\n", schema)
    assert codes(result) == [(4, "Store", "not_consecutive")]


def test_every_error_is_counted_but_only_the_first_are_kept() -> None:
    rows = [row(f"O{i}", Quantity="0" if i % 2 else "1") for i in range(5000)]
    result = check(conversions(*rows), max_errors=10)
    assert (result.rows_accepted, result.rows_rejected) == (2500, 2500)
    assert result.error_count == 2500
    assert result.errors_truncated
    assert [error.line for error in result.errors] == list(range(3, 23, 2))


def test_quoted_values_commas_and_newlines_keep_line_numbers_right() -> None:
    data = conversions(row("O1", Category='"Books, used"'),
                       row("O2", Category='"two\nlines"'),
                       row("O3", Quantity="x"),
                       header=f'"CampaignId",{HEADER.split(",", 1)[1]}')
    result = check(data, batch_rows=2)
    assert result.rows_accepted == 2
    assert codes(result) == [(5, "Quantity", "not_an_integer")]


@pytest.mark.parametrize(("prefix", "end"), [(b"", "\n"), (b"\xef\xbb\xbf", "\n"),
                                             (b"\xef\xbb\xbf", "\r\n"), (b"", "\r\n")])
def test_utf8_with_or_without_bom_and_either_line_end(prefix: bytes, end: str) -> None:
    data = prefix + conversions(row("O1", Category="Bücher"), row("O2"), end=end)
    result = check(data)
    assert (result.status, result.rows_accepted, result.rows_rejected) == ("Complete", 2, 0)


def test_the_last_line_needs_no_newline() -> None:
    result = check(conversions(row("O1")) + row("O2", Quantity="x").encode())
    assert codes(result) == [(3, "Quantity", "not_an_integer")]


def test_invalid_utf8_rejects_that_line_only_and_names_it() -> None:
    bad = row("O2").encode()[:-1] + b"\xe9"  # Latin-1, not UTF-8
    data = conversions(row("O1"), "RAW", row("O3")).replace(b"RAW", bad)
    result = check(data)
    assert (result.rows_accepted, result.rows_rejected) == (2, 1)
    assert codes(result) == [(3, "", "invalid_utf8")]
    assert "UTF-8" in result.errors[0].message


def test_a_header_that_is_not_utf8_fails_the_file() -> None:
    result = check(conversions(row(), header=HEADER.replace("Sku", "Sk\xfc")).replace(
        "Skü".encode(), b"Sk\xfc"))
    assert (result.status, codes(result)) == ("Failed", [(1, "", "invalid_utf8")])


@pytest.mark.parametrize(("data", "code"), [
    (b"", "empty_file"),
    (b"\xef\xbb\xbf", "empty_file"),
    (gzip.compress(b""), "empty_file"),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "binary_file"),
    (b"some text\x00 with a NUL", "binary_file"),
    (b"PK\x03\x04\x14\x00", "archive"),
    ("\ufeff".encode("utf-16-le") + HEADER.encode("utf-16-le"), "utf16"),
    (b"-----BEGIN PGP MESSAGE-----\n\nhQEMA\n", "encrypted"),
    (b"\n" + conversions(row()), "header_missing"),
    (conversions(row()).replace(b",", b";"), "wrong_delimiter"),
    (conversions(row()).replace(b",", b"\t"), "wrong_delimiter"),
    (conversions(row(), header=HEADER.lower()), "header_mismatch"),
    (conversions(row(), header=HEADER.rsplit(",", 1)[0]), "header_mismatch"),
    (conversions(row()).replace(b"\n", b"\r"), "line_endings"),
])
def test_a_file_that_is_not_the_schemas_csv_fails_with_one_clear_error(
        data: bytes, code: str) -> None:
    result = check(data)
    assert result.status == "Failed"
    assert result.failure is not None
    assert result.failure.code == code
    assert result.errors[0] == result.failure
    assert result.error_count == 1
    assert (result.rows_accepted, result.rows_rejected) == (0, 0)


def test_a_header_mismatch_says_what_differs() -> None:
    header = HEADER.replace("Sku", "SKU").replace(",Quantity", ",Qty")
    result = check(conversions(header=header))
    assert result.failure is not None
    assert "missing: Sku, Quantity" in result.failure.message
    assert "unexpected: 'SKU', 'Qty'" in result.failure.message


def test_a_header_only_file_is_complete_with_no_rows() -> None:
    result = check(conversions())
    assert (result.status, result.rows_accepted, result.rows_rejected, result.errors) == (
        "Complete", 0, 0, ())


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_detect_takes_the_delimiter_that_splits_the_header(delimiter: str) -> None:
    schema = CONVERSIONS.model_copy(update={"delimiter": "Detect"})
    data = conversions(row("O1"), row("O2", Quantity="x")).replace(b",", delimiter.encode())
    result = check(data, schema)
    assert result.delimiter == delimiter
    assert codes(result) == [(3, "Quantity", "not_an_integer")]


def test_without_a_required_header_the_first_line_may_be_data() -> None:
    schema = CONVERSIONS.model_copy(update={"header_required": False})
    assert check(conversions(row("O1")), schema).rows_accepted == 1
    result = check(conversions(row("O2"), header=row("O1")), schema)
    assert (result.header, result.rows_accepted) == (False, 2)
    result = check(conversions(row("O2"), header="1,2,3"), schema)
    assert (result.status, result.rows_accepted, codes(result)) == (
        "Complete", 1, [(1, "", "field_count")])


@pytest.mark.parametrize(("line", "code"), [
    (row() + ",extra", "field_count"),
    ("1,2,3", "field_count"),
    (row(Category='"Books"x'), "csv_syntax"),
])
def test_a_row_the_csv_does_not_fit_is_rejected_and_the_next_rows_go_on(
        line: str, code: str) -> None:
    result = check(conversions(row("O1"), line, row("O3"), row("O4")))
    assert (result.rows_accepted, result.rows_rejected) == (3, 1)
    assert codes(result) == [(3, "", code)]


def test_blank_lines_are_skipped() -> None:
    result = check(conversions(row("O1"), "", row("O2"), "", ""))
    assert (result.rows_accepted, result.rows_rejected, result.errors) == (2, 0, ())


def test_a_line_over_the_limit_is_rejected_and_the_lines_after_it_keep_their_numbers() -> None:
    limits = ReadLimits(max_line_bytes=1024)
    data = conversions(row("O1"), "x" * 5000, row("O3", Quantity="x"), row("O4"))
    result = check(data, limits=limits)
    assert (result.rows_accepted, result.rows_rejected) == (2, 2)
    assert codes(result) == [(3, "", "line_too_long"), (4, "Quantity", "not_an_integer")]


def test_a_first_line_over_the_limit_fails_the_file() -> None:
    result = check(b"x" * 5000 + b"\n", limits=ReadLimits(max_line_bytes=1024))
    assert result.failure is not None
    assert (result.failure.code, result.failure.line) == (
        "line_too_long", 1)


class HugeLine(io.RawIOBase):
    """A header, a row, a line of `size` bytes that is never held anywhere, and
    another row: what a 2 GB line looks like to the checker."""

    def __init__(self, size: int) -> None:
        self.parts = [conversions(row("O1")), None, b"\n" + row("O3").encode() + b"\n"]
        self.left = size
        self.block = b"a" * (1 << 20)

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        while self.parts:
            part = self.parts[0]
            if part is None and self.left > 0:
                take = min(size, self.left, len(self.block))
                self.left -= take
                return self.block[:take] if take < len(self.block) else self.block
            self.parts.pop(0)
            if part:
                return part
        return b""


def test_a_2gb_line_is_skipped_in_bounded_memory() -> None:
    tracemalloc.start()
    try:
        result = check_file(HugeLine(2 << 30), CONVERSIONS, NOW)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.rows_accepted, result.rows_rejected) == (2, 1)
    assert codes(result) == [(3, "", "line_too_long")]
    assert peak < 16 << 20, f"{peak:,} bytes at the peak"


class LongRows(io.RawIOBase):
    """A header, then `count` rows of two values of `width` bytes each, made as read."""

    def __init__(self, count: int, width: int) -> None:
        self.pending = b"Key,Text\n"
        self.count = count
        self.text = b"t" * width

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if not self.pending and self.count:
            self.count -= 1
            self.pending = b"k" * 10 + b"," + self.text + b"\n"
        data, self.pending = self.pending[:size], self.pending[size:]
        return data


def test_long_rows_make_short_batches_so_memory_stays_bounded() -> None:
    schema = FileSchema(columns=[Column(name="Key", required=True), Column(name="Text")])
    tracemalloc.start()
    try:
        result = check_file(LongRows(600, 100_000), schema, NOW)  # type: ignore[arg-type]
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (result.rows_accepted, result.content_bytes > 60_000_000) == (600, True)
    assert peak < 24 << 20, f"{peak:,} bytes at the peak for a 60 MB file"


def gzipped(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def test_gzip_is_recognized_by_its_magic_bytes(tmp_path: Path) -> None:
    path = tmp_path / "conversions.csv"  # no .gz: the name says nothing
    plain = b"\xef\xbb\xbf" + conversions(row("O1"), row("O2", Quantity="x"))
    path.write_bytes(gzipped(plain[:50]) + gzipped(plain[50:]))  # two members
    result = check_file(path, CONVERSIONS, NOW)
    assert result.compressed
    assert result.content_bytes == len(plain)
    assert codes(result) == [(3, "Quantity", "not_an_integer")]


def bomb(member_bytes: int, members: int) -> bytes:
    """Many gzip members of a repeated CSV row: it expands about a thousand times."""
    member = gzipped((row() + "\n").encode() * (member_bytes // 100))
    return gzipped(conversions()) + member * members


def test_a_gzip_bomb_is_refused_after_a_few_megabytes() -> None:
    data = bomb(1 << 20, 4096)  # 4 GB when expanded, 4 MB as sent
    result = check(data)  # default limits: judged from 16 MB on
    assert result.status == "Failed"
    assert result.failure is not None
    assert result.failure.code == "gzip_bomb"
    assert "100 times" in result.failure.message
    # Stopped after a few megabytes, not 4 GB (memory is bounded by blocks
    # whatever the size: the 2 GB line test measures it).
    assert result.content_bytes < 32 << 20
    assert result.rows_accepted == 0
    assert result.rows_rejected > 0


def test_gzip_beyond_the_size_limit_is_refused() -> None:
    result = check(gzipped(conversions(*(row(f"O{i}") for i in range(2000)))),
                   limits=ReadLimits(max_content_bytes=50_000))
    assert result.failure is not None
    assert result.failure.code == "gzip_too_large"


@pytest.mark.parametrize("damage", ["truncated", "garbage"])
def test_a_damaged_gzip_fails_and_counts_the_rows_read_as_rejected(damage: str) -> None:
    data = gzipped(conversions(*(row(f"O{i}") for i in range(20000))))
    data = data[: len(data) // 2] if damage == "truncated" else data[:-8] + b"\x00" * 8
    result = check(data)
    assert result.failure is not None
    assert result.failure.code == "gzip_corrupt"
    assert result.rows_accepted == 0
    assert result.rows_rejected > 0


def test_bad_deflate_data_is_a_result_not_an_exception() -> None:
    data = gzipped(conversions(row()))
    broken = data[:12] + bytes(b ^ 0x5A for b in data[12:30]) + data[30:]
    result = check(broken)
    assert result.failure is not None
    assert result.failure.code == "gzip_corrupt"


def test_the_collector_is_paused_during_a_check_and_running_after() -> None:
    assert gc.isenabled()
    check(conversions(row()))
    assert gc.isenabled()
    gc.disable()
    try:
        check(conversions(row()))
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_custom_date_format_and_enum_and_pattern() -> None:
    schema = FileSchema(columns=[
        Column(name="Day", type="Date", format="%d/%m/%Y", max_age_days=10, required=True),
        Column(name="Kind", type="Enum", values=["Add", "Remove"]),
        Column(name="Hash", pattern="[0-9a-f]{4}"),
    ])
    data = b"Day,Kind,Hash\n25/02/2025,Add,ab12\n01/01/2025,add,\n31/02/2025,,ZZZZ\n"
    result = check(data, schema)
    assert codes(result) == [(3, "Day", "too_old"), (3, "Kind", "not_allowed"),
                             (4, "Day", "not_a_date"), (4, "Hash", "pattern_mismatch")]
    assert "case-sensitive" in result.errors[1].message


# The fast path of a column check (whole batch at once) may only say "all fine"
# when the value-by-value path finds nothing: held side by side on tricky values.
TRICKY = ["", "0", "1", "-1", "--1", "+1", "007", "1.5", "-0.5", ".5", "1.", ".", "-", "1.23456",
          "12345678901234567890", "1e3", " 1", "1 ", "\uff11", "\u0661", "²", "1_000", "nan",
          "2025-02-20", "2025-02-20T10:00:00Z", "2025-02-20 10:00", "2024-12-02", "2024-12-03",
          "20250220", "2025-02-30", "2025-02-20T25:00", "2025-02-20T10:00:00+05:00",
          "USD", "usd", "EUR ", "Add", "Remove", "ab12", "AB12", "x" * 70, "\n", "a\nb",
          "9" * 5000, "-" + "9" * 5000]
COLUMNS = [
    Column(name="I", type="Integer"), Column(name="Ir", type="Integer", required=True),
    Column(name="Ib", type="Integer", minimum=1, maximum=100),
    Column(name="In", type="Integer", minimum=-5),
    Column(name="D", type="Decimal"), Column(name="Ds", type="Decimal", max_scale=2, minimum=0),
    Column(name="D0", type="Decimal", max_scale=0), Column(name="Db", type="Decimal", maximum=10),
    Column(name="Da", type="Date"), Column(name="Dt", type="DateTime", max_age_days=88),
    Column(name="Df", type="Date", format="%Y%m%d", max_age_days=88),
    Column(name="C", type="CurrencyCode"), Column(name="E", type="Enum", values=["Add", "Remove"]),
    Column(name="S", max_length=64, pattern="[0-9a-f]{4}"), Column(name="Sr", required=True),
]


@pytest.mark.parametrize("column", COLUMNS, ids=lambda column: column.name)
def test_fast_and_slow_paths_of_every_column_check_agree(column: Column) -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    from connectors.submissions.columns import compile_columns

    [check_] = compile_columns([column], NOW.date())

    @settings(max_examples=80, deadline=None)
    @given(st.lists(st.sampled_from(TRICKY) | st.text(max_size=8), min_size=1, max_size=8))
    def agree(values: list[str]) -> None:
        slow = [i for i, value in enumerate(values) if check_.finding(value) is not None]
        assert [found[0] for found in check_.problems(tuple(values))] == slow
        if check_._all_fine(tuple(values)):
            assert slow == []
        if all(check_.finding(value) is None for value in values):
            # A value the slow path accepts passes the fast path too, except a
            # mix of times with and without an offset (taken value by value).
            assert check_._all_fine(tuple(values)) or column.type == "DateTime"

    agree()
