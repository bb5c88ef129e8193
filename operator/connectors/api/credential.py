"""The Credential resource: who may log in, or how the platform logs in to a partner."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from .common import Condition, LocalObjectReference, Model
from .rules import Rule, cel_extension

CredentialType = Literal["Password", "PublicKey", "PGPKey"]

USERNAME_PATTERN = r"^[a-z][a-z0-9._-]{0,31}$"

# One OpenSSH public key per line ("TYPE BASE64 [comment]"), blank lines allowed.
# The one list of key types: the CRD, the operator and the SFTP listener use it.
# ssh-dss is absent on purpose: DSA keys are refused. Security-key types
# (sk-ssh-ed25519@openssh.com, ...) are absent because the listener's SSH
# library (paramiko) cannot verify them: such a Credential could never log in.
KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
_KEY_TYPE = "(" + "|".join(re.escape(t) for t in KEY_TYPES) + ")"
_KEY_LINE = _KEY_TYPE + r" AAAA[A-Za-z0-9+/]+={0,3}( [^\n]*)?"
AUTHORIZED_KEYS_PATTERN = rf"^\s*{_KEY_LINE}(\s*\n\s*{_KEY_LINE})*\s*$"

# One ASCII-armored OpenPGP public key block (`gpg --armor --export KEY`): its
# BEGIN line, then lines that never hold a run of five dashes (so no second
# block and no other armor), then its END line. RE2 and Python read it alike.
PGP_PUBLIC_BEGIN = "-----BEGIN PGP PUBLIC KEY BLOCK-----"
PGP_PUBLIC_END = "-----END PGP PUBLIC KEY BLOCK-----"
PGP_PUBLIC_KEY_PATTERN = (
    rf"^\s*{PGP_PUBLIC_BEGIN}\r?\n([^-]|-{{1,4}}[^-])*\n{PGP_PUBLIC_END}\s*$"
)

RULES: tuple[Rule, ...] = (
    Rule(
        ".publicKey",
        "self.type in ['PublicKey', 'PGPKey'] || !has(self.publicKey)",
        "publicKey is allowed only when type is PublicKey (OpenSSH keys) or PGPKey (an "
        "OpenPGP public key): remove it or set the type",
        lambda s: s.type in ("PublicKey", "PGPKey") or s.public_key is None,
    ),
    Rule(
        ".secretRef",
        "!(has(self.publicKey) && has(self.secretRef))",
        "set publicKey (the partner's key, to log in to our listener) or secretRef "
        "(a password or private key a third party issued), not both",
        lambda s: not (s.public_key is not None and s.secret_ref is not None),
    ),
    Rule(
        ".publicKey",
        # A CEL raw string: the pattern goes to RE2 exactly as Python's re sees it.
        "!has(self.publicKey) || self.type != 'PublicKey' "
        f"|| self.publicKey.matches(r'{AUTHORIZED_KEYS_PATTERN}')",
        "publicKey must hold OpenSSH public keys, one per line, such as "
        "'ssh-ed25519 AAAAC3Nza... partner@example.com'; types: "
        + ", ".join(KEY_TYPES)
        + " (DSA keys are refused)",
        lambda s: s.public_key is None or s.type != "PublicKey"
        or re.fullmatch(AUTHORIZED_KEYS_PATTERN, s.public_key) is not None,
    ),
    Rule(
        ".publicKey",
        "!has(self.publicKey) || self.type != 'PGPKey' "
        f"|| self.publicKey.matches(r'{PGP_PUBLIC_KEY_PATTERN}')",
        "publicKey of a PGPKey must hold one ASCII-armored OpenPGP public key, as "
        f"`gpg --armor --export KEY` writes it: from {PGP_PUBLIC_BEGIN} to {PGP_PUBLIC_END}",
        lambda s: s.public_key is None or s.type != "PGPKey"
        or re.fullmatch(PGP_PUBLIC_KEY_PATTERN, s.public_key) is not None,
    ),
    Rule(
        ".secretRef",
        "self.type != 'PGPKey' || !has(self.secretRef)",
        "secretRef is not for PGPKey: leave publicKey out to have the operator generate "
        "the platform's key pair, or set publicKey to the partner's public key",
        lambda s: s.type != "PGPKey" or s.secret_ref is None,
    ),
    Rule(
        ".username",
        "self.type != 'PGPKey' || !has(self.username)",
        "username is not for PGPKey, which encrypts files and logs nobody in: remove it",
        lambda s: s.type != "PGPKey" or s.username is None,
    ),
)

assert "'" not in PGP_PUBLIC_KEY_PATTERN, "the CEL rule quotes it in a raw '...' string"


class CredentialSpec(Model):
    """How a partner logs in to the platform, or how the platform logs in to a partner,
    or (PGPKey) the OpenPGP key that files are encrypted with.

    Password without secretRef: the operator generates a username and a strong
    password into a Secret it owns, once. PublicKey with publicKey: the partner
    logs in with those keys. PublicKey without publicKey or secretRef: the
    operator generates an ed25519 key pair and shows the public half in status.
    PGPKey without publicKey: the operator generates an OpenPGP key pair once and
    shows the public key in status, for the partner to encrypt files to (a
    Connection's pgp.decryptWith). PGPKey with publicKey: the partner's OpenPGP
    public key, that files sent to the partner are encrypted to (pgp.encryptTo).
    """

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra=cel_extension(RULES),
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES

    type: CredentialType
    """Password, PublicKey (SSH keys) or PGPKey (an OpenPGP key for the files themselves,
    referenced from a Connection's spec.pgp, never as its credentialRef)."""
    description: Annotated[str, Field(max_length=1024)] | None = None
    """Free text for people: who this credential is for."""
    username: Annotated[str, Field(pattern=USERNAME_PATTERN, max_length=32)] | None = None
    """Login name; defaults to the Credential's name. 1 to 32 characters of lower-case
    letters, digits, '.', '_' and '-', starting with a letter."""
    public_key: Annotated[str, Field(max_length=16384)] | None = None
    """PublicKey: the partner's OpenSSH public keys (authorized_keys lines, one per
    line). RSA keys need at least 2048 bits; DSA keys are refused. PGPKey: the
    partner's OpenPGP public key, one ASCII-armored block (`gpg --armor --export KEY`),
    which must be able to encrypt (RSA of at least 2048 bits, or ECC)."""
    secret_ref: LocalObjectReference | None = None
    """An existing Secret that a third party issued, holding `password` (type Password)
    or `ssh-privatekey` (type PublicKey). The operator reads it and never writes to it."""


class CredentialStatus(Model):
    """What the operator made of the Credential."""

    observed_generation: int | None = None
    """The metadata.generation the operator last acted on."""
    conditions: list[Condition] | None = None
    """Ready tells whether the Credential can be used."""
    secret_name: str | None = None
    """The Secret that holds the username and password or key."""
    username: str | None = None
    """The login name."""
    fingerprints: list[str] | None = None
    """SHA256 fingerprints of the public keys, as `ssh-keygen -l` shows them; for a
    PGPKey, the OpenPGP fingerprint (40 hexadecimal digits), as `gpg --fingerprint`
    shows it without spaces."""
    public_key: str | None = None
    """The public half of a generated key pair, for the partner to authorize (SSH) or
    to encrypt files to (OpenPGP, ASCII-armored)."""
    rotated_at: str | None = None
    """When the generated secret was last rotated (RFC 3339)."""
    revealed_at: str | None = None
    """When the password or private key was last shown to a person by `kubectl connectors
    handoff --reveal` (RFC 3339): the Kubernetes counterpart of "shown once". Later than
    rotatedAt: the current value has been handed out."""
    revealed_by: str | None = None
    """Who it was shown to: the Kubernetes user that ran `handoff --reveal`."""
