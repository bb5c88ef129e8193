"""Outbound Push (SFTP, FTP, Email): deliver the files waiting in the outbox,
each once, then move them to sent/.

With spec.pgp.encryptTo each file is first encrypted to the partner's OpenPGP
public key into <landing>/.connectors/encrypted/ and that copy is sent as
<name>.pgp; a file that cannot be encrypted fails alone and is never sent in
clear. The copy is kept until the file is recorded as sent, so a run cut off
during an upload checks the partner's <name>.pgp against the very bytes it was
sending (encryption is not deterministic: a new copy would never match)."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import logging
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from ..errors import describe
from ..landing.area import LandingArea
from ..landing.durable import hash_file
from ..landing.names import is_hidden
from .clients.base import FileError, PushClient
from .ledger import SENDING, SENT, Entry, Ledger
from .plan import OutboxFile, plan_push
from .pull import per_file
from .spec import TransferSpec
from .summary import Summary

log = logging.getLogger("connectors.transfer")

ENCRYPTED_SUFFIX = ".pgp"


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


class Encryption:
    """The encrypted copies of outbox files, one per version (name, size, mtime)."""

    def __init__(self, landing: LandingArea, public_key: str) -> None:
        self.landing = landing
        self.public_key = public_key
        self.folder = landing.internal / "encrypted"

    @staticmethod
    def remote_name(file: OutboxFile) -> str:
        return file.name + ENCRYPTED_SUFFIX

    def path(self, file: OutboxFile) -> Path:
        version = f"{file.name}\0{file.size}\0{file.mtime}".encode("utf-8", "surrogateescape")
        return self.folder / f"{hashlib.sha256(version).hexdigest()[:32]}{ENCRYPTED_SUFFIX}"

    def size_of(self, file: OutboxFile) -> int | None:
        """The size of the copy an earlier run made and may have sent, if any."""
        try:
            return self.path(file).stat().st_size
        except FileNotFoundError:
            return None

    def encrypted(self, file: OutboxFile) -> Path:
        """The encrypted copy of `file`, made now unless an earlier attempt made it."""
        from .. import pgp

        target = self.path(file)
        if target.is_file():
            return target
        self.folder.mkdir(mode=0o750, parents=True, exist_ok=True)
        try:
            pgp.encrypt_file(self.landing.outbox / file.name, target, self.public_key)
        except pgp.PgpError as exc:
            raise FileError(f"{file.name}: not sent: encrypting it to the partner's OpenPGP "
                            f"key failed: {exc}") from None
        except OSError as exc:
            raise FileError(f"{file.name}: not sent: it could not be read to encrypt it: "
                            f"{describe(exc)}") from None
        return target

    def discard(self, file: OutboxFile) -> None:
        self.path(file).unlink(missing_ok=True)

    def keep_only(self, files: Iterable[OutboxFile]) -> None:
        """Removes copies that no file still needs (sent, changed or gone, and
        temporaries of a run that was killed)."""
        if not self.folder.is_dir():
            return
        wanted = {self.path(f).name for f in files}
        for entry in self.folder.iterdir():
            if entry.name not in wanted:
                with contextlib.suppress(OSError):
                    entry.unlink()


def push(
    client: PushClient,
    spec: TransferSpec,
    landing: LandingArea,
    ledger: Ledger,
    summary: Summary,
    encrypt_to: str | None = None,
) -> None:
    """`encrypt_to`: the partner's armored OpenPGP public key (spec.pgp.encryptTo)."""
    encryption = Encryption(landing, encrypt_to) if encrypt_to else None
    plan = plan_push(outbox_files(landing), ledger.has, spec.filename_pattern)
    summary.skip(plan.skipped)
    if encryption is not None:
        encryption.keep_only(plan.uncertain)
    for file in plan.finish:
        move_to_sent(landing, file)
    send = functools.partial(send_one, client, landing=landing, ledger=ledger,
                             summary=summary, encryption=encryption)
    for file in plan.uncertain:
        key = (file.name, file.size, file.mtime)
        expected: int | None
        if encryption is None:
            remote_name, expected = file.name, file.size
        else:
            remote_name, expected = Encryption.remote_name(file), encryption.size_of(file)
        if expected is not None and client.remote_size(remote_name) == expected:
            # The upload completed before the previous run died.
            ledger.record(Entry(SENT, *key, note="found on the remote"
                                if encryption is None else f"found on the remote as {remote_name}"))
            move_to_sent(landing, file)
            if encryption is not None:
                encryption.discard(file)
        else:
            per_file(summary, functools.partial(send, file))
    if encryption is None:
        for start in range(0, len(plan.send), BATCH):
            send_batch(client, plan.send[start:start + BATCH], landing=landing, ledger=ledger,
                       summary=summary)
    else:
        for file in plan.send:
            per_file(summary, functools.partial(send, file))


# Files whose ledger records share one write and one fsync: the records before
# and after their uploads cost two fsyncs per file otherwise, four times the
# time OpenSSH's `put -r` takes for a small file.
BATCH = 64


def send_batch(client: PushClient, files: Sequence[OutboxFile], *, landing: LandingArea,
               ledger: Ledger, summary: Summary) -> None:
    """Sends files not encrypted, as send_one does, with their ledger records
    written together: SENDING for all before the first upload, SENT for those
    sent after the last. A run cut off in between finds them SENDING and asks
    the remote for each one's size (push), so none is sent twice or lost."""
    sending = [Entry(SENDING, f.name, f.size, f.mtime) for f in files
               if not ledger.has(SENDING, f.name, f.size, f.mtime)]
    if sending:
        ledger.record_many(sending)
    sent: list[OutboxFile] = []
    for file in files:
        def upload(file: OutboxFile = file) -> None:
            client.upload(file.name, landing.outbox / file.name)
            sent.append(file)
        per_file(summary, upload)
    if sent:
        ledger.record_many([Entry(SENT, f.name, f.size, f.mtime,
                                  sha256=hash_file(landing.outbox / f.name)) for f in sent])
    for file in sent:
        move_to_sent(landing, file)
        log.info("sent %s (%d bytes)", file.name, file.size)
        summary.transferred(file.size)


def send_one(
    client: PushClient, file: OutboxFile, *, landing: LandingArea, ledger: Ledger,
    summary: Summary, encryption: Encryption | None = None,
) -> None:
    key = (file.name, file.size, file.mtime)
    path = landing.outbox / file.name
    if encryption is None:
        upload, remote_name, note = path, file.name, ""
    else:
        # Before SENDING is recorded: a file that cannot be encrypted was never sending.
        upload, remote_name = encryption.encrypted(file), Encryption.remote_name(file)
        note = f"sent as {remote_name}, encrypted to the partner's OpenPGP key"
    if not ledger.has(SENDING, *key):
        ledger.record(Entry(SENDING, *key, note=note))
    client.upload(remote_name, upload)
    sent_bytes = file.size if encryption is None else upload.stat().st_size
    ledger.record(Entry(SENT, *key, sha256=hash_file(path), note=note))
    move_to_sent(landing, file)
    if encryption is not None:
        encryption.discard(file)
        log.info("sent %s as %s (%d bytes encrypted from %d)", file.name, remote_name,
                 sent_bytes, file.size)
    else:
        log.info("sent %s (%d bytes)", file.name, file.size)
    summary.transferred(sent_bytes)
