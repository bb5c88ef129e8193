"""One real node on this machine (root only): preflight, start, and the running cluster.

Everything the node changes on the machine is written to node.json *before* it
is changed, so `stop` undoes exactly that, even after a half-finished `up`
(teardown.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from .constants import (
    BRIDGE,
    DEFAULT_DIR,
    DEFAULT_NODE_IP,
    NODE_BUILD_SCRIPT,
    NODE_PACKAGES,
    NODE_STATE,
    STATE_FILE,
)
from .controlplane import build_binaries, stop, up
from .host import (
    _cgroup_roots,
    _netns_names,
    _read_sysctls,
    ensure_guard_first,
    install_egress_guard,
    iptables_chains,
    outward_interfaces,
)
from .images import build_node_images, import_image
from .net import free_port
from .node_config import (
    _cni_config,
    _containerd_config,
    _corefile,
    _kubelet_config,
    _node_manifests,
    _provisioner_files,
    _proxy_config,
)
from .pki import write_kubeconfig
from .processes import _have, _run, _spawn, _wait, cached_build


class NodeUnavailable(RuntimeError):
    """This machine cannot run the node; the message is one line naming the fix."""


@dataclass
class NodeCluster:
    """A control plane plus one real node, as `up_node` returns it."""

    workdir: str
    kubeconfig: str
    server: str
    node_ip: str
    node_name: str
    containerd_socket: str
    pause_image: str
    tools_image: str
    storage_classes: dict[str, list[str]]

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120,
                input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Runs the cluster's own kubectl against this cluster."""
        return subprocess.run(
            [str(build_binaries() / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            check=check, capture_output=True, text=True, timeout=timeout, input=input,
        )

    def import_image(self, archive: Path | str) -> None:
        """Loads an image archive (OCI or docker-archive tar) into the node's containerd."""
        import_image(Path(self.containerd_socket), Path(archive))

    def stop(self) -> None:
        stop(Path(self.workdir))


def build_node_binaries() -> Path:
    """Runs the cached Go build of the node's binaries; returns their folder."""
    return cached_build(NODE_BUILD_SCRIPT, "CONNECTORS_NODE_BIN")


def preflight(install: bool = True) -> None:
    """Checks root, packages and kernel features; installs missing packages with apt-get.

    Raises NodeUnavailable with one line that names what is missing and the fix.
    """
    if os.geteuid() != 0:
        raise NodeUnavailable("the node needs root (it runs containerd and the kubelet): "
                              "run as root")
    missing = sorted({pkg for cmd, pkg in NODE_PACKAGES.items() if not _have(cmd)})
    if missing and install:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        argv = ["apt-get", "install", "-y", "--no-install-recommends", *missing]
        if subprocess.run(argv, env=env, capture_output=True).returncode != 0:
            # The package lists may be stale or absent on a fresh machine.
            subprocess.run(["apt-get", "update"], env=env, capture_output=True)
            subprocess.run(argv, env=env, capture_output=True)
        missing = sorted({pkg for cmd, pkg in NODE_PACKAGES.items() if not _have(cmd)})
    if missing:
        raise NodeUnavailable(f"missing Debian packages {' '.join(missing)}: "
                              f"apt-get install {' '.join(missing)}")
    filesystems = Path("/proc/filesystems").read_text()
    if "overlay" not in filesystems:
        subprocess.run(["modprobe", "overlay"], capture_output=True)
        if "overlay" not in Path("/proc/filesystems").read_text():
            raise NodeUnavailable("kernel lacks the overlay filesystem (containerd's "
                                  "snapshotter): modprobe overlay, or CONFIG_OVERLAY_FS=y")
    if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
        subprocess.run(["modprobe", "br_netfilter"], capture_output=True)
        if not Path("/proc/sys/net/bridge/bridge-nf-call-iptables").exists():
            raise NodeUnavailable("kernel lacks br_netfilter (Service traffic between pods on "
                                  "the bridge): modprobe br_netfilter")
    if not Path("/sys/fs/cgroup/memory").is_dir() and not Path(
            "/sys/fs/cgroup/cgroup.controllers").exists():
        raise NodeUnavailable("no cgroup memory controller mounted: mount cgroups "
                              "(v1 /sys/fs/cgroup/memory or v2 /sys/fs/cgroup)")
    probe = _run("ip", "link", "add", "connectors-prb", "type", "bridge", check=False)
    if probe.returncode != 0:
        raise NodeUnavailable(f"kernel cannot make a bridge link ({probe.stderr.strip()}): "
                              "modprobe bridge")
    _run("ip", "link", "del", "connectors-prb", check=False)
    probe = _run("ip", "link", "add", "connectors-v0", "type", "veth", "peer", "name",
                 "connectors-v1", check=False)
    if probe.returncode != 0:
        raise NodeUnavailable(f"kernel cannot make veth links ({probe.stderr.strip()}): "
                              "modprobe veth")
    _run("ip", "link", "del", "connectors-v0", check=False)


def _save_node_state(workdir: Path, state: dict[str, object]) -> None:
    path = workdir / NODE_STATE
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2))
    path.with_suffix(".tmp").replace(path)


