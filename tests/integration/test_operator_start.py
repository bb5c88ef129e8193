"""An operator started before its CRDs says what it waits for, then carries on."""

from __future__ import annotations

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
