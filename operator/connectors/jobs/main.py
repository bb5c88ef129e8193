"""`connectors transfer`: one run of a platform-initiated Connection.

Inbound+Pull fetches new files from the partner into the landing area;
Outbound+Push delivers the files waiting in <data-root>/<connection>/outbox/
(with spec.pgp.encryptTo, each encrypted to the partner's OpenPGP key and sent
as <name>.pgp; a file that cannot be encrypted is not sent at all).
A run can be killed at any moment: every file is landed by rename after its
size is checked, and recorded in an fsync'd ledger, so the next run picks up
where this one stopped and never fetches or sends a file twice.

The outcome is printed as one JSON line on stdout (and written to the
termination log) with the fields of status.lastTransfer; the exit status is 0
only when everything went well.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import logs
from ..errors import describe
from ..landing.area import LandingArea
from ..options import env_flag, env_option
from .clients.base import (
    PermanentError,
    TransferError,
    TransientError,
)
from .ledger import Ledger
from .spec import Connection, load_connection
from .summary import Summary, render, write_termination_log

log = logging.getLogger("connectors.transfer")


EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = (
        "Run one transfer of a platform-initiated Connection (Inbound+Pull or "
        "Outbound+Push). Every option can also be set from the environment variable "
        "named in its help."
    )
    env_option(parser, "--connection", env="CONNECTORS_CONNECTION",
               help="name of the Connection (required)")
    env_option(parser, "--namespace", env="CONNECTORS_NAMESPACE",
               help="namespace of the Connection, for messages")
    env_option(parser, "--config", env="CONNECTORS_CONFIG", type=Path,
               default=Path("/etc/connectors/connection/connection.json"),
               help='JSON {"name", "namespace", "spec"} of the Connection')
    env_option(parser, "--known-hosts", env="CONNECTORS_KNOWN_HOSTS", type=Path,
               default=Path("/etc/connectors/connection/known_hosts"),
               help="OpenSSH known_hosts with remote.hostKeys: the only trusted SFTP host keys")
    env_option(parser, "--credential-dir", env="CONNECTORS_CREDENTIAL_DIR", type=Path,
               default=Path("/etc/connectors/credential"),
               help="the Credential's Secret as files: username, and password or ssh-privatekey")
    env_option(parser, "--pgp-public-key", env="CONNECTORS_PGP_PUBLIC_KEY", type=Path,
               default=Path("/etc/connectors/connection/pgp-public-key.asc"),
               help="the partner's ASCII-armored OpenPGP public key, for a Connection with "
               "spec.pgp.encryptTo: every file is encrypted to it and sent as <name>.pgp")
    env_option(parser, "--username", env="CONNECTORS_USERNAME",
               help="login name on the partner's server; default: the credential folder's "
               "`username` file (a Secret a third party issued may not hold one)")
    env_option(parser, "--data-root", env="CONNECTORS_DATA_ROOT", type=Path,
               default=Path("/data"),
               help="root of the data volume; files land in <data-root>/<connection>/")
    env_option(parser, "--smtp-relay", env="CONNECTORS_SMTP_RELAY",
               help="HOST:PORT of the SMTP relay for Outbound Email")
    env_option(parser, "--smtp-from", env="CONNECTORS_SMTP_FROM",
               help="sender address of Outbound Email")
    env_flag(parser, "--smtp-starttls", env="CONNECTORS_SMTP_STARTTLS",
             action=argparse.BooleanOptionalAction,
             help="use STARTTLS with the relay (certificate verified)")
    env_option(parser, "--termination-log", env="CONNECTORS_TERMINATION_LOG", type=Path,
               default=Path("/dev/termination-log"),
               help="file the summary is also written to, when it exists")
    env_option(parser, "--retries", env="CONNECTORS_RETRIES", type=int, default=3,
               help="new attempts after a transient network error, with backoff")
    env_option(parser, "--timeout", env="CONNECTORS_TIMEOUT", type=float, default=30.0,
               help="seconds to wait for the server at each step")
    env_option(parser, "--files-in-flight", env="CONNECTORS_FILES_IN_FLIGHT", type=int,
               default=64,
               help="SFTP: files requested at once on the one session; lower it for a server "
               "that limits open files")
    env_option(parser, "--backoff", env="CONNECTORS_BACKOFF", type=float, default=2.0,
               help="seconds before the first retry, doubled each time")
    logs.add_log_format_option(parser)


@dataclass(frozen=True)
class Secret:
    username: str
    password: str | None
    private_key: Path | None

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.password,) if v)


def load_secret(directory: Path, required: bool = True, username: str | None = None) -> Secret:
    """Outbound Email goes through the platform's relay and needs no secret.

    The login name comes from `username` when given (the operator sets it from the
    Credential), else from the Secret's `username` key."""

    def read(key: str) -> str | None:
        path = directory / key
        if not path.is_file():
            return None
        return path.read_text(encoding="utf-8").strip("\r\n")

    username = username or read("username")
    if not username and required:
        raise PermanentError(f"the Credential has no username (expected {directory}/username)")
    key = directory / "ssh-privatekey"
    return Secret(
        username=username or "",
        password=read("password"),
        private_key=key if key.is_file() else None,
    )


