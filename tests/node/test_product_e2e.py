"""The product on the real node, as a platform team runs it.

The image built here (`make image`) is imported into the node's containerd,
the chart is installed with helm (the operator runs as a pod under the chart's
ServiceAccount and RBAC), and partners' real clients on the host reach the
listener pods through their NodePorts: OpenSSH sftp, curl over FTPS, swaks with
STARTTLS (as a mail server on port 25, and logged in on the submission port).
A transfer Job made from the operator's CronJob runs as a pod and
pulls from a real sshd on the host.

This file sorts before test_teardown.py, which stops the session's node.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import http.server
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from connectors.devcluster import NodeCluster
from connectors.ports import LISTENER_CONTAINER_PORTS
from tests.integration.sinks.conftest import (  # noqa: F401 - fixtures
    Receiver,
    SeaweedFS,
    bucket,
    seaweedfs,
)
from tests.integration.sinks.conftest import _handler as receiver_handler
from tests.integration.transfer.transfer_servers import (  # noqa: F401 - fixtures
    CuttingProxy,
    Sshd,
    SystemUser,
    put_remote,
    remote_dir,
    sshd,
    system_user,
)
from tests.node.cluster import exec_in, wait_for
from tests.support import secrets as secret_scan
from tests.support.conversions import conversions_file

pytestmark = pytest.mark.timeout(900)

REPO = Path(__file__).resolve().parents[2]
RELEASE_NAMESPACE = "connectors-system"
NODE_PORTS = {"sftp": 30022, "ftp": 30021, "smtp": 30025, "submission": 30587}
EMAIL_DOMAIN = "partners.example"


@dataclass
class Product:
    cluster: NodeCluster
    helm: str

    def kubectl(self, *args: str, check: bool = True,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.cluster.kubectl(*args, check=check, input=input)

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        shown = self.kubectl("get", kind, name, "-n", namespace, "-o", "json", check=False)
        return json.loads(shown.stdout) if shown.returncode == 0 else None

    def secret(self, namespace: str, name: str, key: str) -> str:
        secret = self.get("secret", namespace, name)
        assert secret is not None, f"Secret {name} is missing"
        value = base64.b64decode(secret["data"][key]).decode()
        if secret_scan.is_secret_key(key):
            secret_scan.remember(value)
        return value

    def condition(self, namespace: str, connection: str, kind: str) -> dict[str, Any]:
        body = self.get("connection", namespace, connection) or {}
        for item in (body.get("status") or {}).get("conditions") or []:
            if item["type"] == kind:
                return dict(item)
        return {}


def build(script: str) -> str:
    """Runs a hack/ build script; its last line names what it built."""
    result = subprocess.run([str(REPO / script)], check=False, capture_output=True, text=True,
                            timeout=3000)
    if result.returncode != 0:
        raise AssertionError(f"{script} failed: {result.stderr.strip()[-2000:]}")
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def product(node_cluster: NodeCluster) -> Iterator[Product]:
    archive = build("hack/image/build.sh")
    node_cluster.import_image(archive)
    helm = build("hack/helm/build.sh")
    ip = node_cluster.node_ip
    values = [
        "image.repository=localhost/connectors", "image.tag=dev", "image.pullPolicy=Never",
        "listeners.serviceType=NodePort", f"listeners.externalHost={ip}",
        f"listeners.ftpMasqueradeAddress={ip}", "data.storageClass=local-path",
        f"operator.emailDomain={EMAIL_DOMAIN}", "operator.resyncSeconds=30",
        *(f"listeners.nodePorts.{protocol}={port}" for protocol, port in NODE_PORTS.items()),
    ]
    installed = subprocess.run(
        [helm, "install", "connectors", str(REPO / "charts/connectors"),
         "--kubeconfig", node_cluster.kubeconfig, "--namespace", RELEASE_NAMESPACE,
         "--create-namespace", "--wait", "--timeout", "180s",
         *(arg for value in values for arg in ("--set", value))],
        check=False, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr
    yield Product(node_cluster, helm)
    subprocess.run([helm, "uninstall", "connectors", "--kubeconfig", node_cluster.kubeconfig,
                    "--namespace", RELEASE_NAMESPACE, "--wait"], check=False,
                   capture_output=True, timeout=300)


def operator_pod(product: Product) -> dict[str, Any]:
    pods = json.loads(product.kubectl("get", "pods", "-n", RELEASE_NAMESPACE, "-l",
                                      "app.kubernetes.io/component=operator", "-o",
                                      "json").stdout)["items"]
    running = [p for p in pods if p["status"].get("phase") == "Running"
               and not p["metadata"].get("deletionTimestamp")]
    assert running, "no operator pod is running"
    return dict(running[0])


def ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True"
               for c in pod["status"].get("conditions") or [])


def new_namespace(product: Product, prefix: str) -> str:
    name = f"{prefix}-{os.urandom(3).hex()}"
    product.kubectl("create", "namespace", name)
    return name


def listener_pod(product: Product, namespace: str, protocol: str) -> dict[str, Any]:
    pods = json.loads(product.kubectl("get", "pods", "-n", namespace, "-l",
                                      f"connectors.dev/listener={protocol}", "-o",
                                      "json").stdout)["items"]
    live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
    return dict(live[0]) if live else {}


def wait_listener_ready(product: Product, namespace: str, protocol: str) -> dict[str, Any]:
    """The listener pod Ready and its NodePort answering: kube-proxy programs the
    node port a moment after the Service appears, independently of the pod."""
    wait_for(f"the {protocol} listener pod to be Ready",
             lambda: ready(listener_pod(product, namespace, protocol)) if listener_pod(
                 product, namespace, protocol) else False, timeout=180)
    wait_node_port(product, protocol)
    return listener_pod(product, namespace, protocol)


def wait_node_port(product: Product, name: str) -> None:
    def answers() -> bool:
        try:
            with socket.create_connection((product.cluster.node_ip, NODE_PORTS[name]),
                                          timeout=2):
                return True
        except OSError:
            return False
    wait_for(f"the {name} node port to answer", answers, timeout=60)


def volume_path(product: Product, namespace: str) -> Path:
    """The folder on this machine behind the namespace's data volume."""
    claim = product.get("pvc", namespace, "connectors-data")
    assert claim is not None
    assert claim["status"].get("phase") == "Bound", "the data volume claim is not bound"
    volume = product.get("pv", "", claim["spec"]["volumeName"]) or {}
    spec = volume["spec"]
    return Path((spec.get("hostPath") or spec.get("local"))["path"])


