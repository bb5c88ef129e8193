"""The real node: Ready, pods Running, volumes, DNS, NodePorts and the egress guard."""

from __future__ import annotations

import json
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import devcluster
from connectors.devcluster import NodeCluster
from tests.node.cluster import apply, exec_in, wait_for


@pytest.fixture(scope="module")
def namespace(node_cluster: NodeCluster) -> Iterator[str]:
    name = f"node-{uuid.uuid4().hex[:6]}"
    node_cluster.kubectl("create", "namespace", name)
    yield name
    node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


@pytest.fixture(scope="module")
def tools_pod(node_cluster: NodeCluster, namespace: str) -> str:
    """A Deployment's pod running the node's busybox tools image; its name."""
    apply(node_cluster, {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "tools", "namespace": namespace},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": "tools"}},
            "template": {
                "metadata": {"labels": {"app": "tools"}},
                "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
                    "name": "tools", "image": node_cluster.tools_image,
                    "imagePullPolicy": "Never", "command": ["sleep", "3600"]}]},
            },
        },
    })
    node_cluster.kubectl("rollout", "status", "-n", namespace, "deployment/tools",
                         "--timeout=90s", timeout=100)
    return str(node_cluster.kubectl(
        "get", "pods", "-n", namespace, "-l", "app=tools",
        "-o", "jsonpath={.items[0].metadata.name}").stdout)


def test_node_is_ready_under_its_own_identity(node_cluster: NodeCluster) -> None:
    node = json.loads(node_cluster.kubectl("get", "node", node_cluster.node_name,
                                           "-o", "json").stdout)
    ready = {c["type"]: c["status"] for c in node["status"]["conditions"]}["Ready"]
    assert ready == "True"
    addresses = {a["type"]: a["address"] for a in node["status"]["addresses"]}
    assert addresses["InternalIP"] == node_cluster.node_ip
    # The kubelet signs in with its own system:node certificate, not an admin one.
    kubelet_kubeconfig = str(Path(node_cluster.workdir) / "kubelet.kubeconfig")
    whoami = node_cluster.kubectl("auth", "whoami", f"--kubeconfig={kubelet_kubeconfig}",
                                  "-o", "json")
    user = json.loads(whoami.stdout)["status"]["userInfo"]
    assert user["username"] == f"system:node:{node_cluster.node_name}"
    assert "system:nodes" in user["groups"]
    # NodeRestriction: a node may not label another node's object or itself as a control plane.
    refused = node_cluster.kubectl(
        f"--kubeconfig={kubelet_kubeconfig}", "label", "node", node_cluster.node_name,
        "node-restriction.kubernetes.io/test=1", check=False)
    assert refused.returncode != 0


def test_deployment_pod_runs(node_cluster: NodeCluster, namespace: str, tools_pod: str) -> None:
    phase = node_cluster.kubectl("get", "pod", "-n", namespace, tools_pod,
                                 "-o", "jsonpath={.status.phase}").stdout
    assert phase == "Running"
    # exec goes API server -> kubelet, with the API server's kubelet-client identity.
    result = exec_in(node_cluster, namespace, tools_pod, "echo", "hello")
    assert result.stdout.strip() == "hello", result.stderr
    logs = node_cluster.kubectl("logs", "-n", namespace, tools_pod, check=False)
    assert logs.returncode == 0, logs.stderr


def test_pods_reach_the_api_server_through_its_service(
        node_cluster: NodeCluster, namespace: str, tools_pod: str) -> None:
    endpoints = node_cluster.kubectl("get", "endpointslices", "-n", "default",
                                     "-l", "kubernetes.io/service-name=kubernetes",
                                     "-o", "jsonpath={.items[0].endpoints[0].addresses[0]}")
    assert endpoints.stdout == node_cluster.node_ip
    result = exec_in(node_cluster, namespace, tools_pod,
                     "nc", "-w", "5", "kubernetes.default.svc.cluster.local", "443",
                     "-e", "/bin/true")
    assert result.returncode == 0, result.stderr


def test_cluster_dns_answers_cluster_names_only(
        node_cluster: NodeCluster, namespace: str, tools_pod: str) -> None:
    found = exec_in(node_cluster, namespace, tools_pod,
                    "nslookup", "kubernetes.default.svc.cluster.local")
    assert found.returncode == 0, found.stdout + found.stderr
    assert "10.0.0.1" in found.stdout
    # Nothing is forwarded upstream: an outside name is refused, not resolved.
    outside = exec_in(node_cluster, namespace, tools_pod, "nslookup", "example.com.")
    assert outside.returncode != 0
    assert "REFUSED" in (outside.stdout + outside.stderr).upper()


@pytest.mark.parametrize(("storage_class", "mode"), [
    ("local-path", "ReadWriteMany"), ("local-path-node", "ReadWriteOnce")])
