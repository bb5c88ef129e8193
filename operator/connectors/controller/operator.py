"""The operator's state and its reconcilers.

kopf watches the resources and calls the thin handlers in handlers.py; they
update the caches here and put keys on work queues. The reconcilers read the
caches, ask planning/ what should exist, apply it through kube.py, and write
status and events. Blocking API calls run in a thread pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from ..api.connection import DEFAULT_SCHEDULE, ConnectionSpec
from ..planning import jobs as job_plan
from ..planning import listeners as listener_plan
from ..planning.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Verdict,
    find,
    merge_conditions,
    ready_verdict,
    status_changed,
)
from ..planning.config import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY, OperatorConfig
from ..planning.objects import owner_reference
from ..planning.status import credential_verdict, validate_connection
from .coalescer import Coalescer
from .kube import Kube, now_rfc3339
from .reconcilers.credential import reconcile_credential
from .reconcilers.listener_sync import ListenerSync, Member, SyncResult
from .workqueue import WorkQueue

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")
Key = tuple[str, str]


class Operator:
    def __init__(self, kube: Kube, config: OperatorConfig, workers: int = 8,
                 resync_seconds: float = 300.0) -> None:
        self.kube = kube
        self.config = config
        self.resync_seconds = resync_seconds
        # Caches fed by the watch handlers: plain dicts of the latest bodies.
        self.connections: dict[Key, dict[str, Any]] = {}
        self.credentials: dict[Key, dict[str, Any]] = {}
        self.secrets: dict[Key, dict[str, Any]] = {}
        self.executor = ThreadPoolExecutor(max_workers=workers * 2,
                                           thread_name_prefix="reconcile")
        self.listener_sync = ListenerSync(kube, config, self.secret)
        self.namespace_syncs: Coalescer[SyncResult] = Coalescer(self._sync_namespace)
        self.connection_queue = WorkQueue("Connection", self._reconcile_connection, workers)
        self.credential_queue = WorkQueue("Credential", self._reconcile_credential, workers)
        self.namespace_queue = WorkQueue("listeners of namespace", self._namespace_work, 2)
        self._resync: asyncio.Task[None] | None = None
        # Per Connection: the condition statuses and generation last announced by events.
        self._announced: dict[Key, dict[str, Any]] = {}

    # --- life cycle ---------------------------------------------------------------

    def prime(self, namespaces: list[str]) -> None:
        """Fills the caches a Connection's reconcile reads before any worker starts, so
        that no Connection is judged against a Credential not yet seen (which would
        flap its status to CredentialNotFound on every operator restart)."""
        for item in self.kube.list_in("Credential", namespaces):
            meta = item["metadata"]
            item.setdefault("kind", "Credential")
            self.credentials[(meta["namespace"], meta["name"])] = item
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}=credential"
        for item in self.kube.list_in("Secret", namespaces, selector):
            meta = item["metadata"]
            self.secrets[(meta["namespace"], meta["name"])] = item

    def start(self) -> None:
        for queue in (self.connection_queue, self.credential_queue, self.namespace_queue):
            queue.start()
        self._resync = asyncio.create_task(self._resync_forever())

    async def stop(self) -> None:
        if self._resync:
            self._resync.cancel()
        for queue in (self.connection_queue, self.credential_queue, self.namespace_queue):
            await queue.stop()
        self.executor.shutdown(wait=False, cancel_futures=True)

    async def _resync_forever(self) -> None:
        """The level-based safety net: every key again, whatever the watches said."""
        while True:
            await asyncio.sleep(self.resync_seconds)
            for key in list(self.credentials):
                self.credential_queue.add(key)
            for key in list(self.connections):
                self.connection_queue.add(key)
            for namespace in {ns for ns, _ in self.connections}:
                self.namespace_queue.add(namespace)

    async def run(self, fn: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, lambda: fn(*args, **kwargs))

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret from the watch cache (the operator's own), else read from the API."""
        cached = self.secrets.get((namespace, name))
        return cached if cached is not None else self.kube.get("Secret", namespace, name)

    def forget_connection(self, key: Key) -> None:
        self.connections.pop(key, None)
        self._announced.pop(key, None)

    def dependents(self, namespace: str, credential: str) -> list[Key]:
        return [key for key, body in self.connections.items()
                if key[0] == namespace
                and (body.get("spec") or {}).get("credentialRef", {}).get("name") == credential]

    # --- Credentials ----------------------------------------------------------------

    async def _reconcile_credential(self, key: Key) -> None:
        body = self.credentials.get(key)
        if body is None:
            return
        await self.run(reconcile_credential, self.kube, body)

    # --- Connections ----------------------------------------------------------------

    async def _namespace_work(self, namespace: Any) -> None:
        await self.namespace_syncs.request(str(namespace))

    async def _sync_namespace(self, namespace: str) -> SyncResult:
        members = []
        for (ns, name), body in list(self.connections.items()):
            if ns != namespace:
                continue
            spec, validated = validate_connection(body.get("spec") or {})
            if spec is not None and validated.ok and not spec.platform_initiated:
                metadata = body["metadata"]
                members.append(Member(name, metadata["uid"], spec,
                                      metadata.get("creationTimestamp", "")))
        credentials = {name: body for (ns, name), body in self.credentials.items()
                       if ns == namespace}
        return await self.run(self.listener_sync.run, namespace, members, credentials)

    async def _reconcile_connection(self, key: Key) -> None:
        body = self.connections.get(key)
        if body is None:
            return
        namespace = key[0]
        spec, validated = validate_connection(body.get("spec") or {})
        credential_body = (self.credentials.get((namespace, spec.credential_ref.name))
                           if spec is not None else None)
        credential = (credential_verdict(spec, credential_body) if spec is not None
                      else Verdict("CredentialReady", UNKNOWN, "SpecInvalid",
                                   "checked once the spec is valid"))
        endpoint = None
        if spec is None or not validated.ok:
            workload = Verdict("WorkloadReady", FALSE, "SpecInvalid",
                               "nothing is configured until the spec is valid")
        elif not credential.ok:
            # Unknown while the Credential is still being made: no alarm for a normal wait.
            workload = Verdict("WorkloadReady", UNKNOWN if credential.status == UNKNOWN else FALSE,
                               "WaitingForCredential",
                               "nothing is configured until the Credential is ready")
            if not spec.platform_initiated:
                self.namespace_queue.add(namespace)  # drop an account it may still have
        elif spec.platform_initiated:
            assert credential_body is not None
            workload = await self.run(self._apply_transfer_job, body, spec, credential_body)
        else:
            workload, endpoint = await self._listener_workload(body, spec, credential_body)
        verdicts = [validated, credential, workload]
        ready = ready_verdict(verdicts, _ready_message(spec, endpoint))
        notes = self._announcements(key, body, [*verdicts, ready], workload.message)
        await self.run(self._write_connection_status, body, [*verdicts, ready], endpoint, notes)

    def _announcements(self, key: Key, body: dict[str, Any], verdicts: list[Verdict],
                       configured: str) -> list[tuple[str, str, str]]:
        """The events this reconcile owes: a Warning when a condition turns False, a
        Normal when the Connection becomes Ready or a spec change has been carried out.

        What was announced is remembered here rather than read from the cached
        status, which may not show this operator's last write yet: a reconcile that
        follows closely would otherwise announce the same thing twice.
        """
        generation = body["metadata"].get("generation", 0)
        previous = body.get("status") or {}
        announced = self._announced.setdefault(key, {
            "conditions": {c["type"]: c["status"] for c in previous.get("conditions") or []},
            "generation": previous.get("observedGeneration"),
        })
        events = []
        for verdict in verdicts:
            before = announced["conditions"].get(verdict.type)
            if verdict.status == FALSE and before != FALSE and verdict.type != "Ready":
                events.append(("Warning", verdict.reason, verdict.message))
            if verdict.type == "Ready" and verdict.ok and (
                    before != TRUE or announced["generation"] != generation):
                events.append(("Normal", "Configured", configured))
            announced["conditions"][verdict.type] = verdict.status
        announced["generation"] = generation
        return events

    async def _listener_workload(
        self, body: dict[str, Any], spec: ConnectionSpec, credential_body: dict[str, Any] | None
    ) -> tuple[Verdict, dict[str, Any] | None]:
        meta = body["metadata"]
        workload = find((body.get("status") or {}).get("conditions"), "WorkloadReady") or {}
        if workload.get("reason") == "TransferScheduled":
            # It was platform-initiated before an edit: its CronJob has no place now.
            await self.run(self._remove_transfer_job, meta["namespace"], meta["name"])
        result = await self.namespace_syncs.request(meta["namespace"])
        problem = result.problems.get(meta["name"])
        if problem:
            return Verdict("WorkloadReady", FALSE, "AccountNotConfigured", problem), None
        protocol = listener_plan.protocol_of(spec)
        username = ((credential_body or {}).get("status") or {}).get("username", "")
        endpoint = listener_plan.endpoint(meta["namespace"], meta["name"], spec, username,
                                          self.config, result.host_key_fingerprint)
        suspended = " (suspended: logins are refused)" if spec.suspend else ""
        return Verdict(
            "WorkloadReady", TRUE, "ListenerConfigured",
            f"account {username} on listener {listener_plan.listener_name(protocol)}{suspended}",
        ), endpoint

    def _apply_transfer_job(self, body: dict[str, Any], spec: ConnectionSpec,
                            credential_body: dict[str, Any]) -> Verdict:
        meta = body["metadata"]
        owner = owner_reference("Connection", body)
        credential_status = credential_body.get("status") or {}
        # The job lands files on the namespace's data volume: without the claim
        # its pod would stay Pending.
        self.listener_sync.ensure_data_claim(meta["namespace"])
        self.kube.apply(job_plan.transfer_config_map(meta["namespace"], meta["name"], spec, owner))
        cronjob = self.kube.apply(job_plan.transfer_cronjob(
            meta["namespace"], meta["name"], spec, credential_status.get("secretName", ""),
            credential_status.get("username", ""), self.config, owner,
        ))
        schedule = spec.schedule or DEFAULT_SCHEDULE
        state = "suspended" if spec.suspend else f"runs on schedule '{schedule}'"
        return Verdict("WorkloadReady", TRUE, "TransferScheduled",
                       f"CronJob {cronjob['metadata']['name']} {state}")

    def _remove_transfer_job(self, namespace: str, name: str) -> None:
        child = job_plan.transfer_name(name)
        self.kube.delete("CronJob", namespace, child)
        self.kube.delete("ConfigMap", namespace, child)

    def _write_connection_status(self, body: dict[str, Any], verdicts: list[Verdict],
                                 endpoint: dict[str, Any] | None,
                                 notes: list[tuple[str, str, str]]) -> None:
        meta = body["metadata"]
        previous = body.get("status") or {}
        generation = meta.get("generation", 0)
        status = {
            "observedGeneration": generation,
            "conditions": merge_conditions(previous.get("conditions"), verdicts, generation,
                                           now_rfc3339()),
            "endpoint": endpoint,
        }
        # Events first: whoever waits for the status to read `kubectl describe` sees them.
        for type_, reason, message in notes:
            self.kube.event(body, type_, reason, message)
        if status_changed({k: previous.get(k) for k in status}, status):
            self.kube.patch_status("Connection", meta["namespace"], meta["name"], status)

    # --- transfer results -------------------------------------------------------------

    def record_job(self, job: dict[str, Any], connection: str) -> None:
        """Copies a finished Job's summary into the Connection's status.lastTransfer."""
        meta = job["metadata"]
        namespace = meta["namespace"]
        body = self.connections.get((namespace, connection))
        if body is None:
            return
        last = (body.get("status") or {}).get("lastTransfer") or {}
        if last.get("source") == f"job/{meta['name']}":
            return  # recorded before (a restart lists finished Jobs again)
        summary = self._job_summary(job)
        self.kube.patch_status("Connection", namespace, connection, {"lastTransfer": summary})
        if summary["outcome"] == "Succeeded":
            self.kube.event(body, "Normal", "TransferSucceeded",
                            f"Job {meta['name']}: {summary.get('files', 0)} file(s), "
                            f"{summary.get('bytes', 0)} bytes")
        else:
            self.kube.event(body, "Warning", "TransferFailed",
                            f"Job {meta['name']}: {summary.get('message') or 'failed'}")

    def _job_summary(self, job: dict[str, Any]) -> dict[str, Any]:
        meta = job["metadata"]
        failed = any(c.get("type") == "Failed" and c.get("status") == "True"
                     for c in (job.get("status") or {}).get("conditions") or [])
        summary: dict[str, Any] = {}
        pods = self.kube.list_in("Pod", [meta["namespace"]],
                                  f"batch.kubernetes.io/job-name={meta['name']}")
        for pod in sorted(pods, key=lambda p: p["metadata"].get("creationTimestamp", "")):
            for status in (pod.get("status") or {}).get("containerStatuses") or []:
                message = ((status.get("state") or {}).get("terminated") or {}).get("message")
                if message:
                    summary = _parse_summary(message) or summary
        fields = ("time", "files", "bytes", "skipped", "failed", "outcome", "message",
                  "durationSeconds")
        result = {k: summary[k] for k in fields if k in summary}
        result.setdefault("time", now_rfc3339())
        result.setdefault("outcome", "Failed" if failed else "Succeeded")
        if not summary:
            result["message"] = f"no summary from the job: see kubectl logs job/{meta['name']}"
        result["source"] = f"job/{meta['name']}"
        return result


def _parse_summary(message: str) -> dict[str, Any] | None:
    for line in reversed(message.strip().splitlines()):
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and "outcome" in data:
            return data
    return None


def _ready_message(spec: ConnectionSpec | None, endpoint: dict[str, Any] | None) -> str:
    if spec is None:
        return ""
    if endpoint:
        if endpoint.get("address"):
            return f"partners send email to {endpoint['address']}"
        return (f"partners connect to {endpoint['protocol']}://{endpoint['username']}@"
                f"{endpoint['host']}:{endpoint['port']}")
    return "transfers run on schedule" if not spec.suspend else "transfers are suspended"

