"""`kubectl connectors trigger` and `rotate` as a user runs them, through the real
kubectl, against a real operator on the control plane.

No kubelet runs here, so the tests report for the transfer pods what a kubelet
would (their phase and the termination message the job writes); the Job
controller, the operator and the plugin do the rest as on a real cluster.
"""

from __future__ import annotations

import base64
import json
import os
import stat
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.conftest import Cluster, harvest
from tests.integration import operator_scenarios as scenarios
from tests.support import secrets as secret_scan
from tests.support.operator import OperatorProcess, wait_until_watching
from tests.support.wait import eventually

EXAMPLES = scenarios.REPO / "examples"
EXTRA = """
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: paused-audiences}
spec:
  direction: Inbound
  dataType: Audiences
  method: SFTP
  methodology: Pull
  credentialRef: {name: shandalear-pull}
  suspend: true
  remote:
    host: sftp.shandalear.example
    folder: /paused
    hostKeys: ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk8s2rv++mP2HE7sJCttP3dpLMeUdqJy3KAu1b2tSyP"]
---
apiVersion: v1
kind: Secret
metadata: {name: issued-by-them}
stringData: {password: not-ours-to-rotate}
---
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: third-party}
spec: {type: Password, secretRef: {name: issued-by-them}}
"""
PULL = "shandalear-audiences"


@pytest.fixture(scope="module")
def ns(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(crds.kubeconfig, ["trig-*"], log).start()
    name = f"trig-{uuid.uuid4().hex[:8]}"
    try:
        wait_until_watching(crds, "trig-")
        crds.kubectl("create", "namespace", name)
        for path in ("01-inbound-push-sftp-conversions.yaml",
                     "02-inbound-pull-sftp-audiences.yaml"):
            scenarios.apply(crds, name, EXAMPLES / path)
        scenarios.apply(crds, name, EXTRA)
        for connection in ("acme-conversions", PULL):
            scenarios.wait_configured(crds, name, connection)
        scenarios.wait_condition(crds, name, "paused-audiences", "False", "Suspended")
        eventually(lambda: scenarios.read(crds, "CronJob", name, f"transfer-{PULL}"), 60,
                   "the transfer CronJob")
        yield name
    finally:
        operator.stop()
        harvest(crds, name)
        crds.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory, crds: Cluster) -> str:
    folder = tmp_path_factory.mktemp("bin")
    wrapper = folder / "kubectl-connectors"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m connectors.kubectl "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return os.pathsep.join([str(folder), str(Path(crds.kubectl_path).parent),
                            os.environ.get("PATH", "")])


def command(crds: Cluster, path: str, *args: str) -> list[str]:
    return [crds.kubectl_path, "connectors", *args]


def env_for(crds: Cluster, path: str) -> dict[str, str]:
    return {**os.environ, "KUBECONFIG": crds.kubeconfig, "PATH": path}


def plugin(crds: Cluster, path: str, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(command(crds, path, *args), env=env_for(crds, path), text=True,
                            capture_output=True, check=False, timeout=180)
    secret_scan.record(f"kubectl connectors {' '.join(args)}", result.stdout + result.stderr)
    return result


def jobs_of(crds: Cluster, namespace: str) -> list[Any]:
    batch = client.BatchV1Api(crds.api_client())
    return list(batch.list_namespaced_job(
        namespace, label_selector=f"connectors.dev/connection={PULL}").items)


def finish_pod(crds: Cluster, namespace: str, job: str, summary: dict[str, Any],
               phase: str) -> None:
    """What the kubelet reports when the transfer container ends: the pod's phase and
    the container's termination message (the job's one-line summary)."""
    core = client.CoreV1Api(crds.api_client())

    def pending_pod() -> str | None:
        pods = core.list_namespaced_pod(
            namespace, label_selector=f"batch.kubernetes.io/job-name={job}").items
        waiting = [p.metadata.name for p in pods if p.status.phase == "Pending"]
        return waiting[0] if waiting else None
    pod = eventually(pending_pod, 60, f"a pod of Job {job}")
    code = 0 if phase == "Succeeded" else 1
    status = {"phase": phase, "containerStatuses": [{
        "name": "transfer", "image": "connectors:test", "imageID": "", "ready": False,
        "restartCount": 0, "state": {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "message": json.dumps(summary) + "\n",
            "startedAt": "2026-01-27T09:30:00Z", "finishedAt": "2026-01-27T09:30:02Z"}}}]}
    crds.kubectl("patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": status}))


def summary(outcome: str, files: int, size: int, message: str = "") -> dict[str, Any]:
    return {"connection": PULL, "time": "2026-01-27T09:30:02Z", "files": files, "bytes": size,
            "skipped": 0, "failed": 0, "outcome": outcome, "message": message,
            "durationSeconds": 1.5}


