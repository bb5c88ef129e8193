"""What a partner needs for one Connection, as a list of facts: pure, from the
objects the operator wrote (the Connection and Credential with their status) and
the public halves of the listener's keys. Nothing here reads a secret value: a
revealed one is added by the caller, after the reveal has been recorded."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..api.connection import is_platform_initiated
from ..planning.credentials import CertificateFacts
from ..ports import PARTNER_FTPS_IMPLICIT_PORT, PARTNER_IMAP_PORTS, PARTNER_PORTS


@dataclass(frozen=True)
class Fact:
    key: str
    """The key in `-o json`."""
    label: str
    """The label in the text output."""
    value: str | int | list[str]


@dataclass(frozen=True)
class ListenerKeys:
    """The public halves of the namespace's listener keys, for the partner to pin."""

    host_key_fingerprint: str | None = None
    tls: CertificateFacts | None = None


def handoff_facts(connection: dict[str, Any], credential: dict[str, Any] | None,
                  keys: ListenerKeys) -> list[Fact]:
    """Every fact of the hand-off, in the order a partner reads them."""
    spec = connection.get("spec") or {}
    meta = connection["metadata"]
    name = meta["name"] + (f" ({spec['displayName']})" if spec.get("displayName") else "")
    facts = [Fact("connection", "Connection", name),
             Fact("namespace", "Namespace", meta["namespace"]),
             Fact("direction", "Direction", _direction(spec)),
             Fact("dataType", "Data type", str(spec.get("dataType", ""))),
             Fact("ready", "Ready", _ready(connection))]
    if is_platform_initiated(str(spec.get("direction")), str(spec.get("methodology"))):
        facts += _partner_server(spec, credential)
    else:
        facts += _listener(connection, credential, keys)
    return facts + _credential(credential)


def _direction(spec: dict[str, Any]) -> str:
    who = ("the partner starts each transfer"
           if not is_platform_initiated(str(spec.get("direction")), str(spec.get("methodology")))
           else "the platform starts each transfer, on a schedule")
    flow = ("the partner gives files to the platform" if spec.get("direction") == "Inbound"
            else "the platform gives files to the partner")
    return f"{spec.get('direction')} {spec.get('methodology')}: {flow}; {who}"


