"""The Connection resource: one exchange of batch files with a partner."""

from __future__ import annotations

import re
from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, ConfigDict, Field, model_validator
from pydantic_core import PydanticCustomError

from .common import Condition, LocalObjectReference, Model
from .file_schema import FileSchema
from .rules import Rule, cel_extension
from .senders import EmailSettings

Direction = Literal["Inbound", "Outbound"]
DataType = Literal[
    "Conversions",
    "Clicks",
    "ProductCatalog",
    "Audiences",
    "Identities",
    "CardLinkedTransactions",
    "Reports",
]
Method = Literal["SFTP", "FTP", "Email"]
Methodology = Literal["Push", "Pull"]
Tls = Literal["None", "Explicit", "Implicit", "IMAPS", "STARTTLS"]

# `*` and `?` are the only wildcards; no path separators, no character classes.
FILENAME_PATTERN = r"^[^/\\\[\]]+$"
# The same rule in words, for `kubectl apply` and `connectors validate` alike: a
# refusal that quotes the regular expression leaves the reader to decode it.
FILENAME_PATTERN_MESSAGE = (
    "filenamePattern is a file name, not a path: any characters but '/', '\\', '[' and "
    "']', with the wildcards * (any run of characters) and ? (one character), "
    "for example 'conversions_*.csv'"
)
# A DNS name, an IPv4 address (which the DNS form also matches) or an IPv6 address.
HOST_PATTERN = (
    r"^([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
    r"|[0-9A-Fa-f]*:[0-9A-Fa-f:.]*)$"
)
# Five cron fields, or one of the @ shorthands. Field ranges are checked by the operator.
SCHEDULE_PATTERN = r"^(@(yearly|annually|monthly|weekly|daily|hourly)|\S+( +\S+){4})$"
EMAIL_PATTERN = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
# A folder in the partner's view: one plain name, never hidden, never a path.
FOLDER_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$"
DEFAULT_SCHEDULE = "*/15 * * * *"


def _filename_pattern(value: str) -> str:
    if not re.fullmatch(FILENAME_PATTERN, value):
        raise PydanticCustomError("filename_pattern", FILENAME_PATTERN_MESSAGE)
    return value


assert "'" not in FILENAME_PATTERN, "the CEL rule quotes it in a raw '...' string"
# No `pattern` keyword: the API server would quote the expression. A CEL rule on the
# field checks the same expression (RE2 reads it as Python does) with the message.
FilenamePattern = Annotated[
    str,
    Field(min_length=1, max_length=255, json_schema_extra={"x-kubernetes-validations": [
        {"rule": f"self.matches(r'{FILENAME_PATTERN}')", "message": FILENAME_PATTERN_MESSAGE},
    ]}),
    AfterValidator(_filename_pattern),
]


_PLATFORM_INITIATED = "((self.direction == 'Inbound') == (self.methodology == 'Pull'))"


def is_platform_initiated(direction: str, methodology: str) -> bool:
    """Inbound+Pull and Outbound+Push: the platform connects to the partner."""
    return (direction == "Inbound") == (methodology == "Pull")


def _platform(s: ConnectionSpec) -> bool:
    return is_platform_initiated(s.direction, s.methodology)


def _outbound_email(s: ConnectionSpec) -> bool:
    return s.method == "Email" and s.direction == "Outbound"


def _inbound_email_push(s: ConnectionSpec) -> bool:
    return s.method == "Email" and s.direction == "Inbound" and s.methodology == "Push"


def _ftp_listener(s: ConnectionSpec) -> bool:
    return s.method == "FTP" and not _platform(s)


