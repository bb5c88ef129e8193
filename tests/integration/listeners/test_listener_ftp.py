"""The FTP listener against curl and Python's ftplib (real clients, loopback)."""

from __future__ import annotations

import ftplib
import json
import os
import signal
import ssl
import subprocess
import time
from pathlib import Path

import pytest

from connectors.landing.names import TEMP_PREFIX
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Listener,
    Workspace,
    free_port,
    listener_fixture,
    need,
    self_signed,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)


def curl(listener: Listener, *args: str, user: str = "acme",
         password: str = PASSWORD) -> subprocess.CompletedProcess[str]:
    need("curl")
    return subprocess.run(
        # Never -v: it would print the password of the PASS command.
        ["curl", "-sS", "--max-time", "120", "--user", f"{user}:{password}", *args],
        capture_output=True, text=True, timeout=180, check=False,
        cwd=listener.workspace.root,
    )


def url(listener: Listener, path: str = "/") -> str:
    return f"ftp://127.0.0.1:{listener.port}{path}"


def login(listener: Listener, user: str = "acme", password: str = PASSWORD) -> ftplib.FTP:
    client = ftplib.FTP()  # noqa: S321 - plain FTP is the protocol under test
    client.connect("127.0.0.1", listener.port, timeout=60)
    client.login(user, password)
    return client


def temporaries(home: Path) -> list[str]:
    if not home.exists():
        return []
    return [p.name for p in home.iterdir() if p.name.startswith(TEMP_PREFIX)]


def visible(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir() if not p.name.startswith("."))


def test_upload_lands_with_receipt(ftp_listener: Listener) -> None:
    source = ftp_listener.workspace.root / "conversions_1.csv"
    source.write_bytes(b"id\n1\n")
    result = curl(ftp_listener, "-T", str(source), url(ftp_listener))
    assert result.returncode == 0, result.stderr
    home = ftp_listener.workspace.home("acme-conversions")
    assert (home / "conversions_1.csv").read_bytes() == b"id\n1\n"
    receipt = json.loads((home / "receipt_conversions_1.csv.txt").read_text())
    assert receipt["size"] == 5
    listing = curl(ftp_listener, "--list-only", url(ftp_listener))
    assert listing.stdout.split() == ["conversions_1.csv", "receipt_conversions_1.csv.txt"]
    back = curl(ftp_listener, url(ftp_listener, "/receipt_conversions_1.csv.txt"))
    assert json.loads(back.stdout)["name"] == "conversions_1.csv"
    assert temporaries(home) == []


@pytest.mark.parametrize(("name", "reason"), [
    ("other.csv", "does not match the filename pattern"),
    ("receipt_conversions_1.csv", "written by the platform"),
    (".hidden.csv", "outside the user's root directory"),
])
def test_refused_names(ftp_listener: Listener, name: str, reason: str) -> None:
    source = ftp_listener.workspace.root / "source.csv"
    source.write_bytes(b"x\n")
    result = curl(ftp_listener, "-T", str(source), url(ftp_listener, f"/{name}"))
    assert result.returncode != 0
    client = login(ftp_listener)
    try:
        with source.open("rb") as handle, pytest.raises(ftplib.error_perm, match=reason):
            client.storbinary(f"STOR {name}", handle)
    finally:
        client.close()
    assert visible(ftp_listener.workspace.home("acme-conversions")) == []


def test_other_changes_and_resume_are_refused(ftp_listener: Listener) -> None:
    home = ftp_listener.workspace.home("acme-conversions")
    home.mkdir(parents=True, exist_ok=True)
    (home / "conversions_0.csv").write_bytes(b"x\n")
    client = login(ftp_listener)
    try:
        for command in ["MKD newdir", "DELE conversions_0.csv", "RNFR conversions_0.csv",
                        "REST 10", "SITE CHMOD 777 conversions_0.csv"]:
            with pytest.raises(ftplib.error_perm):
                client.sendcmd(command)
        with pytest.raises(ftplib.error_perm):
            client.storbinary("APPE conversions_0.csv", open(os.devnull, "rb"))  # noqa: SIM115
        with pytest.raises(ftplib.error_perm):
            client.retrbinary("RETR conversions_0.csv", lambda _: None)
    finally:
        client.close()
    assert visible(home) == ["conversions_0.csv"]


