"""The chaos tests' inspection of a landing folder finds each kind of damage
it is there to find (a check that cannot fail would make the chaos pass)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.integration.chaos.chaos_support import (
    Inspection,
    Sent,
    inspect_home,
    problem_names,
    receipt_of,
    sha256,
)


def land(home: Path, name: str, data: bytes, receipt: bool = True) -> None:
    (home / name).write_bytes(data)
    if receipt:
        (home / receipt_of(name)).write_text(json.dumps(
            {"name": name, "size": len(data), "sha256": sha256(data)}))


def sent(name: str, data: bytes, acknowledged: bool = True) -> Sent:
    return Sent(name, sha256(data), len(data), acknowledged=acknowledged, attempts=1)


def test_a_clean_folder_passes(tmp_path: Path) -> None:
    land(tmp_path, "a.csv", b"alpha")
    (tmp_path / ".upload-x.a.csv.part").write_bytes(b"alp")  # hidden: fine
    result = inspect_home(tmp_path, {"a.csv": sent("a.csv", b"alpha"),
                                     "b.csv": sent("b.csv", b"beta", acknowledged=False)})
    assert result == Inspection(landed=["a.csv"])


def test_each_kind_of_damage_is_found(tmp_path: Path) -> None:
    land(tmp_path, "partial.csv", b"hal")  # 3 of 4 bytes
    land(tmp_path, "copy-2.csv", b"copy")  # a name never sent
    land(tmp_path, "bare.csv", b"bare", receipt=False)
    (tmp_path / receipt_of("gone.csv")).write_text("{}")
    land(tmp_path, "lying.csv", b"lying")
    (tmp_path / receipt_of("lying.csv")).write_text(json.dumps(
        {"name": "lying.csv", "size": 5, "sha256": sha256(b"other")}))
    expected = {name: sent(name, data) for name, data in (
        ("partial.csv", b"half"), ("copy.csv", b"copy"), ("bare.csv", b"bare"),
        ("lying.csv", b"lying"), ("lost.csv", b"lost"))}
    result = inspect_home(tmp_path, expected)
    assert result.landed == ["bare.csv", "lying.csv"]
    assert result.partial == ["partial.csv: 3 bytes on disk, 4 sent"]
    assert result.duplicates == ["copy-2.csv"]
    assert sorted(line.split(":")[0] for line in result.lost) == [
        "copy.csv", "lost.csv", "partial.csv"]
    assert [line.split(":")[0] for line in result.receipt_problems] == [
        "bare.csv", "receipt_gone.csv.txt", "receipt_lying.csv.txt"]
    assert {"copy-2.csv", "gone.csv", "receipt_bare.csv.txt"} <= problem_names(result)
