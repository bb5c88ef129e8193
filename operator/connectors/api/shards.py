"""Splitting a namespace's table into several objects.

The account tables (accounts.py) and the processing table (processing.py) hold
one entry per Connection of a namespace. One Secret or ConfigMap is limited to
1 MiB, which an entry of 150 to 1,000 bytes fills near a few thousand
Connections, so each table is split into up to SHARDS objects by a key (a
login, a Connection name) whose shard never changes. A pod mounts every shard
as an optional source of one projected volume and reads them together.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

SHARDS = 16


def shard_of(key: str) -> int:
    """The shard of a key: fixed by the key alone, so an entry never moves (the
    kubelet may see two objects change at different moments, and a move would
    make the entry vanish for that moment)."""
    return hashlib.sha256(key.encode()).digest()[0] % SHARDS


def shard_suffix(shard: int) -> str:
    return f"{shard:02d}"


def shard_number(prefix: str, name: str) -> int | None:
    """The shard an object named `<prefix><NN>` holds, or None if it is not one."""
    number = name.removeprefix(prefix)
    if number == name or not number.isdigit() or not 0 <= int(number) < SHARDS:
        return None
    return int(number)


def split(items: Iterable[T], key: Callable[[T], str]) -> dict[int, list[T]]:
    """The items by shard of their key, in shard order; only shards that hold one."""
    found: dict[int, list[T]] = {}
    for item in items:
        found.setdefault(shard_of(key(item)), []).append(item)
    return dict(sorted(found.items()))


def read_shards(path: Path, pattern: str) -> list[bytes]:
    """The bytes of each shard file in a mounted folder, in shard order; of the
    one file when `path` is a file. An empty folder is an empty table: every
    shard's object is optional.

    The kubelet swaps the folder's `..data` link first and adds or removes the
    files' own links after, so a file whose shard just went can dangle for a
    moment: it is skipped, as the shard it named is no longer there."""
    if not path.is_dir():
        return [path.read_bytes()]
    found = []
    for shard in sorted(path.glob(pattern)):
        try:
            found.append(shard.read_bytes())
        except FileNotFoundError:
            continue
    return found
