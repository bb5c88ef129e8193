"""Names and patterns in a landing area: what a landed file may be called, what is
hidden or reserved (receipts, results), what matches a Connection's filenamePattern,
and the temporary and companion names the receive path uses."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator

RESERVED_PREFIXES = ("receipt_", "result_")
INTERNAL_DIR = ".connectors"
SUPERSEDED_DIR = "superseded"
TEMP_PREFIX = ".upload-"
TEMP_SUFFIX = ".part"

# The longest name a folder entry may have, in bytes (ext4, xfs, and most others).
NAME_MAX = 255
RECEIPT_PREFIX, RECEIPT_SUFFIX = "receipt_", ".txt"
# A result is a CSV table (submissions/results.py): .csv, so a spreadsheet opens it.
RESULT_PREFIX, RESULT_SUFFIX = "result_", ".csv"
# A landed file's name must leave room for its longest companion, receipt_<name>.txt:
# a name is refused before its upload starts rather than landed without a receipt.
MAX_NAME_BYTES = NAME_MAX - max(
    len(RECEIPT_PREFIX) + len(RECEIPT_SUFFIX), len(RESULT_PREFIX) + len(RESULT_SUFFIX)
)
# Temporary names keep a readable piece of the final name, bounded in bytes.
_TEMP_NAME_BYTES = 100


def receipt_name(name: str) -> str:
    return f"{RECEIPT_PREFIX}{name}{RECEIPT_SUFFIX}"


def result_name(name: str) -> str:
    return f"{RESULT_PREFIX}{name}{RESULT_SUFFIX}"


def name_bytes(name: str) -> bytes:
    """The name as the filesystem stores it. Names that came in as bytes which
    are not UTF-8 carry them as surrogate escapes; they go back out unchanged."""
    return name.encode("utf-8", "surrogateescape")


def name_refusal(name: str) -> str | None:
    """Why `name` cannot be a landed file's name on any filesystem, or None.

    Covers what every way in shares: one plain folder entry, printable, short
    enough in bytes for the file and its companions. Pattern, hidden and
    reserved names are decided by the callers' own rules.
    """
    if not name or name in (".", ".."):
        return "a file name is needed"
    if "/" in name or "\\" in name:
        return "uploads go to the top of the home folder"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in name):
        return "names may not contain control characters"
    size = len(name_bytes(name))
    if size > MAX_NAME_BYTES:
        return (f"the name is {size} bytes long; at most {MAX_NAME_BYTES} bytes fit "
                f"with its receipt ({receipt_name('NAME')})")
    return None


def _bounded(name: str, limit: int) -> str:
    """The longest prefix of `name` that is at most `limit` bytes, cut on a
    character boundary."""
    raw = name_bytes(name)
    if len(raw) <= limit:
        return name
    return raw[:limit].decode("utf-8", "ignore")


def is_reserved(name: str) -> bool:
    """Receipts and results are written by the platform and never ingested."""
    return name.startswith(RESERVED_PREFIXES)


def is_hidden(name: str) -> bool:
    """Internal and temporary entries, never shown to partners."""
    return name.startswith(".")


def matches_pattern(name: str, pattern: str | None) -> bool:
    """`*` is any run of characters, `?` one character; no other wildcards.

    fnmatch would also read `[...]` as a character class; the API refuses
    brackets in patterns, and escaping them here keeps the two in agreement.
    """
    if pattern is None:
        return True
    escaped = pattern.replace("[", "[[]")
    return fnmatch.fnmatchcase(name, escaped)


def name_variants(name: str) -> Iterator[str]:
    """`name`, then `stem-2.ext`, `stem-3.ext`... (the extension is what
    follows the last dot, when the name has one after its first character)."""
    yield name
    dot = name.rfind(".")
    stem, ext = (name[:dot], name[dot:]) if dot > 0 else (name, "")
    number = 2
    while True:
        yield f"{stem}-{number}{ext}"
        number += 1


class NoLandingName(ValueError):
    """A file that cannot land under its name nor any variant of it."""


class FreeNames:
    """Landing names in one folder that neither a landed file nor a receipt
    holds, chosen so that the file and its receipt can both be created. The
    folder is read once; names chosen are remembered."""

    def __init__(self, folder: str) -> None:
        self.taken = set(os.listdir(folder))

    def choose(self, name: str) -> str:
        if len(os.fsencode(receipt_name(name))) > NAME_MAX:
            raise NoLandingName(
                f"{name}: the name is too long to land with its receipt "
                f"({NAME_MAX} bytes at most for receipt_NAME.txt)"
            )
        for candidate in name_variants(name):
            receipt = receipt_name(candidate)
            if len(os.fsencode(receipt)) > NAME_MAX:
                raise NoLandingName(f"{name}: no free name to land it under")
            if candidate not in self.taken and receipt not in self.taken:
                self.taken.update((candidate, receipt))
                return candidate
        raise AssertionError("unreachable")
