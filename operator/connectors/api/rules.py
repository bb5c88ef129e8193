"""Cross-field rules, each written once and enforced in two places.

A rule has a CEL expression, which the CRD carries as an x-kubernetes-validations
entry so that `kubectl apply` refuses a bad manifest, and a Python predicate over
the parsed model, which the operator and `connectors validate` use offline. Both
share one message and one field path, and a test holds their verdicts side by
side over a corpus of bad manifests so the two halves cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Rule:
    """A cross-field rule on the object at which it is attached.

    `field` is relative to that object (".remote.folder"); it becomes the CEL
    rule's fieldPath, so the API server names the field in its refusal.
    """

    field: str
    cel: str
    message: str
    holds: Callable[[Any], bool]

    def as_cel(self) -> dict[str, str]:
        entry: dict[str, str] = {"rule": self.cel, "message": self.message}
        if self.field:
            entry["fieldPath"] = self.field
        return entry


def broken_rules(model: Any, rules: tuple[Rule, ...]) -> list[Rule]:
    """The rules that `model` breaks, in declaration order."""
    return [rule for rule in rules if not rule.holds(model)]


def cel_extension(rules: tuple[Rule, ...]) -> dict[str, Any]:
    """The json_schema_extra that carries `rules` into the CRD."""
    return {"x-kubernetes-validations": [rule.as_cel() for rule in rules]}
