"""A local Kubernetes control plane for tests and the demo.

etcd, kube-apiserver and kube-controller-manager run as plain processes on free
loopback ports, built once from Go modules by hack/controlplane/build.sh. The
API server has real authentication (client certificates), RBAC authorization
and a service-account issuer, so `kubectl create token` works and RBAC is
enforced. There is no kubelet and no scheduler: pods stay Pending.

With --node (root only) it also runs one real node on this machine: containerd +
runc, the CNI bridge, kubelet, kube-scheduler, kube-proxy, a cluster DNS and a
volume provisioner, all built from Go modules by hack/node/build.sh. See
`up_node` for what it changes on the machine and `stop` for how it is undone.

    python -m connectors.devcluster up [--node] [--dir DIR]   prints KUBECONFIG=<path> last
    python -m connectors.devcluster down [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import hashlib
import io
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "hack" / "controlplane" / "build.sh"
DEFAULT_DIR = Path(tempfile.gettempdir()) / "connectors-controlplane"
STATE_FILE = "state.json"
NODE_STATE = "node.json"
SERVICE_CIDR = "10.0.0.0/24"


@dataclass
class ControlPlane:
    """What a running control plane needs to be used and stopped."""

    workdir: str
    kubeconfig: str
    server: str
    pids: dict[str, int]

    def stop(self) -> None:
        stop(Path(self.workdir))


def build_binaries() -> Path:
    """Runs the cached Go build; returns the folder that holds the binaries."""
    if override := os.environ.get("CONNECTORS_CONTROLPLANE_BIN"):
        return Path(override)
    result = subprocess.run(
        [str(BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --- certificates -----------------------------------------------------------


def _write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def _certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _name(common_name: str, organization: str | None = None) -> x509.Name:
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, common_name)]
    if organization:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    return x509.Name(attributes)


def make_pki(pki: Path, node_ip: str | None = None) -> None:
    """A CA, the API server's serving certificate, client certificates and the SA key.

    With a node IP, the API server's certificate also names that address (pods
    and the kubelet reach it there), and the node's components get theirs.
    """
    pki.mkdir(parents=True, exist_ok=True)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = _name("connectors-dev-ca")
    ca = _certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(stem: str, subject: x509.Name, **kwargs: object) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = _certificate(subject, key, ca_name, ca_key, **kwargs)  # type: ignore[arg-type]
        (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        _write_key(pki / f"{stem}.key", key)

    service_ip = next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())
    issue(
        "apiserver",
        _name("kube-apiserver"),
        sans=[
            x509.DNSName("localhost"),
            x509.DNSName("kubernetes.default.svc"),
            x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
            x509.IPAddress(ipaddress.ip_address("::1")),
            x509.IPAddress(service_ip),
            *([x509.IPAddress(ipaddress.ip_address(node_ip))] if node_ip else []),
        ],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    issue("admin", _name("connectors-admin", "system:masters"), usage=client)
    issue("controller-manager", _name("system:kube-controller-manager"), usage=client)
    if node_ip:
        # Each component has its own identity, so RBAC, the Node authorizer and
        # NodeRestriction see what a real cluster's would.
        issue("kubelet", _name(f"system:node:{node_ip}", "system:nodes"), usage=client)
        issue("kube-scheduler", _name("system:kube-scheduler"), usage=client)
        issue("kube-proxy", _name("system:kube-proxy"), usage=client)
        issue("apiserver-kubelet-client", _name("kube-apiserver-kubelet-client"), usage=client)
        issue("coredns", _name("connectors:coredns"), usage=client)
        issue("local-path-provisioner", _name("connectors:local-path-provisioner"),
              usage=client)
    # The controller manager's own identity gets only its built-in role; it runs
    # each controller with that controller's service account, as a cluster does.
    _write_key(pki / "sa.key", rsa.generate_private_key(public_exponent=65537, key_size=2048))
    sa_key = serialization.load_pem_private_key((pki / "sa.key").read_bytes(), None)
    (pki / "sa.pub").write_bytes(
        sa_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


def write_kubeconfig(path: Path, server: str, pki: Path, user: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": "connectors-dev",
                "cluster": {"server": server, "certificate-authority": str(pki / "ca.crt")},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate": str(pki / f"{user}.crt"),
                    "client-key": str(pki / f"{user}.key"),
                },
            }
        ],
        "contexts": [
            {"name": "connectors-dev", "context": {"cluster": "connectors-dev", "user": user}}
        ],
        "current-context": "connectors-dev",
    }
    # JSON is valid YAML, and kubectl and the Python client both read it.
    path.write_text(json.dumps(config, indent=2))
    path.chmod(0o600)


# --- processes ----------------------------------------------------------------


def _spawn(name: str, argv: list[str], workdir: Path) -> int:
    log = (workdir / f"{name}.log").open("ab")
    # A session of its own, so `down` can stop the process group and a test
    # run's Ctrl-C does not leave half a control plane behind in odd states.
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process.pid


def _wait_ready(server: str, pki: Path, pids: dict[str, int], workdir: Path,
                timeout: float = 90.0) -> None:
    context = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    context.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not _alive(pid):
                log_tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited during start-up; its log ends:\n{log_tail}")
        try:
            url = f"{server}/readyz"  # always https://127.0.0.1:<port>, built above
            with urllib.request.urlopen(url, context=context, timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    return
        except OSError as error:
            last_error = str(error)
        time.sleep(0.25)
    raise TimeoutError(f"kube-apiserver not ready after {timeout}s: {last_error}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return True
    return state != "Z"


def up(workdir: Path = DEFAULT_DIR, *, node_ip: str | None = None) -> ControlPlane:
    """Starts etcd, kube-apiserver and kube-controller-manager; waits for /readyz.

    With `node_ip` (used by `up_node`) the API server listens on that address
    instead of loopback, so pods can reach it, and advertises it, so the
    `kubernetes` Service's endpoints point there; the Node authorizer and the
    NodeRestriction admission plugin are on, as on a real cluster.
    """
    binaries = build_binaries()
    if node_ip is None and ((workdir / STATE_FILE).exists() or (workdir / NODE_STATE).exists()):
        stop(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    make_pki(pki, node_ip)
    etcd_client, etcd_peer, api_port, cm_port = (free_port() for _ in range(4))
    address = node_ip or "127.0.0.1"
    server = f"https://{address}:{api_port}"
    pids: dict[str, int] = {}

    def record() -> None:
        # Written after every start, so `down` finds whatever an interrupted `up` left.
        (workdir / STATE_FILE).write_text(json.dumps({"pids": pids}, indent=2))

    pids["etcd"] = _spawn("etcd", [
        str(binaries / "etcd"),
        "--name=default",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{etcd_client}",
        f"--advertise-client-urls=http://127.0.0.1:{etcd_client}",
        f"--listen-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{etcd_peer}",
        f"--initial-cluster=default=http://127.0.0.1:{etcd_peer}",
        # Data is thrown away after the run: durability buys nothing here.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ], workdir)
    record()
    if node_ip:
        access = [
            "--authorization-mode=Node,RBAC",
            "--enable-admission-plugins=NodeRestriction",
            f"--kubelet-client-certificate={pki / 'apiserver-kubelet-client.crt'}",
            f"--kubelet-client-key={pki / 'apiserver-kubelet-client.key'}",
            "--kubelet-preferred-address-types=InternalIP",
        ]
    else:
        access = [
            "--authorization-mode=RBAC",
            # Endpoints may not hold loopback addresses; without a node network the
            # `kubernetes` Service endpoint has nothing valid to point at.
            "--endpoint-reconciler-type=none",
        ]
    pids["kube-apiserver"] = _spawn("kube-apiserver", [
        str(binaries / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_client}",
        f"--bind-address={address}",
        f"--advertise-address={address}",
        f"--secure-port={api_port}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--anonymous-auth=false",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        *access,
        "--v=1",
    ], workdir)
    record()
    try:
        _wait_ready(server, pki, pids, workdir)
    except Exception:
        _kill_all(pids)
        raise
    write_kubeconfig(workdir / "controller-manager.kubeconfig", server, pki, "controller-manager")
    pids["kube-controller-manager"] = _spawn("kube-controller-manager", [
        str(binaries / "kube-controller-manager"),
        f"--kubeconfig={workdir / 'controller-manager.kubeconfig'}",
        f"--authentication-kubeconfig={workdir / 'controller-manager.kubeconfig'}",
        f"--authorization-kubeconfig={workdir / 'controller-manager.kubeconfig'}",
        "--bind-address=127.0.0.1",
        f"--secure-port={cm_port}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--v=1",
    ], workdir)
    record()
    kubeconfig = workdir / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki, "admin")
    plane = ControlPlane(str(workdir), str(kubeconfig), server, pids)
    (workdir / STATE_FILE).write_text(json.dumps(asdict(plane), indent=2))
    return plane


def _kill_all(pids: dict[str, int]) -> None:
    # Stop in reverse start order, one at a time: the controller manager, then the
    # API server while etcd still answers (with a node it removes its `kubernetes`
    # endpoint lease on the way out and would wait for a dead etcd), then etcd.
    for pid in reversed(list(pids.values())):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def stop(workdir: Path = DEFAULT_DIR) -> None:
    """Stops the processes a previous `up` started and removes their data.

    A node is taken down first (`stop_node`), then the control plane.
    """
    stop_node(workdir)
    state = workdir / STATE_FILE
    if state.exists():
        _kill_all(json.loads(state.read_text())["pids"])
    shutil.rmtree(workdir, ignore_errors=True)


# --- a real node (root only) ---------------------------------------------------
#
# Everything the node changes on the machine is written to node.json *before* it
# is changed, so `stop` undoes exactly that, even after a half-finished `up`.

NODE_BUILD_SCRIPT = REPO / "hack" / "node" / "build.sh"
# The node's address lives on `lo` as a /32 (this kernel has no `dummy` links); a
# private address no route on this machine uses. Override with CONNECTORS_NODE_IP.
DEFAULT_NODE_IP = "10.250.0.1"
POD_CIDR = "10.244.0.0/24"
CLUSTER_DNS_IP = "10.0.0.10"
BRIDGE = "connectors0"
CNI_NETWORK = "connectors"
GUARD_CHAIN = "CONNECTORS-EGRESS"
# Chains the node's components create; teardown removes them from every table.
CHAIN_PREFIXES = ("KUBE-", "CNI-", "CONNECTORS-")
# Kernel settings the kubelet (setupKernelTunables), the CNI bridge (ip_forward)
# and kube-proxy may rewrite; saved before start and restored at teardown.
SAVED_SYSCTLS = (
    "vm.overcommit_memory", "vm.panic_on_oom", "kernel.panic", "kernel.panic_on_oops",
    "kernel.keys.root_maxkeys", "kernel.keys.root_maxbytes", "net.ipv4.ip_forward",
    "net.ipv4.conf.all.forwarding", "net.ipv4.conf.all.route_localnet",
    "net.bridge.bridge-nf-call-iptables", "net.bridge.bridge-nf-call-ip6tables",
    "net.ipv6.conf.all.forwarding", "net.netfilter.nf_conntrack_max",
)
# command -> the Debian package that provides it.
NODE_PACKAGES = {
    "containerd": "containerd", "ctr": "containerd", "runc": "runc",
    "/usr/lib/cni/bridge": "containernetworking-plugins",
    "/usr/lib/cni/host-local": "containernetworking-plugins",
    "/usr/lib/cni/portmap": "containernetworking-plugins",
    "/usr/lib/cni/loopback": "containernetworking-plugins",
    "iptables": "iptables", "ip6tables": "iptables", "iptables-save": "iptables",
    "conntrack": "conntrack", "ip": "iproute2", "mount": "mount",
    # The helper image of the provisioner and the tests' tools: a static busybox.
    "/bin/busybox": "busybox-static",
}
PAUSE_IMAGE = "localhost/connectors-pause:"
TOOLS_IMAGE = "localhost/connectors-node-tools:"


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
    if override := os.environ.get("CONNECTORS_NODE_BIN"):
        return Path(override)
    result = subprocess.run(
        [str(NODE_BUILD_SCRIPT)], check=True, stdout=subprocess.PIPE, text=True
    )
    return Path(result.stdout.strip().splitlines()[-1])


def _run(*argv: str, check: bool = True, input: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, input=input,
                          timeout=timeout)


def _have(command: str) -> bool:
    return Path(command).exists() if command.startswith("/") else shutil.which(command) is not None


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


# --- images ----------------------------------------------------------------------


def _tar_add(tar: tarfile.TarFile, name: str, data: bytes | None = None, *,
             mode: int = 0o755, link: str | None = None, directory: bool = False) -> None:
    info = tarfile.TarInfo(name)
    info.mtime = 0  # fixed, so an unchanged input gives the same digest
    info.mode = mode
    if directory:
        info.type = tarfile.DIRTYPE
        tar.addfile(info)
    elif link is not None:
        info.type = tarfile.SYMTYPE
        info.linkname = link
        tar.addfile(info)
    else:
        assert data is not None
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))


def _oci_archive(path: Path, name: str, layer: bytes, config: dict[str, object]) -> None:
    """Writes a one-layer OCI image archive that `ctr images import` accepts."""
    def blob(data: bytes) -> tuple[str, bytes]:
        return "sha256:" + hashlib.sha256(data).hexdigest(), data

    layer_digest, _ = blob(layer)
    image_config = json.dumps({
        "architecture": "amd64", "os": "linux", "config": config,
        "rootfs": {"type": "layers", "diff_ids": [layer_digest]},
    }).encode()
    config_digest, _ = blob(image_config)
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": config_digest, "size": len(image_config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                    "digest": layer_digest, "size": len(layer)}],
    }).encode()
    manifest_digest, _ = blob(manifest)
    index = json.dumps({
        "schemaVersion": 2,
        "manifests": [{
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "digest": manifest_digest, "size": len(manifest),
            "annotations": {"io.containerd.image.name": name,
                            "org.opencontainers.image.ref.name": name.rsplit(":", 1)[1]},
        }],
    }).encode()
    partial = path.with_suffix(".partial")
    with tarfile.open(partial, "w") as tar:
        _tar_add(tar, "oci-layout", b'{"imageLayoutVersion": "1.0.0"}', mode=0o644)
        _tar_add(tar, "index.json", index, mode=0o644)
        for data in (layer, image_config, manifest):
            _tar_add(tar, f"blobs/sha256/{hashlib.sha256(data).hexdigest()}", data, mode=0o644)
    partial.rename(path)


def _layer(files: dict[str, bytes], links: dict[str, str], dirs: list[str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for d in dirs:
            _tar_add(tar, d, directory=True, mode=0o1777 if d == "tmp" else 0o755)
        for name, data in files.items():
            _tar_add(tar, name, data)
        for name, target in sorted(links.items()):
            _tar_add(tar, name, link=target)
    return buffer.getvalue()


def build_node_images(binaries: Path) -> dict[str, tuple[str, Path]]:
    """The pause and tools images as OCI archives, cached by content under ~/.cache.

    Nothing can be pulled here: the pause image holds the static `pause` built
    from hack/node/pause, the tools image Debian's static busybox (a shell for the
    provisioner's helper pods, and nc/wget/nslookup for tests).
    """
    cache = Path(os.environ.get("CONNECTORS_CACHE", Path.home() / ".cache" / "connectors"))
    folder = cache / "node-images"
    folder.mkdir(parents=True, exist_ok=True)
    pause = (binaries / "pause").read_bytes()
    busybox = Path("/bin/busybox").read_bytes()
    images: dict[str, tuple[str, Path]] = {}
    for kind, prefix, binary in (("pause", PAUSE_IMAGE, pause), ("tools", TOOLS_IMAGE, busybox)):
        tag = hashlib.sha256(binary).hexdigest()[:12]
        archive = folder / f"{kind}-{tag}.tar"
        name = prefix + tag
        if not archive.exists():
            if kind == "pause":
                layer = _layer({"pause": pause}, {}, [])
                config: dict[str, object] = {"Entrypoint": ["/pause"], "User": "65535:65535"}
            else:
                applets = _run("/bin/busybox", "--list").stdout.split()
                links = {f"bin/{a}": "busybox" for a in applets if a != "busybox"}
                layer = _layer({"bin/busybox": busybox}, links, ["bin", "tmp", "etc"])
                config = {"Cmd": ["/bin/sh"], "Env": ["PATH=/bin"]}
            _oci_archive(archive, name, layer, config)
        images[kind] = (name, archive)
    return images


def import_image(socket_path: Path, archive: Path) -> None:
    """`ctr -n k8s.io images import`: the namespace the kubelet's CRI reads."""
    _run("ctr", f"--address={socket_path}", "-n", "k8s.io", "images", "import",
         "--no-unpack=false", str(archive), timeout=300)


