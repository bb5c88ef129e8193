"""What the operator must do, as functions of (cluster, namespace).

test_operator.py runs them with an operator that holds cluster-admin rights;
test_rbac.py runs the same functions with an operator that holds only the
chart's RBAC, so a verb missing from the chart fails a scenario.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from kubernetes.client.rest import ApiException

from connectors.api import GROUP, VERSION
from connectors.api.accounts import AccountTable, shard_of, shard_secret_name
from connectors.api.processing import Processed, ProcessingTable
from connectors.planning.listeners import LABEL_ACCOUNTS
from tests.conftest import Cluster
from tests.support.secrets import assert_absent
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO / "examples").glob("*.yaml"))


def apply(cluster: Cluster, namespace: str, manifest: str | Path) -> None:
    text = manifest.read_text() if isinstance(manifest, Path) else manifest
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=text)


def get(cluster: Cluster, namespace: str, plural: str, name: str) -> dict[str, Any] | None:
    api = client.CustomObjectsApi(cluster.api_client())
    try:
        result: dict[str, Any] = api.get_namespaced_custom_object(
            GROUP, VERSION, namespace, plural, name)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return result


def condition(obj: dict[str, Any] | None, type_: str) -> dict[str, Any]:
    for c in ((obj or {}).get("status") or {}).get("conditions") or []:
        if c["type"] == type_:
            return dict(c)
    return {}


def wait_condition(cluster: Cluster, namespace: str, name: str, status: str,
                   reason: str | None = None, plural: str = "connections",
                   timeout: float = 90) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, plural, name)
        ready = condition(obj, "Ready")
        if ready.get("status") == status and (reason is None or ready.get("reason") == reason):
            return obj
        return None
    return eventually(probe, timeout, f"{plural}/{name} Ready={status} {reason or ''}")


# Why a listener Connection is not Ready on a control plane without a node: no
# listener pod can run (and no volume is provisioned), which is the truth.
NO_NODE = ("VolumeNotBound", "ListenerNotReady")


def wait_configured(cluster: Cluster, namespace: str, name: str,
                    timeout: float = 90) -> dict[str, Any]:
    """Ready, or as ready as a cluster without a node lets a Connection be: all
    configured, and Ready=False only because no listener pod can run."""
    def probe() -> dict[str, Any] | None:
        obj = get(cluster, namespace, "connections", name)
        ready = condition(obj, "Ready")
        if ready.get("status") == "True" or (
                ready.get("status") == "False" and ready.get("reason") in NO_NODE):
            return obj
        return None
    return eventually(probe, timeout, f"connections/{name} configured")


def read(cluster: Cluster, kind: str, namespace: str, name: str) -> Any | None:
    core = client.CoreV1Api(cluster.api_client())
    batch = client.BatchV1Api(cluster.api_client())
    apps = client.AppsV1Api(cluster.api_client())
    readers = {
        "Secret": core.read_namespaced_secret,
        "ConfigMap": core.read_namespaced_config_map,
        "Service": core.read_namespaced_service,
        "CronJob": batch.read_namespaced_cron_job,
        "Deployment": apps.read_namespaced_deployment,
    }
    try:
        return readers[kind](name, namespace)
    except ApiException as error:
        if error.status == 404:
            return None
        raise


def secret_value(cluster: Cluster, namespace: str, name: str, key: str) -> str:
    secret = read(cluster, "Secret", namespace, name)
    assert secret is not None, f"Secret {name} missing"
    return base64.b64decode(secret.data[key]).decode()


def account_table(cluster: Cluster, namespace: str, protocol: str) -> AccountTable | None:
    """The whole table: every shard Secret of the protocol, read together."""
    shards = client.CoreV1Api(cluster.api_client()).list_namespaced_secret(
        namespace, label_selector=f"{LABEL_ACCOUNTS}={protocol}").items
    found = [AccountTable.parse(base64.b64decode(secret.data["accounts.json"]))
             for secret in shards]
    if not found:
        return None
    return AccountTable(accounts=[account for table in found for account in table.accounts])


def processing_table(cluster: Cluster, namespace: str) -> list[Processed] | None:
    """The whole processing table: every shard ConfigMap, read together."""
    shards = client.CoreV1Api(cluster.api_client()).list_namespaced_config_map(
        namespace, label_selector="app.kubernetes.io/component=processor").items
    found = [ProcessingTable.parse(shard.data["processing.json"]) for shard in shards
             if (shard.data or {}).get("processing.json")]
    return [entry for table in found for entry in table.connections] if found else None


def examples_reach_ready(cluster: Cluster, namespace: str) -> None:
    for path in EXAMPLES:
        apply(cluster, namespace, path)
    names = [doc["metadata"]["name"] for path in EXAMPLES
             for doc in yaml.safe_load_all(path.read_text()) if doc["kind"] == "Connection"]
    for name in names:
        connection = wait_configured(cluster, namespace, name)
        statuses = {c["type"]: c["status"] for c in connection["status"]["conditions"]}
        assert connection["status"]["observedGeneration"] == connection["metadata"]["generation"]
        # FTP Connections say whether they are encrypted; every example is.
        assert statuses.pop("Encrypted", "True") == "True"
        if connection["status"].get("endpoint") is None:  # the platform starts transfers
            assert statuses == {"Validated": "True", "CredentialReady": "True",
                                "WorkloadReady": "True", "Ready": "True"}
            continue
        # A listener Connection: configured, and not Ready while no listener pod runs.
        assert statuses == {"Validated": "True", "CredentialReady": "True",
                            "WorkloadReady": "False", "Ready": "False"}
        workload = condition(connection, "WorkloadReady")
        assert workload["reason"] in NO_NODE
        assert "kubectl describe" in workload["message"]

    # Platform-initiated: a CronJob each, hardened, credentials mounted as files.
    cronjob = read(cluster, "CronJob", namespace, "transfer-shandalear-audiences")
    assert cronjob is not None
    assert cronjob.spec.schedule == "0 * * * *"
    assert cronjob.spec.concurrency_policy == "Forbid"
    pod = cronjob.spec.job_template.spec.template.spec
    container = pod.containers[0]
    assert container.args == ["transfer", "--connection", "shandalear-audiences"]
    assert container.security_context.read_only_root_filesystem is True
    assert container.security_context.allow_privilege_escalation is False
    assert container.security_context.capabilities.drop == ["ALL"]
    assert pod.security_context.run_as_non_root is True
    assert pod.security_context.seccomp_profile.type == "RuntimeDefault"
    assert {v.secret.secret_name for v in pod.volumes if v.secret} == {
        "shandalear-pull-credential"}
    assert not any(e.value_from and e.value_from.secret_key_ref for e in container.env or [])
    owner = cronjob.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.controller) == ("Connection", "shandalear-audiences",
                                                          True)
    assert cronjob.metadata.labels["app.kubernetes.io/managed-by"] == "connectors-operator"
    assert cronjob.metadata.labels["connectors.dev/connection"] == "shandalear-audiences"
    config_map = read(cluster, "ConfigMap", namespace, "transfer-shandalear-audiences")
    assert config_map is not None
    assert config_map.data["known_hosts"].startswith("sftp.shandalear.example ssh-ed25519 ")

    # Partner-initiated: one listener per protocol, one account per Connection.
    for protocol, usernames in (("sftp", {"acme", "northwind"}), ("smtp", {"globex"})):
        deployment = read(cluster, "Deployment", namespace, f"connectors-{protocol}")
        assert deployment is not None, protocol
        assert deployment.metadata.labels["connectors.dev/listener"] == protocol
        listener = deployment.spec.template.spec.containers[0]
        assert listener.args == ["listen", protocol]
        assert listener.readiness_probe.tcp_socket is not None
        assert listener.resources.limits["memory"]
        assert read(cluster, "Service", namespace, f"connectors-{protocol}") is not None
        table = account_table(cluster, namespace, protocol)
        assert table is not None
        assert {a.username for a in table.accounts} == usernames
    assert read(cluster, "Deployment", namespace, "connectors-ftp") is None
    sftp = account_table(cluster, namespace, "sftp")
    assert sftp is not None
    [acme] = sftp.by_username()["acme"]
    password = secret_value(cluster, namespace, "acme-sftp-credential", "password")
    assert acme.password_hash
    assert_absent(password, acme.password_hash, "the account table")
    assert acme.permissions == ["upload", "list", "readReceipts"]
    assert sftp.by_username()["northwind"][0].authorized_keys[0].startswith("ssh-ed25519 ")

    endpoint = get(cluster, namespace, "connections", "acme-conversions")["status"]["endpoint"]
    assert endpoint["host"] == f"connectors-sftp.{namespace}.svc"
    assert endpoint["username"] == "acme"
    assert endpoint["hostKeyFingerprint"].startswith("SHA256:")
    email = get(cluster, namespace, "connections", "globex-audiences")["status"]["endpoint"]
    assert email["address"] == "globex-audiences@connectors.local"
    assert (email["host"], email["port"], email["submissionPort"]) == (
        f"connectors-smtp.{namespace}.svc", 25, 587)
    smtp = account_table(cluster, namespace, "smtp")
    assert smtp is not None
    [globex] = smtp.by_username()["globex"]
    assert globex.allowed_senders == ["globex.example"]
    service = read(cluster, "Service", namespace, "connectors-smtp")
    assert {(p.name, p.port, p.target_port) for p in service.spec.ports} == {
        ("smtp", 25, 2525), ("submission", 587, 2587)}

    # `kubectl describe` tells what was done: one Normal event per Connection made
    # Ready. One that waits for its listener (no pod can start without a node) says
    # so in its condition; waiting is how every new Connection starts, so it is
    # not a Warning until it lasts (announcements.py, PENDING_GRACE).
    def events_of(name: str) -> list[Any]:
        return list(client.CoreV1Api(cluster.api_client()).list_namespaced_event(
            namespace, field_selector=f"involvedObject.name={name}").items)
    configured = [e for e in events_of("contoso-reports") if e.reason == "Configured"]
    assert len(configured) == 1
    assert configured[0].type == "Normal"
    assert "CronJob transfer-contoso-reports" in configured[0].message
    assert not [e for e in events_of("acme-conversions") if e.reason in NO_NODE]
    assert condition(get(cluster, namespace, "connections", "acme-conversions"),
                     "WorkloadReady")["reason"] in NO_NODE
    assert not [e for e in events_of("acme-conversions") if e.reason == "Configured"]

    credential = get(cluster, namespace, "credentials", "shandalear-pull")
    assert credential["status"]["publicKey"].startswith("ssh-ed25519 ")
    assert credential["status"]["fingerprints"][0].startswith("SHA256:")


def deleted_children_come_back(cluster: Cluster, namespace: str) -> None:
    for kind, name in (("CronJob", "transfer-shandalear-audiences"),
                       ("Deployment", "connectors-sftp"),
                       ("Secret", shard_secret_name("sftp", shard_of("acme"))),
                       ("ConfigMap", "connectors-listener-state")):
        cluster.kubectl("delete", kind.lower(), name, "-n", namespace, "--wait=true")
        eventually(lambda kind=kind, name=name: read(cluster, kind, namespace, name),
                   60, f"{kind} {name} to be restored")


def spec_edits_reach_children(cluster: Cluster, namespace: str) -> None:
    patch = json.dumps({"spec": {"schedule": "5 4 * * *"}})
    cluster.kubectl("patch", "connection", "shandalear-audiences", "-n", namespace,
                    "--type=merge", "-p", patch)
    eventually(lambda: read(cluster, "CronJob", namespace, "transfer-shandalear-audiences")
               .spec.schedule == "5 4 * * *", 60, "the CronJob's new schedule")
    cluster.kubectl("patch", "connection", "shandalear-audiences", "-n", namespace,
                    "--type=merge", "-p", json.dumps({"spec": {"suspend": True}}))
    eventually(lambda: read(cluster, "CronJob", namespace, "transfer-shandalear-audiences")
               .spec.suspend is True, 60, "the CronJob to be suspended")
    suspended = wait_condition(cluster, namespace, "shandalear-audiences", "False", "Suspended")
    assert "set it to false to resume" in condition(suspended, "Ready")["message"]
    assert condition(suspended, "WorkloadReady")["status"] == "True"
    cluster.kubectl("patch", "connection", "acme-conversions", "-n", namespace,
                    "--type=merge", "-p", json.dumps({"spec": {"suspend": True}}))

    def acme_suspended() -> bool:
        table = account_table(cluster, namespace, "sftp")
        return table is not None and table.by_username()["acme"][0].suspended
    eventually(acme_suspended, 60, "the acme account to be suspended")
    refused = wait_condition(cluster, namespace, "acme-conversions", "False", "Suspended")
    assert "logins are refused" in condition(refused, "Ready")["message"]


def missing_credential_then_applied(cluster: Cluster, namespace: str) -> None:
    apply(cluster, namespace, """
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: late-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Push
  credentialRef: {name: late-login}
  filenamePattern: "clicks_*.csv"
