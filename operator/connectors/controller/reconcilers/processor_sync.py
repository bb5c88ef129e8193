"""The namespace's processor: its table and Deployment while the namespace has
an Inbound Connection, nothing otherwise. Run in a thread with the listener
sync, on the same trigger (any Connection of the namespace changed)."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from ...api.compat import pgp_misfit
from ...api.connection import ConnectionSpec
from ...api.credential import CredentialSpec
from ...api.processing import CONFIGMAP, Processed, configmap_name, shard_number
from ...planning import credentials as credential_plan
from ...planning import processor as plan
from ...planning.config import LABEL_COMPONENT, OperatorConfig
from ..kube import Kube
from .listener_sync import ListenerSync


class ProcessorSync:
    def __init__(self, kube: Kube, config: OperatorConfig, listener_sync: ListenerSync) -> None:
        self.kube = kube
        self.config = config
        # The data claim and the reporting identity are the listeners'.
        self.listener_sync = listener_sync
        self._active: set[str] = set()
        # Per namespace: the shards of its processing table that exist.
        self._shards: dict[str, set[int]] = {}

    def run(self, namespace: str, inbound: list[tuple[str, str, ConnectionSpec]],
            credentials: dict[str, dict[str, Any]] | None = None) -> None:
        """`inbound`: (name, uid, spec) of every valid Inbound Connection;
        `credentials`: the namespace's Credentials by name, for spec.pgp."""
        if not inbound:
            self._remove(namespace)
            return
        owned_by = [(name, uid) for name, uid, _ in inbound]
        entries = [_with_key(Processed.of(name, spec), spec, credentials or {})
                   for name, _, spec in inbound]
        table = plan.processing_table(entries)
        secrets = sorted({name for entry in entries for name in entry.secret_names()})
        self.listener_sync.ensure_data_claim(namespace)
        self.listener_sync.ensure_identity(namespace)
        existing = self._existing_shards(namespace)
        planned = plan.processing_configmaps(namespace, table, owned_by)
        for configmap in planned.values():  # applies that change nothing are not sent
            self.kube.apply(configmap)
        for shard in sorted(existing - set(planned)):
            self.kube.delete("ConfigMap", namespace, configmap_name(shard))
        self._shards[namespace] = set(planned)
        self.kube.apply(plan.processor_deployment(namespace, self.config, owned_by, secrets))
        if namespace not in self._active:
            # The table's single ConfigMap from before shards.
            self.kube.delete("ConfigMap", namespace, CONFIGMAP)
        self._active.add(namespace)

    def _existing_shards(self, namespace: str) -> set[int]:
        """Read once per process, then kept as written."""
        if namespace not in self._shards:
            found = self.kube.list_in("ConfigMap", [namespace],
                                      f"{LABEL_COMPONENT}=processor")
            self._shards[namespace] = {shard for item in found if (
                shard := shard_number(item["metadata"]["name"])) is not None}
        return self._shards[namespace]

    def _remove(self, namespace: str) -> None:
        if namespace not in self._active:
            return
        self.kube.delete("Deployment", namespace, plan.NAME)
        for shard in sorted(self._existing_shards(namespace)):
            self.kube.delete("ConfigMap", namespace, configmap_name(shard))
        self._shards.pop(namespace, None)
        self.kube.delete("ConfigMap", namespace, CONFIGMAP)
        self._active.discard(namespace)


def _with_key(entry: Processed, spec: ConnectionSpec,
              credentials: dict[str, dict[str, Any]]) -> Processed:
    """spec.pgp.decryptWith: the Secret of the named PGPKey Credential's key pair,
    once the Credential fits (the Connection's conditions say when it does not)."""
    reference = spec.pgp.decrypt_with if spec.pgp is not None else None
    body = credentials.get(reference.name) if reference is not None else None
    if reference is None or body is None:
        return entry
    try:
        credential = CredentialSpec.model_validate(body.get("spec") or {})
    except ValidationError:
        return entry
    if pgp_misfit(spec, credential, reference.name):
        return entry
    secret = credential_plan.secret_name_for(reference.name, credential)
    return entry.model_copy(update={"decrypt_with": secret})