RULES: tuple[Rule, ...] = (
    Rule(
        ".dataType",
        "self.dataType != 'Reports' || self.direction == 'Outbound'",
        "dataType Reports flows from the platform to the partner: set direction: Outbound",
        lambda s: s.data_type != "Reports" or s.direction == "Outbound",
    ),
    Rule(
        ".methodology",
        "!(self.method == 'Email' && self.direction == 'Outbound' && self.methodology == 'Pull')",
        "Email with direction Outbound and methodology Pull has no meaning (a partner cannot "
        "pull from a mailbox the platform sends to): use methodology: Push",
        lambda s: not (_outbound_email(s) and s.methodology == "Pull"),
    ),
    Rule(
        ".filenamePattern",
        "self.method != 'Email' || has(self.filenamePattern)",
        "filenamePattern is required when method is Email: every attachment must match it, "
        "for example 'audiences_*.csv'",
        lambda s: s.method != "Email" or s.filename_pattern is not None,
    ),
    Rule(
        ".remote",
        f"has(self.remote) || !{_PLATFORM_INITIATED}",
        "remote is required when the platform starts the transfer (Inbound+Pull or "
        "Outbound+Push): set remote.host, and remote.folder for SFTP and FTP",
        lambda s: s.remote is not None or not _platform(s),
    ),
    Rule(
        ".remote",
        f"!has(self.remote) || {_PLATFORM_INITIATED}",
        "remote is only for transfers the platform starts (Inbound+Pull, Outbound+Push); "
        "with Inbound+Push or Outbound+Pull the partner connects to the listener: remove remote",
        lambda s: s.remote is None or _platform(s),
    ),
    Rule(
        ".schedule",
        f"!has(self.schedule) || {_PLATFORM_INITIATED}",
        "schedule is only for transfers the platform starts (Inbound+Pull, Outbound+Push): "
        "remove it",
        lambda s: s.schedule is None or _platform(s),
    ),
    Rule(
        ".remote.host",
        "!has(self.remote) || has(self.remote.host) "
        "|| (self.method == 'Email' && self.direction == 'Outbound')",
        "remote.host is required: the partner server's DNS name or IP address",
        lambda s: s.remote is None or s.remote.host is not None or _outbound_email(s),
    ),
    Rule(
        ".remote.folder",
        "self.method == 'Email' || !has(self.remote) "
        "|| (has(self.remote.folder) && self.remote.folder.startsWith('/'))",
        "remote.folder must be an absolute path on the partner's server, such as /outgoing, "
        "for SFTP and FTP",
        lambda s: s.method == "Email"
        or s.remote is None
        or (s.remote.folder is not None and s.remote.folder.startswith("/")),
    ),
    Rule(
        ".remote.hostKeys",
        "self.method != 'SFTP' || !has(self.remote) "
        "|| (has(self.remote.hostKeys) && size(self.remote.hostKeys) > 0)",
        "remote.hostKeys needs at least one trusted host key for SFTP (the platform never "
        "trusts an unknown host); read it with: ssh-keyscan -t ed25519 HOST",
        lambda s: s.method != "SFTP" or s.remote is None or bool(s.remote.host_keys),
    ),
    Rule(
        ".remote.hostKeys",
        "self.method == 'SFTP' || !has(self.remote) || !has(self.remote.hostKeys)",
        "remote.hostKeys applies only to SFTP: remove it",
        lambda s: s.method == "SFTP" or s.remote is None or s.remote.host_keys is None,
    ),
    Rule(
        ".remote.tls",
        "!has(self.remote) || !has(self.remote.tls) "
        "|| (self.method == 'FTP' && self.remote.tls in ['None', 'Explicit', 'Implicit']) "
        "|| (self.method == 'Email' && self.remote.tls in ['IMAPS', 'STARTTLS'])",
        "remote.tls must be None, Explicit or Implicit for FTP, IMAPS or STARTTLS for Email, "
        "and is not used for SFTP",
        lambda s: s.remote is None
        or s.remote.tls is None
        or (s.method == "FTP" and s.remote.tls in ("None", "Explicit", "Implicit"))
        or (s.method == "Email" and s.remote.tls in ("IMAPS", "STARTTLS")),
    ),
    Rule(
        ".remote.recipients",
        "!has(self.remote) || !(self.method == 'Email' && self.direction == 'Outbound') "
        "|| (has(self.remote.recipients) && size(self.remote.recipients) > 0)",
        "remote.recipients needs at least one address for Outbound Email",
        lambda s: s.remote is None or not _outbound_email(s) or bool(s.remote.recipients),
    ),
    Rule(
        ".remote.recipients",
        "!has(self.remote) || !has(self.remote.recipients) "
        "|| (self.method == 'Email' && self.direction == 'Outbound')",
        "remote.recipients applies only to Outbound Email: remove it",
        lambda s: s.remote is None or s.remote.recipients is None or _outbound_email(s),
    ),
    Rule(
        ".email",
        "!has(self.email) "
        "|| (self.method == 'Email' && self.direction == 'Inbound' && self.methodology == 'Push')",
        "email applies only to Inbound Email Push, where partners' mail servers deliver to "
        "the platform's listener: remove it",
        lambda s: s.email is None or _inbound_email_push(s),
    ),
    Rule(
        ".email.allowedSenders",
        "!has(self.email) || !has(self.email.allowedSenders) "
        "|| size(self.email.allowedSenders) > 0",
        "email.allowedSenders needs at least one address or domain; remove it to accept "
        "mail from any sender",
        lambda s: s.email is None or s.email.allowed_senders is None
        or len(s.email.allowed_senders) > 0,
    ),
    Rule(
        ".ftp",
        f"!has(self.ftp) || (self.method == 'FTP' && !{_PLATFORM_INITIATED})",
        "ftp applies only to FTP Connections the partner starts (Inbound Push, Outbound "
        "Pull), which use the platform's FTP listener: remove it",
        lambda s: s.ftp is None or _ftp_listener(s),
    ),
    Rule(
        ".submissions",
        "!has(self.submissions) || self.direction == 'Inbound'",
        "submissions applies only to Inbound Connections, whose files the platform "
        "checks: remove it",
        lambda s: s.submissions is None or s.direction == "Inbound",
    ),
    Rule(
        ".pgp.decryptWith",
        "!has(self.pgp) || !has(self.pgp.decryptWith) || self.direction == 'Inbound'",
        "pgp.decryptWith applies to Inbound Connections (files the partner encrypts to the "
        "platform's key); for Outbound use pgp.encryptTo",
        lambda s: s.pgp is None or s.pgp.decrypt_with is None or s.direction == "Inbound",
    ),
    Rule(
        ".pgp.encryptTo",
        "!has(self.pgp) || !has(self.pgp.encryptTo) || self.direction == 'Outbound'",
        "pgp.encryptTo applies to Outbound Connections (files the platform encrypts to the "
        "partner's key); for Inbound use pgp.decryptWith",
        lambda s: s.pgp is None or s.pgp.encrypt_to is None or s.direction == "Outbound",
    ),
    Rule(
        ".pgp",
        "!has(self.pgp) || has(self.pgp.decryptWith) || has(self.pgp.encryptTo)",
        "pgp needs decryptWith (Inbound) or encryptTo (Outbound): set one, or remove pgp",
        lambda s: s.pgp is None or s.pgp.decrypt_with is not None
        or s.pgp.encrypt_to is not None,
    ),
    Rule(
        ".email.replyWithResults",
        "!has(self.email) || !has(self.email.replyWithResults) || !self.email.replyWithResults "
        "|| has(self.email.allowedSenders)",
        "email.replyWithResults needs email.allowedSenders: replies go only to senders the "
        "Connection knows",
        lambda s: s.email is None or not s.email.reply_with_results
        or s.email.allowed_senders is not None,
    ),
    Rule(
        ".folder",
        f"!has(self.folder) || !{_PLATFORM_INITIATED}",
        "folder is where the partner sees the files on the platform's listener, so only "
        "for Inbound+Push and Outbound+Pull: remove it",
        lambda s: s.folder is None or not _platform(s),
    ),
    Rule(
        ".remote.resultsTo",
        "!has(self.remote) || !has(self.remote.resultsTo) || (self.direction == 'Inbound' "
        "&& self.methodology == 'Pull' && self.method != 'Email')",
        "remote.resultsTo applies only to Inbound Pull over SFTP or FTP, where the platform "
        "fetches from the partner's folder: remove it",
        lambda s: s.remote is None or s.remote.results_to is None
        or (s.direction == "Inbound" and s.methodology == "Pull" and s.method != "Email"),
    ),
    Rule(
        ".deleteAfterDownload",
        "!has(self.deleteAfterDownload) || !self.deleteAfterDownload "
        "|| (self.direction == 'Outbound' && self.methodology == 'Pull')",
        "deleteAfterDownload applies only to Outbound Pull (the partner downloads from the "
        "listener); for Inbound Pull use remote.deleteAfterTransfer",
        lambda s: not s.delete_after_download
        or (s.direction == "Outbound" and s.methodology == "Pull"),
    ),
)


