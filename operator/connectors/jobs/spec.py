"""The transfer job's view of its Connection, read from the file the operator
writes (`connection.json` in the job's ConfigMap).

The operator validated the Connection against the API models before writing
that file. The job reads only the fields it uses and checks their types,
without importing the models: building them (pydantic) cost about 0.2 s at
the start of every run, a fifth of a run that fetches a thousand small files
(bench/transfer.py). tests/unit/test_jobs_spec.py keeps this view in step
with the models: the file the operator renders for each example reads back to
the same values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import describe
from ..ports import PARTNER_FTPS_IMPLICIT_PORT, PARTNER_IMAP_PORTS, PARTNER_PORTS
from .clients.base import PermanentError

DIRECTIONS = ("Inbound", "Outbound")
METHODS = ("SFTP", "FTP", "Email")
METHODOLOGIES = ("Push", "Pull")


@dataclass(frozen=True)
class RemoteSpec:
    host: str | None = None
    port: int | None = None
    folder: str | None = None
    tls: str | None = None
    insecure_skip_tls_verify: bool = False
    recipients: tuple[str, ...] = ()
    delete_after_transfer: bool = False
    results_to: str | None = None
    """Origin: receipts and result files go back to remote.folder too."""


@dataclass(frozen=True)
class TransferSpec:
    direction: str
    method: str
    methodology: str
    remote: RemoteSpec = field(default_factory=RemoteSpec)
    filename_pattern: str | None = None
    display_name: str | None = None
    encrypt_to: str | None = None
    """spec.pgp.encryptTo: the PGPKey Credential whose public key every file is
    encrypted to before it is sent (as <name>.pgp)."""

    @property
    def platform_initiated(self) -> bool:
        """Inbound+Pull and Outbound+Push: the platform connects to the partner."""
        return (self.direction == "Inbound") == (self.methodology == "Pull")

    @property
    def port(self) -> int:
        """remote.port, or the default of the method (and TLS mode)."""
        if self.remote.port:
            return self.remote.port
        if self.method == "FTP" and self.remote.tls == "Implicit":
            return PARTNER_FTPS_IMPLICIT_PORT
        if self.method == "Email":
            return PARTNER_IMAP_PORTS[self.remote.tls or "IMAPS"]
        return PARTNER_PORTS[self.method]


@dataclass(frozen=True)
class Connection:
    name: str
    namespace: str | None
    spec: TransferSpec


class _Reader:
    """Typed access to one JSON object; errors name the field and the file."""

    def __init__(self, data: dict[str, Any], where: str, path: Path) -> None:
        self.data = data
        self.where = where
        self.path = path

    def _bad(self, key: str, expected: str) -> PermanentError:
        return PermanentError(
            f"{self.path}: {self.where}{key} must be {expected}; the operator writes this "
            "file from the Connection, so re-apply the Connection or update the operator"
        )

    def string(self, key: str, choices: tuple[str, ...] | None = None) -> str | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or (choices and value not in choices):
            raise self._bad(key, f"one of {', '.join(choices)}" if choices else "a string")
        return value

    def required(self, key: str, choices: tuple[str, ...]) -> str:
        value = self.string(key, choices)
        if value is None:
            raise self._bad(key, f"one of {', '.join(choices)}")
        return value

    def integer(self, key: str) -> int | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, int) or isinstance(value, bool):
            raise self._bad(key, "an integer")
        return value

    def boolean(self, key: str) -> bool:
        value = self.data.get(key, False)
        if not isinstance(value, bool):
            raise self._bad(key, "true or false")
        return value

    def strings(self, key: str) -> tuple[str, ...]:
        value = self.data.get(key) or []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self._bad(key, "a list of strings")
        return tuple(value)

    def child(self, key: str) -> _Reader:
        value = self.data.get(key) or {}
        if not isinstance(value, dict):
            raise self._bad(key, "an object")
        return _Reader(value, f"{self.where}{key}.", self.path)


def parse_spec(data: dict[str, Any], path: Path) -> TransferSpec:
    spec = _Reader(data, "spec.", path)
    remote = spec.child("remote")
    return TransferSpec(
        direction=spec.required("direction", DIRECTIONS),
        method=spec.required("method", METHODS),
        methodology=spec.required("methodology", METHODOLOGIES),
        filename_pattern=spec.string("filenamePattern"),
        display_name=spec.string("displayName"),
        encrypt_to=spec.child("pgp").child("encryptTo").string("name"),
        remote=RemoteSpec(
            host=remote.string("host"),
            port=remote.integer("port"),
            folder=remote.string("folder"),
            tls=remote.string("tls"),
            insecure_skip_tls_verify=remote.boolean("insecureSkipTlsVerify"),
            recipients=remote.strings("recipients"),
            delete_after_transfer=remote.boolean("deleteAfterTransfer"),
            results_to=remote.string("resultsTo", ("Origin",)),
        ),
    )


def load_connection(path: Path, name: str) -> Connection:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise PermanentError(
            f"cannot read the Connection config {path}: {describe(exc)}"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("spec"), dict):
        raise PermanentError(f"{path} must hold a JSON object with a 'spec' object")
    if data.get("name") not in (None, name):
        raise PermanentError(f"{path} describes Connection {data.get('name')!r}, not {name!r}")
    spec = parse_spec(data["spec"], path)
    if not spec.platform_initiated or not isinstance(data["spec"].get("remote"), dict):
        raise PermanentError(
            "transfer jobs run only for Inbound+Pull and Outbound+Push Connections with a remote"
        )
    namespace = data.get("namespace")
    return Connection(name, namespace if isinstance(namespace, str) else None, spec)
