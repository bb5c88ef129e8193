"""End to end: a transfer Job the operator scheduled pulls files from OpenSSH's sshd.

The test plays the kubelet's part for the one Job it starts: it creates the Job
from the operator's CronJob (`kubectl create job --from=cronjob/...`), runs the
Pod the Job controller made from exactly its command, arguments, environment and
mounted files (tests/support/podrunner.py), and then reports the container's end
in the Pod's status with the termination message, as a kubelet would. The Job
controller marks the Job complete, and the operator copies the summary into the
Connection's status.lastTransfer.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

from kubernetes import client

from tests.conftest import Cluster
from tests.integration import operator_scenarios as scenarios
from tests.integration.transfer.transfer_servers import Sshd, SystemUser, put_remote
from tests.support.podrunner import materialize
from tests.support.wait import eventually


def connection_manifest(sshd: Sshd, folder: Path) -> str:
    return json.dumps({
        "apiVersion": "connectors.dev/v1alpha1", "kind": "Connection",
        "metadata": {"name": "partner-audiences"},
        "spec": {
            "direction": "Inbound", "dataType": "Audiences", "method": "SFTP",
            "methodology": "Pull", "credentialRef": {"name": "partner-login"},
            "filenamePattern": "audiences_*.csv", "schedule": "0 3 * * *",
            "remote": {"host": "127.0.0.1", "port": sshd.port, "folder": str(folder),
                       "hostKeys": [sshd.host_key_line]},
        },
    })


def credential_manifests(user: SystemUser, sshd: Sshd) -> str:
    """A key a third party issued: the partner authorized it and gave it to us."""
    secret = {
        "apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
        "metadata": {"name": "partner-issued-key"},
        # No username key: the operator passes the Credential's username to the job.
        "stringData": {"ssh-privatekey": sshd.client_key.read_text()},
    }
    credential = {
        "apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
        "metadata": {"name": "partner-login"},
        "spec": {"type": "PublicKey", "username": user.name,
                 "secretRef": {"name": "partner-issued-key"}},
    }
    return json.dumps(secret) + "\n---\n" + json.dumps(credential)


def play_kubelet(cluster: Cluster, namespace: str, job: str, workdir: Path,
                 data: Path) -> tuple[int, str]:
    core = client.CoreV1Api(cluster.api_client())
    pod = eventually(lambda: core.list_namespaced_pod(
        namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items, 60,
        f"the Job controller to create the Pod of {job}")[0]
    spec: dict[str, Any] = cluster.api_client().sanitize_for_serialization(pod.spec)
    local = materialize(cluster, namespace, spec, workdir, data)
    started = datetime.datetime.now(datetime.UTC)
    code = local.run(timeout=300)
    message = local.termination_log.read_text()
    finished = datetime.datetime.now(datetime.UTC)
    core.patch_namespaced_pod_status(pod.metadata.name, namespace, {"status": {
        "phase": "Succeeded" if code == 0 else "Failed",
        "containerStatuses": [{
            "name": spec["containers"][0]["name"], "image": spec["containers"][0]["image"],
            "imageID": "", "ready": False, "restartCount": 0,
            "state": {"terminated": {
                "exitCode": code, "reason": "Completed" if code == 0 else "Error",
                "message": message, "startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ"),
                "finishedAt": finished.strftime("%Y-%m-%dT%H:%M:%SZ")}},
        }],
    }})
    return code, local.log()


def test_scheduled_pull_lands_files_and_reports_last_transfer(
    crds: Cluster, e2e_namespace: str, sshd: Sshd, system_user: SystemUser,
    remote_dir: Path, tmp_path: Path,
) -> None:
    ns = e2e_namespace
    for i in range(3):
        put_remote(remote_dir, f"audiences_{i}.csv", f"id\n{i}\n".encode())
    put_remote(remote_dir, "unrelated.txt", b"not ours")
    scenarios.apply(crds, ns, credential_manifests(system_user, sshd))
    scenarios.apply(crds, ns, connection_manifest(sshd, remote_dir))
    scenarios.wait_condition(crds, ns, "partner-audiences", "True")

    data = tmp_path / "data"
    crds.kubectl("create", "job", "run-1", "--from=cronjob/transfer-partner-audiences",
                 "-n", ns)
    code, log = play_kubelet(crds, ns, "run-1", tmp_path / "run-1", data)
    assert code == 0, log
    home = data / "partner-audiences"
    assert sorted(p.name for p in home.glob("audiences_*.csv")) == [
        "audiences_0.csv", "audiences_1.csv", "audiences_2.csv"]
    assert not (home / "unrelated.txt").exists()
    assert (home / "receipt_audiences_0.csv.txt").exists()
    assert "BEGIN OPENSSH PRIVATE KEY" not in log

    def recorded(job: str) -> dict[str, Any] | None:
        connection = scenarios.get(crds, ns, "connections", "partner-audiences") or {}
        last = (connection.get("status") or {}).get("lastTransfer") or {}
        return last if last.get("source") == f"job/{job}" else None

    last = eventually(lambda: recorded("run-1"), 90,
                      "the operator to copy the Job's summary into status")
    assert last["outcome"] == "Succeeded"
    assert last["files"] == 3

    # The next run finds nothing new: the ledger on the data volume remembers.
    crds.kubectl("create", "job", "run-2", "--from=cronjob/transfer-partner-audiences",
                 "-n", ns)
    code, log = play_kubelet(crds, ns, "run-2", tmp_path / "run-2", data)
    assert code == 0, log
    second = eventually(lambda: recorded("run-2"), 90, "the second run's summary")
    assert second["files"] == 0
    assert second["outcome"] == "Succeeded"
