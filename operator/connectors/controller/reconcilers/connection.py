"""The Connection reconciler: validate, judge the Credential, configure the workload
(an account on the namespace's listener, or a transfer CronJob), then write the
four conditions and the events they owe.

It gathers from the caches, decides through the pure verdicts of planning/,
and acts through Kube; blocking calls run on the operator's thread pool.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from ...api.compat import pgp_credential_name
from ...api.connection import DEFAULT_SCHEDULE, ConnectionSpec
from ...clock import now_rfc3339
from ...planning import jobs as job_plan
from ...planning import listeners as listener_plan
from ...planning.conditions import (
    FALSE,
    TRUE,
    UNKNOWN,
    Verdict,
    find,
    merge_conditions,
    ready_verdict,
    status_changed,
)
from ...planning.config import OperatorConfig
from ...planning.objects import owner_reference
from ...planning.readiness import listener_verdict, transfer_prerequisite
from ...planning.status import (
    credential_verdict,
    encryption_verdict,
    pgp_verdict,
)
from ..announcements import Announcer
from ..caches import Caches
from ..coalescer import Coalescer
from ..kube import Kube
from .listener_sync import ListenerSync, SyncResult, member_inputs

log = logging.getLogger(__name__)
Key = tuple[str, str]
Run = Callable[..., Awaitable[Any]]


class ConnectionReconciler:
    def __init__(self, kube: Kube, config: OperatorConfig, caches: Caches,
                 listener_sync: ListenerSync, namespace_syncs: Coalescer[SyncResult],
                 request_namespace: Callable[[str], None], run: Run) -> None:
        self.kube = kube
        self.config = config
        self.caches = caches
        self.listener_sync = listener_sync
        self.namespace_syncs = namespace_syncs
        # Puts a namespace on the listener queue (an account to drop).
        self.request_namespace = request_namespace
        self.run = run
        self.announcer = Announcer()

    async def reconcile(self, key: Key) -> None:
        body = self.caches.connections.get(key)
        if body is None:
            return
        namespace = key[0]
        spec, validated = self.caches.validated(key, body)
        credential_body = (self.caches.credentials.get((namespace, spec.credential_ref.name))
                           if spec is not None else None)
        credential = (credential_verdict(spec, credential_body) if spec is not None
                      else Verdict("CredentialReady", UNKNOWN, "SpecInvalid",
                                   "checked once the spec is valid"))
        pgp_body = self._pgp_credential(namespace, spec)
        if spec is not None and credential.ok:
            credential = pgp_verdict(spec, pgp_body) or credential
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
                self.request_namespace(namespace)  # drop an account it may still have
        elif spec.platform_initiated:
            assert credential_body is not None
            # The namespace's processor checks what its job lands (processor_sync).
            self.request_namespace(namespace)
            workload = await self.run(self._apply_transfer_job, body, spec, credential_body,
                                      pgp_body)
        else:
            planned = await self._listener_workload(body, spec, credential_body)
            if planned is None:
                return  # the namespace sync's outcome puts it on the queue again
            workload, endpoint = planned
        verdicts = [validated, credential, workload]
        ready = ready_verdict(verdicts, _ready_message(spec, endpoint), _suspended(spec))
        # Advice that Ready does not wait for.
        encrypted = encryption_verdict(spec if validated.ok else None)
        shown = [*verdicts, ready, *([encrypted] if encrypted is not None else [])]
        notes = self.announcer.events(key, body, shown, workload.message)
        await self.run(self._write_connection_status, body, shown, endpoint, notes)

    async def _listener_workload(
        self, body: dict[str, Any], spec: ConnectionSpec, credential_body: dict[str, Any] | None
    ) -> tuple[Verdict, dict[str, Any] | None] | None:
        """The Connection's verdict as its listener serves it; None while the
        namespace's last sync did not plan the Connection as it is now.

        The sync writes the account tables of every Connection of the namespace,
        so waiting here for one would let a namespace's syncs run one per few
        Connections, each over all of them. Instead a reconcile asks for a sync
        and returns without a word; the sync puts every Connection whose outcome
        it changed back on the queue. Only a namespace that has had no sync yet
        is waited for."""
        meta = body["metadata"]
        workload = find((body.get("status") or {}).get("conditions"), "WorkloadReady") or {}
        if workload.get("reason") == "TransferScheduled":
            # It was platform-initiated before an edit: its CronJob has no place now.
            await self.run(self._remove_transfer_job, meta["namespace"], meta["name"])
        namespace = meta["namespace"]
        result = self.namespace_syncs.latest.get(namespace)
        if result is None:
            result = await self.namespace_syncs.request(namespace)
        if not result.covers(meta["name"], member_inputs(body, credential_body)):
            self.request_namespace(namespace)  # its queue retries a sync that fails
            return None
        problem = result.problems.get(meta["name"])
        if problem:
            return Verdict("WorkloadReady", FALSE, "AccountNotConfigured", problem), None
        refused = result.refused.get(meta["name"])
        if refused:
            return Verdict("WorkloadReady", FALSE, "ListenerRefused", refused), None
        protocol = listener_plan.protocol_of(spec)
        username = ((credential_body or {}).get("status") or {}).get("username", "")
        endpoint = listener_plan.endpoint(meta["namespace"], meta["name"], spec, username,
                                          self.config, result.host_key_fingerprint,
                                          result.tls_fingerprint)
        pods = self.caches.pods_in(meta["namespace"])
        claim_phase = None
        if not any(pod.protocol == protocol and pod.ready for pod in pods):
            # Only to explain why no pod is Ready: an unbound volume is the usual cause.
            claim_phase = await self.run(self._claim_phase, meta["namespace"])
        verdict = listener_verdict(
            meta["name"], protocol, result.accounts.get(meta["name"], ""), username, pods,
            self.caches.listener_state.get(meta["namespace"], {}),
            self.listener_sync.served_tables.get((meta["namespace"], protocol), {}),
            claim_phase, suspended=spec.suspend)
        return verdict, endpoint

    def _claim_phase(self, namespace: str) -> str | None:
        claim = self.kube.get("PersistentVolumeClaim", namespace, self.config.data_claim)
        return ((claim or {}).get("status") or {}).get("phase")

    def _pgp_credential(self, namespace: str,
                        spec: ConnectionSpec | None) -> dict[str, Any] | None:
        name = pgp_credential_name(spec) if spec is not None else None
        return self.caches.credentials.get((namespace, name)) if name else None

    def _apply_transfer_job(self, body: dict[str, Any], spec: ConnectionSpec,
                            credential_body: dict[str, Any],
                            pgp_body: dict[str, Any] | None = None) -> Verdict:
        meta = body["metadata"]
        owner = owner_reference("Connection", body)
        credential_status = credential_body.get("status") or {}
        # The job lands files on the namespace's data volume: without the claim
        # its pod would stay Pending.
        self.listener_sync.ensure_data_claim(meta["namespace"])
        # spec.pgp.encryptTo: the partner's public key goes to the job with the spec.
        partner_key = ((pgp_body or {}).get("spec") or {}).get("publicKey") \
            if spec.pgp is not None and spec.pgp.encrypt_to is not None else None
        self.kube.apply(job_plan.transfer_config_map(meta["namespace"], meta["name"], spec, owner,
                                                     pgp_public_key=partner_key))
        cronjob = self.kube.apply(job_plan.transfer_cronjob(
            meta["namespace"], meta["name"], spec, credential_status.get("secretName", ""),
            credential_status.get("username", ""), self.config, owner,
        ))
        missing = transfer_prerequisite(spec, self.config)
        if missing is not None:
            return missing
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


def _ready_message(spec: ConnectionSpec | None, endpoint: dict[str, Any] | None) -> str:
    if spec is None:
        return ""
    if endpoint:
        if endpoint.get("address"):
            return f"partners send email to {endpoint['address']}"
        return (f"partners connect to {endpoint['protocol']}://{endpoint['username']}@"
                f"{endpoint['host']}:{endpoint['port']}")
    return "transfers run on schedule" if not spec.suspend else "transfers are suspended"



def _suspended(spec: ConnectionSpec | None) -> str | None:
    """Why a suspended Connection is not Ready, and how to resume it."""
    if spec is None or not spec.suspend:
        return None
    what = ("no transfer is scheduled" if spec.platform_initiated
            else "the partner's logins are refused")
    return f"spec.suspend is true: {what}; set it to false to resume"
