"""Keys and certificates for local servers: the dev cluster's (a CA, serving
and client certificates, the service-account key, kubeconfigs), and the
self-signed certificates and SSH key pairs that tests and benchmarks give the
servers they start."""

from __future__ import annotations

import datetime
import ipaddress
import json
import subprocess
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .constants import SERVICE_CIDR


def write_key(path: Path, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> None:
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)


def certificate(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: x509.Name,
    issuer_key: ec.EllipticCurvePrivateKey,
    *,
    ca: bool = False,
    sans: list[x509.GeneralName] | None = None,
    usage: list[x509.ObjectIdentifier] | None = None,
    days: int = 30,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if sans:
        builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def x509_name(common_name: str, organization: str | None = None) -> x509.Name:
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
    ca_name = x509_name("connectors-dev-ca")
    ca = certificate(ca_name, ca_key, ca_name, ca_key, ca=True)
    (pki / "ca.crt").write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def issue(stem: str, subject: x509.Name, **kwargs: object) -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        cert = certificate(subject, key, ca_name, ca_key, **kwargs)  # type: ignore[arg-type]
        (pki / f"{stem}.crt").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(pki / f"{stem}.key", key)

    service_ip = next(ipaddress.IPv4Network(SERVICE_CIDR).hosts())
    issue(
        "apiserver",
        x509_name("kube-apiserver"),
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
    issue("admin", x509_name("connectors-admin", "system:masters"), usage=client)
    issue("controller-manager", x509_name("system:kube-controller-manager"), usage=client)
    if node_ip:
        # Each component has its own identity, so RBAC, the Node authorizer and
        # NodeRestriction see what a real cluster's would.
        issue("kubelet", x509_name(f"system:node:{node_ip}", "system:nodes"), usage=client)
        issue("kube-scheduler", x509_name("system:kube-scheduler"), usage=client)
        issue("kube-proxy", x509_name("system:kube-proxy"), usage=client)
        issue("apiserver-kubelet-client", x509_name("kube-apiserver-kubelet-client"), usage=client)
        issue("coredns", x509_name("connectors:coredns"), usage=client)
        issue("local-path-provisioner", x509_name("connectors:local-path-provisioner"),
              usage=client)
    # The controller manager's own identity gets only its built-in role; it runs
    # each controller with that controller's service account, as a cluster does.
    write_key(pki / "sa.key", rsa.generate_private_key(public_exponent=65537, key_size=2048))
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


def self_signed(folder: Path, names: Sequence[str] = ("localhost", "127.0.0.1"), *,
                cert_file: str = "tls.crt", key_file: str = "tls.key",
                days: int = 30) -> tuple[Path, Path]:
    """A self-signed certificate (ECDSA P-256) for `names`, host names or IP
    addresses, the first also its common name; written to `folder` as
    (certificate, key) in PEM. Marked as a CA, so that clients can trust it
    as it is (a cafile, a pinned certificate)."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509_name(names[0])
    sans: list[x509.GeneralName] = []
    for host in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(host)))
        except ValueError:
            sans.append(x509.DNSName(host))
    cert = certificate(subject, key, subject, key, ca=True, sans=sans, days=days)
    cert_path, key_path = folder / cert_file, folder / key_file
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    write_key(key_path, key)
    return cert_path, key_path


def ssh_keypair(path: Path, kind: str = "ed25519", *, comment: str | None = None,
                pem: bool = False) -> Path:
    """An unencrypted SSH key pair made by OpenSSH's ssh-keygen: `path` and
    `path`.pub; `pem` for the old PEM format some servers (proftpd) want."""
    argv = ["ssh-keygen", "-q", "-t", kind, "-N", "", "-f", str(path)]
    if comment is not None:
        argv[4:4] = ["-C", comment]
    if pem:
        argv[4:4] = ["-m", "PEM"]
    subprocess.run(argv, check=True)
    return path