# --- host state ------------------------------------------------------------------


def _sysctl_path(name: str) -> Path:
    return Path("/proc/sys") / name.replace(".", "/")


def _read_sysctls() -> dict[str, str]:
    values = {}
    for name in SAVED_SYSCTLS:
        with contextlib.suppress(OSError):
            values[name] = _sysctl_path(name).read_text().strip()
    return values


def outward_interfaces() -> list[str]:
    """The interfaces of the default routes: where a packet would leave the machine."""
    names: list[str] = []
    for family in ("-4", "-6"):
        routes = json.loads(_run("ip", "-j", family, "route", "show", "default").stdout or "[]")
        names += [r["dev"] for r in routes if r.get("dev") and r["dev"] not in names]
    return names


def _guard_rules(outward: list[str]) -> list[list[str]]:
    """The egress guard: nothing from the pod bridge, pod or Service range leaves.

    TCP gets a reset and the rest an ICMP error, so a pod's connection to an
    outside address fails at once instead of timing out.
    """
    rules: list[list[str]] = []
    for dev in outward:
        for match in (["-i", BRIDGE], ["-s", POD_CIDR], ["-d", POD_CIDR], ["-d", SERVICE_CIDR]):
            rules.append([*match, "-o", dev, "-p", "tcp", "-j", "REJECT",
                          "--reject-with", "tcp-reset"])
            rules.append([*match, "-o", dev, "-j", "REJECT"])
    # Pods talk to each other on the bridge and to the node's own addresses
    # (INPUT, not FORWARD); forwarding them anywhere else is never needed.
    rules.append(["-i", BRIDGE, "!", "-o", BRIDGE, "-p", "tcp", "-j", "REJECT",
                  "--reject-with", "tcp-reset"])
    rules.append(["-i", BRIDGE, "!", "-o", BRIDGE, "-j", "REJECT"])
    return rules