class PgpSettings(Model):
    """OpenPGP encryption of the files themselves, on top of the transport's."""

    decrypt_with: LocalObjectReference | None = None
    """Inbound: a Credential of type PGPKey whose key pair the operator generated. The
    partner encrypts every file to its public key (in the Credential's status); the
    platform decrypts each landed file before checking it, and refuses one that does
    not decrypt, with a result file that says so. The landed file stays as received."""
    encrypt_to: LocalObjectReference | None = None
    """Outbound: a Credential of type PGPKey holding the partner's public key
    (spec.publicKey, ASCII-armored). Every file is encrypted to it before it is sent,
    and sent as <name>.pgp."""


class FtpListenerSettings(Model):
    """FTP Connections the partner starts: how the partner may reach the listener."""

    allow_plain_ftp: bool = False
    """Let the partner log in without TLS. The listener requires explicit FTPS (AUTH TLS,
    then PROT P) by default, because plain FTP sends the password and the files readable
    by anyone on the path. Only for a partner whose client cannot do FTPS; the Connection
    then carries Encrypted=False and a Warning. A login allows plain FTP only when every
    Connection of its Credential on the listener allows it."""


URL_PATTERN = r"^https?://[^\s/]+(/\S*)?$"
URL_MESSAGE = ("must be an http:// or https:// URL without spaces, such as "
               "'https://ingest.example/hook'")


