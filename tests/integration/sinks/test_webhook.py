"""Delivery to a webhook, against a real HTTP server on loopback: the CloudEvent's
headers, the body byte for byte, the signature, and what each answer means."""

from __future__ import annotations

import dataclasses
import hashlib
import hmac
import tracemalloc
import urllib.parse
from pathlib import Path

import pytest
import urllib3

from connectors.api.connection import Sink
from connectors.devcluster.net import free_port
from connectors.sinks import Delivery, SecretFiles, deliver, settle, sink_id
from connectors.sinks.webhook import post
from connectors.submissions import CheckResult, SubmissionStore
from tests.integration.sinks.conftest import Receiver
from tests.integration.sinks.helpers import CSV, accepted_file, big_file, gzipped
from tests.support import secrets as secret_scan

HMAC_KEY = b"whsec-0123456789abcdef\n"  # exactly as stored: a trailing newline included


def webhook(url: str, ref: str | None = "hook-signing") -> Sink:
    spec: dict[str, object] = {"url": url}
    if ref is not None:
        spec["secretRef"] = {"name": ref}
    return Sink.model_validate({"webhook": spec})


@pytest.fixture
def secrets(tmp_path: Path) -> SecretFiles:
    root = tmp_path / "sinks"
    (root / "hook-signing").mkdir(parents=True)
    (root / "hook-signing" / "hmac-key").write_bytes(HMAC_KEY)
    secret_scan.remember(HMAC_KEY.decode().strip())
    return SecretFiles(root)


