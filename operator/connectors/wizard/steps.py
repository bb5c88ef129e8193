"""The steps of `connectors new`, as pure functions of the answers so far.

Five steps, as the reference product has them: (1) name and direction, (2) data
type, (3) method, file names, methodology and, where needed, the folder or the
partner's server, (4) the credential, (5) a review. Each question says whether
it applies after the answers before it, which choices it offers and whether an
answer holds, and every verdict comes from the API's own models and rules
(ConnectionSpec, CredentialSpec, their Rules, credential_misfit) and the
operator's own checks (cron ranges, public keys): a choice is offered only when
the API would accept it after the answers before it, so the offers are the
rules, not a second copy of them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from pydantic import ValidationError

from ..api.common import API_VERSION
from ..api.compat import credential_misfit
from ..api.connection import (
    ConnectionSpec,
    DataType,
    Method,
    Methodology,
    is_platform_initiated,
)
from ..api.credential import KEY_TYPES, CredentialSpec
from ..api.rules import broken_rules
from ..api.words import error_message
from ..planning.credentials import check_authorized_keys
from ..planning.status import schedule_problem
from ..validate.checks import OBJECT_NAME

Answers = dict[str, Any]
"""Answers by question key; a key absent (or "", or []) is a question not answered
or left empty. Connection fields use their path in the spec ("remote.host")."""

STEPS = {1: "name and direction", 2: "data type", 3: "method", 4: "credential",
         5: "review"}
# What the rules need of the fields not asked yet, to judge one answer alone: any
# value the API accepts (direction and the rest are asked first anyway).
PLACEHOLDER: dict[str, Any] = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
                               "methodology": "Push", "credentialRef": {"name": "placeholder"}}
# A well-formed public key, to ask whether a Credential holding one would fit.
SAMPLE_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDk8s2rv++mP2HE7sJCttP3dpLMeUdqJy3KAu1b2tSyP"
NEW_PASSWORD, NEW_PUBLIC_KEY, NEW_KEY_PAIR = "new:Password", "new:PublicKey", "new:KeyPair"
EXISTING = "existing:"


@dataclass(frozen=True)
class Choice:
    value: str
    label: str


@dataclass
class Context:
    """What the wizard knows besides the answers: Credentials that exist (with their
    spec when read from the cluster, None when only named), and the names taken."""

    existing: dict[str, CredentialSpec | None] = field(default_factory=dict)
    taken_connections: set[str] = field(default_factory=set)
    taken_credentials: set[str] = field(default_factory=set)
    namespace: str | None = None


Kind = Literal["choice", "text", "lines"]


@dataclass(frozen=True)
class Question:
    key: str
    step: int
    prompt: str
    kind: Kind = "text"
    hint: str = ""
    """Said before the prompt: what an empty answer means, an example."""
    applies: Callable[[Answers], bool] = lambda _: True


def _platform(a: Answers) -> bool:
    return is_platform_initiated(str(a.get("direction")), str(a.get("methodology")))


def _new_credential(a: Answers) -> bool:
    return str(a.get("credential", "")).startswith("new:")


QUESTIONS: tuple[Question, ...] = (
    Question("name", 1, "Connection name",
             hint="lower-case letters, digits and '-', such as acme-conversions"),
    Question("direction", 1, "Direction", "choice"),
    Question("dataType", 2, "Data type", "choice"),
    Question("method", 3, "Method", "choice"),
    Question("filenamePattern", 3, "File name pattern",
             hint="wildcards * and ?, such as conversions_*.csv; empty: any file name"),
    Question("methodology", 3, "Methodology", "choice"),
    Question("folder", 3, "Folder on the platform's listener",
             hint="empty: the root of the partner's login; a name such as clicks when one "
                  "login serves several Connections",
             applies=lambda a: not _platform(a) and a.get("method") in ("SFTP", "FTP")),
    Question("remote.host", 3, "Partner's server",
             hint="DNS name or IP address, such as sftp.partner.example",
             applies=lambda a: _platform(a)
             and not (a.get("method") == "Email" and a.get("direction") == "Outbound")),
    Question("remote.port", 3, "Port", hint="empty: the protocol's usual port",
             applies=lambda a: _platform(a)
             and not (a.get("method") == "Email" and a.get("direction") == "Outbound")),
    Question("remote.folder", 3, "Folder on the partner's server",
             hint="an absolute path, such as /outgoing",
             applies=lambda a: _platform(a) and a.get("method") in ("SFTP", "FTP")),
    Question("remote.folder", 3, "Mailbox", hint="empty: INBOX",
             applies=lambda a: _platform(a) and a.get("method") == "Email"
             and a.get("direction") == "Inbound"),
    Question("remote.hostKeys", 3, "Trusted host keys of the partner's server", "lines",
             hint="one per line, as ssh-keyscan -t ed25519 HOST prints them; an empty line "
                  "ends",
             applies=lambda a: _platform(a) and a.get("method") == "SFTP"),
    Question("remote.tls", 3, "TLS", "choice",
             applies=lambda a: _platform(a) and a.get("method") in ("FTP", "Email")
             and not (a.get("method") == "Email" and a.get("direction") == "Outbound")),
    Question("remote.recipients", 3, "Recipients",
             hint="email addresses, separated by commas",
             applies=lambda a: _platform(a) and a.get("method") == "Email"
             and a.get("direction") == "Outbound"),
    Question("schedule", 3, "Schedule", hint="cron, such as 0 * * * *; empty: every 15 minutes",
             applies=_platform),
    Question("credential", 4, "Credential", "choice"),
    Question("credential.name", 4, "Credential name",
             hint="lower-case letters, digits and '-'; empty: the Connection's name",
             applies=_new_credential),
    Question("credential.username", 4, "Username",
             hint="empty: the Credential's name",
             applies=_new_credential),
    Question("credential.publicKey", 4, "The partner's public key", "lines",
             hint="OpenSSH format, one key per line, such as ssh-ed25519 AAAA... "
                  "partner@example; an empty line ends",
             applies=lambda a: a.get("credential") == NEW_PUBLIC_KEY),
)

DIRECTION_WORDS = {"Inbound": "the partner gives data to the platform",
                   "Outbound": "the platform gives data to the partner"}
TLS_WORDS = {"Explicit": "FTPS with AUTH TLS on the usual port (21)",
             "Implicit": "FTPS, TLS from the first byte (port 990)",
             "None": "plain FTP: the password and the files cross the network readable",
             "IMAPS": "IMAP over TLS (port 993)", "STARTTLS": "IMAP, then STARTTLS (port 143)"}
TLS_ORDER = ("Explicit", "Implicit", "None", "IMAPS", "STARTTLS")


def questions(step: int, answers: Answers) -> list[Question]:
    """The questions of a step that apply after the answers so far, in order."""
    return [q for q in QUESTIONS if q.step == step and q.applies(answers)]


def _set(data: dict[str, Any], path: str, value: Any) -> None:
    node = data
    *parents, last = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[last] = value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == []


def connection_spec(answers: Answers, placeholders: bool = False) -> dict[str, Any]:
    """The Connection's spec in its wire form, from the answers; with `placeholders`,
    the required fields not answered yet hold values the API accepts."""
    data: dict[str, Any] = {}
    if placeholders:
        data = {k: (dict(v) if isinstance(v, dict) else v) for k, v in PLACEHOLDER.items()}
    # In the order of the README's manifests: who and what, the credential, the files.
    for key in ("direction", "dataType", "method", "methodology", "credentialRef",
                "filenamePattern", "folder", "schedule", "remote.host", "remote.port",
                "remote.folder", "remote.hostKeys", "remote.tls", "remote.recipients"):
        if key == "credentialRef":
            name = credential_name(answers)
            if name:
                data["credentialRef"] = {"name": name}
        elif not _empty(answers.get(key)):
            _set(data, key, answers[key])
    return data


def credential_name(answers: Answers) -> str:
    choice = str(answers.get("credential", ""))
    if choice.startswith(EXISTING):
        return choice[len(EXISTING):]
    if choice.startswith("new:"):
        return str(answers.get("credential.name") or answers.get("name") or "")
    return ""


def credential_spec(answers: Answers) -> dict[str, Any] | None:
    """The new Credential's spec in its wire form; None when an existing one is used."""
    choice = str(answers.get("credential", ""))
    if not choice.startswith("new:"):
        return None
    spec: dict[str, Any] = {"type": "Password" if choice == NEW_PASSWORD else "PublicKey"}
    if answers.get("credential.username"):
        spec["username"] = answers["credential.username"]
    if choice == NEW_PUBLIC_KEY and answers.get("credential.publicKey"):
        spec["publicKey"] = "\n".join(answers["credential.publicKey"]) + "\n"
    return spec


