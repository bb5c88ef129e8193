"""Who may log in to the FTP listener: pyftpdlib's authorizer, deciding through
the listeners' one LoginGate, and the permission letters of an account."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import AuthenticationFailed  # type: ignore[import-untyped]

from connectors.api.accounts import Account
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.login_gate import LoginGate
from connectors.listeners.core.places import Login, PartnerView, Place

log = logging.getLogger(__name__)


def ftp_permissions(account: Account) -> str:
    """pyftpdlib permission letters: e (cd), l (list), r (download), w (upload),
    T (MFMT: PartnerFS.utime allows it only on a file the session just landed).
    Never a (append), d (delete), f (rename), m (mkdir) or M (chmod)."""
    letters = ""
    if "list" in account.permissions:
        letters += "el"
    if "download" in account.permissions or "readReceipts" in account.permissions:
        letters += "r"
    if "upload" in account.permissions:
        letters += "wT"
    return letters or "e"


class AccountAuthorizer:
    """pyftpdlib's authorizer interface, over the reloading account table.

    pyftpdlib asks for permissions by real path: each place of the login
    (listeners/core/places.py) answers with its own account's letters, and the
    root of a login without a root Connection may only be listed."""

    def __init__(self, accounts: AccountsFile, data_root: Path, gate: LoginGate) -> None:
        self.accounts = accounts
        self.data_root = data_root
        self.gate = gate
        # The view of each login, made again when the table gives a new Login:
        # pyftpdlib asks for permissions on every command.
        self._views: dict[str, PartnerView] = {}

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        address = str(handler.remote_ip)
        login = self.gate.verify_password(address, username, password)
        if login is None:
            raise AuthenticationFailed("Authentication failed.")
        admission = self.gate.admit(address, login)
        if admission is None:
            raise AuthenticationFailed("Too many sessions for this account.")
        handler.admission = admission
        handler.view = self.view(login)
        handler.view.ensure()

    def get_home_dir(self, username: str) -> str:
        return root_path(self.view(self._login(username)), self.data_root)

    def has_user(self, username: str) -> bool:
        return self.accounts.lookup(username) is not None

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        login = self.accounts.lookup(username)
        if login is None:
            return False
        if path is None:
            return perm in self.get_perms(username)
        place = place_of_real(self.view(login), path)
        return perm in (ftp_permissions(place.account) if place is not None else "el")

    def get_perms(self, username: str) -> str:
        login = self.accounts.lookup(username)
        if login is None:
            return ""
        return "".join(sorted({letter for account in login.accounts
                               for letter in ftp_permissions(account)}))

    def plain_ftp(self, username: str) -> bool:
        """Whether this login may go without TLS; False for an unknown name."""
        login = self.accounts.lookup(username)
        return login is not None and login.plain_ftp

    def get_msg_login(self, username: str) -> str:
        return "Login successful."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        return None

    def terminate_impersonation(self, username: str) -> None:
        return None

    def view(self, login: Login) -> PartnerView:
        view = self._views.get(login.username)
        if view is None or view.login is not login:
            view = self._views[login.username] = PartnerView(login, self.data_root)
        return view

    def _login(self, username: str) -> Login:
        login = self.accounts.lookup(username)
        if login is None:
            raise AuthenticationFailed("Authentication failed.")
        return login


# The real path that stands for the root of a login whose Connections all have
# folders: never created; PartnerFS lists the folders there and nothing else.
NO_ROOT = ".no-root-connection"


def root_path(view: PartnerView, data_root: Path) -> str:
    if view.root is not None:
        return os.path.realpath(view.root.jail.home)
    return os.path.join(os.path.realpath(data_root), NO_ROOT)


def place_of_real(view: PartnerView, path: str) -> Place | None:
    """The place whose landing area holds the real `path`, if any."""
    resolved = os.path.realpath(path)
    for place in view.places:
        home = str(place.jail.home)
        if resolved == home or resolved.startswith(home + os.sep):
            return place
    return None
