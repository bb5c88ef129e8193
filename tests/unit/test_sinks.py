"""The sinks' pure parts: backoff, sink ids, CloudEvent headers, what an HTTP
answer or an S3 error means, the mounted Secrets, and settling an outcome in
the store."""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

from connectors.api.connection import Sink
from connectors.sinks import Delivery, Outcome, RetryPolicy, SecretFiles, SecretMissing, settle
from connectors.sinks import sink_id as make_sink_id
from connectors.sinks.delivery import FileChanged, content_type, opened
from connectors.sinks.object_store import client_error, describe, object_key
from connectors.sinks.webhook import answer, event_headers, header_value, where
from connectors.submissions import CheckResult, SubmissionStore

# ---- backoff --------------------------------------------------------------------------------


def test_the_wait_doubles_from_five_seconds_with_jitter_in_its_upper_half() -> None:
    policy = RetryPolicy()
    low = [policy.delay(n, rand=lambda: 0.0) for n in range(1, 6)]
    high = [policy.delay(n, rand=lambda: 1.0) for n in range(1, 6)]
    assert low == [2.5, 5.0, 10.0, 20.0, 40.0]
    assert high == [5.0, 10.0, 20.0, 40.0, 80.0]
    middle = policy.delay(3, rand=lambda: 0.5)
    assert 10.0 < middle < 20.0


def test_the_wait_is_capped_at_fifteen_minutes_however_many_attempts() -> None:
    policy = RetryPolicy()
    assert policy.delay(9, rand=lambda: 1.0) == 900.0  # 5 * 2**8 = 1280, capped
    assert policy.delay(10_000, rand=lambda: 1.0) == 900.0
    assert policy.delay(10_000, rand=lambda: 0.0) == 450.0
    assert policy.delay(0, rand=lambda: 1.0) == 5.0  # as after one attempt


def test_a_sinks_retry_after_is_honoured_up_to_the_cap() -> None:
    policy = RetryPolicy()
    assert policy.delay(1, retry_after=120, rand=lambda: 0.0) == 120.0
    assert policy.delay(1, retry_after=86400, rand=lambda: 0.0) == 900.0
    assert policy.delay(5, retry_after=1, rand=lambda: 1.0) == 80.0  # the backoff is longer
    assert policy.delay(1, retry_after=0, rand=lambda: 1.0) == 5.0


def test_the_policy_gives_up_after_its_last_attempt() -> None:
    policy = RetryPolicy(first=1, cap=60, max_attempts=3)
    assert [policy.gives_up(n) for n in (1, 2, 3, 4)] == [False, False, True, True]
    assert policy.delay(7, rand=lambda: 1.0) == 60.0


def test_with_real_randomness_the_wait_stays_in_its_band() -> None:
    policy = RetryPolicy()
    waits = [policy.delay(4) for _ in range(200)]
    assert all(20.0 <= wait <= 40.0 for wait in waits)
    assert len(set(waits)) > 100  # jittered, not one value


# ---- sink ids -------------------------------------------------------------------------------


def webhook(url: str = "https://ingest.example/hook", ref: str | None = "hook") -> Sink:
    spec: dict[str, object] = {"url": url}
    if ref:
        spec["secretRef"] = {"name": ref}
    return Sink.model_validate({"webhook": spec})


def bucket(name: str = "landing", **extra: object) -> Sink:
    spec: dict[str, object] = {"bucket": name, "credentialsSecretRef": {"name": "s3"}}
    spec.update(extra)
    return Sink.model_validate({"objectStore": spec})


def test_a_sink_id_is_short_stable_and_names_the_host_or_bucket() -> None:
    assert re.fullmatch(r"webhook:ingest\.example:[0-9a-f]{8}", make_sink_id(webhook()))
    assert re.fullmatch(r"s3:landing:[0-9a-f]{8}", make_sink_id(bucket()))
    assert make_sink_id(webhook()) == make_sink_id(webhook())
    # Pinned: a change of the hash would deliver every waiting file again under a new id.
    assert make_sink_id(bucket()) == "s3:landing:" + hashlib.sha256(
        b'["s3", {"bucket": "landing", "endpoint": null, "prefix": ""}]').hexdigest()[:8]


def test_another_destination_is_another_sink() -> None:
    ids = {make_sink_id(sink) for sink in (
        webhook(), webhook("https://ingest.example/other"), webhook("http://ingest.example/hook"),
        bucket(), bucket("archive"), bucket(prefix="in/"),
        bucket(endpoint="https://s3.internal.example"))}
    assert len(ids) == 7


