"""Who may log in to the SFTP listener and what a session may open: paramiko's
ServerInterface, deciding through the listeners' one LoginGate."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import paramiko

from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.capacity import ConnectionLimits, Ticket
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.login_gate import Admission, LoginGate, SessionLimiter
from connectors.listeners.core.places import Login
from connectors.listeners.core.report import TransferReporter
from connectors.listeners.sftp.protocol import (
    AUTH_FAILED,
    AUTH_SUCCESSFUL,
    OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED,
    OPEN_SUCCEEDED,
)

log = logging.getLogger(__name__)


@dataclass
class SftpSettings:
    idle_timeout: float = 600.0
    max_sessions_per_account: int = 10
    # The channel window is how much a client may send before we acknowledge:
    # several times the 2 MiB that OpenSSH keeps in flight (64 requests of
    # 32 KiB), and small enough that many sessions cannot pile up memory.
    window_size: int = 8 * 1024 * 1024
    # The largest SSH packet we accept: bigger packets mean fewer per-packet
    # round trips through Python in the transport thread.
    max_packet_size: int = 256 * 1024
    ciphers: tuple[str, ...] | None = None
    limits: ConnectionLimits = field(default_factory=ConnectionLimits)


@dataclass
class SftpContext:
    """Everything the connections of one listener share."""

    accounts: AccountsFile
    data_root: Path
    defender: Defender
    reporter: TransferReporter
    host_key: paramiko.PKey
    settings: SftpSettings = field(default_factory=SftpSettings)
    sessions: SessionLimiter = field(default_factory=SessionLimiter)

    def gate(self) -> LoginGate:
        return LoginGate(self.accounts, self.defender, "sftp",
                         self.settings.max_sessions_per_account, self.sessions)


class Session(paramiko.ServerInterface):
    """Authentication and channel policy for one connection.

    A password or key check only says whose credential it is (`verified`);
    the login is complete, and takes its session slot, when the first channel
    opens, because paramiko asks `check_auth_publickey` the same question for
    an unsigned probe and for the signed request (see login_gate).
    """

    def __init__(self, context: SftpContext, address: str,
                 ticket: Ticket | None = None) -> None:
        self.context = context
        self.gate = context.gate()
        self.address = address
        # The connection's place in the listener's cap: logged in at admission.
        self.ticket = ticket
        self.verified: Login | None = None
        self.admission: Admission | None = None
        self.last_activity = time.monotonic()

    @property
    def login(self) -> Login | None:
        return self.admission.login if self.admission is not None else None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_password(self, username: str, password: str) -> int:
        return self._verified(self.gate.verify_password(self.address, username, password))

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        login = self.gate.verify_key(self.address, username, key.asbytes())
        if login is None:
            log.info("public key %s not accepted for user %r from %s",
                     key.fingerprint, username, self.address)
        return self._verified(login)

    def _verified(self, login: Login | None) -> int:
        if login is None:
            return AUTH_FAILED
        self.verified = login
        return AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        # Reached only on an authenticated transport.
        if kind != "session" or self.verified is None:
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if self.admission is None:
            self.admission = self.gate.admit(self.address, self.verified)
            if self.admission is None:
                return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
            if self.ticket is not None:
                self.ticket.authenticated()
        return OPEN_SUCCEEDED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        return name == "sftp" and super().check_channel_subsystem_request(channel, name)

    def release(self) -> None:
        if self.admission is not None:
            self.admission.release()
            self.admission = None
