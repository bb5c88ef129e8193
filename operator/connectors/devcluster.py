"""A local Kubernetes control plane for tests and the demo.

etcd, kube-apiserver and kube-controller-manager run as plain processes on free
loopback ports, built once from Go modules by hack/controlplane/build.sh. The
API server has real authentication (client certificates), RBAC authorization
and a service-account issuer, so `kubectl create token` works and RBAC is
enforced. There is no kubelet and no scheduler: pods stay Pending.

    python -m connectors.devcluster up [--dir DIR]     prints KUBECONFIG=<path> last
    python -m connectors.devcluster down [--dir DIR]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import ipaddress
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.request
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


def make_pki(pki: Path) -> None:
    """A CA, the API server's serving certificate, client certificates and the SA key."""
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
        ],
        usage=[ExtendedKeyUsageOID.SERVER_AUTH],
    )
    client = [ExtendedKeyUsageOID.CLIENT_AUTH]
    issue("admin", _name("connectors-admin", "system:masters"), usage=client)
    issue("controller-manager", _name("system:kube-controller-manager"), usage=client)
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


def up(workdir: Path = DEFAULT_DIR) -> ControlPlane:
    """Starts etcd, kube-apiserver and kube-controller-manager; waits for /readyz."""
    binaries = build_binaries()
    if (workdir / STATE_FILE).exists():
        stop(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    pki = workdir / "pki"
    make_pki(pki)
    etcd_client, etcd_peer, api_port, cm_port = (free_port() for _ in range(4))
    server = f"https://127.0.0.1:{api_port}"
    pids: dict[str, int] = {}
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
    pids["kube-apiserver"] = _spawn("kube-apiserver", [
        str(binaries / "kube-apiserver"),
        f"--etcd-servers=http://127.0.0.1:{etcd_client}",
        "--bind-address=127.0.0.1",
        "--advertise-address=127.0.0.1",
        f"--secure-port={api_port}",
        f"--cert-dir={pki}",
        f"--tls-cert-file={pki / 'apiserver.crt'}",
        f"--tls-private-key-file={pki / 'apiserver.key'}",
        f"--client-ca-file={pki / 'ca.crt'}",
        "--authorization-mode=RBAC",
        "--anonymous-auth=false",
        "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
        f"--service-account-key-file={pki / 'sa.pub'}",
        f"--service-account-signing-key-file={pki / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--allow-privileged=true",
        # Endpoints may not hold loopback addresses; without a node network the
        # `kubernetes` Service endpoint has nothing valid to point at.
        "--endpoint-reconciler-type=none",
        "--v=1",
    ], workdir)
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
    kubeconfig = workdir / "kubeconfig"
    write_kubeconfig(kubeconfig, server, pki, "admin")
    plane = ControlPlane(str(workdir), str(kubeconfig), server, pids)
    (workdir / STATE_FILE).write_text(json.dumps(asdict(plane), indent=2))
    return plane


def _kill_all(pids: dict[str, int]) -> None:
    # Stop in reverse start order: the controller manager, then the API server, then etcd.
    for pid in reversed(list(pids.values())):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
    deadline = time.monotonic() + 15
    for pid in pids.values():
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def stop(workdir: Path = DEFAULT_DIR) -> None:
    """Stops the processes a previous `up` started and removes their data."""
    state = workdir / STATE_FILE
    if state.exists():
        _kill_all(json.loads(state.read_text())["pids"])
    shutil.rmtree(workdir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m connectors.devcluster", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["up", "down", "build"])
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR,
                        help=f"where state, certificates and data live (default {DEFAULT_DIR})")
    args = parser.parse_args(argv)
    if args.action == "build":
        print(build_binaries())
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