def _ready(connection: dict[str, Any]) -> str:
    for condition in (connection.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            if condition.get("status") == "True":
                return "True"
            return (f"{condition.get('status')} ({condition.get('reason')}): "
                    f"{condition.get('message', '')}")
    return "Unknown: the operator has not reported on this Connection yet"


def _listener(connection: dict[str, Any], credential: dict[str, Any] | None,
              keys: ListenerKeys) -> list[Fact]:
    spec = connection.get("spec") or {}
    endpoint = (connection.get("status") or {}).get("endpoint") or {}
    username = endpoint.get("username") or ((credential or {}).get("status") or {}).get(
        "username", "")
    method = spec.get("method")
    facts = [Fact("protocol", "Protocol", _protocol(str(method))),
             Fact("host", "Host", str(endpoint.get("host", "not yet known"))),
             Fact("port", "Port", endpoint.get("port", "not yet known")),
             Fact("username", "Username", str(username))]
    pattern = spec.get("filenamePattern")
    if method == "Email":
        facts.append(Fact("address", "Send to", str(endpoint.get("address", "not yet known"))))
        facts.append(Fact("filenamePattern", "Attachments",
                          f"every attachment must match {pattern}, or the whole email is "
                          "ignored"))
    else:
        verb = "upload files" if spec.get("direction") == "Inbound" else "download files"
        folder = str(endpoint.get("folder") or "/")
        where = "your home folder" if folder == "/" else "this folder of your home folder"
        facts.append(Fact("folder", "Folder", f"{folder} ({where}: {verb} there)"))
        facts.append(Fact("filenamePattern", "File names",
                          f"{pattern}" if pattern else "any file name"))
    fingerprint = endpoint.get("hostKeyFingerprint") or keys.host_key_fingerprint
    if method == "SFTP" and fingerprint:
        facts.append(Fact("hostKeyFingerprint", "SFTP host key", str(fingerprint)))
    if method in ("FTP", "Email") and keys.tls is not None:
        facts.append(Fact("tlsCertificateSha256", "TLS certificate SHA-256", keys.tls.sha256))
        facts.append(Fact("tlsCertificateNotAfter", "TLS certificate expires",
                          keys.tls.not_after))
    return facts


def _protocol(method: str) -> str:
    return {
        "SFTP": "SFTP",
        "FTP": "FTPS: FTP with explicit TLS (AUTH TLS), required before login",
        "Email": "SMTP: email to the address below; a login (AUTH) needs STARTTLS first",
    }.get(method, method)


def _partner_server(spec: dict[str, Any], credential: dict[str, Any] | None) -> list[Fact]:
    remote = spec.get("remote") or {}
    method = str(spec.get("method"))
    status = (credential or {}).get("status") or {}
    facts = [Fact("protocol", "Protocol", method)]
    if remote.get("recipients"):
        facts.append(Fact("recipients", "Sent to", list(remote["recipients"])))
    else:
        facts.append(Fact("host", "Your server", str(remote.get("host", ""))))
        facts.append(Fact("port", "Port", remote.get("port") or _default_port(method, remote)))
        facts.append(Fact("username", "Username", str(status.get("username", ""))))
        where = "mailbox" if method == "Email" else "folder"
        facts.append(Fact("folder", f"Your {where}", str(remote.get("folder") or "INBOX")))
    pattern = spec.get("filenamePattern")
    facts.append(Fact("filenamePattern", "File names", pattern or "any file name"))
    facts.append(Fact("schedule", "Schedule", str(spec.get("schedule") or "*/15 * * * *")))
    if status.get("publicKey"):
        facts.append(Fact("publicKey", "Public key to authorize", str(status["publicKey"])))
    return facts


def _default_port(method: str, remote: dict[str, Any]) -> int:
    if method == "Email":
        tls = str(remote.get("tls") or "IMAPS")
        return PARTNER_IMAP_PORTS.get(tls, PARTNER_IMAP_PORTS["IMAPS"])
    if method == "FTP" and remote.get("tls") == "Implicit":
        return PARTNER_FTPS_IMPLICIT_PORT
    return PARTNER_PORTS.get(method, PARTNER_PORTS["SFTP"])


def _credential(credential: dict[str, Any] | None) -> list[Fact]:
    if credential is None:
        return [Fact("credential", "Credential", "not found: the Connection names a Credential "
                     "that does not exist")]
    spec = credential.get("spec") or {}
    status = credential.get("status") or {}
    facts = []
    if spec.get("publicKey"):
        facts.append(Fact("keyFingerprints", "Partner keys allowed",
                          list(status.get("fingerprints") or [])))
    elif spec.get("type") == "PublicKey":
        facts.append(Fact("keyFingerprints", "Public key fingerprint",
                          list(status.get("fingerprints") or [])))
    else:
        facts.append(Fact("secret", "Password",
                          "not shown: add --reveal to show it (the reveal is recorded)"))
    if status.get("revealedAt"):
        facts.append(Fact("revealedAt", "Last revealed",
                          f"{status['revealedAt']} to {status.get('revealedBy') or 'unknown'}"))
    return facts


def secret_fact(credential: dict[str, Any], value: str) -> Fact:
    """The revealed password or private key, replacing the 'not shown' line."""
    if (credential.get("spec") or {}).get("type") == "Password":
        return Fact("password", "Password", value)
    return Fact("privateKey", "Private key", value)


def with_secret(facts: list[Fact], secret: Fact) -> list[Fact]:
    """The facts with the revealed value in place of the "not shown" line."""
    kept = [f for f in facts if f.key != "secret"]
    return [*kept, secret]


def render_text(facts: list[Fact]) -> str:
    """`Label: value` lines, aligned, that paste well into a ticket; a value of many
    lines (a private key) follows its label on lines of its own."""
    width = max(len(f.label) for f in facts) + 2
    lines = []
    for fact in facts:
        value = "; ".join(fact.value) if isinstance(fact.value, list) else str(fact.value)
        if "\n" in value:
            lines += [f"{fact.label}:", value.rstrip("\n")]
        else:
            lines.append(f"{fact.label + ':':<{width}}{value}")
    return "\n".join(lines)


def render_json(facts: list[Fact]) -> str:
    return json.dumps({f.key: f.value for f in facts}, indent=2)