def wait_last_transfer(product: Product, namespace: str, connection: str,
                       size: int) -> dict[str, Any]:
    """Waits for status.lastTransfer to show one file of `size` bytes."""
    def shown() -> bool:
        body = product.get("connection", namespace, connection) or {}
        last = (body.get("status") or {}).get("lastTransfer") or {}
        return (last.get("outcome") == "Succeeded" and last.get("files") == 1
                and last.get("bytes") == size)
    wait_for(f"status.lastTransfer of {connection} to show {size} bytes", shown, timeout=90)
    body = product.get("connection", namespace, connection) or {}
    return dict(body["status"]["lastTransfer"])


def assert_landed(folder: Path, name: str, content: bytes) -> None:
    assert (folder / name).read_bytes() == content
    receipt = json.loads((folder / f"receipt_{name}.txt").read_text())
    assert receipt["sha256"] == hashlib.sha256(content).hexdigest()
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".upload-")]


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package needed)")
    return path


# ---- the operator --------------------------------------------------------------------------


def test_operator_pod_runs_confined(product: Product) -> None:
    """helm install -> the operator pod is Ready, non-root, read-only, no capabilities."""
    pod = operator_pod(product)
    assert ready(pod)
    checks = exec_in(product.cluster, RELEASE_NAMESPACE, pod["metadata"]["name"], "sh", "-c",
                     "id -u; grep CapEff /proc/self/status; touch /probe 2>&1 || true")
    lines = checks.stdout.splitlines()
    assert lines[:1] == ["10001"], f"exit {checks.returncode}: {checks.stdout}{checks.stderr}"
    assert lines[1].split()[1] == "0000000000000000"
    assert "Read-only file system" in checks.stdout


# ---- listeners through their NodePorts -----------------------------------------------------


@pytest.fixture(scope="module")
def partners(product: Product) -> str:
    """One namespace with the SFTP, FTP and Email listeners' Connections."""
    namespace = new_namespace(product, "e2e-partners")
    product.kubectl("apply", "-n", namespace, "-f",
                    str(REPO / "examples/01-inbound-push-sftp-conversions.yaml"))
    product.kubectl("apply", "-n", namespace, "-f",
                    str(REPO / "examples/03-inbound-push-email-audiences.yaml"))
    product.kubectl("apply", "-n", namespace, "-f", "-", input="""
apiVersion: connectors.dev/v1alpha1
kind: Credential
metadata: {name: initech-ftp}
spec: {type: Password, username: initech}
---
apiVersion: connectors.dev/v1alpha1
kind: Connection
metadata: {name: initech-clicks}
spec:
  direction: Inbound
  dataType: Clicks
  method: FTP
  methodology: Push
  credentialRef: {name: initech-ftp}
  filenamePattern: "clicks_*.csv"
""")
    return namespace


