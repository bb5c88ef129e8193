"""`connectors submissions` as the processor's pod runs it: the command in its own
process, reading a real store that SubmissionStore wrote on a data root."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.submissions import CheckError, CheckResult, SubmissionStore, store_path

OPERATOR = Path(__file__).resolve().parents[2] / "operator"
START = 1_740_830_400.0  # 2025-03-01T12:00:00Z
CHECKED = "2025-03-01T12:00:00Z"


def connectors(*args: str, data_root_env: Path | None = None,
               ) -> subprocess.CompletedProcess[str]:
    """`python -m connectors ...` of this checkout, with CONNECTORS_DATA_ROOT
    set only when asked."""
    env = {k: v for k, v in os.environ.items() if k != "CONNECTORS_DATA_ROOT"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(OPERATOR), env.get("PYTHONPATH")]))
    if data_root_env is not None:
        env["CONNECTORS_DATA_ROOT"] = str(data_root_env)
    return subprocess.run([sys.executable, "-m", "connectors", *args], env=env, text=True,
                          capture_output=True, check=False, timeout=60)


def rejected(line: int) -> CheckError:
    return CheckError(line, "Amount", "validation", "not_a_decimal",
                      f"'x{line}' is not a decimal number")


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data root whose store holds, for acme-conversions: 1 clean file, 1 with
    5 rejected rows of which 3 errors are stored, 1 Failed, 1 waiting; and one
    file of another Connection."""
    root = tmp_path / "data"
    store_path(root).parent.mkdir(parents=True)
    with SubmissionStore(store_path(root), max_stored_errors=3, clock=lambda: START) as store:
        for n in range(1, 5):
            store.record("acme-conversions", f"conversions_{n}.csv", 100 + n, f"{n:064x}",
                         f"trace-{n}", f"2025-03-01T0{n}:00:00Z")
        store.record("globex-audiences", "audiences_1.csv", 7, "f" * 64, "trace-g",
                     "2025-03-01T05:00:00Z")
        claims = store.claim("processor-0", limit=3, connection="acme-conversions")
        assert [c.submission.id for c in claims] == [1, 2, 3]
        assert store.mark_checked(claims[0], CheckResult("Complete", 10, 0, 0, ()))
        assert store.mark_checked(claims[1], CheckResult(
            "Complete", 5, 5, 5, tuple(rejected(line) for line in range(2, 7))))
        binary = CheckError(None, "", "validation", "binary_file", "the file is binary")
        assert store.mark_checked(claims[2], CheckResult("Failed", 0, 0, 1, (binary,),
                                                         failure=binary))
    return root


def table(stdout: str) -> list[list[str]]:
    """The rows under the header, split on the runs of spaces between columns."""
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("ID "))
    assert re.split(r"\s{2,}", lines[header]) == ["ID", "NAME", "STATUS", "ROWS OK",
                                                   "ROWS REJECTED", "RECEIVED", "CHECKED"]
    return [re.split(r"\s{2,}", line) for line in lines[header + 1:]]


def test_the_history_newest_first_after_the_counts(data: Path) -> None:
    result = connectors("submissions", "--connection", "acme-conversions", "--data", str(data))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines()[0] == (
        "Connection acme-conversions: 4 submissions: 2 complete (1 with rejected rows), "
        f"1 failed, 1 waiting; rows 15 accepted, 5 rejected; last received "
        f"2025-03-01T04:00:00Z, last checked {CHECKED}")
    assert table(result.stdout) == [
        ["4", "conversions_4.csv", "Received", "-", "-", "2025-03-01T04:00:00Z", "-"],
        ["3", "conversions_3.csv", "Failed", "0", "0", "2025-03-01T03:00:00Z", CHECKED],
        ["2", "conversions_2.csv", "Complete", "5", "5", "2025-03-01T02:00:00Z", CHECKED],
        ["1", "conversions_1.csv", "Complete", "10", "0", "2025-03-01T01:00:00Z", CHECKED],
    ]
    assert "audiences_1.csv" not in result.stdout
    newest = connectors("submissions", "--connection", "acme-conversions", "--data", str(data),
                        "--limit", "2")
    assert [row[0] for row in table(newest.stdout)] == ["4", "3"]


