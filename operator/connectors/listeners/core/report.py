"""Telling the platform that files landed: a log line, or the Connection's status.

`TransferReporter` is the seam. The listener builds one with `reporter_from_environment()`:
in a cluster (env CONNECTORS_NAMESPACE and a Kubernetes config) it merge-patches
`status.lastTransfer` of the Connection and posts a Normal Event; elsewhere it logs.
Either way the reporter is wrapped in `BackgroundReporter`, because a Kubernetes
call can take seconds and pyftpdlib serves every session from one thread.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from connectors.api.accounts import Account
from connectors.api.common import GROUP, VERSION
from connectors.api.connection import LastTransfer
from connectors.landing.area import Receipt, now_rfc3339

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
    transfer.

    Events are aggregated the way kubectl shows them: a repeat of the same
    reason on the same Connection within AGGREGATE_SECONDS updates the existing
    Event's count, time and message instead of adding a line, so a flood of
    refusals stays one line with a count."""

    PLURAL = "connections"
    AGGREGATE_SECONDS = 600.0

    def __init__(self, namespace: str, api_client: Any,
                 clock: Callable[[], float] = time.monotonic) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)
        self._clock = clock
        # (connection, reason) -> (event name, count, when it was first posted)
        self._events: dict[tuple[str, str], tuple[str, int, float]] = {}

    def report(self, record: TransferRecord) -> None:
        connection = None if record.refused else self.patch_status(record)
        self.post_event(record, connection)

    def patch_status(self, record: TransferRecord) -> dict[str, Any]:
        # Every field, absent ones as null: a merge patch merges objects, so
        # without the nulls an older transfer's message or counts would stay.
        body = {"status": {"lastTransfer": record.last_transfer().model_dump(by_alias=True)}}
        result: Any = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, self.PLURAL, record.connection, body,
            _content_type="application/merge-patch+json", _request_timeout=10,
        )
        return result if isinstance(result, dict) else {}

    def post_event(self, record: TransferRecord, connection: dict[str, Any] | None) -> None:
        """`connection`: the Connection as last read, if at hand; it is read only
        when a new event needs its uid."""
        from kubernetes import client
        from kubernetes.client.exceptions import ApiException

        key = (record.connection, record.reason)
        now = now_rfc3339()
        known = self._events.get(key)
        if known is not None and self._clock() - known[2] < self.AGGREGATE_SECONDS:
            name, count, first = known
            try:
                self.core.patch_namespaced_event(
                    name, self.namespace,
                    {"count": count + 1, "lastTimestamp": now, "message": event_message(record)},
                    _request_timeout=10)
                self._events[key] = (name, count + 1, first)
                return
            except ApiException as err:
                if err.status != 404:
                    raise
        if connection is None:
            found: Any = self.custom.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, self.PLURAL, record.connection,
                _request_timeout=10)
            connection = found if isinstance(found, dict) else {}
        metadata = connection.get("metadata", {})
        event = client.CoreV1Event.from_dict({
            "metadata": {"generateName": f"{record.connection}.", "namespace": self.namespace},
            # The uid lets `kubectl describe connection` find the Event.
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Connection",
                "name": record.connection, "namespace": self.namespace,
                "uid": metadata.get("uid"),
            },
            "reason": record.reason,
            "message": event_message(record),
            "type": "Warning" if record.refused else "Normal",
            "source": {"component": f"connectors-listener-{record.protocol}"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })
        assert event is not None
        created: Any = self.core.create_namespaced_event(self.namespace, event,
                                                         _request_timeout=10)
        self._events[key] = (created.metadata.name, 1, self._clock())

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


def kubernetes_api_client() -> Any | None:
    """An ApiClient from the in-cluster service account or KUBECONFIG, or None."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()  # type: ignore[no-untyped-call]
    except config.ConfigException:
        if not os.environ.get("KUBECONFIG") and not os.path.exists(
            os.path.expanduser("~/.kube/config")
        ):
            return None
        try:
            config.load_kube_config()  # type: ignore[no-untyped-call]
        except (config.ConfigException, OSError):
            return None
    return client.ApiClient()


def reporter_from_environment() -> TransferReporter:
    namespace = os.environ.get("CONNECTORS_NAMESPACE")
    inner: TransferReporter = LoggingReporter()
    if namespace:
        api_client = kubernetes_api_client()
        if api_client is not None:
            inner = KubernetesReporter(namespace, api_client)
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
    reporter: TransferReporter, account: Account, protocol: str, receipts: list[Receipt]
) -> None:
    for receipt in receipts:
        log.info("landed connection=%s name=%s bytes=%d sha256=%s trace=%s",
                 account.connection, receipt.name, receipt.size, receipt.sha256,
                 receipt.trace_id)
    reporter.report(record_for(account, protocol, receipts))


def report_refused(
    reporter: TransferReporter, account: Account, protocol: str, reason: str
) -> None:
    log.info("refused connection=%s protocol=%s: %s", account.connection, protocol, reason)
    reporter.report(TransferRecord(
        connection=account.connection, protocol=protocol, files=0, bytes=0,
        outcome="Failed", message=reason,
    ))


def report_sent(
    reporter: TransferReporter, account: Account, protocol: str, name: str, size: int
) -> None:
    """A partner downloaded a whole file (Outbound Pull)."""
    log.info("downloaded connection=%s name=%s bytes=%d", account.connection, name, size)
    reporter.report(TransferRecord(
        connection=account.connection, protocol=protocol, files=1, bytes=size,
        outcome="Succeeded", names=(name,), direction="sent",
    ))

