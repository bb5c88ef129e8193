"""The control plane: etcd, kube-apiserver and kube-controller-manager as local processes."""

from __future__ import annotations

import json
import shutil
import ssl
import time
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path

from .constants import BUILD_SCRIPT, DEFAULT_DIR, NODE_STATE, SERVICE_CIDR, STATE_FILE
from .net import free_port
from .pki import make_pki, write_kubeconfig
from .processes import _alive, _kill_all, _spawn, cached_build
from .teardown import stop_node


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
    return cached_build(BUILD_SCRIPT, "CONNECTORS_CONTROLPLANE_BIN")


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


# What `up(audit=True)` records in <workdir>/audit.log, one JSON object per line:
# who listed or watched which of the kinds the operator watches, and with which
# URL (requestURI, with its labelSelector). Nothing else, and never a body.
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
  - level: Metadata
    verbs: [list, watch]
    resources:
      - {group: "", resources: [secrets, configmaps, services, pods]}
      - {group: apps, resources: [deployments]}
      - {group: batch, resources: [cronjobs, jobs]}
  - level: None
"""
AUDIT_LOG = "audit.log"


def up(workdir: Path = DEFAULT_DIR, *, node_ip: str | None = None,
       audit: bool = False) -> ControlPlane:
    """Starts etcd, kube-apiserver and kube-controller-manager; waits for /readyz.

    With `node_ip` (used by `up_node`) the API server listens on that address
    instead of loopback, so pods can reach it, and advertises it, so the
    `kubernetes` Service's endpoints point there; the Node authorizer and the
    NodeRestriction admission plugin are on, as on a real cluster. With
    `audit`, the API server writes the list and watch requests of AUDIT_POLICY
    to <workdir>/audit.log.
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

    pids["etcd"] = _spawn("etcd", _etcd_argv(binaries, workdir, etcd_client, etcd_peer), workdir)
    record()
    apiserver = _apiserver_argv(binaries, pki, address, api_port, etcd_client, node_ip)
    if audit:
        policy = workdir / "audit-policy.yaml"
        policy.write_text(AUDIT_POLICY)
        apiserver += [f"--audit-policy-file={policy}",
                      f"--audit-log-path={workdir / AUDIT_LOG}",
                      # Each request is written before it is answered: a test reads
                      # the log right after the request.
                      "--audit-log-mode=blocking", "--audit-log-format=json"]
    pids["kube-apiserver"] = _spawn("kube-apiserver", apiserver, workdir)
    record()
    try:
        _wait_ready(server, pki, pids, workdir)
    except Exception:
        _kill_all(pids)
        raise
    write_kubeconfig(workdir / "controller-manager.kubeconfig", server, pki, "controller-manager")
    pids["kube-controller-manager"] = _spawn(
        "kube-controller-manager", _controller_manager_argv(binaries, workdir, pki, cm_port),
        workdir,
    )
    record()
    kubeconfig = workdir / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki, "admin")
    plane = ControlPlane(str(workdir), str(kubeconfig), server, pids)
    (workdir / STATE_FILE).write_text(json.dumps(asdict(plane), indent=2))
    return plane



def _etcd_argv(binaries: Path, workdir: Path, client: int, peer: int) -> list[str]:
    return [
        str(binaries / "etcd"),
        "--name=default",
        f"--data-dir={workdir / 'etcd'}",
        f"--listen-client-urls=http://127.0.0.1:{client}",
        f"--advertise-client-urls=http://127.0.0.1:{client}",
        f"--listen-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
        f"--initial-cluster=default=http://127.0.0.1:{peer}",
        # Data is thrown away after the run: durability buys nothing here.
        "--unsafe-no-fsync",
        "--log-level=warn",
    ]


def _apiserver_argv(binaries: Path, pki: Path, address: str, port: int, etcd_client: int,
                    node_ip: str | None) -> list[str]:
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
    return [
        str(binaries / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_client}",
        f"--bind-address={address}",
        f"--advertise-address={address}",
        f"--secure-port={port}",
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
    ]


def _controller_manager_argv(binaries: Path, workdir: Path, pki: Path, port: int) -> list[str]:
    kubeconfig = workdir / "controller-manager.kubeconfig"
    return [
        str(binaries / "kube-controller-manager"),
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        "--leader-elect=false",
        "--use-service-account-credentials=true",
        f"--service-account-private-key-file={pki / 'sa.key'}",
        f"--root-ca-file={pki / 'ca.crt'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--v=1",
    ]


def stop(workdir: Path = DEFAULT_DIR) -> None:
    """Stops the processes a previous `up` started and removes their data.

    A node is taken down first (`stop_node`), then the control plane.
    """
    stop_node(workdir)
    state = workdir / STATE_FILE
    if state.exists():
        _kill_all(json.loads(state.read_text())["pids"])
    shutil.rmtree(workdir, ignore_errors=True)
