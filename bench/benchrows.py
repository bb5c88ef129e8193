"""The machine-readable rows every benchmark writes with `--json PATH`, and
that bench/run.py gathers into one table.

One row is one comparison, measured in rounds:

    {"name": "SFTP pull job vs OpenSSH sftp get -r, 1,000 x 10 KB",
     "unit": "files/s", "higher_is_better": true,
     "ours_rounds": [1031.2, 998.4, 1012.0], "theirs_rounds": [917.4, 930.1, 889.0],
     "median_ours": 1012.0, "median_theirs": 917.4, "ratio": 1.103,
     "target": null, "met": null}

- `ours_rounds` and `theirs_rounds` are the figures of each round, in `unit`;
  `theirs_rounds` is null where there is nothing to compare with (the
  operator's own figures); `theirs_name` names the other side.
- `ratio` compares the medians and is oriented so that above 1 means ours is
  better: ours/theirs for a rate (`higher_is_better`, MB/s, files/s),
  theirs/ours for a time or a size (seconds, MB). RATIO_ORIENTATION says so in
  every file.
- `target`, where the issue sets one: {"at_most": 15} or {"at_least": 100}
  for the median of ours, {"ratio_at_least": 0.9} for the ratio; `met` is
  whether the median (or the ratio) reaches it, null without a target.
- `failed`, instead of figures, when the measurement could not be made.

A file is {"script", "ratio_orientation", "settings", "rows"}.

Plain standard library: the bench scripts import it as a sibling module, and
the unit tests load it from its path.
"""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

RATIO_ORIENTATION = (
    "ratio compares the medians and is above 1 when ours is better: ours/theirs for rates "
    "(higher_is_better: MB/s, files/s), theirs/ours for times and sizes (s, MB)"
)

Row = dict[str, Any]


def rounded(value: float) -> float:
    """Four significant digits: enough for figures that vary by a few percent."""
    if value == 0:
        return 0.0
    return float(f"{value:.4g}")


def median(values: Sequence[float]) -> float | None:
    return rounded(statistics.median(values)) if values else None


def ratio_of(median_ours: float | None, median_theirs: float | None,
             higher_is_better: bool) -> float | None:
    if median_ours is None or median_theirs is None:
        return None
    better, worse = ((median_ours, median_theirs) if higher_is_better
                     else (median_theirs, median_ours))
    return round(better / worse, 3) if worse else None


def met(target: dict[str, float] | None, median_ours: float | None,
        ratio: float | None) -> bool | None:
    if not target:
        return None
    results = []
    for kind, value in target.items():
        if kind == "at_most":
            results.append(median_ours is not None and median_ours <= value)
        elif kind == "at_least":
            results.append(median_ours is not None and median_ours >= value)
        elif kind == "ratio_at_least":
            results.append(ratio is not None and ratio >= value)
        else:
            raise ValueError(f"unknown kind of target {kind!r}")
    return all(results)


def row(name: str, unit: str, ours: Sequence[float], theirs: Sequence[float] | None = None,
        *, higher_is_better: bool = True, target: dict[str, float] | None = None,
        **extra: Any) -> Row:
    """One comparison from the figures of its rounds; `extra` (the other side's
    name, notes) is kept as given."""
    median_ours = median(ours)
    median_theirs = median(theirs) if theirs is not None else None
    ratio = ratio_of(median_ours, median_theirs, higher_is_better)
    return {
        "name": name,
        "unit": unit,
        "higher_is_better": higher_is_better,
        "ours_rounds": [rounded(x) for x in ours],
        "theirs_rounds": [rounded(x) for x in theirs] if theirs is not None else None,
        "median_ours": median_ours,
        "median_theirs": median_theirs,
        "ratio": ratio,
        "target": target,
        "met": met(target, median_ours, ratio),
        **extra,
    }


def failed_row(name: str, reason: str, target: dict[str, float] | None = None,
               unit: str | None = None) -> Row:
    """A measurement that could not be made: a target it had is not met."""
    row: Row = {"name": name, "failed": reason, "target": target,
                "met": False if target else None}
    if unit is not None:
        row["unit"] = unit
    return row


def document(script: str, rows: list[Row], settings: dict[str, Any]) -> dict[str, Any]:
    return {"script": script, "ratio_orientation": RATIO_ORIENTATION, "settings": settings,
            "rows": rows}


def write(path: Path | None, script: str, rows: list[Row], settings: dict[str, Any]) -> None:
    """Writes the rows to `path` (nothing when None), replacing it whole."""
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(document(script, rows, settings), indent=2) + "\n")
    temporary.replace(path)


def size_label(size_bytes: int) -> str:
    """'1 GiB', '8 MiB', '1,000 MB': how a row names the size it moved."""
    if size_bytes % (1 << 30) == 0:
        return f"{size_bytes >> 30:,} GiB"
    if size_bytes % (1 << 20) == 0:
        return f"{size_bytes >> 20:,} MiB"
    if size_bytes % 1_000_000 == 0:
        return f"{size_bytes // 1_000_000:,} MB"
    return f"{size_bytes:,} bytes"