def test_listener_pods_run_confined(product: Product, partners: str) -> None:
    for protocol in ("sftp", "ftp", "smtp"):
        pod = wait_listener_ready(product, partners, protocol)
        checks = exec_in(product.cluster, partners, pod["metadata"]["name"], "sh", "-c",
                         "id -u; grep CapEff /proc/self/status; touch /probe 2>&1 || true")
        lines = checks.stdout.splitlines()
        assert lines[0] == "10001", (protocol, checks.stdout + checks.stderr)
        assert lines[1].split()[1] == "0000000000000000"
        assert "Read-only file system" in checks.stdout


def sftp_put(product: Product, namespace: str, name: str, content: bytes,
             workdir: Path, address: tuple[str, int] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    """OpenSSH sftp as the partner acme: through the node port, or to `address`."""
    need("sshpass")
    password = product.secret(namespace, "acme-sftp-credential", "password")
    public = product.secret(namespace, "connectors-sftp-hostkey", "ssh_host_ed25519_key.pub")
    ip, port = address or (product.cluster.node_ip, NODE_PORTS["sftp"])
    known = workdir / "known_hosts"
    known.write_text(f"[{ip}]:{port} {' '.join(public.split()[:2])}\n")
    source = workdir / name
    source.write_bytes(content)
    return subprocess.run(
        ["sshpass", "-e", "sftp", "-o", "BatchMode=no", "-o", "PubkeyAuthentication=no",
         "-o", f"UserKnownHostsFile={known}", "-o", "StrictHostKeyChecking=yes",
         "-P", str(port), "-b", "-", f"acme@{ip}"],
        input=f"put {source} {name}\n", env={**os.environ, "SSHPASS": password},
        capture_output=True, text=True, timeout=120, check=False)


def test_sftp_upload_through_the_node_port(product: Product, partners: str,
                                           tmp_path: Path) -> None:
    wait_listener_ready(product, partners, "sftp")
    content = b"order,amount\n1,9.99\n" * 1000
    result = sftp_put(product, partners, "conversions_e2e.csv", content, tmp_path)
    assert result.returncode == 0, result.stderr
    assert_landed(volume_path(product, partners) / "acme-conversions", "conversions_e2e.csv",
                  content)
    last = wait_last_transfer(product, partners, "acme-conversions", len(content))
    assert last["time"]


def sftp_get(product: Product, namespace: str, name: str,
             workdir: Path) -> subprocess.CompletedProcess[str]:
    """OpenSSH sftp as the partner acme: fetch `name` through the node port."""
    password = product.secret(namespace, "acme-sftp-credential", "password")
    ip = product.cluster.node_ip
    return subprocess.run(
        ["sshpass", "-e", "sftp", "-o", "BatchMode=no", "-o", "PubkeyAuthentication=no",
         "-o", f"UserKnownHostsFile={workdir / 'known_hosts'}", "-o",
         "StrictHostKeyChecking=yes", "-P", str(NODE_PORTS["sftp"]), "-b", "-", f"acme@{ip}"],
        input=f"get {name} {workdir / name}\n", env={**os.environ, "SSHPASS": password},
        capture_output=True, text=True, timeout=120, check=False)


def test_an_upload_is_checked_and_answered_in_the_partner_s_folder(
        product: Product, partners: str, tmp_path: Path) -> None:
    """A conversions file with 3 bad rows of 1,000: the partner finds
    result_<name>.csv naming them in their folder, status.submissions and
    `kubectl describe` show the counts, and `kubectl connectors submissions`
    lists the file from the processor's history."""
    wait_listener_ready(product, partners, "sftp")
    content = conversions_file(1000, bad_lines=(10, 500, 1001))
    sent = sftp_put(product, partners, "conversions_checked.csv", content, tmp_path)
    assert sent.returncode == 0, sent.stderr
    result_name = "result_conversions_checked.csv.csv"
    started = time.monotonic()
    wait_for("the result file in the partner's folder",
             lambda: sftp_get(product, partners, result_name, tmp_path).returncode == 0,
             timeout=180)
    log_line = f"result after {time.monotonic() - started:.1f} s"
    rows = list(csv.DictReader(io.StringIO((tmp_path / result_name).read_text())))
    assert [(r["line"], r["column"]) for r in rows if r["error_type"] != "summary"] == [
        ("10", "Amount"), ("500", "Amount"), ("1001", "Amount")], log_line
    summary = {r["code"]: r["message"] for r in rows if r["error_type"] == "summary"}
    assert (summary["rows_accepted"], summary["rows_rejected"]) == ("997", "3")

    def counted() -> dict[str, Any]:
        body = product.get("connection", partners, "acme-conversions") or {}
        return dict((body.get("status") or {}).get("submissions") or {})
    wait_for("status.submissions to count the file",
             lambda: counted().get("rowsRejected", 0) >= 3, timeout=60)
    last = counted()["last"][0]
    assert (last["name"], last["status"], last["rowsAccepted"], last["rowsRejected"]) == (
        "conversions_checked.csv", "Complete", 997, 3)
    assert last["firstError"].startswith("line 10: Amount:")
    described = product.kubectl("describe", "connection", "acme-conversions", "-n",
                                partners).stdout
    assert "Rows Rejected" in described
    assert "RowsRejected" in described  # the Warning event

    listed = subprocess.run(
        [sys.executable, "-m", "connectors.kubectl", "submissions", "acme-conversions",
         "-n", partners, "--kubeconfig", product.cluster.kubeconfig, "--failed", "-o", "json"],
        capture_output=True, text=True, timeout=120, check=False)
    assert listed.returncode == 0, listed.stderr
    assert "conversions_checked.csv" in listed.stdout


def test_accepted_uploads_reach_the_webhook_and_the_bucket_once(
        product: Product, partners: str, tmp_path: Path,
        seaweedfs: SeaweedFS,  # noqa: F811
        bucket: str) -> None:  # noqa: F811
    """spec.submissions.deliverTo from the processor pod: a CloudEvents receiver
    and a SeaweedFS bucket on the host, reached through the node's address, each
    get an accepted upload exactly once, and status says so."""
    ip = product.cluster.node_ip
    receiver = Receiver(f"http://{ip}:0/events")
    server = http.server.ThreadingHTTPServer((ip, 0), receiver_handler(receiver))
    receiver.url = f"http://{ip}:{server.server_address[1]}/events"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    relay = CuttingProxy(int(seaweedfs.endpoint.rsplit(":", 1)[1]), limit=0,
                         cut_connections=0, listen=ip)
    try:
        product.kubectl("apply", "-n", partners, "-f", "-", input=json.dumps({
            "apiVersion": "v1", "kind": "List", "items": [
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "bucket-key"},
                 "stringData": {"accessKeyId": seaweedfs.admin.access_key_id,
                                "secretAccessKey": seaweedfs.admin.secret_access_key}},
                {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hook-key"},
                 "stringData": {"hmac-key": "e2e-signing-key"}}]}))
        product.kubectl("patch", "connection", "acme-conversions", "-n", partners,
                        "--type=merge", "-p", json.dumps({"spec": {"submissions": {
                            "deliverTo": [
                                {"webhook": {"url": receiver.url,
                                             "secretRef": {"name": "hook-key"}}},
                                {"objectStore": {"endpoint": f"http://{ip}:{relay.port}",
                                                 "bucket": bucket,
                                                 "credentialsSecretRef": {
                                                     "name": "bucket-key"}}}]}}}))

        def processor_with_sinks() -> bool:
            pods = json.loads(product.kubectl(
                "get", "pods", "-n", partners, "-l", "app.kubernetes.io/component=processor",
                "-o", "json").stdout)["items"]
            return any(ready(p) and not p["metadata"].get("deletionTimestamp")
                       and any((v.get("secret") or {}).get("secretName") == "bucket-key"
                               for v in p["spec"].get("volumes") or []) for p in pods)
        wait_for("a processor pod with the sinks' Secrets", processor_with_sinks, timeout=180)

        content = conversions_file(500, bad_lines=(7,))
        sent = sftp_put(product, partners, "conversions_handed.csv", content, tmp_path)
        assert sent.returncode == 0, sent.stderr

        def posted() -> list[Any]:
            return [r for r in receiver.requests
                    if r.headers.get("ce-subject") == "conversions_handed.csv"]

        def stored() -> list[str]:
            listing = seaweedfs.client().list_objects_v2(Bucket=bucket)
            return [o["Key"] for o in listing.get("Contents", [])
                    if o["Key"].endswith("/conversions_handed.csv")]
        wait_for("the webhook and the bucket to get the file",
                 lambda: bool(posted()) and bool(stored()), timeout=180)
        time.sleep(5)  # room for a duplicate to show up
        [event] = posted()
        assert event.body == content
        assert [key.split("/")[1] for key in stored()] == [event.headers["ce-id"]]

        def shown() -> list[dict[str, Any]]:
            body = product.get("connection", partners, "acme-conversions") or {}
            last = ((body.get("status") or {}).get("submissions") or {}).get("last") or []
            mine = [r for r in last if r["name"] == "conversions_handed.csv"]
            return list(mine[0].get("deliveries") or []) if mine else []
        wait_for("status to show both deliveries",
                 lambda: sorted(d["status"] for d in shown()) == ["Delivered", "Delivered"],
                 timeout=60)
    finally:
        product.kubectl("patch", "connection", "acme-conversions", "-n", partners,
                        "--type=json", "-p", json.dumps([
                            {"op": "remove", "path": "/spec/submissions"}]), check=False)
        relay.close()
        server.shutdown()
        server.server_close()


