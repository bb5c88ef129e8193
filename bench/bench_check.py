"""The submission checker against a plain csv read of the same file, side by side.

Generates a conversions CSV of the requested size (the reference template's
columns; orders of 1 to 3 consecutive lines; event dates within the last 88
days, so every row is accepted) in a temporary folder, then, in turns, times

- plain: `for row in csv.reader(open(path, newline="", encoding="utf-8"))`,
  what `python -c 'import csv; ...'` costs: parsing and nothing else;
- check: connectors.submissions.check_file with the built-in Conversions
  schema: decoding, parsing, every column's type, the 88-day rule and the
  consecutive-order rule;
- processor: the same file landed with its receipt and taken through the
  namespace processor's pass (discovery, record, claim, check, result file,
  outcome), what a partner waits for after an upload;

and prints rows per second, MB per second and the ratio. Optionally the same
file gzipped (--gzip) for the checker.

    PYTHONPATH=operator python bench/bench_check.py --size-mb 1024 --rounds 3

The console shows every round and the best of each; `--json PATH` writes the
rows with every round's MB/s (bench/benchrows.py describes the format): the
checker and the processor each against the plain read, as "ours" and
"theirs", the ratio of their medians.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import gzip
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

from connectors.submissions import check_file
from connectors.submissions.builtin import CONVERSIONS

sys.path.insert(0, str(Path(__file__).parent))

# bench/benchrows.py, beside this file
import benchrows

HEADER = ",".join(CONVERSIONS.names)
CURRENCIES = ("USD", "EUR", "GBP", "CAD")
CATEGORIES = ("Books", "Electronics", "Home & Garden", "Toys")


def generate(path: Path, size: int, now: datetime.datetime) -> int:
    """Writes about `size` bytes of conversions; returns the number of data rows."""
    rng = random.Random(15)  # noqa: S311 (sample data, not secrets)
    # Event times spread over the last 80 days, a few thousand distinct values
    # per batch, as in a real export.
    start = now - datetime.timedelta(days=80)
    rows = 0
    order = 0
    with path.open("w", encoding="utf-8", newline="") as out:
        out.write(HEADER + "\n")
        written = len(HEADER) + 1
        while written < size:
            lines = []
            for _ in range(20_000):
                order += 1
                moment = start + datetime.timedelta(seconds=order * 3 % (80 * 86400))
                when = moment.strftime("%Y-%m-%dT%H:%M:%SZ")
                currency = CURRENCIES[order % 4]
                category = CATEGORIES[order % 4]
                for item in range(1 + order % 3):
                    lines.append(
                        f"{1000 + order % 7},{20000 + order % 3},{when},ORD-{order:010d},"
                        f"clk{order * 7919 % 10**12:012x},cust-{order % 99991},{currency},"
                        f"{rng.randrange(100, 99999) / 100:.2f},{category},"
                        f"SKU-{(order + item) % 100000:05d},{1 + item}\n")
            block = "".join(lines)
            out.write(block)
            written += len(block)
            rows += len(lines)
    return rows


def plain(path: Path) -> tuple[float, int]:
    begin = time.perf_counter()
    rows = 0
    with path.open(newline="", encoding="utf-8") as handle:
        for _ in csv.reader(handle):
            rows += 1
    return time.perf_counter() - begin, rows - 1  # without the header


def checked(path: Path, now: datetime.datetime) -> tuple[float, int]:
    begin = time.perf_counter()
    result = check_file(path, CONVERSIONS, now)
    elapsed = time.perf_counter() - begin
    if (result.status, result.rows_rejected) != ("Complete", 0):
        raise SystemExit(f"the generated file did not pass: {result}")
    return elapsed, result.rows_accepted


def processed(path: Path, folder: Path) -> tuple[float, int]:
    """The processor's whole path for one landed file: the receipt found, the
    submission recorded and claimed, the file checked, result_<name>.csv
    written, the outcome recorded. The file is linked into a landing area, as
    a listener would have landed it, with its receipt."""
    from connectors.api.processing import Processed, ProcessingTable
    from connectors.landing.area import LandingArea
    from connectors.landing.durable import hash_file
    from connectors.processor.main import Processor, TableFile
    from connectors.processor.report import LoggingReporter
    from connectors.submissions import SubmissionStore, store_path

    root = folder / f"data-{time.time_ns()}"
    area = LandingArea(root, "acme-conversions")
    area.ensure()
    (area.home / path.name).hardlink_to(path)
    area.write_receipt(path.name, path.stat().st_size, hash_file(path))
    table = folder / "processing.json"
    table.write_text(ProcessingTable(connections=[Processed(
        connection="acme-conversions", home="acme-conversions",
        data_type="Conversions")]).render())
    store_path(root).parent.mkdir(parents=True)
    with SubmissionStore(store_path(root)) as store:
        processor = Processor(root, TableFile(table), store, LoggingReporter())
        begin = time.perf_counter()
        checked_files = processor.run_once()
        elapsed = time.perf_counter() - begin
        [submission] = store.history("acme-conversions")
    if checked_files != 1 or submission.status != "Complete":
        raise SystemExit(f"the processor did not complete the file: {submission}")
    shutil.rmtree(root, ignore_errors=True)
    return elapsed, submission.rows_accepted or 0


def line(name: str, seconds: float, rows: int, size: int) -> str:
    return (f"{name:<14} {seconds:7.2f} s  {rows / seconds / 1e6:6.2f} M rows/s  "
            f"{size / seconds / 1e6:7.1f} MB/s")


def json_rows(seconds: dict[str, list[float]], size: int) -> list[benchrows.Row]:
    """MB/s of every round: the checker and the processor against the plain read."""
    def rates(name: str) -> list[float]:
        return [size / x / 1e6 for x in seconds[name]]

    label = f"{size / 1e6:,.0f} MB of conversions"
    plain_read = "plain csv.reader"
    rows = [
        benchrows.row(f"Submission check (Conversions schema) vs {plain_read}, {label}", "MB/s",
                      rates("check"), rates("plain csv"), theirs_name=plain_read),
        benchrows.row(f"Processor pass (receipt to result file) vs {plain_read}, {label}",
                      "MB/s", rates("processor"), rates("plain csv"), theirs_name=plain_read),
    ]
    if "check gzip" in seconds:
        rows.append(benchrows.row(f"Submission check of the same file gzipped, {label}",
                                  "MB/s", rates("check gzip")))
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="file size in MB (1e6 bytes)")
    parser.add_argument("--rounds", type=int, default=3, help="turns of plain and check")
    parser.add_argument("--gzip", action="store_true", help="also check the file gzipped")
    parser.add_argument("--dir", type=Path, default=None, help="where to write (default /tmp)")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the rows, every round's figures, to PATH")
    options = parser.parse_args()
    now = datetime.datetime.now(datetime.UTC)
    folder = Path(tempfile.mkdtemp(prefix="cx-bench-check-", dir=options.dir))
    try:
        path = folder / "conversions.csv"
        begin = time.perf_counter()
        rows = generate(path, options.size_mb * 1_000_000, now)
        size = path.stat().st_size
        print(f"generated {size / 1e6:.0f} MB, {rows:,} rows in "
              f"{time.perf_counter() - begin:.0f} s: {path}")
        with path.open("rb") as handle:  # into the page cache for both sides alike
            while handle.read(1 << 24):
                pass
        best: dict[str, float] = {}
        every: dict[str, list[float]] = {}
        for turn in range(options.rounds):
            for name, run in (("plain csv", lambda: plain(path)),
                              ("check", lambda: checked(path, now)),
                              ("processor", lambda: processed(path, folder))):
                seconds, counted = run()
                if counted != rows:
                    raise SystemExit(f"{name} counted {counted:,} rows, not {rows:,}")
                best[name] = min(seconds, best.get(name, seconds))
                every.setdefault(name, []).append(seconds)
                print(f"round {turn + 1}: " + line(name, seconds, rows, size))
        if options.gzip:
            packed = folder / "conversions.csv.gz"
            with path.open("rb") as source, gzip.open(packed, "wb", compresslevel=6) as sink:
                shutil.copyfileobj(source, sink, 1 << 20)
            seconds, _ = checked(packed, now)
            best["check gzip"] = seconds
            every["check gzip"] = [seconds]
            print(f"gzip ({packed.stat().st_size / 1e6:.0f} MB): "
                  + line("check gzip", seconds, rows, size))
        print("best of each:")
        for name, seconds in best.items():
            print("  " + line(name, seconds, rows, size))
        print(f"  check / plain csv: {best['check'] / best['plain csv']:.2f}x the time")
        print(f"  processor / plain csv: {best['processor'] / best['plain csv']:.2f}x the time")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  peak memory of this process: {peak:.0f} MB")
        benchrows.write(options.json, "check", json_rows(every, size), {
            "size_mb": options.size_mb, "bytes": size, "rows": rows,
            "rounds": options.rounds, "gzip": options.gzip,
            "peak_rss_mb": round(peak)})
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
