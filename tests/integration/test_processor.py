"""`connectors process` as its own process over a real data folder: files landed by
the landing path are checked, answered with result files, and kept in the
history, once each, across restarts."""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from connectors.api.processing import Processed, ProcessingTable
from connectors.landing.area import LandingArea
from connectors.submissions import Submission, SubmissionStore, store_path
from tests.conftest import Cluster
from tests.support.conversions import conversions_file
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(300)


def land(root: Path, connection: str, name: str, content: bytes) -> None:
    """The landing path every listener and job uses: temporary file, then land."""
    area = LandingArea(root, connection)
    area.ensure()
    temp = area.temp_path(name)
    temp.write_bytes(content)
    area.land(temp, name, len(content), hashlib.sha256(content).hexdigest())


def write_table(path: Path, *entries: Processed) -> None:
    path.write_text(ProcessingTable(connections=list(entries)).render())


def conversions_entry(name: str = "acme-conversions") -> Processed:
    return Processed(connection=name, home=name, data_type="Conversions")


class Running:
    def __init__(self, root: Path, table: Path, log: Path,
                 env: dict[str, str] | None = None, *extra: str) -> None:
        self.log = log
        self.process = subprocess.Popen(
            [sys.executable, "-m", "connectors", "process", "--data-root", str(root),
             "--table", str(table), "--poll-seconds", "0.2", "--metrics-port", "0", *extra],
            stdout=subprocess.DEVNULL, stderr=log.open("ab"),
            env=env or {k: v for k, v in os.environ.items() if k != "CONNECTORS_NAMESPACE"})

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        assert self.process.wait(timeout=30) == 0, self.log.read_text()


@pytest.fixture
def processor(tmp_path: Path) -> Iterator[tuple[Path, Path, list[Running]]]:
    root = tmp_path / "data"
    root.mkdir()
    table = tmp_path / "processing.json"
    write_table(table, conversions_entry())
    started: list[Running] = []
    yield root, table, started
    for running in started:
        if running.process.poll() is None:
            running.process.kill()
            running.process.wait()


def start(root: Path, table: Path, started: list[Running],
          env: dict[str, str] | None = None, *extra: str) -> Running:
    running = Running(root, table, root.parent / "processor.log", env, *extra)
    started.append(running)
    return running


def wait_for(path: Path, timeout: float = 60.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_bytes()
        time.sleep(0.1)
    raise AssertionError(f"{path.name} did not appear within {timeout} s")


def result_rows(content: bytes) -> tuple[list[dict[str, str]], dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(content.decode("ascii"))))
    errors = [r for r in rows if r["error_type"] != "summary"]
    summary = {r["code"]: r["message"] for r in rows if r["error_type"] == "summary"}
    return errors, summary


def test_a_file_with_bad_rows_gets_a_result_naming_them(
        processor: tuple[Path, Path, list[Running]]) -> None:
    root, table, started = processor
    start(root, table, started)
    land(root, "acme-conversions", "conversions_0601.csv",
         conversions_file(1000, bad_lines=(5, 77, 900)))
    result = wait_for(root / "acme-conversions" / "result_conversions_0601.csv.csv")
    errors, summary = result_rows(result)
    assert [(e["line"], e["column"], e["code"]) for e in errors] == [
        ("5", "Amount", "not_a_decimal"), ("77", "Amount", "not_a_decimal"),
        ("900", "Amount", "not_a_decimal")]
    assert summary["status"] == "Complete"
    assert summary["rows_accepted"] == "997"
    assert summary["rows_rejected"] == "3"
    assert summary["file"] == "conversions_0601.csv"
    # The result file is written first, then the outcome is recorded.
    def recorded() -> Submission | None:
        with SubmissionStore(store_path(root)) as store:
            [submission] = store.history("acme-conversions")
        return submission if submission.status != "Checking" else None
    submission = eventually(recorded, 30, "the outcome in the history")
    assert (submission.status, submission.rows_accepted, submission.rows_rejected) == (
        "Complete", 997, 3)
    assert summary["trace_id"] == submission.trace_id