def test_ftps_upload_through_the_node_port(product: Product, partners: str,
                                           tmp_path: Path) -> None:
    """curl over explicit FTPS, the data connections through the passive node ports."""
    need("curl")
    wait_listener_ready(product, partners, "ftp")
    password = product.secret(partners, "initech-ftp-credential", "password")
    certificate = tmp_path / "listener.crt"
    certificate.write_text(product.secret(partners, "connectors-listener-tls", "tls.crt"))
    content = b"click,time\n" * 5000
    source = tmp_path / "clicks_e2e.csv"
    source.write_bytes(content)
    netrc = tmp_path / "netrc"
    host = f"connectors-ftp.{partners}.svc"
    netrc.write_text(f"machine {host} login initech password {password}\n")
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "--ssl-reqd", "--cacert", str(certificate),
         # The self-signed certificate names the Services; partners pin it.
         "--resolve", f"connectors-ftp.{partners}.svc:{NODE_PORTS['ftp']}:"
                      f"{product.cluster.node_ip}",
         "--netrc-file", str(netrc), "-T", str(source),
         f"ftp://connectors-ftp.{partners}.svc:{NODE_PORTS['ftp']}/"],
        capture_output=True, text=True, timeout=180, check=False)
    assert result.returncode == 0, result.stderr
    assert_landed(volume_path(product, partners) / "initech-clicks", "clicks_e2e.csv", content)
    wait_last_transfer(product, partners, "initech-clicks", len(content))


