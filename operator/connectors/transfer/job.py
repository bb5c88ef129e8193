"""`connectors transfer`: one run of a platform-initiated Connection.

Inbound+Pull fetches new files from the partner into the landing area;
Outbound+Push delivers the files waiting in <data-root>/<connection>/outbox/.
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
import email.policy
import functools
import hashlib
import json
import logging
import os
import random
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from email.parser import BytesParser
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from ..api.connection import DEFAULT_PORTS, ConnectionSpec
from .attachments import Attachment, select_attachments
from .clients.base import (
    PermanentError,
    PushClient,
    TransferError,
    TransientError,
)
from .inbound import hash_file, per_file, pull
from .landing import LandingArea, is_hidden
from .ledger import FETCHED, IGNORED, SENDING, SENT, Entry, Ledger
from .plan import OutboxFile, plan_push
from .summary import Summary, render, write_termination_log

log = logging.getLogger("connectors.transfer")


class ImapClientLike(Protocol):
    uidvalidity: int

    def unseen(self) -> list[int]: ...

    def size(self, uid: int) -> int | None: ...

    def fetch(self, uid: int) -> bytes | None: ...

    def mark_seen(self, uid: int) -> None: ...


SWITCH_INTERVAL = 0.05
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2

DEFAULT_IMAP_PORTS = {"IMAPS": 993, "STARTTLS": 143}
DEFAULT_FTPS_IMPLICIT_PORT = 990


def _env(name: str, default: str | None = None) -> str | None:
    return os.environ.get(name, default)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.ArgumentDefaultsHelpFormatter
    parser.description = (
        "Run one transfer of a platform-initiated Connection (Inbound+Pull or "
        "Outbound+Push). Every option can also be set from the environment variable "
        "named in its help."
    )
    add = parser.add_argument
    add(
        "--connection",
        default=_env("CONNECTORS_CONNECTION"),
        help="name of the Connection [CONNECTORS_CONNECTION] (required)",
    )
    add(
        "--namespace",
        default=_env("CONNECTORS_NAMESPACE"),
        help="namespace of the Connection, for messages [CONNECTORS_NAMESPACE]",
    )
    add(
        "--config",
        type=Path,
        default=Path(_env("CONNECTORS_CONFIG", "/etc/connectors/connection/connection.json") or ""),
        help='JSON {"name", "namespace", "spec"} of the Connection [CONNECTORS_CONFIG]',
    )
    add(
        "--known-hosts",
        type=Path,
        default=Path(
            _env("CONNECTORS_KNOWN_HOSTS", "/etc/connectors/connection/known_hosts") or ""
        ),
        help="OpenSSH known_hosts with remote.hostKeys: the only trusted SFTP host keys "
        "[CONNECTORS_KNOWN_HOSTS]",
    )
    add(
        "--credential-dir",
        type=Path,
        default=Path(_env("CONNECTORS_CREDENTIAL_DIR", "/etc/connectors/credential") or ""),
        help="the Credential's Secret as files: username, and password or ssh-privatekey "
        "[CONNECTORS_CREDENTIAL_DIR]",
    )
    add(
        "--username",
        default=_env("CONNECTORS_USERNAME"),
        help="login name on the partner's server; default: the credential folder's "
        "`username` file (a Secret a third party issued may not hold one) [CONNECTORS_USERNAME]",
    )
    add(
        "--data-root",
        type=Path,
        default=Path(_env("CONNECTORS_DATA_ROOT", "/data") or ""),
        help="root of the data volume; files land in <data-root>/<connection>/ "
        "[CONNECTORS_DATA_ROOT]",
    )
    add(
        "--smtp-relay",
        default=_env("CONNECTORS_SMTP_RELAY"),
        help="HOST:PORT of the SMTP relay for Outbound Email [CONNECTORS_SMTP_RELAY]",
    )
    add(
        "--smtp-from",
        default=_env("CONNECTORS_SMTP_FROM"),
        help="sender address of Outbound Email [CONNECTORS_SMTP_FROM]",
    )
    add(
        "--smtp-starttls",
        action=argparse.BooleanOptionalAction,
        default=_env("CONNECTORS_SMTP_STARTTLS", "false") in ("1", "true", "yes"),
        help="use STARTTLS with the relay (certificate verified) [CONNECTORS_SMTP_STARTTLS]",
    )
    add(
        "--termination-log",
        type=Path,
        default=Path(_env("CONNECTORS_TERMINATION_LOG", "/dev/termination-log") or ""),
        help="file the summary is also written to, when it exists [CONNECTORS_TERMINATION_LOG]",
    )
    add(
        "--retries",
        type=int,
        default=int(_env("CONNECTORS_RETRIES", "3") or 3),
        help="new attempts after a transient network error, with backoff [CONNECTORS_RETRIES]",
    )
    add(
        "--timeout",
        type=float,
        default=float(_env("CONNECTORS_TIMEOUT", "30") or 30),
        help="seconds to wait for the server at each step [CONNECTORS_TIMEOUT]",
    )
    add(
        "--parallelism",
        type=int,
        default=int(_env("CONNECTORS_PARALLELISM", "4") or 4),
        help="SFTP: files transferred at once, one SFTP channel each [CONNECTORS_PARALLELISM]",
    )
    add(
        "--processes",
        type=int,
        default=int(_env("CONNECTORS_PROCESSES", "1") or 1),
        help="SFTP: connections, one process each, for runs with many files or large "
        "ones: paramiko uses about one core per connection, so more than 1 helps only "
        "with spare cores [CONNECTORS_PROCESSES]",
    )
    add(
        "--backoff",
        type=float,
        default=float(_env("CONNECTORS_BACKOFF", "2") or 2),
        help="seconds before the first retry, doubled each time [CONNECTORS_BACKOFF]",
    )


@dataclass(frozen=True)
class Connection:
    name: str
    namespace: str | None
    spec: ConnectionSpec


@dataclass(frozen=True)
class Secret:
    username: str
    password: str | None
    private_key: Path | None

    @property
    def values(self) -> tuple[str, ...]:
        return tuple(v for v in (self.password,) if v)


def load_connection(path: Path, name: str) -> Connection:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PermanentError(f"cannot read the Connection config {path}: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise PermanentError(f"{path} must hold a JSON object with a 'spec' object")
    try:
        spec = ConnectionSpec.model_validate(data["spec"])
    except ValidationError as exc:
        raise PermanentError(f"the Connection spec in {path} is not valid: {exc}") from None
    if data.get("name") not in (None, name):
        raise PermanentError(f"{path} describes Connection {data.get('name')!r}, not {name!r}")
    if not spec.platform_initiated or spec.remote is None:
        raise PermanentError(
            "transfer jobs run only for Inbound+Pull and Outbound+Push Connections with a remote"
        )
    return Connection(name=name, namespace=data.get("namespace"), spec=spec)


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


# ---- Inbound Pull of email (IMAP) ---------------------------------------------------------

# Larger messages are not downloaded: they are refused and recorded.
MAX_MESSAGE_BYTES = 100 * 1024 * 1024


def land_attachment(
    key: str, attachment: Attachment, landing: LandingArea, ledger: Ledger, summary: Summary
) -> None:
    temp = landing.temp_path(attachment.name)
    try:
        temp.write_bytes(attachment.payload)
        landing.commit(temp, attachment.name)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    sha = hashlib.sha256(attachment.payload).hexdigest()
    size = len(attachment.payload)
    ledger.record(Entry(FETCHED, key, size, 0, sha, note=attachment.name))
    landing.write_receipt(attachment.name, size, sha)
    summary.transferred(size)
    log.info("landed attachment %s (%d bytes)", attachment.name, size)


def ignore_message(
    client: ImapClientLike, uid: int, key: str, reason: str, ledger: Ledger, summary: Summary
) -> None:
    ledger.record(Entry(IGNORED, key, 0, 0, note=reason))
    summary.skip()
    log.info("ignored message %s: %s", key, reason)
    client.mark_seen(uid)


def pull_mail(
    client: ImapClientLike,
    spec: ConnectionSpec,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> None:
    """Unseen messages, oldest first. A message is marked seen only after each
    of its accepted attachments has landed and been recorded; a run that dies
    in between lands the missing attachments next time and skips the rest."""
    mailbox = spec.remote.folder if spec.remote and spec.remote.folder else "INBOX"
    for uid in client.unseen():
        key = f"imap/{mailbox}/{client.uidvalidity}/{uid}"
        if ledger.has(IGNORED, key, 0, 0):
            summary.skip()
            client.mark_seen(uid)
            continue
        size = client.size(uid)
        if size is not None and size > MAX_MESSAGE_BYTES:
            ignore_message(
                client, uid, key, f"message larger than {MAX_MESSAGE_BYTES} bytes", ledger, summary
            )
            continue
        raw = client.fetch(uid)
        if raw is None:
            continue  # expunged meanwhile
        message = BytesParser(policy=email.policy.default).parsebytes(raw)
        verdict = select_attachments(message, spec.filename_pattern)
        if not verdict.is_accepted:
            ignore_message(client, uid, key, verdict.reason or "refused", ledger, summary)
            continue
        for attachment in verdict.accepted:
            attachment_key = f"{key}/{attachment.name}"
            if ledger.has(FETCHED, attachment_key, len(attachment.payload), 0):
                summary.skip()
                continue
            land_attachment(attachment_key, attachment, landing, ledger, summary)
        summary.skip(len(verdict.ignored))
        client.mark_seen(uid)


# ---- Outbound Push (SFTP, FTP, Email) -----------------------------------------------------


def outbox_files(landing: LandingArea) -> list[OutboxFile]:
    if not landing.outbox.is_dir():
        return []
    files = []
    for entry in landing.outbox.iterdir():
        if entry.is_file() and not is_hidden(entry.name):
            st = entry.stat()
            files.append(OutboxFile(entry.name, st.st_size, int(st.st_mtime)))
    return files


def move_to_sent(landing: LandingArea, file: OutboxFile) -> None:
    landing.sent.mkdir(mode=0o750, parents=True, exist_ok=True)
    os.replace(landing.outbox / file.name, landing.sent / file.name)


def push(
    client: PushClient,
    spec: ConnectionSpec,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> None:
    plan = plan_push(outbox_files(landing), ledger.has, spec.filename_pattern)
    summary.skip(plan.skipped)
    for file in plan.finish:
        move_to_sent(landing, file)
    for file in plan.uncertain:
        key = (file.name, file.size, file.mtime)
        if client.remote_size(file.name) == file.size:
            # The upload completed before the previous run died.
            ledger.record(Entry(SENT, *key, note="found on the remote"))
            move_to_sent(landing, file)
        else:
            per_file(summary, functools.partial(send_one, client, file, landing, ledger, summary))
    for file in plan.send:
        per_file(summary, functools.partial(send_one, client, file, landing, ledger, summary))


def send_one(
    client: PushClient, file: OutboxFile, landing: LandingArea, ledger: Ledger, summary: Summary
) -> None:
    key = (file.name, file.size, file.mtime)
    path = landing.outbox / file.name
    if not ledger.has(SENDING, *key):
        ledger.record(Entry(SENDING, *key))
    client.upload(file.name, path)
    ledger.record(Entry(SENT, *key, sha256=hash_file(path)))
    move_to_sent(landing, file)
    summary.transferred(file.size)
    log.info("sent %s (%d bytes)", file.name, file.size)


# ---- Building clients -----------------------------------------------------------------------


def remote_port(spec: ConnectionSpec) -> int:
    assert spec.remote is not None
    if spec.remote.port:
        return spec.remote.port
    if spec.method == "FTP" and spec.remote.tls == "Implicit":
        return DEFAULT_FTPS_IMPLICIT_PORT
    if spec.method == "Email":
        return DEFAULT_IMAP_PORTS[spec.remote.tls or "IMAPS"]
    return DEFAULT_PORTS[spec.method]


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
                port=remote_port(spec),
                folder=remote.folder or "/",
                username=secret.username,
                known_hosts=args.known_hosts,
                password=None if secret.private_key else secret.password,
                private_key=secret.private_key,
                timeout=args.timeout,
                parallelism=args.parallelism,
                processes=args.processes,
            )
        )
    elif spec.method == "FTP":
        from .clients.ftp import FtpClient, FtpSettings

        client = FtpClient(
            FtpSettings(
                host=remote.host or "",
                port=remote_port(spec),
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
                port=remote_port(spec),
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


def one_pass(
    connection: Connection,
    secret: Secret,
    args: argparse.Namespace,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
) -> None:
    spec = connection.spec
    with open_client(connection, secret, args) as client:
        if spec.direction == "Outbound":
            push(client, spec, landing, ledger, summary)
        elif spec.method == "Email":
            pull_mail(client, spec, landing, ledger, summary)
        else:
            pull(client, spec, landing, ledger, summary)


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
    landing = LandingArea(args.data_root, connection.name)
    landing.ensure()
    landing.remove_stale_temporaries()
    ledger = Ledger(landing.internal / "ledger.jsonl")
    delays = backoff_delays(args.backoff, max(0, args.retries))
    while True:
        try:
            one_pass(connection, secret, args, landing, ledger, summary)
            return
        except TransientError as exc:
            delay = next(delays, None)
            if delay is None:
                raise
            log.warning("%s; retrying in %.1f s", redact(str(exc)), delay)
            time.sleep(delay)


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not args.connection:
        print(
            "connectors transfer: --connection (or CONNECTORS_CONNECTION) is required",
            file=sys.stderr,
        )
        return EXIT_USAGE
    # paramiko's transport thread decrypts and parses every packet; with the
    # default 5 ms switch interval the lanes keep taking the GIL from it. A
    # longer interval measured 1.3-2x faster on a large file, and no slower on
    # many small ones (bench/transfer.py); all our threads block on I/O often.
    sys.setswitchinterval(SWITCH_INTERVAL)
    summary = Summary(connection=args.connection)
    redact = Redactor(())
    try:
        execute(args, summary, redact)
    except TransferError as exc:
        summary.error(redact(str(exc)))
    except OSError as exc:
        # The landing area itself (full disk, permissions): nothing to retry.
        summary.error(redact(f"local storage: {exc}"))
    if summary.errors:
        for message in summary.errors:
            log.error("%s", redact(message))
    line = render(summary.to_dict())
    print(line, flush=True)
    write_termination_log(args.termination_log, line)
    return EXIT_OK if summary.succeeded else EXIT_FAILED


__all__ = ["add_arguments", "run"]
