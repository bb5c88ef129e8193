"""bench/run.py's pure parts, from the results of a full run kept in
tests/corpus/bench_results.json: the console table, README's table and its
rewriting between the markers, and the operator's rows against the issue's
targets. No benchmark runs here."""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURE = ROOT / "tests" / "corpus" / "bench_results.json"


def load(name: str, path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def run() -> ModuleType:
    """bench/run.py, which imports its sibling bench/benchrows.py; sys.path is
    put back as it was (bench/ holds an operator.py)."""
    saved = list(sys.path)
    try:
        load("benchrows", ROOT / "bench" / "benchrows.py")
        return load("bench_run", ROOT / "bench" / "run.py")
    finally:
        sys.path[:] = saved


@pytest.fixture
def results() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(FIXTURE.read_text())
    return data


def table_rows(text: str) -> dict[str, list[str]]:
    """The console table's lines by their first column, split into columns."""
    lines = text.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("what "))
    found = {}
    for line in lines[header + 2:]:
        cells = re.split(r" {2,}", line)
        found[cells[0]] = cells
    return found


def test_console_table_has_the_columns_and_each_rows_medians(
    run: ModuleType, results: dict[str, Any]
) -> None:
    text = run.render_table(results)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("what "))
    assert re.split(r" {2,}", header) == ["what", "ours", "theirs", "ratio", "target", "met?",
                                          "rounds"]
    rows = table_rows(text)
    assert len(rows) == len(results["rows"]) == 13

    assert rows["SFTP pull job vs OpenSSH sftp get -r, 1,000 x 10 KB"][1:] == [
        "1,098 files/s", "980 files/s", "1.12x", "-", "-",
        "ours 1,136 / 1,031 / 1,098; theirs 980 / 917 / 1,002",
    ]
    # A time: lower is better, and the ratio is still above 1 when ours is better.
    assert rows["FTP push job vs lftp mirror -R, 1 GiB"][1:4] == ["151 MB/s", "202 MB/s",
                                                                  "0.75x"]
    assert rows["Operator, 1,000 Connections: all Ready, from the first create"][1:] == [
        "14.2 s", "-", "-", "<= 15 s", "yes", "ours 14.2 / 16.0 / 13.9"]
    assert rows["Operator, 1,000 Connections: create to Ready, p95"][4:6] == ["<= 5 s", "NO"]


def test_console_table_says_when_where_and_what_failed(
    run: ModuleType, results: dict[str, Any]
) -> None:
    text = run.render_table(results)
    first = text.splitlines()[0]
    assert first.startswith("Measured 2025-06-01 with `make bench` on Intel(R) Xeon(R) "
                            "Processor, 2 cores, 23.5 GiB memory, Linux 6.1.0-21-amd64, "
                            "Python 3.11.7 (commit 0b803a3): the median of 3 rounds")
    assert "QUICK" not in text
    rows = table_rows(text)
    failed = rows["Operator, 10,000 Connections: all Ready, from the first create"]
    assert failed[1:] == ["failed: exit status 1: TimeoutError: the control plane did not start",
                          "-", "-", "<= 150 s", "NO", "-"]
    assert rows["bench/listeners.py (listeners)"][1].startswith("failed: exit status 2: needs root")


def test_a_quick_run_says_so_first(run: ModuleType, results: dict[str, Any]) -> None:
    results |= {"quick": True, "rounds": 1}
    for text in (run.render_table(results), run.render_markdown(results)):
        assert text.startswith("QUICK RUN (--quick: small sizes, 1 round)")
        assert "these figures measure nothing" in text.splitlines()[0]
        assert ": one round;" in text