def swaks_to_node(product: Product, port: int, attachment: Path,
                  *login: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["swaks", "--server", product.cluster.node_ip, "--port", str(port), "--tls",
         *login, "--from", "data@globex.example",
         "--to", f"globex-audiences@{EMAIL_DOMAIN}", "--attach", f"@{attachment}",
         "--suppress-data"],
        capture_output=True, text=True, timeout=120, check=False)


def test_email_through_the_node_ports(product: Product, partners: str, tmp_path: Path) -> None:
    """swaks as a partner's mail server (port 25, STARTTLS, no login), then as a
    partner who logs in with the Credential on the submission port."""
    need("swaks")
    wait_listener_ready(product, partners, "smtp")
    wait_node_port(product, "submission")
    folder = volume_path(product, partners) / "globex-audiences"
    delivered = tmp_path / "audiences_mx.csv"
    content = b"segment,id\nvip,1\n"
    delivered.write_bytes(content)
    result = swaks_to_node(product, NODE_PORTS["smtp"], delivered)
    assert result.returncode == 0, result.stdout[-2000:]
    assert_landed(folder, "audiences_mx.csv", content)
    wait_last_transfer(product, partners, "globex-audiences", len(content))

    password = product.secret(partners, "globex-smtp-credential", "password")
    submitted = tmp_path / "audiences_e2e.csv"
    content = b"segment,id\nvip,2\nnew,3\n"
    submitted.write_bytes(content)
    result = swaks_to_node(product, NODE_PORTS["submission"], submitted, "--auth", "PLAIN",
                           "--auth-user", "globex", "--auth-password", password)
    assert result.returncode == 0, result.stdout[-2000:].replace(password, "***")
    assert_landed(folder, "audiences_e2e.csv", content)
    wait_last_transfer(product, partners, "globex-audiences", len(content))
    endpoint = (product.get("connection", partners, "globex-audiences") or {})["status"][
        "endpoint"]
    assert (endpoint["port"], endpoint["submissionPort"]) == (NODE_PORTS["smtp"],
                                                              NODE_PORTS["submission"])


