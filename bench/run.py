"""Every benchmark, one table: `make bench`.

Runs bench/listeners.py, bench/transfer.py, bench/bench_check.py and
bench/operator.py as subprocesses, each with `--json PATH` into a results
folder, gathers their rows (bench/benchrows.py describes them) into one table
on stdout, and writes it with the date and the machine to bench/results.json:

    python bench/run.py                          # everything, median of 3 rounds
    python bench/run.py --only listeners,check   # a subset
    python bench/run.py --quick                  # small sizes, 1 round: the harness only
    python bench/run.py --from bench/results.json --readme   # README's table from the JSON

The table's columns: what was measured, the median of ours and of theirs,
their ratio (above 1: ours is better, whatever the unit), the issue's target
where there is one and whether the median meets it, and every round's figure.

The operator benchmark has nothing to compare with: its rows hold its own
figures against the issue's targets (OPERATOR_TARGETS), one run of
bench/operator.py per round and per count of Connections. A script that fails
leaves a row saying so and the table is printed all the same; the exit status
is then 1.

With --readme, the table replaces what is between `<!-- bench:begin -->` and
`<!-- bench:end -->` in README.md, under a line with the date and the machine.
The scripts' own output goes to stderr and to a log beside their JSON, so that
stdout holds the table alone. Needs root, like the scripts it runs.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

# bench/benchrows.py, beside this file
import benchrows

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
RESULTS = BENCH / "results.json"
README = REPO / "README.md"
BEGIN = "<!-- bench:begin -->"
END = "<!-- bench:end -->"

PARTS = ("listeners", "transfer", "check", "operator")
SCRIPTS = {"listeners": "listeners.py", "transfer": "transfer.py", "check": "bench_check.py",
           "operator": "operator.py"}
# Sizes of a --quick run: enough to see every part work, nothing to measure by.
QUICK = {"listeners": ["--size-mib", "8"], "transfer": ["--small", "50", "--large-mib", "8"],
         "check": ["--size-mb", "8"]}
QUICK_OPERATOR_COUNTS = (20,)

# bench/operator.py's JSON keys, what they are, their unit.
OPERATOR_METRICS = (
    ("first_create_to_last_ready_seconds", "all Ready, from the first create", "s"),
    ("latency_p95_seconds", "create to Ready, p95", "s"),
    ("operator_api_requests_per_connection", "operator API requests per Connection",
     "requests"),
    ("operator_peak_rss_mb", "operator peak RSS", "MB"),
)
# The targets, by number of Connections.
OPERATOR_TARGETS: dict[int, dict[str, dict[str, float]]] = {
    1000: {
        "first_create_to_last_ready_seconds": {"at_most": 15},
        "latency_p95_seconds": {"at_most": 5},
        "operator_api_requests_per_connection": {"at_most": 4},
        "operator_peak_rss_mb": {"at_most": 150},
    },
    10000: {
        "first_create_to_last_ready_seconds": {"at_most": 150},
        "operator_peak_rss_mb": {"at_most": 500},
    },
}

# The targets for the comparisons, as ratios ours/theirs (above 1: ours
# is better), by the start of a row's name.
RATIO_TARGETS: dict[str, float] = {
    "SFTP listener upload vs": 0.95,
    "SFTP listener download vs": 0.9,
    "FTP listener upload vs": 0.9,
    "FTP listener download vs": 1.0,
    "SFTP pull job vs OpenSSH sftp get -r, 1,000": 2.0,
    "SFTP pull job vs OpenSSH sftp get -r, 1 GiB": 0.8,
}


def with_targets(rows: list[benchrows.Row]) -> list[benchrows.Row]:
    """The rows, each comparison that the issue sets a ratio for carrying it."""
    marked = []
    for row in rows:
        target = next(({"ratio_at_least": value} for start, value in RATIO_TARGETS.items()
                       if str(row.get("name", "")).startswith(start)), None)
        if target is not None and not row.get("target") and "failed" not in row:
            row = {**row, "target": target,
                   "met": benchrows.met(target, row.get("median_ours"), row.get("ratio"))}
        marked.append(row)
    return marked


# ---- rows ---------------------------------------------------------------------------------


def operator_rows(count: int, rounds: Sequence[dict[str, Any] | None],
                  failures: Sequence[str] = ()) -> list[benchrows.Row]:
    """The rows of `count` Connections from bench/operator.py's JSON of each
    round (None for a round that wrote none; `failures` says why)."""
    targets = OPERATOR_TARGETS.get(count, {})
    measured = [result for result in rounds if result is not None]
    rows = []
    for key, what, unit in OPERATOR_METRICS:
        name = f"Operator, {count:,} Connections: {what}"
        target = targets.get(key)
        if not measured:
            reason = "; ".join(dict.fromkeys(failures)) or "no result"
            rows.append(benchrows.failed_row(name, reason, target, unit))
            continue
        notes = [f"{len(rounds) - len(measured)} of {len(rounds)} rounds failed"
                 ] if len(measured) < len(rounds) else []
        usable = measured
        if key == "first_create_to_last_ready_seconds":
            # Only a round where every Connection turned Ready measures this.
            usable = [result for result in measured if result.get("all_ready", True)]
            for result in measured:
                if not result.get("all_ready", True):
                    notes.append(f"{result.get('ready', '?')} of {count:,} Ready before "
                                 "the timeout in one round")
        values = [float(result[key]) for result in usable if result.get(key) is not None]
        if not values:
            rows.append(benchrows.failed_row(
                name, "; ".join(notes) or f"bench/operator.py gave no {key}", target, unit))
            continue
        row = benchrows.row(name, unit, values, higher_is_better=False, target=target)
        if len(usable) < len(measured) and target:
            row["met"] = False
        if notes:
            row["note"] = "; ".join(notes)
        rows.append(row)
    return rows


def script_failed_row(part: str, reason: str) -> benchrows.Row:
    return benchrows.failed_row(f"bench/{SCRIPTS[part]} ({part})", reason)


# ---- rendering ----------------------------------------------------------------------------


def number(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def target_text(target: dict[str, float] | None, unit: str) -> str:
    if not target:
        return "-"
    parts = []
    for kind, value in target.items():
        if kind == "at_most":
            parts.append(f"<= {value:,g} {unit}")
        elif kind == "at_least":
            parts.append(f">= {value:,g} {unit}")
        elif kind == "ratio_at_least":
            parts.append(f"ratio >= {value:g}x")
    return ", ".join(parts)


def cells(row: benchrows.Row) -> list[str]:
    """what, ours, theirs, ratio, target, met?, rounds."""
    unit = row.get("unit", "")
    met = {True: "yes", False: "NO", None: "-"}[row.get("met")]
    if "failed" in row:
        return [row["name"], f"failed: {row['failed']}", "-", "-",
                target_text(row.get("target"), unit), met, "-"]
    theirs = row.get("median_theirs")
    rounds = "ours " + " / ".join(number(x) for x in row["ours_rounds"])
    if row.get("theirs_rounds") is not None:
        rounds += "; theirs " + " / ".join(number(x) for x in row["theirs_rounds"])
    if row.get("note"):
        rounds += f" ({row['note']})"
    ratio = row.get("ratio")
    return [
        row["name"],
        f"{number(row['median_ours'])} {unit}",
        f"{number(theirs)} {unit}" if theirs is not None else "-",
        f"{ratio:.2f}x" if ratio is not None else "-",
        target_text(row.get("target"), unit),
        met,
        rounds,
    ]


HEADER = ["what", "ours", "theirs", "ratio", "target", "met?", "rounds"]


def machine_text(machine: dict[str, Any]) -> str:
    return (f"{machine.get('cpu', '?')}, {machine.get('cores', '?')} cores, "
            f"{machine.get('memory_gib', '?')} GiB memory, Linux {machine.get('kernel', '?')}, "
            f"Python {machine.get('python', '?')}")


def summary_lines(results: dict[str, Any]) -> list[str]:
    date = str(results.get("date", ""))[:10] or "an unknown date"
    commit = f" (commit {results['commit']})" if results.get("commit") else ""
    rounds = results.get("rounds", "?")
    lines = [
        f"Measured {date} with `make bench` on {machine_text(results.get('machine', {}))}"
        f"{commit}: " + ("one round" if rounds == 1 else f"the median of {rounds} rounds")
        + "; a ratio above 1 means ours is better (ours/theirs of a rate, theirs/ours of a "
        "time)."
    ]
    if results.get("quick"):
        lines.insert(0, "QUICK RUN (--quick: small sizes, 1 round): it tries the harness; "
                        "these figures measure nothing.")
    return lines


def render_table(results: dict[str, Any]) -> str:
    """The console table: aligned columns, a line before with what, when, where."""
    table = [HEADER, *(cells(row) for row in results["rows"])]
    widths = [max(len(line[i]) for line in table) for i in range(len(HEADER) - 1)]
    out = [*summary_lines(results), ""]
    for index, line in enumerate(table):
        out.append("  ".join([*(cell.ljust(width) for cell, width in zip(line, widths,
                                                                          strict=False)),
                              line[-1]]).rstrip())
        if index == 0:
            out.append("  ".join("-" * width for width in [*widths, len(HEADER[-1])]))
    return "\n".join(out) + "\n"


def render_markdown(results: dict[str, Any]) -> str:
    """README's block: the line of date and machine, then the table."""
    def escape(cell: str) -> str:
        return cell.replace("|", "\\|")

    out = [line for text in summary_lines(results) for line in (text, "")]
    out += ["| " + " | ".join(HEADER) + " |",
           "|" + "---|" * len(HEADER)]
    out += ["| " + " | ".join(escape(cell) for cell in cells(row)) + " |"
            for row in results["rows"]]
    return "\n".join(out) + "\n"


