"""The outcome of one transfer run: counted while it runs, printed as one JSON
line and written to the termination log, where the operator reads it into
status.lastTransfer."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..clock import now_rfc3339

# Kubernetes keeps at most 4096 bytes of a termination message.
TERMINATION_LOG_LIMIT = 4096
MESSAGE_LIMIT = 2048


@dataclass
class Summary:
    connection: str
    files: int = 0
    bytes: int = 0
    skipped: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def transferred(self, size: int) -> None:
        with self._lock:
            self.files += 1
            self.bytes += size

    def skip(self, count: int = 1) -> None:
        with self._lock:
            self.skipped += count

    def fail(self, message: str) -> None:
        with self._lock:
            self.failed += 1
            self.errors.append(message)

    def error(self, message: str) -> None:
        """A failure of the run itself (connection, login), not of one file."""
        with self._lock:
            self.errors.append(message)

    @property
    def succeeded(self) -> bool:
        return not self.errors and self.failed == 0

    def to_dict(self) -> dict[str, Any]:
        """Field names and meanings of LastTransfer in api/connection.py, plus
        the connection name and the duration."""
        message = "; ".join(dict.fromkeys(self.errors))  # unique, in order
        if len(message) > MESSAGE_LIMIT:
            message = message[: MESSAGE_LIMIT - 3] + "..."
        return {
            "connection": self.connection,
            "time": now_rfc3339(),
            "files": self.files,
            "bytes": self.bytes,
            "skipped": self.skipped,
            "failed": self.failed,
            "outcome": "Succeeded" if self.succeeded else "Failed",
            "message": message,
            "durationSeconds": round(time.monotonic() - self.started, 3),
        }


def render(data: dict[str, Any]) -> str:
    line = json.dumps(data, separators=(",", ":"), sort_keys=False)
    if len(line.encode()) > TERMINATION_LOG_LIMIT:
        data = {**data, "message": data.get("message", "")[:512] + "..."}
        line = json.dumps(data, separators=(",", ":"))
    return line


def write_termination_log(path: Path | None, line: str) -> None:
    """Writes the summary where Kubernetes reads a container's termination
    message, when that file exists (it does in a pod, not on a laptop)."""
    if path is None or not path.exists():
        return
    with contextlib.suppress(OSError):
        path.write_text(line + "\n", encoding="utf-8")