def test_wrong_password_and_suspended_fail(ftp_listener: Listener) -> None:
    for user, password in [("acme", "wrong"), ("frozen", PASSWORD)]:
        with pytest.raises(ftplib.error_perm, match="530"):
            login(ftp_listener, user, password)


def test_paths_cannot_leave_the_home(ftp_listener: Listener, tmp_path: Path) -> None:
    other = tmp_path / "data" / "globex-reports"
    other.mkdir(parents=True)
    (other / "secret.txt").write_text("not yours")
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "secret.txt").write_text("not yours")
    home = ftp_listener.workspace.home("acme-conversions")
    home.mkdir(parents=True, exist_ok=True)
    (home / "link").symlink_to(outside)
    client = login(ftp_listener)
    try:
        for path in ["../globex-reports/secret.txt", "/../../etc/passwd",
                     "link/secret.txt", ".connectors/x"]:
            with pytest.raises(ftplib.error_perm):
                client.retrbinary(f"RETR {path}", lambda _: None)
        client.cwd("../..")
        assert client.pwd() == "/"
        assert "secret.txt" not in client.nlst()
        with pytest.raises(ftplib.error_perm):
            client.nlst("link")
        with pytest.raises(ftplib.error_perm):
            client.cwd("link")
    finally:
        client.close()


def test_outbound_account_downloads(ftp_listener: Listener) -> None:
    home = ftp_listener.workspace.home("globex-reports")
    home.mkdir(parents=True)
    (home / "report_1.csv").write_bytes(b"r\n")
    got = curl(ftp_listener, url(ftp_listener, "/report_1.csv"), user="globex")
    assert got.returncode == 0, got.stderr
    assert got.stdout == "r\n"
    source = ftp_listener.workspace.root / "up.csv"
    source.write_bytes(b"u\n")
    assert curl(ftp_listener, "-T", str(source), url(ftp_listener), user="globex").returncode != 0
    assert visible(home) == ["report_1.csv"]