def rewrite_readme(text: str, block: str) -> str:
    """`text` with what is between the markers replaced by `block`; the
    markers stay. ValueError unless each marker is there once, in order."""
    if text.count(BEGIN) != 1 or text.count(END) != 1:
        raise ValueError(f"README must hold {BEGIN} and {END} once each")
    head, rest = text.split(BEGIN)
    if END not in rest:
        raise ValueError(f"{END} comes before {BEGIN} in README")
    tail = rest.split(END)[1]
    return f"{head}{BEGIN}\n{block.strip()}\n{END}{tail}"


# ---- the run ------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    facts: dict[str, Any] = {"cores": os.cpu_count(), "kernel": platform.release(),
                             "python": platform.python_version(),
                             "cpu": platform.processor() or platform.machine()}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                facts["cpu"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                facts["memory_gib"] = round(int(line.split()[1]) / 2**20, 1)
                break
    except OSError:
        pass
    return facts


def commit() -> str | None:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, check=True,
                              capture_output=True, text=True).stdout.strip()
        changed = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=REPO).returncode != 0
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("-dirty" if changed else "")


@dataclass
class Outcome:
    code: int
    last_line: str


def run_script(part: str, arguments: list[str], log: Path) -> Outcome:
    """Runs bench/<script> with this tree's code; its output goes to stderr and `log`."""
    command = [sys.executable, str(BENCH / SCRIPTS[part]), *arguments]
    path = os.environ.get("PYTHONPATH")
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join([str(REPO / "operator"), *([path] if path else [])])}
    print(f"bench: {' '.join(command)}", file=sys.stderr, flush=True)
    last = ""
    with log.open("a") as output, subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
        cwd=REPO,
    ) as process:
        assert process.stdout is not None
        for line in process.stdout:
            sys.stderr.write(line)
            output.write(line)
            if line.strip():
                last = line.strip()
    return Outcome(process.returncode, last)