""")
    pending = wait_condition(cluster, namespace, "late-clicks", "False", "CredentialNotFound")
    assert "late-login" in condition(pending, "Ready")["message"]
    apply(cluster, namespace, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: late-login}
spec: {type: Password, username: late}
""")
    wait_configured(cluster, namespace, "late-clicks")
    table = account_table(cluster, namespace, "ftp")
    assert table is not None
    assert "late" in table.by_username()


def shared_credentials_keep_their_places(cluster: Cluster, namespace: str) -> None:
    """One Credential, two Connections: the second needs its own folder; a newer
    Credential claiming the same username never takes the login over."""
    apply(cluster, namespace, """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: brandx}
spec: {type: Password, username: brandx}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: brandx-clicks}
spec: {direction: Inbound, dataType: Clicks, method: SFTP, methodology: Push,
       credentialRef: {name: brandx}, filenamePattern: "clicks_*.csv"}
""")
    wait_configured(cluster, namespace, "brandx-clicks")
    apply(cluster, namespace, """
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: brandx-conversions}
spec: {direction: Inbound, dataType: Conversions, method: SFTP, methodology: Push,
       credentialRef: {name: brandx}, filenamePattern: "conversions_*.csv"}
---
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: aaa-test}
spec: {type: Password, username: brandx}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: brandx-aaa-test}
spec: {direction: Inbound, dataType: Clicks, method: SFTP, methodology: Push,
       credentialRef: {name: aaa-test}, filenamePattern: "*.csv"}
""")
    refused = wait_condition(cluster, namespace, "brandx-conversions", "False")
    assert "already appears at / for login brandx" in condition(refused, "Ready")["message"]
    taker = wait_condition(cluster, namespace, "brandx-aaa-test", "False")
    assert "already the login of Credential brandx" in condition(taker, "Ready")["message"]
    table = account_table(cluster, namespace, "sftp")
    assert table is not None
    assert [(a.connection, a.folder) for a in table.by_username()["brandx"]] == [
        ("brandx-clicks", None)]
    still = get(cluster, namespace, "connections", "brandx-clicks")
    assert condition(still, "Ready")["reason"] in NO_NODE
    cluster.kubectl("patch", "connection", "brandx-conversions", "-n", namespace,
                    "--type=merge", "-p", '{"spec": {"folder": "conversions"}}')
    served = wait_configured(cluster, namespace, "brandx-conversions")
    assert served["status"]["endpoint"]["folder"] == "/conversions/"

    def both_served() -> bool:
        table = account_table(cluster, namespace, "sftp")
        return table is not None and sorted(
            (a.connection, a.folder) for a in table.by_username()["brandx"]) == [
            ("brandx-clicks", None), ("brandx-conversions", "conversions")]
    eventually(both_served, 60, "the login to serve both Connections")
    for name in ("brandx-clicks", "brandx-conversions", "brandx-aaa-test"):
        cluster.kubectl("delete", "connection", name, "-n", namespace)


