"""Path confinement: every path a partner sends is mapped inside their home.

A client path is read as a path in a virtual filesystem whose root is the
home (like a chroot): absolute paths start at the home, and `..` cannot climb
above its root because normalisation happens on the virtual path before it
touches the real filesystem. Symlinks are the remaining way out, so the real
path is resolved and must still lie inside the home. Hidden entries (a leading
"."), which hold the internal `.connectors` folder and temporary uploads, are
refused as if they did not exist.
"""

from __future__ import annotations

import os
import posixpath
from pathlib import Path


class PathRefused(Exception):
    """The path leaves the home, names a hidden entry, or is malformed."""


def normalize(path: str, cwd: str = "/") -> str:
    """The absolute virtual path for `path`, seen from virtual folder `cwd`."""
    if "\x00" in path:
        raise PathRefused("path contains a NUL byte")
    joined = posixpath.join(cwd, path) if path else cwd
    normalized = posixpath.normpath(posixpath.join("/", joined))
    # normpath keeps a leading "//" (POSIX allows it a special meaning); we do not.
    return "/" + normalized.lstrip("/")


def parts(virtual: str) -> list[str]:
    return [part for part in virtual.split("/") if part]


class Jail:
    """Maps virtual paths to real paths under one home, refusing escapes."""

    def __init__(self, home: Path) -> None:
        # Resolve once: the home itself may sit behind a symlink (a volume mount).
        self.home = Path(os.path.realpath(home))

    def real(self, virtual: str) -> Path:
        """The real path for a normalised virtual path, checked to stay inside."""
        components = parts(normalize(virtual))
        if any(name.startswith(".") for name in components):
            raise PathRefused("no such file")
        candidate = self.home.joinpath(*components)
        self.check_inside(candidate)
        return candidate

    def check_inside(self, candidate: Path) -> None:
        """Refuses a path whose resolved form (symlinks followed) leaves the home."""
        resolved = os.path.realpath(candidate)
        home = str(self.home)
        if resolved != home and not resolved.startswith(home + os.sep):
            raise PathRefused("path leaves the home folder")

    def virtual(self, real: Path) -> str:
        """The virtual path of a real path inside the home."""
        if "\x00" in str(real):
            # realpath would raise ValueError, which pyftpdlib answers by
            # dropping the connection instead of refusing the command.
            raise PathRefused("path contains a NUL byte")
        relative = os.path.relpath(os.path.realpath(real), self.home)
        if relative == ".":
            return "/"
        if relative.startswith(".."):
            raise PathRefused("path leaves the home folder")
        return "/" + relative.replace(os.sep, "/")
