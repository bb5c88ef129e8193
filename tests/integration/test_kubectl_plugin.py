"""`kubectl connectors` as a user runs it: through the real kubectl, which finds the
plugin on PATH, against Connections the real operator made Ready.

The password and private key are in the output only with --reveal: those
outputs are checked here without ever being printed, and every other output is
handed to the suite's secret scan (tests/support/secrets.py).
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
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
FTP = """
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: initrode-ftp}
spec: {type: Password, username: initrode}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: initrode-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Push
  credentialRef: {name: initrode-ftp}
  filenamePattern: "clicks_*.csv"
"""
READY = ("acme-conversions", "shandalear-audiences", "globex-audiences", "initrode-clicks")


@pytest.fixture(scope="module")
def ns(crds: Cluster, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A namespace with four Connections the real operator made Ready."""
    log = tmp_path_factory.mktemp("operator") / "operator.log"
    operator = OperatorProcess(crds.kubeconfig, ["plug-*"], log).start()
    name = f"plug-{uuid.uuid4().hex[:8]}"
    try:
        wait_until_watching(crds, "plug-")
        crds.kubectl("create", "namespace", name)
        for path in ("01-inbound-push-sftp-conversions.yaml", "02-inbound-pull-sftp-audiences.yaml",
                     "03-inbound-push-email-audiences.yaml"):
            scenarios.apply(crds, name, EXAMPLES / path)
        scenarios.apply(crds, name, FTP)
        for connection in READY:
            scenarios.wait_configured(crds, name, connection)
        yield name
    finally:
        operator.stop()
        harvest(crds, name)
        crds.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory, crds: Cluster) -> str:
    """A PATH on which kubectl finds `kubectl-connectors` (as pip installs it) and
    the test cluster's kubectl."""
    folder = tmp_path_factory.mktemp("bin")
    wrapper = folder / "kubectl-connectors"
    wrapper.write_text(f'#!/bin/sh\nexec {sys.executable} -m connectors.kubectl "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return os.pathsep.join([str(folder), str(Path(crds.kubectl_path).parent),
                            os.environ.get("PATH", "")])


def kubectl_connectors(crds: Cluster, path: str, *args: str,
                       ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "KUBECONFIG": crds.kubeconfig, "PATH": path}
    return subprocess.run([crds.kubectl_path, "connectors", *args], env=env, text=True,
                          capture_output=True, check=False, timeout=60)


def shown(crds: Cluster, path: str, *args: str) -> list[str]:
    """The lines of a run that must hold no secret: the secret scan checks them too."""
    result = kubectl_connectors(crds, path, *args)
    assert result.returncode == 0, result.stderr
    secret_scan.record(f"kubectl connectors {' '.join(args)}", result.stdout + result.stderr)
    return result.stdout.splitlines()


def value_of(lines: list[str], label: str) -> str:
    line = next((line for line in lines if line.startswith(f"{label}:")), None)
    assert line is not None, f"no line {label!r} in {lines}"
    return line[len(label) + 1:].strip()


def test_handoff_of_a_password_connection(crds: Cluster, ns: str, plugin_path: str) -> None:
    lines = shown(crds, plugin_path, "handoff", "acme-conversions", "-n", ns)
    connection = scenarios.get(crds, ns, "connections", "acme-conversions")
    assert connection is not None
    endpoint = connection["status"]["endpoint"]
    assert value_of(lines, "Connection") == "acme-conversions (Acme Analytics conversions)"
    # No node here: the listener cannot run, and the hand-off says so.
    ready = scenarios.condition(connection, "Ready")
    assert value_of(lines, "Ready") == f"False ({ready['reason']}): {ready['message']}"
    assert value_of(lines, "Protocol") == "SFTP"
    assert value_of(lines, "Host") == f"connectors-sftp.{ns}.svc" == endpoint["host"]
    assert value_of(lines, "Port") == "22"
    assert value_of(lines, "Username") == "acme"
    assert value_of(lines, "Folder").startswith("/ (your home folder: upload files there)")
    assert value_of(lines, "File names") == "conversions_*.csv"
    assert value_of(lines, "SFTP host key") == endpoint["hostKeyFingerprint"]
    assert value_of(lines, "Password").startswith("not shown: add --reveal")
    password = scenarios.secret_value(crds, ns, "acme-sftp-credential", "password")
    secret_scan.assert_absent(password, "\n".join(lines), "handoff without --reveal")
    assert "revealedAt" not in (scenarios.get(crds, ns, "credentials", "acme-sftp")
                                or {}).get("status", {})
    as_json = json.loads("\n".join(shown(crds, plugin_path, "handoff", "acme-conversions",
                                         "-n", ns, "-o", "json")))
    assert (as_json["host"], as_json["port"], as_json["username"]) == (endpoint["host"], 22,
                                                                      "acme")
    assert "password" not in as_json
    assert as_json["secret"].startswith("not shown")