def read_rows(path: Path) -> list[benchrows.Row] | None:
    try:
        rows: list[benchrows.Row] = json.loads(path.read_text())["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return rows


def failure(outcome: Outcome) -> str:
    return f"exit status {outcome.code}" + (f": {outcome.last_line[:120]}"
                                             if outcome.last_line else "")


def run_part(part: str, options: argparse.Namespace, folder: Path) -> list[benchrows.Row]:
    if part == "operator":
        return run_operator(options, folder)
    output = folder / f"{part}.json"
    arguments = ["--rounds", str(options.rounds), "--json", str(output)]
    if options.quick:
        arguments += QUICK[part]
    outcome = run_script(part, arguments, folder / f"{part}.log")
    rows = read_rows(output) or []
    for row in rows:
        row["script"] = part
    if outcome.code != 0 or not rows:
        rows.append({**script_failed_row(part, failure(outcome)), "script": part})
    return rows


def run_operator(options: argparse.Namespace, folder: Path) -> list[benchrows.Row]:
    rows = []
    for count in options.operator_counts:
        rounds: list[dict[str, Any] | None] = []
        failures = []
        for number_of in range(options.rounds):
            output = folder / f"operator-{count}-{number_of + 1}.json"
            outcome = run_script("operator", ["--count", str(count), "--json", str(output)],
                                 folder / "operator.log")
            try:
                rounds.append(json.loads(output.read_text()))
            except (OSError, ValueError):
                rounds.append(None)
                failures.append(failure(outcome))
        rows += [{**row, "script": "operator"} for row in operator_rows(count, rounds, failures)]
    return rows


def parse_only(text: str) -> list[str]:
    parts = [part.strip() for part in text.split(",") if part.strip()]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise argparse.ArgumentTypeError(
            f"unknown parts {', '.join(unknown) or '(none)'}; choose among {', '.join(PARTS)}")
    return [part for part in PARTS if part in parts]


def parse_counts(text: str) -> list[int]:
    try:
        return [int(item) for item in text.split(",") if item.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"counts are numbers, as in 1000,10000: {text}") from None


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", type=parse_only, default=list(PARTS), metavar="PART,PART",
                        help=f"run only these parts, among {','.join(PARTS)} (default: all)")
    parser.add_argument("--quick", action="store_true",
                        help="small sizes and 1 round, to try the harness; the table says so")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each benchmark")
    parser.add_argument("--operator-counts", type=parse_counts, default=[1000, 10000],
                        metavar="N,N", help="Connections per operator run (default 1000,10000)")
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="where the scripts' JSON and logs go (default: a new folder in "
                        "/tmp)")
    parser.add_argument("--output", type=Path, default=RESULTS,
                        help=f"the gathered results (default {RESULTS.relative_to(REPO)})")
    parser.add_argument("--from", dest="source", type=Path, default=None, metavar="JSON",
                        help="run nothing: print the table of results written before")
    parser.add_argument("--readme", action="store_true",
                        help=f"rewrite the table in README.md between {BEGIN} and {END}")
    options = parser.parse_args(argv)

    if options.source is not None:
        results = json.loads(options.source.read_text())
    else:
        if options.quick:
            options.rounds = 1
            options.operator_counts = list(QUICK_OPERATOR_COUNTS)
        stamp = datetime.datetime.now(datetime.UTC)
        folder = options.results_dir or Path(
            f"/tmp/bench-results-{stamp.strftime('%Y%m%d-%H%M%S')}")
        folder.mkdir(parents=True, exist_ok=True)
        print(f"bench: the scripts' JSON and logs go to {folder}", file=sys.stderr)
        rows = []
        for part in options.only:
            rows += run_part(part, options, folder)
        results = {
            "date": stamp.isoformat(timespec="seconds"),
            "quick": options.quick,
            "rounds": options.rounds,
            "parts": options.only,
            "machine": machine(),
            "commit": commit(),
            "ratio_orientation": benchrows.RATIO_ORIENTATION,
            "results_dir": str(folder),
            "rows": rows,
        }
        results["rows"] = with_targets(rows)
        options.output.write_text(json.dumps(results, indent=2) + "\n")
        print(f"bench: wrote {options.output}", file=sys.stderr)
    results["rows"] = with_targets(results["rows"])
    sys.stdout.write(render_table(results))
    if options.readme:
        README.write_text(rewrite_readme(README.read_text(), render_markdown(results)))
        print(f"bench: rewrote the table in {README}", file=sys.stderr)
    return 1 if any("failed" in row for row in results["rows"]) else 0


if __name__ == "__main__":
    raise SystemExit(main())