class Redactor:
    """Removes secret values from anything printed: paramiko, ftplib and imaplib
    messages do not include them, but one echoing server must not leak them."""

    def __init__(self, secrets: tuple[str, ...]) -> None:
        self.secrets = tuple(s for s in secrets if len(s) >= 4)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[redacted]")
        return text


# ---- Building clients -----------------------------------------------------------------------


@contextlib.contextmanager
def open_client(connection: Connection, secret: Secret, args: argparse.Namespace) -> Iterator[Any]:
    spec = connection.spec
    remote = spec.remote
    assert remote is not None
    client: Any
    if spec.method == "Email" and spec.direction == "Outbound":
        from .clients.smtp import SmtpClient, SmtpSettings

        client = SmtpClient(SmtpSettings.from_args(connection.name, spec, args))
    elif spec.method == "SFTP":
        from .clients.sftp import SftpClient, SftpSettings

        client = SftpClient(
            SftpSettings(
                host=remote.host or "",
                port=spec.port,
                folder=remote.folder or "/",
                username=secret.username,
                known_hosts=args.known_hosts,
                password=None if secret.private_key else secret.password,
                private_key=secret.private_key,
                timeout=args.timeout,
                files_in_flight=args.files_in_flight,
            )
        )
    elif spec.method == "FTP":
        from .clients.ftp import FtpClient, FtpSettings

        client = FtpClient(
            FtpSettings(
                host=remote.host or "",
                port=spec.port,
                folder=remote.folder or "/",
                username=secret.username,
                password=secret.password or "",
                tls=remote.tls or "None",
                insecure=remote.insecure_skip_tls_verify,
                timeout=args.timeout,
            )
        )
    else:
        from .clients.imap import ImapClient, ImapSettings

        client = ImapClient(
            ImapSettings(
                host=remote.host or "",
                port=spec.port,
                mailbox=remote.folder or "INBOX",
                username=secret.username,
                password=secret.password or "",
                tls=remote.tls or "IMAPS",
                insecure=remote.insecure_skip_tls_verify,
                timeout=args.timeout,
            )
        )
    try:
        yield client
    finally:
        with contextlib.suppress(Exception):
            client.close()


def load_encryption_key(connection: Connection, path: Path) -> str | None:
    """The partner's OpenPGP public key when spec.pgp.encryptTo asks for encryption,
    read and checked before anything is sent: without a usable key nothing is sent,
    never a file in clear."""
    credential = connection.spec.encrypt_to
    if credential is None:
        return None
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PermanentError(
            f"spec.pgp.encryptTo names Credential {credential}, but the partner's OpenPGP "
            f"public key cannot be read from {path} ({describe(exc)}): the operator puts it "
            "in the job's ConfigMap once that Credential holds a usable publicKey; nothing "
            "was sent"
        ) from None
    from .. import pgp

    try:
        pgp.fingerprint_of(text)
    except (ValueError, pgp.PgpError) as exc:
        raise PermanentError(
            f"the partner's OpenPGP public key (Credential {credential}) cannot be used: "
            f"{exc}; nothing was sent"
        ) from None
    return text