@pytest.mark.parametrize(("content", "code"), [
    (b"", "empty_file"),
    (os.urandom(4096), "binary_file"),
    (b"CampaignId;ActionTrackerId\n1;2\n", "header_mismatch"),
    # A header that fits, then rows that compress a thousand times: a bomb.
    (gzip.compress(conversions_file(1) + b"1,2,3\n" * (12 << 20)), "gzip_bomb"),
])
def test_bad_files_get_a_failed_result_and_nothing_is_lost(
        processor: tuple[Path, Path, list[Running]], content: bytes, code: str) -> None:
    root, table, started = processor
    start(root, table, started)
    land(root, "acme-conversions", "conversions_bad.csv", content)
    result = wait_for(root / "acme-conversions" / "result_conversions_bad.csv.csv")
    errors, summary = result_rows(result)
    assert summary["status"] == "Failed"
    assert errors[0]["code"] == code, errors
    # The partner's file is still there, as landed: a failed check drops nothing.
    assert (root / "acme-conversions" / "conversions_bad.csv").read_bytes() == content


def test_a_restart_checks_nothing_twice_and_skips_nothing(
        processor: tuple[Path, Path, list[Running]]) -> None:
    root, table, started = processor
    first = start(root, table, started)
    for index in range(5):
        land(root, "acme-conversions", f"conversions_{index}.csv", conversions_file(50))
    wait_for(root / "acme-conversions" / "result_conversions_4.csv.csv")
    first.stop()
    with SubmissionStore(store_path(root)) as store:
        before = {s.trace_id: s.checked_at for s in store.history("acme-conversions")}
    # Files that land while no processor runs are found by the next one.
    land(root, "acme-conversions", "conversions_late.csv", conversions_file(10))
    start(root, table, started)
    wait_for(root / "acme-conversions" / "result_conversions_late.csv.csv")
    with SubmissionStore(store_path(root)) as store:
        after = store.history("acme-conversions", limit=100)
    assert len(after) == 6
    assert all(s.attempts == 1 for s in after)
    assert {s.trace_id: s.checked_at for s in after if s.trace_id in before} == before


def test_a_file_a_crashed_processor_held_is_checked_once_its_lease_ends(
        processor: tuple[Path, Path, list[Running]]) -> None:
    """A processor killed mid-check holds its claim no longer than the lease: the
    next one checks the file, once."""
    root, table, started = processor
    land(root, "acme-conversions", "conversions_held.csv", conversions_file(20))
    first = start(root, table, started, None, "--lease-seconds", "2")
    wait_for(root / "acme-conversions" / "result_conversions_held.csv.csv")
    first.stop()
    # What a crash mid-check leaves: the file claimed by a processor that is gone.
    land(root, "acme-conversions", "conversions_crash.csv", conversions_file(20, (4,)))
    with SubmissionStore(store_path(root)) as store:
        receipt = (root / "acme-conversions" / "receipt_conversions_crash.csv.txt").read_text()
        landed = json.loads(receipt)
        store.record("acme-conversions", landed["name"], landed["size"], landed["sha256"],
                     landed["trace_id"], landed["received_at"])
        [held] = store.claim("crashed-processor", lease_seconds=2,
                             connection="acme-conversions")
    start(root, table, started, None, "--lease-seconds", "2")
    result = wait_for(root / "acme-conversions" / "result_conversions_crash.csv.csv")
    assert result_rows(result)[1]["rows_rejected"] == "1"

    def done() -> Submission | None:
        with SubmissionStore(store_path(root)) as store:
            found = store.get(held.submission.id)
        return found if found is not None and found.status == "Complete" else None
    assert eventually(done, 30, "the outcome").attempts == 2


