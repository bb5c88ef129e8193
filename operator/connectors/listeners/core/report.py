"""Telling the platform that files landed: a log line, or the Connection's status.

`TransferReporter` is the seam. The listener builds one with `reporter_from_environment()`:
in a cluster (env CONNECTORS_NAMESPACE and a Kubernetes config) it merge-patches
`status.lastTransfer` of the Connection and posts a Normal Event; elsewhere it logs.
Either way the reporter is wrapped in `BackgroundReporter`, because a Kubernetes
call can take seconds and pyftpdlib serves every session from one thread.

`report_landed`, `report_refused` and `report_sent` are also where a transfer
is counted (connectors/metrics/listener.py) and written to the audit log
(connectors/logs.py), once for the three protocols.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from connectors.api.accounts import Account
from connectors.api.connection import LastTransfer
from connectors.events import ConnectionEvents
from connectors.landing.area import Receipt, now_rfc3339
from connectors.logs import audit
from connectors.metrics import listener as metrics

log = logging.getLogger(__name__)

Outcome = Literal["Succeeded", "Failed"]


@dataclass(frozen=True)
class TransferRecord:
    """One transfer as the listener saw it: an upload, an email, a download,
    or a refusal (outcome Failed: nothing was transferred)."""

    connection: str
    protocol: str
    files: int
    bytes: int
    outcome: Outcome
    message: str = ""
    names: tuple[str, ...] = ()
    time: str = field(default_factory=now_rfc3339)
    direction: Literal["received", "sent"] = "received"

    @property
    def refused(self) -> bool:
        return self.outcome == "Failed"

    def last_transfer(self) -> LastTransfer:
        return LastTransfer(
            time=self.time,
            files=self.files,
            bytes=self.bytes,
            outcome=self.outcome,
            message=self.message[:2048] or None,
            source=f"listener-{self.protocol}",
        )

    @property
    def reason(self) -> str:
        if self.refused:
            return "TransferRefused"
        return "FilesSent" if self.direction == "sent" else "FilesReceived"


@dataclass(frozen=True)
class Peer:
    """Who transferred, for the audit log: the client's address and login name
    (no name for a mail server delivering on port 25, which does not log in)."""

    address: str = ""
    user: str = ""


NO_PEER = Peer()


class TransferReporter(Protocol):
    def report(self, record: TransferRecord) -> None: ...

    def close(self) -> None: ...


class LoggingReporter:
    """For local runs: one log line per transfer."""

    def report(self, record: TransferRecord) -> None:
        log.info(
            "transfer %s connection=%s protocol=%s files=%d bytes=%d names=%s %s",
            record.outcome, record.connection, record.protocol, record.files,
            record.bytes, ",".join(record.names), record.message,
        )

    def close(self) -> None:
        return None


class KubernetesReporter:
    """Reports to the Connection: a transfer replaces `status.lastTransfer` and
    posts a Normal Event; a refusal posts a Warning Event only, so that a
    stranger probing names cannot overwrite the record of the last real
    transfer. Events are aggregated (connectors/events.py): a flood of
    refusals stays one line with a count."""

    def __init__(self, namespace: str, api_client: Any, protocol: str = "") -> None:
        self.namespace = namespace
        self.events = ConnectionEvents(namespace, api_client,
                                       f"connectors-listener-{protocol}".rstrip("-"))

    def report(self, record: TransferRecord) -> None:
        connection = None if record.refused else self.patch_status(record)
        self.post_event(record, connection)

    def patch_status(self, record: TransferRecord) -> dict[str, Any]:
        # Every field, absent ones as null: a merge patch merges objects, so
        # without the nulls an older transfer's message or counts would stay.
        return self.events.patch_status(
            record.connection,
            {"lastTransfer": record.last_transfer().model_dump(by_alias=True)})

    def post_event(self, record: TransferRecord, connection: dict[str, Any] | None) -> None:
        self.events.post(record.connection, "Warning" if record.refused else "Normal",
                         record.reason, event_message(record), connection)

    def close(self) -> None:
        return None


def event_message(record: TransferRecord) -> str:
    names = ", ".join(record.names[:10]) + (" ..." if len(record.names) > 10 else "")
    if not record.refused:
        verb = "Sent" if record.direction == "sent" else "Received"
        text = f"{verb} {record.files} file(s), {record.bytes} bytes over {record.protocol}"
        return f"{text}: {names}" if names else text
    return f"Refused a transfer over {record.protocol}: {record.message}"[:1024]


class BackgroundReporter:
    """Hands records to a worker thread, so that no server loop ever waits on
    the API server. A failed report is logged and dropped: the file has landed
    and its receipt is on disk, which is what counts."""

    def __init__(self, inner: TransferReporter, capacity: int = 10_000) -> None:
        self.inner = inner
        self._queue: queue.Queue[TransferRecord | None] = queue.Queue(capacity)
        self._thread = threading.Thread(target=self._work, name="transfer-report", daemon=True)
        self._thread.start()

    def report(self, record: TransferRecord) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            log.warning("report queue full; dropping the report for %s", record.connection)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=30)
        self.inner.close()

    def _work(self) -> None:
        while (record := self._queue.get()) is not None:
            try:
                self.inner.report(record)
            except Exception as err:  # the API may be down; the next file retries
                log.warning("could not report the transfer of %s: %s",
                            record.connection, type(err).__name__)


def reporter_from_environment(protocol: str, api_client: Any | None) -> TransferReporter:
    """To the Connections of CONNECTORS_NAMESPACE through `api_client`, or to the log."""
    namespace = os.environ.get("CONNECTORS_NAMESPACE")
    inner: TransferReporter = LoggingReporter()
    if namespace:
        if api_client is not None:
            inner = KubernetesReporter(namespace, api_client, protocol)
            log.info("reporting transfers to Connections in namespace %s", namespace)
        else:
            log.warning("CONNECTORS_NAMESPACE is set but no Kubernetes config; logging only")
    return BackgroundReporter(inner)


def record_for(
    account: Account, protocol: str, receipts: list[Receipt], message: str = ""
) -> TransferRecord:
    return TransferRecord(
        connection=account.connection,
        protocol=protocol,
        files=len(receipts),
        bytes=sum(r.size for r in receipts),
        outcome="Succeeded",
        message=message,
        names=tuple(r.name for r in receipts),
    )


def report_landed(
    reporter: TransferReporter, account: Account, protocol: str, receipts: list[Receipt],
    peer: Peer = NO_PEER,
) -> None:
    email = protocol == "smtp"
    for receipt in receipts:
        log.info("landed connection=%s name=%s bytes=%d sha256=%s trace=%s",
                 account.connection, receipt.name, receipt.size, receipt.sha256,
                 receipt.trace_id)
        audit("email" if email else "upload", result="accepted" if email else "landed",
              protocol=protocol, connection=account.connection, user=peer.user,
              remote_address=peer.address, file=receipt.name, size=receipt.size,
              sha256=receipt.sha256, trace_id=receipt.trace_id)
    metrics.landed(account.connection, protocol, len(receipts), sum(r.size for r in receipts))
    reporter.report(record_for(account, protocol, receipts))


def report_refused(
    reporter: TransferReporter, account: Account, protocol: str, reason: str,
    code: str = "refused", peer: Peer = NO_PEER, file: str = "",
) -> None:
    """`reason` in words (events, the log); `code` the same as one bounded word
    (the metrics' `reason` label, the audit event's `reason`)."""
    log.info("refused connection=%s protocol=%s: %s", account.connection, protocol, reason)
    audit("email" if protocol == "smtp" else "upload", result="refused", protocol=protocol,
          connection=account.connection, user=peer.user, remote_address=peer.address,
          file=file, reason=code)
    metrics.refused(account.connection, protocol, code)
    reporter.report(TransferRecord(
        connection=account.connection, protocol=protocol, files=0, bytes=0,
        outcome="Failed", message=reason,
    ))


def report_sent(
    reporter: TransferReporter, account: Account, protocol: str, name: str, size: int,
    peer: Peer = NO_PEER,
) -> None:
    """A partner downloaded a whole file (Outbound Pull)."""
    log.info("downloaded connection=%s name=%s bytes=%d", account.connection, name, size)
    audit("download", result="sent", protocol=protocol, connection=account.connection,
          user=peer.user, remote_address=peer.address, file=name, size=size)
    metrics.sent(account.connection, protocol, size)
    reporter.report(TransferRecord(
        connection=account.connection, protocol=protocol, files=1, bytes=size,
        outcome="Succeeded", names=(name,), direction="sent",
    ))