def test_markdown_table_has_a_line_per_row_with_the_date_and_machine(
    run: ModuleType, results: dict[str, Any]
) -> None:
    text = run.render_markdown(results)
    lines = text.splitlines()
    assert lines[0].startswith("Measured 2025-06-01 with `make bench` on Intel(R) Xeon(R) "
                               "Processor, 2 cores, 23.5 GiB memory")
    assert lines[1] == ""
    assert lines[2] == "| what | ours | theirs | ratio | target | met? | rounds |"
    assert lines[3] == "|---|---|---|---|---|---|---|"
    body = lines[4:]
    assert len(body) == 13
    assert body[0] == ("| SFTP listener upload vs OpenSSH sshd, 1 GiB | 405 MB/s | 431 MB/s "
                       "| 0.94x | - | - | ours 412 / 398 / 405; theirs 431 / 440 / 425 |")
    assert ("| Operator, 1,000 Connections: operator peak RSS | 140 MB | - | - | <= 150 MB "
            "| yes | ours 140 / 141 / 139 |") in body
    assert all(line.count(" | ") == 6 for line in body)


def test_a_pipe_in_a_name_does_not_break_the_markdown_table(
    run: ModuleType, results: dict[str, Any]
) -> None:
    results["rows"] = results["rows"][:1]
    results["rows"][0]["name"] = "a | b"
    body = run.render_markdown(results).splitlines()[-1]
    assert body.startswith("| a \\| b | 405 MB/s |")


README_TEXT = """# Project

## Benchmarks

Words before.

<!-- bench:begin -->
| what | command | measured |
|---|---|---|
| old row | `python bench/x.py` | 1 s |
<!-- bench:end -->

Words after.
"""


def test_readme_is_rewritten_between_the_markers_only(
    run: ModuleType, results: dict[str, Any]
) -> None:
    block = run.render_markdown(results)
    text = run.rewrite_readme(README_TEXT, block)
    head, rest = text.split("<!-- bench:begin -->\n")
    inside, tail = rest.split("<!-- bench:end -->")
    assert head == README_TEXT.split("<!-- bench:begin -->")[0]
    assert tail == "\n\nWords after.\n"
    assert inside == block
    assert "old row" not in text
    assert "| SFTP pull job vs OpenSSH sftp get -r, 1,000 x 10 KB | 1,098 files/s |" in inside
    # Once more with the same results: nothing changes.
    assert run.rewrite_readme(text, block) == text


def test_readme_without_its_markers_is_refused(run: ModuleType) -> None:
    with pytest.raises(ValueError, match="once each"):
        run.rewrite_readme("no markers\n", "table\n")
    twice = README_TEXT + "<!-- bench:begin -->\n"
    with pytest.raises(ValueError, match="once each"):
        run.rewrite_readme(twice, "table\n")
    backwards = "<!-- bench:end -->\nx\n<!-- bench:begin -->\n"
    with pytest.raises(ValueError, match="comes before"):
        run.rewrite_readme(backwards, "table\n")


def test_the_projects_readme_has_the_markers_and_keeps_the_rest(
    run: ModuleType, results: dict[str, Any]
) -> None:
    readme = (ROOT / "README.md").read_text()
    text = run.rewrite_readme(readme, run.render_markdown(results))
    before, after = readme.split("<!-- bench:begin -->"), text.split("<!-- bench:begin -->")
    assert before[0] == after[0]
    assert before[1].split("<!-- bench:end -->")[1] == after[1].split("<!-- bench:end -->")[1]
    assert before[0].rstrip().endswith("own (the rows are described in `bench/benchrows.py`).")


