"""The account table: how the operator tells a listener who may log in.

The table of a namespace and protocol is split by username into up to SHARDS
Secrets, `connectors-accounts-<protocol>-<NN>` (only the shards that hold an
account exist), each with the key `accounts.json` holding an AccountTable of
its logins. One Secret is limited to 1 MiB and an account takes 300 to 1,000
bytes, so one Secret would stop a namespace near 3,000 partners; 16 hold ten
times that, and a change rewrites one shard, not the whole table. A login's
shard is fixed by its name, so an account never moves between Secrets (the
kubelet may see two Secrets change at different moments, and a move would
make a login vanish for that moment).

The listener mounts every shard as an optional source of one projected volume,
reads the files `accounts-<NN>.json` of that folder (listeners/core/accounts_file.py)
and reloads them when they change. Passwords are stored as salted scrypt
hashes, never in plain text.

Version 1 of the format:

    {"version": 1, "accounts": [{"username": "acme", "connection": "acme-conversions",
      "direction": "Inbound", "home": "acme-conversions",
      "permissions": ["upload", "list", "readReceipts"],
      "filenamePattern": "conversions_*.csv",
      "passwordHash": "$scrypt$ln=14,r=8,p=1$<salt>$<hash>",
      "authorizedKeys": ["ssh-ed25519 AAAA... partner"], "suspended": false}]}

An SMTP account may also carry "allowedSenders": ["partner@example.com",
"example.com"], the envelope senders that may deliver to its Connection without
logging in. The key is written only when the Connection sets it, so a table
without allowed senders is byte for byte what listeners before it read (they
refuse unknown keys, and keep their last good table when they see one).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from typing import Annotated, Any, Literal

from pydantic import Field, SerializerFunctionWrapHandler, model_serializer

from . import shards
from .common import Model
from .shards import SHARDS as SHARDS
from .shards import shard_of as shard_of
from .shards import shard_suffix

FORMAT_VERSION: Literal[1] = 1
SECRET_KEY = "accounts.json"
Protocol = Literal["sftp", "ftp", "smtp"]
Permission = Literal["upload", "list", "download", "readReceipts"]

# scrypt cost: 2**14, r=8, p=1 (16 MiB and tens of ms per check): cheap for one login,
# expensive for an offline guesser of a password a person chose.
DEFAULT_LOG_N, _R, _P = 14, 8, 1
# A password the operator generated holds 192 random bits: no amount of guessing
# finds it, so stretching adds nothing there, while every login (and every failed
# one an attacker sends) pays the cost. These get 2**10 (1 MiB, a few ms).
GENERATED_LOG_N = 10


# Where each listener pod says which table it serves: "<protocol> <digest>" under
# its pod name (planning/readiness.py, listeners/core/state.py).
STATE_CONFIGMAP = "connectors-listener-state"


def table_digest(rendered: str | bytes) -> str:
    """The digest by which the operator and the listener name one account table
    (one shard's file)."""
    data = rendered.encode() if isinstance(rendered, str) else rendered
    return hashlib.sha256(data).hexdigest()[:16]


def state_value(protocol: str, digests: list[str] | str) -> str:
    """What a pod reports: its protocol and the digest of each shard it serves."""
    listed = [digests] if isinstance(digests, str) else sorted(digests)
    return f"{protocol} {','.join(listed)}"


def parse_state(value: str) -> tuple[str, tuple[str, ...]] | None:
    protocol, _, digests = value.partition(" ")
    return (protocol, tuple(d for d in digests.split(",") if d)) if digests else None


def secret_name(protocol: str) -> str:
    """The single Secret of the table before it was sharded; removed when found."""
    return f"connectors-accounts-{protocol}"


def shard_secret_name(protocol: str, shard: int) -> str:
    return f"connectors-accounts-{protocol}-{shard_suffix(shard)}"


def shard_number(protocol: str, name: str) -> int | None:
    """The shard a Secret of this name holds, or None if it is not one."""
    return shards.shard_number(f"connectors-accounts-{protocol}-", name)


def shard_file(shard: int) -> str:
    """The shard's file in the listener's accounts folder."""
    return f"accounts-{shard_suffix(shard)}.json"


def permissions_for(direction: str) -> list[Permission]:
    """Inbound: upload, list, read back receipt_/result_ files; never delete.
    Outbound: list and download only."""
    if direction == "Inbound":
        return ["upload", "list", "readReceipts"]
    return ["list", "download"]


class Account(Model):
    """One Connection served by a partner login on a listener. A login (one
    username) has one account per Connection its Credential serves."""

    username: Annotated[str, Field(min_length=1, max_length=64)]
    connection: str
    direction: Literal["Inbound", "Outbound"]
    home: str
    """The landing area, relative to the listener's data root."""
    permissions: list[Permission]
    filename_pattern: str | None = None
    password_hash: str | None = None
    authorized_keys: list[str] = Field(default_factory=list)
    suspended: bool = False
    delete_after_download: bool = False
    """Outbound Pull: a file goes once the partner has downloaded all of it."""
    folder: str | None = None
    """Where the partner sees this Connection: at the root of the login when None,
    else in this folder (a login may serve several Connections; see
    listeners/core/places.py)."""
    allowed_senders: list[str] | None = None
    """SMTP: who may deliver without logging in (addresses, or domains as
    example.com or @example.com); None: any sender."""
    plain_ftp: bool = False
    """FTP: the Connection lets its partner log in without TLS."""
    reply_with_results: bool = False
    """SMTP: note each message's sender, for the processor to answer with the results."""

    @model_serializer(mode="wrap")
    def _omit_defaults(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        # Settings of one protocol stay out of the others' tables, and a table
        # that did not use them renders to the bytes it always did.
        data: dict[str, Any] = handler(self)
        if self.allowed_senders is None:
            data.pop("allowedSenders", None)
            data.pop("allowed_senders", None)
        for name, alias in (("plain_ftp", "plainFtp"), ("reply_with_results", "replyWithResults")):
            if not getattr(self, name):
                data.pop(alias, None)
                data.pop(name, None)
        return data


class AccountTable(Model):
    version: Literal[1] = 1
    accounts: list[Account] = Field(default_factory=list)

    def by_username(self) -> dict[str, list[Account]]:
        """The accounts of each username: several when one Credential serves
        several Connections."""
        grouped: dict[str, list[Account]] = {}
        for account in self.accounts:
            grouped.setdefault(account.username, []).append(account)
        return grouped

    def render(self) -> str:
        # Sorted, so that an unchanged table renders to the same bytes and the
        # operator can skip an update that would change nothing.
        ordered = sorted(self.accounts, key=lambda a: (a.username, a.folder or ""))
        return AccountTable(accounts=ordered).model_dump_json(by_alias=True, indent=1)

    @classmethod
    def parse(cls, text: str | bytes) -> AccountTable:
        return cls.model_validate_json(text)

    def shards(self) -> dict[int, AccountTable]:
        """The table split by login: only the shards that hold one."""
        return {shard: AccountTable(accounts=entries) for shard, entries
                in shards.split(self.accounts, lambda entry: entry.username).items()}


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, salt: bytes | None = None, log_n: int = DEFAULT_LOG_N) -> str:
    """A salted scrypt hash in the `$scrypt$ln=..,r=..,p=..$salt$hash` form."""
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=2**log_n, r=_R, p=_P, maxmem=64 * 1024 * 1024, dklen=32
    )
    return f"$scrypt$ln={log_n},r={_R},p={_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str | None) -> bool:
    """True when `password` matches the hash; False for a malformed or absent hash."""
    if not encoded:
        return False
    try:
        _, scheme, params, salt, digest = encoded.split("$")
        if scheme != "scrypt":
            return False
        values = dict(item.split("=") for item in params.split(","))
        computed = hashlib.scrypt(
            password.encode(),
            salt=_unb64(salt),
            n=2 ** int(values["ln"]),
            r=int(values["r"]),
            p=int(values["p"]),
            maxmem=64 * 1024 * 1024,
            dklen=len(_unb64(digest)),
        )
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(computed, _unb64(digest))
