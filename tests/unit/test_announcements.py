"""Which events a Connection's reconcile owes (controller/announcements.py)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from connectors.controller.announcements import PENDING_GRACE, Announcer
from connectors.planning.conditions import FALSE, TRUE, Verdict

WAITING = Verdict("WorkloadReady", FALSE, "AccountNotLoaded", "listener has not loaded it")
NOT_READY = Verdict("Ready", FALSE, "AccountNotLoaded", "listener has not loaded it")
SERVING = Verdict("WorkloadReady", TRUE, "ListenerServing", "served")
READY = Verdict("Ready", TRUE, "ListenerServing", "served")


def body(*conditions: tuple[str, str, str, datetime]) -> dict[str, Any]:
    return {"metadata": {"generation": 1}, "status": {"observedGeneration": 1, "conditions": [
        {"type": type_, "status": status, "reason": reason,
         "lastTransitionTime": since.strftime("%Y-%m-%dT%H:%M:%SZ")}
        for type_, status, reason, since in conditions]}}


def reasons(events: list[tuple[str, str, str]]) -> list[tuple[str, str]]:
    return [(type_, reason) for type_, reason, _ in events]


def test_a_new_connection_waiting_for_its_listener_is_not_a_warning() -> None:
    announcer = Announcer()
    new = {"metadata": {"generation": 1}}
    assert announcer.events(("ns", "a"), new, [WAITING, NOT_READY], "done") == []
    assert reasons(announcer.events(("ns", "a"), new, [SERVING, READY], "done")) == [
        ("Normal", "Configured")]


def test_waiting_that_lasts_past_the_grace_is_a_warning_once() -> None:
    announcer = Announcer()
    now = datetime.now(UTC)
    fresh = body(("WorkloadReady", FALSE, "AccountNotLoaded", now))
    assert announcer.events(("ns", "a"), fresh, [WAITING, NOT_READY], "done") == []
    old = now - timedelta(seconds=PENDING_GRACE + 5)
    stuck = body(("WorkloadReady", FALSE, "AccountNotLoaded", old))
    assert reasons(announcer.events(("ns", "a"), stuck, [WAITING, NOT_READY], "done")) == [
        ("Warning", "AccountNotLoaded")]
    assert announcer.events(("ns", "a"), stuck, [WAITING, NOT_READY], "done") == []


def test_losing_the_listener_after_ready_is_a_warning_at_once() -> None:
    announcer = Announcer()
    now = datetime.now(UTC)
    served = body(("WorkloadReady", TRUE, "ListenerServing", now), ("Ready", TRUE, "x", now))
    assert reasons(announcer.events(("ns", "a"), served, [WAITING, NOT_READY], "done")) == [
        ("Warning", "AccountNotLoaded")]


def test_other_faults_warn_at_once() -> None:
    announcer = Announcer()
    broken = Verdict("CredentialReady", FALSE, "CredentialNotFound", "no such Credential")
    assert reasons(announcer.events(("ns", "a"), {"metadata": {"generation": 1}},
                                    [broken], "done")) == [("Warning", "CredentialNotFound")]