def test_ready_follows_the_listener_pod(product: Product, partners: str) -> None:
    """Ready means a partner could succeed now: True once a Ready listener pod
    serves the account, False within seconds of losing the pod, True again."""
    def reason() -> str:
        return str(product.condition(partners, "acme-conversions", "WorkloadReady")
                   .get("reason"))
    wait_for("acme-conversions to be served", lambda: reason() == "ListenerServing",
             timeout=180)
    assert product.condition(partners, "acme-conversions", "Ready").get("status") == "True"
    pod = wait_listener_ready(product, partners, "sftp")
    product.kubectl("delete", "pod", "-n", partners, pod["metadata"]["name"], "--wait=false")
    wait_for("Ready to turn False with the pod gone",
             lambda: reason() in ("ListenerNotReady", "AccountNotLoaded"), timeout=30)
    wait_for("Ready to come back with the new pod", lambda: reason() == "ListenerServing",
             timeout=180)
    assert product.condition(partners, "acme-conversions", "Ready").get("status") == "True"


def test_listener_pod_deleted_during_an_upload(product: Product, partners: str,
                                               tmp_path: Path) -> None:
    """Nothing partial lands; the partner's retry succeeds once the new pod is Ready."""
    old = wait_listener_ready(product, partners, "sftp")
    content = os.urandom(256 * 1024 * 1024)
    outcome: dict[str, subprocess.CompletedProcess[str]] = {}
    upload = threading.Thread(target=lambda: outcome.setdefault(
        "first", sftp_put(product, partners, "conversions_cut.csv", content, tmp_path)))
    upload.start()
    folder = volume_path(product, partners) / "acme-conversions"
    # The folder appears with the partner's first session: it may not exist yet.
    wait_for("the upload to be under way", lambda: folder.is_dir() and any(
        p.name.startswith(".upload-") and p.stat().st_size > 0 for p in folder.iterdir()),
        timeout=60)
    product.kubectl("delete", "pod", "-n", partners, old["metadata"]["name"], "--wait=false")
    upload.join(timeout=300)
    assert outcome["first"].returncode != 0, "the cut upload reported success"
    assert not (folder / "conversions_cut.csv").exists(), "a partial file landed"
    new = wait_listener_ready(product, partners, "sftp")
    assert new["metadata"]["uid"] != old["metadata"]["uid"]
    retry = sftp_put(product, partners, "conversions_cut.csv", content, tmp_path)
    assert retry.returncode == 0, retry.stderr
    assert_landed(folder, "conversions_cut.csv", content)


def test_deleting_the_operator_pod_loses_nothing(product: Product, partners: str) -> None:
    """The replacement operator regenerates no password and duplicates no child."""
    password = product.secret(partners, "acme-sftp-credential", "password")
    before = {kind: product.kubectl("get", kind, "-n", partners, "-o", "name").stdout
              for kind in ("deployments", "services", "secrets")}
    old = operator_pod(product)
    product.kubectl("delete", "pod", "-n", RELEASE_NAMESPACE, old["metadata"]["name"])
    wait_for("a new operator pod to be Ready", lambda: (
        (pod := operator_pod(product))["metadata"]["uid"] != old["metadata"]["uid"]
        and ready(pod)), timeout=180)
    # A full resync pass (30 s in this install) must change nothing.
    time.sleep(35)
    assert product.secret(partners, "acme-sftp-credential", "password") == password
    after = {kind: product.kubectl("get", kind, "-n", partners, "-o", "name").stdout
             for kind in ("deployments", "services", "secrets")}
    assert after == before
    assert product.condition(partners, "acme-conversions", "Ready").get("status") == "True"


# ---- a transfer job as a pod -----------------------------------------------------------------


def run_job(product: Product, namespace: str, cronjob: str, job: str) -> dict[str, Any]:
    product.kubectl("create", "job", "-n", namespace, f"--from=cronjob/{cronjob}", job)

    def finished() -> bool:
        body = product.get("job", namespace, job) or {}
        return any(c["type"] in ("Complete", "Failed") and c["status"] == "True"
                   for c in (body.get("status") or {}).get("conditions") or [])
    try:
        wait_for(f"Job {job} to finish", finished, timeout=240)
    except AssertionError as timeout:
        pods = product.kubectl("get", "pods", "-n", namespace, "-o", "wide", check=False).stdout
        logs = product.kubectl("logs", "-n", namespace, f"job/{job}", "--tail=40",
                               check=False)
        events = product.kubectl("get", "events", "-n", namespace, check=False).stdout
        raise AssertionError(f"{timeout}\n{pods}\n{logs.stdout}{logs.stderr}\n"
                             f"{events[-3000:]}") from None
    pods = json.loads(product.kubectl("get", "pods", "-n", namespace, "-l",
                                      f"job-name={job}", "-o", "json").stdout)["items"]
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    return dict(terminated)


