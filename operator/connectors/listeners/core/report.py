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
    """One transfer as the listener saw it: a file upload, or an email."""

    connection: str
    protocol: str
    files: int
    bytes: int
    outcome: Outcome
    message: str = ""
    names: tuple[str, ...] = ()
    time: str = field(default_factory=now_rfc3339)

    def last_transfer(self) -> LastTransfer:
        return LastTransfer(
            time=self.time,
            files=self.files,
            bytes=self.bytes,
            outcome=self.outcome,
            message=self.message[:2048] or None,
        )


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
    """Patches status.lastTransfer of the Connection and posts a Normal Event."""

    PLURAL = "connections"

    def __init__(self, namespace: str, api_client: Any) -> None:
        from kubernetes import client

        self.namespace = namespace
        self.custom = client.CustomObjectsApi(api_client)
        self.core = client.CoreV1Api(api_client)

    def report(self, record: TransferRecord) -> None:
        patched = self.patch_status(record)
        self.post_event(record, patched)

    def patch_status(self, record: TransferRecord) -> dict[str, Any]:
        body = {"status": {"lastTransfer": record.last_transfer().model_dump(
            by_alias=True, exclude_none=True)}}
        result: Any = self.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, self.namespace, self.PLURAL, record.connection, body,
            _content_type="application/merge-patch+json", _request_timeout=10,
        )
        return result if isinstance(result, dict) else {}

    def post_event(self, record: TransferRecord, connection: dict[str, Any]) -> None:
        from kubernetes import client

        metadata = connection.get("metadata", {})
        now = now_rfc3339()
        event = client.CoreV1Event.from_dict({
            "metadata": {"generateName": f"{record.connection}.", "namespace": self.namespace},
            # The uid lets `kubectl describe connection` find the Event.
            "involvedObject": {
                "apiVersion": f"{GROUP}/{VERSION}", "kind": "Connection",
                "name": record.connection, "namespace": self.namespace,
                "uid": metadata.get("uid"),
            },
            "reason": "FilesReceived" if record.outcome == "Succeeded" else "TransferRefused",
            "message": event_message(record),
            "type": "Normal",
            "source": {"component": f"connectors-listener-{record.protocol}"},
            "firstTimestamp": now, "lastTimestamp": now, "count": 1,
        })
        if event is not None:
            self.core.create_namespaced_event(self.namespace, event, _request_timeout=10)

    def close(self) -> None:
        return None


def event_message(record: TransferRecord) -> str:
    names = ", ".join(record.names[:10]) + (" ..." if len(record.names) > 10 else "")
    if record.outcome == "Succeeded":
        text = f"Received {record.files} file(s), {record.bytes} bytes over {record.protocol}"
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
