"""The one receive path as the transfer jobs use it: a LandingFile that gathers
its writes, finished without a sync, landed in a batch under free names."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from connectors.landing.area import LandingArea
from connectors.landing.batch import land_many, publish_receipts
from connectors.landing.receive import LandingFile, Received


def area(tmp_path: Path) -> LandingArea:
    landing = LandingArea(tmp_path, "acme")
    landing.ensure()
    return landing


@pytest.mark.parametrize("gather", [0, 10, 1 << 20])
def test_gathered_writes_land_whole_and_hashed(tmp_path: Path, gather: int) -> None:
    landing = area(tmp_path)
    incoming = LandingFile(landing, "a.csv", gather_bytes=gather)
    buffer = bytearray(7)
    data = b""
    for i in range(30):
        buffer[:] = bytes([65 + i % 26]) * 7
        incoming.write(memoryview(buffer))  # the caller reuses its buffer
        data += bytes(buffer)
    received = incoming.finish(mtime=1_700_000_000)
    assert received == Received("a.csv", received.temp, len(data),
                                hashlib.sha256(data).hexdigest())
    assert Path(received.temp).read_bytes() == data
    assert int(os.stat(received.temp).st_mtime) == 1_700_000_000


def test_a_write_out_of_order_after_gathered_ones_is_hashed_from_the_file(
        tmp_path: Path) -> None:
    incoming = LandingFile(area(tmp_path), "b.csv", gather_bytes=1 << 20)
    incoming.write(b"hello ")
    incoming.pwrite(0, b"HELLO")
    incoming.write(b"world")
    received = incoming.finish()
    assert Path(received.temp).read_bytes() == b"HELLO world"
    assert received.sha256 == hashlib.sha256(b"HELLO world").hexdigest()


def test_abort_leaves_nothing(tmp_path: Path) -> None:
    landing = area(tmp_path)
    incoming = LandingFile(landing, "c.csv", gather_bytes=1 << 20)
    incoming.write(b"partial")
    incoming.abort()
    assert list(landing.home.iterdir()) == [landing.internal]


def test_a_batch_lands_under_free_names_with_receipts_naming_the_source(
        tmp_path: Path) -> None:
    landing = area(tmp_path)
    (landing.home / "a.csv").write_text("landed before")
    batch = []
    for name, body in (("a.csv", b"new a"), ("b.csv", b"b"), ("x" * 250 + ".csv", b"long")):
        incoming = LandingFile(landing, name, gather_bytes=1 << 20)
        incoming.write(body)
        batch.append((incoming.finish(), f"sftp://partner/{name}"))
    refused: list[tuple[str, str]] = []
    landed = land_many(landing, batch, lambda r, why: refused.append((r.name, why)))
    publish_receipts(landing, landed)
    assert [item.name for item in landed] == ["a-2.csv", "b.csv"]
    assert (landing.home / "a.csv").read_text() == "landed before"
    assert (landing.home / "a-2.csv").read_bytes() == b"new a"
    receipt = json.loads((landing.home / "receipt_a-2.csv.txt").read_text())
    assert receipt["source"] == "sftp://partner/a.csv"
    assert receipt["name"] == "a-2.csv"
    assert receipt["sha256"] == hashlib.sha256(b"new a").hexdigest()
    assert len(refused) == 1
    assert "too long" in refused[0][1]
    leftovers = [p for p in landing.home.iterdir() if p.name.startswith(".upload-")]
    assert leftovers == []
