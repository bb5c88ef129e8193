"""Fixtures shared by every test: the real control plane and a kubectl for it.

By default the session starts its own etcd, kube-apiserver and
kube-controller-manager on free loopback ports (connectors.devcluster) and stops
them at the end. Set CONNECTORS_TEST_KUBECONFIG to run the tests against an
existing cluster instead (for example a kind cluster made from kind-config.yaml);
nothing ever touches the cluster of your own KUBECONFIG unless you say so.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kubernetes import client, config

from connectors import devcluster
from connectors.controller.kube import Kube
from tests.support import secrets as secret_scan


@dataclass
class Cluster:
    kubeconfig: str
    kubectl_path: str

    def api_client(self) -> client.ApiClient:
        return config.new_client_from_config(config_file=self.kubeconfig)

    def kubectl(self, *args: str, check: bool = True, input: str | None = None,
                kubeconfig: str | None = None) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "KUBECONFIG": kubeconfig or self.kubeconfig}
        result = subprocess.run([self.kubectl_path, *args], env=env, check=False, text=True,
                                capture_output=True, input=input, timeout=120)
        if check and result.returncode != 0:
            # kubectl's own words, so a failing test says what the server refused.
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
        return result


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    external = os.environ.get("CONNECTORS_TEST_KUBECONFIG")
    if external:
        kubectl = shutil.which("kubectl")
        if not kubectl:
            pytest.skip("CONNECTORS_TEST_KUBECONFIG is set but kubectl is not on PATH")
        yield Cluster(external, kubectl)
        return
    binaries = devcluster.build_binaries()
    workdir = Path(tempfile.mkdtemp(prefix="connectors-test-cp-"))
    plane = devcluster.up(workdir)
    try:
        yield Cluster(plane.kubeconfig, str(binaries / "kubectl"))
    finally:
        plane.stop()


@pytest.fixture
def namespace(cluster: Cluster) -> Iterator[str]:
    """A fresh namespace per test, so tests never see each other's objects.
    Before it goes, its Secrets' values join the suite's secret scan and its
    events and statuses join what is scanned (tests/support/secrets.py)."""
    name = f"t-{uuid.uuid4().hex[:10]}"
    api = client.CoreV1Api(cluster.api_client())
    api.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield name
    harvest(cluster, name)
    api.delete_namespace(name)


def harvest(cluster: Cluster, namespace: str) -> None:
    secret_list = cluster.kubectl("get", "secrets", "-n", namespace, "-o", "json", check=False)
    if secret_list.returncode == 0:
        for item in json.loads(secret_list.stdout).get("items", []):
            for key, value in (item.get("data") or {}).items():
                # Only what is secret: a username or a public key is shown on purpose.
                if not secret_scan.is_secret_key(key):
                    continue
                with contextlib.suppress(ValueError, UnicodeDecodeError):
                    secret_scan.remember(base64.b64decode(value).decode())
    for kind in ("events", "connections.connectors.dev", "credentials.connectors.dev",
                 "pods"):
        shown = cluster.kubectl("get", kind, "-n", namespace, "-o", "json", check=False)
        if shown.returncode == 0:
            secret_scan.record(f"{kind} of namespace {namespace}", shown.stdout)


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """What each test printed and logged, and its failure text, for the scan."""
    for section, text in report.sections:
        secret_scan.record(f"{report.nodeid} ({section})", text)
    if report.longrepr is not None:
        secret_scan.record(f"{report.nodeid} (failure)", str(report.longrepr))


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """The suite-wide secret scan: fails the run if any secret leaked."""
    basetemp = session.config._tmp_path_factory.getbasetemp()  # type: ignore[attr-defined]
    secret_scan.record_files(Path(basetemp))
    found = secret_scan.leaks()
    secrets_count, outputs, size = secret_scan.counts()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    line = (f"secret scan: {secrets_count} secrets against {outputs} outputs "
            f"({size} characters): {len(found)} found")
    if reporter is not None:
        reporter.write_line(line)
        for find in found[:20]:
            reporter.write_line(f"secret scan: {find}", red=True)
    if found:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def crds(cluster: Cluster) -> Cluster:
    """The CRDs from crds/, installed and established."""
    repo = Path(__file__).resolve().parents[1]
    cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(repo / "crds"))
    for crd in ("connections.connectors.dev", "credentials.connectors.dev"):
        cluster.kubectl("wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")
    # Established is not yet served: the new resources' storage starts a moment later.
    kube = Kube(cluster.api_client())
    kube.wait_until_served(("Connection", "Credential"))
    return cluster
