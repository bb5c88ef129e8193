"""What a transfer run decides to do (jobs/plan.py, ledger.py, summary.py)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from connectors.jobs import main as job
from connectors.jobs.clients.base import PermanentError, RemoteFile
from connectors.jobs.ledger import FETCHED, SENDING, SENT, Entry, Ledger
from connectors.jobs.plan import OutboxFile, plan_pull, plan_push
from connectors.jobs.summary import Summary, render, write_termination_log
from connectors.landing.receipts import Receipt


def test_plan_pull_takes_new_matching_files_only(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record(Entry(FETCHED, "old.csv", 10, 100))
    remote = [
        RemoteFile("old.csv", 10, 100),
        RemoteFile("changed.csv", 5, 100),
        RemoteFile("new.csv", 1, 1),
        RemoteFile("notes.txt", 1, 1),
        RemoteFile("receipt_x.csv", 1, 1),
        RemoteFile(".x.csv.part", 1, 1),
    ]
    ledger.record(Entry(FETCHED, "changed.csv", 4, 100))
    plan = plan_pull(remote, ledger.has, "*.csv", {}, delete_after=False)
    assert [f.name for f in plan.fetch] == ["changed.csv", "new.csv"]
    assert plan.skipped == 4
    assert plan.delete == ()


def test_plan_pull_recovers_a_landed_unrecorded_file(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    remote = [RemoteFile("a.csv", 3, 50), RemoteFile("b.csv", 3, 50)]
    plan = plan_pull(remote, ledger.has, None, {"a.csv": (3, 50), "b.csv": (3, 49)}, False)
    assert [f.name for f in plan.recover] == ["a.csv"]
    assert [f.name for f in plan.fetch] == ["b.csv"]


def test_plan_pull_deletes_recorded_files_left_on_the_remote(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record(Entry(FETCHED, "a.csv", 3, 50))
    plan = plan_pull([RemoteFile("a.csv", 3, 50)], ledger.has, None, {}, delete_after=True)
    assert [f.name for f in plan.delete] == ["a.csv"]
    assert plan.fetch == ()


def test_plan_push_never_sends_twice(tmp_path: Path) -> None:
    ledger = Ledger(tmp_path / "ledger.jsonl")
    ledger.record(Entry(SENT, "done.csv", 1, 1))
    ledger.record(Entry(SENDING, "maybe.csv", 1, 1))
    outbox = [
        OutboxFile("done.csv", 1, 1),
        OutboxFile("maybe.csv", 1, 1),
        OutboxFile("new.csv", 1, 1),
        OutboxFile(".tmp", 1, 1),
        OutboxFile("other.txt", 1, 1),
    ]
    plan = plan_push(outbox, ledger.has, "*.csv")
    assert [f.name for f in plan.finish] == ["done.csv"]
    assert [f.name for f in plan.uncertain] == ["maybe.csv"]
    assert [f.name for f in plan.send] == ["new.csv"]
    assert plan.skipped == 2


def test_ledger_survives_reload_and_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "ledger.jsonl"
    Ledger(path).record(Entry(FETCHED, "a.csv", 1, 2, "abc"))
    with path.open("a") as handle:
        handle.write('{"kind": "fetched", "name": "b.c')
    reloaded = Ledger(path)
    assert reloaded.has(FETCHED, "a.csv", 1, 2)
    assert not reloaded.has(FETCHED, "a.csv", 1, 3)
    assert len(reloaded.entries()) == 1
    assert reloaded.get(FETCHED, "a.csv", 1, 2).sha256 == "abc"  # type: ignore[union-attr]


def test_summary_has_the_last_transfer_fields(tmp_path: Path) -> None:
    summary = Summary("c")
    summary.transferred(10)
    summary.skip(2)
    data = summary.to_dict()
    assert data["outcome"] == "Succeeded"
    assert (data["files"], data["bytes"], data["skipped"], data["failed"]) == (1, 10, 2, 0)
    summary.fail("x.csv: permission denied")
    assert summary.to_dict()["outcome"] == "Failed"
    assert summary.to_dict()["message"] == "x.csv: permission denied"


def test_summary_line_fits_a_termination_message(tmp_path: Path) -> None:
    summary = Summary("c")
    for i in range(500):
        summary.fail(f"file {i} failed for a long reason " * 3)
    line = render(summary.to_dict())
    assert len(line.encode()) <= 4096
    assert json.loads(line)["failed"] == 500
    target = tmp_path / "termination-log"
    write_termination_log(target, line)
    assert not target.exists(), "written only when the file exists, as in a pod"
    target.touch()
    write_termination_log(target, line)
    assert json.loads(target.read_text()) == json.loads(line)


def test_redactor_removes_secrets() -> None:
    redact = job.Redactor(("s3cret-value", "ab"))
    assert redact("login s3cret-value failed ab") == "login [redacted] failed ab"


def test_backoff_grows_and_is_capped() -> None:
    delays = list(job.backoff_delays(2.0, 8))
    assert len(delays) == 8
    assert delays[0] < 3
    assert delays[3] > 12
    assert max(delays) <= 72


def test_config_must_be_a_platform_initiated_connection(tmp_path: Path) -> None:
    config = tmp_path / "c.json"
    config.write_text(
        json.dumps(
            {
                "name": "a",
                "spec": {
                    "direction": "Inbound",
                    "dataType": "Clicks",
                    "method": "SFTP",
                    "methodology": "Push",
                    "credentialRef": {"name": "c"},
                },
            }
        )
    )
    with pytest.raises(PermanentError, match="Inbound\\+Pull"):
        job.load_connection(config, "a")
    config.write_text("{not json")
    with pytest.raises(PermanentError, match="cannot read"):
        job.load_connection(config, "a")


def test_arguments_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTORS_CONNECTION", "from-env")
    monkeypatch.setenv("CONNECTORS_RETRIES", "7")
    parser = argparse.ArgumentParser()
    job.add_arguments(parser)
    args = parser.parse_args([])
    assert args.connection == "from-env"
    assert args.retries == 7
    assert parser.parse_args(["--connection", "x"]).connection == "x"


@pytest.mark.parametrize(
    "name",
    ['odd "name".csv', "caf\u00e9 \u65e5\u672c.csv", "tab\there\\back.csv", "\U0001f4c4.csv"],
)
def test_receipt_is_the_json_of_its_fields_one_per_line(name: str) -> None:
    receipt = Receipt("id-1", name, 12, "ab" * 32, "2026-11-27T00:00:00Z", "acme")
    assert receipt.render() == json.dumps(vars(receipt), indent=2) + "\n"
    assert json.loads(receipt.render())["name"] == name