def value_of(text: str, label: str) -> str:
    line = next((line for line in text.splitlines() if line.startswith(f"{label}:")), None)
    assert line is not None, f"no line {label!r} in {text}"
    return line[len(label) + 1:].strip()


def test_trigger_refuses_a_connection_the_partner_starts_and_a_suspended_one(
    crds: Cluster, ns: str, plugin_path: str
) -> None:
    partner = plugin(crds, plugin_path, "trigger", "acme-conversions", "-n", ns)
    assert (partner.returncode, partner.stdout) == (1, "")
    assert partner.stderr.startswith(
        "kubectl connectors: Connection acme-conversions is Inbound Push: the partner starts "
        "each transfer by uploading to the platform's listener, so there is nothing for the "
        "platform to trigger")
    paused = plugin(crds, plugin_path, "trigger", "paused-audiences", "-n", ns)
    assert (paused.returncode, paused.stdout) == (1, "")
    assert paused.stderr.startswith("kubectl connectors: Connection paused-audiences is "
                                    "suspended (spec.suspend: true)")
    assert jobs_of(crds, ns) == [], "a refusal creates nothing"


def test_trigger_makes_the_job_kubectl_create_job_from_would_make_and_follows_it(
    crds: Cluster, ns: str, plugin_path: str
) -> None:
    created = plugin(crds, plugin_path, "trigger", PULL, "-n", ns, "--no-follow", "-o", "json")
    assert created.returncode == 0, created.stderr
    answer = json.loads(created.stdout)
    assert (answer["followed"], answer["connection"]) == (False, PULL)
    name = answer["job"]
    assert name.startswith(f"transfer-{PULL}-manual-")
    assert len(name) <= 63
    batch = client.BatchV1Api(crds.api_client())
    job = batch.read_namespaced_job(name, ns)
    cronjob = batch.read_namespaced_cron_job(f"transfer-{PULL}", ns)
    owner = job.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "CronJob", cronjob.metadata.name, cronjob.metadata.uid, True)
    assert job.metadata.annotations["cronjob.kubernetes.io/instantiate"] == "manual"
    assert job.metadata.labels["connectors.dev/connection"] == PULL
    template = cronjob.spec.job_template.spec.template.spec.containers[0]
    container = job.spec.template.spec.containers[0]
    assert (container.image, container.args, container.env) == (
        template.image, template.args, template.env)
    assert job.spec.backoff_limit == cronjob.spec.job_template.spec.backoff_limit

    # While it runs, a second one is refused: two runs would share one ledger.
    busy = plugin(crds, plugin_path, "trigger", PULL, "-n", ns)
    assert busy.returncode == 1
    assert busy.stderr == (f"kubectl connectors: a transfer of Connection {PULL} is running "
                           f"now (Job {name}): follow it with kubectl get job {name} -n {ns} "
                           "--watch, and trigger again once it has finished\n")
    finish_pod(crds, ns, name, summary("Succeeded", 1, 5), "Succeeded")
    eventually(lambda: any(c.type == "Complete" and c.status == "True"
                           for c in batch.read_namespaced_job(name, ns).status.conditions or []),
               60, "the Job controller to see the pod succeed")

    # Followed: the plugin waits for the Job, then for the operator's record of it.
    time.sleep(1.1)  # the Job's name has the second in it
    env = env_for(crds, plugin_path)
    follower = subprocess.Popen(command(crds, plugin_path, "trigger", PULL, "-n", ns),
                                env=env, text=True, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE)
    try:
        second = eventually(lambda: [j.metadata.name for j in jobs_of(crds, ns)
                                     if j.metadata.name != name], 60, "the followed Job")[0]
        finish_pod(crds, ns, second, summary("Succeeded", 2, 10), "Succeeded")
        out, err = follower.communicate(timeout=120)
    finally:
        follower.kill()
    secret_scan.record("kubectl connectors trigger (followed)", out + err)
    assert follower.returncode == 0, err
    assert f"Job {second} created from CronJob transfer-{PULL}" in err
    assert value_of(out, "Job") == second
    assert value_of(out, "Outcome") == "Succeeded"
    assert value_of(out, "Files") == "2 files, 10 bytes; skipped 0, failed 0"
    assert value_of(out, "Duration") == "1.5 s"
    # What it printed is what the operator recorded in the Connection's status.
    last = (scenarios.get(crds, ns, "connections", PULL) or {})["status"]["lastTransfer"]
    assert (last["source"], last["files"], last["bytes"]) == (f"job/{second}", 2, 10)


