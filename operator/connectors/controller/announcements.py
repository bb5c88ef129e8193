"""Which events a Connection's reconcile owes: the announcements of `kubectl describe`.

A Warning when a condition turns False, a Normal `Configured` when the
Connection becomes Ready or a spec change has been carried out. What was
announced is remembered here rather than read from the cached status, which
may not show this operator's last write yet: a reconcile that follows closely
would otherwise announce the same thing twice.
"""

from __future__ import annotations

from typing import Any

from ..planning.conditions import FALSE, TRUE, Verdict

Key = tuple[str, str]
Event = tuple[str, str, str]


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
            "conditions": {c["type"]: c["status"] for c in previous.get("conditions") or []},
            "generation": previous.get("observedGeneration"),
        })
        events = []
        for verdict in verdicts:
            before = announced["conditions"].get(verdict.type)
            if verdict.status == FALSE and before != FALSE and verdict.type != "Ready":
                events.append(("Warning", verdict.reason, verdict.message))
            if verdict.type == "Ready" and verdict.ok and (
                    before != TRUE or announced["generation"] != generation):
                events.append(("Normal", "Configured", configured))
            announced["conditions"][verdict.type] = verdict.status
        announced["generation"] = generation
        return events
