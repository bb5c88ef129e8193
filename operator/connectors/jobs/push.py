"""Outbound Push (SFTP, FTP, Email): deliver the files waiting in the outbox,
each once, then move them to sent/."""

from __future__ import annotations

import functools
import logging
import os

from ..landing.area import LandingArea
from ..landing.durable import hash_file
from ..landing.names import is_hidden
from .clients.base import PushClient
from .ledger import SENDING, SENT, Entry, Ledger
from .plan import OutboxFile, plan_push
from .pull import per_file
from .spec import TransferSpec
from .summary import Summary

log = logging.getLogger("connectors.transfer")


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
    spec: TransferSpec,
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
