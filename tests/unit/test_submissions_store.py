"""The submission history: records, claims with leases, outcomes, summaries and
purges, correct with several processes writing and claiming at once."""

from __future__ import annotations

import multiprocessing
import os
import sqlite3
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from connectors.submissions import CheckError, CheckResult, SubmissionStore, store_path
from connectors.submissions.store import MIGRATIONS

START = 1_740_830_400.0  # 2025-03-01T12:00:00Z


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


def complete(accepted: int = 10, rejected: int = 0, errors: int = 0) -> CheckResult:
    kept = tuple(CheckError(line, "Amount", "validation", "not_a_decimal", f"bad {line}")
                 for line in range(2, 2 + errors))
    return CheckResult(status="Complete", rows_accepted=accepted, rows_rejected=rejected,
                       error_count=errors, errors=kept)


def failed() -> CheckResult:
    failure = CheckError(None, "", "validation", "binary_file", "the file is binary")
    return CheckResult(status="Failed", rows_accepted=0, rows_rejected=0, error_count=1,
                       errors=(failure,), failure=failure)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> Any:
    with SubmissionStore(tmp_path / "submissions.db", clock=clock) as opened:
        yield opened


def record(store: SubmissionStore, n: int, connection: str = "acme",
           received_at: str = "2025-03-01T10:00:00Z") -> int:
    return store.record(connection, f"conversions_{n}.csv", 100 + n, f"{n:064x}", f"trace-{n}",
                        received_at)


def test_a_new_store_is_migrated_in_wal_mode_and_reopens_as_it_was(tmp_path: Path) -> None:
    path = store_path(tmp_path)
    path.parent.mkdir()
    with SubmissionStore(path) as first:
        assert (first.version, first.journal_mode) == (len(MIGRATIONS), "WAL")
        record(first, 1)
    with SubmissionStore(path) as again:
        assert again.version == len(MIGRATIONS)
        assert [s.trace_id for s in again.history("acme")] == ["trace-1"]


def test_a_store_from_a_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "submissions.db"
    SubmissionStore(path).close()
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 1}")
    db.close()
    with pytest.raises(RuntimeError, match="newer version"):
        SubmissionStore(path)


def test_recording_the_same_receipt_twice_is_one_submission(store: SubmissionStore) -> None:
    first = record(store, 1)
    assert record(store, 1) == first
    assert store.summaries()["acme"].total == 1


def test_received_times_are_kept_in_utc(store: SubmissionStore) -> None:
    submission = store.get(record(store, 1, received_at="2025-03-01T10:00:00+02:00"))
    assert submission is not None
    assert submission.received_at == "2025-03-01T08:00:00Z"


def test_a_claimed_submission_is_checked_once_and_shows_its_outcome(store: SubmissionStore) -> None:
    record(store, 1)
    [claim] = store.claim("processor-a")
    assert (claim.submission.status, claim.submission.attempts) == ("Checking", 1)
    assert store.claim("processor-b") == []
    assert store.mark_checked(claim, complete(997, 3, errors=3))
    assert not store.mark_checked(claim, complete())  # once only
    done = store.get(claim.submission.id)
    assert done is not None
    assert (done.status, done.rows_accepted, done.rows_rejected, done.error_count) == (
        "Complete", 997, 3, 3)
    assert done.checked_at == "2025-03-01T12:00:00Z"
    assert [error["line"] for error in done.errors] == [2, 3, 4]
    assert done.errors[0]["errorType"] == "validation"


def test_only_the_first_errors_are_stored(tmp_path: Path) -> None:
    with SubmissionStore(tmp_path / "s.db", max_stored_errors=5) as small:
        record(small, 1)
        [claim] = small.claim("p")
        small.mark_checked(claim, complete(0, 50, errors=50))
        stored = small.get(claim.submission.id)
        assert stored is not None
        assert (len(stored.errors), stored.error_count) == (5, 50)


