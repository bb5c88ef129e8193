"""The Credential resource: who may log in, or how the platform logs in to a partner."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import ConfigDict, Field

from .common import Condition, LocalObjectReference, Model
from .rules import Rule, cel_extension

CredentialType = Literal["Password", "PublicKey"]

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

RULES: tuple[Rule, ...] = (
    Rule(
        ".publicKey",
        "self.type == 'PublicKey' || !has(self.publicKey)",
        "publicKey is allowed only when type is PublicKey: remove it or set type: PublicKey",
        lambda s: s.type == "PublicKey" or s.public_key is None,
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
        f"!has(self.publicKey) || self.publicKey.matches(r'{AUTHORIZED_KEYS_PATTERN}')",
        "publicKey must hold OpenSSH public keys, one per line, such as "
        "'ssh-ed25519 AAAAC3Nza... partner@example.com'; types: "
        + ", ".join(KEY_TYPES)
        + " (DSA keys are refused)",
        lambda s: s.public_key is None
        or re.fullmatch(AUTHORIZED_KEYS_PATTERN, s.public_key) is not None,
    ),
)


class CredentialSpec(Model):
    """How a partner logs in to the platform, or how the platform logs in to a partner.

    Password without secretRef: the operator generates a username and a strong
    password into a Secret it owns, once. PublicKey with publicKey: the partner
    logs in with those keys. PublicKey without publicKey or secretRef: the
    operator generates an ed25519 key pair and shows the public half in status.
    """

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra=cel_extension(RULES),
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES

    type: CredentialType
    """Password or PublicKey."""
    description: Annotated[str, Field(max_length=1024)] | None = None
    """Free text for people: who this credential is for."""
    username: Annotated[str, Field(pattern=USERNAME_PATTERN, max_length=32)] | None = None
    """Login name; defaults to the Credential's name. 1 to 32 characters of lower-case
    letters, digits, '.', '_' and '-', starting with a letter."""
    public_key: Annotated[str, Field(max_length=16384)] | None = None
    """PublicKey only: the partner's OpenSSH public keys (authorized_keys lines, one per
    line). RSA keys need at least 2048 bits; DSA keys are refused."""
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
    """SHA256 fingerprints of the public keys, as `ssh-keygen -l` shows them."""
    public_key: str | None = None
    """The public half of a generated key pair, for the partner to authorize."""
    rotated_at: str | None = None
    """When the generated secret was last rotated (RFC 3339)."""
    revealed_at: str | None = None
    """When the password or private key was last shown to a person by `kubectl connectors
    handoff --reveal` (RFC 3339): the Kubernetes counterpart of "shown once". Later than
    rotatedAt: the current value has been handed out."""
    revealed_by: str | None = None
    """Who it was shown to: the Kubernetes user that ran `handoff --reveal`."""
