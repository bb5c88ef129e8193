"""kopf handlers, kept thin: update a cache, put a key on a work queue, nothing more.

Only watch-event handlers are used, never on.create/on.update: those are
edge-triggered and store their progress in annotations on every object. Here
every event, and a periodic resync, leads to the same level-based reconcile, so a
child deleted by hand, a missed event or an operator restart all heal alike.
"""

from __future__ import annotations

import logging
from typing import Any

import kopf

from ..api.common import GROUP, VERSION
from ..planning.config import (
    ANNOTATION_ROTATE,
    LABEL_COMPONENT,
    LABEL_CONNECTION,
    LABEL_CREDENTIAL,
    LABEL_LISTENER,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from ..planning.listeners import HOST_KEY_SECRET, TLS_SECRET
from .operator import Operator

log = logging.getLogger(__name__)
OURS = {LABEL_MANAGED_BY: MANAGED_BY}


def _plain(body: kopf.Body) -> dict[str, Any]:
    return {"apiVersion": body.get("apiVersion"), "kind": body.get("kind"),
            "metadata": dict(body.metadata), "spec": dict(body.spec),
            "status": dict(body.status)}


def _secret(body: kopf.Body) -> dict[str, Any]:
    return {"metadata": dict(body.metadata), "data": dict(body.get("data") or {}),
            "type": body.get("type")}


def register(registry: kopf.OperatorRegistry, operator: Operator) -> None:
    """Registers every handler on `registry`, bound to `operator`."""
    written: dict[tuple[str, str, str], Any] = {}

    @kopf.on.event(GROUP, VERSION, "credentials", registry=registry)
    async def credential_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None,
                               name: str, **_: Any) -> None:
        namespace = str(namespace)
        key = (namespace, name)
        before = operator.credentials.get(key)
        if event["type"] == "DELETED":
            operator.credentials.pop(key, None)
            for dependent in operator.dependents(namespace, name):
                operator.connection_queue.add(dependent)
            return
        after = _plain(body)
        operator.credentials[key] = after
        if (before is None or event["type"] != "MODIFIED"
                or before["metadata"].get("generation") != after["metadata"].get("generation")
                or _rotate(before) != _rotate(after)):
            operator.credential_queue.add(key)
        if before is None or before.get("status") != after.get("status"):
            for dependent in operator.dependents(namespace, name):
                operator.connection_queue.add(dependent)

    @kopf.on.event(GROUP, VERSION, "connections", registry=registry)
    async def connection_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None,
                               name: str, **_: Any) -> None:
        namespace = str(namespace)
        key = (namespace, name)
        if event["type"] == "DELETED":
            operator.forget_connection(key)
            operator.namespace_queue.add(namespace)  # its account leaves the listener
            return
        before = operator.connections.get(key)
        operator.connections[key] = _plain(body)
        # Our own status writes come back as MODIFIED with the same generation: skip them.
        if (before is None or event["type"] != "MODIFIED"
                or before["metadata"].get("generation") != body.metadata.get("generation")):
            operator.connection_queue.add(key)

    @kopf.on.event("v1", "secrets", labels=OURS, registry=registry)
    async def secret_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None,
                           name: str, labels: kopf.Labels, **_: Any) -> None:
        namespace = str(namespace)
        key = (namespace, name)
        deleted = event["type"] == "DELETED"
        if labels.get(LABEL_COMPONENT) == "credential":
            before = operator.secrets.pop(key, None) if deleted else operator.secrets.get(key)
            if not deleted:
                operator.secrets[key] = _secret(body)
            credential = labels.get(LABEL_CREDENTIAL, "")
            if deleted:
                operator.credential_queue.add((namespace, credential))
            if deleted or (before is not None and before.get("data") != body.get("data")):
                for dependent in operator.dependents(namespace, credential):
                    operator.connection_queue.add(dependent)
        elif LABEL_LISTENER in labels and _changed_by_others(event, body, written):
            if deleted and name == HOST_KEY_SECRET:
                log.warning("the SFTP host key Secret of namespace %s was deleted; a new host "
                            "key is generated and partners will see it change", namespace)
                operator.listener_sync.forget_host_key(namespace)
            if deleted and name == TLS_SECRET:
                log.warning("the listener certificate Secret of namespace %s was deleted; a new "
                            "self-signed one is made and partners will see it change", namespace)
                operator.listener_sync.forget_tls_certificate(namespace)
            operator.namespace_queue.add(namespace)

    def child_changed(event: kopf.RawEvent, body: kopf.Body, namespace: str,
                      labels: kopf.Labels) -> None:
        if not _changed_by_others(event, body, written):
            return
        if LABEL_CONNECTION in labels:
            operator.connection_queue.add((namespace, labels[LABEL_CONNECTION]))
        elif LABEL_LISTENER in labels:
            operator.namespace_queue.add(namespace)

    for group_version, plural in (("v1", "configmaps"), ("v1", "services"),
                                  ("apps/v1", "deployments"), ("batch/v1", "cronjobs")):
        group, _, version = group_version.rpartition("/")

        @kopf.on.event(group, version, plural, labels=OURS, registry=registry,
                       id=f"child-{plural}")
        async def child_event(event: kopf.RawEvent, body: kopf.Body, namespace: str | None,
                              labels: kopf.Labels, **_: Any) -> None:
            child_changed(event, body, str(namespace), labels)

    @kopf.on.event("batch", "v1", "jobs", labels={**OURS, LABEL_CONNECTION: kopf.PRESENT},
                   registry=registry)
    async def job_event(event: kopf.RawEvent, body: kopf.Body, labels: kopf.Labels,
                        **_: Any) -> None:
        if event["type"] == "DELETED":
            return
        finished = any(c.get("type") in ("Complete", "Failed") and c.get("status") == "True"
                       for c in body.status.get("conditions") or [])
        if finished:
            await operator.run(operator.record_job, _plain(body) | {"status": dict(body.status)},
                               labels[LABEL_CONNECTION])


def _rotate(body: dict[str, Any]) -> str | None:
    annotations: dict[str, str] = body["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION_ROTATE)


def _changed_by_others(event: kopf.RawEvent, body: kopf.Body,
                       seen: dict[tuple[str, str, str], Any]) -> bool:
    """Whether an event on a child is worth a reconcile.

    Deletions always are. For objects with a generation (Deployments, CronJobs),
    an event that keeps it is a status update by a controller; for the others, an
    event whose data equals what we saw last is our own write echoed back.
    """
    key = (str(body.get("kind")), str(body.metadata.namespace), str(body.metadata.name))
    if event["type"] == "DELETED":
        seen.pop(key, None)
        return True
    generation = body.metadata.get("generation")
    fingerprint = generation if generation is not None else (
        body.get("data"), body.get("spec"), dict(body.metadata.labels))
    before = seen.get(key)
    seen[key] = fingerprint
    return before is not None and before != fingerprint