def test_claims_take_the_oldest_first_and_a_connection_alone_when_asked(
        store: SubmissionStore) -> None:
    for n in range(5):
        record(store, n, connection="acme" if n % 2 else "globex")
    claims = store.claim("p", limit=2, connection="acme")
    assert [c.submission.name for c in claims] == ["conversions_1.csv", "conversions_3.csv"]
    assert len({c.token for c in claims}) == 1
    assert [c.submission.name for c in store.claim("p", limit=10)] == [
        "conversions_0.csv", "conversions_2.csv", "conversions_4.csv"]


def test_an_expired_lease_is_taken_again_and_the_old_holder_can_no_longer_mark(
        store: SubmissionStore, clock: Clock) -> None:
    record(store, 1)
    [old] = store.claim("crashed", lease_seconds=10)
    clock.now += 5
    assert store.claim("other") == []  # still held
    renewed = store.renew(old, lease_seconds=10)
    assert renewed is not None
    assert renewed.lease_until == START + 15
    clock.now += 9
    assert store.claim("other") == []  # renewed: held until START + 15
    clock.now += 2
    [new] = store.claim("other")
    assert new.submission.attempts == 2
    assert store.renew(old) is None
    assert not store.mark_checked(old, complete())
    assert store.mark_checked(new, complete())


def test_a_file_that_never_gets_checked_fails_after_the_last_attempt(
        store: SubmissionStore, clock: Clock) -> None:
    sid = record(store, 1)
    for _ in range(3):
        assert len(store.claim("p", lease_seconds=1, max_attempts=3)) == 1
        clock.now += 2
    assert store.claim("p", max_attempts=3) == []
    given_up = store.get(sid)
    assert given_up is not None
    assert (given_up.status, given_up.errors[0]["code"]) == ("Failed", "not_checked")


def test_a_released_claim_goes_back_to_waiting(store: SubmissionStore) -> None:
    record(store, 1)
    [claim] = store.claim("stopping")
    assert store.release(claim)
    [again] = store.claim("next")
    assert (again.submission.id, again.submission.attempts) == (claim.submission.id, 1)
    assert not store.release(claim)


def test_listing_is_newest_first_and_failed_only_shows_what_needs_a_look(
        store: SubmissionStore) -> None:
    outcomes = {1: complete(), 2: complete(5, 2, errors=2), 3: failed(), 4: None}
    for n in outcomes:
        record(store, n, received_at=f"2025-03-01T10:0{n}:00Z")
    record(store, 9, connection="globex")
    for claim in store.claim("p", limit=3):
        outcome = outcomes[int(claim.submission.name.split("_")[1].split(".")[0])]
        assert outcome is not None
        store.mark_checked(claim, outcome)
    assert [s.name for s in store.history("acme")] == [
        "conversions_4.csv", "conversions_3.csv", "conversions_2.csv", "conversions_1.csv"]
    assert [s.name for s in store.history("acme", failed_only=True)] == [
        "conversions_3.csv", "conversions_2.csv"]
    assert len(store.history("acme", limit=2)) == 2


def test_summaries_count_per_connection(store: SubmissionStore) -> None:
    for n in range(4):
        record(store, n, received_at=f"2025-03-01T10:0{n}:00Z")
    record(store, 9, connection="globex")
    claims = store.claim("p", limit=3, connection="acme")
    store.mark_checked(claims[0], complete(100, 0))
    store.mark_checked(claims[1], complete(97, 3, errors=3))
    store.mark_checked(claims[2], failed())
    summary = store.summaries()["acme"]
    assert (summary.total, summary.waiting, summary.complete, summary.failed) == (4, 1, 2, 1)
    assert (summary.with_rejections, summary.rows_accepted, summary.rows_rejected) == (1, 197, 3)
    assert summary.last_received_at == "2025-03-01T10:03:00Z"
    assert summary.last_checked_at == "2025-03-01T12:00:00Z"
    assert set(store.summaries()) == {"acme", "globex"}
    assert set(store.summaries("globex")) == {"globex"}


