"""`connectors validate FILE|DIR ...`: check manifests offline, for GitOps pipelines.

It applies exactly the checks of the CRD schema and its CEL rules (the same
pydantic models and Rule objects generate both), plus the rules between a
Connection and its Credential when both are in the files. One line per problem:

    FILE:LINE: Kind/name: field.path: message

Exit status: 0 when all is well, 1 when anything is wrong, 2 for unreadable input.
It prints names of fields, never values, so no secret can leak into CI logs.
"""

from __future__ import annotations

import argparse
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
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.kind}/{self.name}: {self.field_path}: {self.message}"


class Unreadable(Exception):
    """A file that is not there, not text, or not YAML."""


def load_documents(path: Path) -> Iterator[Document]:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as error:
        raise Unreadable(f"{path}: cannot read: {error.__class__.__name__}") from error
    loader = yaml.SafeLoader(text)
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            yield Document(path, node, loader.construct_document(node))
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(error, "problem", None) or "invalid YAML"
        raise Unreadable(f"{where}: not valid YAML: {problem}") from error
    finally:
        loader.dispose()


def manifest_files(targets: Iterable[Path]) -> Iterator[Path]:
    for target in targets:
        if target.is_dir():
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
    if not isinstance(data, dict) or data.get("kind") not in SPECS:
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


def validate_paths(targets: Iterable[Path]) -> list[Problem]:
    """All problems in the given files and folders; raises Unreadable."""
    problems: list[Problem] = []
    parsed: list[Parsed] = []
    for path in manifest_files(targets):
        for doc in load_documents(path):
            result, found = check_document(doc)
            problems += found
            if result is not None:
                parsed.append(result)
    problems += check_references(parsed)
    return sorted(problems)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="+", type=Path, metavar="FILE|DIR",
                        help="manifests to check; folders are searched for *.yaml and *.yml")


def run(args: argparse.Namespace) -> int:
    try:
        problems = validate_paths(args.paths)
    except Unreadable as error:
        print(error, file=sys.stderr)
        return 2
    for problem in problems:
        print(problem)
    return 1 if problems else 0
