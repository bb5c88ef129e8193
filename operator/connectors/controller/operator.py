"""The operator: its caches, work queues and reconcilers, put together.

kopf watches the resources (watches.py) and its handlers only update the caches
and put keys on the work queues. Each queue's worker calls one reconciler:

    Connection keys            -> reconcilers/connection.py
    Credential keys            -> reconcilers/credential.py
    namespaces (listeners)     -> reconcilers/listener_sync.py, coalesced per namespace
    finished transfer Jobs     -> reconcilers/job_results.py

Blocking API calls run in a thread pool; a periodic resync puts every key back
on its queue, so drift is repaired whatever caused it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

from ..metrics import operator as metrics
from ..metrics.operator import parse_time
from ..planning.config import OperatorConfig
from .caches import Caches, Key
from .coalescer import Coalescer
from .kube import Kube
from .reconcilers.connection import ConnectionReconciler
from .reconcilers.credential import reconcile_credential
from .reconcilers.job_results import JobResults
from .reconcilers.listener_sync import ListenerSync, Member, SyncResult, member_inputs
from .reconcilers.processor_sync import ProcessorSync
from .workqueue import WorkQueue

log = logging.getLogger(__name__)
P = ParamSpec("P")
R = TypeVar("R")


class Operator:
    def __init__(self, kube: Kube, config: OperatorConfig, workers: int = 8,
                 resync_seconds: float = 300.0) -> None:
        self.kube = kube
        self.config = config
        self.resync_seconds = resync_seconds
        self.caches = Caches(kube)
        self.executor = ThreadPoolExecutor(max_workers=workers * 2,
                                           thread_name_prefix="reconcile")
        self.listener_sync = ListenerSync(kube, config, self.caches.secret, self._listener_pods)
        self.processor_sync = ProcessorSync(kube, config, self.listener_sync)
        self.namespace_syncs: Coalescer[SyncResult] = Coalescer(self._sync_namespace)
        self.connection_queue = WorkQueue("Connection", self._reconcile_connection, workers)
        self.credential_queue = WorkQueue("Credential", self._reconcile_credential, workers)
        self.namespace_queue = WorkQueue("listeners of namespace", self._namespace_work, 2,
                                         kind="Namespace")
        self.connection_reconciler = ConnectionReconciler(
            kube, config, self.caches, self.listener_sync, self.namespace_syncs,
            self.namespace_queue.add, self.run)
        self.job_results = JobResults(kube, self.caches)
        # When the latest successful transfer Job of each Connection completed
        # (epoch seconds), for the metrics: a failed run replaces
        # status.lastTransfer, not this. Finished Jobs are listed again at a
        # restart (the CronJob keeps the last three successful ones).
        self.transfer_successes: dict[Key, float] = {}
        self._resync: asyncio.Task[None] | None = None

    def _listener_pods(self, namespace: str, protocol: str) -> list[str]:
        return [pod.name for pod in self.caches.pods_in(namespace) if pod.protocol == protocol]

    # The caches, as the watch handlers name them.
    @property
    def connections(self) -> dict[Key, dict[str, Any]]:
        return self.caches.connections

    @property
    def credentials(self) -> dict[Key, dict[str, Any]]:
        return self.caches.credentials

    @property
    def secrets(self) -> dict[Key, dict[str, Any]]:
        return self.caches.secrets

    # --- life cycle ---------------------------------------------------------------

    def prime(self, namespaces: list[str]) -> None:
        self.caches.prime(namespaces)

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

    def forget_connection(self, key: Key) -> None:
        self.connections.pop(key, None)
        self.caches.forget_validated(key)
        self.transfer_successes.pop(key, None)
        self.connection_reconciler.announcer.forget(key)

    def dependents(self, namespace: str, credential: str) -> list[Key]:
        return self.caches.dependents(namespace, credential)

    def record_job(self, job: dict[str, Any], connection: str) -> None:
        self._note_success(job, connection)
        started = time.monotonic()
        try:
            self.job_results.record_job(job, connection)
        except Exception:
            metrics.reconciled("Job", time.monotonic() - started, ok=False)
            raise
        metrics.reconciled("Job", time.monotonic() - started, ok=True)

    def _note_success(self, job: dict[str, Any], connection: str) -> None:
        status = job.get("status") or {}
        complete = any(c.get("type") == "Complete" and c.get("status") == "True"
                       for c in status.get("conditions") or [])
        finished = parse_time(status.get("completionTime")) if complete else None
        self._remember_success((job["metadata"]["namespace"], connection), finished)

    def note_connection(self, key: Key, body: dict[str, Any]) -> None:
        """A Connection as watched: a successful status.lastTransfer is remembered,
        so that the next one, failed, does not hide when transfers last worked."""
        last = (body.get("status") or {}).get("lastTransfer") or {}
        if last.get("outcome") == "Succeeded":
            self._remember_success(key, parse_time(last.get("time")))

    def _remember_success(self, key: Key, finished: float | None) -> None:
        if finished is not None:
            self.transfer_successes[key] = max(self.transfer_successes.get(key, 0.0), finished)

    # --- the queues' work -------------------------------------------------------------

    async def _reconcile_credential(self, key: Key) -> None:
        body = self.credentials.get(key)
        if body is None:
            return
        await self.run(reconcile_credential, self.kube, body, self.caches.own_secret)

    async def _reconcile_connection(self, key: Key) -> None:
        await self.connection_reconciler.reconcile(key)

    async def _namespace_work(self, namespace: Any) -> None:
        await self.namespace_syncs.request(str(namespace))

    async def _sync_namespace(self, namespace: str) -> SyncResult:
        members = []
        inbound = []
        credentials = {name: body for (ns, name), body in self.credentials.items()
                       if ns == namespace}
        for name, body in self.caches.in_namespace(namespace):
            spec, validated = self.caches.validated((namespace, name), body)
            if spec is None or not validated.ok:
                continue
            metadata = body["metadata"]
            if not spec.platform_initiated:
                members.append(Member(name, metadata["uid"], spec,
                                      metadata.get("creationTimestamp", ""),
                                      member_inputs(body, credentials.get(
                                          spec.credential_ref.name))))
            if spec.direction == "Inbound":
                inbound.append((name, metadata["uid"], spec))
        result = await self.run(self.listener_sync.run, namespace, members, credentials)
        await self.run(self.processor_sync.run, namespace, inbound, credentials)
        # The Connections this sync decided anything new for are judged again; the
        # others' reconciles did not wait for it (ConnectionReconciler).
        for name in result.changed_since(self.namespace_syncs.latest.get(namespace)):
            self.connection_queue.add((namespace, name))
        return result
