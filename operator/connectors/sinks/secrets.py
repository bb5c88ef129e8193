"""The sinks' Secrets, as the processor pod mounts them: each referenced
Secret at <root>/<secret name>/, one file per key (`hmac-key` for a webhook;
`accessKeyId` and `secretAccessKey` for an object store)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

SECRETS_ROOT = Path("/etc/connectors/sinks")

# A Secret's name is a DNS subdomain; a key is [-._a-zA-Z0-9]+. Neither can
# walk out of the root.
_NAME = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")
_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


class SecretMissing(Exception):
    """A key of a referenced Secret is not there (yet); the message says where
    it was looked for, never what it holds."""


@dataclass(frozen=True)
class SecretFiles:
    root: Path = SECRETS_ROOT

    def read(self, secret: str, key: str) -> bytes:
        """The key's value, exactly as stored (a trailing newline included)."""
        if not _NAME.match(secret) or not _KEY.match(key) or key in (".", ".."):
            raise SecretMissing(f"{secret!r} / {key!r} is not a Secret name and key")
        path = self.root / secret / key
        try:
            return path.read_bytes()
        except FileNotFoundError:
            raise SecretMissing(
                f"the Secret {secret} has no key {key} mounted at {path}: create the Secret "
                f"with that key in the Connection's namespace (the processor mounts it when "
                f"it restarts)") from None
        except OSError as err:
            raise SecretMissing(f"the key {key} of the Secret {secret} at {path} cannot be "
                                f"read: {err.strerror}") from None

    def text(self, secret: str, key: str) -> str:
        """A value that is one token (an access key): surrounding whitespace,
        such as the newline `echo` leaves, is not part of it."""
        try:
            return self.read(secret, key).decode("utf-8").strip()
        except UnicodeDecodeError:
            raise SecretMissing(f"the key {key} of the Secret {secret} is not UTF-8 "
                                "text") from None