def test_operator_rows_compare_the_median_of_rounds_with_the_targets(run: ModuleType) -> None:
    def result(seconds: float, p95: float, requests: float, rss: float,
               ready: int = 1000) -> dict[str, Any]:
        return {"connections": 1000, "all_ready": ready == 1000, "ready": ready,
                "first_create_to_last_ready_seconds": seconds, "latency_p95_seconds": p95,
                "operator_api_requests_per_connection": requests, "operator_peak_rss_mb": rss}

    rows = run.operator_rows(1000, [result(14.0, 4.0, 3.5, 120.0), None,
                                    result(18.0, 6.0, 4.5, 160.0, ready=990),
                                    result(15.0, 5.0, 3.9, 149.0)],
                             ["exit status 1: the control plane did not start"])
    by_name = {row["name"].split(": ", 1)[1]: row for row in rows}
    ready = by_name["all Ready, from the first create"]
    # The round where 990 of 1,000 turned Ready measures no "all Ready" time.
    assert ready["ours_rounds"] == [14.0, 15.0]
    assert ready["met"] is False
    assert "990 of 1,000 Ready" in ready["note"]
    assert "1 of 4 rounds failed" in ready["note"]
    p95 = by_name["create to Ready, p95"]
    assert (p95["ours_rounds"], p95["median_ours"], p95["target"], p95["met"]) == (
        [4.0, 6.0, 5.0], 5.0, {"at_most": 5}, True)
    assert (p95["theirs_rounds"], p95["ratio"], p95["unit"]) == (None, None, "s")
    assert by_name["operator API requests per Connection"]["met"] is True
    assert by_name["operator peak RSS"]["median_ours"] == 149.0
    assert by_name["operator peak RSS"]["met"] is True

    # Another count has its own targets, or none.
    ten = {row["name"].split(": ", 1)[1]: row["target"] for row in run.operator_rows(
        10000, [result(140.0, 30.0, 3.0, 450.0)])}
    assert ten["all Ready, from the first create"] == {"at_most": 150}
    assert ten["operator peak RSS"] == {"at_most": 500}
    assert ten["create to Ready, p95"] is None
    assert all(row["target"] is None and row["met"] is None
               for row in run.operator_rows(20, [result(1.0, 1.0, 1.0, 1.0)]))


def test_an_operator_that_never_wrote_its_json_leaves_failed_rows(run: ModuleType) -> None:
    rows = run.operator_rows(1000, [None, None], ["exit status 2: unrecognized arguments: --json",
                                                  "exit status 2: unrecognized arguments: --json"])
    assert [row["failed"] for row in rows] == ["exit status 2: unrecognized arguments: --json"] * 4
    assert [row["met"] for row in rows] == [False] * 4  # every metric has a target at 1,000


def test_the_fixture_is_what_the_scripts_write(run: ModuleType, results: dict[str, Any]) -> None:
    """Medians and ratios in the fixture agree with benchrows, so the tests
    above read what a real run writes."""
    benchrows = sys.modules["benchrows"]
    for row in copy.deepcopy(results["rows"]):
        if "failed" in row:
            continue
        again = benchrows.row(row["name"], row["unit"], row["ours_rounds"],
                              row["theirs_rounds"], higher_is_better=row["higher_is_better"],
                              target=row["target"])
        for key in ("median_ours", "median_theirs", "ratio", "met"):
            assert again[key] == row[key], (row["name"], key)


def test_comparisons_get_the_issues_ratio_targets(run: ModuleType) -> None:
    rows = [
        {"name": "FTP listener upload vs vsftpd, 1 GiB", "median_ours": 990.0, "ratio": 0.76},
        {"name": "FTP listener download vs vsftpd, 1 GiB", "median_ours": 1500.0, "ratio": 1.02},
        {"name": "FTP listener upload+fsync vs vsftpd, 1 GiB", "median_ours": 990.0,
         "ratio": 0.82},
        {"name": "SFTP pull job vs OpenSSH sftp get -r, 1,000 x 10 KB", "failed": "exit 1"},
    ]
    marked = run.with_targets(rows)
    assert marked[0]["target"] == {"ratio_at_least": 0.9}
    assert marked[0]["met"] is False
    assert marked[1]["target"] == {"ratio_at_least": 1.0}
    assert marked[1]["met"] is True
    assert "target" not in marked[2]  # no target in the issue for it
    assert "target" not in marked[3]  # a failed row keeps what it said