def _url(value: str) -> str:
    if not re.fullmatch(URL_PATTERN, value):
        raise PydanticCustomError("url", URL_MESSAGE)
    return value


# Checked by CEL at the API server and by _url everywhere else, in the same words.
Url = Annotated[
    str,
    Field(max_length=2048, json_schema_extra={"x-kubernetes-validations": [
        {"rule": f"self.matches(r'{URL_PATTERN}')", "message": URL_MESSAGE}]}),
    AfterValidator(_url),
]


class WebhookSink(Model):
    """A CloudEvents HTTP endpoint that receives each accepted file."""

    url: Url
    """Where each accepted file is POSTed, as a binary-mode CloudEvent whose body is the
    file and whose ce-id is the submission's trace id (the receiver's idempotency key)."""
    secret_ref: LocalObjectReference | None = None
    """A Secret whose key `hmac-key` signs each request: the header
    X-Connectors-Signature is sha256=<hex HMAC-SHA256 of the body>."""


class ObjectStoreSink(Model):
    """An S3-compatible bucket that receives each accepted file."""

    bucket: Annotated[str, Field(min_length=3, max_length=63)]
    endpoint: Url | None = None
    """The S3 API's URL; unset: AWS S3 of `region`."""
    region: Annotated[str, Field(max_length=64)] | None = None
    prefix: Annotated[str, Field(max_length=512)] = ""
    """Put before each key, <prefix><connection>/<trace id>/<file name>."""
    credentials_secret_ref: LocalObjectReference
    """A Secret with the keys `accessKeyId` and `secretAccessKey`."""


class Sink(Model):
    """One downstream destination; exactly one of its fields is set."""

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra={"x-kubernetes-validations": [{
            "rule": "has(self.webhook) != has(self.objectStore)",
            "message": "a sink is either webhook or objectStore: set exactly one"}]},
    )

    webhook: WebhookSink | None = None
    object_store: ObjectStoreSink | None = None

    @model_validator(mode="after")
    def _one(self) -> Sink:
        if (self.webhook is None) == (self.object_store is None):
            raise PydanticCustomError("sink", "a sink is either webhook or objectStore: set "
                                              "exactly one")
        return self


class SubmissionSettings(Model):
    """Inbound: how the platform checks each landed file and answers the partner."""

    schema_: FileSchema | None = Field(default=None, alias="schema")
    """The file's columns and rules, when the data type's built-in schema does not fit
    (for example a partner's own conversions layout). Unset: the built-in schema of
    spec.dataType."""
    deliver_to: Annotated[list[Sink], Field(max_length=4)] | None = None
    """Where each accepted file goes once checked (a file with accepted rows; rejected
    rows are not removed from it): at least once, with the trace id as idempotency key,
    retried with backoff while a sink fails."""


