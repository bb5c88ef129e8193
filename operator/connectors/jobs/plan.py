"""What a transfer run should do, decided from listings and the ledger alone:
pure functions, no I/O, so every rule about "never twice, never lost" is unit
tested without a server."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from ..landing.names import is_hidden, is_reserved, matches_pattern
from .clients.base import RemoteFile
from .ledger import FETCHED, SENDING, SENT

Known = Callable[[str, str, int, int], bool]
"""ledger.has(kind, name, size, mtime)"""


@dataclass(frozen=True)
class PullPlan:
    fetch: tuple[RemoteFile, ...] = ()
    """Files to download, in name order."""
    recover: tuple[RemoteFile, ...] = ()
    """Files that landed but were not recorded (the job died in between): record
    them from the landed copy instead of downloading again."""
    delete: tuple[RemoteFile, ...] = ()
    """Files already recorded that should still be deleted on the remote."""
    skipped: int = 0
    """Already fetched, or not ours (pattern, reserved, hidden, temporary)."""


def wanted(name: str, pattern: str | None) -> bool:
    """A remote file belongs to the Connection: it matches the pattern and is
    neither a receipt/result nor hidden (temporary uploads are hidden)."""
    # A folder separator or a NUL can only come from a hostile or broken
    # server: such an entry is never a name in the landing area.
    return (not is_reserved(name) and not is_hidden(name) and "/" not in name
            and "\x00" not in name and matches_pattern(name, pattern))


def plan_pull(
    remote: Iterable[RemoteFile],
    known: Known,
    pattern: str | None,
    landed: Mapping[str, tuple[int, int]],
    delete_after: bool,
) -> PullPlan:
    """`landed` maps a landed file's name to its (size, mtime); the job stamps
    each landed file with the remote mtime, which makes a landed but unrecorded
    file recognisable."""
    fetch: list[RemoteFile] = []
    recover: list[RemoteFile] = []
    delete: list[RemoteFile] = []
    skipped = 0
    for file in sorted(remote, key=lambda f: f.name):
        if not wanted(file.name, pattern):
            skipped += 1
        elif known(FETCHED, file.name, file.size, file.mtime):
            skipped += 1
            if delete_after:
                delete.append(file)
        elif landed.get(file.name) == (file.size, file.mtime):
            recover.append(file)
        else:
            fetch.append(file)
    return PullPlan(tuple(fetch), tuple(recover), tuple(delete), skipped)


@dataclass(frozen=True)
class OutboxFile:
    name: str
    size: int
    mtime: int


@dataclass(frozen=True)
class PushPlan:
    send: tuple[OutboxFile, ...] = ()
    """Never sent: send them."""
    uncertain: tuple[OutboxFile, ...] = ()
    """Sending started but was not recorded as done: the job died during or just
    after the upload. Check the remote before sending again."""
    finish: tuple[OutboxFile, ...] = ()
    """Recorded as sent but still in the outbox: only move them to sent/."""
    skipped: int = field(default=0)


def plan_push(outbox: Iterable[OutboxFile], known: Known, pattern: str | None = None) -> PushPlan:
    """Files in the outbox that match the pattern (when set) are sent; others
    stay where they are and count as skipped."""
    send: list[OutboxFile] = []
    uncertain: list[OutboxFile] = []
    finish: list[OutboxFile] = []
    skipped = 0
    for file in sorted(outbox, key=lambda f: f.name):
        key = (file.name, file.size, file.mtime)
        if is_hidden(file.name) or not matches_pattern(file.name, pattern):
            skipped += 1
        elif known(SENT, *key):
            finish.append(file)
        elif known(SENDING, *key):
            uncertain.append(file)
        else:
            send.append(file)
    return PushPlan(tuple(send), tuple(uncertain), tuple(finish), skipped)
