"""An operator started on a cluster that lacks something says what, then carries on.

Before its CRDs: it says what it waits for. Without kopf's peering CRD or object:
it never sits idle (kopf alone would pause every watch and say so only at debug
level); it runs standalone with one WARNING, or makes the peering object it needs.
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


def test_operator_waits_for_its_crds_and_then_works(bare_cluster: Cluster,
                                                    tmp_path: Path) -> None:
    operator = OperatorProcess(bare_cluster.kubeconfig, ["default"],
                               tmp_path / "operator.log").start()
    try:
        eventually(lambda: "are the CRDs installed? kubectl apply -f crds/" in operator.log(),
                   60, "the operator to say it waits for its CRDs")
        assert operator.process is not None
        assert operator.process.poll() is None, "it must wait, not exit"
        bare_cluster.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        bare_cluster.kubectl("wait", "--for=condition=Established",
                             "crd/credentials.connectors.dev", "--timeout=60s")
        bare_cluster.kubectl("apply", "-n", "default", "-f", "-", input=(
            "apiVersion: connectors.dev/v1alpha1\nkind: Credential\n"
            "metadata: {name: first}\nspec: {type: Password}\n"))

        def ready() -> bool:
            status = bare_cluster.kubectl(
                "get", "credential", "first", "-n", "default", "-o",
                "jsonpath={.status.conditions[0].status}", check=False).stdout
            return status == "True"
        eventually(ready, 90, "the Credential to be reconciled once the CRDs exist")
    finally:
        operator.stop()


class PeeringOperator(OperatorProcess):
    """The operator as README shows it, `connectors run --all-namespaces`: no --standalone,
    so it peers under its default name, connectors."""

    def start(self) -> PeeringOperator:
        argv = [sys.executable, "-m", "connectors", "run", "--all-namespaces",
                "--resync-seconds", "30"]
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
    operator = PeeringOperator(bare_cluster.kubeconfig, [], tmp_path / "operator.log").start()
    try:
        reconciles_a_credential(bare_cluster, "first")
        log = operator.log()
        warnings = [line for line in log.splitlines() if " WARNING " in line]
        assert len(warnings) == 1, log
        assert "clusterkopfpeerings.kopf.dev is not installed" in warnings[0]
        assert "running standalone" in warnings[0]
        assert "kubectl apply -f charts/connectors/crds/kopf-peering.yaml" in warnings[0]
    finally:
        operator.stop()


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

        def peers() -> dict[str, object]:
            found = bare_cluster.kubectl("get", "clusterkopfpeering", "connectors", "-o",
                                         "json", check=False)
            return json.loads(found.stdout).get("status") or {} if found.returncode == 0 else {}
        # kopf's keep-alive records this replica: peering is live, not just configured.
        eventually(lambda: len(peers()) == 1, 60, "the operator to record itself as a peer")
    finally:
        operator.stop()