def test_purge_removes_checked_submissions_past_the_retention(
        store: SubmissionStore, clock: Clock) -> None:
    old, recent, unchecked = (record(store, 1, received_at="2024-11-01T00:00:00Z"),
                              record(store, 2, received_at="2025-02-01T00:00:00Z"),
                              record(store, 3, received_at="2024-10-01T00:00:00Z"))
    for claim in store.claim("p", limit=2, connection="acme"):
        store.mark_checked(claim, complete())
    waiting = store.get(unchecked)
    assert waiting is not None
    assert waiting.status == "Received"
    assert store.purge() == 1  # 90 days by default
    assert store.get(old) is None
    assert store.get(recent) is not None
    assert store.get(unchecked) is not None
    clock.now += 30 * 86400
    assert store.purge(retention_days=30) == 1
    assert store.get(recent) is None
    assert store.get(unchecked) is not None


# ---- deliveries to sinks -------------------------------------------------------------------


def checked(store: SubmissionStore, n: int) -> int:
    sid = record(store, n)
    [claim] = store.claim("p", connection="acme")
    store.mark_checked(claim, complete())
    return sid


def test_a_store_at_version_1_migrates_to_deliveries_and_keeps_its_submissions(
        tmp_path: Path) -> None:
    path = tmp_path / "submissions.db"
    db = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        db.execute(statement)
    db.execute("INSERT INTO submissions (connection, name, size, sha256, trace_id, received_at) "
               "VALUES ('acme', 'old.csv', 5, 'ab', 'trace-old', '2025-03-01T09:00:00Z')")
    db.execute("PRAGMA user_version = 1")
    db.commit()
    db.close()
    with SubmissionStore(path) as store:
        assert store.version == len(MIGRATIONS) == 2
        [old] = store.history("acme")
        assert old.trace_id == "trace-old"
        assert store.queue_deliveries(old.id, ["webhook:a"]) == 1
        assert [d.status for d in store.deliveries_of(old.id)] == ["Pending"]


def test_queuing_is_idempotent_and_a_delivery_is_due_at_once(
        store: SubmissionStore, clock: Clock) -> None:
    sid = checked(store, 1)
    assert store.queue_deliveries(sid, ["webhook:a", "s3:b", "webhook:a"]) == 2
    assert store.queue_deliveries(sid, ["webhook:a", "s3:b"]) == 0
    assert store.queue_deliveries(sid, []) == 0
    records = store.deliveries_of(sid)
    assert [(d.sink_id, d.status, d.attempts, d.next_attempt_at) for d in records] == [
        ("s3:b", "Pending", 0, START), ("webhook:a", "Pending", 0, START)]
    claims = store.due_deliveries("p")
    assert {type(c.delivery.next_attempt_at) for c in claims} == {float}
    assert sorted(c.sink_id for c in claims) == ["s3:b", "webhook:a"]
    assert {c.attempts for c in claims} == {1}


def test_a_claimed_delivery_is_held_and_marked_once(store: SubmissionStore,
                                                    clock: Clock) -> None:
    sid = checked(store, 1)
    store.queue_deliveries(sid, ["webhook:a"])
    [claim] = store.due_deliveries("p", lease_seconds=60)
    assert store.due_deliveries("q") == []  # held
    clock.now += 10
    assert store.mark_delivered(claim)
    assert not store.mark_delivered(claim)
    assert not store.mark_failed(claim, "late")
    [done] = store.deliveries_of(sid)
    assert (done.status, done.attempts, done.next_attempt_at, done.delivered_at) == (
        "Delivered", 1, None, "2025-03-01T12:00:10Z")
    clock.now += 3600
    assert store.due_deliveries("q") == []


def test_a_retry_waits_until_its_time_and_keeps_the_error(store: SubmissionStore,
                                                          clock: Clock) -> None:
    sid = checked(store, 1)
    store.queue_deliveries(sid, ["webhook:a"])
    [claim] = store.due_deliveries("p")
    assert store.mark_retry(claim, START + 30, "the webhook answered 503")
    assert store.due_deliveries("p", now=START + 29) == []
    [again] = store.due_deliveries("p", now=START + 30)
    assert again.attempts == 2
    assert again.delivery.last_error == "the webhook answered 503"
    assert store.mark_delivered(again)
    [done] = store.deliveries_of(sid)
    assert (done.status, done.last_error) == ("Delivered", "the webhook answered 503")


