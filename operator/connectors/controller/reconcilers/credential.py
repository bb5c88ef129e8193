"""Reconciling one Credential: its Secret, its keys, its status. I/O around planning."""

from __future__ import annotations

import base64
import functools
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from ... import pgp
from ...api.credential import CredentialSpec
from ...clock import now_rfc3339
from ...planning import credentials as plan
from ...planning.conditions import (
    FALSE,
    TRUE,
    Verdict,
    find,
    merge_conditions,
    status_changed,
)
from ...planning.config import (
    ANNOTATION_ROTATE,
    ANNOTATION_ROTATED_FOR,
    LABEL_MANAGED_BY,
    MANAGED_BY,
)
from ...planning.objects import owner_reference
from ..kube import Kube

log = logging.getLogger(__name__)


def decode(secret: dict[str, Any], key: str) -> str | None:
    value = (secret.get("data") or {}).get(key)
    return base64.b64decode(value).decode() if value is not None else None


@functools.lru_cache(maxsize=512)
def pgp_fingerprint(public_armored: str) -> str:
    """pgp.fingerprint_of, remembered: every resync reads the same keys again, and
    each reading runs gpg. Only answers are remembered, never a refusal."""
    return pgp.fingerprint_of(public_armored)


@dataclass
class CredentialOutcome:
    """What a reconcile found, for the status and for the Connections that use it."""

    verdict: Verdict
    status: dict[str, Any] = field(default_factory=dict)
    events: list[tuple[str, str, str]] = field(default_factory=list)


# Reads one of the operator's own Secrets from its watch cache: None when the
# cache does not hold it (not made yet, or not the operator's).
CachedSecret = Callable[[str, str], "dict[str, Any] | None"]


