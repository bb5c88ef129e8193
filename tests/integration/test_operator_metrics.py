"""The operator's /metrics against the real control plane: reconciles counted,
Connections gauged by condition from the cache, the last transfer of a
platform-initiated Connection read from its status, and the liveness endpoint
served on the same port as the chart runs it."""

from __future__ import annotations

import json
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from connectors.devcluster.net import free_port
from connectors.metrics.operator import parse_time
from tests.conftest import Cluster
from tests.integration import operator_scenarios as scenarios
from tests.support.metrics import Samples, scrape, total
from tests.support.operator import OperatorProcess, wait_until_watching
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(400)

LISTENER = "acme-conversions"      # Inbound Push: never Ready without a node
PULL = "shandalear-audiences"      # Inbound Pull, "0 * * * *": Ready with its CronJob


@pytest.fixture(scope="module")
def metrics_operator(crds: Cluster,
                     tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, str]]:
    port = free_port()
    log = tmp_path_factory.mktemp("operator-metrics") / "operator.log"
    process = OperatorProcess(crds.kubeconfig, ["obs-*"], log, extra=[
        "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
        "--liveness", f"http://127.0.0.1:{port}/healthz"]).start()
    wait_until_watching(crds, "obs-")
    namespace = f"obs-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(crds.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    try:
        yield port, namespace
    finally:
        process.stop()
        core.delete_namespace(namespace)


def operator_metrics(port: int) -> Samples:
    return scrape(port)[1]


def test_reconciles_and_connections_by_condition(
        crds: Cluster, metrics_operator: tuple[int, str]) -> None:
    port, ns = metrics_operator
    for example in ("01-inbound-push-sftp-conversions.yaml", "02-inbound-pull-sftp-audiences.yaml"):
        scenarios.apply(crds, ns, scenarios.REPO / "examples" / example)
    scenarios.wait_condition(crds, ns, PULL, "True")
    scenarios.wait_configured(crds, ns, LISTENER)

    def gauged() -> Samples | None:
        samples = operator_metrics(port)
        ready = {name: total(samples, "connectors_operator_connection_ready", namespace=ns,
                             connection=name) for name in (LISTENER, PULL)}
        return samples if ready == {LISTENER: 0, PULL: 1} else None

    samples = eventually(gauged, 60, "Ready to be gauged from the cache")
    assert total(samples, "connectors_operator_reconciles_total", kind="Connection",
                 result="success") > 0
    assert total(samples, "connectors_operator_reconciles_total", kind="Credential",
                 result="success") > 0
    assert total(samples, "connectors_operator_reconcile_duration_seconds_count",
                 kind="Connection") > 0
    # The sentinel namespace of wait_until_watching holds no Connection: only ours count.
    by_condition = {(c, s): total(samples, "connectors_operator_connections", namespace=ns,
                                  condition=c, status=s)
                    for c in ("Validated", "CredentialReady", "WorkloadReady", "Ready")
                    for s in ("True", "False", "Unknown")}
    assert by_condition == {
        ("Validated", "True"): 2, ("Validated", "False"): 0, ("Validated", "Unknown"): 0,
        ("CredentialReady", "True"): 2, ("CredentialReady", "False"): 0,
        ("CredentialReady", "Unknown"): 0,
        ("WorkloadReady", "True"): 1, ("WorkloadReady", "False"): 1,
        ("WorkloadReady", "Unknown"): 0,
        ("Ready", "True"): 1, ("Ready", "False"): 1, ("Ready", "Unknown"): 0}
    listener = scenarios.get(crds, ns, "connections", LISTENER)
    reason = scenarios.condition(listener, "Ready")["reason"]
    assert total(samples, "connectors_operator_connections", namespace=ns, condition="Ready",
                 status="False", reason=reason) == 1
    assert total(samples, "connectors_operator_connection_suspended", namespace=ns) == 0
    assert total(samples, "connectors_operator_transfer_schedule_interval_seconds",
                 namespace=ns, connection=PULL) == 3600
    # Only platform-initiated Connections have transfer gauges.
    assert total(samples, "connectors_operator_transfer_schedule_interval_seconds",
                 namespace=ns, connection=LISTENER) == 0
    for queue in ("Connection", "Credential", "Namespace"):
        assert ("connectors_operator_workqueue_depth",
                frozenset({("queue", queue)})) in samples


def test_last_transfer_gauges_follow_the_status(
        crds: Cluster, metrics_operator: tuple[int, str]) -> None:
    port, ns = metrics_operator
    scenarios.apply(crds, ns, scenarios.REPO / "examples/02-inbound-pull-sftp-audiences.yaml")
    scenarios.wait_condition(crds, ns, PULL, "True")
    succeeded = "2026-11-30T10:00:00Z"
    patch_last_transfer(crds, ns, {"time": succeeded, "files": 3, "bytes": 4096,
                                   "outcome": "Succeeded", "source": "job/test-1"})
    labels = {"namespace": ns, "connection": PULL}

    def shows(files: int) -> Samples | None:
        samples = operator_metrics(port)
        seen = total(samples, "connectors_operator_last_transfer_files", **labels)
        return samples if seen == files else None

    samples = eventually(lambda: shows(3), 60, "the last transfer's files")
    assert total(samples, "connectors_operator_last_transfer_bytes", **labels) == 4096
    assert total(samples, "connectors_operator_last_transfer_succeeded", **labels) == 1
    assert total(samples, "connectors_operator_last_transfer_success_timestamp_seconds",
                 **labels) == parse_time(succeeded)

    # A failed run replaces status.lastTransfer; the last success is still known.
    patch_last_transfer(crds, ns, {"time": "2026-11-30T11:00:00Z", "files": 0, "bytes": 0,
                                   "outcome": "Failed", "message": "connection refused",
                                   "source": "job/test-2"})
    samples = eventually(lambda: shows(0), 60, "the failed transfer")
    assert total(samples, "connectors_operator_last_transfer_succeeded", **labels) == 0
    assert total(samples, "connectors_operator_last_transfer_timestamp_seconds", **labels) == \
        parse_time("2026-11-30T11:00:00Z")
    assert total(samples, "connectors_operator_last_transfer_success_timestamp_seconds",
                 **labels) == parse_time(succeeded)


def patch_last_transfer(cluster: Cluster, namespace: str, last: dict[str, object]) -> None:
    full = {"files": None, "bytes": None, "message": None, **last}
    cluster.kubectl("patch", "connection", PULL, "-n", namespace, "--subresource=status",
                    "--type=merge", "-p", json.dumps({"status": {"lastTransfer": full}}))


def test_liveness_shares_the_metrics_port(metrics_operator: tuple[int, str]) -> None:
    port, _ = metrics_operator
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=10) as response:
        assert response.status == 200
        assert json.loads(response.read()) == {}
    text, _ = scrape(port)
    assert "# TYPE connectors_operator_reconciles_total counter" in text


def test_log_is_json_lines_when_asked(crds: Cluster, tmp_path: Path) -> None:
    """`connectors run --log-format json`: every line of the operator's log parses."""
    log = tmp_path / "operator.log"
    process = OperatorProcess(crds.kubeconfig, ["obsjson-*"], log,
                              extra=["--log-format", "json"]).start()
    try:
        wait_until_watching(crds, "obsjson-")
    finally:
        process.stop()
    lines = [line for line in log.read_text().splitlines() if line.strip()]
    assert len(lines) >= 2
    records = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert any(r["logger"] == "connectors" and "starting" in r["message"] for r in records)