class Remote(Model):
    """The partner's server, for transfers the platform starts."""

    host: Annotated[str, Field(max_length=253, pattern=HOST_PATTERN)] | None = None
    """The partner server's DNS name or IP address. Not used for Outbound Email, which
    goes through the platform's SMTP relay."""
    port: Annotated[int, Field(ge=1, le=65535)] | None = None
    """TCP port; defaults to 22 for SFTP, 21 for FTP (990 with Implicit TLS), 993 for
    IMAPS and 143 for IMAP with STARTTLS."""
    folder: Annotated[str, Field(min_length=1, max_length=1024)] | None = None
    """SFTP and FTP: the absolute folder on the partner's server, such as
    /home/partner/outgoing. Email: the mailbox to read, default INBOX."""
    host_keys: (
        Annotated[list[Annotated[str, Field(max_length=8192)]], Field(max_length=16)] | None
    ) = None
    """SFTP: the server's trusted host public keys ("ssh-ed25519 AAAA..."), at least one.
    The platform refuses any server whose key is not listed."""
    tls: Tls | None = None
    """FTP: None, Explicit (AUTH TLS) or Implicit; default None. Email (IMAP): IMAPS or
    STARTTLS; default IMAPS."""
    insecure_skip_tls_verify: bool = False
    """FTP and Email: accept a server certificate that does not verify. Only for test
    servers; the certificate is verified by default."""
    recipients: Annotated[
        list[Annotated[str, Field(max_length=254, pattern=EMAIL_PATTERN)]], Field(max_length=32)
    ] | None = None
    """Outbound Email: the addresses that receive each file, at least one."""
    delete_after_transfer: bool = False
    """Inbound Pull: delete each file on the partner's server after it has landed and
    been recorded. Default false: files stay, and the ledger keeps them from being
    fetched twice."""
    results_to: Literal["Origin"] | None = None
    """Inbound Pull (SFTP, FTP): Origin uploads each file's receipt and result file
    (receipt_<name>.txt, result_<name>.csv) to remote.folder, next to the file, on the
    transfer runs after they are made. Unset: they stay on the platform's volume."""


class ConnectionSpec(Model):
    """One exchange of batch files with a partner.

    Direction says which way data flows; methodology says who starts a transfer.
    Inbound+Push and Outbound+Pull: the partner connects to the platform's listener.
    Inbound+Pull and Outbound+Push: the platform connects to the partner on a schedule.
    """

    model_config = ConfigDict(
        **Model.model_config,
        json_schema_extra=cel_extension(RULES),
    )
    rules: ClassVar[tuple[Rule, ...]] = RULES

    display_name: Annotated[str, Field(max_length=128)] | None = None
    """A name for people, shown in events and receipts."""
    direction: Direction
    """Inbound: the partner gives data to the platform. Outbound: the platform gives
    data to the partner."""
    data_type: DataType
    """What the files hold. Reports are Outbound only."""
    method: Method
    """How files travel: SFTP, FTP or Email."""
    methodology: Methodology
    """Who starts a transfer. Push: the sender. Pull: the receiver."""
    credential_ref: LocalObjectReference
    """The Credential in this namespace that the partner logs in with, or that the
    platform logs in to the partner with."""
    filename_pattern: FilenamePattern | None = None
    """Which files belong to this Connection: wildcards `*` (any run of characters) and
    `?` (one character), no path separators. Required for Email."""
    remote: Remote | None = None
    """The partner's server. Required when the platform starts the transfer
    (Inbound+Pull, Outbound+Push), refused otherwise."""
    email: EmailSettings | None = None
    """Inbound Email Push only: who may deliver mail to the Connection's address."""
    submissions: SubmissionSettings | None = None
    """Inbound only: the schema each landed file is checked against."""
    ftp: FtpListenerSettings | None = None
    """FTP Connections the partner starts only: whether the partner may skip TLS."""
    pgp: PgpSettings | None = None
    """Files encrypted with OpenPGP: decrypted on arrival (Inbound), or encrypted before
    sending (Outbound)."""
    schedule: Annotated[str, Field(max_length=64, pattern=SCHEDULE_PATTERN)] | None = None
    """Cron schedule of the transfer job (platform-initiated only); default every 15
    minutes, "*/15 * * * *"."""
    suspend: bool = False
    """Stop scheduling transfers (platform-initiated) or refuse logins (partner-initiated)
    without deleting anything."""
    delete_after_download: bool = False
    """Outbound Pull: delete each file from the listener's folder once the partner has
    downloaded all of it. Default false: files stay until the platform removes them."""
    folder: Annotated[str, Field(max_length=63, pattern=FOLDER_PATTERN)] | None = None
    """Partner-initiated only: where the partner sees this Connection's files when one
    Credential serves several Connections on a listener. Unset: at the root of the
    login; set: in this folder of the login's root, such as "clicks". Each Connection
    of a login needs its own place; the older one keeps a place two ask for."""

    @property
    def platform_initiated(self) -> bool:
        return is_platform_initiated(self.direction, self.methodology)


