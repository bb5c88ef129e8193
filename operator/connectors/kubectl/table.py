"""`kubectl connectors status`: one row per Connection, from its status alone."""

from __future__ import annotations

import json
from typing import Any

COLUMNS = ("namespace", "name", "method", "direction", "methodology", "ready", "reason",
           "lastTransfer", "outcome", "files", "bytes")
HEADERS = {"lastTransfer": "LAST TRANSFER"}


def row(connection: dict[str, Any]) -> dict[str, Any]:
    """What the table shows of one Connection; "-" where nothing is known yet."""
    spec = connection.get("spec") or {}
    status = connection.get("status") or {}
    ready: dict[str, Any] = next(
        (c for c in status.get("conditions") or [] if c.get("type") == "Ready"), {})
    last = status.get("lastTransfer") or {}
    return {
        "namespace": connection["metadata"]["namespace"],
        "name": connection["metadata"]["name"],
        "method": spec.get("method", "-"),
        "direction": spec.get("direction", "-"),
        "methodology": spec.get("methodology", "-"),
        "ready": ready.get("status", "Unknown"),
        "reason": ready.get("reason", "-"),
        "lastTransfer": last.get("time", "-"),
        "outcome": last.get("outcome", "-"),
        "files": last.get("files", "-"),
        "bytes": last.get("bytes", "-"),
    }


def rows(connections: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ordered = sorted(connections, key=lambda c: (c["metadata"]["namespace"],
                                                 c["metadata"]["name"]))
    return [row(c) for c in ordered]


def render_text(table: list[dict[str, Any]], with_namespace: bool) -> str:
    """Columns aligned with spaces, like `kubectl get`; no colours, no borders."""
    columns = [c for c in COLUMNS if with_namespace or c != "namespace"]
    header = [HEADERS.get(c, c.upper()) for c in columns]
    cells = [[str(r[c]) for c in columns] for r in table]
    widths = [max(len(line[i]) for line in [header, *cells]) for i in range(len(columns))]
    return "\n".join("   ".join(cell.ljust(width) for cell, width in zip(line, widths,
                                                                          strict=True)).rstrip()
                     for line in [header, *cells])


def render_json(table: list[dict[str, Any]]) -> str:
    return json.dumps(table, indent=2)
