"""The submission history: an SQLite database on the namespace's data volume.

Every landed file of an Inbound Connection is recorded (by whoever landed it: a
listener replica or a transfer job), claimed by a processor, checked, and
marked Complete or Failed with its counts and first errors. Kept for a
retention period (90 days by default), then purged.

Several processes write at once: listener replicas, jobs, processors. SQLite
serializes writers; WAL mode lets readers go on while one writes; every write
starts with BEGIN IMMEDIATE, which takes the write lock up front and waits for
it (the busy timeout), so no transaction fails halfway for want of the lock.
WAL needs every process on one machine (it shares memory through a file
beside the database): true of a ReadWriteOnce volume, whose pods share a node.
On a network filesystem, open the store with journal_mode="DELETE".

Claims make processing exactly-once-at-a-time: a processor claims submissions
with an atomic UPDATE ... RETURNING that takes only those nobody holds, with a
lease. A processor that crashes stops renewing; its lease expires and the next
claim takes the submission again, so none is skipped; one whose lease expired
cannot mark the submission any more (its token no longer matches), so no file
is checked twice at once to any effect. A submission claimed `max_attempts`
times without an outcome (a file that crashes the processor) is marked Failed
instead of being taken again forever.

Deliveries: a checked file with accepted rows goes to each sink of its
Connection (spec.submissions.deliverTo). queue_deliveries() records one row
per (submission, sink), Pending and due at once; due_deliveries() claims the
due ones with a lease, as claim() does submissions, so two processors never
deliver the same file to the same sink at once; the holder marks it Delivered,
Pending again at a later time (mark_retry: the sink failed for now) or Failed
(permanently, or after its last attempt). A delivery whose holder died is
claimed again once its lease expires, and is Failed once it was claimed
`max_attempts` times. The sinks package does the delivering; the store only
keeps the account.

Migrations: PRAGMA user_version is the number of MIGRATIONS applied; each runs
in the same write transaction as the version bump, so concurrent first starts
apply it once.
"""

from __future__ import annotations

import datetime
import json
import sqlite3
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .outcome import CheckResult

