"""End-to-end fixtures: the operator, the listener's RBAC from the chart, a namespace."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.conftest import Cluster

# The real sshd and its test user, shared with the transfer job's integration tests.
from tests.integration.transfer.transfer_servers import (  # noqa: F401
    remote_dir,
    sshd,
    system_user,
)
from tests.support.operator import OperatorProcess, wait_until_watching

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def e2e_operator(crds: Cluster, tmp_path_factory: pytest.TempPathFactory
                 ) -> Iterator[OperatorProcess]:
    """The operator for namespaces e2e-*, and the chart's listener ClusterRole it binds to."""
    helm = subprocess.run([str(REPO / "hack/helm/build.sh")], check=True, text=True,
                          stdout=subprocess.PIPE).stdout.strip().splitlines()[-1]
    rendered = subprocess.run(
        [helm, "template", "connectors", str(REPO / "charts/connectors"),
         "--kube-version", "v1.36.3", "--show-only", "templates/listener-clusterrole.yaml"],
        check=True, text=True, capture_output=True).stdout
    crds.kubectl("apply", "-f", "-", input=rendered)
    log = tmp_path_factory.mktemp("e2e-operator") / "operator.log"
    process = OperatorProcess(crds.kubeconfig, ["e2e-*"], log).start()
    wait_until_watching(crds, "e2e-")
    yield process
    process.stop()
    crds.kubectl("delete", "-f", "-", "--ignore-not-found", input=rendered)


@pytest.fixture
def e2e_namespace(crds: Cluster, e2e_operator: OperatorProcess) -> Iterator[str]:
    name = f"e2e-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(crds.api_client())
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    core.delete_namespace(name)


def example(name: str) -> str:
    return (REPO / "examples" / name).read_text()
