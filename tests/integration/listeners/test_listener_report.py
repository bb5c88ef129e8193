"""Reporting landed files to the Connection, against the real control plane."""

from __future__ import annotations

import base64
from typing import Any

import paramiko
import pytest
from kubernetes import client

from connectors.api.common import GROUP, VERSION
from connectors.listeners.core.report import KubernetesReporter, TransferRecord
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Workspace,
    listener_fixture,
    wait_until,
)

pytestmark = [pytest.mark.controlplane, pytest.mark.timeout(600)]

CONNECTION = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "Connection",
    "metadata": {"name": "acme-conversions"},
    "spec": {
        "displayName": "Acme conversions",
        "direction": "Inbound",
        "dataType": "Conversions",
        "method": "SFTP",
        "methodology": "Push",
        "credentialRef": {"name": "acme-sftp"},
        "filenamePattern": "conversions_*.csv",
    },
}


def create_connection(api_client: Any, namespace: str) -> None:
    client.CustomObjectsApi(api_client).create_namespaced_custom_object(
        GROUP, VERSION, namespace, "connections", CONNECTION)


def last_transfer(api_client: Any, namespace: str) -> dict[str, Any]:
    found = client.CustomObjectsApi(api_client).get_namespaced_custom_object(
        GROUP, VERSION, namespace, "connections", "acme-conversions")
    assert isinstance(found, dict)
    result: dict[str, Any] = found.get("status", {}).get("lastTransfer", {})
    return result


def events(api_client: Any, namespace: str) -> list[Any]:
    listed = client.CoreV1Api(api_client).list_namespaced_event(namespace)
    return [e for e in listed.items if e.involved_object.name == "acme-conversions"]


def test_reporter_patches_status_and_posts_an_event(crds: Any, namespace: str) -> None:
    api_client = crds.api_client()
    create_connection(api_client, namespace)
    reporter = KubernetesReporter(namespace, api_client)
    reporter.report(TransferRecord("acme-conversions", "sftp", 2, 300, "Succeeded",
                                   names=("conversions_1.csv", "conversions_2.csv")))
    status = last_transfer(api_client, namespace)
    assert status["files"] == 2
    assert status["bytes"] == 300
    assert status["outcome"] == "Succeeded"
    [event] = events(api_client, namespace)
    assert event.type == "Normal"
    assert event.reason == "FilesReceived"
    assert "conversions_1.csv" in event.message
    assert event.involved_object.uid  # so that kubectl describe finds it


def test_listener_reports_an_upload(crds: Any, namespace: str, workspace: Workspace) -> None:
    api_client = crds.api_client()
    create_connection(api_client, namespace)
    gen = listener_fixture(workspace, "sftp", env={"CONNECTORS_NAMESPACE": namespace,
                                                   "KUBECONFIG": crds.kubeconfig})
    listener = next(gen)
    try:
        ssh = paramiko.SSHClient()
        public = (workspace.root / "ssh_host_ed25519_key.pub").read_text().split()
        ssh.get_host_keys().add(f"[127.0.0.1]:{listener.port}", public[0],
                                paramiko.PKey.from_type_string(public[0],
                                                               base64.b64decode(public[1])))
        ssh.connect("127.0.0.1", port=listener.port, username="acme", password=PASSWORD,
                    look_for_keys=False, allow_agent=False, timeout=30)
        try:
            with ssh.open_sftp().open("conversions_k8s.csv", "w") as handle:
                handle.write(b"x" * 1234)
        finally:
            ssh.close()
        wait_until(lambda: last_transfer(api_client, namespace).get("bytes") == 1234,
                   timeout=120, message="status.lastTransfer")
        assert last_transfer(api_client, namespace)["files"] == 1
        assert any("conversions_k8s.csv" in (e.message or "")
                   for e in events(api_client, namespace))
    finally:
        gen.close()
