"""The SMTP listener's submission port against real clients on loopback:
swaks, msmtp and python's smtplib. AUTH only ever happens after STARTTLS, and
only on the submission port; what lands follows the same rules on both ports.
test_listener_smtp_mx.py holds the mail exchanger port (no login) and
test_listener_smtp_tls.py the TLS of both."""

from __future__ import annotations

import json
import smtplib

import pytest

from tests.integration.listeners.listener_harness import (
    MAIL_PASSWORD,
    Workspace,
    free_port,
    listener_fixture,
    wait_for_port,
    wait_until,
)
from tests.integration.listeners.smtp_support import (
    ADDRESS,
    DOMAIN,
    SENDER,
    TlsListener,
    attachment,
    close,
    connect,
    drop,
    logged_in,
    message,
    msmtp,
    smtp_listener_with_tls,
    swaks,
    temporaries,
    visible,
)

pytestmark = pytest.mark.timeout(300)


def files(workspace: Workspace) -> list[str]:
    return visible(workspace.home("acme-mail"))


# --- what lands


def test_swaks_tls_attachment_lands_with_receipt(tls: TlsListener, workspace: Workspace) -> None:
    result = swaks(tls.submission, workspace, "--attach", attachment(workspace, "report_1.csv"))
    assert result.returncode == 0, result.stdout
    assert "1 file(s) received" in result.stdout
    assert files(workspace) == ["receipt_report_1.csv.txt", "report_1.csv"]
    home = workspace.home("acme-mail")
    assert (home / "report_1.csv").read_bytes() == b"a,b\n1,2\n"
    assert json.loads((home / "receipt_report_1.csv.txt").read_text())["size"] == 8


def test_msmtp_starttls_auth_lands_with_receipt(tls: TlsListener, workspace: Workspace) -> None:
    content = bytes(message(("report_m.csv", b"x,y\n3,4\n")))
    result = msmtp(tls, workspace, content)
    assert result.returncode == 0, result.stderr
    assert files(workspace) == ["receipt_report_m.csv.txt", "report_m.csv"]
    receipt = json.loads((workspace.home("acme-mail") / "receipt_report_m.csv.txt").read_text())
    assert (receipt["name"], receipt["size"]) == ("report_m.csv", 8)


def test_msmtp_wrong_password_fails(tls: TlsListener, workspace: Workspace) -> None:
    result = msmtp(tls, workspace, bytes(message(("report_n.csv", b"1"))), password="wrong")
    assert result.returncode != 0
    assert "535" in result.stderr or "authentication" in result.stderr.lower()
    assert files(workspace) == []


def test_one_bad_attachment_ignores_the_whole_message(tls: TlsListener,
                                                      workspace: Workspace) -> None:
    result = swaks(tls.submission, workspace, "--attach", attachment(workspace, "report_2.csv"),
                   "--attach", attachment(workspace, "notes.txt"))
    assert result.returncode != 0
    assert "550" in result.stdout
    assert "Message ignored" in result.stdout
    assert "notes.txt" in result.stdout
    assert files(workspace) == []
    assert "message ignored" in tls.listener.log_text()


def test_reserved_attachments_are_skipped(tls: TlsListener, workspace: Workspace) -> None:
    result = swaks(tls.submission, workspace, "--attach", attachment(workspace, "report_3.csv"),
                   "--attach", attachment(workspace, "receipt_report_3.csv.txt", b"forged"))
    assert result.returncode == 0, result.stdout
    receipt = json.loads((workspace.home("acme-mail") / "receipt_report_3.csv.txt").read_text())
    assert receipt["name"] == "report_3.csv"  # ours, not the forged one


def test_message_without_attachment_is_ignored(tls: TlsListener, workspace: Workspace) -> None:
    result = swaks(tls.submission, workspace, "--body", "no files today")
    assert result.returncode != 0
    assert "no attachment" in result.stdout
    assert files(workspace) == []


def test_folders_in_a_name_stand_for_its_last_component(tls: TlsListener,
                                                        workspace: Workspace) -> None:
    source = attachment(workspace, "plain.csv")
    # swaks applies --attach-name to the --attach that follows it.
    result = swaks(tls.submission, workspace, "--attach-name", "..\\..\\evil/../report_4.csv",
                   "--attach", source)
    assert result.returncode == 0, result.stdout
    assert files(workspace) == ["receipt_report_4.csv.txt", "report_4.csv"]
    assert not (workspace.data / "report_4.csv").exists()


@pytest.mark.parametrize("name", ["..report_h.csv", "report_\x01h.csv", "report_\u202eh.csv"])
def test_hidden_and_control_names_are_refused_not_repaired(
    tls: TlsListener, workspace: Workspace, name: str
) -> None:
    """The rule of the IMAP pull (landing/attachments.py): refuse, never strip dots or
    characters to make a name acceptable (the listener used to land these as
    report_h.csv)."""
    client = logged_in(tls)
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(message((name, b"1")))
        assert refused.value.smtp_code == 550
        assert b"refused" in refused.value.smtp_error
    finally:
        close(client)
    assert files(workspace) == []