def install_egress_guard(outward: list[str]) -> None:
    _run("iptables", "-w", "-N", GUARD_CHAIN, check=False)
    _run("iptables", "-w", "-F", GUARD_CHAIN)
    for rule in _guard_rules(outward):
        _run("iptables", "-w", "-A", GUARD_CHAIN, *rule)
    ensure_guard_first()


def ensure_guard_first() -> None:
    """Puts the jumps to the guard first in FORWARD and OUTPUT.

    kube-proxy prepends its own jumps when it starts; its KUBE-FORWARD accepts
    marked and established traffic, so the guard must come before it.
    """
    for chain in ("FORWARD", "OUTPUT"):
        while _run("iptables", "-w", "-D", chain, "-j", GUARD_CHAIN, check=False).returncode == 0:
            pass
        _run("iptables", "-w", "-I", chain, "1", "-j", GUARD_CHAIN)


def iptables_chains(binary: str = "iptables") -> dict[str, list[str]]:
    """Every chain of every table, as iptables-save lists them."""
    chains: dict[str, list[str]] = {}
    for table in ("filter", "nat", "mangle", "raw"):
        saved = _run(f"{binary}-save", "-t", table, check=False).stdout
        chains[table] = sorted(line[1:].split()[0] for line in saved.splitlines()
                               if line.startswith(":"))
    return chains