def test_transfer_job_pulls_from_the_partner_as_a_pod(
        product: Product, sshd: Sshd, system_user: SystemUser,  # noqa: F811
        remote_dir: Path) -> None:  # noqa: F811
    namespace = new_namespace(product, "e2e-jobs")
    # The pod reaches the host's loopback sshd through the node's address.
    forwarder = CuttingProxy(sshd.port, limit=0, cut_connections=0,
                             listen=product.cluster.node_ip)
    try:
        files = {f"audiences_{i}.csv": os.urandom(1000 + i) for i in range(3)}
        for name, content in files.items():
            put_remote(remote_dir, name, content)
        secret = {"apiVersion": "v1", "kind": "Secret", "type": "kubernetes.io/ssh-auth",
                  "metadata": {"name": "partner-issued-key"},
                  "stringData": {"ssh-privatekey": sshd.client_key.read_text()}}
        credential = {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
                      "metadata": {"name": "partner-login"},
                      "spec": {"type": "PublicKey", "username": system_user.name,
                               "secretRef": {"name": "partner-issued-key"}}}
        connection = {
            "apiVersion": "connectors.dev/v1alpha1", "kind": "Connection",
            "metadata": {"name": "partner-audiences"},
            "spec": {"direction": "Inbound", "dataType": "Audiences", "method": "SFTP",
                     "methodology": "Pull", "credentialRef": {"name": "partner-login"},
                     "filenamePattern": "audiences_*.csv", "schedule": "0 3 * * *",
                     "remote": {"host": product.cluster.node_ip, "port": forwarder.port,
                                "folder": str(remote_dir), "hostKeys": [sshd.host_key_line]}}}
        product.kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(
            {"apiVersion": "v1", "kind": "List", "items": [secret, credential, connection]}))
        wait_for("the CronJob", lambda: product.get(
            "cronjob", namespace, "transfer-partner-audiences") is not None, timeout=90)
        first = run_job(product, namespace, "transfer-partner-audiences", "pull-1")
        assert first["exitCode"] == 0, first.get("message")
        summary = json.loads(first["message"])
        assert summary["files"] == 3
        folder = volume_path(product, namespace) / "partner-audiences"
        for name, content in files.items():
            assert_landed(folder, name, content)

        def copied() -> bool:
            body = product.get("connection", namespace, "partner-audiences") or {}
            last = (body.get("status") or {}).get("lastTransfer") or {}
            return last.get("files") == 3 and last.get("outcome") == "Succeeded"
        wait_for("the operator to copy the summary into status.lastTransfer", copied)

        second = run_job(product, namespace, "transfer-partner-audiences", "pull-2")
        assert second["exitCode"] == 0, second.get("message")
        assert json.loads(second["message"])["files"] == 0
    finally:
        forwarder.close()


# ---- many partners at once ----------------------------------------------------------------------


