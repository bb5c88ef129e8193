"""Delivery to an S3-compatible bucket, against a real SeaweedFS: the object's
bytes and metadata, once per trace id, multipart for a large file, and
refusals in words."""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from boto3.s3.transfer import TransferConfig

from connectors.api.connection import Sink
from connectors.devcluster.net import free_port
from connectors.sinks import Delivery, SecretFiles, deliver, sink_id
from connectors.sinks.object_store import put
from tests.integration.sinks.conftest import Identity, SeaweedFS
from tests.integration.sinks.helpers import CSV, accepted_file, big_file, gzipped
from tests.support import secrets as secret_scan

KEY = "archive/acme-conversions/3f0c9a1e-trace-0001/conversions_2025-03-01.csv"


def bucket_sink(seaweedfs: SeaweedFS, bucket: str, ref: str = "bucket-writer",
                prefix: str = "archive/", endpoint: str | None = None) -> Sink:
    return Sink.model_validate({"objectStore": {
        "bucket": bucket, "endpoint": endpoint or seaweedfs.endpoint, "prefix": prefix,
        "credentialsSecretRef": {"name": ref}}})


def mount(root: Path, name: str, identity: Identity, newline: bool = True) -> None:
    """A Secret as the processor pod sees it; `echo` leaves a newline."""
    folder = root / name
    folder.mkdir(parents=True)
    end = "\n" if newline else ""
    (folder / "accessKeyId").write_text(identity.access_key_id + end)
    (folder / "secretAccessKey").write_text(identity.secret_access_key + end)


@pytest.fixture
def secrets(tmp_path: Path, seaweedfs: SeaweedFS) -> SecretFiles:
    root = tmp_path / "sinks"
    mount(root, "bucket-writer", seaweedfs.admin)
    mount(root, "bucket-reader", seaweedfs.reader, newline=False)
    mount(root, "wrong-secret", Identity(seaweedfs.admin.access_key_id, "sk-not-the-one-123"))
    secret_scan.remember("sk-not-the-one-123")
    return SecretFiles(root)


@pytest.fixture
def calls(seaweedfs: SeaweedFS) -> Iterator[Counter[str]]:
    """The S3 operations the sink's client makes (it is the same client: one per
    endpoint and credentials), by name."""
    counted: Counter[str] = Counter()

    def count(model: Any, **_: Any) -> None:
        counted[model.name] += 1

    events = seaweedfs.client().meta.events
    events.register("before-call.s3", count, unique_id="sink-test-calls")
    yield counted
    events.unregister("before-call.s3", unique_id="sink-test-calls")


def test_the_file_lands_at_its_key_with_its_metadata(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str, secrets: SecretFiles) -> None:
    delivery = accepted_file(tmp_path)
    outcome = deliver(bucket_sink(seaweedfs, bucket), delivery, secrets)
    assert (outcome.delivered, outcome.retryable) == (True, False), outcome.message
    assert KEY in outcome.message
    stored = seaweedfs.client().get_object(Bucket=bucket, Key=KEY)
    assert stored["Body"].read() == CSV
    assert stored["ContentType"] == "text/csv"
    assert stored["Metadata"] == {
        "sha256": hashlib.sha256(CSV).hexdigest(), "trace-id": "3f0c9a1e-trace-0001",
        "connection": "acme-conversions", "data-type": "Conversions"}


def test_the_same_trace_id_again_is_not_uploaded_again(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str, secrets: SecretFiles,
        calls: Counter[str]) -> None:
    sink = bucket_sink(seaweedfs, bucket)
    delivery = accepted_file(tmp_path)
    assert deliver(sink, delivery, secrets).delivered
    first = seaweedfs.client().head_object(Bucket=bucket, Key=KEY)
    puts = calls["PutObject"]
    assert puts == 1
    again = deliver(sink, delivery, secrets)
    assert again.delivered, again.message
    assert "already in" in again.message
    assert calls["PutObject"] == puts  # no second upload
    assert calls["HeadObject"] >= 3  # each delivery looked first; and the test's own head
    later = seaweedfs.client().head_object(Bucket=bucket, Key=KEY)
    assert (later["ETag"], later["LastModified"]) == (first["ETag"], first["LastModified"])


def test_another_object_at_the_key_is_replaced(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str, secrets: SecretFiles) -> None:
    s3 = seaweedfs.client()
    s3.put_object(Bucket=bucket, Key=KEY, Body=b"half a file", Metadata={"sha256": "0" * 64})
    outcome = deliver(bucket_sink(seaweedfs, bucket), accepted_file(tmp_path), secrets)
    assert outcome.delivered, outcome.message
    assert "already" not in outcome.message
    assert s3.get_object(Bucket=bucket, Key=KEY)["Body"].read() == CSV