def test_killed_client_leaves_nothing(ftp_listener: Listener) -> None:
    need("curl")
    root = ftp_listener.workspace.root
    source = root / "conversions_big.csv"
    with source.open("wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(1024 * 1024))
    home = ftp_listener.workspace.home("acme-conversions")
    process = subprocess.Popen(
        ["curl", "-sS", "--limit-rate", "2M", "--user", f"acme:{PASSWORD}", "-T", str(source),
         url(ftp_listener)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )

    def partially_written() -> bool:
        return any((home / n).stat().st_size > 2 * 1024 * 1024 for n in temporaries(home))

    try:
        wait_until(partially_written, message="the upload to start")
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    wait_until(lambda: temporaries(home) == [], message="the temporary file to go")
    assert visible(home) == []


def test_ftps_explicit_and_required(workspace: Workspace) -> None:
    cert, key = self_signed(workspace.root)
    gen = listener_fixture(workspace, "ftp", "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), "--require-tls")
    listener = next(gen)
    try:
        source = workspace.root / "conversions_tls.csv"
        source.write_bytes(b"secure\n")
        plain = curl(listener, "-T", str(source), url(listener))
        assert plain.returncode != 0
        secured = curl(listener, "--ssl-reqd", "--cacert", str(cert), "-T", str(source),
                       url(listener))
        assert secured.returncode == 0, secured.stderr
        assert (workspace.home("acme-conversions") / "conversions_tls.csv").read_bytes() == (
            b"secure\n")
        back = curl(listener, "--ssl-reqd", "--cacert", str(cert),
                    url(listener, "/receipt_conversions_tls.csv.txt"))
        assert json.loads(back.stdout)["size"] == 7
    finally:
        gen.close()


def test_plain_ftp_only_for_logins_that_opted_in(workspace: Workspace) -> None:
    """With --require-tls, a login whose Connections all set allowPlainFtp may skip
    TLS; every other login is refused before its password is sent, with one
    message for known and unknown names alike; a TLS login still needs PROT P."""
    accounts = workspace.default_accounts()
    plain = accounts[0].model_copy(update={
        "username": "legacy", "connection": "legacy-conversions",
        "home": "legacy-conversions", "plain_ftp": True})
    workspace.write_accounts([*accounts, plain])
    cert, key = self_signed(workspace.root)
    gen = listener_fixture(workspace, "ftp", "--tls-cert-file", str(cert),
                           "--tls-key-file", str(key), "--require-tls")
    listener = next(gen)
    try:
        source = workspace.root / "conversions_plain.csv"
        source.write_bytes(b"legacy client\n")
        sent = curl(listener, "-T", str(source), url(listener), user="legacy")
        assert sent.returncode == 0, sent.stderr
        assert (workspace.home("legacy-conversions") / "conversions_plain.csv").read_bytes() == (
            b"legacy client\n")

        replies = []
        for user in ("acme", "nobody"):
            client = ftplib.FTP()  # noqa: S321 - the refusal of plain FTP is under test
            client.connect("127.0.0.1", listener.port, timeout=60)
            with pytest.raises(ftplib.error_perm) as refused:
                client.sendcmd(f"USER {user}")
            replies.append(str(refused.value))
            client.close()
        assert replies[0] == replies[1]
        assert replies[0].startswith("530")
        assert "AUTH TLS" in replies[0]

        secured = ftplib.FTP_TLS(context=_trusting(cert))  # noqa: S321 - explicit FTPS
        secured.connect("127.0.0.1", listener.port, timeout=60)
        secured.login("acme", PASSWORD)  # AUTH TLS, then USER and PASS
        with pytest.raises(ftplib.error_perm, match=r"^522.*PROT P"):
            secured.nlst()
        secured.prot_p()
        assert "receipt_conversions_plain.csv.txt" not in secured.nlst()
        secured.quit()
    finally:
        gen.close()


def _trusting(cert: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False
    return context


def test_exhausted_passive_range_refuses(workspace: Workspace) -> None:
    port = free_port()
    gen = listener_fixture(workspace, "ftp", "--passive-ports", f"{port}-{port}",
                           "--masquerade-address", "127.0.0.1")
    listener = next(gen)
    first = login(listener)
    second = login(listener)
    try:
        _, passive = first.makepasv()  # holds the only passive port
        assert passive == port
        with pytest.raises(ftplib.error_temp, match="425"):
            second.sendcmd("PASV")
        with pytest.raises(ftplib.error_temp, match="425"):
            second.sendcmd("EPSV")
    finally:
        first.close()
        second.close()
        gen.close()


def test_brute_force_is_banned(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "ftp", "--ban-address-failures", "2",
                           "--ban-seconds", "600")
    listener = next(gen)
    try:
        for _ in range(2):
            with pytest.raises(ftplib.error_perm):
                login(listener, "acme", "guess")
        # Banned: even the right password from this address is turned away.
        with pytest.raises((ftplib.error_temp, ftplib.error_perm, EOFError, OSError)):
            login(listener, "acme", PASSWORD)
    finally:
        gen.close()


def test_sessions_per_account_are_limited(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "ftp", "--max-sessions-per-account", "1")
    listener = next(gen)
    first = login(listener)
    try:
        with pytest.raises(ftplib.error_perm, match="Too many sessions"):
            login(listener)
        first.quit()

        def slot_free() -> bool:
            try:
                login(listener).quit()
            except ftplib.error_perm:
                return False
            return True

        wait_until(slot_free, message="the session slot to be released")
    finally:
        first.close()
        gen.close()


def test_idle_sessions_are_closed(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "ftp", "--idle-timeout", "2")
    listener = next(gen)
    client = login(listener)
    try:
        def closed_by_server() -> bool:
            try:
                client.voidcmd("NOOP")
            except (ftplib.Error, OSError, EOFError):
                return True
            return False

        def idle_then_closed() -> bool:
            # NOOP itself is activity: stay quiet longer than the timeout first.
            time.sleep(3)
            return closed_by_server()

        wait_until(idle_then_closed, message="the idle session to close")
    finally:
        client.close()
        gen.close()