def remove_chains(binary: str, existing: dict[str, list[str]]) -> None:
    """Removes the KUBE-*, CNI-* and CONNECTORS-* chains `up` made, and rules using them.

    Chains that existed before `up` stay (podman's CNI, say, uses CNI-FORWARD and
    CNI-HOSTPORT-* too). Each table is rewritten from its own iptables-save output
    minus those lines, in one iptables-restore, so everything else stays as it is.
    """
    for table in ("filter", "nat", "mangle", "raw"):
        saved = _run(f"{binary}-save", "-t", table, check=False)
        before = set(existing.get(table, []))

        def ours(chain: str, before: set[str] = before) -> bool:
            return chain.startswith(CHAIN_PREFIXES) and chain not in before

        if saved.returncode != 0 or not any(
                line.startswith(":") and ours(line[1:].split()[0])
                for line in saved.stdout.splitlines()):
            continue
        kept: list[str] = []
        for line in saved.stdout.splitlines():
            words = line.split()
            if line.startswith(":") and ours(words[0][1:]):
                continue
            if line.startswith("-A") and (
                    ours(words[1]) or any(
                        w in ("-j", "-g") and i + 1 < len(words) and ours(words[i + 1])
                        for i, w in enumerate(words))):
                continue
            kept.append(line)
        _run(f"{binary}-restore", "-w", input="\n".join(kept) + "\n")


def _mounts_under(root: Path) -> list[str]:
    mounts = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        point = line.split()[4].encode().decode("unicode_escape")
        if point == str(root) or point.startswith(f"{root}/"):
            mounts.append(point)
    return mounts


