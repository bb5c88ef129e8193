"""Reading manifest files for `connectors validate`: every YAML document, with its lines.

A CI pipeline feeds the validator whatever is in a pull request: a file that is
not there, not UTF-8 text, not YAML, or nested absurdly deep is one Unreadable
with one line that says why, never a traceback.
"""

from __future__ import annotations

import errno
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml


@dataclass
class Document:
    """One YAML document with the node tree kept, to find line numbers."""

    path: Path
    node: yaml.Node
    data: Any

    def line_of(self, location: Iterable[str | int]) -> int:
        """The line of the deepest node on `location` that exists in the file."""
        node = self.node
        for step in location:
            child = _child(node, step)
            if child is None:
                break
            node = child
        return node.start_mark.line + 1


def _child(node: yaml.Node, step: str | int) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            if isinstance(key, yaml.ScalarNode) and key.value == step:
                # Point at the key for scalars: that is where an editor jumps.
                return key if isinstance(value, yaml.ScalarNode) else value
    if isinstance(node, yaml.SequenceNode) and isinstance(step, int) and step < len(node.value):
        child: yaml.Node = node.value[step]
        return child
    return None


def printable(text: str) -> str:
    """`text` on one line of any terminal: names and keys come from the files, and a
    newline, a control character or a lone surrogate in one must not break the
    one-line-per-problem output, nor the encoding of stdout."""
    return "".join(c if c.isprintable() else _escape(c) for c in text)


def _escape(c: str) -> str:
    code = ord(c)
    return {"\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(c) or (
        f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000
        else f"\\U{code:08x}")


class Unreadable(Exception):
    """A file that is not there, not text, or not YAML."""


# Deeper than any manifest needs; well inside Python's recursion limit, which
# PyYAML's recursive composer would otherwise hit (about 300 levels).
MAX_DEPTH = 100


class _TooDeep(yaml.YAMLError):
    def __init__(self, mark: yaml.Mark) -> None:
        super().__init__()
        self.problem_mark = mark
        self.problem = f"nested more than {MAX_DEPTH} levels deep"


class _Loader(yaml.SafeLoader):
    """PyYAML's safe loader, bounded in depth, with values it cannot build turned
    into YAML errors that carry their line."""

    _depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                raise _TooDeep(self.peek_event().start_mark)  # type: ignore[no-untyped-call]
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, OverflowError) as error:
            # A date such as 2001-13-45, an integer of 5,000 digits: PyYAML lets
            # Python's own errors through.
            reason = str(error)
            if "int_max_str_digits" in reason:
                reason = f"an integer of more than {sys.get_int_max_str_digits()} digits"
            raise yaml.constructor.ConstructorError(
                None, None, f"cannot read the value: {reason}", node.start_mark) from error


def read_text(path: Path) -> str:
    """The file as text; Unreadable with the reason in words."""
    try:
        data = path.read_bytes()
    except OSError as error:
        reason = (error.strerror or error.__class__.__name__).lower()
        if error.errno == errno.EISDIR:
            reason = "is a folder"
        raise Unreadable(f"{printable(str(path))}: cannot read: {reason}") from error
    try:
        # A UTF-8 byte order mark, as some Windows editors write it, is not content.
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        byte = data[error.start]
        raise Unreadable(f"{printable(str(path))}: not UTF-8 text "
                         f"(byte 0x{byte:02x} at offset {error.start})") from error


def load_documents(path: Path) -> list[Document]:
    """Every YAML document of the file; Unreadable, with one line that says what is
    wrong, for a file that cannot be read whole."""
    text = read_text(path)
    shown = printable(str(path))
    documents = []
    loader: _Loader | None = None
    try:
        loader = _Loader(text)  # checks the characters at once
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            documents.append(Document(path, node, loader.construct_document(node)))
    except yaml.reader.ReaderError as error:
        line = text.count("\n", 0, error.position) + 1
        char = error.character if isinstance(error.character, str) else chr(error.character)
        raise Unreadable(f"{shown}:{line}: not valid YAML: character U+{ord(char):04X} is "
                         "not allowed in YAML text") from error
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{shown}:{mark.line + 1}" if mark else shown
        problem = " ".join(str(getattr(error, "problem", None) or "invalid YAML").split())
        raise Unreadable(f"{where}: not valid YAML: {printable(problem)}") from error
    except RecursionError as error:  # a safety net: MAX_DEPTH should keep it away
        raise Unreadable(f"{shown}: not valid YAML: nested too deeply to read") from error
    finally:
        if loader is not None:
            loader.dispose()
    return documents


def manifest_files(targets: Iterable[Path]) -> Iterator[Path]:
    for target in targets:
        try:
            is_dir = target.is_dir()
        except OSError:  # a name too long, say: reading it says why
            is_dir = False
        if is_dir:
            yield from sorted(p for p in target.rglob("*") if p.suffix in (".yaml", ".yml"))
        else:
            yield target