def test_a_permanent_failure_is_never_tried_again(store: SubmissionStore, clock: Clock) -> None:
    sid = checked(store, 1)
    store.queue_deliveries(sid, ["s3:b"])
    [claim] = store.due_deliveries("p")
    assert store.mark_failed(claim, "x" * 5000)
    [failed_one] = store.deliveries_of(sid)
    assert failed_one.status == "Failed"
    assert failed_one.last_error is not None
    assert len(failed_one.last_error) == 1000
    assert store.due_deliveries("p", now=START + 10**6) == []


def test_an_expired_delivery_lease_is_taken_again_and_the_old_holder_cannot_mark(
        store: SubmissionStore, clock: Clock) -> None:
    sid = checked(store, 1)
    store.queue_deliveries(sid, ["webhook:a"])
    [old] = store.due_deliveries("crashed", lease_seconds=10)
    clock.now += 11
    [new] = store.due_deliveries("other")
    assert new.attempts == 2
    assert new.token != old.token
    assert not store.mark_delivered(old)
    assert store.mark_retry(new, clock.now + 5, "503")


def test_a_delivery_is_failed_after_its_last_attempt(store: SubmissionStore,
                                                     clock: Clock) -> None:
    crashed, retried = checked(store, 1), checked(store, 2)
    store.queue_deliveries(crashed, ["webhook:a"])
    store.queue_deliveries(retried, ["s3:b"])
    for _ in range(3):
        claims = {c.submission_id: c for c in store.due_deliveries("p", lease_seconds=1,
                                                                   max_attempts=3)}
        assert set(claims) == {crashed, retried}
        store.mark_retry(claims[retried], clock.now + 1, "the bucket answered 500")
        clock.now += 2
    assert store.due_deliveries("p", max_attempts=3) == []
    [gone] = store.deliveries_of(crashed)
    [tired] = store.deliveries_of(retried)
    assert (gone.status, gone.last_error) == (
        "Failed", "not delivered in 3 attempts: the processor stopped during each")
    assert (tired.status, tired.last_error) == (
        "Failed", "not delivered in 3 attempts: the bucket answered 500")


def test_claims_take_the_longest_due_first_up_to_the_limit(store: SubmissionStore,
                                                           clock: Clock) -> None:
    first = checked(store, 1)
    clock.now += 1
    second = checked(store, 2)
    store.queue_deliveries(second, ["webhook:a"])
    clock.now += 1
    store.queue_deliveries(first, ["webhook:a"])
    [claim] = store.due_deliveries("p", limit=1)
    assert claim.submission_id == second
    [claim] = store.due_deliveries("p", limit=5)
    assert claim.submission_id == first


def test_a_released_delivery_is_due_again_without_an_attempt(store: SubmissionStore) -> None:
    sid = checked(store, 1)
    store.queue_deliveries(sid, ["webhook:a"])
    [claim] = store.due_deliveries("stopping")
    assert store.release_delivery(claim)
    [again] = store.due_deliveries("next")
    assert again.attempts == 1


def test_a_sink_that_is_down_is_postponed_for_all_its_waiting_files(
        store: SubmissionStore, clock: Clock) -> None:
    ids = [checked(store, n) for n in range(3)]
    for sid in ids:
        store.queue_deliveries(sid, ["webhook:down", "s3:up"])
    # ids[0] to s3:up: held, and so left alone.
    [held] = store.due_deliveries("p", limit=1, lease_seconds=1000)
    assert (held.submission_id, held.sink_id) == (ids[0], "s3:up")
    assert store.postpone_sink("webhook:down", START + 600) == 3
    assert store.postpone_sink("s3:up", START + 600) == 2
    assert store.due_deliveries("p", now=START + 599) == []
    assert len(store.due_deliveries("p", now=START + 600, limit=10)) == 5
    assert {d.attempts for sid in ids for d in store.deliveries_of(sid)} == {1}


