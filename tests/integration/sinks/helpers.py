"""Files and deliveries for the sink tests."""

from __future__ import annotations

import gzip
import hashlib
from pathlib import Path

from connectors.sinks import Delivery

CSV = b"ConversionId,Amount,Currency\n" + b"".join(
    f"C{n:05d},{n}.50,EUR\n".encode() for n in range(200))


def accepted_file(folder: Path, name: str = "conversions_2025-03-01.csv",
                  content: bytes = CSV, trace_id: str = "3f0c9a1e-trace-0001",
                  connection: str = "acme-conversions") -> Delivery:
    path = folder / name
    path.write_bytes(content)
    return Delivery(
        namespace="partners", connection=connection, data_type="Conversions", name=name,
        path=path, size=len(content), sha256=hashlib.sha256(content).hexdigest(),
        trace_id=trace_id, received_at="2025-03-01T10:00:00Z",
        checked_at="2025-03-01T10:00:02Z", rows_accepted=197, rows_rejected=3,
        submission_id=7)


def gzipped(folder: Path) -> Delivery:
    return accepted_file(folder, "conversions.csv.gz", gzip.compress(CSV), "trace-gz")


def big_file(path: Path, size: int) -> str:
    """A file of `size` bytes of CSV lines, written in pieces; its sha256."""
    digest = hashlib.sha256()
    line = b"C00000,12345.67,EUR,some padding to make the lines longer\n"
    block = line * (1 << 20 // len(line) + 1)
    written = 0
    with open(path, "wb") as handle:
        while written < size:
            piece = block[:size - written]
            handle.write(piece)
            digest.update(piece)
            written += len(piece)
    return digest.hexdigest()
