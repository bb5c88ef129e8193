"""`connectors process` with metrics and a JSON log: two landed files (one with
rejected rows, one that cannot be read), scraped over HTTP and read back as
audit events."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from connectors.devcluster.net import free_port
from tests.integration.test_processor import conversions_entry, land, wait_for, write_table
from tests.support.conversions import conversions_file
from tests.support.metrics import label_values, scrape, total
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(300)

CONNECTION = "acme-conversions"


def test_processor_metrics_and_audit_events(tmp_path: Path) -> None:
    root = tmp_path / "data"
    root.mkdir()
    table = tmp_path / "processing.json"
    write_table(table, conversions_entry(CONNECTION))
    port = free_port()
    log = tmp_path / "processor.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTORS_")}
    env.update(CONNECTORS_NAMESPACE="partners", KUBECONFIG=str(tmp_path / "no-kubeconfig"))
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "connectors", "process", "--data-root", str(root),
             "--table", str(table), "--poll-seconds", "0.2", "--metrics-port", str(port),
             "--metrics-address", "127.0.0.1", "--log-format", "json"],
            stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        eventually(lambda: _up(port), 60, "the processor's metrics port")
        _, before = scrape(port)
        assert total(before, "connectors_processor_files_checked_total") == 0

        good = conversions_file(100, bad_lines=(7, 9))
        land(root, CONNECTION, "conversions_a.csv", good)
        wait_for(root / CONNECTION / "result_conversions_a.csv.csv")
        bad = b"CampaignId;ActionTrackerId\n1;2\n"
        land(root, CONNECTION, "conversions_b.csv", bad)
        wait_for(root / CONNECTION / "result_conversions_b.csv.csv")
        eventually(lambda: total(scrape(port)[1],
                                 "connectors_processor_files_checked_total") == 2,
                   60, "both checks to be counted")
        _, after = scrape(port)
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text()

    labels = {"namespace": "partners", "connection": CONNECTION}
    assert total(after, "connectors_processor_files_checked_total", status="Complete",
                 **labels) == 1
    assert total(after, "connectors_processor_files_checked_total", status="Failed",
                 **labels) == 1
    assert total(after, "connectors_processor_rows_total", result="accepted", **labels) == 98
    assert total(after, "connectors_processor_rows_total", result="rejected", **labels) == 2
    assert total(after, "connectors_processor_checked_bytes_total", **labels) == \
        len(good) + len(bad)
    assert total(after, "connectors_processor_check_seconds_count", **labels) == 2
    values = label_values(after, "connectors_processor_")
    assert not any("conversions_a" in v or "conversions_b" in v for v in values), values

    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    checks = {r["audit"]["file"]: r for r in records if r["logger"] == "connectors.audit"}
    assert set(checks) == {"conversions_a.csv", "conversions_b.csv"}
    first, second = checks["conversions_a.csv"], checks["conversions_b.csv"]
    assert first["level"] == "WARNING"  # rows were rejected
    assert {k: first["audit"][k] for k in ("event", "namespace", "result", "connection",
                                            "size", "rows_accepted", "rows_rejected")} == {
        "event": "check", "namespace": "partners", "result": "Complete",
        "connection": CONNECTION, "size": len(good), "rows_accepted": 98, "rows_rejected": 2}
    assert second["audit"]["result"] == "Failed"
    assert second["audit"]["reason"] == "header_mismatch"
    assert len(first["audit"]["trace_id"]) >= 16


def _up(port: int) -> bool:
    try:
        scrape(port)
    except OSError:
        return False
    return True
