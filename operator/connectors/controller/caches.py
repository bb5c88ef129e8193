"""What the watches have seen: the latest body of every object the reconcilers read.

The watch handlers (watches.py) write here and nowhere else; the reconcilers
read. Plain dicts keyed by (namespace, name), replaced whole on every event,
so a reader sees an old or a new body, never half of one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..planning.config import LABEL_COMPONENT, LABEL_MANAGED_BY, MANAGED_BY
from ..planning.readiness import ListenerPod
from .kube import Kube

Key = tuple[str, str]


@dataclass
class Caches:
    kube: Kube
    connections: dict[Key, dict[str, Any]] = field(default_factory=dict)
    credentials: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # The operator's own credential Secrets (generated passwords and keys).
    secrets: dict[Key, dict[str, Any]] = field(default_factory=dict)
    # Listener pods by (namespace, pod name), and each namespace's listener state
    # (readiness.py): what a partner could reach now.
    listener_pods: dict[Key, ListenerPod] = field(default_factory=dict)
    listener_state: dict[str, dict[str, str]] = field(default_factory=dict)

    def pods_in(self, namespace: str) -> list[ListenerPod]:
        return [pod for (ns, _), pod in list(self.listener_pods.items()) if ns == namespace]

    def prime(self, namespaces: list[str]) -> None:
        """Fills what a Connection's reconcile reads before any worker starts, so
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

    def secret(self, namespace: str, name: str) -> dict[str, Any] | None:
        """A Secret from the cache (the operator's own), else read from the API."""
        cached = self.secrets.get((namespace, name))
        return cached if cached is not None else self.kube.get("Secret", namespace, name)

    def dependents(self, namespace: str, credential: str) -> list[Key]:
        """The Connections that reference a Credential: as their credentialRef, or
        in spec.pgp (decryptWith, encryptTo)."""
        def names(spec: dict[str, Any]) -> set[str | None]:
            pgp = spec.get("pgp") or {}
            return {(spec.get("credentialRef") or {}).get("name"),
                    (pgp.get("decryptWith") or {}).get("name"),
                    (pgp.get("encryptTo") or {}).get("name")}
        return [key for key, body in list(self.connections.items())
                if key[0] == namespace and credential in names(body.get("spec") or {})]

    def in_namespace(self, namespace: str) -> list[tuple[str, dict[str, Any]]]:
        return [(name, body) for (ns, name), body in list(self.connections.items())
                if ns == namespace]
