"""A fake of the operator's `Kube` wrapper for reconciler unit tests: objects in
a dict, every call recorded. It mimics what the reconcilers rely on (create
refuses an existing name, apply merges, status patches merge, a deleted object
is gone) and nothing more; behaviour of the real API server is tested against
the real control plane in tests/integration."""

from __future__ import annotations

import copy
import itertools
from typing import Any

Ref = tuple[str, str, str]


def merge(into: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7386)."""
    for key, value in patch.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = copy.deepcopy(value)
    return into


class FakeKube:
    def __init__(self) -> None:
        self.objects: dict[Ref, dict[str, Any]] = {}
        self.calls: list[tuple[str, str, str, str]] = []
        self.events: list[tuple[str, str, str, str]] = []
        self._versions = itertools.count(1)

    def put(self, obj: dict[str, Any]) -> dict[str, Any]:
        """Adds an object as a user would have created it."""
        meta = obj.setdefault("metadata", {})
        meta.setdefault("uid", f"uid-{meta['name']}")
        meta["resourceVersion"] = str(next(self._versions))
        self.objects[(obj["kind"], meta.get("namespace", ""), meta["name"])] = obj
        return obj

    def writes(self, verb: str | None = None) -> list[tuple[str, str, str, str]]:
        return [c for c in self.calls if c[0] != "get" and (verb is None or c[0] == verb)]

    def get(self, kind: str, namespace: str, name: str) -> dict[str, Any] | None:
        self.calls.append(("get", kind, namespace, name))
        found = self.objects.get((kind, namespace, name))
        return copy.deepcopy(found) if found is not None else None

    def list_in(self, kind: str, namespaces: list[str], selector: str = "") -> list[dict[str, Any]]:
        self.calls.append(("list", kind, ",".join(namespaces), selector))
        wanted = dict(part.split("=", 1) for part in selector.split(",") if "=" in part)
        return [copy.deepcopy(o) for (k, ns, _), o in self.objects.items()
                if k == kind and (not namespaces or ns in namespaces)
                and all((o["metadata"].get("labels") or {}).get(a) == b
                        for a, b in wanted.items())]

    def apply(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.calls.append(("apply", obj["kind"], meta.get("namespace", ""), meta["name"]))
        ref = (obj["kind"], meta.get("namespace", ""), meta["name"])
        current = self.objects.get(ref)
        result = merge(copy.deepcopy(current), obj) if current else self.put(copy.deepcopy(obj))
        self.objects[ref] = result
        return copy.deepcopy(result)

    def create(self, obj: dict[str, Any]) -> dict[str, Any] | None:
        meta = obj["metadata"]
        self.calls.append(("create", obj["kind"], meta.get("namespace", ""), meta["name"]))
        if (obj["kind"], meta.get("namespace", ""), meta["name"]) in self.objects:
            return None
        created = self.put(copy.deepcopy(obj))
        if "stringData" in created:  # as the API server stores it
            import base64
            created.setdefault("data", {}).update({
                k: base64.b64encode(v.encode()).decode()
                for k, v in created.pop("stringData").items()})
        return copy.deepcopy(created)

    def replace(self, obj: dict[str, Any]) -> dict[str, Any]:
        meta = obj["metadata"]
        self.calls.append(("replace", obj["kind"], meta.get("namespace", ""), meta["name"]))
        return self.put(copy.deepcopy(obj))

    def delete(self, kind: str, namespace: str, name: str) -> bool:
        self.calls.append(("delete", kind, namespace, name))
        return self.objects.pop((kind, namespace, name), None) is not None

    def patch_status(self, kind: str, namespace: str, name: str,
                     status: dict[str, Any]) -> None:
        self.calls.append(("patch_status", kind, namespace, name))
        found = self.objects.get((kind, namespace, name))
        if found is not None:
            merge(found.setdefault("status", {}), status)

    def event(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        self.events.append((involved["metadata"]["name"], type_, reason, message))
