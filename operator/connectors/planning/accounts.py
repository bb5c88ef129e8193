"""Pure planning of listener accounts: who gets a login, where each Connection is in
it, and the account table Secret the listener reads.

A username belongs to the oldest Credential that claims it; that Credential's
Connections share the login, each at its own place (listeners/core/places.py).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from ..api.accounts import Account, AccountTable, permissions_for
from ..api.connection import ConnectionSpec
from .owners import shared_owners
from .readiness import table_digest


@dataclass(frozen=True)
class AccountSource:
    """What one Connection contributes to its listener's account table."""

    connection: str
    uid: str
    spec: ConnectionSpec
    username: str
    password_hash: str | None
    authorized_keys: tuple[str, ...]
    credential: str = ""
    """The Credential's name: one login serves the Connections of one Credential."""
    created: str = ""
    """The Connection's creationTimestamp (RFC 3339 sorts as text); "" when unknown."""
    credential_created: str = ""
    """The Credential's creationTimestamp."""

    @property
    def place(self) -> str:
        """Where the partner sees this Connection: "/" or its folder."""
        return f"/{self.spec.folder}/" if self.spec.folder else "/"


@dataclass(frozen=True)
class AccountPlan:
    table: AccountTable
    owners: list[AccountSource]
    # Connection name -> why it has no account (a username another Connection holds).
    conflicts: dict[str, str]

    @functools.cached_property
    def owner_references(self) -> list[dict[str, Any]]:
        """Of the listener's objects: the sample of owners (owners.py), made once
        for the account Secrets, the Deployment and the Service alike."""
        return shared_owners((source.connection, source.uid) for source in self.owners)


def plan_accounts(sources: list[AccountSource],
                  current: AccountTable | None = None) -> AccountPlan:
    """One account per Connection, grouped into logins by username.

    A username belongs to one Credential: the oldest that claims it (creation
    time, then name), so a newer Credential can never take over a partner's
    login. That Credential's Connections share the login, each at its own
    place (the root, or spec.folder); a place already taken stays with the
    older Connection. Either way the newer one gets no account and a conflict
    that names the fix, and no existing account changes.

    Creation times have a resolution of one second: between two objects of
    the same second, the one that holds the login or place in the `current`
    table keeps it, so a tie can never move a partner's login either.
    """
    incumbent = {(a.username, a.connection) for a in current.accounts} if current else set()
    holding = {(s.username, s.credential) for s in sources
               if (s.username, s.connection) in incumbent}
    holders: dict[str, AccountSource] = {}
    for source in sorted(sources, key=lambda s: (
            s.credential_created, (s.username, s.credential) not in holding, s.credential)):
        holders.setdefault(source.username, source)
    places: dict[tuple[str, str], str] = {}
    accounts: list[Account] = []
    owners: list[AccountSource] = []
    conflicts: dict[str, str] = {}
    for source in sorted(sources, key=lambda s: (
            s.created, (s.username, s.connection) not in incumbent, s.connection)):
        holder = holders[source.username]
        if source.credential != holder.credential:
            conflicts[source.connection] = (
                f"username {source.username} is already the login of Credential "
                f"{holder.credential or holder.connection} (Connection {holder.connection}) on "
                f"the same listener, which is older: give Credential "
                f"{source.credential or source.connection} another username")
            continue
        taken = places.get((source.username, source.place))
        if taken is not None:
            conflicts[source.connection] = (
                f"Connection {taken} already appears at {source.place} for login "
                f"{source.username}, which this Connection shares: set spec.folder (for "
                f"example {source.connection!r}) so that each Connection has its own place")
            continue
        places[(source.username, source.place)] = source.connection
        owners.append(source)
        accounts.append(Account(
            username=source.username,
            connection=source.connection,
            direction=source.spec.direction,
            home=source.connection,
            permissions=permissions_for(source.spec.direction),
            filename_pattern=source.spec.filename_pattern,
            password_hash=source.password_hash,
            authorized_keys=list(source.authorized_keys),
            suspended=source.spec.suspend,
            delete_after_download=source.spec.delete_after_download,
            folder=source.spec.folder,
            allowed_senders=_allowed_senders(source.spec),
            plain_ftp=source.spec.ftp is not None and source.spec.ftp.allow_plain_ftp,
            reply_with_results=source.spec.email is not None
            and source.spec.email.reply_with_results,
        ))
    return AccountPlan(AccountTable(accounts=accounts), owners, conflicts)


def _allowed_senders(spec: ConnectionSpec) -> list[str] | None:
    senders = spec.email.allowed_senders if spec.email is not None else None
    return list(senders) if senders is not None else None


def account_fingerprints(table: AccountTable) -> dict[str, str]:
    """Per Connection, a digest of its account as the table holds it: the listener
    serves the Connection as configured only if it has loaded a table in which
    this digest is the same."""
    return {a.connection: table_digest(a.model_dump_json(by_alias=True))
            for a in table.accounts}
