"""A node-backed cluster for tests: the control plane plus one real node on this machine.

Importable by any test suite (the end-to-end tests use it too):

    from tests.node.cluster import NodeClusterManager
    manager = NodeClusterManager()
    cluster = manager.start()        # connectors.devcluster.NodeCluster
    cluster.kubeconfig, cluster.node_ip, cluster.kubectl("get", "pods")
    cluster.import_image("image.tar")  # OCI or docker archive into the node's containerd
    manager.stop()

or, in pytest, the session-scoped `node_cluster` fixture of tests/node/conftest.py.
Set CONNECTORS_NODE_TEST_DIR to choose the folder (default /tmp/connectors-node-tests).
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from connectors import devcluster
from connectors.devcluster import NodeCluster

DEFAULT_TEST_DIR = Path(tempfile.gettempdir()) / "connectors-node-tests"


def skip_reason() -> str | None:
    """Why this machine cannot run the node (one line), or None when it can."""
    if os.geteuid() != 0:
        return "the real node needs root (containerd, the kubelet, iptables)"
    try:
        devcluster.preflight()
    except devcluster.NodeUnavailable as error:
        return str(error)
    return None


def host_snapshot() -> dict[str, object]:
    """What the node may change on the machine, to compare before `up` and after `down`.

    Only what could be the node's own is kept: other work on this machine (podman
    builds, say) adds and removes its own mounts, veths and CNI rules meanwhile.
    """
    def run(*argv: str) -> str:
        result = subprocess.run(argv, capture_output=True, text=True, check=False)
        return result.stdout

    markers = ("KUBE-", "CONNECTORS-", devcluster.BRIDGE, devcluster.POD_CIDR.rsplit(".", 2)[0],
               f'name: \\"{devcluster.CNI_NETWORK}\\"')
    tables = {}
    for binary in ("iptables", "ip6tables"):
        for table in ("filter", "nat", "mangle", "raw"):
            lines = run(f"{binary}-save", "-t", table).splitlines()
            tables[f"{binary}/{table}"] = sorted(
                line.split(" [")[0] if line.startswith(":") else line
                for line in lines if any(m in line for m in markers))
    # The node's links: its bridge, and veths on it (others' veths sit on their bridges).
    links = sorted(link["ifname"] for link in json.loads(run("ip", "-j", "link", "show"))
                   if link.get("master") == devcluster.BRIDGE
                   or ("master" not in link and not link["ifname"].startswith("veth")))
    lo = sorted(
        f"{a['local']}/{a['prefixlen']}"
        for entry in json.loads(run("ip", "-j", "addr", "show", "dev", "lo"))
        for a in entry.get("addr_info", []))
    sysctls = {}
    for name in devcluster.SAVED_SYSCTLS:
        path = Path("/proc/sys") / name.replace(".", "/")
        if path.exists():
            sysctls[name] = path.read_text().strip()
    mount_markers = ("connectors", "/var/run/netns", "/run/netns", "kubelet", "containerd")
    mounts = sorted(point for line in Path("/proc/self/mountinfo").read_text().splitlines()
                    if any(m in (point := line.split()[4]) for m in mount_markers))
    netns = Path("/var/run/netns")
    cgroups = sorted(str(p) for p in Path("/sys/fs/cgroup").glob("*/connectors"))
    results = Path("/var/lib/cni/results")
    return {
        "iptables": tables, "links": links, "lo": lo, "sysctls": sysctls, "mounts": mounts,
        "netns": sorted(p.name for p in netns.iterdir() if p.name.startswith("cni-"))
        if netns.is_dir() else [],
        "cgroups": cgroups,
        "cni-results": sorted(p.name for p in results.glob(f"{devcluster.CNI_NETWORK}-*"))
        if results.is_dir() else [],
    }


class NodeClusterManager:
    """Starts the node cluster once, remembers the machine's state before, stops it."""

    def __init__(self, workdir: Path | None = None) -> None:
        self.workdir = workdir or Path(os.environ.get("CONNECTORS_NODE_TEST_DIR",
                                                      DEFAULT_TEST_DIR))
        self.baseline: dict[str, object] | None = None
        self.cluster: NodeCluster | None = None
        self.start_seconds: float | None = None

    def start(self) -> NodeCluster:
        if self.cluster is None:
            # A cluster a crashed earlier run left behind is torn down first, so the
            # baseline is the machine's own state.
            devcluster.stop(self.workdir)
            self.baseline = host_snapshot()
            started = time.monotonic()
            self.cluster = devcluster.up_node(self.workdir)
            self.start_seconds = time.monotonic() - started
        return self.cluster

    def stop(self) -> None:
        devcluster.stop(self.workdir)
        self.cluster = None


def wait_for(what: str, check: Callable[[], bool], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.5)
    raise AssertionError(f"{what} did not happen within {timeout:.0f}s")


def apply(cluster: NodeCluster, *objects: dict[str, object]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(
        {"apiVersion": "v1", "kind": "List", "items": list(objects)}))


def exec_in(cluster: NodeCluster, namespace: str, pod: str, *command: str,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Runs a command in a pod through the API server and the kubelet (not checked)."""
    return cluster.kubectl("exec", "-n", namespace, pod, "--", *command, check=False,
                           timeout=timeout)
