"""The Consecutive rule: all the lines of one key (an order's items) come one
after another.

A key is "closed" when a line with another key follows its lines; a closed key
that comes back breaks the rule, and every line of its new run is rejected.

Remembering every closed key exactly would take memory that grows with the
file (about 70 bytes a key: 700 MB for ten million orders). The closed keys
are kept as 64-bit hashes in two generations of at most `max_keys / 2` each:
when the newer one is full, the older one is dropped. A key that comes back
within the last `max_keys / 2` keys is always caught; one that comes back
later than that may be missed. A hash collision (about one in 10^7 for a
million keys) could reject a good line; that is the price of the bound.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from itertools import groupby

# Any object that no key equals: no key is "open" before the first line.
_NONE: object = object()


class ConsecutiveTracker:
    def __init__(self, blank: Hashable = "", max_keys: int = 1_000_000) -> None:
        # Lines without a key (an empty value) neither close a key nor break
        # the rule: their emptiness is the column's business.
        self._blank = hash(blank)
        self._generation = max(1, max_keys // 2)
        self._newer: set[int] = set()
        self._older: set[int] = set()
        self._open: object = _NONE  # the hash of the key whose run the last batch ended in

    def breaks(self, keys: Sequence[Hashable]) -> list[int]:
        """The indices of `keys` (one batch, in file order) whose key was closed
        before; updates what is closed."""
        hashes = list(map(hash, [key for key, _ in groupby(keys)]))
        first, last = hashes[0], hashes[-1]
        unique = set(hashes)
        if (len(unique) == len(hashes) and self._blank not in unique
                and (first == self._open or self._open not in unique)
                and unique.isdisjoint(self._newer)
                and (not self._older or unique.isdisjoint(self._older))):
            # The common case: no key comes back. Every run but the last is
            # closed, and so is the run the previous batch ended in, unless this
            # batch goes on with it.
            if first != self._open:
                self._close(self._open)
            unique.discard(last)
            self._close_all(unique)
            self._open = last
            return []
        return self._slow(keys)

    def _slow(self, keys: Sequence[Hashable]) -> list[int]:
        """Run by run, to name the lines that break the rule."""
        broken: list[int] = []
        row = 0
        for key, run in groupby(keys):
            size = sum(1 for _ in run)
            code = hash(key)
            if code == self._blank:
                row += size
                continue
            if code != self._open:
                if code in self._newer or code in self._older:
                    broken.extend(range(row, row + size))
                self._close(self._open)
                self._open = code
            row += size
        return broken

    def _close(self, code: object) -> None:
        if isinstance(code, int):
            self._close_all((code,))

    def _close_all(self, codes: Iterable[int]) -> None:
        self._newer.update(codes)
        if len(self._newer) >= self._generation:
            self._older, self._newer = self._newer, set()