def test_the_file_arrives_as_a_binary_cloudevent_signed_with_the_key(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    delivery = accepted_file(tmp_path, name="conversions März 100%.csv")
    outcome = deliver(webhook(receiver.url), delivery, secrets)
    assert (outcome.delivered, outcome.retryable) == (True, False), outcome.message
    assert "200" in outcome.message
    [request] = receiver.requests
    assert (request.method, request.path) == ("POST", "/events")
    assert request.body == CSV
    headers = request.headers
    assert {name: headers[f"ce-{name}"] for name in (
        "specversion", "id", "source", "type", "time", "datatype", "sha256", "rowsaccepted",
        "rowsrejected")} == {
        "specversion": "1.0", "id": "3f0c9a1e-trace-0001",
        "source": "connectors/partners/acme-conversions",
        "type": "dev.connectors.submission.accepted", "time": "2025-03-01T10:00:02Z",
        "datatype": "Conversions", "sha256": hashlib.sha256(CSV).hexdigest(),
        "rowsaccepted": "197", "rowsrejected": "3"}
    # Percent-encoded as the HTTP binding says; decoded, the name as it was.
    assert headers["ce-subject"] == "conversions%20M%C3%A4rz%20100%25.csv"
    assert urllib.parse.unquote(headers["ce-subject"]) == delivery.name
    assert headers["content-type"] == "text/csv"
    assert headers["content-length"] == str(len(CSV))
    assert "transfer-encoding" not in headers
    expected = hmac.new(HMAC_KEY, CSV, hashlib.sha256).hexdigest()
    scheme, _, signature = headers["x-connectors-signature"].partition("=")
    assert scheme == "sha256"
    assert hmac.compare_digest(signature, expected)
    # A key that is not the one: the signature does not verify.
    other = hmac.new(HMAC_KEY.strip(), CSV, hashlib.sha256).hexdigest()
    assert not hmac.compare_digest(signature, other)


def test_without_a_secret_there_is_no_signature_and_gzip_says_so(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    delivery = gzipped(tmp_path)
    assert deliver(webhook(receiver.url, ref=None), delivery, secrets).delivered
    [request] = receiver.requests
    assert "x-connectors-signature" not in request.headers
    assert request.headers["content-type"] == "application/gzip"
    assert request.body == delivery.path.read_bytes()


def test_a_503_is_retried_after_its_backoff_and_then_delivered(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    receiver.answer((503, {"Retry-After": "120"}), 200)
    clock = [1_740_830_400.0]
    with SubmissionStore(tmp_path / "submissions.db", clock=lambda: clock[0]) as store:
        sid = store.record("acme-conversions", "c.csv", len(CSV), hashlib.sha256(CSV).hexdigest(),
                           "3f0c9a1e-trace-0001", "2025-03-01T10:00:00Z")
        [claim] = store.claim("p")
        store.mark_checked(claim, CheckResult("Complete", 197, 3, 3, ()))
        sink = webhook(receiver.url)
        store.queue_deliveries(sid, [sink_id(sink)])
        delivery = dataclasses.replace(accepted_file(tmp_path), submission_id=sid)

        [first] = store.due_deliveries("p")
        outcome = deliver(sink, delivery, secrets)
        assert (outcome.delivered, outcome.retryable, outcome.unreachable) == (False, True, True)
        assert outcome.retry_after == 120
        assert "503 Service Unavailable" in outcome.message
        assert settle(store, first, outcome, rand=lambda: 0.0) == "Pending"
        [waiting] = store.deliveries_of(sid)
        assert waiting.next_attempt_at == clock[0] + 120  # Retry-After over the 2.5 s backoff
        assert waiting.last_error is not None
        assert "503" in waiting.last_error

        assert store.due_deliveries("p") == []
        clock[0] += 120
        [second] = store.due_deliveries("p")
        outcome = deliver(sink, delivery, secrets)
        assert outcome.delivered, outcome.message
        assert settle(store, second, outcome) == "Delivered"
        [done] = store.deliveries_of(sid)
        assert (done.status, done.attempts) == ("Delivered", 2)
    assert [r.headers["ce-id"] for r in receiver.requests] == ["3f0c9a1e-trace-0001"] * 2


@pytest.mark.parametrize(("status", "words"), [
    (400, "answered 400 Bad Request: answer 400; the receiver refuses this file"),
    (401, "did not verify"),
    (404, "check the webhook's url"),
    (413, "larger than the receiver takes"),
])
def test_a_4xx_is_a_refusal_for_good_that_names_the_status(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles, status: int,
        words: str) -> None:
    receiver.answer(status)
    outcome = deliver(webhook(receiver.url), accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert str(status) in outcome.message
    assert words in outcome.message
    assert len(receiver.requests) == 1


@pytest.mark.parametrize("status", [408, 429, 500, 502])
def test_408_429_and_5xx_are_worth_another_try(tmp_path: Path, receiver: Receiver,
                                               secrets: SecretFiles, status: int) -> None:
    receiver.answer(status)
    outcome = deliver(webhook(receiver.url), accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert f"answered {status}" in outcome.message


def test_a_redirect_is_not_followed_and_says_where_it_pointed(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    receiver.answer((308, {"Location": "https://elsewhere.example/hook?token=abc"}))
    outcome = deliver(webhook(receiver.url), accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "308" in outcome.message
    assert "elsewhere.example" in outcome.message
    assert "token" not in outcome.message
    assert len(receiver.requests) == 1


def test_nobody_listening_is_worth_another_try(tmp_path: Path, secrets: SecretFiles) -> None:
    url = f"http://127.0.0.1:{free_port()}/events"
    outcome = deliver(webhook(url), accepted_file(tmp_path), secrets)
    assert (outcome.delivered, outcome.retryable, outcome.unreachable) == (False, True, True)
    assert "could not be reached: connection refused" in outcome.message


def test_a_receiver_that_does_not_answer_in_time_is_worth_another_try(
        tmp_path: Path, receiver: Receiver) -> None:
    receiver.delay = 2.0
    outcome = post(receiver.url, accepted_file(tmp_path),
                   timeout=urllib3.Timeout(connect=2.0, read=0.5))
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert "did not answer within 0.5 s" in outcome.message


def test_credentials_in_the_url_are_sent_as_basic_auth_and_never_put_into_words(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    password, token = "pw-Secret-4711-xyz", "tok-Secret-0815-abc"
    secret_scan.remember(password)
    secret_scan.remember(token)
    port = receiver.url.split(":")[2].split("/")[0]
    url = f"http://ingest:{password}@127.0.0.1:{port}/events?token={token}"
    receiver.answer(400)
    outcome = deliver(webhook(url), accepted_file(tmp_path), secrets)
    assert not outcome.delivered
    secret_scan.assert_absent(password, outcome.message, "the outcome's message")
    secret_scan.assert_absent(token, outcome.message, "the outcome's message")
    assert "127.0.0.1" in outcome.message
    [request] = receiver.requests
    assert request.path == f"/events?token={token}"
    assert request.headers["authorization"] == "Basic aW5nZXN0OnB3LVNlY3JldC00NzExLXh5eg=="


def test_a_file_that_changed_since_its_check_is_not_sent(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    delivery = accepted_file(tmp_path)
    delivery.path.write_bytes(CSV.replace(b"EUR", b"USD"))
    outcome = deliver(webhook(receiver.url), delivery, secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "no longer the file that was checked" in outcome.message
    delivery.path.unlink()
    outcome = deliver(webhook(receiver.url), delivery, secrets)
    assert (outcome.delivered, outcome.retryable) == (False, False)
    assert "no longer on the volume" in outcome.message
    assert receiver.requests == []


def test_a_missing_signing_key_waits_for_the_secret(tmp_path: Path, receiver: Receiver) -> None:
    outcome = deliver(webhook(receiver.url, ref="not-yet"), accepted_file(tmp_path),
                      SecretFiles(tmp_path / "sinks"))
    assert (outcome.delivered, outcome.retryable) == (False, True)
    assert f"{tmp_path}/sinks/not-yet/hmac-key" in outcome.message
    assert receiver.requests == []


def test_a_large_file_is_streamed_not_read_into_memory(
        tmp_path: Path, receiver: Receiver, secrets: SecretFiles) -> None:
    size = 48 * 1024 * 1024
    path = tmp_path / "large.csv"
    digest = big_file(path, size)
    delivery = Delivery("partners", "acme", "Conversions", "large.csv", path, size, digest,
                        "trace-large", "2025-03-01T10:00:00Z", "2025-03-01T10:00:02Z",
                        10**6, 0, 1)
    receiver.keep_body_up_to = 0
    tracemalloc.start()
    try:
        outcome = deliver(webhook(receiver.url), delivery, secrets)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert outcome.delivered, outcome.message
    [request] = receiver.requests
    assert (request.size, request.sha256) == (size, digest)
    assert peak < 8 * 1024 * 1024, f"peak {peak} bytes for a {size}-byte file"
