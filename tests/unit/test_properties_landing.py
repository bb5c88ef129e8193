"""Property-based tests of the landing rules (issue 11): any name, as text or as
bytes that are not UTF-8, is either refused before anything is written, or
lands as one new visible file directly in the home with its receipt, without
touching anything else; and a temporary name is always one hidden folder entry
of the home."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import unicodedata
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.api.accounts import Account
from connectors.landing.area import LandingArea
from connectors.landing.names import (
    MAX_NAME_BYTES,
    NAME_MAX,
    TEMP_PREFIX,
    matches_pattern,
    name_bytes,
    receipt_name,
)
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.rules import upload_refusal

# Deterministic in CI: the same examples on every run, no example database.
PROPERTIES = settings(derandomize=True, deadline=None, max_examples=300, database=None)

CONNECTION = "acme-conversions"
# What the home holds before each upload: a landed file with its receipt, a
# result, and the internal folder.
EXISTING = {
    "conversions_0.csv": b"id\n0\n",
    receipt_name("conversions_0.csv"): b'{"name": "conversions_0.csv"}\n',
    "result_conversions_0.csv.txt": b"ok\n",
}
PATTERNS = (None, "*", "*.csv", "conversions_*.csv", "?*")

# Characters that each stress one rule: separators, dots, controls, NUL,
# blanks, quotes, and 1- to 4-byte UTF-8 characters.
NASTY = "/\\.\x00\n\r\t\x7f\x1b *?[]'\"`$~:;é中😀\u200b\u0301"


def surrogate_escaped() -> st.SearchStrategy[str]:
    """Any byte string, as Python carries file names that are not UTF-8."""
    return st.binary(max_size=300).map(lambda b: b.decode("utf-8", "surrogateescape"))


def long_names() -> st.SearchStrategy[str]:
    """Names around the limit, in characters of 1, 2, 3 and 4 bytes."""
    def build(char: str, target: int, prefix: str) -> str:
        width = len(char.encode())
        return prefix + char * max(0, (target - len(prefix.encode())) // width)
    return st.builds(build, st.sampled_from(["a", "é", "中", "😀"]),
                     st.integers(MAX_NAME_BYTES - 4, NAME_MAX + 4),
                     st.sampled_from(["", "conversions_", "receipt_", ".", "../"]))


NAMES: st.SearchStrategy[str] = st.one_of(
    st.text(max_size=40),
    st.text(alphabet=NASTY + "abc_", max_size=30),
    st.lists(st.sampled_from(["conversions_", "receipt_", "result_", "..", ".", "/", "\\",
                              "x", ".csv", "\x00", " ", "é", "😀"]),
             max_size=6).map("".join),
    surrogate_escaped(),
    long_names(),
    st.sampled_from(sorted(EXISTING)),
)


def account(pattern: str | None) -> Account:
    return Account(username="acme", connection=CONNECTION, direction="Inbound",
                   home=CONNECTION, permissions=["upload", "list"], filename_pattern=pattern)


def expected_refusal(name: str, pattern: str | None) -> bool:
    """The documented rules, written out independently of listeners/core/rules.py."""
    raw = name_bytes(name)
    return (
        name in ("", ".", "..")
        or "/" in name or "\\" in name
        or any(unicodedata.category(c) == "Cc" for c in name if ord(c) < 0x80)
        or len(raw) > MAX_NAME_BYTES
        or name.startswith(".")
        or name.startswith(("receipt_", "result_"))
        or not matches_pattern(name, pattern)
    )


def snapshot(root: Path) -> dict[bytes, bytes | None]:
    """Every entry under `root` (as bytes paths), with the contents of files."""
    found: dict[bytes, bytes | None] = {}
    for folder, dirs, files in os.walk(os.fsencode(root)):
        for entry in dirs:
            found[os.path.join(folder, entry)] = None
        for entry in files:
            path = os.path.join(folder, entry)
            with open(path, "rb") as handle:
                found[path] = handle.read()
    return found


@contextmanager
def populated_root() -> Iterator[Path]:
    """A data root with the connection's home, a neighbour and a file beside the home."""
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "data"
        home = root / CONNECTION
        (home / ".connectors").mkdir(parents=True)
        for name, content in EXISTING.items():
            (home / name).write_bytes(content)
        (root / "neighbour").mkdir()
        (root / "neighbour" / "conversions_0.csv").write_bytes(b"neighbour\n")
        (Path(folder) / "outside.csv").write_bytes(b"outside\n")
        yield Path(folder)


@PROPERTIES
@given(name=NAMES, pattern=st.sampled_from(PATTERNS),
       chunks=st.lists(st.binary(max_size=2048), max_size=4))