def _healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as r:  # noqa: S310 (loopback URL built here)
            return bool(r.status == 200)
    except OSError:
        return False


def up_node(workdir: Path = DEFAULT_DIR, node_ip: str | None = None) -> NodeCluster:
    """Starts the control plane plus one real node on this machine; waits until usable.

    Usable means: the node Ready, the `kubernetes` Service's endpoint on the node IP,
    the cluster DNS answering, the provisioner running. A failure anywhere tears
    down whatever was started.
    """
    node_ip = node_ip or os.environ.get("CONNECTORS_NODE_IP", DEFAULT_NODE_IP)
    preflight()
    binaries = build_binaries()
    node_bin = build_node_binaries()
    images = build_node_images(node_bin)
    if (workdir / STATE_FILE).exists() or (workdir / NODE_STATE).exists():
        stop(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    state: dict[str, object] = {
        "node_ip": node_ip, "sysctls": _read_sysctls(), "netns_before": sorted(_netns_names()),
        "chains_before": {b: iptables_chains(b) for b in ("iptables", "ip6tables")},
        "pids": {},
    }
    _save_node_state(workdir, state)
    try:
        return _start_node(workdir, node_ip, binaries, node_bin, images, state)
    except BaseException:
        stop(workdir)
        raise


def _start_node(workdir: Path, node_ip: str, binaries: Path, node_bin: Path,
                images: dict[str, tuple[str, Path]], state: dict[str, object]) -> NodeCluster:
    start = _NodeStart(workdir, node_ip, node_bin, images, state)
    start.claim_address_and_guard()
    plane = up(workdir, node_ip=node_ip)
    for user in ("kubelet", "kube-scheduler", "kube-proxy", "coredns", "local-path-provisioner"):
        write_kubeconfig(workdir / f"{user}.kubeconfig", plane.server, start.pki, user)
    start.containerd()
    proxy_healthz = start.node_agents()
    kubectl = [str(binaries / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
    dns_ready = start.cluster_services(kubectl)
    start.wait_usable(kubectl, proxy_healthz, dns_ready)
    cluster = NodeCluster(
        workdir=str(workdir), kubeconfig=plane.kubeconfig, server=plane.server,
        node_ip=node_ip, node_name=node_ip, containerd_socket=str(start.socket_path),
        pause_image=images["pause"][0], tools_image=images["tools"][0],
        storage_classes={"local-path": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                        "ReadWriteOncePod"],
                         "local-path-node": ["ReadWriteOnce", "ReadWriteOncePod"]},
    )
    state["cluster"] = asdict(cluster)
    _save_node_state(workdir, state)
    return cluster


class _NodeStart:
    """The steps of `_start_node`, in order; each records in node.json what it is
    about to change before it changes it."""

    def __init__(self, workdir: Path, node_ip: str, node_bin: Path,
                 images: dict[str, tuple[str, Path]], state: dict[str, object]) -> None:
        self.workdir = workdir
        self.node_ip = node_ip
        self.node_bin = node_bin
        self.images = images
        self.state = state
        self.pids: dict[str, int] = state["pids"]  # type: ignore[assignment]
        self.pki = workdir / "pki"
        self.socket_path = workdir / "containerd" / "containerd.sock"

    def record(self) -> None:
        _save_node_state(self.workdir, self.state)

    def spawn(self, name: str, argv: list[str]) -> None:
        self.pids[name] = _spawn(name, argv, self.workdir)
        self.record()

    def wait(self, what: str, check: Callable[[], bool], timeout: float) -> None:
        _wait(what, check, timeout, self.pids, self.workdir)

    def claim_address_and_guard(self) -> None:
        """The node's address on `lo`, and the egress guard."""
        node_ip, state = self.node_ip, self.state
        addresses = _run("ip", "-j", "-4", "addr", "show", "dev", "lo").stdout
        if f'"{node_ip}"' not in addresses:
            state["lo_address"] = f"{node_ip}/32"
            self.record()
            _run("ip", "addr", "add", f"{node_ip}/32", "dev", "lo")
        outward = outward_interfaces()
        state["outward"] = outward
        state["guard"] = True
        self.record()
        install_egress_guard(outward)

    def containerd(self) -> None:
        """containerd and CNI, with the node's own images imported."""
        workdir, socket_path = self.workdir, self.socket_path
        (workdir / "containerd").mkdir(parents=True, exist_ok=True)
        (workdir / "containerd" / "config.toml").write_text(
            _containerd_config(workdir, self.images["pause"][0]))
        (workdir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
        (workdir / "cni" / "net.d" / "10-connectors.conflist").write_text(
            json.dumps(_cni_config(workdir), indent=2))
        self.state["bridge"] = BRIDGE
        self.record()
        self.spawn("containerd", ["containerd",
                                  f"--config={workdir / 'containerd' / 'config.toml'}",
                                  "--log-level=warn"])
        self.wait("containerd", lambda: _run("ctr", f"--address={socket_path}", "version",
                                             check=False).returncode == 0, 30)
        for _name, archive in self.images.values():
            import_image(socket_path, archive)

    def node_agents(self) -> int:
        """kubelet, kube-scheduler and kube-proxy; returns kube-proxy's health port."""
        workdir, node_ip, node_bin = self.workdir, self.node_ip, self.node_bin
        # The kubelet refuses a cgroupRoot that does not exist in every hierarchy.
        self.state["cgroups"] = True
        self.record()
        for root in _cgroup_roots():
            with contextlib.suppress(OSError):
                root.mkdir(exist_ok=True)
        (workdir / "resolv.conf").write_text("")
        kubelet_port, kubelet_healthz = free_port(), free_port()
        (workdir / "kubelet").mkdir(exist_ok=True)
        (workdir / "kubelet.yaml").write_text(json.dumps(
            _kubelet_config(workdir, node_ip, self.pki, self.socket_path, kubelet_port,
                            kubelet_healthz),
            indent=2))
        self.spawn("kubelet", [
            str(node_bin / "kubelet"),
            f"--config={workdir / 'kubelet.yaml'}",
            f"--kubeconfig={workdir / 'kubelet.kubeconfig'}",
            f"--root-dir={workdir / 'kubelet'}",
            f"--cert-dir={workdir / 'kubelet' / 'pki'}",
            # Named by its IP: a name that does not resolve breaks `kubectl logs` and `exec`.
            f"--hostname-override={node_ip}",
            f"--node-ip={node_ip}",
            "--v=1",
        ])
        sched_port = free_port()
        self.spawn("kube-scheduler", [
            str(node_bin / "kube-scheduler"),
            f"--kubeconfig={workdir / 'kube-scheduler.kubeconfig'}",
            f"--authentication-kubeconfig={workdir / 'kube-scheduler.kubeconfig'}",
            f"--authorization-kubeconfig={workdir / 'kube-scheduler.kubeconfig'}",
            "--bind-address=127.0.0.1",
            f"--secure-port={sched_port}",
            "--leader-elect=false",
            "--v=1",
        ])
        proxy_healthz, proxy_metrics = free_port(), free_port()
        (workdir / "kube-proxy.yaml").write_text(json.dumps(
            _proxy_config(workdir, node_ip, proxy_healthz, proxy_metrics), indent=2))
        self.spawn("kube-proxy", [str(node_bin / "kube-proxy"),
                                  f"--config={workdir / 'kube-proxy.yaml'}", "--v=1"])
        return proxy_healthz

    def cluster_services(self, kubectl: list[str]) -> int:
        """The cluster objects the host-process components need, the cluster DNS and
        the volume provisioner; returns the DNS's readiness port."""
        workdir, node_bin, tools = self.workdir, self.node_bin, self.images["tools"][0]
        manifests = {"apiVersion": "v1", "kind": "List",
                     "items": _node_manifests(self.node_ip, tools, workdir / "volumes")}
        subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(manifests), text=True,
                       check=True, capture_output=True, timeout=60)
        dns_health, dns_ready = free_port(), free_port()
        (workdir / "Corefile").write_text(
            _corefile(self.node_ip, dns_health, dns_ready, workdir / "coredns.kubeconfig"))
        self.spawn("coredns", [str(node_bin / "coredns"), "-conf", str(workdir / "Corefile")])
        config_file, helper_file = _provisioner_files(workdir, tools)
        self.spawn("local-path-provisioner", [
            str(node_bin / "local-path-provisioner"), "start",
            f"--kubeconfig={workdir / 'local-path-provisioner.kubeconfig'}",
            f"--config={config_file}",
            f"--helper-pod-file={helper_file}",
            "--namespace=local-path-storage",
            "--service-account-name=local-path-provisioner",
            f"--helper-image={tools}",
            "--provisioner-name=rancher.io/local-path",
        ])
        return dns_ready

    def wait_usable(self, kubectl: list[str], proxy_healthz: int, dns_ready: int) -> None:
        def node_ready() -> bool:
            result = subprocess.run(
                [*kubectl, "get", "node", self.node_ip, "-o",
                 "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"],
                capture_output=True, text=True, timeout=20)
            return result.stdout.strip() == "True"

        self.wait("the node", node_ready, 120)

        # kube-proxy prepends its jumps on its first sync; only then can the guard go first.
        def proxy_synced() -> bool:
            rules = _run("iptables", "-w", "-S", "FORWARD", check=False).stdout
            return "-j KUBE-FORWARD" in rules and _healthy(
                f"http://127.0.0.1:{proxy_healthz}/healthz")

        self.wait("kube-proxy", proxy_synced, 60)
        ensure_guard_first()
        self.wait("the cluster DNS", lambda: _healthy(f"http://127.0.0.1:{dns_ready}/ready"), 60)


def node_cluster(workdir: Path = DEFAULT_DIR) -> NodeCluster | None:
    """The node cluster a previous `up --node` started in `workdir`, if it finished."""
    path = workdir / NODE_STATE
    if not path.exists():
        return None
    cluster = json.loads(path.read_text()).get("cluster")
    return NodeCluster(**cluster) if cluster else None