def test_purge_keeps_a_submission_whose_delivery_is_pending_and_drops_delivered_ones(
        store: SubmissionStore, clock: Clock) -> None:
    pending, delivered = checked(store, 1), checked(store, 2)
    store.queue_deliveries(pending, ["webhook:a"])
    store.queue_deliveries(delivered, ["webhook:b"])
    [claim] = [c for c in store.due_deliveries("p") if c.submission_id == delivered]
    store.mark_delivered(claim)
    clock.now += 100 * 86400
    assert store.purge() == 1
    assert store.get(delivered) is None
    assert store.deliveries_of(delivered) == []
    assert [d.status for d in store.deliveries_of(pending)] == ["Pending"]


# ---- several processes at once -------------------------------------------------------------


def _writer(path: str, first: int, count: int) -> None:
    with SubmissionStore(path) as store:
        for n in range(first, first + count):
            record(store, n, connection=f"c{n % 3}")


def _claimer(path: str, worker: str, total: int, results: Any) -> None:
    """Claims and marks until every submission is checked; reports what it held."""
    claimed: list[int] = []
    marked: list[int] = []
    deadline = time.monotonic() + 60
    with SubmissionStore(path) as store:
        while time.monotonic() < deadline:
            claims = store.claim(worker, limit=3, lease_seconds=30)
            for claim in claims:
                claimed.append(claim.submission.id)
                if store.mark_checked(claim, complete()):
                    marked.append(claim.submission.id)
            if not claims:
                done = sum(s.complete for s in store.summaries().values())
                if done >= total:
                    break
                time.sleep(0.01)
    results.put((worker, claimed, marked))


def _crasher(path: str) -> None:
    """Claims four submissions and dies without a word, as a killed pod does."""
    with SubmissionStore(path) as store:
        store.claim("crasher", limit=4, lease_seconds=0.5)
    os._exit(1)


def test_writers_and_claimers_in_separate_processes_check_every_file_exactly_once(
        tmp_path: Path) -> None:
    path = str(tmp_path / "submissions.db")
    with SubmissionStore(path) as store:
        early = [record(store, 1000 + n) for n in range(4)]
    context = multiprocessing.get_context("spawn")
    crasher = context.Process(target=_crasher, args=(path,))
    crasher.start()
    crasher.join(timeout=30)
    assert crasher.exitcode == 1

    results = context.Queue()
    writers, per_writer = 4, 60
    total = len(early) + writers * per_writer
    processes = [context.Process(target=_writer, args=(path, w * per_writer, per_writer))
                 for w in range(writers)]
    processes += [context.Process(target=_claimer, args=(path, f"p{i}", total, results))
                  for i in range(3)]
    for process in processes:
        process.start()
    reports = [results.get(timeout=90) for _ in range(3)]
    for process in processes:
        process.join(timeout=30)
    assert [p.exitcode for p in processes] == [0] * len(processes)

    marked = Counter(sid for _, _, ids in reports for sid in ids)
    assert len(marked) == total, "no file skipped"
    assert set(marked.values()) == {1}, "no file checked twice"
    claimed = Counter(sid for _, ids, _ in reports for sid in ids)
    assert claimed == marked, "no claim of a live processor was ever taken from it"
    with SubmissionStore(path) as store:
        everything = [s for c in ("acme", "c0", "c1", "c2") for s in store.history(c, limit=total)]
    assert len(everything) == total
    assert {s.status for s in everything} == {"Complete"}
    # What the crasher held came back once its lease expired: a second attempt.
    assert sorted(s.id for s in everything if s.attempts == 2) == early
    assert {s.attempts for s in everything if s.id not in early} == {1}


def test_many_processes_opening_a_new_store_at_once_all_succeed(tmp_path: Path) -> None:
    """The processor's threads, and processors, each open the store; on a new
    database the switch to WAL answered "database is locked" to all but one,
    without waiting for the busy timeout."""
    import subprocess
    import sys
    import time as clock

    path = tmp_path / "new.db"
    start = clock.time() + 1.0
    script = ("import sys, time; from connectors.submissions import SubmissionStore\n"
              f"time.sleep(max(0, {start} - time.time()))\n"
              "s = SubmissionStore(sys.argv[1]); print(s.journal_mode); s.close()")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(path)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(8)]
    outcomes = [run.communicate(timeout=60) for run in runs]
    assert [(out.strip(), err[-300:]) for out, err in outcomes] == [("WAL", "")] * 8