def test_claim_binds_and_is_writable(node_cluster: NodeCluster, namespace: str,
                                     storage_class: str, mode: str) -> None:
    claim = f"data-{storage_class}"
    apply(node_cluster, {
        "apiVersion": "v1", "kind": "PersistentVolumeClaim",
        "metadata": {"name": claim, "namespace": namespace},
        "spec": {"accessModes": [mode], "storageClassName": storage_class,
                 "resources": {"requests": {"storage": "10Gi"}}},
    }, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"writer-{storage_class}", "namespace": namespace},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 1,
                 "containers": [{"name": "writer", "image": node_cluster.tools_image,
                                 "imagePullPolicy": "Never",
                                 "command": ["sh", "-c", "echo written > /data/proof"],
                                 "volumeMounts": [{"name": "data", "mountPath": "/data"}]}],
                 "volumes": [{"name": "data",
                              "persistentVolumeClaim": {"claimName": claim}}]},
    })

    def phase(kind: str, name: str) -> str:
        return str(node_cluster.kubectl("get", kind, "-n", namespace, name, "-o",
                                        "jsonpath={.status.phase}", check=False).stdout)

    wait_for(f"{claim} Bound", lambda: phase("pvc", claim) == "Bound", 90)
    wait_for("the writer pod Succeeded",
             lambda: phase("pod", f"writer-{storage_class}") == "Succeeded", 90)
    volume = node_cluster.kubectl("get", "pvc", "-n", namespace, claim,
                                  "-o", "jsonpath={.spec.volumeName}").stdout
    path = node_cluster.kubectl("get", "pv", volume,
                                "-o", "jsonpath={.spec.hostPath.path}").stdout
    assert path.startswith(str(Path(node_cluster.workdir) / "volumes"))
    assert (Path(path) / "proof").read_text() == "written\n"


def test_node_port_is_reachable_from_the_host(node_cluster: NodeCluster,
                                              namespace: str) -> None:
    apply(node_cluster, {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": namespace, "labels": {"app": "web"}},
        "spec": {"terminationGracePeriodSeconds": 1, "containers": [{
            "name": "web", "image": node_cluster.tools_image, "imagePullPolicy": "Never",
            "command": ["sh", "-c",
                        "mkdir -p /tmp/www && echo hello > /tmp/www/index.html && "
                        "exec httpd -f -p 8080 -h /tmp/www"],
            "readinessProbe": {"tcpSocket": {"port": 8080}, "periodSeconds": 1}}]},
    }, {
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {"type": "NodePort", "selector": {"app": "web"},
                 "ports": [{"port": 80, "targetPort": 8080}]},
    })
    node_cluster.kubectl("wait", "-n", namespace, "pod/web", "--for=condition=Ready",
                         "--timeout=90s", timeout=100)
    port = node_cluster.kubectl("get", "service", "-n", namespace, "web",
                                "-o", "jsonpath={.spec.ports[0].nodePort}").stdout
    url = f"http://{node_cluster.node_ip}:{port}/index.html"
    body = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not body:
        try:
            with urllib.request.urlopen(url, timeout=3) as response:
                body = response.read().decode()
        except OSError:
            time.sleep(0.5)
    assert body == "hello\n"


def test_egress_guard_rejects_outside_connections_at_once(
        node_cluster: NodeCluster, namespace: str, tools_pod: str) -> None:
    outward = devcluster.outward_interfaces()
    assert outward, "no default route: nothing to guard"
    for chain in ("FORWARD", "OUTPUT"):
        rules = subprocess.run(["iptables", "-w", "-S", chain], capture_output=True,
                               text=True, check=True).stdout.splitlines()
        # The guard comes before every rule that may accept: kube-proxy's and CNI's
        # own. kube-proxy may put its firewall jump first on a later sync; that
        # chain only drops, so it may come before the guard.
        guard = rules.index(f"-A {chain} -j {devcluster.GUARD_CHAIN}")
        may_accept = [i for i, rule in enumerate(rules)
                      if rule.startswith(f"-A {chain}") and "KUBE-PROXY-FIREWALL" not in rule
                      and "KUBE-FIREWALL" not in rule and i != guard]
        assert all(guard < i for i in may_accept), rules
    guard = subprocess.run(["iptables", "-w", "-S", devcluster.GUARD_CHAIN],
                           capture_output=True, text=True, check=True).stdout
    for dev in outward:
        assert f"-A {devcluster.GUARD_CHAIN} -i {devcluster.BRIDGE} -o {dev} -j REJECT" in guard
    gateway = json.loads(subprocess.run(["ip", "-j", "-4", "route", "show", "default"],
                                        capture_output=True, text=True,
                                        check=True).stdout)[0].get("gateway", "192.0.2.1")
    for target in (gateway, "198.51.100.7"):
        started = time.monotonic()
        # busybox nc has no -z: `-e /bin/true` (after the address) closes at once.
        result = exec_in(node_cluster, namespace, tools_pod,
                         "nc", "-w", "20", target, "443", "-e", "/bin/true")
        elapsed = time.monotonic() - started
        assert result.returncode != 0, f"a pod reached {target}:443"
        assert "Connection refused" in result.stderr, result.stderr
        # Rejected (reset), not dropped: far quicker than the 20 s connect timeout.
        assert elapsed < 5, f"{target}:443 took {elapsed:.1f}s to fail: {result.stderr}"