def test_new_credentials_or_a_corrected_region_are_the_same_sink() -> None:
    assert make_sink_id(webhook(ref="hook")) == make_sink_id(webhook(ref="rotated"))
    assert make_sink_id(webhook(ref=None)) == make_sink_id(webhook())
    assert make_sink_id(bucket()) == make_sink_id(bucket(region="eu-west-1"))


def test_a_sink_id_never_carries_credentials_from_the_url() -> None:
    sink = webhook("https://user:pw-hunter2-long@ingest.example/hook?token=tok-123456789")
    made = make_sink_id(sink)
    assert made.startswith("webhook:ingest.example:")
    assert "hunter2" not in made
    assert "tok-" not in made


# ---- webhook words and headers --------------------------------------------------------------


def delivery(tmp_path: Path, content: bytes = b"a,b\n1,2\n", name: str = "c.csv") -> Delivery:
    path = tmp_path / name
    path.write_bytes(content)
    return Delivery("ns", "acme", "Conversions", name, path, len(content),
                    hashlib.sha256(content).hexdigest(), "trace-1", "2025-03-01T10:00:00Z",
                    "2025-03-01T10:00:02Z", 1, 0, 5)


def test_header_values_are_percent_encoded_as_cloudevents_says() -> None:
    assert header_value("plain-name_1.csv") == "plain-name_1.csv"
    assert header_value('a b"c%d') == "a%20b%22c%25d"
    assert header_value("Bestellungen-Köln.csv") == "Bestellungen-K%C3%B6ln.csv"
    assert header_value("tab\there\r\n") == "tab%09here%0D%0A"


def test_extension_attribute_names_are_lowercase_alphanumeric(tmp_path: Path) -> None:
    headers = event_headers(delivery(tmp_path), "text/csv")
    names = [name.removeprefix("ce-") for name in headers if name.startswith("ce-")]
    assert {"specversion", "id", "source", "type", "time", "subject"} <= set(names)
    assert all(re.fullmatch(r"[a-z0-9]{1,20}", name) for name in names)
    assert all(value.isascii() and value.isprintable() for value in headers.values())


def test_answers_in_words() -> None:
    at = "the webhook at x"
    assert answer(at, 204, "") == Outcome(True, False, "the webhook at x answered 204 No Content")
    retry = answer(at, 503, "busy", retry_after=30)
    assert (retry.retryable, retry.retry_after, retry.unreachable) == (True, 30, True)
    internal = answer(at, 500, "")
    assert (internal.retryable, internal.unreachable) == (True, False)
    assert answer(at, 429, "").unreachable
    gone = answer(at, 410, "gone for good")
    assert (gone.delivered, gone.retryable) == (False, False)
    assert gone.message.startswith("the webhook at x answered 410 Gone: gone for good; ")
    assert not answer(at, 599, "").delivered
    assert "599" in answer(at, 599, "").message


def test_where_names_host_and_port_only() -> None:
    assert where("https://u:p@hooks.example:8443/a/b?token=t") == "hooks.example:8443"
    assert where("http://hooks.example/x") == "hooks.example"


def test_the_content_type_comes_from_the_first_bytes() -> None:
    assert content_type(b"\x1f\x8b") == "application/gzip"
    assert content_type(b"Id,Amount") == "text/csv"
    assert content_type(b"") == "text/csv"


def test_opening_proves_the_file_and_signs_it(tmp_path: Path) -> None:
    sent = delivery(tmp_path)
    with opened(sent, b"key") as (handle, kind, signature):
        assert handle.read() == b"a,b\n1,2\n"
        assert kind == "text/csv"
        assert signature == hmac.new(b"key", b"a,b\n1,2\n", hashlib.sha256).hexdigest()
    with opened(sent) as (_, _, unsigned):
        assert unsigned is None
    sent.path.write_bytes(b"a,b\n1,3\n")  # same size, other bytes
    with pytest.raises(FileChanged, match="no longer the file that was checked"), \
            opened(sent):
        pass


# ---- object store words ---------------------------------------------------------------------


def s3_error(code: str, status: int, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message},
                        "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")


def test_s3_errors_in_words() -> None:
    sink = bucket(endpoint="https://minio:pw@s3.internal.example:9000", prefix="in/").object_store
    assert sink is not None
    where_ = describe(sink)
    assert where_ == "s3://landing at s3.internal.example:9000"
    missing = client_error(s3_error("NoSuchBucket", 404), where_, sink, "s3")
    assert (missing.retryable, missing.delivered) == (False, False)
    assert "the bucket landing does not exist: create it" in missing.message
    denied = client_error(s3_error("AccessDenied", 403), where_, sink, "s3")
    assert not denied.retryable
    assert "s3:PutObject" in denied.message
    assert "landing/in/*" in denied.message
    assert client_error(s3_error("SlowDown", 503), where_, sink, "s3").unreachable
    assert client_error(s3_error("InternalError", 500), where_, sink, "s3").retryable
    odd = client_error(s3_error("InvalidStorageClass", 400, "no such class\nmore"), where_,
                       sink, "s3")
    assert not odd.retryable
    assert odd.message == ("s3://landing at s3.internal.example:9000 answered "
                           "InvalidStorageClass: no such class; the bucket refuses this file, "
                           "so it is not put again")


