"""Reporting landed files to the Connection, against the real control plane."""

from __future__ import annotations

import base64
from typing import Any

import paramiko
import pytest
from kubernetes import client

from connectors.api.accounts import STATE_CONFIGMAP, state_value, table_digest
from connectors.api.common import GROUP, VERSION
from connectors.listeners.core.report import KubernetesReporter, TransferRecord
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Workspace,
    listener_fixture,
    wait_until,
)
from tests.integration.listeners.smtp_support import (
    ADDRESS,
    attachment,
    smtp_listener_with_tls,
    swaks,
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


def test_refusals_are_one_aggregated_warning(crds: Any, namespace: str) -> None:
    """A flood of refused names is one Warning line with a count, and leaves
    the record of the last real transfer alone."""
    api_client = crds.api_client()
    create_connection(api_client, namespace)
    reporter = KubernetesReporter(namespace, api_client)
    reporter.report(TransferRecord("acme-conversions", "sftp", 1, 10, "Succeeded",
                                   names=("conversions_1.csv",)))
    for number in range(5):
        reporter.report(TransferRecord(
            "acme-conversions", "sftp", 0, 0, "Failed",
            message=f"upload of 'evil_{number}.sh' refused: does not match the pattern"))
    warnings = [e for e in events(api_client, namespace) if e.type == "Warning"]
    assert len(warnings) == 1
    assert warnings[0].reason == "TransferRefused"
    assert warnings[0].count == 5
    assert "evil_4.sh" in warnings[0].message
    status = last_transfer(api_client, namespace)
    assert status["outcome"] == "Succeeded"
    assert status["files"] == 1


def test_last_transfer_is_replaced_whole(crds: Any, namespace: str) -> None:
    """status.lastTransfer is one transfer: no field of an older one survives
    (a merge patch would keep what the newer record leaves out)."""
    api_client = crds.api_client()
    create_connection(api_client, namespace)
    custom = client.CustomObjectsApi(api_client)
    custom.patch_namespaced_custom_object_status(
        GROUP, VERSION, namespace, "connections", "acme-conversions",
        {"status": {"lastTransfer": {"files": 3, "bytes": 9, "failed": 2, "skipped": 4,
                                     "outcome": "Failed", "message": "2 files failed",
                                     "durationSeconds": 1.5}}},
        _content_type="application/merge-patch+json")
    KubernetesReporter(namespace, api_client).report(
        TransferRecord("acme-conversions", "sftp", 1, 10, "Succeeded"))
    status = last_transfer(api_client, namespace)
    assert status["files"] == 1
    assert status["outcome"] == "Succeeded"
    assert status["source"] == "listener-sftp"
    assert not {"failed", "skipped", "message", "durationSeconds"} & set(status)


MAIL_CONNECTION = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "Connection",
    "metadata": {"name": "acme-mail"},
    "spec": {
        "direction": "Inbound", "dataType": "Audiences", "method": "Email",
        "methodology": "Push", "credentialRef": {"name": "acme-smtp"},
        "filenamePattern": "report_*.csv",
        "email": {"allowedSenders": ["acme.example"]},
    },
}


def test_mail_exchanger_reports_deliveries_and_refused_senders(
    crds: Any, namespace: str, workspace: Workspace
) -> None:
    """Port 25: a delivery is the Connection's lastTransfer; a sender its
    allowedSenders refuse is a Warning event on it, and leaves lastTransfer alone."""
    api_client = crds.api_client()
    custom = client.CustomObjectsApi(api_client)
    custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "connections",
                                           MAIL_CONNECTION)
    accounts = [a.model_copy(update={"allowed_senders": ["acme.example"]})
                if a.connection == "acme-mail" else a for a in workspace.default_accounts()]
    workspace.write_accounts(accounts)

    def mail_status() -> dict[str, Any]:
        found = custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "connections",
                                                    "acme-mail")
        assert isinstance(found, dict)
        return dict(found.get("status", {}).get("lastTransfer", {}))

    def mail_events() -> list[Any]:
        listed = client.CoreV1Api(api_client).list_namespaced_event(namespace)
        return [e for e in listed.items if e.involved_object.name == "acme-mail"]

    with smtp_listener_with_tls(workspace, env={"CONNECTORS_NAMESPACE": namespace,
                                                "KUBECONFIG": crds.kubeconfig}) as tls:
        delivered = swaks(tls.port, workspace, "--attach", attachment(workspace, "report_k.csv"),
                          to=ADDRESS, sender="data@acme.example", user=None)
        assert delivered.returncode == 0, delivered.stdout
        wait_until(lambda: mail_status().get("files") == 1, timeout=120,
                   message="status.lastTransfer of acme-mail")
        for number in range(3):
            refused = swaks(tls.port, workspace, "--attach",
                            attachment(workspace, "report_x.csv"), to=ADDRESS,
                            sender=f"intruder{number}@elsewhere.example", user=None)
            assert "550 5.7.1" in refused.stdout

        def warned() -> bool:
            return any(e.type == "Warning" and (e.count or 0) >= 3 for e in mail_events())

        wait_until(warned, timeout=120, message="one aggregated Warning event")
    [warning] = [e for e in mail_events() if e.type == "Warning"]
    assert warning.reason == "TransferRefused"
    assert "allowedSenders" in warning.message
    assert "intruder2@elsewhere.example" in warning.message
    status = mail_status()
    assert (status["outcome"], status["files"]) == ("Succeeded", 1)


def test_listener_reports_the_account_table_it_serves(crds: Any, namespace: str,
                                                      workspace: Workspace) -> None:
    """The listener writes `<pod>: "<protocol> <digest>"` into the state ConfigMap
    for every table it loads, and removes its line when it stops."""
    api_client = crds.api_client()
    core = client.CoreV1Api(api_client)
    core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=STATE_CONFIGMAP)))

    def reported() -> str | None:
        data = core.read_namespaced_config_map(STATE_CONFIGMAP, namespace).data or {}
        return data.get("listener-pod-1")

    def digest_of_file() -> str:
        return state_value("sftp", table_digest(workspace.accounts_file.read_bytes()))

    gen = listener_fixture(workspace, "sftp", env={
        "CONNECTORS_NAMESPACE": namespace, "KUBECONFIG": crds.kubeconfig,
        "CONNECTORS_POD_NAME": "listener-pod-1", "CONNECTORS_STATE_CONFIGMAP": STATE_CONFIGMAP})
    listener = next(gen)
    try:
        first = digest_of_file()
        wait_until(lambda: reported() == first, timeout=60, message="the first report")
        workspace.write_accounts(workspace.default_accounts()[:2])
        second = digest_of_file()
        assert second != first
        wait_until(lambda: reported() == second, timeout=60, message="the new table's report")
    finally:
        gen.close()
    assert listener.process.returncode == 0
    assert reported() is None
