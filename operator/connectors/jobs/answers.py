"""Inbound Pull with remote.resultsTo Origin: the platform's answers go back to the
partner's folder, next to the files they answer.

The receipt of a file lands with it; its result file comes later, from the
namespace's processor. Each run uploads the receipts and results it has not
sent yet (the ledger keeps each version once: name, size, mtime), so a result
made after a run goes with the next one. The partner's folder never feeds them
back: receipt_ and result_ names are never fetched.
"""

from __future__ import annotations

import logging
import os

from ..landing.area import LandingArea
from ..landing.names import RESERVED_PREFIXES
from .clients.base import PushClient
from .ledger import Entry, Ledger

log = logging.getLogger("connectors.transfer")

ANSWERED = "answered"


def send_answers(client: PushClient, landing: LandingArea, ledger: Ledger) -> int:
    """Uploads the new receipts and results; returns how many."""
    sent = 0
    for entry in sorted(_answers(landing), key=lambda e: e.name):
        stat = entry.stat()
        key = (entry.name, stat.st_size, stat.st_mtime_ns)
        if ledger.has(ANSWERED, *key):
            continue
        client.upload(entry.name, landing.home / entry.name)
        ledger.record(Entry(ANSWERED, *key))
        sent += 1
    if sent:
        log.info("sent %d receipts and results to the partner's folder", sent)
    return sent


def _answers(landing: LandingArea) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(landing.home) as entries:
            return [e for e in entries
                    if e.name.startswith(RESERVED_PREFIXES) and e.is_file(follow_symlinks=False)]
    except FileNotFoundError:
        return []
