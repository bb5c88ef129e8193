"""Handing accepted files downstream (spec.submissions.deliverTo), on a thread of
its own with its own connection to the store, so that a slow or dead sink
never holds up checking.

A checked file with accepted rows gets one Pending delivery per sink in the
store, in the transaction that records its check; the deliverer claims the due
ones, delivers, and settles each (connectors.sinks: Delivered, Pending again
after a backoff, or Failed), at least once: the trace id is the receiver's
idempotency key.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
from collections.abc import Callable, Mapping
from pathlib import Path

from ..api.connection import Sink
from ..api.processing import Processed
from ..landing.durable import hash_file
from ..sinks import Delivery, SecretFiles, deliver, settle, sink_id
from ..submissions import SubmissionStore
from ..submissions.store import DeliveryClaim
from .report import SubmissionReporter
from .work import decrypted_path

log = logging.getLogger(__name__)


class Deliverer:
    def __init__(self, store_path: Path, root: Path, namespace: str, worker: str,
                 served: Callable[[], Mapping[str, Processed]],
                 paths: Mapping[str, Path], reporter: SubmissionReporter,
                 secrets: SecretFiles | None = None, poll_seconds: float = 1.0) -> None:
        self.store_path = store_path
        self.root = root
        self.namespace = namespace
        self.worker = worker
        # The processing table as it is now, and where discovery found each file.
        self.served = served
        self.paths = paths
        self.reporter = reporter
        self.secrets = secrets or SecretFiles()
        self.poll_seconds = poll_seconds
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="deliveries", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=60)

    def _run(self) -> None:
        with SubmissionStore(self.store_path) as store:
            while not self._stop.is_set():
                try:
                    busy = self.run_once(store)
                except Exception:
                    log.exception("delivery pass failed")
                    busy = 0
                if not busy:
                    self._stop.wait(self.poll_seconds)

    def run_once(self, store: SubmissionStore) -> int:
        """Delivers what is due; returns how many attempts were made."""
        sinks: dict[str, tuple[Sink, Processed]] = {
            sink_id(sink): (sink, entry) for entry in self.served().values()
            for sink in entry.deliver_to or ()}
        claims = store.due_deliveries(self.worker, limit=10)
        for claim in claims:
            if self._stop.is_set():
                store.release_delivery(claim)
                continue
            self._attempt(store, claim, sinks)
        return len(claims)

    def _attempt(self, store: SubmissionStore, claim: DeliveryClaim,
                 sinks: Mapping[str, tuple[Sink, Processed]]) -> None:
        submission = store.get(claim.submission_id)
        found = sinks.get(claim.sink_id)
        if submission is None or found is None:
            store.mark_failed(claim, "the Connection no longer delivers to this sink")
            return
        sink, entry = found
        path = self.paths.get(submission.trace_id)
        if path is None:
            # Discovery has not seen the file since this processor started:
            # the next pass will have.
            store.release_delivery(claim)
            return
        delivery = Delivery.of(submission, namespace=self.namespace,
                               data_type=entry.data_type, path=path)
        plain = decrypted_path(self.root, submission.connection, submission.trace_id)
        if plain.is_file():
            # spec.pgp.decryptWith: what was checked, and goes on, is the plain text.
            delivery = dataclasses.replace(delivery, path=plain, size=plain.stat().st_size,
                                           sha256=hash_file(plain))
        outcome = deliver(sink, delivery, self.secrets)
        status = settle(store, claim, outcome)
        if all(d.status != "Pending" for d in store.deliveries_of(submission.id)):
            plain.unlink(missing_ok=True)  # every sink has it, or never will
        log.info("delivery of %s to %s: %s", submission.name, claim.sink_id, status)
        if status in ("Delivered", "Failed"):
            try:
                self.reporter.delivered(submission.connection, submission.name, claim.sink_id,
                                        status, outcome.message, store)
            except Exception as err:  # the API may be down: the history has it
                log.warning("could not report the delivery of %s: %s", submission.name,
                            type(err).__name__)
