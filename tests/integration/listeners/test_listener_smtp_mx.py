"""The SMTP listener's mail exchanger port: partners' mail servers deliver to
`<connection>@<domain>` without a login, like to any MX. Real clients on
loopback: swaks (a real SMTP client, as a mail server speaks) and python's
smtplib, against the real `connectors listen smtp`."""

from __future__ import annotations

import json
import smtplib
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from connectors.api.accounts import Account, hash_password, permissions_for
from tests.integration.listeners.listener_harness import MAIL_PASSWORD, Workspace
from tests.integration.listeners.smtp_support import (
    ADDRESS,
    DOMAIN,
    TlsListener,
    attachment,
    client_context,
    close,
    connect,
    message,
    smtp_listener_with_tls,
    swaks,
    visible,
)

pytestmark = pytest.mark.timeout(300)

PARTNER = f"partner-mail@{DOMAIN}"   # a second Connection with the same pattern
PICKY = f"picky-mail@{DOMAIN}"       # allows data@acme.example and @globex.example
DOMAIN_ONLY = f"domain-mail@{DOMAIN}"  # allows initech.example


def mail_account(connection: str, senders: list[str] | None = None) -> Account:
    return Account(username=f"user-{connection}", connection=connection, direction="Inbound",
                   home=connection, permissions=permissions_for("Inbound"),
                   filename_pattern="report_*.csv", password_hash=hash_password(MAIL_PASSWORD),
                   allowed_senders=senders)


def with_mail_connections(workspace: Workspace) -> None:
    workspace.write_accounts([
        *workspace.default_accounts(),
        mail_account("partner-mail"),
        mail_account("picky-mail", ["data@acme.example", "@globex.example"]),
        mail_account("domain-mail", ["initech.example"]),
    ])


@contextmanager
def started(workspace: Workspace, *extra: str) -> Iterator[TlsListener]:
    with_mail_connections(workspace)
    with smtp_listener_with_tls(workspace, *extra) as listener:
        yield listener


@pytest.fixture
def mx(workspace: Workspace) -> Iterator[TlsListener]:
    with started(workspace) as listener:
        yield listener


def files(workspace: Workspace, connection: str = "acme-mail") -> list[str]:
    return visible(workspace.home(connection))


def deliver(port: int, workspace: Workspace, name: str, *, to: str = ADDRESS,
            sender: str = "partner@acme.example", tls: bool = True) -> str:
    """swaks as a mail server: no AUTH. Its transcript (the server's replies)."""
    result = swaks(port, workspace, "--attach", attachment(workspace, name), to=to,
                   sender=sender, user=None, tls=tls)
    return f"exit {result.returncode}\n{result.stdout}{result.stderr}"


def rcpt_reply(port: int, to: str, sender: str = "partner@acme.example") -> tuple[int, bytes]:
    client = connect(port)
    try:
        assert client.mail(sender)[0] == 250
        return client.rcpt(to)
    finally:
        close(client)


# --- delivery without a login


def test_a_mail_server_delivers_without_login_and_the_file_lands(
    mx: TlsListener, workspace: Workspace
) -> None:
    transcript = deliver(mx.port, workspace, "report_1.csv")
    assert transcript.startswith("exit 0"), transcript
    assert "1 file(s) received" in transcript
    assert files(workspace) == ["receipt_report_1.csv.txt", "report_1.csv"]
    home = workspace.home("acme-mail")
    assert (home / "report_1.csv").read_bytes() == b"a,b\n1,2\n"
    receipt = json.loads((home / "receipt_report_1.csv.txt").read_text())
    assert (receipt["name"], receipt["size"], receipt["connection"]) == (
        "report_1.csv", 8, "acme-mail")
    # A mail server that cannot do TLS still delivers, as to any MX.
    clear = deliver(mx.port, workspace, "report_2.csv", tls=False)
    assert clear.startswith("exit 0"), clear
    assert "report_2.csv" in files(workspace)


def test_the_attachment_rules_hold_on_the_mail_exchanger_too(
    mx: TlsListener, workspace: Workspace
) -> None:
    transcript = deliver(mx.port, workspace, "notes.txt")
    assert "550 5.7.1 Message ignored" in transcript
    assert "notes.txt" in transcript
    assert files(workspace) == []


# --- recipients


def test_unknown_and_suspended_recipients_are_refused_at_rcpt_alike(mx: TlsListener) -> None:
    unknown = rcpt_reply(mx.port, f"nobody@{DOMAIN}")
    suspended = rcpt_reply(mx.port, f"frozen-conn@{DOMAIN}")
    outbound = rcpt_reply(mx.port, f"globex-reports@{DOMAIN}")  # receives no files
    assert unknown == (550, b"5.1.1 No such recipient here")
    # Nothing tells a suspended or a download-only Connection from a missing one.
    assert suspended == unknown
    assert outbound == unknown
    code, text = rcpt_reply(mx.port, "acme-mail@elsewhere.example")
    assert (code, text.split()[0]) == (550, b"5.7.1")
    assert b"Relaying denied" in text
    assert rcpt_reply(mx.port, ADDRESS.upper()) == (250, b"OK")


def test_swaks_to_an_unknown_recipient_sends_no_data(mx: TlsListener,
                                                     workspace: Workspace) -> None:
    transcript = deliver(mx.port, workspace, "report_3.csv", to=f"nobody@{DOMAIN}")
    assert "550 5.1.1" in transcript
    assert "354" not in transcript  # refused before DATA
    assert not workspace.home("nobody").exists()


