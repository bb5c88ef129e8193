"""Pieces of the transfer jobs that need no server: failure wording, free
landing names, landing without overwriting, the FTP name round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.errors import describe
from connectors.jobs.clients.base import FileError, TransientError, decode_name, shown_name
from connectors.jobs.clients.ftp import from_wire, wire
from connectors.jobs.clients.sftp import _classify
from connectors.landing.durable import rename_no_replace
from connectors.landing.names import FreeNames, NoLandingName, name_variants


@pytest.mark.parametrize(
    ("exc", "text"),
    [
        (EOFError(), "EOFError"),
        (TimeoutError(), "TimeoutError"),
        (ConnectionResetError(), "ConnectionResetError"),
        (OSError(""), "OSError"),
        (ValueError("bad size"), "bad size"),
    ],
)
def test_describe_never_returns_an_empty_cause(exc: BaseException, text: str) -> None:
    assert describe(exc) == text


def test_sftp_session_loss_is_transient_and_a_refusal_concerns_the_file() -> None:
    assert isinstance(_classify(EOFError(), False, "uploading a"), TransientError)
    assert isinstance(_classify(OSError("Failure"), True, "uploading a"), TransientError)
    assert isinstance(_classify(ConnectionResetError(104, "reset"), False, "x"), TransientError)
    refused = _classify(OSError("Failure"), False, "uploading a")
    assert isinstance(refused, FileError)
    assert str(refused) == "uploading a: Failure"
    assert str(_classify(OSError(), False, "uploading a")) == "uploading a: OSError"


def test_remote_names_round_trip_as_bytes() -> None:
    raw = b"conversions_caf\xe9.csv"
    assert decode_name(raw) is None
    assert shown_name(raw) == "conversions_caf\\xe9.csv"
    assert decode_name("café.csv".encode()) == "café.csv"
    assert from_wire(wire("café.csv")) == "café.csv".encode()


def test_name_variants() -> None:
    variants = name_variants("daily_report.csv")
    assert [next(variants) for _ in range(3)] == [
        "daily_report.csv",
        "daily_report-2.csv",
        "daily_report-3.csv",
    ]
    assert list(zip(range(2), name_variants(".hidden"), strict=False))[1][1] == ".hidden-2"
    assert list(zip(range(2), name_variants("noext"), strict=False))[1][1] == "noext-2"


def test_free_names_avoid_files_receipts_and_each_other(tmp_path: Path) -> None:
    (tmp_path / "a.csv").write_text("landed")
    (tmp_path / "receipt_a-2.csv.txt").write_text("an older receipt")
    (tmp_path / "b.csv").mkdir()
    names = FreeNames(str(tmp_path))
    assert names.choose("a.csv") == "a-3.csv"
    assert names.choose("a.csv") == "a-4.csv"
    assert names.choose("b.csv") == "b-2.csv"
    assert names.choose("c.csv") == "c.csv"
    with pytest.raises(NoLandingName, match="too long"):
        names.choose("x" * 250 + ".csv")


def test_rename_never_replaces(tmp_path: Path) -> None:
    source, target = tmp_path / "temp", tmp_path / "landed"
    source.write_text("new")
    target.write_text("old")
    with pytest.raises(FileExistsError):
        rename_no_replace(str(source), str(target))
    assert target.read_text() == "old"
    assert source.exists()
    other = tmp_path / "free"
    rename_no_replace(str(source), str(other))
    assert other.read_text() == "new"
    assert not source.exists()
