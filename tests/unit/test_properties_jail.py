"""Property-based tests of path confinement (issue 11): whatever path a partner
sends, the jail maps it inside the home (symlinks followed) or refuses it, and
normalisation is idempotent and never climbs above the virtual root."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from hypothesis import example, given, settings
from hypothesis import strategies as st

from connectors.listeners.core.jail import Jail, PathRefused, normalize, parts

PROPERTIES = settings(derandomize=True, deadline=None, max_examples=400, database=None)

# Names in the fixture home: plain entries, and symlinks that lead out of it
# (absolute, relative, to a file, to a folder, through a chain) or stay inside.
SEGMENTS = ["", ".", "..", "...", "a", "inner", "file.csv", "out", "up", "outfile.csv",
            "chain", "loop", "self", "inside", ".connectors", "\\", "..\\..", "~", "é",
            "\udcff", " ", "\n", "x\x00y"]
SYMLINKS = {"out", "up", "outfile.csv", "chain", "loop", "self", "inside"}


@contextmanager
def home_with_escapes() -> Iterator[tuple[Path, Path]]:
    with tempfile.TemporaryDirectory() as folder:
        top = Path(folder)
        outside = top / "outside"
        outside.mkdir()
        (outside / "secret.csv").write_bytes(b"secret\n")
        # The home sits behind a symlink, as a volume mount may.
        real_home = top / "volume" / "acme"
        (real_home / "inner").mkdir(parents=True)
        (real_home / ".connectors").mkdir()
        (real_home / "file.csv").write_bytes(b"x\n")
        (real_home / "out").symlink_to(outside)
        (real_home / "up").symlink_to("..")
        (real_home / "outfile.csv").symlink_to(outside / "secret.csv")
        (real_home / "inner" / "back").symlink_to("../../..")
        (real_home / "chain").symlink_to("inner/back")
        (real_home / "loop").symlink_to("loop")
        (real_home / "self").symlink_to(".")
        (real_home / "inside").symlink_to("inner")
        (top / "mount").symlink_to(top / "volume")
        yield top / "mount" / "acme", Path(os.path.realpath(real_home))


PATHS: st.SearchStrategy[str] = st.one_of(
    st.lists(st.sampled_from([*SEGMENTS, "back"]), max_size=8).map("/".join),
    st.lists(st.sampled_from([*SEGMENTS, "back"]), max_size=8).map(lambda s: "/" + "/".join(s)),
    st.text(max_size=40),
    st.text(alphabet="/.\\a\x00", max_size=20),
    st.binary(max_size=60).map(lambda b: b.decode("utf-8", "surrogateescape")),
)
CWDS = st.sampled_from(["/", "/inner", "/out", "/a/b/c", "/..", "//x"])


def inside(path: str, home: Path) -> bool:
    return path == str(home) or path.startswith(str(home) + os.sep)


@PROPERTIES
@given(path=PATHS)
@example(path="../outside/secret.csv")
@example(path="/out/secret.csv")
@example(path="up/outside/secret.csv")
@example(path="chain/outside")
@example(path="inside/back/outside")
@example(path="outfile.csv")
@example(path="//../..//etc/passwd")
@example(path="self/self/up")
def test_a_real_path_stays_inside_the_home_or_is_refused(path: str) -> None:
    with home_with_escapes() as (home, real_home):
        jail = Jail(home)
        assert jail.home == real_home
        try:
            real = jail.real(path)
        except PathRefused:
            return
        assert "\x00" not in path
        resolved = os.path.realpath(real)
        assert inside(resolved, real_home), (path, resolved)
        assert not any(name.startswith(".") for name in parts(normalize(path)))
        # Without symlinks on the way, the virtual path maps back to itself.
        if not SYMLINKS.intersection(parts(normalize(path))) and "back" not in parts(
                normalize(path)):
            assert jail.virtual(real) == normalize(path)


@PROPERTIES
@given(path=PATHS, cwd=CWDS)
def test_normalize_is_idempotent_and_rooted(path: str, cwd: str) -> None:
    try:
        once = normalize(path, cwd)
    except PathRefused:
        assert "\x00" in path or "\x00" in cwd
        return
    assert normalize(once) == once
    assert normalize(once, cwd) == once  # an absolute path ignores the cwd
    assert once.startswith("/")
    assert not once.startswith("//")
    assert ".." not in parts(once)
    assert "." not in parts(once)
    assert "" not in once.split("/")[1:-1]
    assert once == "/" or not once.endswith("/")
    assert once == "/" + "/".join(parts(once))


@PROPERTIES
@given(path=PATHS)
# Fails: a NUL makes os.path.realpath raise ValueError ("embedded null byte")
# rather than PathRefused; the FTP listener reaches it through validpath.
@example(path="a\x00b.csv")
def test_a_virtual_path_is_refused_or_inside(path: str) -> None:
    with home_with_escapes() as (home, real_home):
        jail = Jail(home)
        try:
            virtual = jail.virtual(real_home / path.lstrip("/"))
        except PathRefused:
            return
        assert virtual == normalize(virtual)
        assert inside(os.path.realpath(real_home / virtual.lstrip("/")), real_home)
