"""`kubectl connectors rotate`: a new generated password or key pair for a Credential.

The operator rotates a generated secret when the Credential's annotation
`connectors.dev/rotate` takes a new value (controller/reconcilers/credential.py):
it writes the new value into the Secret it owns, records the annotation's value
in the Secret, and sets status.rotatedAt. The plugin sets that annotation to a
value never used before and waits for rotatedAt to change. Pure: the words and
the request; cluster.py does the calls.
"""

from __future__ import annotations

import datetime
import json
from dataclasses import dataclass, field
from typing import Any

from ..api.connection import is_platform_initiated
from ..planning.config import ANNOTATION_ROTATE


def refusal(credential: dict[str, Any]) -> str | None:
    """Why the operator cannot rotate this Credential, or None when it can."""
    meta = credential["metadata"]
    spec = credential.get("spec") or {}
    status = credential.get("status") or {}
    name = meta["name"]
    if spec.get("secretRef"):
        return (f"Credential {name} uses Secret {spec['secretRef'].get('name')} (spec.secretRef), "
                "whose password or key a third party issued: the operator never writes to it, "
                "so rotate it where it was issued and update that Secret")
    if spec.get("publicKey"):
        return (f"Credential {name} holds the partner's public key (spec.publicKey): the "
                "partner owns the key pair, so the partner makes a new one and you replace "
                "spec.publicKey with its public half")
    if not status.get("secretName"):
        return (f"Credential {name} has no generated Secret yet (status.secretName is empty): "
                f"see kubectl describe credential {name}")
    return None


def request_value(now: datetime.datetime) -> str:
    """A value of the rotate annotation never used before: the time to the microsecond."""
    return now.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def annotation_patch(value: str) -> dict[str, Any]:
    """The merge patch that asks the operator to rotate."""
    return {"metadata": {"annotations": {ANNOTATION_ROTATE: value}}}


def problem(credential: dict[str, Any]) -> str | None:
    """The Credential's Ready=False message, when the operator could not serve it."""
    for condition in (credential.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready" and condition.get("status") == "False":
            return f"{condition.get('reason')}: {condition.get('message', '')}"
    return None


@dataclass
class Rotation:
    """What changed, and what to tell the partner."""

    credential: str
    namespace: str
    kind: str
    """Password or PublicKey (a generated key pair)."""
    secret: str
    rotated_at: str
    previous: str | None
    fingerprints_before: list[str] = field(default_factory=list)
    fingerprints_after: list[str] = field(default_factory=list)
    public_key: str | None = None
    connections: list[dict[str, Any]] = field(default_factory=list)
    """The namespace's Connections that name this Credential."""

    @property
    def changed(self) -> str:
        if self.kind == "Password":
            return (f"a new password in Secret {self.secret}; the old one no longer logs in "
                    "(listeners load the new account table within about a minute)")
        before = ", ".join(self.fingerprints_before) or "none"
        after = ", ".join(self.fingerprints_after) or "not known yet"
        return f"a new key pair in Secret {self.secret}: public key {before} -> {after}"

    def next_steps(self) -> list[str]:
        """One line per Connection: what the partner needs now, and the command that
        shows it."""
        where = f"-n {self.namespace}"
        if not self.connections:
            return [f"no Connection of namespace {self.namespace} uses it yet; once one does, "
                    f"kubectl connectors handoff CONNECTION {where} --reveal shows it"]
        steps = []
        for connection in self.connections:
            name = connection["metadata"]["name"]
            spec = connection.get("spec") or {}
            platform = is_platform_initiated(str(spec.get("direction")),
                                             str(spec.get("methodology")))
            if self.kind == "Password":
                use = ("set it on their server for the platform's login" if platform
                       else "log in with it")
                steps.append(f"{name}: send the partner the new password to {use}: kubectl "
                             f"connectors handoff {name} {where} --reveal")
            else:
                steps.append(f"{name}: the partner authorizes the new public key (and removes "
                             f"the old one) on their server: kubectl connectors handoff {name} "
                             f"{where} shows it (the private key stays with the platform)")
        return steps


def render_text(rotation: Rotation) -> str:
    lines = [
        f"Credential:    {rotation.credential}",
        f"Namespace:     {rotation.namespace}",
        f"Rotated at:    {rotation.rotated_at} (before: {rotation.previous or 'never rotated'})",
        f"What changed:  {rotation.changed}",
    ]
    if rotation.public_key:
        lines.append(f"Public key:    {rotation.public_key}")
    steps = rotation.next_steps()
    lines.append(f"Next:          {steps[0]}")
    lines += [f"               {step}" for step in steps[1:]]
    return "\n".join(lines)


def render_json(rotation: Rotation) -> str:
    return json.dumps({
        "credential": rotation.credential,
        "namespace": rotation.namespace,
        "type": rotation.kind,
        "secretName": rotation.secret,
        "rotatedAt": rotation.rotated_at,
        "previousRotatedAt": rotation.previous,
        "fingerprintsBefore": rotation.fingerprints_before,
        "fingerprintsAfter": rotation.fingerprints_after,
        "publicKey": rotation.public_key,
        "connections": [c["metadata"]["name"] for c in rotation.connections],
        "next": rotation.next_steps(),
    }, indent=2)
