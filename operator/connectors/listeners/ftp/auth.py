"""Who may log in to the FTP listener: pyftpdlib's authorizer, deciding through
the listeners' one LoginGate, and the permission letters of an account."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from pyftpdlib.authorizers import AuthenticationFailed  # type: ignore[import-untyped]

from connectors.api.accounts import Account
from connectors.landing.receive import landing_area
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.login_gate import LoginGate

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
    """pyftpdlib's authorizer interface, over the reloading account table."""

    def __init__(self, accounts: AccountsFile, data_root: Path, gate: LoginGate) -> None:
        self.accounts = accounts
        self.data_root = data_root
        self.gate = gate

    def validate_authentication(self, username: str, password: str, handler: Any) -> None:
        address = str(handler.remote_ip)
        account = self.gate.verify_password(address, username, password)
        if account is None:
            raise AuthenticationFailed("Authentication failed.")
        admission = self.gate.admit(address, account)
        if admission is None:
            raise AuthenticationFailed("Too many sessions for this account.")
        handler.admission = admission
        handler.account = account

    def get_home_dir(self, username: str) -> str:
        account = self._account(username)
        area = landing_area(self.data_root, account)
        area.ensure()
        return os.path.realpath(area.home)

    def has_user(self, username: str) -> bool:
        return self.accounts.lookup(username) is not None

    def has_perm(self, username: str, perm: str, path: str | None = None) -> bool:
        account = self.accounts.lookup(username)
        return account is not None and perm in ftp_permissions(account)

    def get_perms(self, username: str) -> str:
        account = self.accounts.lookup(username)
        return ftp_permissions(account) if account is not None else ""

    def get_msg_login(self, username: str) -> str:
        return "Login successful."

    def get_msg_quit(self, username: str) -> str:
        return "Goodbye."

    def impersonate_user(self, username: str, password: str) -> None:
        return None

    def terminate_impersonation(self, username: str) -> None:
        return None

    def _account(self, username: str) -> Account:
        account = self.accounts.lookup(username)
        if account is None:
            raise AuthenticationFailed("Authentication failed.")
        return account
