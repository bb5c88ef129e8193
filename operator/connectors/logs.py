"""Logging for every command that runs for long or in a pod (run, listen,
transfer, process): plain text lines, or JSON lines for a log pipeline.

`--log-format json` (env CONNECTORS_LOG_FORMAT) makes each record one JSON
object on one line: time (RFC 3339, UTC, milliseconds), level, logger,
message, and for an audit event an `audit` object.

Audit events go to the logger `connectors.audit`, one line each, through
`audit()`: a login (success or failure), an upload landed, a download, a
refusal, an email accepted or refused, a ban, a transfer job's run, a file
checked. Their fields are a closed set (AUDIT_FIELDS): a value that is not
one of them is a programming error, so that nothing else (a password, a key,
a hash of either, a token) can ride along by accident.
"""

from __future__ import annotations

import argparse
import datetime
import json
import logging
import sys
from typing import IO, Any

from .options import env_option

AUDIT_LOGGER = "connectors.audit"
LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# What an audit event may say. `sha256` is the landed file's digest, which the
# receipt beside the file shows the partner anyway.
AUDIT_FIELDS = frozenset({
    "event", "result", "protocol", "namespace", "connection", "user", "remote_address",
    "file", "size", "sha256", "trace_id", "reason",
    # Counts of a transfer job's run and of a checked file.
    "files", "bytes", "skipped", "failed", "rows_accepted", "rows_rejected",
    "duration_seconds", "direction",
})
# Long values are cut: a username or a file name is the partner's to choose.
MAX_VALUE = 256

_audit_log = logging.getLogger(AUDIT_LOGGER)
# Fields every audit event of this process carries (its namespace).
_defaults: dict[str, Any] = {}


def add_log_format_option(parser: argparse._ActionsContainer) -> None:
    env_option(parser, "--log-format", env="CONNECTORS_LOG_FORMAT", default="text",
               choices=LOG_FORMATS,
               help="text: one line per record; json: one JSON object per line (time, "
                    "level, logger, message, and `audit` for audit events)")


def configure(level: int | str, log_format: str = "text", stream: IO[str] | None = None) -> None:
    """Replaces the root logger's handlers with one that writes `log_format`."""
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter = JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper() if isinstance(level, str) else level)


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _rfc3339(record.created),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "audit", None)
        if isinstance(fields, dict):
            line["audit"] = fields
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            line["exception"] = record.exc_text
        return json.dumps(line, ensure_ascii=False, separators=(",", ":"), default=str)


def _rfc3339(created: float) -> str:
    moment = datetime.datetime.fromtimestamp(created, datetime.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def set_audit_defaults(**fields: Any) -> None:
    """Fields for every later audit event of this process, e.g. its namespace."""
    _check(fields)
    _defaults.clear()
    _defaults.update(fields)


def _check(fields: dict[str, Any]) -> None:
    unknown = set(fields) - AUDIT_FIELDS
    if unknown:
        raise ValueError(f"not an audit field: {', '.join(sorted(unknown))}")


def audit(event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Logs one audit event. Fields that are None or empty are left out."""
    _check(fields)
    if not _audit_log.isEnabledFor(level):
        return
    shown: dict[str, Any] = {"event": event}
    for key, value in {**_defaults, **fields}.items():
        if value is None or value == "":
            continue
        if isinstance(value, str) and len(value) > MAX_VALUE:
            value = value[:MAX_VALUE] + "..."
        shown[key] = value
    _audit_log.log(level, "%s", _text(shown), extra={"audit": shown})


def _text(fields: dict[str, Any]) -> str:
    """`event key=value ...`; strings JSON-quoted, so a space, a quote or a
    newline in a name cannot forge another field or another line."""
    parts = [str(fields["event"])]
    for key, value in fields.items():
        if key == "event":
            continue
        shown = json.dumps(value, ensure_ascii=True) if isinstance(value, str) else str(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)
