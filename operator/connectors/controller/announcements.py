"""Which events a Connection's reconcile owes: the announcements of `kubectl describe`.

A Warning when a condition turns False, a Normal `Configured` when the
Connection becomes Ready or a spec change has been carried out. What was
announced is remembered here rather than read from the cached status, which
may not show this operator's last write yet: a reconcile that follows closely
would otherwise announce the same thing twice.
"""

from __future__ import annotations

import time
from typing import Any

from ..metrics.operator import parse_time
from ..planning.conditions import FALSE, TRUE, Verdict

Key = tuple[str, str]
Event = tuple[str, str, str]

# A new Connection waits a few seconds for its listener to start or load its
# account; that is the normal way to Ready, not a fault, and a Warning for each of
# 1,000 new Connections only buries the ones that matter. These reasons warn only
# when they follow a True condition (something broke) or have lasted PENDING_GRACE
# (the periodic resync judges again).
PENDING_REASONS = frozenset({"ListenerNotReady", "AccountNotLoaded", "VolumeNotBound"})
PENDING_GRACE = 120.0  # seconds


class Announcer:
    def __init__(self) -> None:
        # Per Connection: the condition statuses and generation last announced.
        self._announced: dict[Key, dict[str, Any]] = {}

    def forget(self, key: Key) -> None:
        self._announced.pop(key, None)

    def events(self, key: Key, body: dict[str, Any], verdicts: list[Verdict],
               configured: str) -> list[Event]:
        """(type, reason, message) of each event this reconcile owes."""
        generation = body["metadata"].get("generation", 0)
        previous = body.get("status") or {}
        announced = self._announced.setdefault(key, {
            # A pending wait in the stored status may never have been announced
            # (it was still in its grace): a stuck one is announced after a restart.
            "conditions": {c["type"]: c["status"] for c in previous.get("conditions") or []
                           if not (c.get("status") == FALSE
                                   and c.get("reason") in PENDING_REASONS)},
            "generation": previous.get("observedGeneration"),
        })
        events = []
        stored = {c["type"]: c for c in previous.get("conditions") or []}
        for verdict in verdicts:
            before = announced["conditions"].get(verdict.type)
            if verdict.status == FALSE and before != FALSE and verdict.type != "Ready":
                if verdict.reason in PENDING_REASONS and before != TRUE and not _lasted(
                        stored.get(verdict.type), verdict.reason):
                    continue  # not announced yet: a later reconcile judges again
                events.append(("Warning", verdict.reason, verdict.message))
            if verdict.type == "Ready" and verdict.ok and (
                    before != TRUE or announced["generation"] != generation):
                events.append(("Normal", "Configured", configured))
            announced["conditions"][verdict.type] = verdict.status
        announced["generation"] = generation
        return events


def _lasted(condition: dict[str, Any] | None, reason: str) -> bool:
    """Whether the stored condition has been False for `reason` for PENDING_GRACE."""
    if condition is None or condition.get("status") != FALSE or condition.get("reason") != reason:
        return False
    since = parse_time(condition.get("lastTransitionTime"))
    return since is None or time.time() - since >= PENDING_GRACE
