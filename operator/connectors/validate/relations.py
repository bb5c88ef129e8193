"""The checks between objects: each Connection's Credential exists and fits it, and
no two Connections of one listener claim one username.

The operator makes these decisions with credential_misfit, pgp_misfit and
plan_accounts; the validator calls the same functions on what the files (and, with
--cluster, the live namespace) hold, so it refuses what the operator would.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..api.compat import credential_misfit, pgp_credential_name, pgp_misfit
from ..api.connection import ConnectionSpec
from ..api.credential import CredentialSpec
from ..planning.accounts import AccountSource, plan_accounts
from ..planning.credentials import username_for
from ..planning.listeners import protocol_of
from .checks import WARNING, Parsed, Problem

Key = tuple[str, str]
CREDENTIAL_REF: list[str | int] = ["spec", "credentialRef", "name"]


@dataclass
class Snapshot:
    """The Connections and Credentials a live cluster holds in some namespaces (only
    those whose spec is valid: the operator sets the others aside too)."""

    connections: dict[Key, ConnectionSpec] = field(default_factory=dict)
    credentials: dict[Key, CredentialSpec] = field(default_factory=dict)


def check_relations(parsed: list[Parsed], live: Snapshot | None) -> list[Problem]:
    """Problems between the files' objects, and between them and the live ones."""
    credentials: dict[Key, CredentialSpec | None] = dict(live.credentials) if live else {}
    for p in parsed:
        if p.kind == "Credential":
            # What the files say wins over the cluster: it is what will be applied. An
            # invalid one (None) has its own problems already; nothing more to say here.
            credentials[(p.namespace, p.name)] = (p.spec if isinstance(p.spec, CredentialSpec)
                                                  else None)
    problems = [problem for p in _connections(parsed)
                for problem in _reference_problems(p, credentials, live is not None)]
    return problems + _username_conflicts(parsed, credentials, live)


def _connections(parsed: list[Parsed]) -> list[Parsed]:
    return [p for p in parsed if p.kind == "Connection" and isinstance(p.spec, ConnectionSpec)]


def _reference_problems(p: Parsed, credentials: dict[Key, CredentialSpec | None],
                        cluster: bool) -> list[Problem]:
    assert isinstance(p.spec, ConnectionSpec)
    ref = p.spec.credential_ref.name
    if (p.namespace, ref) not in credentials:
        if cluster:
            return [p.problem(CREDENTIAL_REF, f"no Credential named {ref} in namespace "
                              f"{p.namespace}, neither in these files nor in the cluster: "
                              "add it or fix the name")]
        return [p.problem(CREDENTIAL_REF, f"Credential {ref} is in none of these files, so "
                          "whether it exists and fits cannot be checked: it must exist in "
                          f"namespace {p.namespace} when this is applied (--cluster looks it "
                          "up there)", WARNING)]
    credential = credentials[(p.namespace, ref)]
    misfit = credential_misfit(p.spec, credential, ref) if credential is not None else None
    return ([p.problem(CREDENTIAL_REF, misfit)] if misfit else []) + _pgp_problems(p, credentials)


def _pgp_problems(p: Parsed, credentials: dict[Key, CredentialSpec | None]) -> list[Problem]:
    """spec.pgp's Credential, when the files (or the cluster) hold it: whether it fits."""
    assert isinstance(p.spec, ConnectionSpec)
    name = pgp_credential_name(p.spec)
    credential = credentials.get((p.namespace, name)) if name else None
    if name is None or credential is None or p.spec.pgp is None:
        return []
    misfit = pgp_misfit(p.spec, credential, name)
    role = "decryptWith" if p.spec.pgp.decrypt_with is not None else "encryptTo"
    return [p.problem(["spec", "pgp", role, "name"], misfit)] if misfit else []


# Sorts after every RFC 3339 time: objects not created yet are the newest.
_NOT_YET = "~"


def _username_conflicts(parsed: list[Parsed], credentials: dict[Key, CredentialSpec | None],
                        live: Snapshot | None) -> list[Problem]:
    """plan_accounts over each listener's would-be accounts, as the operator plans them."""
    members: dict[Key, ConnectionSpec] = dict(live.connections) if live else {}
    in_files = {(p.namespace, p.name) for p in parsed if p.kind == "Credential"}
    from_files: dict[Key, Parsed] = {}
    for p in _connections(parsed):
        assert isinstance(p.spec, ConnectionSpec)
        members[(p.namespace, p.name)] = p.spec
        from_files[(p.namespace, p.name)] = p
    listeners: dict[tuple[str, str], list[AccountSource]] = {}
    for (namespace, name), spec in members.items():
        ref = spec.credential_ref.name
        credential = credentials.get((namespace, ref))
        if spec.platform_initiated or credential is None \
                or credential_misfit(spec, credential, ref):
            continue  # no account: the operator gives none either
        # What the cluster has is older than what these files would add: the
        # operator orders by creation time, and the files' objects do not exist yet.
        source = AccountSource(
            name, "", spec, username_for(ref, credential), None, (), credential=ref,
            created=_NOT_YET if (namespace, name) in from_files else "",
            credential_created=_NOT_YET if (namespace, ref) in in_files else "")
        listeners.setdefault((namespace, protocol_of(spec)), []).append(source)
    problems = []
    for (namespace, _), sources in sorted(listeners.items()):
        plan = plan_accounts(sources)
        holder = {s.username: s.connection for s in plan.owners}
        for loser, why in plan.conflicts.items():
            if (namespace, loser) in from_files:
                problems.append(from_files[(namespace, loser)].problem(CREDENTIAL_REF, why))
                continue
            # A Connection of the cluster would lose its login to one of the files.
            username = next(s.username for s in sources if s.connection == loser)
            winner = from_files.get((namespace, holder[username]))
            if winner is not None:
                problems.append(winner.problem(CREDENTIAL_REF, (
                    f"username {username} is the login of Connection {loser}, which the "
                    "cluster already has on the same listener; applying this Connection "
                    f"would take it away from {loser}'s partner: give one of them a "
                    "Credential with another username")))
    return problems