def test_failed_lists_only_failed_files_and_files_with_rejected_rows(data: Path) -> None:
    result = connectors("submissions", "--connection", "acme-conversions", "--failed",
                        "--data", str(data))
    assert result.returncode == 0, result.stderr
    assert [(row[0], row[2]) for row in table(result.stdout)] == [("3", "Failed"),
                                                                   ("2", "Complete")]


def test_one_submission_shows_its_stored_errors_and_says_more_were_found(data: Path) -> None:
    result = connectors("submissions", "--connection", "acme-conversions", "--id", "2",
                        "--data", str(data))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "Name:          conversions_2.csv" in lines
    assert "Errors found:  5" in lines
    header = lines.index(next(line for line in lines if line.startswith("LINE ")))
    assert re.split(r"\s{2,}", lines[header]) == ["LINE", "COLUMN", "TYPE", "CODE", "MESSAGE"]
    assert [re.split(r"\s{2,}", line) for line in lines[header + 1:header + 4]] == [
        [str(n), "Amount", "validation", "not_a_decimal", f"'x{n}' is not a decimal number"]
        for n in (2, 3, 4)]
    assert lines[-1] == "5 errors were found; only the first 3 are stored, shown above."
    failed = connectors("submissions", "--connection", "acme-conversions", "--id", "3",
                        "--data", str(data))
    assert re.split(r"\s{2,}", failed.stdout.splitlines()[-1]) == [
        "-", "-", "validation", "binary_file", "the file is binary"]


def test_an_id_of_another_connection_or_none_is_an_error(data: Path) -> None:
    for wrong in ("5", "99"):  # 5 is globex-audiences'
        result = connectors("submissions", "--connection", "acme-conversions", "--id", wrong,
                            "--data", str(data))
        assert (result.returncode, result.stdout) == (1, "")
        assert result.stderr == (f"connectors submissions: Connection acme-conversions has no "
                                 f"submission {wrong}\n")


def test_json_parses_and_holds_the_same_content(data: Path) -> None:
    result = connectors("submissions", "--connection", "acme-conversions", "--failed",
                        "-o", "json", "--data", str(data))
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert listed["summary"]["total"] == 4
    assert listed["summary"]["withRejections"] == 1
    assert [(s["id"], s["status"], s["rowsRejected"]) for s in listed["submissions"]] == [
        (3, "Failed", 0), (2, "Complete", 5)]
    one = json.loads(connectors("submissions", "--connection", "acme-conversions", "--id", "2",
                                "-o", "json", "--data", str(data)).stdout)
    assert (one["errorCount"], one["errorsTruncated"], len(one["errors"])) == (5, True, 3)
    assert one["errors"][0] == {"line": 2, "column": "Amount", "errorType": "validation",
                                "code": "not_a_decimal",
                                "message": "'x2' is not a decimal number"}


def test_the_data_root_defaults_to_connectors_data_root(data: Path) -> None:
    result = connectors("submissions", "--connection", "acme-conversions", data_root_env=data)
    assert result.returncode == 0, result.stderr
    assert len(table(result.stdout)) == 4


def test_a_data_root_without_a_store_is_an_error_and_no_store_is_made(tmp_path: Path) -> None:
    result = connectors("submissions", "--connection", "acme-conversions",
                        "--data", str(tmp_path))
    path = store_path(tmp_path)
    assert (result.returncode, result.stdout) == (1, "")
    assert f"no submission store at {path}" in result.stderr
    assert "no file has been checked yet" in result.stderr
    assert "--data" in result.stderr
    assert not path.exists()
    assert not path.parent.exists()