def test_a_replaced_upload_has_both_versions_checked(
        processor: tuple[Path, Path, list[Running]]) -> None:
    """A second upload under a name replaces the file; the first version, kept in
    .connectors/superseded/, is checked too: each upload is one submission."""
    root, table, started = processor
    land(root, "acme-conversions", "conversions_again.csv", conversions_file(10, (3,)))
    land(root, "acme-conversions", "conversions_again.csv", conversions_file(20))
    start(root, table, started)
    deadline = time.monotonic() + 60
    done = []
    while time.monotonic() < deadline:
        if not store_path(root).exists():
            time.sleep(0.2)
            continue
        with SubmissionStore(store_path(root)) as store:
            done = [s for s in store.history("acme-conversions") if s.status == "Complete"]
        if len(done) == 2:
            break
        time.sleep(0.2)
    assert sorted((s.rows_accepted, s.rows_rejected) for s in done) == [(9, 1), (20, 0)]
    _, summary = result_rows(
        (root / "acme-conversions" / "result_conversions_again.csv.csv").read_bytes())
    assert summary["rows_accepted"] in ("9", "20")


def test_only_the_table_s_connections_are_processed(
        processor: tuple[Path, Path, list[Running]]) -> None:
    """An Outbound Connection's folder, absent from the table, is left alone; a
    Connection added to the table is picked up without a restart."""
    root, table, started = processor
    start(root, table, started)
    land(root, "globex-clicks", "clicks_1.csv", b"ClickId\nabc\n")
    land(root, "acme-conversions", "conversions_1.csv", conversions_file(5))
    wait_for(root / "acme-conversions" / "result_conversions_1.csv.csv")
    time.sleep(1)
    assert not (root / "globex-clicks" / "result_clicks_1.csv.csv").exists()
    write_table(table, conversions_entry(),
                Processed(connection="globex-clicks", home="globex-clicks", data_type="Clicks"))
    result = wait_for(root / "globex-clicks" / "result_clicks_1.csv.csv")
    _, summary = result_rows(result)
    assert summary["file"] == "clicks_1.csv"


def test_counts_reach_the_connection_status_and_events(
        processor: tuple[Path, Path, list[Running]], crds: Cluster) -> None:
    """Against a real API server: status.submissions counts the checked file and
    names its first error; a Warning event says rows were rejected."""
    root, table, started = processor
    namespace = f"proc-{uuid.uuid4().hex[:8]}"
    api = crds.api_client()
    client.CoreV1Api(api).create_namespace(
        client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    crds.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps({
        "apiVersion": "connectors.dev/v1alpha1", "kind": "Connection",
        "metadata": {"name": "acme-conversions"},
        "spec": {"direction": "Inbound", "dataType": "Conversions", "method": "SFTP",
                 "methodology": "Push", "credentialRef": {"name": "acme"}}}))
    start(root, table, started, env={**os.environ, "CONNECTORS_NAMESPACE": namespace,
                                     "KUBECONFIG": crds.kubeconfig})
    land(root, "acme-conversions", "conversions_counted.csv",
         conversions_file(100, bad_lines=(7,)))

    def counted() -> dict[str, Any] | None:
        body = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "connectors.dev", "v1alpha1", namespace, "connections", "acme-conversions")
        found = (body.get("status") or {}).get("submissions")
        return found if found and found.get("rowsRejected") else None
    submissions = eventually(counted, 60, "status.submissions")
    assert {k: submissions[k] for k in ("total", "complete", "rowsAccepted", "rowsRejected",
                                        "withRejections")} == {
        "total": 1, "complete": 1, "rowsAccepted": 99, "rowsRejected": 1, "withRejections": 1}
    [last] = submissions["last"]
    assert last["name"] == "conversions_counted.csv"
    assert last["firstError"].startswith("line 7: Amount:")
    def posted() -> list[Any] | None:
        # The event and the status are two requests: either may be seen first.
        found = client.CoreV1Api(api).list_namespaced_event(
            namespace, field_selector="involvedObject.name=acme-conversions").items
        return found or None
    events = eventually(posted, 30, "the RowsRejected event")
    assert [(e.type, e.reason) for e in events] == [("Warning", "RowsRejected")]
    assert "99 rows accepted, 1 rejected" in events[0].message