def _netns_names() -> set[str]:
    folder = Path("/var/run/netns")
    return {p.name for p in folder.iterdir()} if folder.is_dir() else set()


def _cgroup_roots() -> list[Path]:
    base = Path("/sys/fs/cgroup")
    if (base / "cgroup.controllers").exists():
        return [base / "connectors"]
    return [d / "connectors" for d in base.iterdir() if d.is_dir()]


def _cgroup_pids() -> list[int]:
    pids: set[int] = set()
    for root in _cgroup_roots():
        if root.is_dir():
            for procs in root.rglob("cgroup.procs"):
                with contextlib.suppress(OSError):
                    pids.update(int(p) for p in procs.read_text().split())
    return sorted(pids)


def _remove_cgroups() -> None:
    for root in _cgroup_roots():
        if not root.is_dir():
            continue
        # Children before parents; a cgroup directory is removed with rmdir only.
        for folder in sorted((p for p in root.rglob("*") if p.is_dir()),
                             key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                folder.rmdir()
        with contextlib.suppress(OSError):
            root.rmdir()


# --- node start --------------------------------------------------------------------


def _save_node_state(workdir: Path, state: dict[str, object]) -> None:
    path = workdir / NODE_STATE
    path.with_suffix(".tmp").write_text(json.dumps(state, indent=2))
    path.with_suffix(".tmp").replace(path)


def _wait(what: str, check: Callable[[], bool], timeout: float, pids: dict[str, int],
          workdir: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not _alive(pid):
                log_tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited during start-up; its log ends:\n{log_tail}")
        if check():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; logs in {workdir}")


def _containerd_config(workdir: Path, pause_image: str) -> str:
    root = workdir / "containerd"
    return f"""version = 2
root = "{root / 'root'}"
state = "{root / 'state'}"
# Plugins this node never uses; disabled so they neither probe nor log.
disabled_plugins = ["io.containerd.snapshotter.v1.aufs", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.tracing.processor.v1.otlp", "io.containerd.internal.v1.tracing"]

[grpc]
  address = "{root / 'containerd.sock'}"

[ttrpc]
  address = "{root / 'containerd-ttrpc.sock'}"

[plugins."io.containerd.internal.v1.opt"]
  path = "{root / 'opt'}"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause_image}"
  # CAP_SYS_RESOURCE is not in this machine's bounding set: containers may only
  # raise their OOM score, never lower it below containerd's own.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        # crun fails on this hybrid cgroup layout; the kubelet uses cgroupfs too.
        BinaryName = "runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "{workdir / 'cni' / 'net.d'}"
"""


def _cni_config(workdir: Path) -> dict[str, object]:
    return {
        "cniVersion": "0.4.0",
        "name": CNI_NETWORK,
        "plugins": [
            {
                "type": "bridge",
                "bridge": BRIDGE,
                "isGateway": True,
                "ipMasq": True,
                "hairpinMode": True,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": POD_CIDR}]],
                    "routes": [{"dst": "0.0.0.0/0"}],
                    # Under the node's folder, not /var/lib/cni, so teardown removes it.
                    "dataDir": str(workdir / "cni" / "ipam"),
                },
            },
            {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True},
        ],
    }


def _kubelet_config(workdir: Path, node_ip: str, pki: Path, socket_path: Path,
                    port: int, healthz_port: int) -> dict[str, object]:
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{socket_path}",
        # This machine mounts cgroup v1 hierarchies; kubelet 1.35+ refuses them unless told.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # Pods' cgroups under /connectors, so teardown knows exactly which to remove.
        "cgroupRoot": "/connectors",
        "podLogsDir": str(workdir / "pod-logs"),
        "volumePluginDir": str(workdir / "kubelet" / "volume-plugins"),
        # No KUBE-MARK-* chains from the kubelet: kube-proxy owns iptables.
        "makeIPTablesUtilChains": False,
        "clusterDNS": [CLUSTER_DNS_IP],
        "clusterDomain": "cluster.local",
        # An empty host resolv.conf: pods never learn the machine's upstream resolvers.
        "resolvConf": str(workdir / "resolv.conf"),
        "failSwapOn": False,
        # Low thresholds: a nearly full test disk must not evict the product's pods,
        # and images imported by hand (they cannot be pulled again) must not be collected.
        "evictionHard": {"memory.available": "50Mi", "nodefs.available": "1%",
                         "nodefs.inodesFree": "1%", "imagefs.available": "1%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "serializeImagePulls": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "nodeStatusUpdateFrequency": "4s",
        "syncFrequency": "10s",
        "fileCheckFrequency": "20s",
    }


def _proxy_config(workdir: Path, node_ip: str, healthz_port: int,
                  metrics_port: int) -> dict[str, object]:
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": str(workdir / "kube-proxy.kubeconfig")},
        "hostnameOverride": node_ip,
        "clusterCIDR": POD_CIDR,
        # Real ports: kube-proxy refuses port 0 for these.
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        # NodePorts on the node's address only: never on the outward interface.
        "nodePortAddresses": [f"{node_ip}/32"],
        # Zeros leave the host's conntrack sysctls as they are.
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                      "tcpCloseWaitTimeout": "0s", "udpTimeout": "0s",
                      "udpStreamTimeout": "0s"},
        # true would set route_localnet on the whole machine.
        "iptables": {"localhostNodePorts": False, "syncPeriod": "30s", "minSyncPeriod": "1s"},
    }