def _dotted(location: tuple[str | int, ...]) -> str:
    return ".".join(str(part) for part in location)


def _first_problem(error: ValidationError, path: str) -> str | None:
    for item in error.errors():
        where = _dotted(item["loc"])
        if where == path or where.startswith(path + "."):
            return error_message(item)
    return None


def connection_problem(answers: Answers, path: str) -> str | None:
    """What the API says of the answer at `path` (and of nothing else), in words."""
    try:
        spec = ConnectionSpec.model_validate(connection_spec(answers, placeholders=True))
    except ValidationError as error:
        return _first_problem(error, path) or None
    for rule in broken_rules(spec, spec.rules):
        if rule.field == "." + path:
            return rule.message
    if path == "schedule":
        problem = schedule_problem(spec)
        return f"schedule {problem}" if problem else None
    return None


def direction_choices() -> list[Choice]:
    return [Choice(d, f"{d}: {words}") for d, words in DIRECTION_WORDS.items()]


def _valid(answers: Answers, key: str, value: Any) -> bool:
    return connection_problem({**answers, key: value}, key) is None


def choices(question: Question, answers: Answers, context: Context) -> list[Choice]:
    """The choices valid after the answers so far: each is put to the API's rules."""
    key = question.key
    if key == "direction":
        return direction_choices()
    if key == "dataType":
        return [Choice(t, t) for t in get_args(DataType) if _valid(answers, key, t)]
    if key == "method":
        return [Choice(m, m) for m in get_args(Method) if _valid(answers, key, m)]
    if key == "methodology":
        found = []
        for m in get_args(Methodology):
            if _valid(answers, key, m):
                who = ("the platform connects to the partner's server, on a schedule"
                       if is_platform_initiated(str(answers.get("direction")), m)
                       else "the partner connects to the platform's listener")
                found.append(Choice(m, f"{m}: {who}"))
        return found
    if key == "remote.tls":
        return [Choice(t, f"{t}: {TLS_WORDS[t]}") for t in TLS_ORDER if _valid(answers, key, t)]
    if key == "credential":
        return credential_choices(answers, context)
    return []


