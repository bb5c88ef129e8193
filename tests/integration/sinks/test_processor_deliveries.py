"""`connectors process` hands accepted files to a webhook and a SeaweedFS bucket,
each once, recorded in the history; a sink that is down is retried, and a
rejected file goes nowhere."""

from __future__ import annotations

import hashlib
import hmac
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from connectors.api.connection import Sink
from connectors.api.processing import Processed, ProcessingTable
from connectors.submissions import SubmissionStore, store_path
from connectors.submissions.store import DeliveryRecord
from tests.integration.sinks.conftest import Receiver, SeaweedFS
from tests.integration.test_processor import land
from tests.support.conversions import conversions_file

pytestmark = pytest.mark.timeout(300)

CONNECTION = "acme-conversions"


def secrets(root: Path, seaweedfs: SeaweedFS) -> Path:
    """The sinks' Secrets as the processor pod mounts them, one folder each."""
    folder = root / "sinks"
    (folder / "hook-key").mkdir(parents=True)
    (folder / "hook-key" / "hmac-key").write_bytes(b"sign-me")
    (folder / "bucket-key").mkdir()
    (folder / "bucket-key" / "accessKeyId").write_text(seaweedfs.admin.access_key_id)
    (folder / "bucket-key" / "secretAccessKey").write_text(seaweedfs.admin.secret_access_key)
    return folder


def sinks(receiver: Receiver, seaweedfs: SeaweedFS, bucket: str) -> list[Sink]:
    return [
        Sink.model_validate({"webhook": {"url": receiver.url, "secretRef": {"name": "hook-key"}}}),
        Sink.model_validate({"objectStore": {
            "endpoint": seaweedfs.endpoint, "bucket": bucket, "prefix": "landed/",
            "credentialsSecretRef": {"name": "bucket-key"}}}),
    ]


def deliveries(root: Path) -> list[DeliveryRecord]:
    with SubmissionStore(store_path(root)) as store:
        return [d for s in store.history(CONNECTION, limit=100)
                for d in store.deliveries_of(s.id)]


def wait(predicate: object, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.2)
    raise AssertionError("timed out")


def test_accepted_files_reach_the_webhook_and_the_bucket_once(
        tmp_path: Path, receiver: Receiver, seaweedfs: SeaweedFS, bucket: str) -> None:
    root = tmp_path / "data"
    root.mkdir()
    table = tmp_path / "processing.json"
    table.write_text(ProcessingTable(connections=[Processed(
        connection=CONNECTION, home=CONNECTION, data_type="Conversions",
        deliver_to=sinks(receiver, seaweedfs, bucket))]).render())
    receiver.answer(503)  # the webhook is down for the first attempt
    content = conversions_file(1000, bad_lines=(4, 5, 6))
    land(root, CONNECTION, "conversions_hand.csv", content)
    land(root, CONNECTION, "conversions_empty.csv", b"")  # Failed: goes nowhere
    command = [sys.executable, "-m", "connectors", "process", "--data-root", str(root),
               "--table", str(table), "--poll-seconds", "0.2",
               "--sinks-secrets", str(secrets(tmp_path, seaweedfs)), "--metrics-port", "0"]
    env = {k: v for k, v in os.environ.items() if k != "CONNECTORS_NAMESPACE"}
    log = (tmp_path / "processor.log").open("ab")
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    try:
        wait(lambda: store_path(root).exists() and sorted(
            d.status for d in deliveries(root)) == ["Delivered", "Delivered"])
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    records = {d.sink_id.split(":")[0]: d for d in deliveries(root)}
    assert records["webhook"].attempts == 2, "retried after the 503"
    assert "503" in (records["webhook"].last_error or "")

    posted = [r for r in receiver.requests if r.headers.get("ce-subject") ==
              "conversions_hand.csv"]
    assert len(posted) == 2  # the 503, then the delivery
    delivered = posted[-1]
    assert delivered.body == content
    expected = hmac.new(b"sign-me", content, hashlib.sha256).hexdigest()
    assert delivered.headers["x-connectors-signature"] == f"sha256={expected}"
    assert delivered.headers["ce-id"] == posted[0].headers["ce-id"], "one idempotency key"
    assert not [r for r in receiver.requests
                if r.headers.get("ce-subject") == "conversions_empty.csv"]

    objects = seaweedfs.client().list_objects_v2(Bucket=bucket)["Contents"]
    assert [o["Key"] for o in objects] == [
        f"landed/{CONNECTION}/{delivered.headers['ce-id']}/conversions_hand.csv"]
    body = seaweedfs.client().get_object(Bucket=bucket, Key=objects[0]["Key"])["Body"].read()
    assert body == content

    # A restart delivers nothing again.
    before = len(receiver.requests)
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=log, env=env)
    time.sleep(3)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=60)
    assert len(receiver.requests) == before
