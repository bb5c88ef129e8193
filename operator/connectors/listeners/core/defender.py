"""A small brute-force defender shared by the three listeners.

paramiko, pyftpdlib and aiosmtpd keep no per-address state (see LESSONS), so
failures are scored here: per client address and per username, within a
sliding window. Reaching the limit bans the address (or the username) for a
while. A per-user ban lets an attacker lock a partner out for `ban_seconds`;
that is the price of stopping a distributed guesser, and it expires by itself.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

# Bounds memory when an attacker cycles through addresses or usernames.
_MAX_TRACKED = 100_000


@dataclass(frozen=True)
class DefenderSettings:
    max_failures_per_address: int = 10
    max_failures_per_user: int = 10
    window_seconds: float = 300.0
    ban_seconds: float = 900.0


class _Scores:
    """Failure times and bans for one kind of key (address or username)."""

    def __init__(self, limit: int, window: float, ban: float) -> None:
        self.limit, self.window, self.ban = limit, window, ban
        self.failures: dict[str, deque[float]] = {}
        self.banned_until: dict[str, float] = {}

    def banned(self, key: str, now: float) -> bool:
        until = self.banned_until.get(key)
        if until is None:
            return False
        if now >= until:
            del self.banned_until[key]
            return False
        return True

    def fail(self, key: str, now: float) -> bool:
        """Records a failure; True when it starts a ban."""
        if self.limit <= 0:
            return False
        times = self.failures.setdefault(key, deque())
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        if len(times) >= self.limit:
            self.banned_until[key] = now + self.ban
            del self.failures[key]
            return True
        return False

    def forget(self, key: str) -> None:
        self.failures.pop(key, None)

    def prune(self, now: float) -> None:
        if len(self.failures) + len(self.banned_until) < _MAX_TRACKED:
            return
        self.failures = {
            k: v for k, v in self.failures.items() if v and v[-1] > now - self.window
        }
        self.banned_until = {k: v for k, v in self.banned_until.items() if v > now}


class Defender:
    """Thread-safe: paramiko calls it from one thread per connection."""

    def __init__(
        self,
        settings: DefenderSettings | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        s = settings or DefenderSettings()
        self._by_address = _Scores(s.max_failures_per_address, s.window_seconds, s.ban_seconds)
        self._by_user = _Scores(s.max_failures_per_user, s.window_seconds, s.ban_seconds)
        self._clock = clock
        self._lock = threading.Lock()

    def banned(self, address: str, username: str | None = None) -> bool:
        with self._lock:
            now = self._clock()
            if self._by_address.banned(address, now):
                return True
            return username is not None and self._by_user.banned(username, now)

    def failure(self, address: str, username: str | None) -> bool:
        """Records a failed login; True when it started a ban."""
        with self._lock:
            now = self._clock()
            started = self._by_address.fail(address, now)
            if username:
                started = self._by_user.fail(username, now) or started
            self._by_address.prune(now)
            self._by_user.prune(now)
            return started

    def success(self, address: str, username: str) -> None:
        """A good login clears the user's score, not the address's: one valid
        account must not whitewash an address that guesses at others."""
        with self._lock:
            self._by_user.forget(username)