def one_pass(
    connection: Connection,
    secret: Secret,
    args: argparse.Namespace,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
    encrypt_to: str | None = None,
) -> None:
    spec = connection.spec
    with open_client(connection, secret, args) as client:
        # Each direction imports only what it uses: start-up is part of every run.
        if spec.direction == "Outbound":
            from .push import push

            push(client, spec, landing, ledger, summary, encrypt_to)
        elif spec.method == "Email":
            from .mail_pull import pull_mail

            pull_mail(client, spec, landing, ledger, summary)
        else:
            from .pull import pull

            pull(client, spec, landing, ledger, summary)
            if spec.remote.results_to == "Origin":
                from .answers import send_answers

                send_answers(client, landing, ledger)


def backoff_delays(first: float, retries: int) -> Iterator[float]:
    """Exponential with jitter, capped: 2, 4, 8... seconds, at most a minute."""
    for attempt in range(retries):
        yield min(60.0, first * 2**attempt) * random.uniform(0.8, 1.2)  # noqa: S311


def execute(args: argparse.Namespace, summary: Summary, redact: Redactor) -> None:
    connection = load_connection(args.config, args.connection)
    spec = connection.spec
    secret = load_secret(
        args.credential_dir,
        required=not (spec.method == "Email" and spec.direction == "Outbound"),
        username=args.username,
    )
    redact.secrets = secret.values
    encrypt_to = (load_encryption_key(connection, args.pgp_public_key)
                  if spec.direction == "Outbound" else None)
    landing = LandingArea(args.data_root, connection.name)
    landing.ensure()
    landing.remove_stale_temporaries()
    ledger = Ledger(landing.internal / "ledger.jsonl")
    delays = backoff_delays(args.backoff, max(0, args.retries))
    while True:
        try:
            one_pass(connection, secret, args, landing, ledger, summary, encrypt_to)
            return
        except TransientError as exc:
            delay = next(delays, None)
            if delay is None:
                raise
            log.warning("%s; retrying in %.1f s", redact(describe(exc)), delay)
            time.sleep(delay)


def run(args: argparse.Namespace) -> int:
    # paramiko imports `invoke` only to run `Match exec` lines of OpenSSH
    # config files, which the job never reads; with invoke installed (paramiko
    # 4 and later require it) that import cost about 0.1 s of every run.
    if "invoke" not in sys.modules:
        sys.modules["invoke"] = None  # type: ignore[assignment]
    logs.configure(logging.INFO, args.log_format, sys.stderr)
    if not args.connection:
        print(
            "connectors transfer: --connection (or CONNECTORS_CONNECTION) is required",
            file=sys.stderr,
        )
        return EXIT_USAGE
    summary = Summary(connection=args.connection)
    redact = Redactor(())
    try:
        execute(args, summary, redact)
    except TransferError as exc:
        summary.error(redact(describe(exc)))
    except OSError as exc:
        # The landing area itself (full disk, permissions): nothing to retry.
        summary.error(redact(f"local storage: {describe(exc)}"))
    except BaseException as exc:
        # A defect, or the pod being stopped: the summary still says so, and
        # the exception is logged with its traceback for the developers.
        log.exception("the run stopped on an unexpected error")
        summary.error(redact(f"unexpected error: {type(exc).__name__}: {describe(exc)}"))
    finally:
        for message in summary.errors:
            log.error("%s", redact(message))
        outcome = summary.to_dict()
        line = render(outcome)
        print(line, flush=True)
        write_termination_log(args.termination_log, line)
        audit_run(args, outcome)
    return EXIT_OK if summary.succeeded else EXIT_FAILED


def audit_run(args: argparse.Namespace, outcome: dict[str, Any]) -> None:
    """The run as one audit event; its message is the summary's, secrets redacted."""
    succeeded = outcome["outcome"] == "Succeeded"
    logs.audit("transfer", logging.INFO if succeeded else logging.WARNING,
               result=outcome["outcome"], namespace=args.namespace,
               connection=outcome["connection"], files=outcome["files"],
               bytes=outcome["bytes"], skipped=outcome["skipped"], failed=outcome["failed"],
               duration_seconds=outcome["durationSeconds"],
               reason=str(outcome.get("message") or "")[:256])


__all__ = ["add_arguments", "run"]
