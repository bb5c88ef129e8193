"""Checking one claimed submission: read the file, write `result_<name>.csv` beside
it, record the outcome.

The result file is written the way files land: to a hidden temporary name,
fsynced, renamed into place. It goes before the outcome is recorded, so a
processor that dies in between checks the file again on the next claim and
writes the same result; a recorded outcome always has its result file.
"""

from __future__ import annotations

import datetime
import logging
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from .. import pgp
from ..api.file_schema import FileSchema
from ..landing.area import LandingArea
from ..landing.durable import fsync_dir
from ..landing.names import INTERNAL_DIR, result_name
from ..pgp import PgpError
from ..sinks import SecretMissing
from ..submissions import (
    CheckError,
    CheckResult,
    CheckSettings,
    Claim,
    SubmissionStore,
    check_file,
    render_result,
)

log = logging.getLogger(__name__)

DECRYPTED_DIR = "decrypted"


@dataclass(frozen=True)
class Checked:
    """What became of one claim, for the report."""

    connection: str
    name: str
    result: CheckResult
    result_file: str
    answered: str | None = None
    """Email: the sender the results were sent back to."""


def file_gone(path: Path) -> CheckResult:
    """The outcome for a submission whose file is no longer on the volume."""
    error = CheckError(None, "", "validation", "file_missing",
                       f"the file {path.name} was removed before it could be checked")
    return CheckResult(status="Failed", rows_accepted=0, rows_rejected=0, error_count=1,
                       errors=(error,), failure=error)


class Heartbeat:
    """Renews the claim being checked every third of its lease, from a thread with
    its own connection to the store: a check of a large file outlasts a lease, and
    a short lease is what lets a crashed processor's file be taken up again soon."""

    def __init__(self, store_path: Path, lease_seconds: float) -> None:
        self.store_path = store_path
        self.lease_seconds = lease_seconds
        self._claim: Claim | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="claim-heartbeat", daemon=True)
        self._thread.start()

    def holding(self, claim: Claim | None) -> None:
        with self._lock:
            self._claim = claim

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _beat(self) -> None:
        with SubmissionStore(self.store_path) as store:
            while not self._stop.wait(self.lease_seconds / 3):
                with self._lock:
                    claim = self._claim
                if claim is not None and store.renew(claim, self.lease_seconds) is None:
                    log.warning("lost the claim on %s", claim.submission.name)


def process(claim: Claim, path: Path | None, schema: FileSchema, root: Path,
            store: SubmissionStore, settings: CheckSettings,
            now: datetime.datetime | None = None,
            deliver_to: list[str] | None = None,
            private_key: Callable[[], str] | None = None) -> Checked | None:
    """Checks the claimed file at `path` and answers the partner. None when the
    claim was given back: the file at `path` is not (yet) the one the receipt
    describes, the decryption key is not there yet, or another processor took
    the claim meanwhile. A file with accepted rows gets a delivery to each sink
    of `deliver_to` (sink ids). `private_key`: spec.pgp.decryptWith, the file is
    decrypted (beside the landing area, never in the partner's view) and the
    plain text is checked and handed on."""
    submission = claim.submission
    plain = decrypted_path(root, submission.connection, submission.trace_id)
    if path is None or not path.is_file():
        result = file_gone(path or Path(submission.name))
    elif path.stat().st_size != submission.size:
        # A newer upload is being put in its place; the earlier version is
        # on its way to .connectors/superseded/, where discovery finds it.
        store.release(claim)
        return None
    else:
        try:
            source = path if private_key is None else decrypt(path, plain, private_key())
        except SecretMissing as missing:
            log.warning("cannot decrypt %s yet: %s", submission.name, missing)
            store.release(claim)
            return None
        except PgpError as refused:
            result = not_decrypted(str(refused))
        else:
            result = check_file(source, schema, now or datetime.datetime.now(datetime.UTC),
                                settings)
    target = write_result(root, submission.connection, submission.name, result,
                          submission.trace_id)
    accepted = result.status == "Complete" and result.rows_accepted > 0
    if not (accepted and deliver_to):
        plain.unlink(missing_ok=True)  # nothing will hand it on
    if not store.mark_checked(claim, result, deliver_to if accepted else None):
        log.info("the claim on %s was lost; another processor records it", submission.name)
        return None
    return Checked(submission.connection, submission.name, result, target.name)


def decrypted_path(root: Path, connection: str, trace_id: str) -> Path:
    """Where the plain text of an encrypted file is kept until it is handed on:
    in the landing area's internal folder, which no partner sees."""
    return root / connection / INTERNAL_DIR / DECRYPTED_DIR / trace_id


def decrypt(source: Path, target: Path, private_key: str) -> Path:
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pgp.decrypt_file(source, target, private_key)
    return target


def not_decrypted(why: str) -> CheckResult:
    error = CheckError(None, "", "validation", "not_decrypted", why)
    return CheckResult(status="Failed", rows_accepted=0, rows_rejected=0, error_count=1,
                       errors=(error,), failure=error)


def write_result(root: Path, connection: str, name: str, result: CheckResult,
                 trace_id: str) -> Path:
    """result_<name>.csv in the Connection's landing area, where the partner
    reads receipts, replacing an older result of the same name."""
    area = LandingArea(root, connection)
    content = render_result(result, extra=(("file", name), ("trace_id", trace_id)))
    temp = area.temp_path(result_name(name))
    target = area.home / result_name(name)
    try:
        with open(temp, "xb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    fsync_dir(area.home)
    return target