# An existing landed file: a second upload under its name replaces it and its
# receipt, and the earlier version is kept under .connectors/superseded/.
@example(name="conversions_0.csv", pattern=None, chunks=[b"new\n"])
@example(name="a" * MAX_NAME_BYTES, pattern=None, chunks=[b"x"])
@example(name="a" * (MAX_NAME_BYTES + 1), pattern=None, chunks=[b"x"])
@example(name="\udcff\udcfe.csv", pattern="*.csv", chunks=[b"x"])
@example(name="../outside.csv", pattern=None, chunks=[b"x"])
@example(name="..\\outside.csv", pattern=None, chunks=[b"x"])
@example(name="a\x00b", pattern=None, chunks=[b"x"])
def test_a_name_lands_whole_with_its_receipt_or_is_refused(
        name: str, pattern: str | None, chunks: list[bytes]) -> None:
    with populated_root() as top:
        root = top / "data"
        area = landing_area(root, account(pattern))
        home = Path(os.path.realpath(area.home))
        before = snapshot(top)
        reason = upload_refusal(account(pattern), name)
        assert (reason is not None) == expected_refusal(name, pattern), (name, reason)
        if reason is not None:
            assert reason.strip()
            assert snapshot(top) == before  # refused: nothing at all is created
            return
        landing = LandingFile(area, name)
        for chunk in chunks:
            landing.write(chunk)
        receipt = landing.commit()
        after = snapshot(top)

        data = b"".join(chunks)
        final = os.path.join(os.fsencode(home), name_bytes(name))
        receipt_path = os.path.join(os.fsencode(home), name_bytes(receipt_name(name)))
        assert os.path.dirname(os.path.realpath(final)) == os.fsencode(home)
        assert after[final] == data
        superseded = os.path.join(os.fsencode(home), b".connectors", b"superseded")
        kept = {path for path in set(after) - set(before) if path.startswith(superseded)}
        if final in before:
            # Replaced: the earlier file and its receipt are kept, byte for byte.
            kept_files = {os.path.basename(p): after[p] for p in kept if after[p] is not None}
            assert kept_files[name_bytes(name)] == before[final]
            if receipt_path in before:
                assert kept_files[name_bytes(receipt_name(name))] == before[receipt_path]
            replaced = {final, receipt_path}
        else:
            assert kept == set()
            replaced = set()
        # Exactly the file and its receipt are new (or replaced); nothing else changed.
        assert set(after) - set(before) - kept == {final, receipt_path} - set(before), sorted(
            set(after) - set(before))
        assert set(before) - set(after) == set()
        changed = {path for path in before if before[path] != after[path]} - replaced
        assert changed == set(), sorted(changed)
        assert not any(os.path.basename(p).startswith(os.fsencode(TEMP_PREFIX)) for p in after)
        written = json.loads(after[receipt_path] or b"")
        assert written["name"] == name == receipt.name
        assert written["size"] == len(data) == receipt.size
        assert written["sha256"] == hashlib.sha256(data).hexdigest() == receipt.sha256
        assert written["connection"] == CONNECTION


@PROPERTIES
@given(name=NAMES, chunks=st.lists(st.binary(min_size=1, max_size=512), min_size=1, max_size=3))
def test_an_aborted_upload_leaves_nothing(name: str, chunks: list[bytes]) -> None:
    with populated_root() as top:
        area = landing_area(top / "data", account(None))
        if upload_refusal(account(None), name) is not None:
            return
        before = snapshot(top)
        landing = LandingFile(area, name)
        for chunk in chunks:
            landing.write(chunk)
        landing.abort()
        assert snapshot(top) == before


TEMP_NAMES: st.SearchStrategy[str] = st.one_of(
    NAMES,
    st.text(st.characters(codec="utf-8"), min_size=90, max_size=300),
)


@PROPERTIES
@given(name=TEMP_NAMES, count=st.integers(1, 3))
# Fails: the temporary name keeps the "/" of the name and is two components
# (".upload-<token>-0.a/b.csv.part"). The listeners refuse such names before;
# the Inbound Pull job (plan.wanted) does not apply name_refusal to remote names.
@example(name="a/b.csv", count=1)
@example(name="a\x00b.csv", count=1)
@example(name="😀" * 60, count=1)
def test_a_temporary_name_is_one_hidden_entry_of_the_home(name: str, count: int) -> None:
    with populated_root() as top:
        area = LandingArea(top / "data", CONNECTION)
        temps = [area.temp_name(name) for _ in range(count)]
        assert len(set(temps)) == count  # unique within one area
        for temp in temps:
            folder, entry = os.path.split(temp)
            assert folder == area.home_str, temp
            assert entry.startswith(TEMP_PREFIX)
            assert entry.startswith(".")
            assert "/" not in entry
            assert "\x00" not in entry
            assert entry not in (".", "..")
            assert len(name_bytes(entry)) <= NAME_MAX, len(name_bytes(entry))
            assert str(area.temp_path(name)).startswith(area.home_str + "/.")
            # It can be created: the filesystem agrees it is one valid entry.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.close(fd)
            assert os.path.dirname(os.path.realpath(temp)) == os.path.realpath(area.home)
