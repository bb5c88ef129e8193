"""The one login sequence of every listener: ban check, lookup, verify, score,
session slot.

SFTP, FTP and SMTP each hand their credentials to a `LoginGate` and act on
what it answers, so that a ban, a wrong password or a full session table means
the same thing on every protocol. The sequence has two steps on purpose:

1. `verify_password` / `verify_key` say whether the credential belongs to the
   account. A wrong password is scored by the defender; a key is never scored
   (clients offer every key they hold, and keys cannot be guessed).
2. `admit` takes a session slot and clears the user's failure score. It is
   called only once the login is complete. For a public key that is after the
   client proved it holds the private half: paramiko asks the same question
   for an unsigned probe and for the signed request, so the SFTP listener
   admits when the first channel opens, never on the key check itself.
   Otherwise anyone holding a partner's public key could fill the partner's
   session slots and wipe its failure count without ever signing.

Every outcome is counted (connectors_listener_logins_total by result) and
written as one audit event; the partner is told the same words for an
unknown name, a suspended one and a wrong password, whatever the log says.
"""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from dataclasses import dataclass

from connectors.api.accounts import verify_password
from connectors.api.credential import KEY_TYPES
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.places import Login
from connectors.logs import audit
from connectors.metrics import listener as metrics

log = logging.getLogger(__name__)


class SessionLimiter:
    """Counts open sessions per account."""

    def __init__(self) -> None:
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def acquire(self, username: str, limit: int) -> bool:
        with self._lock:
            count = self._counts.get(username, 0)
            if limit > 0 and count >= limit:
                return False
            self._counts[username] = count + 1
            return True

    def release(self, username: str) -> None:
        with self._lock:
            count = self._counts.get(username, 0) - 1
            if count <= 0:
                self._counts.pop(username, None)
            else:
                self._counts[username] = count

    def count(self, username: str) -> int:
        with self._lock:
            return self._counts.get(username, 0)


def key_blobs(authorized_keys: list[str]) -> set[bytes]:
    """The public key blobs of authorized_keys lines (options and comments ignored)."""
    blobs: set[bytes] = set()
    for line in authorized_keys:
        tokens = line.split()
        for index, token in enumerate(tokens[:-1]):
            if token in KEY_TYPES:
                try:
                    blobs.add(base64.b64decode(tokens[index + 1], validate=True))
                except (binascii.Error, ValueError):
                    log.warning("ignoring a malformed authorized key line")
                break
    return blobs


@dataclass(frozen=True)
class Admission:
    """A complete login holding one session slot; `release()` gives it back."""

    login: Login
    address: str
    protocol: str
    gate: LoginGate

    def release(self) -> None:
        self.gate.sessions.release(self.login.username)
        metrics.session_closed(self.protocol)


class LoginGate:
    """Decides logins for one listener (thread-safe: its parts are)."""

    def __init__(self, accounts: AccountsFile, defender: Defender, protocol: str,
                 max_sessions_per_account: int = 10,
                 sessions: SessionLimiter | None = None) -> None:
        self.accounts = accounts
        self.defender = defender
        self.protocol = protocol
        self.max_sessions = max_sessions_per_account
        self.sessions = sessions or SessionLimiter()

    def banned(self, address: str, username: str | None = None) -> bool:
        return self.defender.banned(address, username)

    def verify_password(self, address: str, username: str, password: str) -> Login | None:
        """The login when the password is right; a wrong one is scored."""
        if self.defender.banned(address, username):
            log.info("login refused protocol=%s user=%r address=%s: banned",
                     self.protocol, username, address)
            self._failed("banned", address, username)
            return None
        login = self.accounts.lookup(username)  # None when unknown or suspended
        if login is None or not verify_password(password, login.password_hash):
            log.info("login failed protocol=%s user=%r address=%s: wrong user or password",
                     self.protocol, username, address)
            self._failed("bad_password" if login is not None
                         else self.accounts.why_no_login(username), address, username)
            if self.defender.failure(address, username):
                log.warning("banning address=%s user=%r after repeated failed logins",
                            address, username)
                metrics.ban(self.protocol)
                audit("ban", logging.WARNING, protocol=self.protocol, user=username,
                      remote_address=address, reason="repeated failed logins")
            return None
        return login

    def verify_key(self, address: str, username: str, blob: bytes) -> Login | None:
        """The login when `blob` is one of its keys. Not a login by itself:
        the caller admits only after the key's signature was checked."""
        if self.defender.banned(address, username):
            self._failed("banned", address, username)
            return None
        login = self.accounts.lookup(username)  # None when unknown or suspended
        if login is None:
            self._failed(self.accounts.why_no_login(username), address, username)
            return None
        if blob not in key_blobs(login.authorized_keys):
            # Clients offer each key they hold in turn: one of these per key
            # that is not the partner's, even before a good one.
            self._failed("bad_key", address, username)
            return None
        return login

    def _failed(self, result: str, address: str, username: str) -> None:
        metrics.login(self.protocol, result)
        audit("login", result=result, protocol=self.protocol, user=username,
              remote_address=address)

    def admit(self, address: str, login: Login) -> Admission | None:
        """Takes a session slot for a complete login; None when the login
        already has its maximum of sessions."""
        connections = ",".join(login.connections)
        if not self.sessions.acquire(login.username, self.max_sessions):
            log.warning("login refused protocol=%s user=%r address=%s: too many sessions",
                        self.protocol, login.username, address)
            metrics.login(self.protocol, "too_many_sessions")
            audit("login", result="too_many_sessions", protocol=self.protocol,
                  connection=connections, user=login.username, remote_address=address)
            return None
        self.defender.success(address, login.username)
        log.info("login protocol=%s user=%r connections=%s address=%s",
                 self.protocol, login.username, connections, address)
        metrics.login(self.protocol, "success")
        metrics.session_opened(self.protocol)
        audit("login", result="success", protocol=self.protocol, connection=connections,
              user=login.username, remote_address=address)
        return Admission(login, address, self.protocol, self)
