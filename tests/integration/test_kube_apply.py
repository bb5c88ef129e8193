"""Kube.apply against the real API server: an apply that changes nothing is not
sent, unless the object changed since or the last send is old (controller/kube.py)."""

from __future__ import annotations

import uuid

import pytest
from kubernetes import client

from connectors.controller import kube as kube_module
from connectors.controller.kube import Kube, load_api_client
from tests.conftest import Cluster


def test_an_unchanged_apply_is_skipped_until_the_object_changes_or_ages(
        cluster: Cluster, monkeypatch: pytest.MonkeyPatch) -> None:
    core = client.CoreV1Api(cluster.api_client())
    namespace = f"apply-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        kube = Kube(load_api_client(cluster.kubeconfig))
        config_map = {"apiVersion": "v1", "kind": "ConfigMap",
                      "metadata": {"name": "table", "namespace": namespace,
                                   "labels": {"app.kubernetes.io/managed-by": "test"}},
                      "data": {"k": "v1"}}
        answer = kube.apply(config_map)
        sent = kube.requests
        assert kube.apply(config_map) is config_map  # the same object: not sent
        assert kube.requests == sent
        # A watch saw the operator's own write: still nothing to send.
        kube.observed("ConfigMap", namespace, "table", answer["metadata"]["resourceVersion"])
        kube.apply(config_map)
        assert kube.requests == sent
        # Someone else changed it (another version seen): sent again, and restored.
        core.patch_namespaced_config_map("table", namespace, {"data": {"k": "edited"}})
        edited = core.read_namespaced_config_map("table", namespace)
        kube.observed("ConfigMap", namespace, "table", edited.metadata.resource_version)
        kube.apply(config_map)
        assert kube.requests == sent + 1
        assert core.read_namespaced_config_map("table", namespace).data == {"k": "v1"}
        # Deleted where no watch saw it: skipped while the last send is recent,
        # sent again once it is old.
        core.delete_namespaced_config_map("table", namespace)
        kube.apply(config_map)
        assert kube.requests == sent + 1
        monkeypatch.setattr(kube_module, "APPLIED_KEPT_SECONDS", 0.0)
        kube.apply(config_map)
        assert core.read_namespaced_config_map("table", namespace).data == {"k": "v1"}
        # A changed object is always sent.
        changed = {**config_map, "data": {"k": "v2"}}
        monkeypatch.setattr(kube_module, "APPLIED_KEPT_SECONDS", 1800.0)
        kube.apply(changed)
        assert core.read_namespaced_config_map("table", namespace).data == {"k": "v2"}
    finally:
        core.delete_namespace(namespace)
