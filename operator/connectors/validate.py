"""`connectors validate FILE|DIR ...`: check manifests offline, for GitOps pipelines.

It applies exactly the checks of the CRD schema and its CEL rules (the same
pydantic models and Rule objects generate both), plus the rules between a
Connection and its Credential when both are in the files. One line per problem:

    FILE:LINE: Kind/name: field.path: message

Exit status: 0 when all is well, 1 when anything is wrong, 2 when a file cannot be
read (not there, not UTF-8 text, not YAML, nested absurdly deep): each such file
gets one line on stderr saying why, and the readable files are still checked.
It prints names of fields, never values, so no secret can leak into CI logs.
"""

from __future__ import annotations

import argparse
import errno
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from .api.common import API_VERSION
from .api.compat import credential_misfit
from .api.connection import ConnectionSpec
from .api.credential import CredentialSpec
from .api.rules import broken_rules

SPECS: dict[str, type[ConnectionSpec] | type[CredentialSpec]] = {
    "Connection": ConnectionSpec,
    "Credential": CredentialSpec,
}
# What the API server accepts as a namespaced object's name (a DNS-1123 subdomain).
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")

# pydantic's wording, said the way a person fixing a manifest needs to hear it.
_FRIENDLY = {
    "missing": "required field is missing",
    "extra_forbidden": "unknown field: remove it or check its spelling",
}


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


@dataclass(order=True)
class Problem:
    path: str
    line: int
    kind: str = field(compare=False)
    name: str = field(compare=False)
    field_path: str = field(compare=False)
    message: str = field(compare=False)

    def __str__(self) -> str:
        where = f"{printable(self.path)}:{self.line}"
        return (f"{where}: {self.kind}/{printable(self.name)}: {printable(self.field_path)}: "
                f"{self.message}")


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


def _dotted(location: Iterable[str | int]) -> str:
    out = ""
    for step in location:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


@dataclass
class Parsed:
    doc: Document
    kind: str
    name: str
    namespace: str
    spec: BaseModel | None


def check_document(doc: Document) -> tuple[Parsed | None, list[Problem]]:
    """Schema and CEL-rule problems of one document; None for documents not ours."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str) \
            or data["kind"] not in SPECS:
        return None, []
    kind = data["kind"]
    raw_metadata = data.get("metadata")
    metadata: dict[str, Any] = raw_metadata if isinstance(raw_metadata, dict) else {}
    name = str(metadata.get("name", "<unnamed>"))
    namespace = str(metadata.get("namespace", "default"))

    def problem(location: list[str | int], message: str) -> Problem:
        return Problem(str(doc.path), doc.line_of(location), kind, name, _dotted(location), message)

    problems = []
    if data.get("apiVersion") != API_VERSION:
        problems.append(problem(["apiVersion"], f"must be {API_VERSION}"))
    if not OBJECT_NAME.match(name) or len(name) > 253:
        problems.append(problem(["metadata", "name"],
                                "must be lower-case letters, digits, '-' and '.'"))
    if "spec" not in data:
        problems.append(problem(["spec"], "required field is missing"))
        return Parsed(doc, kind, name, namespace, None), problems
    try:
        spec = SPECS[kind].model_validate(data["spec"])
    except ValidationError as error:
        for item in error.errors():
            problems.append(problem(["spec", *item["loc"]],
                                    _FRIENDLY.get(item["type"], item["msg"])))
        return Parsed(doc, kind, name, namespace, None), problems
    for rule in broken_rules(spec, spec.rules):
        location: list[str | int] = ["spec", *rule.field.strip(".").split(".")]
        problems.append(problem(location, rule.message))
    return Parsed(doc, kind, name, namespace, spec), problems


def check_references(parsed: list[Parsed]) -> list[Problem]:
    """Each credentialRef names a Credential in the files, and that Credential fits."""
    credentials = {
        (p.namespace, p.name): p.spec for p in parsed if p.kind == "Credential"
    }
    if not credentials:
        # The files hold no Credentials: they live elsewhere, nothing to cross-check.
        return []
    problems = []
    for p in parsed:
        if p.kind != "Connection" or not isinstance(p.spec, ConnectionSpec):
            continue
        ref = p.spec.credential_ref.name
        location = ["spec", "credentialRef", "name"]
        line = p.doc.line_of(location)
        where = (str(p.doc.path), line, p.kind, p.name, "spec.credentialRef.name")
        if (p.namespace, ref) not in credentials:
            problems.append(Problem(*where, f"no Credential named {ref} in namespace "
                                    f"{p.namespace} in these files: add it or fix the name"))
            continue
        credential = credentials[(p.namespace, ref)]
        if isinstance(credential, CredentialSpec):
            misfit = credential_misfit(p.spec, credential, ref)
            if misfit:
                problems.append(Problem(*where, misfit))
    return problems


@dataclass
class Report:
    problems: list[Problem]
    unreadable: list[Unreadable]


def check_paths(targets: Iterable[Path]) -> Report:
    """The problems of every readable file, and one Unreadable per file that is not."""
    problems: list[Problem] = []
    parsed: list[Parsed] = []
    unreadable: list[Unreadable] = []
    for path in manifest_files(targets):
        try:
            documents = load_documents(path)
        except Unreadable as error:
            unreadable.append(error)
            continue
        for doc in documents:
            result, found = check_document(doc)
            problems += found
            if result is not None:
                parsed.append(result)
    if not unreadable:
        # A Credential may be in a file that could not be read: then "no Credential
        # named ..." would be a guess, not a finding.
        problems += check_references(parsed)
    return Report(sorted(problems), unreadable)


def validate_paths(targets: Iterable[Path]) -> list[Problem]:
    """All problems in the given files and folders; raises the first Unreadable."""
    report = check_paths(targets)
    if report.unreadable:
        raise report.unreadable[0]
    return report.problems


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR",
                        help="manifests to check; folders are searched for *.yaml and *.yml")


def run(args: argparse.Namespace) -> int:
    report = check_paths(args.paths)
    for problem in report.problems:
        print(problem)
    for error in report.unreadable:
        print(error, file=sys.stderr)
    if report.unreadable:
        return 2
    return 1 if report.problems else 0
