"""The one way the code writes the current time: RFC 3339 in UTC, to the second
(status fields, receipts, ledgers, summaries)."""

from __future__ import annotations

import datetime


def now_rfc3339() -> str:
    """'2026-11-27T09:30:00Z'."""
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
