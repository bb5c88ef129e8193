"""The processing table: how the operator tells a namespace's processor which
Connections' files to check, and against what.

The operator writes the table of a namespace into up to 16 ConfigMaps split by
Connection name (shards.py), `connectors-processing-<NN>`, each with the key
`processing.json` holding a ProcessingTable: one entry per Inbound Connection
(partner-initiated or not: a listener and a transfer job land files alike).
The processor reads the files `processing-<NN>.json` of its mounted folder
together and reloads them when they change.

    {"version": 1, "connections": [{"connection": "acme-conversions",
      "home": "acme-conversions", "dataType": "Conversions", "schema": null}]}
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from . import shards
from .common import Model
from .connection import ConnectionSpec, DataType, Sink
from .file_schema import FileSchema
from .shards import shard_suffix

CONFIGMAP = "connectors-processing"
"""The single ConfigMap of the table from before shards; removed when found."""
KEY = "processing.json"


def configmap_name(shard: int) -> str:
    return f"{CONFIGMAP}-{shard_suffix(shard)}"


def shard_number(name: str) -> int | None:
    return shards.shard_number(f"{CONFIGMAP}-", name)


def shard_file(shard: int) -> str:
    """The shard's file in the processor's table folder."""
    return f"processing-{shard_suffix(shard)}.json"


class Processed(Model):
    """One Connection whose landed files the processor checks."""

    connection: str
    home: str
    """Its landing area, relative to the data root."""
    data_type: DataType
    schema_: FileSchema | None = Field(default=None, alias="schema")
    """The Connection's own schema; None: its data type's built-in one."""
    reply_to: list[str] | None = None
    """Email: answer the sender of each message with the results, when it is one of
    these (spec.email.allowedSenders, with replyWithResults); None: never."""
    display_name: str | None = None
    deliver_to: list[Sink] | None = None
    """Where each accepted file goes (spec.submissions.deliverTo)."""
    decrypt_with: str | None = None
    """spec.pgp.decryptWith: the Secret holding the platform's OpenPGP key pair
    (pgp-private-key.asc); every file is decrypted before it is checked."""

    @classmethod
    def of(cls, connection: str, spec: ConnectionSpec) -> Processed:
        own = spec.submissions.schema_ if spec.submissions is not None else None
        email = spec.email
        reply_to = (list(email.allowed_senders or ()) if email is not None
                    and email.reply_with_results else None)
        sinks = spec.submissions.deliver_to if spec.submissions is not None else None
        return cls(connection=connection, home=connection, data_type=spec.data_type,
                   schema=own, reply_to=reply_to, display_name=spec.display_name,
                   deliver_to=list(sinks) if sinks else None)

    def secret_names(self) -> set[str]:
        """The Secrets its sinks read (the processor pod mounts them)."""
        names: set[str] = set()
        if self.decrypt_with:
            names.add(self.decrypt_with)
        for sink in self.deliver_to or ():
            if sink.webhook is not None and sink.webhook.secret_ref is not None:
                names.add(sink.webhook.secret_ref.name)
            if sink.object_store is not None:
                names.add(sink.object_store.credentials_secret_ref.name)
        return names


class ProcessingTable(Model):
    version: Literal[1] = 1
    connections: list[Processed] = Field(default_factory=list)

    def render(self) -> str:
        # Sorted and stable, so that an unchanged table is not written again.
        ordered = sorted(self.connections, key=lambda c: c.connection)
        return ProcessingTable(connections=ordered).model_dump_json(by_alias=True, indent=1)

    @classmethod
    def parse(cls, text: str | bytes) -> ProcessingTable:
        return cls.model_validate_json(text)

    def shards(self) -> dict[int, ProcessingTable]:
        """The table split by Connection: only the shards that hold one."""
        return {shard: ProcessingTable(connections=entries) for shard, entries
                in shards.split(self.connections, lambda entry: entry.connection).items()}
