"""The listeners' connection cap: counts, refusals, the grace time, the checks."""

from __future__ import annotations

import time

import pytest

from connectors.listeners.core.capacity import ConnectionCap, ConnectionLimits


def test_the_total_and_the_unauthenticated_caps_count_apart() -> None:
    cap = ConnectionCap("sftp", ConnectionLimits(max_connections=3, max_unauthenticated=2))
    first, second = cap.open(), cap.open()
    assert first is not None
    assert second is not None
    assert cap.open() is None  # two not logged in: the pre-login cap
    first.authenticated()
    first.authenticated()  # once only
    assert (cap.total, cap.unauthenticated) == (2, 1)
    third = cap.open()
    assert third is not None
    assert cap.open() is None  # three in all: the total cap
    second.close()
    second.close()  # once only
    assert (cap.total, cap.unauthenticated) == (2, 1)
    fourth = cap.open()
    assert fourth is not None
    first.close()
    third.close()
    fourth.close()
    assert (cap.total, cap.unauthenticated) == (0, 0)


def test_no_limit_is_zero() -> None:
    cap = ConnectionCap("ftp", ConnectionLimits(0, 0, 0))
    tickets = [cap.open() for _ in range(500)]
    assert all(tickets)
    assert not any(t.grace_expired() for t in tickets if t is not None)


def test_the_grace_time_runs_until_login() -> None:
    cap = ConnectionCap("smtp", ConnectionLimits(login_grace_seconds=0.05))
    waiting, logged_in = cap.open(), cap.open()
    assert waiting is not None
    assert logged_in is not None
    logged_in.authenticated()
    assert not waiting.grace_expired()
    time.sleep(0.1)
    assert waiting.grace_expired()
    assert not logged_in.grace_expired()


@pytest.mark.parametrize(("limits", "words"), [
    (ConnectionLimits(10, 11, 30), "more than 10 connections in all"),
    (ConnectionLimits(-1, 0, 30), "0 (no limit) or more"),
    (ConnectionLimits(10, 5, -1), "grace time"),
])
def test_limits_that_cannot_work_are_said_in_words(limits: ConnectionLimits,
                                                   words: str) -> None:
    problem = limits.problem()
    assert problem is not None
    assert words in problem
    assert ConnectionLimits().problem() is None
    assert ConnectionLimits(0, 50, 0).problem() is None  # no total: any pre-login cap
