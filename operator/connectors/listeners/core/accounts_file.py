"""The account table, read from mounted Secrets and reloaded when it changes.

The path is either one table file, or a folder of shard files
`accounts-<NN>.json` (api/accounts.py), as the listener pod's projected volume
holds them; the table in force is all of them together. Kubernetes updates
such a volume by swapping a `..data` symlink, all files at once, so inotify on
a file misses updates; polling the content every few seconds is simple and
always right. Sessions already open keep the Account they logged in with;
the new table applies to the next login. A table that fails to parse is
ignored and the last good one stays in force.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path

from pydantic import ValidationError

from connectors.api.accounts import Account, AccountTable, table_digest
from connectors.api.shards import read_shards
from connectors.listeners.core.places import Login

log = logging.getLogger(__name__)


def safe_home(home: str) -> bool:
    """A home is one plain folder name under the data root, so that a damaged
    table cannot point a partner outside the root or into a hidden folder."""
    return bool(home) and "/" not in home and "\\" not in home and not home.startswith(".")


def safe_folder(folder: str | None) -> bool:
    """A folder in the partner's view is one plain name too (None: the root)."""
    return folder is None or safe_home(folder)


class AccountsFile:
    def __init__(self, path: Path, poll_seconds: float = 2.0,
                 on_load: Callable[[list[str]], None] | None = None) -> None:
        self.path = path
        self.poll_seconds = poll_seconds
        # Told the shard digests of every table that takes effect (listeners/core/state.py).
        self.on_load = on_load
        self._raw: list[bytes] | None = None
        self._accounts: list[Account] = []
        self._logins: dict[str, Login] = {}
        # Usernames whose Connections are all suspended: no login, but known.
        self._suspended: frozenset[str] = frozenset()
        # Connection name, lower case as mail addresses compare -> its account.
        self._by_connection: dict[str, Account] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reload()

    def reload(self) -> bool:
        """Reads the file; True when a new table took effect."""
        try:
            raw = read_shards(self.path, "accounts-*.json")
        except OSError as err:
            if self._raw is not None or not self._accounts:
                log.warning("account table %s unreadable: %s", self.path, err.strerror)
            self._raw = None
            return False
        if raw == self._raw:
            return False
        self._raw = raw
        try:
            tables = [AccountTable.parse(shard) for shard in raw]
        except ValidationError as err:
            # Only the error count: the messages may quote values from the file.
            log.error("account table %s invalid (%d errors); keeping the last good one",
                      self.path, err.error_count())
            return False
        table = [account for shard in tables for account in shard.accounts]
        usable = [a for a in table if safe_home(a.home) and safe_folder(a.folder)]
        if len(usable) < len(table):
            log.error("ignoring %d accounts whose home or folder is not one plain folder name",
                      len(table) - len(usable))
        grouped: dict[str, list[Account]] = {}
        for account in usable:
            grouped.setdefault(account.username, []).append(account)
        logins = {name: Login.of(name, accounts) for name, accounts in grouped.items()}
        # One reference assignment each: readers in other threads see the old or
        # the new table, never a half-built one.
        self._accounts = usable
        self._logins = {name: login for name, login in logins.items() if login is not None}
        self._suspended = frozenset(name for name, login in logins.items() if login is None)
        self._by_connection = {a.connection.lower(): a for a in usable}
        log.info("account table loaded: %d accounts, %d logins", len(usable), len(self._logins))
        if self.on_load is not None:
            self.on_load([table_digest(shard) for shard in raw])
        return True

    def lookup(self, username: str) -> Login | None:
        """The login, or None if unknown or all its Connections are suspended."""
        return self._logins.get(username)

    def why_no_login(self, username: str) -> str:
        """Why `lookup` found no login, for the metrics and the audit log (never
        for the partner, who is told the same for both): suspended or unknown_user."""
        return "suspended" if username in self._suspended else "unknown_user"

    def recipient(self, connection: str) -> Account | None:
        """The account of the Connection named so (any case), or None if unknown
        or suspended: mail addressed to it has no one to receive it."""
        account = self._by_connection.get(connection.lower())
        return None if account is None or account.suspended else account

    def accounts(self) -> list[Account]:
        return list(self._accounts)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._poll, name="accounts-reload", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            try:
                self.reload()
            except Exception:  # a poller that dies silently would freeze the table
                log.exception("account table reload failed")