def test_two_connections_in_one_message_each_get_the_files(
    mx: TlsListener, workspace: Workspace
) -> None:
    transcript = deliver(mx.port, workspace, "report_4.csv", to=f"{ADDRESS},{PARTNER}")
    assert transcript.startswith("exit 0"), transcript
    assert "2 file(s) received" in transcript
    for connection in ("acme-mail", "partner-mail"):
        assert files(workspace, connection) == ["receipt_report_4.csv.txt", "report_4.csv"]
        receipt = json.loads(
            (workspace.home(connection) / "receipt_report_4.csv.txt").read_text())
        assert receipt["connection"] == connection


def test_a_refusing_recipient_refuses_the_message_for_all(
    mx: TlsListener, workspace: Workspace
) -> None:
    """acme-conversions takes conversions_*.csv only: the message is ignored,
    and nothing lands for acme-mail either."""
    transcript = deliver(mx.port, workspace, "report_5.csv",
                         to=f"{ADDRESS},acme-conversions@{DOMAIN}")
    assert "550 5.7.1 Message ignored: acme-conversions:" in transcript
    assert files(workspace) == []
    assert files(workspace, "acme-conversions") == []


# --- allowed senders


@pytest.mark.parametrize(("to", "sender", "allowed"), [
    (PICKY, "data@acme.example", True),          # the address form
    (PICKY, "other@acme.example", False),
    (PICKY, "anyone@globex.example", True),      # the @domain form
    (PICKY, "anyone@eu.globex.example", False),  # not its sub-domains
    (DOMAIN_ONLY, "anyone@initech.example", True),  # the bare domain form
    (DOMAIN_ONLY, "data@acme.example", False),
])
def test_allowed_senders_are_enforced(mx: TlsListener, workspace: Workspace, to: str,
                                      sender: str, allowed: bool) -> None:
    connection = to.split("@")[0]
    transcript = deliver(mx.port, workspace, "report_6.csv", to=to, sender=sender)
    if allowed:
        assert transcript.startswith("exit 0"), transcript
        assert files(workspace, connection) == ["receipt_report_6.csv.txt", "report_6.csv"]
    else:
        assert "550 5.7.1 The sender is not allowed to send to this recipient" in transcript
        assert "354" not in transcript
        assert files(workspace, connection) == []


def test_a_bounce_cannot_reach_a_connection_with_allowed_senders(mx: TlsListener) -> None:
    code, _ = rcpt_reply(mx.port, PICKY, sender="")
    assert code == 550
    assert rcpt_reply(mx.port, ADDRESS, sender="")[0] == 250  # no list: anyone


# --- what the port offers


def test_starttls_and_size_are_offered_and_auth_is_not(mx: TlsListener) -> None:
    client = connect(mx.port)
    try:
        assert client.has_extn("starttls")
        assert client.has_extn("size")
        assert not client.has_extn("auth")
        client.starttls(context=client_context(mx.cert))
        client.ehlo()
        assert isinstance(client.sock, ssl.SSLSocket)
        assert not client.has_extn("auth")  # not even inside TLS
        code, text = client.docmd("AUTH", "PLAIN")
        assert code == 502
        assert b"submission port" in text
    finally:
        close(client)


def test_swaks_cannot_log_in_on_the_mail_exchanger(mx: TlsListener,
                                                   workspace: Workspace) -> None:
    result = swaks(mx.port, workspace, "--attach", attachment(workspace, "report_7.csv"))
    assert result.returncode != 0
    assert "did not advertise authentication" in result.stderr
    assert files(workspace) == []


# --- limits


def test_oversize_is_refused_by_declared_size_and_by_content(workspace: Workspace) -> None:
    with started(workspace, "--max-message-bytes", "20000") as tls:
        client = connect(tls.port)
        try:
            assert client.esmtp_features["size"] == "20000"
            code, text = client.mail("partner@acme.example", options=["SIZE=50000"])
            assert code == 552, text
        finally:
            close(client)
        transcript = deliver(tls.port, workspace, "report_8.csv")
        assert transcript.startswith("exit 0"), transcript
        big = swaks(tls.port, workspace, "--attach",
                    attachment(workspace, "report_9.csv", b"x" * 50_000),
                    sender="partner@acme.example", user=None)
        assert big.returncode != 0
        assert "552" in big.stdout
        assert files(workspace) == ["receipt_report_8.csv.txt", "report_8.csv"]


def send(port: int, sender: str, name: str) -> None:
    """One message by smtplib, as a mail server: raises on any refusal."""
    client = connect(port)
    try:
        client.send_message(message((name, b"1")), from_addr=sender, to_addrs=[ADDRESS])
    finally:
        close(client)


def test_a_sender_past_its_rate_is_told_to_retry_later(workspace: Workspace) -> None:
    with started(workspace, "--max-messages-per-sender", "2") as tls:
        send(tls.port, "partner@acme.example", "report_a.csv")
        send(tls.port, "PARTNER@acme.example", "report_b.csv")  # the same sender
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(tls.port, "partner@acme.example", "report_c.csv")
        assert refused.value.smtp_code == 450
        assert refused.value.smtp_error.startswith(b"4.7.1 ")
        send(tls.port, "other@acme.example", "report_d.csv")  # another sender is not held up
        assert files(workspace) == [f"{kind}report_{x}.csv{ext}" for kind, ext in (
            ("receipt_", ".txt"), ("", "")) for x in "abd"]
        assert "rate limited sender='partner@acme.example'" in tls.listener.log_text()


def test_a_client_address_past_its_rate_is_told_to_retry_later(workspace: Workspace) -> None:
    with started(workspace, "--max-messages-per-client", "2") as tls:
        send(tls.port, "a@acme.example", "report_e.csv")
        send(tls.port, "b@acme.example", "report_f.csv")
        with pytest.raises(smtplib.SMTPSenderRefused) as refused:
            send(tls.port, "c@acme.example", "report_g.csv")
        assert refused.value.smtp_code == 450
        assert "report_g.csv" not in files(workspace)