def test_reveal_shows_the_password_once_recorded(crds: Cluster, ns: str,
                                                 plugin_path: str) -> None:
    result = kubectl_connectors(crds, plugin_path, "handoff", "acme-conversions", "-n", ns,
                                "--reveal", "-o", "json")
    assert result.returncode == 0, result.stderr
    password = scenarios.secret_value(crds, ns, "acme-sftp-credential", "password")
    revealed = json.loads(result.stdout)
    # Compared, never printed: a failure message must not carry the password.
    matches = revealed.get("password") == password
    assert matches, "the --reveal output does not hold the Secret's password"
    credential = scenarios.get(crds, ns, "credentials", "acme-sftp")
    assert credential is not None
    status = credential["status"]
    assert status["revealedAt"].endswith("Z")
    whoami = json.loads(crds.kubectl("auth", "whoami", "-o", "json").stdout)
    assert status["revealedBy"] == whoami["status"]["userInfo"]["username"]
    events = client.CoreV1Api(crds.api_client()).list_namespaced_event(
        ns, field_selector="involvedObject.kind=Credential,involvedObject.name=acme-sftp").items
    revealed_events = [e for e in events if e.reason == "SecretRevealed"]
    assert len(revealed_events) == 1
    assert "password in Secret acme-sftp-credential was shown to" in revealed_events[0].message
    secret_scan.assert_absent(password, revealed_events[0].message, "the reveal event")
    # The operator keeps the record when it next writes the Credential's status.
    generation = credential["metadata"]["generation"] + 1
    crds.kubectl("patch", "credential", "acme-sftp", "-n", ns, "--type=merge",
                 "-p", json.dumps({"spec": {"description": "edited after the reveal"}}))

    def written() -> dict[str, Any] | None:
        body = scenarios.get(crds, ns, "credentials", "acme-sftp") or {}
        return body if body.get("status", {}).get("observedGeneration") == generation else None
    again = eventually(written, 60, "the operator to write the edited Credential's status")
    assert (again["status"]["revealedAt"], again["status"]["revealedBy"]) == (
        status["revealedAt"], status["revealedBy"])
    lines = shown(crds, plugin_path, "handoff", "acme-conversions", "-n", ns)
    assert value_of(lines, "Last revealed") == f"{status['revealedAt']} to {status['revealedBy']}"


def test_handoff_of_a_key_connection(crds: Cluster, ns: str, plugin_path: str) -> None:
    lines = shown(crds, plugin_path, "handoff", "shandalear-audiences", "-n", ns)
    credential = scenarios.get(crds, ns, "credentials", "shandalear-pull")
    assert credential is not None
    assert value_of(lines, "Protocol") == "SFTP"
    assert value_of(lines, "Your server") == "sftp.shandalear.example"
    assert value_of(lines, "Port") == "22"
    assert value_of(lines, "Username") == "platform"
    assert value_of(lines, "Your folder") == "/home/ShandaLear/Audiences"
    assert value_of(lines, "Schedule") == "0 * * * *"
    assert value_of(lines, "Public key to authorize") == credential["status"]["publicKey"]
    assert value_of(lines, "Public key fingerprint") == credential["status"]["fingerprints"][0]
    private = scenarios.secret_value(crds, ns, "shandalear-pull-credential", "ssh-privatekey")
    for line in private.splitlines():
        secret_scan.assert_absent(line, "\n".join(lines), "handoff without --reveal")
    result = kubectl_connectors(crds, plugin_path, "handoff", "shandalear-audiences", "-n", ns,
                                "--reveal")
    assert result.returncode == 0, result.stderr
    holds_key = private.strip() in result.stdout
    assert holds_key, "the --reveal output does not hold the private key"
    assert "Private key:" in result.stdout


def test_handoff_of_email_and_ftp_shows_the_certificate_to_pin(
    crds: Cluster, ns: str, plugin_path: str, tmp_path: Path
) -> None:
    certificate = tmp_path / "tls.crt"
    certificate.write_text(scenarios.secret_value(crds, ns, "connectors-listener-tls", "tls.crt"))
    openssl = subprocess.run(["openssl", "x509", "-in", str(certificate), "-noout",
                              "-fingerprint", "-sha256", "-enddate"],
                             capture_output=True, text=True, check=True)
    expected = dict(line.split("=", 1) for line in openssl.stdout.splitlines())
    email = shown(crds, plugin_path, "handoff", "globex-audiences", "-n", ns)
    assert value_of(email, "Send to") == "globex-audiences@connectors.local"
    assert value_of(email, "Username") == "globex"
    assert value_of(email, "Attachments").startswith("every attachment must match "
                                                      "audiences_*.csv")
    ftp = shown(crds, plugin_path, "handoff", "initrode-clicks", "-n", ns)
    assert value_of(ftp, "Protocol").startswith("FTPS: FTP with explicit TLS")
    assert value_of(ftp, "Port") == "21"
    # OpenSSL 3 says "sha256 Fingerprint", 1.1 "SHA256 Fingerprint".
    fingerprint = next(v for k, v in expected.items() if k.lower() == "sha256 fingerprint")
    for lines in (email, ftp):
        assert value_of(lines, "TLS certificate SHA-256") == fingerprint
        # notAfter reads "Nov 27 01:02:03 2035 GMT": the year is enough to tie the two.
        assert value_of(lines, "TLS certificate expires")[:4] == expected["notAfter"].split()[3]
    assert not any("PRIVATE KEY" in line for line in email + ftp)