def test_a_large_file_goes_in_parts_and_arrives_whole(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str, secrets: SecretFiles) -> None:
    size = 13 * 1024 * 1024
    path = tmp_path / "large.csv"
    digest = big_file(path, size)
    delivery = Delivery("partners", "acme", "Conversions", "large.csv", path, size, digest,
                        "trace-large", "2025-03-01T10:00:00Z", "2025-03-01T10:00:02Z",
                        10**5, 0, 2)
    sink = bucket_sink(seaweedfs, bucket, prefix="")
    assert sink.object_store is not None
    transfer = TransferConfig(multipart_threshold=5 * 1024 * 1024,
                              multipart_chunksize=5 * 1024 * 1024, max_concurrency=2)
    outcome = put(sink.object_store, delivery, access_key_id=seaweedfs.admin.access_key_id,
                  secret_access_key=seaweedfs.admin.secret_access_key, transfer=transfer)
    assert outcome.delivered, outcome.message
    stored = seaweedfs.client().get_object(Bucket=bucket, Key="acme/trace-large/large.csv")
    assert stored["ETag"].strip('"').endswith("-3")  # three parts: 5 + 5 + 3 MiB
    received = hashlib.sha256()
    for chunk in stored["Body"].iter_chunks(1 << 20):
        received.update(chunk)
    assert received.hexdigest() == digest
    assert stored["Metadata"]["sha256"] == digest


def test_gzip_is_stored_as_gzip(tmp_path: Path, seaweedfs: SeaweedFS, bucket: str,
                                secrets: SecretFiles) -> None:
    delivery = gzipped(tmp_path)
    assert deliver(bucket_sink(seaweedfs, bucket, prefix=""), delivery, secrets).delivered
    stored = seaweedfs.client().head_object(
        Bucket=bucket, Key="acme-conversions/trace-gz/conversions.csv.gz")
    assert stored["ContentType"] == "application/gzip"


def test_a_missing_bucket_is_a_refusal_that_says_to_create_it(
        tmp_path: Path, seaweedfs: SeaweedFS, secrets: SecretFiles) -> None:
    outcome = deliver(bucket_sink(seaweedfs, "no-such-bucket"), accepted_file(tmp_path),
                      secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "NoSuchBucket" in outcome.message
    assert "the bucket no-such-bucket does not exist: create it" in outcome.message
    names = [b["Name"] for b in seaweedfs.client().list_buckets()["Buckets"]]
    assert "no-such-bucket" not in names


def test_a_key_that_may_not_write_is_a_refusal_that_says_what_to_grant(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str, secrets: SecretFiles) -> None:
    sink = bucket_sink(seaweedfs, bucket, ref="bucket-reader")
    outcome = deliver(sink, accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "AccessDenied" in outcome.message
    assert f"grant it s3:PutObject (and s3:GetObject, to skip a file already there) on " \
           f"{bucket}/archive/*" in outcome.message
    assert seaweedfs.client().list_objects_v2(Bucket=bucket).get("KeyCount", 0) == 0


def test_a_wrong_secret_key_is_a_refusal_that_never_shows_it(
        tmp_path: Path, seaweedfs: SeaweedFS, bucket: str, secrets: SecretFiles) -> None:
    outcome = deliver(bucket_sink(seaweedfs, bucket, ref="wrong-secret"),
                      accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "SignatureDoesNotMatch" in outcome.message
    assert "wrong-secret's secretAccessKey" in outcome.message
    secret_scan.assert_absent("sk-not-the-one-123", outcome.message, "the outcome's message")


def test_an_endpoint_nobody_listens_at_is_worth_another_try(
        tmp_path: Path, seaweedfs: SeaweedFS, secrets: SecretFiles) -> None:
    sink = bucket_sink(seaweedfs, "anything", endpoint=f"http://127.0.0.1:{free_port()}")
    outcome = deliver(sink, accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable, outcome.unreachable) == (False, True, True)
    assert "could not be reached" in outcome.message


def test_credentials_not_mounted_yet_wait(tmp_path: Path, seaweedfs: SeaweedFS,
                                          bucket: str, secrets: SecretFiles) -> None:
    sink = bucket_sink(seaweedfs, bucket, ref="coming-soon")
    outcome = deliver(sink, accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert "the Secret coming-soon has no key accessKeyId" in outcome.message
    assert sink_id(sink).startswith(f"s3:{bucket}:")
