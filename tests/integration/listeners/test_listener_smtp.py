"""The SMTP listener against swaks (real client, loopback)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.integration.listeners.listener_harness import (
    MAIL_PASSWORD,
    Listener,
    Workspace,
    listener_fixture,
    need,
    self_signed,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)

ADDRESS = "acme-mail@partners.example"


def swaks(listener: Listener, *args: str, to: str = ADDRESS, user: str | None = "mailer",
          password: str = MAIL_PASSWORD) -> subprocess.CompletedProcess[str]:
    need("swaks")
    auth = ["--auth", "PLAIN", "--auth-user", user, "--auth-password", password] if user else []
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{listener.port}", "--to", to,
         "--from", "partner@acme.example", "--timeout", "60",
         # Hide what swaks sends: the AUTH line's base64 carries the password.
         "--hide-send", *auth, *args],
        capture_output=True, text=True, timeout=120, check=False,
        cwd=listener.workspace.root,
    )


def files(workspace: Workspace) -> list[str]:
    home = workspace.home("acme-mail")
    return sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) if (
        home.exists()) else []


def attachment(workspace: Workspace, name: str, content: bytes = b"a,b\n1,2\n") -> str:
    path = workspace.root / name
    path.write_bytes(content)
    return name


def test_attachment_lands_with_receipt(smtp_listener: Listener, workspace: Workspace) -> None:
    result = swaks(smtp_listener, "--attach", attachment(workspace, "report_1.csv"))
    assert result.returncode == 0, result.stdout
    assert "1 file(s) received" in result.stdout
    assert files(workspace) == ["receipt_report_1.csv.txt", "report_1.csv"]
    home = workspace.home("acme-mail")
    assert (home / "report_1.csv").read_bytes() == b"a,b\n1,2\n"
    assert json.loads((home / "receipt_report_1.csv.txt").read_text())["size"] == 8


def test_one_bad_attachment_ignores_the_whole_message(
    smtp_listener: Listener, workspace: Workspace
) -> None:
    result = swaks(smtp_listener, "--attach", attachment(workspace, "report_2.csv"),
                   "--attach", attachment(workspace, "notes.txt"))
    assert result.returncode != 0
    assert "Message ignored" in result.stdout
    assert "notes.txt" in result.stdout
    assert files(workspace) == []
    assert "message ignored" in smtp_listener.log_text()


def test_reserved_attachments_are_skipped(smtp_listener: Listener, workspace: Workspace) -> None:
    result = swaks(smtp_listener, "--attach", attachment(workspace, "report_3.csv"),
                   "--attach", attachment(workspace, "receipt_report_3.csv.txt", b"forged"))
    assert result.returncode == 0, result.stdout
    receipt = json.loads((workspace.home("acme-mail") / "receipt_report_3.csv.txt").read_text())
    assert receipt["name"] == "report_3.csv"  # ours, not the forged one


def test_message_without_attachment_is_ignored(smtp_listener: Listener,
                                               workspace: Workspace) -> None:
    result = swaks(smtp_listener, "--body", "no files today")
    assert result.returncode != 0
    assert "no attachment" in result.stdout
    assert files(workspace) == []


def test_file_names_are_sanitised(smtp_listener: Listener, workspace: Workspace) -> None:
    source = attachment(workspace, "plain.csv")
    # swaks applies --attach-name to the --attach that follows it.
    result = swaks(smtp_listener, "--attach-name", "..\\..\\evil/../report_4.csv",
                   "--attach", source)
    assert result.returncode == 0, result.stdout
    assert files(workspace) == ["receipt_report_4.csv.txt", "report_4.csv"]
    assert not (workspace.data / "report_4.csv").exists()


def test_wrong_password_and_missing_auth_are_refused(smtp_listener: Listener,
                                                     workspace: Workspace) -> None:
    name = attachment(workspace, "report_5.csv")
    wrong = swaks(smtp_listener, "--attach", name, password="wrong")
    assert wrong.returncode != 0
    assert "535" in wrong.stdout
    anonymous = swaks(smtp_listener, "--attach", name, user=None)
    assert anonymous.returncode != 0
    assert "530" in anonymous.stdout
    assert files(workspace) == []


def test_only_own_connection_address(smtp_listener: Listener, workspace: Workspace) -> None:
    name = attachment(workspace, "report_6.csv")
    for to in ["acme-conversions@partners.example", "acme-mail@elsewhere.example"]:
        result = swaks(smtp_listener, "--attach", name, to=to)
        assert result.returncode != 0
        assert "550" in result.stdout
    assert files(workspace) == []
    assert not workspace.home("acme-conversions").exists() or not any(
        p.name == "report_6.csv" for p in workspace.home("acme-conversions").iterdir())


def test_size_and_part_limits(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "smtp", "--domain", "partners.example",
                           "--max-message-bytes", "20000", "--max-parts", "3")
    listener = next(gen)
    try:
        big = swaks(listener, "--attach", attachment(workspace, "report_7.csv", b"x" * 50_000))
        assert big.returncode != 0
        assert "552" in big.stdout
        many = swaks(listener, *[arg for i in range(3) for arg in (
            "--attach", attachment(workspace, f"report_8{i}.csv"))])
        assert many.returncode != 0
        assert "too many MIME parts" in many.stdout
        assert files(workspace) == []
    finally:
        gen.close()


def test_auth_only_after_starttls(workspace: Workspace) -> None:
    cert, key = self_signed(workspace.root)
    gen = listener_fixture(workspace, "smtp", "--domain", "partners.example",
                           "--tls-cert-file", str(cert), "--tls-key-file", str(key))
    listener = next(gen)
    try:
        name = attachment(workspace, "report_9.csv")
        clear = swaks(listener, "--attach", name)
        assert clear.returncode != 0
        assert files(workspace) == []
        secured = swaks(listener, "--tls", "--attach", name)
        assert secured.returncode == 0, secured.stdout
        assert "report_9.csv" in files(workspace)
    finally:
        gen.close()


def test_brute_force_is_banned(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "smtp", "--domain", "partners.example",
                           "--ban-address-failures", "2", "--ban-seconds", "600")
    listener = next(gen)
    try:
        name = attachment(workspace, "report_10.csv")
        for _ in range(2):
            assert swaks(listener, "--attach", name, password="guess").returncode != 0
        banned = swaks(listener, "--attach", name)
        assert banned.returncode != 0
        assert files(workspace) == []
    finally:
        gen.close()


def test_suspended_account_cannot_send(smtp_listener: Listener, workspace: Workspace) -> None:
    accounts = [a.model_copy(update={"suspended": True}) if a.username == "mailer" else a
                for a in workspace.default_accounts()]
    workspace.write_accounts(accounts)
    name = attachment(workspace, "report_11.csv")

    def refused() -> bool:
        return swaks(smtp_listener, "--attach", name).returncode != 0

    wait_until(refused, message="the suspension to take effect")
    before = files(workspace)
    assert swaks(smtp_listener, "--attach", name).returncode != 0
    assert files(workspace) == before


def test_require_tls_refuses_mail_before_starttls(workspace: Workspace) -> None:
    cert, key = self_signed(workspace.root)
    gen = listener_fixture(workspace, "smtp", "--domain", "partners.example",
                           "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                           "--require-tls")
    listener = next(gen)
    try:
        name = attachment(workspace, "report_12.csv")
        clear = swaks(listener, "--attach", name, user=None)
        assert clear.returncode != 0
        assert "STARTTLS" in clear.stdout
        secured = swaks(listener, "--tls", "--attach", name)
        assert secured.returncode == 0, secured.stdout
        assert "report_12.csv" in files(workspace)
    finally:
        gen.close()
