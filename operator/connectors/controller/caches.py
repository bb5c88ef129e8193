"""What the watches have seen: the latest body of every object the reconcilers read.

The watch handlers (watches.py) write here and nowhere else; the reconcilers
read. Plain dicts keyed by (namespace, name), replaced whole on every event,
so a reader sees an old or a new body, never half of one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..api.connection import ConnectionSpec
from ..planning.conditions import Verdict
from ..planning.config import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY
from ..planning.readiness import ListenerPod
from ..planning.status import validate_connection
from .kube import Kube

Key = tuple[str, str]


# Kept out of the cached bodies: nothing the operator decides reads them, and
# every cached Connection, Credential and Secret would carry them.
UNREAD_ANNOTATIONS = ("kubectl.kubernetes.io/last-applied-configuration",)


def slim(body: Mapping[str, Any]) -> dict[str, Any]:
    """The body as the caches keep it: without metadata.managedFields and the
    copy of the spec `kubectl apply` leaves in an annotation."""
    copy = dict(body)
    metadata = dict(copy.get("metadata") or {})
    metadata.pop("managedFields", None)
    annotations = metadata.get("annotations")
    if annotations and any(name in annotations for name in UNREAD_ANNOTATIONS):
        metadata["annotations"] = {k: v for k, v in annotations.items()
                                   if k not in UNREAD_ANNOTATIONS}
    copy["metadata"] = metadata
    return copy


def referenced_credentials(spec: dict[str, Any]) -> set[str]:
    """The Credentials a Connection names: its credentialRef, and in spec.pgp."""
    pgp = spec.get("pgp") or {}
    names = {(spec.get("credentialRef") or {}).get("name"),
             (pgp.get("decryptWith") or {}).get("name"),
             (pgp.get("encryptTo") or {}).get("name")}
    return {name for name in names if isinstance(name, str)}


class ConnectionBodies(dict[Key, dict[str, Any]]):
    """The Connections by (namespace, name), indexed as the watches ask: by
    namespace, and by the Credentials they name. A Credential's event asks
    for its Connections, and scanning them all made 10,000 Credentials cost
    10,000 scans of 10,000 Connections."""

    def __init__(self) -> None:
        super().__init__()
        self.by_credential: dict[Key, set[Key]] = {}
        self.by_namespace: dict[str, dict[str, None]] = {}

    def __setitem__(self, key: Key, body: dict[str, Any]) -> None:
        self._unindex(key)
        super().__setitem__(key, body)
        self.by_namespace.setdefault(key[0], {})[key[1]] = None
        for credential in referenced_credentials(body.get("spec") or {}):
            self.by_credential.setdefault((key[0], credential), set()).add(key)

    def __delitem__(self, key: Key) -> None:
        self._unindex(key)
        super().__delitem__(key)

    def pop(self, key: Key, default: Any = None) -> Any:
        self._unindex(key)
        return super().pop(key, default)

    def _unindex(self, key: Key) -> None:
        body = self.get(key)
        if body is None:
            return
        self.by_namespace.get(key[0], {}).pop(key[1], None)
        for credential in referenced_credentials(body.get("spec") or {}):
            self.by_credential.get((key[0], credential), set()).discard(key)


@dataclass
class Caches:
    kube: Kube
    connections: ConnectionBodies = field(default_factory=ConnectionBodies)
    credentials: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # The operator's own credential Secrets (generated passwords and keys).
    secrets: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # Listener pods by (namespace, pod name), and each namespace's listener state
    # (readiness.py): what a partner could reach now.
    listener_pods: dict[Key, ListenerPod] = field(default_factory=dict)
    listener_state: dict[str, dict[str, str]] = field(default_factory=dict)
    # Per Connection: (uid, generation) -> its validated spec. Each namespace sync
    # reads every Connection of the namespace; validating 10,000 specs took about
    # 0.1 s here, each sync.
    _validated: dict[Key, tuple[tuple[str, int], ConnectionSpec | None, Verdict]] = field(
        default_factory=dict)

    def validated(self, key: Key, body: dict[str, Any]) -> tuple[ConnectionSpec | None, Verdict]:
        """validate_connection of the body's spec, once per generation."""
        meta = body.get("metadata") or {}
        version = (str(meta.get("uid")), int(meta.get("generation") or 0))
        known = self._validated.get(key)
        if known is not None and known[0] == version:
            return known[1], known[2]
        spec, verdict = validate_connection(body.get("spec") or {})
        self._validated[key] = (version, spec, verdict)
        return spec, verdict

    def forget_validated(self, key: Key) -> None:
        self._validated.pop(key, None)

    def pods_in(self, namespace: str) -> list[ListenerPod]:
        return [pod for (ns, _), pod in list(self.listener_pods.items()) if ns == namespace]

    def prime(self, namespaces: list[str]) -> None:
        """Fills what a Connection's reconcile reads before any worker starts, so
        that no Connection is judged against a Credential not yet seen (which would
        flap its status to CredentialNotFound on every operator restart)."""
        for item in self.kube.list_in("Credential", namespaces):
            meta = item["metadata"]
            item.setdefault("kind", "Credential")
            self.credentials[(meta["namespace"], meta["name"])] = slim(item)
        selector = f"{LABEL_MANAGED_BY}={MANAGED_BY},{LABEL_COMPONENT}=credential"
        for item in self.kube.list_in("Secret", namespaces, selector):
            meta = item["metadata"]
            self.secrets[(meta["namespace"], meta["name"])] = slim(item)

    def own_secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """One of the operator's own credential Secrets, from the cache only."""
        return self.secrets.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret from the cache (the operator's own), else read from the API."""
        cached = self.secrets.get((namespace, name))
        return cached if cached is not None else self.kube.get("Secret", namespace, name)

    def dependents(self, namespace: str, credential: str) -> list[Key]:
        """The Connections that reference a Credential: as their credentialRef, or
        in spec.pgp (decryptWith, encryptTo)."""
        return sorted(self.connections.by_credential.get((namespace, credential), ()))

    def in_namespace(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        names = list(self.connections.by_namespace.get(namespace, {}))
        return [(name, body) for name in names
                if (body := self.connections.get((namespace, name))) is not None]