def credential_choices(answers: Answers, context: Context) -> list[Choice]:
    """Existing Credentials that fit the Connection (those only named are offered as
    they are), then the kinds of new one that fit."""
    spec = ConnectionSpec.model_validate(connection_spec(
        {**answers, "credential": EXISTING + "placeholder"}, placeholders=True))
    found = []
    for name, existing in sorted(context.existing.items()):
        if existing is None:
            found.append(Choice(EXISTING + name, f"existing: {name}"))
        elif credential_misfit(spec, existing, name) is None:
            found.append(Choice(EXISTING + name, f"existing: {name} ({existing.type})"))
    news = [
        (NEW_PUBLIC_KEY, CredentialSpec(type="PublicKey", public_key=SAMPLE_KEY),
         "new: Public Key (paste the partner's public key)"),
        (NEW_KEY_PAIR, CredentialSpec(type="PublicKey"),
         "new: Key pair (generated; the partner authorizes its public half)"),
        (NEW_PASSWORD, CredentialSpec(type="Password"), "new: Password (generated)"),
    ]
    found += [Choice(value, label) for value, candidate, label in news
              if credential_misfit(spec, candidate, "new") is None]
    return found


def _credential_problem(data: dict[str, Any], path: str) -> str | None:
    try:
        spec = CredentialSpec.model_validate(data)
    except ValidationError as error:
        return _first_problem(error, path)
    for rule in broken_rules(spec, spec.rules):
        if rule.field == "." + path:
            return rule.message
    return None


def parse(question: Question, text: str | list[str]) -> tuple[Any, str | None]:
    """The typed answer of what was typed, or why it cannot be one."""
    if isinstance(text, list):
        lines = [line.strip() for line in text if line.strip()]
        if question.key == "remote.hostKeys":
            lines = [_without_host(line) for line in lines]
        return lines, None
    value = text.strip()
    if question.key == "remote.port" and value:
        if not value.isdigit():
            return None, "must be a whole number, such as 2222"
        return int(value), None
    if question.key == "remote.recipients":
        return [part.strip() for part in value.split(",") if part.strip()], None
    return value, None


def _without_host(line: str) -> str:
    """`HOST ssh-ed25519 AAAA...`, as ssh-keyscan prints it, without the host."""
    fields = line.split()
    if len(fields) >= 3 and fields[0] not in KEY_TYPES and fields[1] in KEY_TYPES:
        return " ".join(fields[1:])
    return line


def check(question: Question, answers: Answers, value: Any, context: Context) -> str | None:
    """Why this answer cannot stand after the answers before it, or None."""
    key = question.key
    if key == "name":
        if not value:
            return "a name is required"
        if not OBJECT_NAME.match(value) or len(value) > 253:
            return "must be lower-case letters, digits, '-' and '.', such as acme-conversions"
        if value in context.taken_connections:
            return (f"a Connection named {value} exists already in namespace "
                    f"{context.namespace}: choose another name")
        return None
    if key.startswith("credential."):
        return _credential_answer_problem(key, answers, value, context)
    if key == "credential":
        return None
    if key == "remote.hostKeys" and value:
        for line in value:
            if check_authorized_keys(line).problems:
                return (f"{line[:40]}... is not an OpenSSH public key; give the key as "
                        "ssh-keyscan prints it, such as ssh-ed25519 AAAAC3Nza...")
    return connection_problem({**answers, key: value}, key)


