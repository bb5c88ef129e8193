"""Outbound Pull: what a partner sees and downloads from the listener, with
real clients (OpenSSH sftp, curl).

A partner sees only the Connection's files (its filenamePattern): a file the
platform keeps beside them is as if absent, to listing, stat and download
alike. A whole download is reported, and with deleteAfterDownload the file
goes; a partial one changes nothing."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Listener,
    Workspace,
    listener_fixture,
    wait_until,
)
from tests.integration.listeners.test_listener_ftp import curl, url
from tests.integration.listeners.test_listener_sftp import paramiko_client, sftp

pytestmark = pytest.mark.timeout(300)


def outbound(workspace: Workspace, *, delete_after_download: bool) -> Path:
    accounts = []
    for account in workspace.default_accounts():
        if account.username == "globex":
            account = account.model_copy(update={
                "filename_pattern": "report_*.csv",
                "delete_after_download": delete_after_download})
        accounts.append(account)
    workspace.write_accounts(accounts)
    home = workspace.home("globex-reports")
    home.mkdir(parents=True)
    (home / "report_1.csv").write_bytes(b"r1\n")
    (home / "report_2.csv").write_bytes(b"r2\n" * 100_000)
    (home / "internal.txt").write_bytes(b"platform only\n")
    return home


@pytest.fixture(params=["sftp", "ftp"])
def protocol(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def keeping(workspace: Workspace, protocol: str) -> Iterator[tuple[Listener, Path]]:
    home = outbound(workspace, delete_after_download=False)
    yield from ((listener, home) for listener in listener_fixture(workspace, protocol))


@pytest.fixture
def deleting(workspace: Workspace, protocol: str) -> Iterator[tuple[Listener, Path]]:
    home = outbound(workspace, delete_after_download=True)
    yield from ((listener, home) for listener in listener_fixture(workspace, protocol))


def listing(listener: Listener) -> list[str]:
    if listener.protocol == "sftp":
        got = sftp(listener, "globex", "ls -1a")
        assert got.returncode == 0, got.stderr
        return sorted(line.strip() for line in got.stdout.splitlines()[1:]
                      if line.strip() not in ("", ".", ".."))
    got = curl(listener, "--list-only", url(listener), user="globex")
    assert got.returncode == 0, got.stderr
    return sorted(got.stdout.split())


def download(listener: Listener, name: str) -> subprocess.CompletedProcess[str]:
    target = listener.workspace.root / f"got_{name}"
    target.unlink(missing_ok=True)
    if listener.protocol == "sftp":
        return sftp(listener, "globex", f"get {name} {target.name}")
    return curl(listener, "-o", str(target), url(listener, f"/{name}"), user="globex")


def test_partner_sees_only_the_connections_files(keeping: tuple[Listener, Path]) -> None:
    listener, home = keeping
    assert listing(listener) == ["report_1.csv", "report_2.csv"]
    assert download(listener, "internal.txt").returncode != 0
    assert not (listener.workspace.root / "got_internal.txt").exists()
    if listener.protocol == "sftp":
        stat = sftp(listener, "globex", "ls -l internal.txt")
        assert stat.returncode != 0
        assert "not found" in stat.stderr
    else:
        size = curl(listener, "-I", url(listener, "/internal.txt"), user="globex")
        assert size.returncode != 0
    got = download(listener, "report_2.csv")
    assert got.returncode == 0, got.stderr
    assert (listener.workspace.root / "got_report_2.csv").read_bytes() == b"r2\n" * 100_000
    # Kept by default, and the download is reported.
    assert (home / "report_2.csv").exists()
    wait_until(lambda: "downloaded connection=globex-reports name=report_2.csv"
               in listener.log_text(), message="the download report")


def test_delete_after_download(deleting: tuple[Listener, Path]) -> None:
    listener, home = deleting
    got = download(listener, "report_1.csv")
    assert got.returncode == 0, got.stderr
    assert (listener.workspace.root / "got_report_1.csv").read_bytes() == b"r1\n"
    wait_until(lambda: not (home / "report_1.csv").exists(), message="the file to go")
    assert (home / "report_2.csv").exists()
    assert (home / "internal.txt").exists()
    assert listing(listener) == ["report_2.csv"]


def test_partial_download_keeps_the_file(workspace: Workspace) -> None:
    """A download the partner stops half way is not a download: the file stays."""
    home = outbound(workspace, delete_after_download=True)
    for listener in listener_fixture(workspace, "sftp"):
        client = paramiko_client(listener, "globex", PASSWORD)
        try:
            with client.open_sftp().open("report_2.csv", "r") as handle:
                assert handle.read(1000) == (b"r2\n" * 400)[:1000]
        finally:
            client.close()
        got = download(listener, "report_1.csv")
        assert got.returncode == 0, got.stderr
        wait_until(lambda: not (home / "report_1.csv").exists(), message="report_1 to go")
        assert (home / "report_2.csv").stat().st_size == 300_000
        assert "name=report_2.csv" not in listener.log_text()