class Endpoint(Model):
    """Where the partner connects, for transfers the partner starts."""

    protocol: str | None = None
    """sftp, ftp or smtp."""
    host: str | None = None
    """The listener's address: the Service's DNS name, or the public host the platform
    configured. Email: the mail exchanger, which the mail domain's MX record names."""
    port: int | None = None
    """The listener's port. Email: 25, where mail servers deliver without logging in."""
    submission_port: int | None = None
    """Email: the submission port, where a partner logs in with the Credential (AUTH,
    only after STARTTLS) to send to its Connections."""
    username: str | None = None
    """The login name."""
    address: str | None = None
    """Email: the address to send files to."""
    folder: str | None = None
    """SFTP and FTP: where this Connection's files are in the login: "/" or "/<folder>/"."""
    host_key_fingerprint: str | None = None
    """SFTP: the listener's host key fingerprint (SHA256), for the partner to check on
    first connection. It stays the same across restarts."""
    tls_certificate_fingerprint: str | None = None
    """FTP and Email: the SHA-256 fingerprint of the listener's TLS certificate, for
    the partner to check (it changes when the certificate is renewed)."""


class LastTransfer(Model):
    """The most recent transfer."""

    time: str | None = None
    """When it finished (RFC 3339)."""
    files: int | None = None
    """Files transferred."""
    bytes: int | None = None
    """Bytes transferred."""
    skipped: int | None = None
    """Files skipped: already transferred, or not matching filenamePattern."""
    failed: int | None = None
    """Files that failed."""
    outcome: Literal["Succeeded", "Failed"] | None = None
    """Succeeded or Failed."""
    message: Annotated[str, Field(max_length=2048)] | None = None
    """What happened, when it did not go well."""
    duration_seconds: float | None = None
    """How long the transfer took."""
    source: str | None = None
    """Who reported it: the transfer Job's name, or the listener's protocol."""


class DeliveryState(Model):
    """Where one accepted file stands with one sink of spec.submissions.deliverTo."""

    sink: str
    """The sink: webhook:<host>:<hash> or s3:<bucket>:<hash>."""
    status: Literal["Pending", "Delivered", "Failed"]
    attempts: int = 0
    last_error: Annotated[str, Field(max_length=512)] | None = None


class SubmissionRecord(Model):
    """One landed file, as the processor checked it."""

    name: str
    status: Literal["Received", "Checking", "Complete", "Failed"]
    """Received and Checking: not checked yet. Complete: checked, rows counted.
    Failed: the file could not be read as the schema says (see firstError)."""
    received_at: str | None = None
    checked_at: str | None = None
    rows_accepted: int | None = None
    rows_rejected: int | None = None
    first_error: Annotated[str, Field(max_length=512)] | None = None
    """The first problem found, as the result file words it."""
    deliveries: Annotated[list[DeliveryState], Field(max_length=4)] | None = None
    """Accepted files: where each sink stands."""


class Submissions(Model):
    """A Connection's submissions, counted over the retention period."""

    total: int = 0
    waiting: int = 0
    """Landed, not checked yet."""
    complete: int = 0
    failed: int = 0
    """Files that could not be checked at all (not CSV, not the schema's header, ...)."""
    with_rejections: int = 0
    """Complete files with at least one rejected row."""
    rows_accepted: int = 0
    rows_rejected: int = 0
    last: Annotated[list[SubmissionRecord], Field(max_length=10)] | None = None
    """The most recent files, newest first. `connectors submissions` lists them all."""


class ConnectionStatus(Model):
    """What the operator made of the Connection."""

    observed_generation: int | None = None
    """The metadata.generation the operator last acted on."""
    conditions: list[Condition] | None = None
    """Validated, CredentialReady, WorkloadReady and Ready."""
    endpoint: Endpoint | None = None
    """Where the partner connects (partner-initiated only)."""
    last_transfer: LastTransfer | None = None
    """The most recent transfer."""
    submissions: Submissions | None = None
    """Inbound: how the landed files fared against the schema."""