def _credential_answer_problem(key: str, answers: Answers, value: Any,
                               context: Context) -> str | None:
    trial = {**answers, key: value}
    if key == "credential.name":
        name = credential_name(trial)
        problem = connection_problem({**trial, "credential": NEW_PASSWORD}, "credentialRef")
        if problem:
            return problem
        if name in context.taken_credentials or name in context.existing:
            return (f"a Credential named {name} exists already: choose another name, or go "
                    "back and choose it as an existing one")
        return None
    spec = credential_spec(trial) or {}
    if key == "credential.username":
        # Empty: the Credential's name is the login, so it must be one.
        spec = {**spec, "username": value or credential_name(trial)}
        return _credential_problem(spec, "username")
    if key == "credential.publicKey":
        if not value:
            return "publicKey holds no key: paste at least one"
        problem = _credential_problem(spec, "publicKey")
        if problem:
            return problem
        problems = check_authorized_keys(spec["publicKey"]).problems
        return "; ".join(problems) if problems else None
    return None


def documents(answers: Answers, namespace: str | None) -> list[dict[str, Any]]:
    """The manifests: the new Credential (if any), then the Connection."""
    def metadata(name: str) -> dict[str, Any]:
        return {"name": name, **({"namespace": namespace} if namespace else {})}
    docs = []
    credential = credential_spec(answers)
    if credential is not None:
        docs.append({"apiVersion": API_VERSION, "kind": "Credential",
                     "metadata": metadata(credential_name(answers)), "spec": credential})
    docs.append({"apiVersion": API_VERSION, "kind": "Connection",
                 "metadata": metadata(str(answers["name"])), "spec": connection_spec(answers)})
    return docs


def question_for(kind: str, field_path: str, answers: Answers) -> Question | None:
    """The question a validator problem is about (Connection spec.remote.folder ->
    remote.folder, Credential spec.publicKey -> credential.publicKey), to ask again."""
    path = field_path.removeprefix("spec.")
    if kind == "Credential":
        path = "credential.name" if field_path.startswith("metadata") else f"credential.{path}"
    elif field_path.startswith("metadata"):
        path = "name"
    elif path.startswith("credentialRef"):
        path = "credential"
    applying = [q for q in QUESTIONS if q.applies(answers)]
    exact = [q for q in applying if q.key == path]
    within = [q for q in applying if path.startswith((q.key + ".", q.key + "["))]
    found = exact or within
    return found[0] if found else None


def prune(answers: Answers) -> None:
    """Forgets the answers of questions that no longer apply (after going back)."""
    keep = {q.key for q in QUESTIONS if q.applies(answers)}
    for key in [k for k in answers if k not in keep]:
        del answers[key]


def review(answers: Answers, namespace: str | None) -> list[tuple[str, str]]:
    """Every answer, as (label, value) lines for step 5."""
    shown: list[tuple[str, str]] = [("Connection", str(answers.get("name")))]
    if namespace:
        shown.append(("Namespace", namespace))
    labels = {q.key: q.prompt for q in QUESTIONS}
    labels.update({"folder": "Listener folder", "remote.host": "Partner's server",
                   "remote.hostKeys": "Host keys",
                   "remote.folder": ("Mailbox" if answers.get("method") == "Email"
                                     else "Server folder")})
    for key in ("direction", "dataType", "method", "filenamePattern", "methodology", "folder",
                "remote.host", "remote.port", "remote.folder", "remote.hostKeys", "remote.tls",
                "remote.recipients", "schedule"):
        value = answers.get(key)
        if _empty(value):
            if key == "filenamePattern":
                shown.append((labels[key], "any file name"))
            if key == "schedule" and _platform(answers):
                shown.append((labels[key], "*/15 * * * * (every 15 minutes)"))
            continue
        text = "; ".join(str(v) for v in value) if isinstance(value, list) else str(value)
        shown.append((labels[key], text))
    choice = str(answers.get("credential", ""))
    name = credential_name(answers)
    if choice.startswith(EXISTING):
        shown.append(("Credential", f"{name} (existing)"))
    else:
        kind = {NEW_PASSWORD: "Password, generated by the operator",
                NEW_KEY_PAIR: "Key pair, generated by the operator",
                NEW_PUBLIC_KEY: "Public Key, the partner's"}.get(choice, choice)
        shown.append(("Credential", f"{name} (new: {kind})"))
        shown.append(("Username", str(answers.get("credential.username") or name)))
        if choice == NEW_PUBLIC_KEY:
            keys = check_authorized_keys("\n".join(answers.get("credential.publicKey") or []))
            shown.append(("Partner keys", "; ".join(keys.fingerprints)))
    return shown
