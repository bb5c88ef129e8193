"""Pure verdicts on a Connection: is its spec valid, and can its Credential serve it?"""

from __future__ import annotations

from typing import Any

from croniter import croniter
from pydantic import ValidationError

from ..api.compat import credential_misfit, pgp_credential_name, pgp_misfit
from ..api.connection import ConnectionSpec
from ..api.credential import CredentialSpec
from ..api.rules import broken_rules
from ..api.words import error_message
from .conditions import FALSE, TRUE, UNKNOWN, Verdict, find


def validate_connection(raw: dict[str, Any]) -> tuple[ConnectionSpec | None, Verdict]:
    """The same checks as the CRD (for objects stored before a schema change), plus
    what no schema can say: that the cron schedule's fields are in range."""
    try:
        spec = ConnectionSpec.model_validate(raw)
    except ValidationError as error:
        first = error.errors()[0]
        where = "spec." + ".".join(str(p) for p in first["loc"])
        return None, Verdict("Validated", FALSE, "InvalidSpec", f"{where}: {error_message(first)}")
    broken = broken_rules(spec, spec.rules)
    if broken:
        rule = broken[0]
        return spec, Verdict("Validated", FALSE, "InvalidSpec", f"spec{rule.field}: {rule.message}")
    schedule = schedule_problem(spec)
    if schedule:
        return spec, Verdict("Validated", FALSE, "InvalidSchedule", f"spec.schedule {schedule}")
    return spec, Verdict("Validated", TRUE, "Valid", "the spec is valid")


def schedule_problem(spec: ConnectionSpec) -> str | None:
    """Why the cron schedule cannot run (a field out of range, say), or None. The CRD's
    pattern only checks that there are five fields; `connectors validate` asks this too."""
    if spec.schedule and not croniter.is_valid(spec.schedule):
        return (f"{spec.schedule!r} is not a valid cron expression (minute hour day-of-month "
                "month day-of-week), e.g. '0 * * * *'")
    return None


def credential_verdict(spec: ConnectionSpec, credential: dict[str, Any] | None) -> Verdict:
    ref = spec.credential_ref.name
    if credential is None:
        return Verdict("CredentialReady", FALSE, "CredentialNotFound",
                       f"Credential {ref} does not exist in this namespace: apply it, or fix "
                       "spec.credentialRef.name")
    ready = find((credential.get("status") or {}).get("conditions"), "Ready")
    if ready is None:
        return Verdict("CredentialReady", UNKNOWN, "CredentialPending",
                       f"Credential {ref} has not been reconciled yet")
    try:
        credential_spec = CredentialSpec.model_validate(credential.get("spec") or {})
    except ValidationError:
        return Verdict("CredentialReady", FALSE, "CredentialInvalid",
                       f"Credential {ref} has an invalid spec: see kubectl describe credential "
                       f"{ref}")
    misfit = credential_misfit(spec, credential_spec, ref)
    if misfit:
        return Verdict("CredentialReady", FALSE, "CredentialMismatch", misfit)
    if ready.get("status") != TRUE:
        return Verdict("CredentialReady", FALSE, "CredentialNotReady",
                       f"Credential {ref} is not ready: {ready.get('message', '')}")
    return Verdict("CredentialReady", TRUE, "CredentialReady", f"using Credential {ref}")


def encryption_verdict(spec: ConnectionSpec | None) -> Verdict | None:
    """FTP only (SFTP and mail always use TLS or SSH): whether passwords and files
    cross the network encrypted. False is a warning, not a fault: Ready does not
    depend on it, but `kubectl describe` says it and a Warning event is sent."""
    if spec is None or spec.method != "FTP":
        return None
    if not spec.platform_initiated:
        if spec.ftp is not None and spec.ftp.allow_plain_ftp:
            return Verdict("Encrypted", FALSE, "PlainFtpAllowed",
                           "spec.ftp.allowPlainFtp is true: the partner may log in without "
                           "TLS, and then the password and the files cross the network "
                           "readable; remove it once the partner's client can use explicit "
                           "FTPS (AUTH TLS)")
        return Verdict("Encrypted", TRUE, "FtpsRequired",
                       "the partner must use explicit FTPS (AUTH TLS, PROT P)")
    tls = spec.remote.tls if spec.remote is not None else None
    if tls in (None, "None"):
        return Verdict("Encrypted", FALSE, "PlainFtp",
                       "spec.remote.tls is None: the platform's password and the files "
                       "cross the network readable; set remote.tls to Explicit or Implicit "
                       "if the partner's server offers FTPS")
    return Verdict("Encrypted", TRUE, "Ftps", f"the transfer uses {tls} FTPS")


def pgp_verdict(spec: ConnectionSpec, credential: dict[str, Any] | None) -> Verdict | None:
    """Whether the Credential spec.pgp names can do what it asks; None when there is
    no spec.pgp or it can. Checked like the Connection's own Credential."""
    name = pgp_credential_name(spec)
    if name is None:
        return None
    if credential is None:
        return Verdict("CredentialReady", FALSE, "PgpCredentialNotFound",
                       f"Credential {name}, which spec.pgp names, does not exist in this "
                       "namespace: create it (type PGPKey)")
    try:
        credential_spec = CredentialSpec.model_validate(credential.get("spec") or {})
    except ValidationError:
        return Verdict("CredentialReady", FALSE, "PgpCredentialInvalid",
                       f"Credential {name}, which spec.pgp names, is invalid: see its status")
    misfit = pgp_misfit(spec, credential_spec, name)
    if misfit:
        return Verdict("CredentialReady", FALSE, "PgpCredentialMismatch", misfit)
    ready = find((credential.get("status") or {}).get("conditions"), "Ready")
    if ready is None or ready.get("status") != TRUE:
        return Verdict("CredentialReady", UNKNOWN, "PgpCredentialPending",
                       f"waiting for Credential {name}, which spec.pgp names, to be Ready")
    return None
