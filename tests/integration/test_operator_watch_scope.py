"""The operator's watches ask the API server for its own objects only.

In cluster mode (`--all-namespaces`, the chart's default) the operator lists and
watches Secrets, ConfigMaps, Services, Pods, Deployments, CronJobs and Jobs of
every namespace. A label filter applied on the operator's side would still make
the API server send it every Secret of the cluster. Here the API server itself
says what was asked: a control plane of its own with an audit log (the list and
watch requests of those kinds, devcluster.AUDIT_POLICY), an operator with an
identity of its own, and 200 unrelated Secrets of 128 KiB each that must never
reach it (its metric connectors_operator_watch_events_total counts what its
watches received).
"""

from __future__ import annotations

import base64
import json
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from kubernetes import client

from connectors import devcluster
from connectors.controller.watches import WATCHES
from connectors.devcluster.controlplane import AUDIT_LOG
from connectors.devcluster.net import free_port
from connectors.planning.config import LABEL_MANAGED_BY, MANAGED_BY
from tests.conftest import Cluster
from tests.support.metrics import scrape, total
from tests.support.operator import OperatorProcess
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]
OURS = f"{LABEL_MANAGED_BY}={MANAGED_BY}"
OPERATOR_NAMESPACE = "connectors-system"
OPERATOR_ACCOUNT = "connectors-operator"
OPERATOR_USER = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}"
UNRELATED = 200
UNRELATED_BYTES = 128 * 1024


@pytest.fixture(scope="module")
def audited() -> Iterator[tuple[Cluster, Path]]:
    """A control plane of its own that audits list and watch requests; the CRDs in it."""
    binaries = devcluster.build_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="connectors-audit-cp-"))
    plane = devcluster.up(workdir, audit=True)
    try:
        cluster = Cluster(plane.kubeconfig, str(binaries / "kubectl"))
        cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        for crd in ("connections.connectors.dev", "credentials.connectors.dev"):
            cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}",
                            "--timeout=60s")
        yield cluster, workdir / AUDIT_LOG
    finally:
        plane.stop()


def operator_kubeconfig(cluster: Cluster, path: Path) -> str:
    """A service account of its own (cluster-admin: RBAC is test_chart's subject), so
    that the audit log tells the operator's requests from the test's."""
    cluster.kubectl("create", "namespace", OPERATOR_NAMESPACE)
    cluster.kubectl("create", "serviceaccount", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE)
    cluster.kubectl("create", "clusterrolebinding", "watch-scope-operator",
                    "--clusterrole=cluster-admin",
                    f"--serviceaccount={OPERATOR_NAMESPACE}:{OPERATOR_ACCOUNT}")
    token = cluster.kubectl("create", "token", OPERATOR_ACCOUNT, "-n", OPERATOR_NAMESPACE,
                            "--duration=1h").stdout.strip()
    config = json.loads(Path(cluster.kubeconfig).read_text())
    config["users"] = [{"name": "operator", "user": {"token": token}}]
    config["contexts"][0]["context"]["user"] = "operator"
    path.write_text(json.dumps(config))
    return str(path)


def audit_events(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def watch_events(port: int, resource: str) -> float:
    return total(scrape(port)[1], "connectors_operator_watch_events_total", resource=resource)


def test_cluster_mode_never_receives_unrelated_secrets(
        audited: tuple[Cluster, Path], tmp_path: Path) -> None:
    cluster, audit_log = audited
    port = free_port()
    operator = OperatorProcess(operator_kubeconfig(cluster, tmp_path / "operator.kubeconfig"),
                               [], tmp_path / "operator.log",
                               extra=["--metrics-port", str(port),
                                      "--metrics-address", "127.0.0.1"]).start()
    core = client.CoreV1Api(cluster.api_client())
    try:
        # The operator works: a Credential in one namespace gets its generated Secret,
        # which the Secret watch receives.
        cluster.kubectl("create", "namespace", "team-a")
        cluster.kubectl("apply", "-n", "team-a", "-f", "-", input=(
            "apiVersion: connectors.dev/v1alpha1\nkind: Credential\n"
            "metadata: {name: acme}\nspec: {type: Password}\n"))
        eventually(lambda: cluster.kubectl(
            "get", "credential", "acme", "-n", "team-a", "-o",
            "jsonpath={.status.conditions[0].status}", check=False).stdout == "True",
            120, "the Credential to be reconciled")
        eventually(lambda: watch_events(port, "secrets") >= 1, 60,
                   "the watch to receive the Credential's Secret")
        before = watch_events(port, "secrets")

        # 200 Secrets of someone else's, 25 MiB in all, in a namespace the operator
        # watches (it watches them all)...
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name="unrelated")))
        blob = base64.b64encode(b"x" * UNRELATED_BYTES).decode()
        for index in range(UNRELATED):
            core.create_namespaced_secret("unrelated", client.V1Secret(
                metadata=client.V1ObjectMeta(name=f"app-secret-{index}"),
                data={"payload": blob}))
        # ...then one with the operator's label: in the same cluster-wide stream,
        # after them. When it has arrived, so would have the 200, had they been sent.
        core.create_namespaced_secret("unrelated", client.V1Secret(
            metadata=client.V1ObjectMeta(name=f"marker-{uuid.uuid4().hex[:6]}",
                                         labels={LABEL_MANAGED_BY: MANAGED_BY}),
            data={"payload": base64.b64encode(b"marker").decode()}))
        eventually(lambda: watch_events(port, "secrets") > before, 60,
                   "the watch to receive the labelled Secret")
        received = watch_events(port, "secrets") - before
        ours = len(core.list_secret_for_all_namespaces(label_selector=OURS).items)
        # The marker, and at most a relist of the operator's own (a few), never the 200.
        assert 1 <= received <= ours < 10, (received, ours)
    finally:
        operator.stop()

    # What the API server was asked: every list and watch of a watched kind by the
    # operator carries the selector, and the Secret watch is cluster-wide.
    requests = [event for event in audit_events(audit_log)
                if event.get("user", {}).get("username") == OPERATOR_USER
                and event.get("verb") in ("list", "watch")]
    assert requests, "the audit log holds no list or watch of the operator's"
    seen: dict[str, set[str]] = {}
    for event in requests:
        resource = event["objectRef"]["resource"]
        seen.setdefault(resource, set()).add(event["verb"])
        query = parse_qs(urlsplit(event["requestURI"]).query)
        selector = query.get("labelSelector", [""])[0]
        assert OURS in selector.split(","), event["requestURI"]
    for watch in WATCHES:
        if watch.labels is not None:
            assert seen.get(watch.plural) == {"list", "watch"}, (watch.plural, seen)
    secret_urls = {urlsplit(e["requestURI"]).path for e in requests
                   if e["objectRef"]["resource"] == "secrets"}
    assert "/api/v1/secrets" in secret_urls, secret_urls
