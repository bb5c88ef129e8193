"""What the operator watches, and which work each event puts on a queue.

One table: the resource, the label selector the API server filters with, and
the handler that maps an event to keys. Handlers only update the caches and
queue keys (never on.create/on.update, which are edge-triggered and keep their
progress in annotations on every object), so a missed event, a child deleted
by hand and an operator restart all heal through the same reconcile.

The selector goes to the API server (`server_side_selectors`: kopf's
settings.watching.label_selectors, sent as `labelSelector=` on every list and
watch request), not to kopf's `labels=` filter, which kopf applies on the
operator's side after it has received every object of the resource. So the
operator never receives the cluster's other Secrets, ConfigMaps, Pods, ...:
neither their bytes nor their contents. The handlers check the selector once
more (`Watch.matches`), which costs nothing and keeps them safe if a selector
were ever dropped. A Secret a user names (a Credential's secretRef, a sink's
Secret, the listener certificate) is never watched: it is read when needed
(Caches.secret, kube.get).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..api.connection import is_platform_initiated
from ..metrics import operator as metrics
from ..planning.config import (
    LABEL_COMPONENT,
    LABEL_CONNECTION,
    LABEL_CREDENTIAL,
    LABEL_LISTENER,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from ..planning.listeners import HOST_KEY_SECRET, TLS_SECRET
from ..planning.readiness import STATE_CONFIGMAP, ListenerPod
from .caches import slim
from .operator import Operator
from .predicates import EchoFilter, rotation_requested, spec_changed, status_changed

log = logging.getLogger(__name__)
# A label that must be present, whatever its value.
PRESENT = None
OURS: dict[str, str | None] = {LABEL_MANAGED_BY: MANAGED_BY}
Body = dict[str, Any]
Handler = Callable[["Watches", str, Body], Awaitable[None]]


@dataclass(frozen=True)
class Watch:
    group: str
    version: str
    plural: str
    # label -> value, or PRESENT; None: every object of the resource.
    labels: dict[str, str | None] | None
    handler: Handler

    @property
    def selector(self) -> str:
        """The label selector the API server filters with ('' for none)."""
        return ",".join(key if value is PRESENT else f"{key}={value}"
                        for key, value in sorted((self.labels or {}).items()))

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        labels = labels or {}
        return all(key in labels if value is PRESENT else labels.get(key) == value
                   for key, value in (self.labels or {}).items())


def plain(body: kopf.Body) -> Body:
    """A plain copy of what the reconcilers read (kopf's bodies are live views)."""
    result: Body = {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
                    "metadata": dict(body.metadata), "spec": dict(body.spec),
                    "status": dict(body.status)}
    if "data" in body:  # Secrets and ConfigMaps
        result["data"] = dict(body.get("data") or {})
        result["type"] = body.get("type")
    return result


class Watches:
    """The handlers, bound to one operator and its echo filter."""

    def __init__(self, operator: Operator) -> None:
        self.operator = operator
        self.echoes = EchoFilter()

    async def credential(self, event_type: str, body: Body) -> None:
        op = self.operator
        key = (body["metadata"]["namespace"], body["metadata"]["name"])
        before = op.credentials.get(key)
        if event_type == "DELETED":
            op.credentials.pop(key, None)
            self._dependents(*key)
            return
        op.credentials[key] = slim(body)
        if spec_changed(event_type, before, body) or rotation_requested(before, body):
            op.credential_queue.add(key)
        if status_changed(before, body):
            self._dependents(*key)

    async def connection(self, event_type: str, body: Body) -> None:
        op = self.operator
        namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
        key = (namespace, name)
        if event_type == "DELETED":
            op.forget_connection(key)
            op.namespace_queue.add(namespace)  # its account leaves the listener
            return
        before = op.connections.get(key)
        op.connections[key] = slim(body)
        op.note_connection(key, body)
        if spec_changed(event_type, before, body):
            op.connection_queue.add(key)

    async def secret(self, event_type: str, body: Body) -> None:
        op = self.operator
        metadata = body["metadata"]
        namespace, name = metadata["namespace"], metadata["name"]
        labels = metadata.get("labels") or {}
        deleted = event_type == "DELETED"
        self._observed("Secret", event_type, body)
        if labels.get(LABEL_COMPONENT) == "credential":
            key = (namespace, name)
            before = op.secrets.pop(key, None) if deleted else op.secrets.get(key)
            if not deleted:
                op.secrets[key] = slim(body)
            credential = labels.get(LABEL_CREDENTIAL, "")
            if deleted:
                op.credential_queue.add((namespace, credential))
            if deleted or (before is not None and before.get("data") != body.get("data")):
                self._dependents(namespace, credential)
        elif LABEL_LISTENER in labels and self.echoes.changed_by_others(event_type, body):
            op.listener_sync.observed_secret(
                namespace, name, None if deleted else metadata.get("resourceVersion"))
            if deleted and name == HOST_KEY_SECRET:
                log.warning("the SFTP host key Secret of namespace %s was deleted; a new host "
                            "key is generated and partners will see it change", namespace)
                op.listener_sync.forget_host_key(namespace)
            if deleted and name == TLS_SECRET:
                log.warning("the listener certificate Secret of namespace %s was deleted; a new "
                            "self-signed one is made and partners will see it change", namespace)
                op.listener_sync.forget_tls_certificate(namespace)
            op.namespace_queue.add(namespace)

    async def child(self, event_type: str, body: Body) -> None:
        """A ConfigMap, Service, Deployment or CronJob the operator made: put its
        owner back on a queue when someone else changed it."""
        metadata = body["metadata"]
        if body.get("kind") == "ConfigMap" and metadata["name"] == STATE_CONFIGMAP:
            await self.listener_state(event_type, body)
            return
        self._observed(str(body.get("kind")), event_type, body)
        if not self.echoes.changed_by_others(event_type, body):
            return
        labels = metadata.get("labels") or {}
        if LABEL_CONNECTION in labels:
            self.operator.connection_queue.add((metadata["namespace"], labels[LABEL_CONNECTION]))
        elif LABEL_LISTENER in labels:
            self.operator.namespace_queue.add(metadata["namespace"])

    async def job(self, event_type: str, body: Body) -> None:
        """A finished transfer Job: its result becomes the Connection's lastTransfer."""
        if event_type == "DELETED":
            return
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in (body.get("status") or {}).get("conditions") or [])
        if finished:
            connection = (body["metadata"].get("labels") or {})[LABEL_CONNECTION]
            await self.operator.run(self.operator.record_job, body, connection)

    async def listener_state(self, event_type: str, body: Body) -> None:
        """A listener pod reported the account table it serves."""
        namespace = body["metadata"]["namespace"]
        if event_type == "DELETED":
            # The pods could report nothing any more: the sync makes it again.
            self.operator.listener_sync.forget_prepared(namespace)
            self.operator.namespace_queue.add(namespace)
        state = {} if event_type == "DELETED" else dict(body.get("data") or {})
        before = self.operator.caches.listener_state.get(namespace)
        if before != state:
            self.operator.caches.listener_state[namespace] = state
            if before is None:
                self._listener_connections(namespace)
            else:
                for name in self.operator.listener_sync.served_by(namespace, before, state):
                    self.operator.connection_queue.add((namespace, name))

    async def listener_pod(self, event_type: str, body: Body) -> None:
        """A listener pod came, went, or changed readiness."""
        metadata = body["metadata"]
        key = (metadata["namespace"], metadata["name"])
        pods = self.operator.caches.listener_pods
        before = pods.get(key)
        if event_type == "DELETED":
            pods.pop(key, None)
        else:
            pods[key] = ListenerPod(metadata["name"],
                                    (metadata.get("labels") or {}).get(LABEL_LISTENER, ""),
                                    pod_ready(body) and not metadata.get("deletionTimestamp"))
        if pods.get(key) != before:
            self._listener_connections(key[0])

    def _observed(self, kind: str, event_type: str, body: Body) -> None:
        metadata = body["metadata"]
        version = None if event_type == "DELETED" else metadata.get("resourceVersion")
        self.operator.kube.observed(kind, metadata["namespace"], metadata["name"], version)

    def _listener_connections(self, namespace: str) -> None:
        """Judges again every Connection a listener of the namespace serves."""
        for name, connection in self.operator.caches.in_namespace(namespace):
            spec = connection.get("spec") or {}
            if not is_platform_initiated(str(spec.get("direction")),
                                         str(spec.get("methodology"))):
                self.operator.connection_queue.add((namespace, name))

    def _dependents(self, namespace: str, credential: str) -> None:
        for dependent in self.operator.dependents(namespace, credential):
            self.operator.connection_queue.add(dependent)


