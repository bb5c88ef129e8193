"""One login, several Connections: where each Connection's files are for the partner.

A Credential may serve several Connections of its namespace on one listener
(the partner picks an existing credential for a new Connection). Each of them
is a *place* in the login's view, declared by the Connection and never derived
from the others, so that adding, removing or editing one Connection never moves
another one's files:

    /                 the Connection without spec.folder (at most one per login)
    /<folder>/        each Connection with spec.folder: <folder>

A path is mapped to (place, the rest of the path); the rest is confined to the
place's landing area by its Jail. The root lists the root Connection's files
and one folder per folder Connection; a partner whose Connections all have
folders sees only the folders at the root and may not upload there.

The planner guarantees that a login's accounts come from one Credential (same
password hash and keys) and that no two take the same place.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from connectors.api.accounts import Account
from connectors.landing.area import LandingArea
from connectors.landing.receive import landing_area
from connectors.listeners.core.jail import Jail, PathRefused, normalize, parts


@dataclass(frozen=True)
class Login:
    """A username and the Connections it serves on this listener (suspended
    ones left out): the root one first, then the folders by name."""

    username: str
    accounts: tuple[Account, ...]

    @property
    def password_hash(self) -> str | None:
        return self.accounts[0].password_hash

    @property
    def authorized_keys(self) -> list[str]:
        return self.accounts[0].authorized_keys

    @property
    def plain_ftp(self) -> bool:
        """FTP without TLS only when every Connection of the login allows it: the
        password is the Credential's, so one Connection cannot expose it for the
        others."""
        return all(a.plain_ftp for a in self.accounts)

    @property
    def connections(self) -> list[str]:
        return [a.connection for a in self.accounts]

    @classmethod
    def of(cls, username: str, accounts: list[Account]) -> Login | None:
        """The login of `accounts` (all of one username), or None when every
        one of them is suspended."""
        serving = [a for a in accounts if not a.suspended]
        if not serving:
            return None
        serving.sort(key=lambda a: (a.folder is not None, a.folder or ""))
        return cls(username, tuple(serving))


@dataclass(frozen=True)
class Place:
    """One Connection in a login's view."""

    account: Account
    area: LandingArea
    jail: Jail
    virtual: str
    """Its folder in the partner's view: "/" or "/<folder>"."""

    def virtual_path(self, name: str) -> str:
        return f"{self.virtual.rstrip('/')}/{name}"


@dataclass
class PartnerView:
    """The partner's view of a login: which place a path is in."""

    login: Login
    data_root: Path
    root: Place | None = field(init=False)
    folders: dict[str, Place] = field(init=False)

    def __post_init__(self) -> None:
        self.root = None
        self.folders = {}
        for account in self.login.accounts:
            area = landing_area(self.data_root, account)
            virtual = f"/{account.folder}" if account.folder else "/"
            place = Place(account, area, Jail(area.home), virtual)
            if account.folder:
                self.folders[account.folder] = place
            else:
                self.root = place

    def ensure(self) -> None:
        """Creates the landing areas of the login's places, once per session."""
        for place in self.places:
            place.area.ensure()

    @property
    def places(self) -> list[Place]:
        return ([self.root] if self.root else []) + list(self.folders.values())

    def locate(self, path: str) -> tuple[Place | None, list[str]]:
        """The place of a partner path and the components inside it; (None, [])
        for the root of a login without a root Connection. Raises PathRefused
        for a path that is in no place."""
        components = parts(normalize(path))
        if components and components[0] in self.folders:
            return self.folders[components[0]], components[1:]
        if self.root is None:
            if components:
                raise PathRefused("no such file")
            return None, []
        return self.root, components

    def is_root(self, path: str) -> bool:
        return not parts(normalize(path))