def test_two_hundred_partners_at_once_and_the_listener_pod_stays(
        product: Product, partners: str, tmp_path: Path) -> None:
    """200 OpenSSH sftp clients start at the same moment through the node port,
    each uploading its own 1 MiB file. The listener holds at most 100 connections
    (listeners.maxConnections) and refuses the others with SSH's "too many
    connections" disconnect, which a partner's script retries, as it would with
    sshd's MaxStartups. Every file lands whole, and the pod is the same pod,
    never restarted (an OOM kill would restart it and cut every transfer)."""
    need("sshpass")
    pod = wait_listener_ready(product, partners, "sftp")
    name = pod["metadata"]["name"]
    password = product.secret(partners, "acme-sftp-credential", "password")
    public = product.secret(partners, "connectors-sftp-hostkey", "ssh_host_ed25519_key.pub")
    ip, port = product.cluster.node_ip, NODE_PORTS["sftp"]
    known = tmp_path / "known_hosts"
    known.write_text(f"[{ip}]:{port} {' '.join(public.split()[:2])}\n")
    files = {f"conversions_crowd{i:03d}.csv": os.urandom(1 << 20) for i in range(200)}
    for file_name, content in files.items():
        (tmp_path / file_name).write_bytes(content)
    start = threading.Barrier(len(files))

    def partner(file_name: str) -> int:
        """Uploads until it succeeds; returns how many tries were refused."""
        start.wait()
        for refused in range(60):
            sent = subprocess.run(
                ["sshpass", "-e", "sftp", "-o", "BatchMode=no", "-o",
                 "PubkeyAuthentication=no", "-o", f"UserKnownHostsFile={known}", "-o",
                 "StrictHostKeyChecking=yes", "-P", str(port), "-b", "-", f"acme@{ip}"],
                input=f"put {tmp_path / file_name} {file_name}\n",
                env={**os.environ, "SSHPASS": password}, capture_output=True, text=True,
                timeout=300, check=False)
            if sent.returncode == 0:
                return refused
            time.sleep(1 + refused % 3)
        raise AssertionError(f"{file_name}: refused 60 times: {sent.stderr[-300:]}")

    with ThreadPoolExecutor(len(files)) as pool:
        refusals = list(pool.map(partner, files))
    folder = volume_path(product, partners) / "acme-conversions"
    for file_name, content in files.items():
        assert (folder / file_name).read_bytes() == content
        receipt = json.loads((folder / f"receipt_{file_name}.txt").read_text())
        assert receipt["sha256"] == hashlib.sha256(content).hexdigest()
    # No upload left half-written (the processor may be writing result files
    # meanwhile, under the same kind of temporary name).
    assert not [p.name for p in folder.iterdir() if p.name.startswith(".upload-")
                and "result_" not in p.name]
    after = listener_pod(product, partners, "sftp")
    status = after["status"]["containerStatuses"][0]
    assert after["metadata"]["name"] == name
    assert status["restartCount"] == 0, status.get("lastState")
    # cgroup v2 names it memory.peak; v1 (this machine) memory.max_usage_in_bytes.
    peak = exec_in(product.cluster, partners, name, "sh", "-c",
                   "cat /sys/fs/cgroup/memory.peak 2>/dev/null || "
                   "cat /sys/fs/cgroup/memory/memory.max_usage_in_bytes")
    print(f"200 partners: {sum(1 for r in refusals if r)} were refused at least once "
          f"({sum(refusals)} refusals in all); the pod's memory peak: "
          f"{peak.stdout.strip() or peak.stderr.strip()} bytes")


# ---- two listener replicas -------------------------------------------------------------------


def helm_set(product: Product, *values: str) -> None:
    upgraded = subprocess.run(
        [product.helm, "upgrade", "connectors", str(REPO / "charts/connectors"),
         "--kubeconfig", product.cluster.kubeconfig, "--namespace", RELEASE_NAMESPACE,
         "--reuse-values", "--wait", "--timeout", "180s",
         *(arg for value in values for arg in ("--set", value))],
        check=False, capture_output=True, text=True, timeout=300)
    assert upgraded.returncode == 0, upgraded.stderr


def test_two_listener_replicas_serve_the_same_accounts_on_one_volume(
        product: Product, partners: str, tmp_path: Path) -> None:
    """listeners.replicas=2: both pods report the same account table, Ready waits
    for it, and a partner reaching either pod lands on the one data volume. (In
    the partners' namespace: this install's fixed node ports serve one namespace.)"""
    helm_set(product, "listeners.replicas=2")
    try:
        namespace = partners

        def ready_pods() -> list[dict[str, Any]]:
            pods = json.loads(product.kubectl(
                "get", "pods", "-n", namespace, "-l", "connectors.dev/listener=sftp", "-o",
                "json").stdout)["items"]
            return [p for p in pods if ready(p) and not p["metadata"].get("deletionTimestamp")]
        wait_for("two Ready sftp listener pods", lambda: len(ready_pods()) == 2, timeout=240)
        wait_for("acme-conversions to be Ready", lambda: product.condition(
            namespace, "acme-conversions", "Ready").get("status") == "True", timeout=120)
        pods = ready_pods()

        def served() -> set[str | None]:
            state = (product.get("configmap", namespace, "connectors-listener-state")
                     or {}).get("data") or {}
            return {state.get(p["metadata"]["name"]) for p in pods}
        # Each pod reports the table it serves; both serve the same one.
        wait_for("both pods to report their table", lambda: None not in served(), timeout=60)
        assert len(served()) == 1

        folder = None
        for index, pod in enumerate(pods):
            name = f"conversions_replica{index}.csv"
            content = f"replica,{index}\n".encode() * 1000
            sent = sftp_put(product, namespace, name, content, tmp_path,
                            address=(pod["status"]["podIP"], LISTENER_CONTAINER_PORTS["sftp"]))
            assert sent.returncode == 0, sent.stderr
            folder = volume_path(product, namespace) / "acme-conversions"
            assert_landed(folder, name, content)
        assert folder is not None
        assert sorted(p.name for p in folder.glob("conversions_replica*.csv")) == [
            "conversions_replica0.csv", "conversions_replica1.csv"]
    finally:
        helm_set(product, "listeners.replicas=1")