WATCHES: tuple[Watch, ...] = (
    Watch(GROUP, VERSION, "credentials", None, Watches.credential),
    Watch(GROUP, VERSION, "connections", None, Watches.connection),
    Watch("", "v1", "secrets", OURS, Watches.secret),
    Watch("", "v1", "configmaps", OURS, Watches.child),
    Watch("", "v1", "services", OURS, Watches.child),
    Watch("apps", "v1", "deployments", OURS, Watches.child),
    Watch("batch", "v1", "cronjobs", OURS, Watches.child),
    Watch("batch", "v1", "jobs", {**OURS, LABEL_CONNECTION: PRESENT}, Watches.job),
    # Listener pods: whether a partner could reach the listener now.
    Watch("", "v1", "pods", {**OURS, LABEL_LISTENER: PRESENT}, Watches.listener_pod),
)


def pod_ready(body: Body) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True"
               for c in (body.get("status") or {}).get("conditions") or [])


def register(registry: kopf.OperatorRegistry, operator: Operator) -> None:
    """Registers one kopf event handler per row of WATCHES, bound to `operator`."""
    watches = Watches(operator)
    for watch in WATCHES:
        _register(registry, watches, watch)


def server_side_selectors(settings: kopf.OperatorSettings) -> None:
    """Each row's selector as kopf's server-side label selector of its resource
    (needs kopf 1.45: settings.watching.label_selectors)."""
    for watch in WATCHES:
        if watch.selector:
            settings.watching.label_selectors[watch.group, watch.version, watch.plural] = \
                watch.selector


def _register(registry: kopf.OperatorRegistry, watches: Watches, watch: Watch) -> None:
    # No `labels=` here: kopf would filter after receiving everything. The API
    # server filters (server_side_selectors); `matches` is the second look.
    @kopf.on.event(watch.group, watch.version, watch.plural,
                   registry=registry, id=f"watch-{watch.plural}")
    async def on_event(event: kopf.RawEvent, body: kopf.Body, **_: Any) -> None:
        metrics.watch_event(watch.plural)
        if not watch.matches(body.metadata.labels):
            return
        await watch.handler(watches, str(event.get("type")), plain(body))
