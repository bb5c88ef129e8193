"""The dev cluster's certificates: a CA, serving and client certificates, the
service-account key, kubeconfigs."""

from __future__ import annotations

import datetime
import ipaddress
import json
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .constants import SERVICE_CIDR


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
