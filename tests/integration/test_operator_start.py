"""An operator started on a cluster that lacks something says what, in one line.

Without its CRDs: one line with the fix, and exit status 1, never a traceback.
Without kopf's peering CRD or object: it never sits idle (kopf alone would pause
every watch and say so only at debug level); it runs standalone with one WARNING,
or makes the peering object it needs; only when peering was asked for by name
(`--peering`, as the chart does) is a missing peering CRD a reason to exit.
Once it starts, one block of lines says what it will do.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import devcluster
from tests.conftest import Cluster
from tests.support.operator import OperatorProcess
from tests.support.wait import eventually

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def bare_cluster(cluster: Cluster) -> Iterator[Cluster]:
    """A control plane of its own, without the CRDs (the session's has them)."""
    plane = devcluster.up(Path(tempfile.mkdtemp(prefix="connectors-bare-cp-")))
    try:
        yield Cluster(plane.kubeconfig, cluster.kubectl_path)
    finally:
        plane.stop()


def exit_status(operator: OperatorProcess, timeout: float = 60) -> int:
    assert operator.process is not None
    try:
        return operator.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        operator.stop()
        pytest.fail(f"the operator did not exit within {timeout}s:\n{operator.log()}")


def summary(log: str) -> list[str]:
    """The start-up block: the lines after "starting", up to the first of kopf's own."""
    lines = log.splitlines()
    start = next(i for i, line in enumerate(lines) if "connectors operator 0.1.0 starting" in line)
    block = []
    for line in lines[start + 1:]:
        _, _, message = line.partition("connectors: ")
        if not message.startswith("  "):
            break
        block.append(message.strip())
    return block


def test_without_its_crds_it_says_how_to_install_them_and_exits_1(
    bare_cluster: Cluster, tmp_path: Path
) -> None:
    missing = OperatorProcess(bare_cluster.kubeconfig, ["default"],
                              tmp_path / "missing.log").start()
    assert exit_status(missing) == 1
    log = missing.log()
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert errors[0].endswith(
        "cannot start: the CRDs connections.connectors.dev and credentials.connectors.dev "
        "(v1alpha1) are not installed on this cluster: install them with kubectl apply "
        "--server-side -f crds/ (or helm install connectors charts/connectors, which installs "
        "them), then start the operator again")
    assert "starting" not in log, "no summary before the prerequisites hold"

    bare_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    bare_cluster.kubectl("wait", "--for=condition=Established",
                         "crd/credentials.connectors.dev", "--timeout=60s")
    operator = OperatorProcess(bare_cluster.kubeconfig, ["default"], tmp_path / "operator.log",
                               extra=["--image", "registry.example/connectors:1.2",
                                      "--listener-service-types", "sftp=LoadBalancer",
                                      "--listener-external-host", "partners.example.com",
                                      "--data-storage-class", "fast-rwx",
                                      "--listener-replicas", "2"]).start()
    try:
        reconciles_a_credential(bare_cluster, "first")
        block = summary(operator.log())
        assert block == [
            "mode: standalone (--standalone)",
            "namespaces: default",
            "image for listeners and transfer jobs: registry.example/connectors:1.2 (pull "
            "policy IfNotPresent, pull secrets: none)",
            "listener services: ftp=ClusterIP, sftp=LoadBalancer, smtp=ClusterIP; external "
            "host: partners.example.com; node ports: none; replicas: 2",
            "listener TLS certificate: self-signed, one per namespace",
            "data volume: claim connectors-data, storage class fast-rwx, 10Gi, ReadWriteMany",
            "email: domain connectors.local; outbound relay configured: yes",
            "submission history kept 90 days",
        ], operator.log()
        # OperatorProcess gives a relay: the log says there is one, not where.
        assert "relay.platform.example" not in operator.log()
    finally:
        operator.stop()


class PeeringOperator(OperatorProcess):
    """The operator as README shows it, `connectors run --all-namespaces`: no --standalone,
    so it peers under its default name, connectors (or as `extra` says)."""

    def start(self) -> PeeringOperator:
        argv = [sys.executable, "-m", "connectors", "run", "--all-namespaces",
                "--resync-seconds", "30", *self.extra]
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        return self


def reconciles_a_credential(cluster: Cluster, name: str) -> None:
    cluster.kubectl("apply", "-n", "default", "-f", "-", input=(
        "apiVersion: connectors.dev/v1alpha1\nkind: Credential\n"
        f"metadata: {{name: {name}}}\nspec: {{type: Password}}\n"))

    def ready() -> bool:
        status = cluster.kubectl("get", "credential", name, "-n", "default", "-o",
                                 "jsonpath={.status.conditions[0].status}", check=False).stdout
        return status == "True"
    eventually(ready, 90, f"the Credential {name} to be reconciled")


def test_without_the_peering_crd_it_warns_once_and_runs_standalone(
    bare_cluster: Cluster, tmp_path: Path
) -> None:
    bare_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    # Served before the test applies a Credential (CI once saw "no matches for kind").
    bare_cluster.kubectl("wait", "--for=condition=Established", "--timeout=60s",
                         "crd/credentials.connectors.dev", "crd/connections.connectors.dev")
    operator = PeeringOperator(bare_cluster.kubeconfig, [], tmp_path / "operator.log").start()
    try:
        reconciles_a_credential(bare_cluster, "first")
        log = operator.log()
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        assert len(warnings) == 1, log
        assert "clusterkopfpeerings.kopf.dev is not installed" in warnings[0]
        assert "running standalone" in warnings[0]
        assert "kubectl apply -f charts/connectors/crds/kopf-peering.yaml" in warnings[0]
        assert "mode: standalone (the peering CRD clusterkopfpeerings.kopf.dev is not " \
               "installed)" in summary(log)
    finally:
        operator.stop()


def test_peering_asked_for_without_its_crd_is_one_line_and_exit_1(
    bare_cluster: Cluster, tmp_path: Path
) -> None:
    """As the chart runs it (--peering=NAME): running unpeered beside another replica
    is not an option it may take by itself."""
    bare_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
    operator = PeeringOperator(bare_cluster.kubeconfig, [], tmp_path / "operator.log",
                               extra=["--peering", "ops"]).start()
    assert exit_status(operator) == 1
    log = operator.log()
    assert "Traceback" not in log, log
    errors = [line for line in log.splitlines() if " ERROR " in line]
    assert len(errors) == 1, log
    assert errors[0].endswith(
        "cannot start: peering ops was asked for (--peering), but the peering CRD "
        "clusterkopfpeerings.kopf.dev is not installed: install it with kubectl apply "
        "--server-side -f charts/connectors/crds/kopf-peering.yaml (helm install connectors "
        "charts/connectors installs it), or run with --standalone"), log


def test_with_the_peering_crd_but_no_peering_object_it_makes_one_and_peers(
    bare_cluster: Cluster, tmp_path: Path
) -> None:
    bare_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"),
                         "-f", str(REPO / "charts/connectors/crds/kopf-peering.yaml"))
    bare_cluster.kubectl("wait", "--for=condition=Established",
                         "crd/clusterkopfpeerings.kopf.dev", "--timeout=60s")
    operator = PeeringOperator(bare_cluster.kubeconfig, [], tmp_path / "operator.log").start()
    try:
        reconciles_a_credential(bare_cluster, "second")
        log = operator.log()
        assert "created ClusterKopfPeering connectors" in log, log
        assert " WARNING " not in log, log
        assert summary(log)[:2] == [
            "mode: peering as connectors (ClusterKopfPeering connectors): one replica of the "
            "operator is active at a time", "namespaces: all"]

        def peers() -> dict[str, object]:
            found = bare_cluster.kubectl("get", "clusterkopfpeering", "connectors", "-o",
                                         "json", check=False)
            return json.loads(found.stdout).get("status") or {} if found.returncode == 0 else {}
        # kopf's keep-alive records this replica: peering is live, not just configured.
        eventually(lambda: len(peers()) == 1, 60, "the operator to record itself as a peer")
    finally:
        operator.stop()
