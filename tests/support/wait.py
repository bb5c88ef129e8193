"""Waiting for a real system to reach a state, without timing assertions."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

import pytest

T = TypeVar("T")


def eventually(probe: Callable[[], T | None], timeout: float = 60.0, what: str = "",
               interval: float = 0.25) -> T:
    """Polls `probe` until it returns something truthy; fails naming `what` after `timeout`.

    The timeout is a bound on a hang, not a speed target: it is generous on purpose.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = probe()
        if result:
            return result
        time.sleep(interval)
    pytest.fail(f"timed out after {timeout}s waiting for {what}")