def test_a_failed_transfer_is_exit_1_with_its_message(crds: Cluster, ns: str,
                                                      plugin_path: str) -> None:
    batch = client.BatchV1Api(crds.api_client())
    eventually(lambda: not [j for j in jobs_of(crds, ns)
                            if not any(c.status == "True" for c in j.status.conditions or [])],
               60, "no transfer running")
    before = {j.metadata.name for j in jobs_of(crds, ns)}
    time.sleep(1.1)
    follower = subprocess.Popen(command(crds, plugin_path, "trigger", PULL, "-n", ns, "-o",
                                        "json"), env=env_for(crds, plugin_path), text=True,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        job = eventually(lambda: [j.metadata.name for j in jobs_of(crds, ns)
                                  if j.metadata.name not in before], 60, "the Job")[0]
        # One try instead of the template's three, to keep the test short: retrying is
        # the Job controller's business, not the plugin's.
        batch.patch_namespaced_job(job, ns, {"spec": {"backoffLimit": 0}})
        finish_pod(crds, ns, job, summary("Failed", 0, 0, "login refused by "
                                          "sftp.shandalear.example: publickey"), "Failed")
        out, err = follower.communicate(timeout=120)
    finally:
        follower.kill()
    secret_scan.record("kubectl connectors trigger (failed)", out + err)
    assert follower.returncode == 1, err
    answer = json.loads(out)
    assert (answer["job"], answer["jobState"], answer["succeeded"]) == (job, "Failed", False)
    assert answer["lastTransfer"]["outcome"] == "Failed"
    assert answer["lastTransfer"]["message"] == ("login refused by sftp.shandalear.example: "
                                                 "publickey")
    assert answer["source"] == "status.lastTransfer"


def secret_data(crds: Cluster, namespace: str, name: str, key: str) -> str:
    secret = client.CoreV1Api(crds.api_client()).read_namespaced_secret(name, namespace)
    return base64.b64decode(secret.data[key]).decode()


def test_rotate_a_generated_password(crds: Cluster, ns: str, plugin_path: str) -> None:
    old = secret_data(crds, ns, "acme-sftp-credential", "password")
    result = plugin(crds, plugin_path, "rotate", "acme-sftp", "-n", ns)
    assert result.returncode == 0, result.stderr
    new = secret_data(crds, ns, "acme-sftp-credential", "password")
    changed = old != new
    assert changed, "the Secret holds the same password"
    for value in (old, new):
        secret_scan.assert_absent(value, result.stdout + result.stderr, "rotate's output")
    credential = scenarios.get(crds, ns, "credentials", "acme-sftp") or {}
    rotated_at = credential["status"]["rotatedAt"]
    assert value_of(result.stdout, "Rotated at") == f"{rotated_at} (before: never rotated)"
    assert value_of(result.stdout, "What changed").startswith(
        "a new password in Secret acme-sftp-credential; the old one no longer logs in")
    assert value_of(result.stdout, "Next") == (
        "acme-conversions: send the partner the new password to log in with it: kubectl "
        f"connectors handoff acme-conversions -n {ns} --reveal")
    # Right away again: a rotation within the same second still shows as a change.
    again = plugin(crds, plugin_path, "rotate", "acme-sftp", "-n", ns, "-o", "json")
    assert again.returncode == 0, again.stderr
    answer = json.loads(again.stdout)
    assert answer["previousRotatedAt"] == rotated_at
    assert answer["rotatedAt"] > rotated_at
    newest = secret_data(crds, ns, "acme-sftp-credential", "password")
    assert newest not in (old, new)


def test_rotate_a_generated_key_pair(crds: Cluster, ns: str, plugin_path: str) -> None:
    before = (scenarios.get(crds, ns, "credentials", "shandalear-pull") or {})["status"]
    result = plugin(crds, plugin_path, "rotate", "shandalear-pull", "-n", ns)
    assert result.returncode == 0, result.stderr
    after = (scenarios.get(crds, ns, "credentials", "shandalear-pull") or {})["status"]
    assert after["publicKey"] != before["publicKey"]
    assert value_of(result.stdout, "What changed") == (
        "a new key pair in Secret shandalear-pull-credential: public key "
        f"{before['fingerprints'][0]} -> {after['fingerprints'][0]}")
    assert value_of(result.stdout, "Public key") == after["publicKey"]
    assert "PRIVATE KEY" not in result.stdout
    # Both Connections that use it, each with the command that shows the new key.
    assert f"kubectl connectors handoff paused-audiences -n {ns} shows it" in result.stdout
    assert f"kubectl connectors handoff {PULL} -n {ns} shows it" in result.stdout


def test_rotate_refuses_a_secret_a_third_party_issued(crds: Cluster, ns: str,
                                                      plugin_path: str) -> None:
    result = plugin(crds, plugin_path, "rotate", "third-party", "-n", ns)
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr.startswith(
        "kubectl connectors: Credential third-party uses Secret issued-by-them "
        "(spec.secretRef), whose password or key a third party issued")
    annotations = ((scenarios.get(crds, ns, "credentials", "third-party") or {})
                   ["metadata"].get("annotations") or {})
    assert "connectors.dev/rotate" not in annotations
    missing = plugin(crds, plugin_path, "rotate", "nope", "-n", ns)
    assert missing.stderr == f"kubectl connectors: Credential nope not found in namespace {ns}\n"