def _generated(kube: Kube, body: dict[str, Any], spec: CredentialSpec,
               cached: CachedSecret) -> CredentialOutcome:
    meta = body["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    rotate = (meta.get("annotations") or {}).get(ANNOTATION_ROTATE, "")
    secret_name = plan.secret_name_for(name, spec)
    previous = body.get("status") or {}
    outcome = CredentialOutcome(Verdict("Ready", TRUE, "SecretGenerated", ""))
    owner = owner_reference("Credential", body)
    # The cache holds the operator's own Secrets only: on a miss, creating is the
    # question "is the name free?", and only a refusal costs a read.
    secret = cached(namespace, secret_name)
    if secret is None and spec.type == "PGPKey":
        # gpg takes a while to make a key pair: ask first rather than make one in vain.
        secret = kube.get("Secret", namespace, secret_name)
    created = False
    if secret is None:
        secret = kube.create(plan.generated_secret(name, spec, namespace, rotate, owner))
        created = secret is not None
        if secret is None:
            secret = kube.get("Secret", namespace, secret_name)
    if secret is not None and (secret["metadata"].get("labels") or {}).get(
            LABEL_MANAGED_BY) != MANAGED_BY:
        outcome.verdict = Verdict(
            "Ready", FALSE, "SecretConflict",
            f"a Secret named {secret_name} exists that the operator did not create; the "
            "operator will not overwrite it: delete or rename it, or set spec.secretRef to use it",
        )
        return outcome
    if created:
        if previous.get("secretName") and spec.type == "PGPKey":
            outcome.events.append((
                "Warning", "SecretRecreated",
                f"Secret {secret_name} was deleted; a new OpenPGP key pair was generated: the "
                "partner must encrypt to the new public key in status.publicKey, and files "
                "encrypted to the old key can no longer be decrypted",
            ))
        elif previous.get("secretName"):
            what = "password" if spec.type == "Password" else "key pair"
            outcome.events.append((
                "Warning", "SecretRecreated",
                f"Secret {secret_name} was deleted; a new {what} was generated: whoever used "
                f"the old one must use the new one from Secret {secret_name}",
            ))
        else:
            outcome.events.append(("Normal", "SecretCreated",
                                   f"generated credentials into Secret {secret_name}"))
    elif secret is not None and secret["metadata"].get("annotations", {}).get(
            ANNOTATION_ROTATED_FOR, "") != rotate:
        fresh = plan.generated_secret(name, spec, namespace, rotate, owner)
        fresh["metadata"]["resourceVersion"] = secret["metadata"]["resourceVersion"]
        secret = kube.replace(fresh)
        outcome.status["rotatedAt"] = now_rfc3339()
        outcome.events.append(("Normal", "Rotated",
                               f"rotated the generated credentials in Secret {secret_name}"))
    assert secret is not None
    outcome.status["secretName"] = secret_name
    if spec.type == "PGPKey":
        _generated_pgp(secret, secret_name, outcome)
    elif spec.type == "PublicKey":
        public = decode(secret, "ssh-publickey") or ""
        outcome.status["publicKey"] = public
        outcome.status["fingerprints"] = plan.check_authorized_keys(public).fingerprints
        outcome.verdict = Verdict("Ready", TRUE, "KeyPairGenerated",
                                  "key pair generated: give status.publicKey to the partner "
                                  "to authorize")
    else:
        outcome.verdict = Verdict("Ready", TRUE, "PasswordGenerated",
                                  f"password generated into Secret {secret_name}")
    return outcome


def _generated_pgp(secret: dict[str, Any], secret_name: str, outcome: CredentialOutcome) -> None:
    """status.publicKey and the fingerprint of a generated OpenPGP key pair."""
    public = decode(secret, plan.PGP_PUBLIC_KEY) or ""
    if not public or not decode(secret, plan.PGP_PRIVATE_KEY):
        outcome.verdict = Verdict(
            "Ready", FALSE, "SecretKeyMissing",
            f"Secret {secret_name} lacks {plan.PGP_PRIVATE_KEY} or {plan.PGP_PUBLIC_KEY}: "
            "delete the Secret to have a new key pair generated (the partner must then "
            "encrypt to the new public key)")
        return
    try:
        fingerprint = pgp_fingerprint(public)
    except (ValueError, pgp.PgpError) as exc:
        outcome.verdict = Verdict("Ready", FALSE, "InvalidKeyPair",
                                  f"Secret {secret_name} key {plan.PGP_PUBLIC_KEY}: {exc}")
        return
    outcome.status["publicKey"] = public
    outcome.status["fingerprints"] = [fingerprint]
    outcome.verdict = Verdict("Ready", TRUE, "KeyPairGenerated",
                              f"OpenPGP key pair generated (fingerprint {fingerprint}): give "
                              "status.publicKey to the partner, who encrypts files to it")


def _referenced(kube: Kube, body: dict[str, Any], spec: CredentialSpec) -> CredentialOutcome:
    assert spec.secret_ref is not None
    namespace = body["metadata"]["namespace"]
    secret_name = spec.secret_ref.name
    key = plan.expected_secret_key(spec)
    secret = kube.get("Secret", namespace, secret_name)
    outcome = CredentialOutcome(Verdict("Ready", TRUE, "SecretFound", ""),
                                {"secretName": secret_name})
    if secret is None:
        outcome.verdict = Verdict("Ready", FALSE, "SecretNotFound",
                                  f"Secret {secret_name} does not exist in namespace {namespace}: "
                                  f"create it with the key {key}")
        return outcome
    value = decode(secret, key)
    if not value:
        outcome.verdict = Verdict("Ready", FALSE, "SecretKeyMissing",
                                  f"Secret {secret_name} has no key {key}: add it")
        return outcome
    if spec.type == "PublicKey":
        try:
            public = plan.public_key_of(value)
        except (ValueError, TypeError):
            outcome.verdict = Verdict("Ready", FALSE, "InvalidPrivateKey",
                                      f"Secret {secret_name} key {key} is not an unencrypted "
                                      "OpenSSH or PEM private key")
            return outcome
        outcome.status["fingerprints"] = plan.check_authorized_keys(public).fingerprints
    outcome.verdict = Verdict("Ready", TRUE, "SecretFound",
                              f"using {key} from Secret {secret_name}; the operator never writes "
                              "to it")
    return outcome


def _partner_pgp_key(spec: CredentialSpec) -> CredentialOutcome:
    """The partner's OpenPGP public key (pgp.encryptTo): read by gpg, as the job will."""
    assert spec.public_key is not None
    try:
        fingerprint = pgp_fingerprint(spec.public_key)
    except ValueError as exc:
        return CredentialOutcome(Verdict("Ready", FALSE, "InvalidPublicKey", f"publicKey: {exc}"))
    except pgp.PgpError as exc:
        return CredentialOutcome(Verdict("Ready", FALSE, "KeyCheckFailed",
                                         f"the partner's OpenPGP key could not be read: {exc}"))
    return CredentialOutcome(
        Verdict("Ready", TRUE, "KeyAccepted",
                f"the partner's OpenPGP public key {fingerprint}: files sent to the partner "
                "are encrypted to it"),
        {"fingerprints": [fingerprint]})


def _partner_keys(spec: CredentialSpec) -> CredentialOutcome:
    assert spec.public_key is not None
    if spec.type == "PGPKey":
        return _partner_pgp_key(spec)
    check = plan.check_authorized_keys(spec.public_key)
    outcome = CredentialOutcome(Verdict("Ready", TRUE, "KeysAccepted", ""),
                                {"fingerprints": check.fingerprints})
    if check.problems:
        outcome.verdict = Verdict("Ready", FALSE, "InvalidPublicKey", "; ".join(check.problems))
    else:
        outcome.verdict = Verdict("Ready", TRUE, "KeysAccepted",
                                  f"{len(check.fingerprints)} public key(s) accepted")
    return outcome


def reconcile_credential(kube: Kube, body: dict[str, Any],
                         cached: CachedSecret | None = None) -> CredentialOutcome:
    """Brings the Credential's Secret in line with its spec and writes its status.
    `cached` reads the operator's own Secrets from its watch cache; without it,
    from the API."""
    meta = body["metadata"]
    try:
        spec = CredentialSpec.model_validate(body.get("spec") or {})
    except ValidationError as error:
        fields = ", ".join(".".join(str(p) for p in e["loc"]) for e in error.errors())
        outcome = CredentialOutcome(Verdict("Ready", FALSE, "InvalidSpec",
                                            f"spec is invalid at: {fields}"))
    else:
        try:
            if spec.public_key is not None:
                outcome = _partner_keys(spec)
            elif spec.secret_ref is not None:
                outcome = _referenced(kube, body, spec)
            else:
                outcome = _generated(kube, body, spec, cached or (
                    lambda namespace, name: kube.get("Secret", namespace, name)))
        except pgp.PgpError as exc:
            # gpg could not make the key pair (not installed, stuck): nothing was written.
            outcome = CredentialOutcome(Verdict(
                "Ready", FALSE, "KeyGenerationFailed",
                f"could not generate the OpenPGP key pair: {exc}"))
        if spec.type != "PGPKey":  # an OpenPGP key logs nobody in
            outcome.status["username"] = plan.username_for(meta["name"], spec)
    write_status(kube, body, outcome)
    return outcome


def write_status(kube: Kube, body: dict[str, Any], outcome: CredentialOutcome) -> None:
    meta = body["metadata"]
    previous = body.get("status") or {}
    status = {
        "secretName": None, "username": None, "fingerprints": None, "publicKey": None,
        "rotatedAt": previous.get("rotatedAt"),
        **outcome.status,
        "observedGeneration": meta.get("generation", 0),
        "conditions": merge_conditions(previous.get("conditions"), [outcome.verdict],
                                       meta.get("generation", 0), now_rfc3339()),
    }
    old_ready = find(previous.get("conditions"), "Ready")
    flipped = old_ready is None or old_ready.get("status") != outcome.verdict.status
    if flipped and not outcome.verdict.ok:
        outcome.events.append(("Warning", outcome.verdict.reason, outcome.verdict.message))
    # Events first: whoever waits for the status to read `kubectl describe` sees them.
    for type_, reason, message in outcome.events:
        kube.event(body, type_, reason, message)
    # Only the fields the operator writes: revealedAt and revealedBy belong to `kubectl
    # connectors handoff --reveal`, and a merge patch leaves fields it does not name alone.
    if status_changed({k: previous.get(k) for k in status}, status):
        kube.patch_status("Credential", meta["namespace"], meta["name"], status)
