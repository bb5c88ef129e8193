"""Which watch events are worth a reconcile: small pure tests on bodies.

Every event leads to the same level-based reconcile, so these only spare work:
a reconcile they let through is always safe, one they drop must be one that
could change nothing.
"""

from __future__ import annotations

from typing import Any

from ..planning.config import ANNOTATION_ROTATE

Body = dict[str, Any]


def spec_changed(event_type: str, before: Body | None, after: Body) -> bool:
    """New to us, not a modification, or a new generation: the operator's own
    status writes come back as MODIFIED with the same generation."""
    return (before is None or event_type != "MODIFIED"
            or before["metadata"].get("generation") != after["metadata"].get("generation"))


def rotation_requested(before: Body | None, after: Body) -> bool:
    """The rotate annotation changed (a password or key to make anew)."""
    return before is not None and rotation(before) != rotation(after)


def rotation(body: Body) -> str | None:
    annotations: dict[str, str] = body["metadata"].get("annotations") or {}
    return annotations.get(ANNOTATION_ROTATE)


def status_changed(before: Body | None, after: Body) -> bool:
    return before is None or before.get("status") != after.get("status")


class EchoFilter:
    """Tells an event on a child that someone else caused from the echo of our
    own write.

    Deletions always count. For objects with a generation (Deployments,
    CronJobs), an event that keeps it is a status update by a controller; for
    the others, an event whose data equals what we saw last is our own write
    echoed back. The first sight of an object counts for nothing: the
    reconcile that made it has seen it.
    """

    def __init__(self) -> None:
        self._seen: dict[tuple[str, str, str], Any] = {}

    def changed_by_others(self, event_type: str, body: Body) -> bool:
        metadata = body.get("metadata") or {}
        key = (str(body.get("kind")), str(metadata.get("namespace")), str(metadata.get("name")))
        if event_type == "DELETED":
            self._seen.pop(key, None)
            return True
        generation = metadata.get("generation")
        fingerprint = generation if generation is not None else (
            body.get("data"), body.get("spec"), dict(metadata.get("labels") or {}))
        before = self._seen.get(key)
        self._seen[key] = fingerprint
        return before is not None and before != fingerprint
