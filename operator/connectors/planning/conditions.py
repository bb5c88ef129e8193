"""Status conditions in the standard Kubernetes shape (cert-manager's rules).

observedGeneration is set every time; lastTransitionTime changes only when the
status flips; reasons are CamelCase words.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

TRUE, FALSE, UNKNOWN = "True", "False", "Unknown"


@dataclass(frozen=True)
class Verdict:
    """One condition as a plan computes it, before time and generation are stamped."""

    type: str
    status: str
    reason: str
    message: str

    @property
    def ok(self) -> bool:
        return self.status == TRUE


def merge_conditions(
    previous: Iterable[Mapping[str, Any]] | None,
    verdicts: Iterable[Verdict],
    generation: int,
    now: str,
) -> list[dict[str, Any]]:
    """The new conditions list: verdicts in order, keeping transition times that still hold."""
    before = {c.get("type"): c for c in previous or ()}
    merged = []
    for verdict in verdicts:
        old = before.get(verdict.type)
        flipped = old is None or old.get("status") != verdict.status
        merged.append({
            "type": verdict.type,
            "status": verdict.status,
            "reason": verdict.reason,
            "message": verdict.message,
            "lastTransitionTime": now if flipped or old is None
            else old.get("lastTransitionTime", now),
            "observedGeneration": generation,
        })
    return merged


def ready_verdict(parts: list[Verdict], ready_message: str,
                  suspended: str | None = None) -> Verdict:
    """Ready is True only when every other condition is; otherwise it repeats the
    first problem. A suspended Connection is never Ready, and that is the first
    thing to say about it, whatever else is wrong (the other conditions still
    show it); `suspended` says what the suspension stops."""
    if suspended is not None:
        return Verdict("Ready", FALSE, "Suspended", suspended)
    for part in parts:
        if not part.ok:
            status = UNKNOWN if part.status == UNKNOWN else FALSE
            return Verdict("Ready", status, part.reason, part.message)
    return Verdict("Ready", TRUE, "Ready", ready_message)


def find(conditions: Iterable[Mapping[str, Any]] | None, type_: str) -> Mapping[str, Any] | None:
    return next((c for c in conditions or () if c.get("type") == type_), None)


def status_changed(previous: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """Whether writing `status` would change anything a reader sees.

    Keys set to None are deletions in a merge patch and count as absent; transition
    times follow from the statuses, so they are not compared on their own.
    """
    def essence(s: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in s.items() if v is not None and k != "conditions"}
        out["conditions"] = [{k: v for k, v in c.items() if k != "lastTransitionTime"}
                             for c in s.get("conditions") or []]
        return out
    return essence(previous) != essence(status)
