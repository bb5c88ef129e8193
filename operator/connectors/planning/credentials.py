"""Pure planning for Credentials: keys, fingerprints and the Secrets the operator owns."""

from __future__ import annotations

import base64
import binascii
import hashlib
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ed25519, rsa

from .. import pgp
from ..api.credential import CredentialSpec
from .config import (
    ANNOTATION_ROTATED_FOR,
    LABEL_COMPONENT,
    LABEL_CREDENTIAL,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)

MIN_RSA_BITS = 2048
PGP_PRIVATE_KEY = "pgp-private-key.asc"
"""The key of a PGPKey's Secret that holds the platform's private key, ASCII-armored."""
PGP_PUBLIC_KEY = "pgp-public-key.asc"
"""The key of a PGPKey's Secret that holds the public key, ASCII-armored."""


def username_for(name: str, spec: CredentialSpec) -> str:
    return spec.username or name


def secret_name_for(name: str, spec: CredentialSpec) -> str:
    """The Secret that holds the credential: the user's, or ours named after the Credential."""
    return spec.secret_ref.name if spec.secret_ref else f"{name}-credential"


def expected_secret_key(spec: CredentialSpec) -> str:
    return "password" if spec.type == "Password" else "ssh-privatekey"


@dataclass(frozen=True)
class KeyCheck:
    fingerprints: list[str]
    problems: list[str]


def fingerprint(blob: bytes) -> str:
    """The SHA256 form `ssh-keygen -l` prints."""
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def check_authorized_keys(text: str) -> KeyCheck:
    """Parses every line with a real key parser; refuses DSA, short RSA and garbage."""
    fingerprints: list[str] = []
    problems: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split()
        try:
            blob = base64.b64decode(fields[1], validate=True) if len(fields) > 1 else b""
        except binascii.Error:
            blob = b""
        try:
            key = serialization.load_ssh_public_key(" ".join(fields[:2]).encode())
        except (ValueError, IndexError, TypeError, NotImplementedError):
            problems.append(f"publicKey line {number}: not an OpenSSH public key")
            continue
        if isinstance(key, dsa.DSAPublicKey):
            problems.append(f"publicKey line {number}: DSA keys are refused; use ed25519")
        elif isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
            problems.append(
                f"publicKey line {number}: RSA key of {key.key_size} bits; at least "
                f"{MIN_RSA_BITS} are needed (ed25519 is better)"
            )
        else:
            fingerprints.append(fingerprint(blob))
    if not fingerprints and not problems:
        problems.append("publicKey holds no key")
    return KeyCheck(fingerprints, problems)


def new_password() -> str:
    """32 URL-safe characters: 192 bits from the OS's CSPRNG."""
    return secrets.token_urlsafe(24)


def new_key_pair(comment: str) -> tuple[str, str]:
    """An ed25519 key pair: (private key in OpenSSH PEM, public key line)."""
    key = ed25519.Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()
    return private, f"{public} {comment}"


def new_self_signed_certificate(names: list[str], days: int = 3650) -> tuple[str, str]:
    """A self-signed ECDSA P-256 certificate for `names` (DNS names): (cert PEM,
    key PEM). For the FTPS and SMTP listeners when the platform brings no
    certificate of its own: passwords are then encrypted, and partners pin it."""
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0][:64])])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(n) for n in names]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_pem = certificate.public_bytes(serialization.Encoding.PEM).decode()
    key_pem = key.private_bytes(serialization.Encoding.PEM,
                                serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    return cert_pem, key_pem


@dataclass(frozen=True)
class CertificateFacts:
    """What a partner checks of a listener's TLS certificate: nothing secret."""

    sha256: str
    """The SHA-256 fingerprint, as `openssl x509 -fingerprint -sha256` prints it."""
    not_after: str
    """When it expires (RFC 3339)."""
    names: list[str]
    """The DNS names it covers."""


def certificate_facts(cert_pem: str) -> CertificateFacts:
    """The fingerprint, expiry and names of the first certificate in `cert_pem`."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    certificate = x509.load_pem_x509_certificate(cert_pem.encode())
    digest = certificate.fingerprint(hashes.SHA256()).hex().upper()
    try:
        names = certificate.extensions.get_extension_for_class(
            x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    except x509.ExtensionNotFound:
        names = []
    return CertificateFacts(
        ":".join(digest[i:i + 2] for i in range(0, len(digest), 2)),
        certificate.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        names,
    )


def public_key_of(private_pem: str) -> str:
    key = serialization.load_ssh_private_key(private_pem.encode(), password=None)
    return key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


def pgp_user_id(name: str, namespace: str) -> str:
    """The user id of a PGPKey's generated key pair: what the partner's gpg shows."""
    return f"connectors <{name}@{namespace}>"


def generated_secret(
    name: str, spec: CredentialSpec, namespace: str, rotated_for: str, owner: dict[str, Any]
) -> dict[str, Any]:
    """The Secret the operator owns for a generated password or key pair, with fresh values.

    PGPKey: an OpenPGP key pair made by gpg (pgp.generate_key_pair), which raises
    pgp.PgpError when gpg cannot make it."""
    username = username_for(name, spec)
    data: dict[str, str]
    if spec.type == "Password":
        secret_type = "kubernetes.io/basic-auth"
        data = {"username": username, "password": new_password()}
    elif spec.type == "PGPKey":
        secret_type = "Opaque"
        private, public, _ = pgp.generate_key_pair(pgp_user_id(name, namespace))
        data = {PGP_PRIVATE_KEY: private, PGP_PUBLIC_KEY: public}
    else:
        secret_type = "kubernetes.io/ssh-auth"
        private, public = new_key_pair(f"{username}@{namespace}")
        data = {"username": username, "ssh-privatekey": private, "ssh-publickey": public}
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": secret_type,
        "metadata": {
            "name": secret_name_for(name, spec),
            "namespace": namespace,
            "labels": {
                LABEL_MANAGED_BY: MANAGED_BY,
                LABEL_CREDENTIAL: name,
                LABEL_COMPONENT: "credential",
            },
            "annotations": {ANNOTATION_ROTATED_FOR: rotated_for},
            "ownerReferences": [owner],
        },
        "stringData": data,
    }