# --- all attachments of a message, or none


def test_overlong_name_in_bytes_is_a_550_and_nothing_lands(tls: TlsListener,
                                                           workspace: Workspace) -> None:
    # 128 characters, 245 bytes in UTF-8: its receipt_<name>.txt would not fit in 255.
    long_name = "report_" + "\u00e9" * 117 + ".csv"
    client = logged_in(tls)
    try:
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.send_message(message(("report_first.csv", b"1"), (long_name, b"2")))
        assert refused.value.smtp_code == 550, refused.value
        assert b"bytes" in refused.value.smtp_error
    finally:
        close(client)
    home = workspace.home("acme-mail")
    assert files(workspace) == []
    assert temporaries(home) == []


def test_a_failed_landing_takes_back_the_rest_and_the_retry_lands_once(
    tls: TlsListener, workspace: Workspace
) -> None:
    home = workspace.home("acme-mail")
    # A folder where the second attachment should land: its rename fails (EISDIR)
    # after the first attachment has landed, like a disk error would.
    (home / "report_b.csv").mkdir(parents=True)
    content = message(("report_a.csv", b"first"), ("report_b.csv", b"second"))
    client = logged_in(tls)
    try:
        with pytest.raises(smtplib.SMTPDataError) as failed:
            client.send_message(content)
        assert failed.value.smtp_code == 451
    finally:
        close(client)
    assert files(workspace) == ["report_b.csv"]  # only the obstacle: nothing of the message
    assert temporaries(home) == []

    (home / "report_b.csv").rmdir()
    client = logged_in(tls)
    try:
        client.send_message(content)  # the sender's retry
    finally:
        close(client)
    assert files(workspace) == ["receipt_report_a.csv.txt", "receipt_report_b.csv.txt",
                                "report_a.csv", "report_b.csv"]
    assert (home / "report_a.csv").read_bytes() == b"first"


# --- logins


def test_without_certificate_auth_is_refused(workspace: Workspace) -> None:
    """The listener without a certificate must never take a password in clear
    text on its submission port, and says so once."""
    submission = free_port()
    generator = listener_fixture(workspace, "smtp", "--domain", DOMAIN,
                                 "--submission-port", str(submission))
    listener = next(generator)
    try:
        wait_for_port(submission, listener.process, listener.log)
        client = connect(submission)
        try:
            assert not client.has_extn("auth")
            assert not client.has_extn("starttls")
            client.esmtp_features["auth"] = "PLAIN LOGIN"  # try anyway
            with pytest.raises(smtplib.SMTPAuthenticationError) as refused:
                client.login("mailer", MAIL_PASSWORD)
            assert refused.value.smtp_code == 538
        finally:
            close(client)
        result = swaks(submission, workspace, "--attach", attachment(workspace, "report_c.csv"),
                       tls=False)
        assert result.returncode != 0
        assert files(workspace) == []
        warnings = [line for line in listener.log_text().splitlines()
                    if " WARNING " in line and "no TLS certificate" in line]
        assert len(warnings) == 1, listener.log_text()
    finally:
        next(generator, None)


def test_wrong_password_and_missing_auth_are_refused(tls: TlsListener,
                                                     workspace: Workspace) -> None:
    name = attachment(workspace, "report_5.csv")
    wrong = swaks(tls.submission, workspace, "--attach", name, password="wrong")
    assert wrong.returncode != 0
    assert "535" in wrong.stdout
    anonymous = swaks(tls.submission, workspace, "--attach", name, user=None)
    assert anonymous.returncode != 0
    assert "530" in anonymous.stdout
    assert files(workspace) == []


def test_auth_only_after_starttls(tls: TlsListener, workspace: Workspace) -> None:
    name = attachment(workspace, "report_9.csv")
    clear = swaks(tls.submission, workspace, "--attach", name, tls=False)
    assert clear.returncode != 0
    assert "STARTTLS" in clear.stdout
    assert "AUTH" not in clear.stdout  # not offered in clear text
    assert "did not advertise authentication" in clear.stderr
    assert files(workspace) == []
    secured = swaks(tls.submission, workspace, "--attach", name)
    assert secured.returncode == 0, secured.stdout
    assert "report_9.csv" in files(workspace)


def test_only_own_connection_address(tls: TlsListener, workspace: Workspace) -> None:
    name = attachment(workspace, "report_6.csv")
    for to in ["acme-conversions@partners.example", "acme-mail@elsewhere.example"]:
        result = swaks(tls.submission, workspace, "--attach", name, to=to)
        assert result.returncode != 0
        assert "550" in result.stdout
    assert files(workspace) == []
    assert visible(workspace.home("acme-conversions")) == []