def _corefile(node_ip: str, health_port: int, ready_port: int, kubeconfig: Path) -> str:
    # Only cluster.local and the reverse zones: any other name has no server
    # block and is refused; this build of CoreDNS has no forward plugin at all.
    return f"""cluster.local:53 in-addr.arpa:53 ip6.arpa:53 {{
    bind {node_ip}
    errors
    health 127.0.0.1:{health_port}
    ready 127.0.0.1:{ready_port}
    kubernetes cluster.local in-addr.arpa ip6.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
    }}
    cache 5
}}
"""


def _node_manifests(node_ip: str, helper_image: str, volumes: Path) -> list[dict[str, object]]:
    """RBAC for the host-process components, the DNS Service and the storage classes."""
    def binding(name: str, role: str, user: str) -> dict[str, object]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRoleBinding",
                "metadata": {"name": name},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                            "name": role},
                "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User",
                              "name": user}]}

    def role(name: str, rules: list[dict[str, list[str]]]) -> dict[str, object]:
        return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                "metadata": {"name": name}, "rules": rules}

    lpp_ns = "local-path-storage"
    return [
        # The API server's client identity towards the kubelet (logs, exec, port-forward).
        binding("connectors:apiserver-kubelet", "system:kubelet-api-admin",
                "kube-apiserver-kubelet-client"),
        role("connectors:coredns", [
            {"apiGroups": [""], "resources": ["endpoints", "services", "pods", "namespaces"],
             "verbs": ["list", "watch"]},
            {"apiGroups": ["discovery.k8s.io"], "resources": ["endpointslices"],
             "verbs": ["list", "watch"]},
        ]),
        binding("connectors:coredns", "connectors:coredns", "connectors:coredns"),
        # As in local-path-provisioner's deploy/local-path-storage.yaml.
        role("connectors:local-path-provisioner", [
            {"apiGroups": [""], "resources": ["nodes", "persistentvolumeclaims", "configmaps",
                                              "pods", "pods/log"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["pods"], "verbs": ["create", "delete", "patch"]},
            {"apiGroups": [""], "resources": ["persistentvolumes"],
             "verbs": ["get", "list", "watch", "create", "patch", "update", "delete"]},
            {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]},
            {"apiGroups": ["storage.k8s.io"], "resources": ["storageclasses"],
             "verbs": ["get", "list", "watch"]},
            {"apiGroups": [""], "resources": ["endpoints"],
             "verbs": ["get", "list", "watch", "create", "update", "patch"]},
            {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"],
             "verbs": ["get", "list", "watch", "create", "update", "patch"]},
        ]),
        binding("connectors:local-path-provisioner", "connectors:local-path-provisioner",
                "connectors:local-path-provisioner"),
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": lpp_ns}},
        {"apiVersion": "v1", "kind": "ServiceAccount",
         "metadata": {"name": "local-path-provisioner", "namespace": lpp_ns}},
        {"apiVersion": "v1", "kind": "ConfigMap",
         "metadata": {"name": "local-path-config", "namespace": lpp_ns},
         "data": {
             # The helper pod makes and removes a volume's folder on the host.
             "setup": '#!/bin/sh\nset -eu\nmkdir -m 0777 -p "$VOL_DIR"\n',
             "teardown": '#!/bin/sh\nset -eu\nrm -rf "$VOL_DIR"\n',
         }},
        {"apiVersion": "v1", "kind": "Service",
         "metadata": {"name": "kube-dns", "namespace": "kube-system",
                      "labels": {"k8s-app": "kube-dns"}},
         # No selector: CoreDNS runs as a host process, its EndpointSlice is below.
         "spec": {"clusterIP": CLUSTER_DNS_IP,
                  "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}},
        {"apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
         "metadata": {"name": "kube-dns-host", "namespace": "kube-system",
                      "labels": {"kubernetes.io/service-name": "kube-dns",
                                 "endpointslice.kubernetes.io/managed-by": "connectors"}},
         "addressType": "IPv4",
         "endpoints": [{"addresses": [node_ip], "conditions": {"ready": True}}],
         "ports": [{"name": "dns", "port": 53, "protocol": "UDP"},
                   {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "local-path",
                      "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
         "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
         "volumeBindingMode": "Immediate"},
        {"apiVersion": "storage.k8s.io/v1", "kind": "StorageClass",
         "metadata": {"name": "local-path-node"},
         "provisioner": "rancher.io/local-path", "reclaimPolicy": "Delete",
         "volumeBindingMode": "WaitForFirstConsumer"},
    ]


def _provisioner_files(workdir: Path, helper_image: str) -> tuple[Path, Path]:
    volumes = workdir / "volumes"
    config = {
        "storageClassConfigs": {
            # One machine, one disk: every pod of the cluster sees the same folder, so
            # the provisioner's shared-filesystem mode is true here and serves every
            # access mode, ReadWriteMany included, with no node affinity.
            "local-path": {"sharedFileSystemPath": str(volumes / "shared")},
            # The upstream default: ReadWriteOnce/ReadWriteOncePod, bound to the node.
            "local-path-node": {"nodePathMap": [
                {"node": "DEFAULT_PATH_FOR_NON_LISTED_NODES", "paths": [str(volumes / "node")]}
            ]},
        },
    }
    config_file = workdir / "local-path-config.json"
    config_file.write_text(json.dumps(config, indent=2))
    helper = {
        "apiVersion": "v1", "kind": "Pod", "metadata": {"name": "helper-pod"},
        "spec": {
            "priorityClassName": "system-node-critical",
            "tolerations": [{"key": "node.kubernetes.io/disk-pressure", "operator": "Exists",
                             "effect": "NoSchedule"}],
            "containers": [{"name": "helper-pod", "image": helper_image,
                            "imagePullPolicy": "Never"}],
        },
    }
    helper_file = workdir / "local-path-helper-pod.yaml"
    helper_file.write_text(json.dumps(helper))
    return config_file, helper_file


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
    pids: dict[str, int] = state["pids"]  # type: ignore[assignment]

    def spawn(name: str, argv: list[str]) -> None:
        pids[name] = _spawn(name, argv, workdir)
        _save_node_state(workdir, state)

    addresses = _run("ip", "-j", "-4", "addr", "show", "dev", "lo").stdout
    if f'"{node_ip}"' not in addresses:
        state["lo_address"] = f"{node_ip}/32"
        _save_node_state(workdir, state)
        _run("ip", "addr", "add", f"{node_ip}/32", "dev", "lo")
    outward = outward_interfaces()
    state["outward"] = outward
    state["guard"] = True
    _save_node_state(workdir, state)
    install_egress_guard(outward)

    plane = up(workdir, node_ip=node_ip)
    pki = workdir / "pki"
    for user in ("kubelet", "kube-scheduler", "kube-proxy", "coredns", "local-path-provisioner"):
        write_kubeconfig(workdir / f"{user}.kubeconfig", plane.server, pki, user)

    # containerd and CNI.
    socket_path = workdir / "containerd" / "containerd.sock"
    (workdir / "containerd").mkdir(parents=True, exist_ok=True)
    (workdir / "containerd" / "config.toml").write_text(
        _containerd_config(workdir, images["pause"][0]))
    (workdir / "cni" / "net.d").mkdir(parents=True, exist_ok=True)
    (workdir / "cni" / "net.d" / "10-connectors.conflist").write_text(
        json.dumps(_cni_config(workdir), indent=2))
    state["bridge"] = BRIDGE
    _save_node_state(workdir, state)
    spawn("containerd", ["containerd", f"--config={workdir / 'containerd' / 'config.toml'}",
                         "--log-level=warn"])
    _wait("containerd", lambda: _run("ctr", f"--address={socket_path}", "version",
                                     check=False).returncode == 0, 30, pids, workdir)
    for _name, archive in images.values():
        import_image(socket_path, archive)

    # kubelet. It refuses a cgroupRoot that does not exist in every hierarchy.
    state["cgroups"] = True
    _save_node_state(workdir, state)
    for root in _cgroup_roots():
        with contextlib.suppress(OSError):
            root.mkdir(exist_ok=True)
    (workdir / "resolv.conf").write_text("")
    kubelet_port, kubelet_healthz = free_port(), free_port()
    (workdir / "kubelet").mkdir(exist_ok=True)
    (workdir / "kubelet.yaml").write_text(json.dumps(
        _kubelet_config(workdir, node_ip, pki, socket_path, kubelet_port, kubelet_healthz),
        indent=2))
    spawn("kubelet", [
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
    spawn("kube-scheduler", [
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
    spawn("kube-proxy", [str(node_bin / "kube-proxy"), f"--config={workdir / 'kube-proxy.yaml'}",
                         "--v=1"])

    # Cluster objects the host-process components need.
    manifests = {"apiVersion": "v1", "kind": "List",
                 "items": _node_manifests(node_ip, images["tools"][0], workdir / "volumes")}
    kubectl = [str(binaries / "kubectl"), f"--kubeconfig={plane.kubeconfig}"]
    subprocess.run([*kubectl, "apply", "-f", "-"], input=json.dumps(manifests), text=True,
                   check=True, capture_output=True, timeout=60)

    dns_health, dns_ready = free_port(), free_port()
    (workdir / "Corefile").write_text(
        _corefile(node_ip, dns_health, dns_ready, workdir / "coredns.kubeconfig"))
    spawn("coredns", [str(node_bin / "coredns"), "-conf", str(workdir / "Corefile")])
    config_file, helper_file = _provisioner_files(workdir, images["tools"][0])
    spawn("local-path-provisioner", [
        str(node_bin / "local-path-provisioner"), "start",
        f"--kubeconfig={workdir / 'local-path-provisioner.kubeconfig'}",
        f"--config={config_file}",
        f"--helper-pod-file={helper_file}",
        "--namespace=local-path-storage",
        "--service-account-name=local-path-provisioner",
        f"--helper-image={images['tools'][0]}",
        "--provisioner-name=rancher.io/local-path",
    ])

    def node_ready() -> bool:
        result = subprocess.run(
            [*kubectl, "get", "node", node_ip, "-o",
             "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"],
            capture_output=True, text=True, timeout=20)
        return result.stdout.strip() == "True"

    _wait("the node", node_ready, 120, pids, workdir)
    # kube-proxy prepends its jumps on its first sync; only then can the guard go first.
    def proxy_synced() -> bool:
        rules = _run("iptables", "-w", "-S", "FORWARD", check=False).stdout
        return "-j KUBE-FORWARD" in rules and _healthy(
            f"http://127.0.0.1:{proxy_healthz}/healthz")

    _wait("kube-proxy", proxy_synced, 60, pids, workdir)
    ensure_guard_first()
    _wait("the cluster DNS", lambda: _healthy(f"http://127.0.0.1:{dns_ready}/ready"), 60,
          pids, workdir)
    cluster = NodeCluster(
        workdir=str(workdir), kubeconfig=plane.kubeconfig, server=plane.server,
        node_ip=node_ip, node_name=node_ip, containerd_socket=str(socket_path),
        pause_image=images["pause"][0], tools_image=images["tools"][0],
        storage_classes={"local-path": ["ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                        "ReadWriteOncePod"],
                         "local-path-node": ["ReadWriteOnce", "ReadWriteOncePod"]},
    )
    state["cluster"] = asdict(cluster)
    _save_node_state(workdir, state)
    return cluster


def node_cluster(workdir: Path = DEFAULT_DIR) -> NodeCluster | None:
    """The node cluster a previous `up --node` started in `workdir`, if it finished."""
    path = workdir / NODE_STATE
    if not path.exists():
        return None
    cluster = json.loads(path.read_text()).get("cluster")
    return NodeCluster(**cluster) if cluster else None


def stop_node(workdir: Path) -> None:
    """Undoes what node.json says `up_node` did; safe to run twice or on a half start."""
    path = workdir / NODE_STATE
    if not path.exists():
        return
    state = json.loads(path.read_text())
    pids: dict[str, int] = state.get("pids", {})
    socket_path = workdir / "containerd" / "containerd.sock"
    # The kubelet first, so it does not restart the containers stopped below.
    node_side = {k: v for k, v in pids.items() if k != "containerd"}
    _kill_all(node_side)
    # Every process in the pods' cgroups (containers and their children).
    for _ in range(3):
        victims = _cgroup_pids()
        if not victims:
            break
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        time.sleep(0.3)
    if "containerd" in pids:
        if socket_path.exists() and _alive(pids["containerd"]):
            # Lets containerd remove the tasks and unmount their root filesystems.
            listed = _run("ctr", f"--address={socket_path}", "-n", "k8s.io", "tasks", "ls", "-q",
                          check=False, timeout=20)
            for task in listed.stdout.split():
                _run("ctr", f"--address={socket_path}", "-n", "k8s.io", "tasks", "rm", "-f",
                     task, check=False, timeout=20)
        _kill_all({"containerd": pids["containerd"]})
    # Shims outlive containerd (they daemonize); ours name our socket on their command line.
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if cmdline and cmdline[0].endswith(b"containerd-shim-runc-v2") and \
                    str(socket_path).encode() in cmdline:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(proc.name), signal.SIGKILL)
    # Network namespaces the CRI made (under /var/run/netns: containerd 1.6 has no
    # option to put them elsewhere): new cni-* names since `up`.
    before = set(state.get("netns_before", []))
    for name in sorted(_netns_names() - before):
        if name.startswith("cni-"):
            target = Path("/var/run/netns") / name
            _run("umount", str(target), check=False)
            with contextlib.suppress(OSError):
                target.unlink()
    for point in sorted(_mounts_under(workdir), key=len, reverse=True):
        if _run("umount", point, check=False).returncode != 0:
            _run("umount", "-l", point, check=False)
    _remove_cgroups()
    for binary in ("iptables", "ip6tables"):
        remove_chains(binary, state.get("chains_before", {}).get(binary, {}))
    if state.get("bridge"):
        _run("ip", "link", "del", state["bridge"], check=False)
    if state.get("lo_address"):
        _run("ip", "addr", "del", state["lo_address"], "dev", "lo", check=False)
    # libcni's cache of our network's results (its folder is fixed in containerd 1.6).
    for cached in Path("/var/lib/cni/results").glob(f"{CNI_NETWORK}-*"):
        with contextlib.suppress(OSError):
            cached.unlink()
    for name, value in state.get("sysctls", {}).items():
        with contextlib.suppress(OSError):
            if _sysctl_path(name).read_text().strip() != value:
                _sysctl_path(name).write_text(value)
    path.unlink()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.devcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "build", "import-image"])
    parser.add_argument("archive", nargs="?", type=Path,
                        help="import-image: an OCI or docker image archive for the node")
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"where state, certificates and data live (default {DEFAULT_DIR})")
    parser.add_argument("--node", action="store_true",
                        help="also run one real node on this machine (root only)")
    # Intermixed: `import-image --dir DIR ARCHIVE` reads as it is written.
    args = parser.parse_intermixed_args(argv)
    if args.action == "build":
        print(build_binaries())
        if args.node:
            print(build_node_binaries())
    elif args.action == "import-image":
        if args.archive is None:
            parser.error("import-image needs the archive's path")
        started = time.monotonic()
        import_image(args.dir / "containerd" / "containerd.sock", args.archive)
        print(f"imported {args.archive.name} in {time.monotonic() - started:.1f}s",
              file=sys.stderr)
    elif args.action == "up" and args.node:
        started = time.monotonic()
        try:
            cluster = up_node(args.dir)
        except NodeUnavailable as error:
            print(f"devcluster: {error}", file=sys.stderr)
            return 2
        print(f"control plane and node {cluster.node_name} ready at {cluster.server} in "
              f"{time.monotonic() - started:.1f}s; logs in {cluster.workdir}", file=sys.stderr)
        print(f"KUBECONFIG={cluster.kubeconfig}")
    elif args.action == "up":
        started = time.monotonic()
        plane = up(args.dir)
        print(f"control plane ready at {plane.server} in {time.monotonic() - started:.1f}s; "
              f"logs in {plane.workdir}", file=sys.stderr)
        print(f"KUBECONFIG={plane.kubeconfig}")
    else:
        stop(args.dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