def deletions_clean_up(cluster: Cluster, namespace: str) -> None:
    cluster.kubectl("delete", "connection", "northwind-reports", "-n", namespace)

    def northwind_gone() -> bool:
        table = account_table(cluster, namespace, "sftp")
        return table is not None and "northwind" not in table.by_username()
    eventually(northwind_gone, 60, "northwind's account to leave the table")
    cluster.kubectl("delete", "connection", "shandalear-audiences", "-n", namespace)
    eventually(lambda: read(cluster, "CronJob", namespace, "transfer-shandalear-audiences")
               is None, 90, "the garbage collector to remove the CronJob")
    cluster.kubectl("delete", "connection", "acme-conversions", "-n", namespace)
    eventually(lambda: read(cluster, "Deployment", namespace, "connectors-sftp") is None,
               90, "the SFTP listener to be removed with its last account")
    assert read(cluster, "Secret", namespace, "connectors-sftp-hostkey") is not None, (
        "the host key must outlive the listener, or partners would see it change")


Scenario = Callable[[Cluster, str], None]
SCENARIOS: list[Scenario] = [
    examples_reach_ready,
    deleted_children_come_back,
    spec_edits_reach_children,
    missing_credential_then_applied,
    shared_credentials_keep_their_places,
    deletions_clean_up,
]


def run_all(cluster: Cluster, namespace: str) -> None:
    for scenario in SCENARIOS:
        scenario(cluster, namespace)