def test_one_login_sends_to_every_connection_it_serves(tls: TlsListener,
                                                       workspace: Workspace) -> None:
    """A Credential serving two Connections: one message to both lands in
    both; another Connection's address stays refused."""
    accounts = workspace.default_accounts()
    mailer = next(a for a in accounts if a.username == "mailer")
    second = mailer.model_copy(update={"connection": "acme-mail-eu", "home": "acme-mail-eu",
                                       "folder": "eu"})
    workspace.write_accounts([*accounts, second])

    def serves_both() -> bool:
        client = logged_in(tls)
        try:
            client.mail(SENDER)
            return client.rcpt(f"acme-mail-eu@{DOMAIN}")[0] == 250
        finally:
            close(client)

    wait_until(serves_both, timeout=20, message="the second Connection in the table")
    client = logged_in(tls)
    try:
        refused = client.send_message(message(("report_14.csv", b"both")),
                                      to_addrs=[ADDRESS, f"acme-mail-eu@{DOMAIN}"])
        assert refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            client.send_message(message(("report_15.csv", b"x")),
                                to_addrs=[f"acme-conversions@{DOMAIN}"])
    finally:
        close(client)
    for connection in ("acme-mail", "acme-mail-eu"):
        assert visible(workspace.home(connection)) == ["receipt_report_14.csv.txt",
                                                       "report_14.csv"]
    assert visible(workspace.home("acme-conversions")) == []


def test_session_limit_per_account_and_release(workspace: Workspace) -> None:
    with smtp_listener_with_tls(workspace, "--max-sessions-per-account", "1") as tls:
        first = logged_in(tls)
        with pytest.raises(smtplib.SMTPAuthenticationError) as full:
            close(logged_in(tls))
        assert full.value.smtp_code == 454
        assert b"Too many sessions" in full.value.smtp_error
        close(first)  # QUIT gives the slot back

        def can_log_in() -> bool:
            try:
                close(logged_in(tls))
            except smtplib.SMTPAuthenticationError:
                return False
            return True

        wait_until(can_log_in, timeout=20, message="the slot given back after QUIT")
        # A client that hangs up without QUIT gives its slot back too.
        dropped = logged_in(tls)
        drop(dropped)
        wait_until(can_log_in, timeout=20, message="the slot given back after a drop")
        assert "too many sessions" in tls.listener.log_text()


def test_brute_force_is_banned(workspace: Workspace) -> None:
    with smtp_listener_with_tls(workspace, "--ban-address-failures", "2",
                                "--ban-seconds", "600") as tls:
        name = attachment(workspace, "report_10.csv")
        for _ in range(2):
            guess = swaks(tls.submission, workspace, "--attach", name, password="guess")
            assert guess.returncode != 0
        banned = swaks(tls.submission, workspace, "--attach", name)
        assert banned.returncode != 0
        assert "535" in banned.stdout
        assert files(workspace) == []


def test_suspended_account_cannot_send(tls: TlsListener, workspace: Workspace) -> None:
    accounts = [a.model_copy(update={"suspended": True}) if a.username == "mailer" else a
                for a in workspace.default_accounts()]
    workspace.write_accounts(accounts)
    name = attachment(workspace, "report_11.csv")

    def refused() -> bool:
        return swaks(tls.submission, workspace, "--attach", name).returncode != 0

    wait_until(refused, message="the suspension to take effect")
    before = files(workspace)
    assert swaks(tls.submission, workspace, "--attach", name).returncode != 0
    assert files(workspace) == before


def test_require_tls_refuses_mail_before_starttls_on_submission(workspace: Workspace) -> None:
    """--require-tls (which the operator sets) is about the submission port: a
    mail server delivering to port 25 in clear text is still taken, as by any MX."""
    with smtp_listener_with_tls(workspace, "--require-tls") as tls:
        name = attachment(workspace, "report_12.csv")
        clear = swaks(tls.submission, workspace, "--attach", name, user=None, tls=False)
        assert clear.returncode != 0
        assert "STARTTLS" in clear.stdout
        secured = swaks(tls.submission, workspace, "--attach", name)
        assert secured.returncode == 0, secured.stdout
        assert "report_12.csv" in files(workspace)
        exchanger = swaks(tls.port, workspace, "--attach", attachment(workspace, "report_13.csv"),
                          user=None, tls=False)
        assert exchanger.returncode == 0, exchanger.stdout
        assert "report_13.csv" in files(workspace)


def test_size_and_part_limits(workspace: Workspace) -> None:
    with smtp_listener_with_tls(workspace, "--max-message-bytes", "20000",
                                "--max-parts", "3") as tls:
        big = swaks(tls.submission, workspace,
                    "--attach", attachment(workspace, "report_7.csv", b"x" * 50_000))
        assert big.returncode != 0
        assert "552" in big.stdout
        many = swaks(tls.submission, workspace, *[arg for i in range(3) for arg in (
            "--attach", attachment(workspace, f"report_8{i}.csv"))])
        assert many.returncode != 0
        assert "too many MIME parts" in many.stdout
        assert files(workspace) == []
