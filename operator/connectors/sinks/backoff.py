"""When to try a failed delivery again: exponential backoff with jitter, capped.

Pure: the randomness comes in as a function, so tests choose it.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class RetryPolicy:
    first: float = 5.0
    """Seconds before the second attempt, at most."""
    cap: float = 900.0
    """No wait is longer (15 minutes)."""
    max_attempts: int = 100
    """Then the delivery is Failed: with the defaults, about a day of trying."""

    def delay(self, attempts: int, *, retry_after: float | None = None,
              rand: Callable[[], float] = random.random) -> float:
        """Seconds to wait after `attempts` failed attempts (1 or more): the
        ceiling first * 2^(attempts-1), capped, and a random point in its upper
        half ("equal jitter": processors that failed together do not come back
        together, and the wait still grows). A sink's Retry-After is honoured
        up to the cap."""
        exponent = min(max(attempts, 1) - 1, 60)  # 2**60 * first is past any cap
        ceiling = min(self.cap, self.first * 2.0 ** exponent)
        wait = ceiling / 2 + rand() * ceiling / 2
        if retry_after is not None and retry_after > 0:
            wait = max(wait, min(retry_after, self.cap))
        return wait

    def gives_up(self, attempts: int) -> bool:
        """After this many attempts, no more."""
        return attempts >= self.max_attempts