def test_the_object_key_is_prefix_connection_trace_id_name(tmp_path: Path) -> None:
    sink = bucket(prefix="partners/").object_store
    assert sink is not None
    assert object_key(sink, delivery(tmp_path)) == "partners/acme/trace-1/c.csv"


# ---- secrets --------------------------------------------------------------------------------


def test_secrets_are_read_from_their_mounted_folders(tmp_path: Path) -> None:
    (tmp_path / "s3").mkdir()
    (tmp_path / "s3" / "accessKeyId").write_bytes(b"AKIAEXAMPLE\n")
    files = SecretFiles(tmp_path)
    assert files.read("s3", "accessKeyId") == b"AKIAEXAMPLE\n"
    assert files.text("s3", "accessKeyId") == "AKIAEXAMPLE"
    with pytest.raises(SecretMissing, match=f"no key secretAccessKey mounted at {tmp_path}/s3/"):
        files.read("s3", "secretAccessKey")
    with pytest.raises(SecretMissing, match="not a Secret name"):
        files.read("..", "passwd")
    with pytest.raises(SecretMissing, match="not a Secret name"):
        files.read("s3", "../../etc/passwd")


# ---- settling an outcome --------------------------------------------------------------------


@pytest.fixture
def store(tmp_path: Path) -> SubmissionStore:
    now = [1_000_000.0]
    opened_store = SubmissionStore(tmp_path / "s.db", clock=lambda: now[0])
    opened_store.record("acme", "a.csv", 1, "ab", "t-1", "2025-03-01T10:00:00Z")
    opened_store.record("acme", "b.csv", 1, "ab", "t-2", "2025-03-01T10:00:00Z")
    for claim in opened_store.claim("p", limit=2):
        opened_store.mark_checked(claim, CheckResult("Complete", 1, 0, 0, ()))
        opened_store.queue_deliveries(claim.submission.id, ["webhook:down"])
    return opened_store


def test_settling_a_retry_postpones_an_unreachable_sink_for_its_other_files(
        store: SubmissionStore) -> None:
    [claim] = store.due_deliveries("p", limit=1)
    outcome = Outcome.retry("the webhook at x could not be reached", unreachable=True)
    assert settle(store, claim, outcome, now=1_000_000.0, rand=lambda: 1.0) == "Pending"
    assert store.due_deliveries("p", now=1_000_004.9) == []
    assert len(store.due_deliveries("p", now=1_000_005.0)) == 2


def test_settling_a_retry_of_one_file_leaves_the_others_due(store: SubmissionStore) -> None:
    [claim] = store.due_deliveries("p", limit=1)
    assert settle(store, claim, Outcome.retry("answered 500"), rand=lambda: 1.0) == "Pending"
    [other] = store.due_deliveries("p")
    assert other.submission_id != claim.submission_id


def test_settling_the_last_attempt_or_a_refusal_fails_and_a_lost_claim_is_said(
        store: SubmissionStore) -> None:
    policy = RetryPolicy(max_attempts=1)
    first, second = store.due_deliveries("p", limit=2)
    assert settle(store, first, Outcome.retry("answered 503"), policy) == "Failed"
    assert settle(store, second, Outcome.refused("answered 400")) == "Failed"
    assert settle(store, second, Outcome.done("answered 200")) == "Lost"
    errors = [store.deliveries_of(c.submission_id)[0].last_error for c in (first, second)]
    assert errors == ["not delivered in 1 attempts: answered 503", "answered 400"]


def test_a_delivery_is_made_of_a_checked_submission(store: SubmissionStore,
                                                    tmp_path: Path) -> None:
    submission = store.history("acme")[0]
    made = Delivery.of(submission, namespace="partners", data_type="Conversions",
                       path=tmp_path / submission.name)
    assert (made.submission_id, made.trace_id, made.name, made.size, made.sha256) == (
        submission.id, submission.trace_id, submission.name, 1, "ab")
    assert (made.rows_accepted, made.rows_rejected, made.checked_at) == (
        1, 0, submission.checked_at)
    assert made.checked_at is not None
    assert (made.namespace, made.connection, made.data_type) == (
        "partners", "acme", "Conversions")
