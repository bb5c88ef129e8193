"""The checks of one document by itself: the CRD's schema and CEL rules, and what the
operator checks of a single object beyond them (a cron schedule's field ranges, the
keys of a partner's public key), from the very functions the operator calls."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from ..api.common import API_VERSION
from ..api.connection import ConnectionSpec
from ..api.credential import CredentialSpec
from ..api.rules import broken_rules
from ..api.words import error_message
from ..planning.credentials import check_authorized_keys
from ..planning.status import schedule_problem
from .documents import Document, printable

SPECS: dict[str, type[ConnectionSpec] | type[CredentialSpec]] = {
    "Connection": ConnectionSpec,
    "Credential": CredentialSpec,
}
# What the API server accepts as a namespaced object's name (a DNS-1123 subdomain).
OBJECT_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
ERROR, WARNING = "error", "warning"


@dataclass(order=True)
class Problem:
    path: str
    line: int
    kind: str = field(compare=False)
    name: str = field(compare=False)
    field_path: str = field(compare=False)
    message: str = field(compare=False)
    # A warning is something the files cannot settle (a Credential that lives
    # elsewhere): shown, and fatal only with --strict.
    severity: str = field(default=ERROR, compare=False)

    def __str__(self) -> str:
        where = f"{printable(self.path)}:{self.line}"
        label = "warning: " if self.severity == WARNING else ""
        return (f"{where}: {self.kind}/{printable(self.name)}: {printable(self.field_path)}: "
                f"{label}{self.message}")


@dataclass
class Parsed:
    """A Connection or Credential of the files; spec is None when it is invalid."""

    doc: Document
    kind: str
    name: str
    namespace: str
    spec: BaseModel | None

    def problem(self, location: list[str | int], message: str,
                severity: str = ERROR) -> Problem:
        return Problem(str(self.doc.path), self.doc.line_of(location), self.kind, self.name,
                       dotted(location), message, severity)


def dotted(location: Iterable[str | int]) -> str:
    out = ""
    for step in location:
        out += f"[{step}]" if isinstance(step, int) else (f".{step}" if out else str(step))
    return out


def check_document(doc: Document, default_namespace: str = "default",
                   ) -> tuple[Parsed | None, list[Problem]]:
    """Every problem of one document by itself; None for documents not ours."""
    data = doc.data
    if not isinstance(data, dict) or not isinstance(data.get("kind"), str) \
            or data["kind"] not in SPECS:
        return None, []
    kind = data["kind"]
    raw_metadata = data.get("metadata")
    metadata = raw_metadata if isinstance(raw_metadata, dict) else {}
    parsed = Parsed(doc, kind, str(metadata.get("name", "<unnamed>")),
                    str(metadata.get("namespace", default_namespace)), None)
    problems = []
    if data.get("apiVersion") != API_VERSION:
        problems.append(parsed.problem(["apiVersion"], f"must be {API_VERSION}"))
    if not OBJECT_NAME.match(parsed.name) or len(parsed.name) > 253:
        problems.append(parsed.problem(["metadata", "name"],
                                       "must be lower-case letters, digits, '-' and '.'"))
    if "spec" not in data:
        problems.append(parsed.problem(["spec"], "required field is missing"))
        return parsed, problems
    try:
        spec = SPECS[kind].model_validate(data["spec"])
    except ValidationError as error:
        problems += [parsed.problem(["spec", *item["loc"]], error_message(item))
                     for item in error.errors()]
        return parsed, problems
    parsed.spec = spec
    broken = broken_rules(spec, spec.rules)
    problems += [parsed.problem(["spec", *rule.field.strip(".").split(".")], rule.message)
                 for rule in broken]
    if not broken:
        problems += _operator_checks(parsed, spec)
    return parsed, problems


def _operator_checks(parsed: Parsed, spec: ConnectionSpec | CredentialSpec) -> list[Problem]:
    """What the operator refuses of this object alone once the schema let it in."""
    if isinstance(spec, ConnectionSpec):
        schedule = schedule_problem(spec)
        return [parsed.problem(["spec", "schedule"], f"schedule {schedule}")] if schedule else []
    if spec.public_key is None:
        return []
    if spec.type == "PGPKey":
        return [parsed.problem(["spec", "publicKey"], problem)
                for problem in _pgp_key_problems(spec.public_key)]
    return [parsed.problem(["spec", "publicKey"], problem)
            for problem in check_authorized_keys(spec.public_key).problems]


def _pgp_key_problems(public_key: str) -> list[str]:
    """The operator's check of a partner's OpenPGP key (pgp.fingerprint_of), where gpg
    is installed; without gpg only the schema's check of the armor is made."""
    import shutil

    from .. import pgp

    if shutil.which("gpg") is None:
        return []
    try:
        pgp.fingerprint_of(public_key)
    except ValueError as exc:
        return [f"publicKey: {exc}"]
    except pgp.PgpError:
        return []
    return []
