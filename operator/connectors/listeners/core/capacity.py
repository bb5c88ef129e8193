"""How many connections one listener holds at once, like OpenSSH's MaxStartups.

A listener pod has a memory limit, and every connection costs memory (an SFTP
session a few hundred KiB idle, more while it moves data: the measurement is
in charts/connectors/values.yaml). Without a cap a flood of connections could
get the pod OOM-killed, and every partner's transfer with it. So each listener
counts its connections (`ConnectionCap`, one per process: SMTP's two ports
share it) and refuses, before any login, with an answer a client retries on:

- more than `max_connections` at once (all of them, logged in or not);
- more than `max_unauthenticated` not logged in yet, lower than the total, so
  that idle half-open connections cannot take the slots partners log in with;
- and a connection that has not logged in `login_grace_seconds` after it
  opened is closed (sshd's LoginGraceTime), so the slots come back.

"Logged in" is a complete login through the LoginGate (SFTP: the first
channel, after the key's signature; FTP: PASS; SMTP submission: AUTH). On the
SMTP mail exchanger port, where mail servers never log in, it is the first
recipient that is one of the listener's Connections.

What each protocol says when it refuses: listeners/sftp/refusal.py (an SSH
disconnect, reason too many connections), ftp/server.py (421), smtp/server.py
(421 4.7.0).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass

from connectors.metrics import listener as metrics

log = logging.getLogger(__name__)

# What a partner is told, in every protocol's own reply form.
TOO_MANY = "Too many connections, try again later"
# How often a refusal is logged while refusals go on (each one is counted).
LOG_EVERY_SECONDS = 60.0


@dataclass(frozen=True)
class ConnectionLimits:
    # 0: no limit (and no grace time).
    max_connections: int = 100
    max_unauthenticated: int = 30
    login_grace_seconds: float = 30.0

    def problem(self) -> str | None:
        """Why these limits cannot work together, in words; None when they can."""
        if self.max_connections < 0 or self.max_unauthenticated < 0:
            return "the connection limits must be 0 (no limit) or more"
        if self.login_grace_seconds < 0:
            return "the login grace time must be 0 (none) or more seconds"
        if self.max_connections and self.max_unauthenticated > self.max_connections:
            return (f"at most {self.max_unauthenticated} connections before login is more "
                    f"than {self.max_connections} connections in all")
        return None


class Ticket:
    """One open connection's place in the cap; `close()` gives it back (once)."""

    def __init__(self, cap: ConnectionCap) -> None:
        self.cap = cap
        self.logged_in = False
        self.closed = False
        self.opened = time.monotonic()

    def authenticated(self) -> None:
        """The connection logged in: it no longer counts as unauthenticated."""
        self.cap._authenticated(self)

    def grace_expired(self) -> bool:
        """Whether the login grace time ran out before a login."""
        grace = self.cap.limits.login_grace_seconds
        return (grace > 0 and not self.logged_in
                and time.monotonic() - self.opened > grace)

    def expire(self) -> None:
        """The listener closes this connection for want of a login in time."""
        log.info("closing a %s connection: no login within %gs", self.cap.protocol,
                 self.cap.limits.login_grace_seconds)
        metrics.connection_refused(self.cap.protocol, "login_grace_expired")

    def close(self) -> None:
        self.cap._close(self)


class ConnectionCap:
    """Counts one listener's connections (thread-safe)."""

    def __init__(self, protocol: str, limits: ConnectionLimits) -> None:
        self.protocol = protocol
        self.limits = limits
        self.total = 0
        self.unauthenticated = 0
        self._lock = threading.Lock()
        self._refused_since_log = 0
        self._last_log = 0.0

    def open(self) -> Ticket | None:
        """A place for a new connection; None when the listener is full, and the
        connection must be refused (the refusal is counted and logged here)."""
        limits = self.limits
        with self._lock:
            if limits.max_connections and self.total >= limits.max_connections:
                reason = "too_many_connections"
            elif limits.max_unauthenticated and \
                    self.unauthenticated >= limits.max_unauthenticated:
                reason = "too_many_unauthenticated"
            else:
                self.total += 1
                self.unauthenticated += 1
                self._gauges()
                return Ticket(self)
            self._refused_since_log += 1
            now = time.monotonic()
            report = now - self._last_log >= LOG_EVERY_SECONDS
            if report:
                refused, self._refused_since_log, self._last_log = \
                    self._refused_since_log, 0, now
            total, unauthenticated = self.total, self.unauthenticated
        metrics.connection_refused(self.protocol, reason)
        if report:
            log.warning("%s: refused %d connection(s) (%s): %d open, %d of them not logged "
                        "in (--max-connections %d, --max-unauthenticated %d)", self.protocol,
                        refused, reason.replace("_", " "), total, unauthenticated,
                        limits.max_connections, limits.max_unauthenticated)
        return None

    def _authenticated(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.closed or ticket.logged_in:
                return
            ticket.logged_in = True
            self.unauthenticated -= 1
            self._gauges()

    def _close(self, ticket: Ticket) -> None:
        with self._lock:
            if ticket.closed:
                return
            ticket.closed = True
            self.total -= 1
            if not ticket.logged_in:
                self.unauthenticated -= 1
            self._gauges()

    def _gauges(self) -> None:
        metrics.connections(self.protocol, self.total, self.unauthenticated)