def test_status_table_and_json(crds: Cluster, ns: str, plugin_path: str) -> None:
    lines = shown(crds, plugin_path, "status", "-n", ns)
    assert lines[0].split() == ["NAME", "METHOD", "DIRECTION", "METHODOLOGY", "READY", "REASON",
                                "LAST", "TRANSFER", "OUTCOME", "FILES", "BYTES"]
    rows = {line.split()[0]: line.split() for line in lines[1:]}
    assert set(READY) <= set(rows)
    listener = scenarios.condition(scenarios.get(crds, ns, "connections", "acme-conversions"),
                                   "Ready")
    assert rows["acme-conversions"][1:6] == ["SFTP", "Inbound", "Push", "False",
                                             listener["reason"]]
    assert listener["reason"] in scenarios.NO_NODE
    assert rows["shandalear-audiences"][1:6] == ["SFTP", "Inbound", "Pull", "True", "Ready"]
    table = json.loads("\n".join(shown(crds, plugin_path, "status", "-n", ns, "-o", "json")))
    assert {r["name"] for r in table} >= set(READY)
    assert all(r["namespace"] == ns and r["lastTransfer"] == "-" for r in table)
    every = shown(crds, plugin_path, "status", "-A")
    assert every[0].split()[:2] == ["NAMESPACE", "NAME"]
    assert any(line.split()[:2] == [ns, "acme-conversions"] for line in every[1:])


def test_unknown_connection_is_one_line(crds: Cluster, ns: str, plugin_path: str) -> None:
    result = kubectl_connectors(crds, plugin_path, "handoff", "nope", "-n", ns)
    assert result.returncode == 1
    assert result.stderr == f"kubectl connectors: Connection nope not found in namespace {ns}\n"


PROCESSOR_POD = """
apiVersion: v1
kind: Pod
metadata:
  name: connectors-processor-0
  labels: {app.kubernetes.io/component: processor}
spec:
  automountServiceAccountToken: false
  containers: [{name: processor, image: connectors:test}]
"""


def set_pod_status(crds: Cluster, namespace: str, name: str, status: dict[str, Any]) -> None:
    """What a kubelet would report: there is none here to do it."""
    crds.kubectl("patch", "pod", name, "-n", namespace, "--subresource=status", "--type=merge",
                 "-p", json.dumps({"status": status}))


def test_submissions_without_a_running_processor_is_one_line(crds: Cluster, plugin_path: str,
                                                             namespace: str) -> None:
    """The exec itself needs a node (the node tests); here, the plugin's choice of
    pod, and its one-line errors when there is none to exec in."""
    advice = f"check it with kubectl get deploy connectors-processor -n {namespace}\n"
    none = f"kubectl connectors: namespace {namespace} has no running processor to read the " \
           "submission history from"

    def submissions(*args: str) -> subprocess.CompletedProcess[str]:
        result = kubectl_connectors(crds, plugin_path, "submissions", "acme-conversions",
                                    "-n", namespace, *args)
        assert (result.returncode, result.stdout) == (1, ""), result.stderr
        return result

    assert submissions("--failed").stderr == f"{none}: {advice}"
    # The namespace's default ServiceAccount, which a pod needs, comes a moment later.
    eventually(lambda: crds.kubectl("create", "-n", namespace, "-f", "-",
                                    input=PROCESSOR_POD, check=False).returncode == 0,
               60, "the processor pod to be created")
    pod = "connectors-processor-0"
    assert submissions().stderr == f"{none} (pod {pod} is Pending): {advice}"
    set_pod_status(crds, namespace, pod, {"phase": "Running"})
    assert submissions().stderr == f"{none} (pod {pod} is Running, not Ready): {advice}"
    # Running and Ready: the plugin picks it and asks for the exec, which the API
    # server refuses for want of a node, and the refusal is one line too.
    set_pod_status(crds, namespace, pod, {"phase": "Running",
                                          "conditions": [{"type": "Ready", "status": "True"}]})
    assert submissions("--id", "3").stderr == (
        f"kubectl connectors: cannot run connectors submissions in pod {pod}: HTTP 400: pod "
        f"{pod} does not have a host assigned\n")