RETENTION_DAYS = 90

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE submissions (
            id INTEGER PRIMARY KEY,
            connection TEXT NOT NULL,
            name TEXT NOT NULL,
            size INTEGER NOT NULL,
            sha256 TEXT NOT NULL,
            trace_id TEXT NOT NULL UNIQUE,
            received_at TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'Received'
                CHECK (status IN ('Received', 'Checking', 'Complete', 'Failed')),
            claimed_by TEXT,
            claim_token TEXT,
            lease_until REAL,
            attempts INTEGER NOT NULL DEFAULT 0,
            checked_at TEXT,
            rows_accepted INTEGER,
            rows_rejected INTEGER,
            error_count INTEGER,
            errors TEXT
        )""",
        "CREATE INDEX submissions_by_connection ON submissions (connection, received_at, id)",
        "CREATE INDEX submissions_by_status ON submissions (status, lease_until)",
    ),
    (
        """CREATE TABLE deliveries (
            submission_id INTEGER NOT NULL,
            sink_id TEXT NOT NULL,
            status TEXT NOT NULL DEFAULT 'Pending'
                CHECK (status IN ('Pending', 'Delivered', 'Failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            next_attempt_at REAL,
            delivered_at TEXT,
            last_error TEXT,
            claimed_by TEXT,
            claim_token TEXT,
            lease_until REAL,
            PRIMARY KEY (submission_id, sink_id)
        )""",
        "CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at)",
        "CREATE INDEX deliveries_by_sink ON deliveries (sink_id, status)",
    ),
)

# SQL text is built only from constants like this one; every value is a bound
# parameter (hence the noqa: S608 below).
_COLUMNS = ("id, connection, name, size, sha256, trace_id, received_at, status, attempts, "
            "checked_at, rows_accepted, rows_rejected, error_count, errors")

_DELIVERY_COLUMNS = ("submission_id, sink_id, status, attempts, next_attempt_at, delivered_at, "
                     "last_error")
# Pending, due by :now, and held by nobody (never claimed, settled, or the lease expired).
_DUE = ("status = 'Pending' AND next_attempt_at <= :now "
        "AND (lease_until IS NULL OR lease_until < :now)")
# An error is a sentence or two; a receiver's whole answer is not kept.
MAX_ERROR_LENGTH = 1000


def store_path(root: Path) -> Path:
    """Where a namespace's store lives on its data volume: beside the landing
    areas, never inside one (partners see only their own folder), under a name
    no Connection can have (names start with a letter or digit)."""
    return root / ".connectors" / "submissions.db"


@dataclass(frozen=True)
class Submission:
    id: int
    connection: str
    name: str
    size: int
    sha256: str
    trace_id: str
    received_at: str
    status: str
    """Received (waiting), Checking (claimed), Complete or Failed."""
    attempts: int
    checked_at: str | None
    rows_accepted: int | None
    rows_rejected: int | None
    error_count: int | None
    errors: tuple[dict[str, object], ...]

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> Submission:
        """From a row of _COLUMNS, in that order."""
        values = dict(zip(_COLUMNS.split(", "), row, strict=True))
        values["errors"] = tuple(json.loads(row[-1])) if row[-1] else ()
        return cls(**values)


@dataclass(frozen=True)
class Claim:
    """A submission held by one processor until `lease_until` (epoch seconds)."""

    submission: Submission
    token: str
    lease_until: float


@dataclass(frozen=True)
class Summary:
    """A Connection's submissions, counted: what status.submissions shows."""

    connection: str
    total: int
    waiting: int
    """Received or Checking: not checked yet."""
    complete: int
    failed: int
    with_rejections: int
    """Complete, with at least one rejected row."""
    rows_accepted: int
    rows_rejected: int
    last_received_at: str | None
    last_checked_at: str | None


@dataclass(frozen=True)
class DeliveryRecord:
    """Where one submission stands with one sink."""

    submission_id: int
    sink_id: str
    status: str
    """Pending (due at next_attempt_at, or held by a processor), Delivered or Failed."""
    attempts: int
    """How often it was claimed: each claim is one attempt."""
    next_attempt_at: float | None
    """Epoch seconds; None once Delivered or Failed."""
    delivered_at: str | None
    last_error: str | None
    """The latest failure's words; kept after a later success, for the record."""

    @classmethod
    def from_row(cls, row: tuple[Any, ...]) -> DeliveryRecord:
        """From a row of _DELIVERY_COLUMNS, in that order. RETURNING gives a
        whole REAL as an integer: made float again."""
        values = list(row)
        values[4] = None if values[4] is None else float(values[4])
        return cls(*values)


@dataclass(frozen=True)
class DeliveryClaim:
    """A delivery held by one processor until `lease_until` (epoch seconds)."""

    delivery: DeliveryRecord
    token: str
    lease_until: float

    @property
    def submission_id(self) -> int:
        return self.delivery.submission_id

    @property
    def sink_id(self) -> str:
        return self.delivery.sink_id

    @property
    def attempts(self) -> int:
        """Including this one."""
        return self.delivery.attempts


class SubmissionStore:
    """One connection to the database; one per process or thread."""

    def __init__(self, path: str | Path, *, busy_timeout: float = 30.0,
                 journal_mode: str = "WAL", max_stored_errors: int = 100,
                 clock: Callable[[], float] = time.time) -> None:
        if sqlite3.sqlite_version_info < (3, 35):
            raise RuntimeError(f"SQLite {sqlite3.sqlite_version} is too old for the submission "
                               "store: it needs 3.35 or later (UPDATE ... RETURNING)")
        self.path = Path(path)
        self.max_stored_errors = max_stored_errors
        self._clock = clock
        # isolation_level=None: no implicit transactions; _write() says where
        # each begins and ends.
        self._db = sqlite3.connect(self.path, timeout=busy_timeout, isolation_level=None)
        self._db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
        self.journal_mode = self._set_journal_mode(_pragma_word(journal_mode), busy_timeout)
        # FULL: a committed record survives a power cut; a lost one would be a
        # landed file that is never checked.
        self._db.execute("PRAGMA synchronous = FULL")
        self._migrate()

    def _set_journal_mode(self, mode: str, busy_timeout: float) -> str:
        """Switching a new database to WAL needs it to itself, and SQLite answers
        "locked" at once, without the busy timeout, while another connection
        opens it too (the processor's threads each open their own): try again
        until the timeout."""
        deadline = time.monotonic() + busy_timeout
        while True:
            try:
                row = self._db.execute(f"PRAGMA journal_mode = {mode}").fetchone()
                return str(row[0]).upper()
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or time.monotonic() > deadline:
                    raise
                time.sleep(0.01)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> SubmissionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _migrate(self) -> None:
        if self.version == len(MIGRATIONS):
            return
        with self._write() as db:
            version = self.version  # again: another process may have migrated meanwhile
            if version > len(MIGRATIONS):
                raise RuntimeError(f"{self.path} was written by a newer version (schema "
                                   f"{version}; this one knows {len(MIGRATIONS)})")
            for statements in MIGRATIONS[version:]:
                for statement in statements:
                    db.execute(statement)
            db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")

    def now(self) -> float:
        """The store's clock (epoch seconds): next_attempt_at and leases are on it."""
        return self._clock()

    @property
    def version(self) -> int:
        return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    # ---- recording and claiming --------------------------------------------------------

    def record(self, connection: str, name: str, size: int, sha256: str, trace_id: str,
               received_at: str) -> int:
        """Records a landed file; returns its id. Idempotent by trace id: the
        same receipt recorded twice (a retry after a crash) is one submission."""
        with self._write() as db:
            db.execute(
                "INSERT INTO submissions (connection, name, size, sha256, trace_id, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trace_id) DO NOTHING",
                (connection, name, size, sha256, trace_id, _utc(received_at)))
            row = db.execute("SELECT id FROM submissions WHERE trace_id = ?",
                             (trace_id,)).fetchone()
        return int(row[0])

    def record_many(self, files: list[tuple[str, str, int, str, str, str]]) -> int:
        """record() for many files in one transaction (connection, name, size,
        sha256, trace id, received at); returns how many were new. A processor
        that starts on a volume of many files records them at the cost of one
        commit, not one each."""
        if not files:
            return 0
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO submissions (connection, name, size, sha256, trace_id, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (trace_id) DO NOTHING",
                [(*f[:5], _utc(f[5])) for f in files])
            return db.total_changes - before

    def claim(self, worker: str, *, limit: int = 1, lease_seconds: float = 300.0,
              connection: str | None = None, max_attempts: int = 5) -> list[Claim]:
        """Takes up to `limit` submissions that nobody holds (waiting, or whose
        lease expired), oldest first, until now + lease_seconds."""
        now = self._clock()
        token = uuid.uuid4().hex
        until = now + lease_seconds
        where = "" if connection is None else "AND connection = :connection"
        with self._write() as db:
            self._give_up(db, now, max_attempts)
            rows = db.execute(
                f"UPDATE submissions SET status = 'Checking', claimed_by = :worker, "  # noqa: S608
                f"claim_token = :token, lease_until = :until, attempts = attempts + 1 "
                f"WHERE id IN (SELECT id FROM submissions WHERE (status = 'Received' OR "
                f"(status = 'Checking' AND lease_until < :now)) {where} ORDER BY id LIMIT :limit) "
                f"RETURNING {_COLUMNS}",
                {"worker": worker, "token": token, "until": until, "now": now, "limit": limit,
                 "connection": connection}).fetchall()
        claims = [Claim(Submission.from_row(row), token, until) for row in rows]
        return sorted(claims, key=lambda claim: claim.submission.id)

    def _give_up(self, db: sqlite3.Connection, now: float, max_attempts: int) -> None:
        error = {"line": None, "column": "", "errorType": "validation", "code": "not_checked",
                 "message": f"the file could not be checked in {max_attempts} attempts"}
        db.execute(
            "UPDATE submissions SET status = 'Failed', claim_token = NULL, lease_until = NULL, "
            "checked_at = ?, rows_accepted = 0, rows_rejected = 0, error_count = 1, errors = ? "
            "WHERE status = 'Checking' AND lease_until < ? AND attempts >= ?",
            (_now_text(now), json.dumps([error]), now, max_attempts))

    def renew(self, claim: Claim, lease_seconds: float = 300.0) -> Claim | None:
        """Extends a claim still held; None when it was lost (the lease expired
        and another processor took it)."""
        until = self._clock() + lease_seconds
        with self._write() as db:
            held = db.execute(
                "UPDATE submissions SET lease_until = ? WHERE id = ? AND claim_token = ? "
                "AND status = 'Checking'", (until, claim.submission.id, claim.token)).rowcount
        return Claim(claim.submission, claim.token, until) if held else None

    def release(self, claim: Claim) -> bool:
        """Gives a claim back unchecked (a processor shutting down)."""
        with self._write() as db:
            return bool(db.execute(
                "UPDATE submissions SET status = 'Received', claim_token = NULL, "
                "lease_until = NULL, attempts = max(attempts - 1, 0) "
                "WHERE id = ? AND claim_token = ? AND status = 'Checking'",
                (claim.submission.id, claim.token)).rowcount)

    def mark_checked(self, claim: Claim, result: CheckResult,
                     deliver_to: list[str] | None = None) -> bool:
        """Records the outcome of a check; False when the claim was lost, in
        which case the outcome is dropped (another processor has the file).
        `deliver_to`: sink ids that get a Pending delivery, in the same
        transaction as the outcome, so that no crash can leave an accepted file
        checked but never handed on."""
        errors = [error.as_dict() for error in result.errors[:self.max_stored_errors]]
        now = self._clock()
        with self._write() as db:
            marked = bool(db.execute(
                "UPDATE submissions SET status = ?, claim_token = NULL, lease_until = NULL, "
                "checked_at = ?, rows_accepted = ?, rows_rejected = ?, error_count = ?, "
                "errors = ? WHERE id = ? AND claim_token = ? AND status = 'Checking'",
                (result.status, _now_text(now), result.rows_accepted,
                 result.rows_rejected, result.error_count, json.dumps(errors),
                 claim.submission.id, claim.token)).rowcount)
            if marked and deliver_to:
                db.executemany(
                    "INSERT INTO deliveries (submission_id, sink_id, next_attempt_at) "
                    "VALUES (?, ?, ?) ON CONFLICT (submission_id, sink_id) DO NOTHING",
                    [(claim.submission.id, sink, now) for sink in dict.fromkeys(deliver_to)])
            return marked

    # ---- reading and purging -----------------------------------------------------------

    def get(self, submission_id: int) -> Submission | None:
        row = self._db.execute(f"SELECT {_COLUMNS} FROM submissions WHERE id = ?",  # noqa: S608
                               (submission_id,)).fetchone()
        return None if row is None else Submission.from_row(row)

    def history(self, connection: str, *, failed_only: bool = False,
                limit: int = 20) -> list[Submission]:
        """Newest first. failed_only: those the partner must look at: Failed,
        or Complete with rejected rows."""
        failed = "AND (status = 'Failed' OR rows_rejected > 0)" if failed_only else ""
        rows = self._db.execute(
            f"SELECT {_COLUMNS} FROM submissions WHERE connection = ? {failed} "  # noqa: S608
            "ORDER BY received_at DESC, id DESC LIMIT ?", (connection, limit)).fetchall()
        return [Submission.from_row(row) for row in rows]

    def summaries(self, connection: str | None = None) -> dict[str, Summary]:
        """Counts per Connection (one, or all)."""
        where = "" if connection is None else "WHERE connection = ?"
        rows = self._db.execute(
            "SELECT connection, count(*), "  # noqa: S608
            "total(status IN ('Received', 'Checking')), total(status = 'Complete'), "
            "total(status = 'Failed'), total(status = 'Complete' AND rows_rejected > 0), "
            "total(rows_accepted), total(rows_rejected), max(received_at), max(checked_at) "
            f"FROM submissions {where} GROUP BY connection",
            () if connection is None else (connection,)).fetchall()
        return {row[0]: _summary(row) for row in rows}

    def purge(self, retention_days: float = RETENTION_DAYS) -> int:
        """Deletes checked submissions received more than `retention_days` ago,
        with their deliveries; returns how many. Unchecked ones stay, however
        old, and so do those with a delivery still Pending."""
        cutoff = _now_text(self._clock() - retention_days * 86400)
        with self._write() as db:
            purged = db.execute(
                "DELETE FROM submissions WHERE received_at < ? "
                "AND status IN ('Complete', 'Failed') AND id NOT IN "
                "(SELECT submission_id FROM deliveries WHERE status = 'Pending')",
                (cutoff,)).rowcount
            db.execute("DELETE FROM deliveries WHERE submission_id NOT IN "
                       "(SELECT id FROM submissions)")
            return purged

    # ---- deliveries to sinks -----------------------------------------------------------

    def queue_deliveries(self, submission_id: int, sink_ids: list[str]) -> int:
        """One Pending delivery per sink, due now; returns how many were new.
        Idempotent: a sink the submission already has (in any status) is left
        as it is, so queuing again after a crash delivers nothing twice."""
        if not sink_ids:
            return 0
        now = self._clock()
        with self._write() as db:
            before = db.total_changes
            db.executemany(
                "INSERT INTO deliveries (submission_id, sink_id, next_attempt_at) "
                "VALUES (?, ?, ?) ON CONFLICT (submission_id, sink_id) DO NOTHING",
                [(submission_id, sink_id, now) for sink_id in dict.fromkeys(sink_ids)])
            return db.total_changes - before

    def due_deliveries(self, worker: str, *, limit: int = 10, lease_seconds: float = 300.0,
                       max_attempts: int = 100, now: float | None = None
                       ) -> list[DeliveryClaim]:
        """Claims up to `limit` Pending deliveries that are due (next_attempt_at
        <= now) and that nobody holds, the longest due first, until now +
        lease_seconds. Each claim counts as an attempt: a due delivery already
        claimed `max_attempts` times (its holder died each time, or asked for a
        retry after the last attempt) is Failed instead of being taken again."""
        now = self._clock() if now is None else now
        token = uuid.uuid4().hex
        until = now + lease_seconds
        with self._write() as db:
            # Due, free, and claimed max_attempts times already: no further claim.
            db.execute(
                "UPDATE deliveries SET status = 'Failed', claim_token = NULL, "  # noqa: S608
                "lease_until = NULL, next_attempt_at = NULL, last_error = :prefix || "
                "coalesce(last_error, 'the processor stopped during each') "
                f"WHERE {_DUE} AND attempts >= :max",
                {"prefix": f"not delivered in {max_attempts} attempts: ", "now": now,
                 "max": max_attempts})
            rows = db.execute(
                f"UPDATE deliveries SET claimed_by = :worker, claim_token = :token, "  # noqa: S608
                f"lease_until = :until, attempts = attempts + 1 "
                f"WHERE rowid IN (SELECT rowid FROM deliveries WHERE {_DUE} "
                f"ORDER BY next_attempt_at, submission_id, sink_id LIMIT :limit) "
                f"RETURNING {_DELIVERY_COLUMNS}",
                {"worker": worker, "token": token, "until": until, "now": now,
                 "limit": limit}).fetchall()
        claims = [DeliveryClaim(DeliveryRecord.from_row(row), token, until) for row in rows]
        return sorted(claims, key=lambda c: (c.delivery.next_attempt_at or 0.0,
                                             c.submission_id, c.sink_id))

    def mark_delivered(self, claim: DeliveryClaim) -> bool:
        """The sink has the file; False when the claim was lost meanwhile."""
        return self._settle(claim, "status = 'Delivered', delivered_at = ?, "
                                   "next_attempt_at = NULL", (_now_text(self._clock()),))

    def mark_retry(self, claim: DeliveryClaim, next_attempt_at: float, error: str) -> bool:
        """The sink failed for now: Pending again, due at `next_attempt_at`."""
        return self._settle(claim, "next_attempt_at = ?, last_error = ?",
                            (next_attempt_at, _error_text(error)))

    def mark_failed(self, claim: DeliveryClaim, error: str) -> bool:
        """The sink refused for good, or the last attempt failed: no more tries."""
        return self._settle(claim, "status = 'Failed', next_attempt_at = NULL, last_error = ?",
                            (_error_text(error),))

    def release_delivery(self, claim: DeliveryClaim) -> bool:
        """Gives a claim back untried (a processor shutting down)."""
        return self._settle(claim, "attempts = max(attempts - 1, 0)", ())

    def _settle(self, claim: DeliveryClaim, assignments: str, values: tuple[Any, ...]) -> bool:
        with self._write() as db:
            return bool(db.execute(
                f"UPDATE deliveries SET {assignments}, claim_token = NULL, "  # noqa: S608
                "lease_until = NULL WHERE submission_id = ? AND sink_id = ? "
                "AND claim_token = ? AND status = 'Pending'",
                (*values, claim.submission_id, claim.sink_id, claim.token)).rowcount)

    def postpone_sink(self, sink_id: str, until: float) -> int:
        """Moves every Pending delivery to `sink_id` that nobody holds to no
        earlier than `until`, without counting an attempt; returns how many
        moved. For a sink that is down: its other files wait with the one that
        failed instead of each spending a timeout on it."""
        now = self._clock()
        with self._write() as db:
            return db.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE sink_id = ? "
                "AND status = 'Pending' AND next_attempt_at < ? "
                "AND (lease_until IS NULL OR lease_until < ?)",
                (until, sink_id, until, now)).rowcount

    def deliveries_of(self, submission_id: int) -> list[DeliveryRecord]:
        """A submission's deliveries, one per sink, by sink id."""
        rows = self._db.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM deliveries WHERE submission_id = ? "  # noqa: S608
            "ORDER BY sink_id", (submission_id,)).fetchall()
        return [DeliveryRecord.from_row(row) for row in rows]


def _summary(row: tuple[Any, ...]) -> Summary:
    """From a row of summaries()' query. total() sums to a float: made int again."""
    counts = [int(n) for n in row[1:8]]
    return Summary(row[0], counts[0], counts[1], counts[2], counts[3], counts[4], counts[5],
                   counts[6], last_received_at=row[8], last_checked_at=row[9])


def _error_text(error: str) -> str:
    return error if len(error) <= MAX_ERROR_LENGTH else error[:MAX_ERROR_LENGTH - 1] + "…"


def _pragma_word(word: str) -> str:
    if not word.isalpha():
        raise ValueError(f"not a journal mode: {word!r}")
    return word


def _utc(text: str) -> str:
    """An RFC 3339 time as UTC in one fixed form, so that times compare as text."""
    moment = datetime.datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _now_text(epoch: float) -> str:
    return datetime.datetime.fromtimestamp(epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
