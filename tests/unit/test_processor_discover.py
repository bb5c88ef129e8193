"""Discovery of landed files by their receipts, on a real folder and store."""

from __future__ import annotations

import datetime
import json
from pathlib import Path

from connectors.landing.area import LandingArea
from connectors.processor.discover import Discovery
from connectors.submissions import SubmissionStore


def receipt(home: Path, name: str, trace_id: str, received_at: str,
            connection: str = "acme") -> None:
    home.mkdir(parents=True, exist_ok=True)
    (home / name).write_bytes(b"x")
    (home / f"receipt_{name}.txt").write_text(json.dumps({
        "trace_id": trace_id, "name": name, "size": 1, "sha256": "0" * 64,
        "received_at": received_at, "connection": connection}))


def ago(days: float) -> str:
    moment = datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=days)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_receipts_past_the_retention_are_not_checked_again(tmp_path: Path) -> None:
    """The history purges submissions after the retention period; a processor that
    starts again reads every receipt, and must not take the purged ones as new."""
    home = tmp_path / "acme"
    receipt(home, "old.csv", "t-old", ago(100))
    receipt(home, "new.csv", "t-new", ago(1))
    with SubmissionStore(tmp_path / "s.db") as store:
        discovery = Discovery(tmp_path, store, retention_days=90)
        assert discovery.scan({"acme": "acme"}) == 1
        assert [s.name for s in store.history("acme")] == ["new.csv"]
        # Nothing changed: nothing read or recorded again.
        assert discovery.scan({"acme": "acme"}) == 0


def test_a_receipt_of_another_connection_or_a_broken_one_is_skipped(tmp_path: Path) -> None:
    home = tmp_path / "acme"
    receipt(home, "theirs.csv", "t-1", ago(1), connection="globex")
    (home / "receipt_broken.csv.txt").write_text("{not json")
    receipt(home, "ours.csv", "t-2", ago(1))
    with SubmissionStore(tmp_path / "s.db") as store:
        discovery = Discovery(tmp_path, store)
        assert discovery.scan({"acme": "acme"}) == 1
        assert discovery.paths == {"t-2": home / "ours.csv"}


def test_a_replaced_file_is_found_in_the_superseded_folder(tmp_path: Path) -> None:
    area = LandingArea(tmp_path, "acme")
    area.ensure()
    for content in (b"first\n", b"second\n"):
        temp = area.temp_path("data.csv")
        temp.write_bytes(content)
        area.land(temp, "data.csv", len(content), "0" * 64)
    with SubmissionStore(tmp_path / "s.db") as store:
        discovery = Discovery(tmp_path, store)
        assert discovery.scan({"acme": "acme"}) == 2
        contents = sorted(path.read_bytes() for path in discovery.paths.values())
    assert contents == [b"first\n", b"second\n"]
