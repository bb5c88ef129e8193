"""Landing in batches: how a transfer job lands the files it fetched.

Files received in full (`LandingFile.finish()`) wait for their batch; the
batch lands at once: a free name for each (a landed file is never
overwritten: a name that is taken lands as `stem-2.ext`...), its receipt
drafted, one sync for all files and receipts, the renames, one fsync of the
folder, then the receipts published. A file that cannot land is refused on
its own; the others of its batch land.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..clock import now_rfc3339
from ..errors import describe
from .area import LandingArea
from .durable import fsync_dir, publish, remove, rename_no_replace, sync_files
from .names import FreeNames, NoLandingName, receipt_name
from .receive import Received


@dataclass(frozen=True)
class Landed:
    received: Received
    name: str
    """The name it landed under."""
    receipt_temp: str


def land_many(
    area: LandingArea,
    batch: Sequence[tuple[Received, str]],
    refused: Callable[[Received, str], None],
) -> list[Landed]:
    """Lands each (received file, source) of `batch`; returns those landed, in
    order. A file that cannot land is removed and reported to `refused` with
    the reason, at once. On an error that concerns the whole batch (the sync)
    nothing is left behind and the error propagates."""
    if not batch:
        return []
    names = FreeNames(area.home_str)
    received_at = now_rfc3339()  # the batch lands at once
    planned: list[Landed] = []
    try:
        for received, source in batch:
            try:
                final = names.choose(received.name)
                _, receipt_temp = area.draft_receipt(
                    final, received.size, received.sha256, received_at, source
                )
            except NoLandingName as exc:
                remove(received.temp)
                refused(received, str(exc))
                continue
            planned.append(Landed(received, final, receipt_temp))
        # One wave of fsyncs for files and receipts alike.
        sync_files([path for item in planned for path in (item.received.temp, item.receipt_temp)])
    except BaseException:
        for item in planned:
            remove(item.receipt_temp)
        for received, _ in batch:
            remove(received.temp)
        raise
    landed: list[Landed] = []
    for item in planned:
        try:
            rename_no_replace(item.received.temp, area.final_name(item.name))
        except OSError as exc:
            remove(item.receipt_temp)
            remove(item.received.temp)
            refused(item.received,
                    f"{item.received.name}: cannot land as {item.name}: {describe(exc)}")
            continue
        landed.append(item)
    if not landed:
        return []
    fsync_dir(area.home_str)
    return landed


def publish_receipts(area: LandingArea, landed: Sequence[Landed]) -> None:
    """Renames the receipts of landed files into place (one fsync of the
    folder). Apart from land_many, so that a job can publish them before it
    records the files in its ledger."""
    publish([(item.receipt_temp, area.final_name(receipt_name(item.name))) for item in landed])
