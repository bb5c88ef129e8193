"""The Inbound Email pull against dovecot IMAP on loopback (IMAPS and STARTTLS)."""

from __future__ import annotations

import imaplib
import json
import secrets
import ssl
from email.message import EmailMessage
from typing import Any

import pytest

from tests.integration.transfer.transfer_servers import Certificate, Dovecot, Job, deliver


def message(*attachments: tuple[str, bytes], subject: str = "files") -> bytes:
    msg = EmailMessage()
    msg["From"] = "partner@example.com"
    msg["To"] = "platform@example.com"
    msg["Subject"] = subject
    msg.set_content("see attached")
    for name, data in attachments:
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return msg.as_bytes()


class Mailbox:
    def __init__(self, server: Dovecot, job: Job, cert: Certificate, tls: str) -> None:
        self.server = server
        self.user = f"u{secrets.token_hex(4)}"
        self.password = "mail-" + secrets.token_urlsafe(10)
        self.maildir = server.add_user(self.user, self.password)
        self.cert = cert
        port = server.imaps_port if tls == "IMAPS" else server.imap_port
        self.spec: dict[str, Any] = {
            "direction": "Inbound",
            "dataType": "Audiences",
            "method": "Email",
            "methodology": "Pull",
            "credentialRef": {"name": "partner-a"},
            "filenamePattern": "audiences_*.csv",
            "remote": {"host": "127.0.0.1", "port": port, "tls": tls},
        }
        job.configure(self.spec)
        job.credential(self.user, password=self.password)
        job.env["SSL_CERT_FILE"] = str(cert.cert)

    def deliver(self, raw: bytes) -> None:
        deliver(self.maildir, raw, self.server.uid, self.server.gid)

    def mark_all_unseen(self) -> None:
        context = ssl.create_default_context(cafile=str(self.cert.cert))
        with imaplib.IMAP4_SSL("127.0.0.1", self.server.imaps_port, ssl_context=context) as imap:
            imap.login(self.user, self.password)
            imap.select("INBOX")
            imap.store("1:*", "-FLAGS", r"(\Seen)")

    def unseen(self) -> int:
        context = ssl.create_default_context(cafile=str(self.cert.cert))
        with imaplib.IMAP4_SSL("127.0.0.1", self.server.imaps_port, ssl_context=context) as imap:
            imap.login(self.user, self.password)
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "UNSEEN")
            return len(data[0].split())


@pytest.fixture(params=["IMAPS", "STARTTLS"])
def mailbox(
    request: pytest.FixtureRequest, dovecot: Dovecot, job: Job, certificate: Certificate
) -> Mailbox:
    return Mailbox(dovecot, job, certificate, request.param)


def ledger(job: Job) -> list[dict[str, Any]]:
    path = job.home / ".connectors" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_accepted_attachments_land_once_and_message_is_marked_seen(
    job: Job, mailbox: Mailbox
) -> None:
    mailbox.deliver(message(("audiences_1.csv", b"a,b\n"), ("audiences_2.csv", b"c,d\n")))
    mailbox.deliver(message(("audiences_3.csv", b"e\n"), ("receipt_audiences_0.csv", b"r")))

    first = job.run()
    assert first.code == 0, first.stderr
    assert job.landed() == {
        "audiences_1.csv": b"a,b\n",
        "audiences_2.csv": b"c,d\n",
        "audiences_3.csv": b"e\n",
    }
    assert first.summary["files"] == 3
    assert mailbox.unseen() == 0
    assert len(job.receipts()) == 3

    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0

    mailbox.deliver(message(("audiences_4.csv", b"f\n")))
    third = job.run()
    assert third.summary["files"] == 1
    assert job.landed()["audiences_4.csv"] == b"f\n"


def test_message_with_a_non_matching_attachment_is_ignored_and_recorded(
    job: Job, mailbox: Mailbox
) -> None:
    mailbox.deliver(message(("audiences_1.csv", b"ok"), ("holiday.jpg", b"\xff\xd8")))

    result = job.run()
    assert result.code == 0, result.stderr
    assert job.landed() == {}
    assert result.summary["skipped"] == 1
    entries = ledger(job)
    assert [e["kind"] for e in entries] == ["ignored"]
    assert "holiday.jpg" in entries[0]["note"]
    # Ignored means left as it was: unseen, for a person to notice; the ledger
    # keeps the job from reading it again.
    assert mailbox.unseen() == 1

    again = job.run()
    assert again.code == 0, again.stderr
    assert again.summary["skipped"] == 1
    assert [e["kind"] for e in ledger(job)] == ["ignored"], "not read again"
    assert mailbox.unseen() == 1


def test_attachment_names_are_sanitised(job: Job, mailbox: Mailbox) -> None:
    mailbox.deliver(
        message(("../../etc/audiences_x.csv", b"x"), ("C:\\tmp\\audiences_y.csv", b"y"))
    )

    result = job.run()
    assert result.code == 0, result.stderr
    assert job.landed() == {"audiences_x.csv": b"x", "audiences_y.csv": b"y"}
    assert not (job.data_root / "etc").exists()


def test_wrong_password_is_a_clear_error(job: Job, mailbox: Mailbox) -> None:
    mailbox.deliver(message(("audiences_1.csv", b"ok")))
    wrong = "bad-" + mailbox.password
    job.credential(mailbox.user, password=wrong)

    result = job.run()
    assert result.code != 0
    assert "refused" in result.summary["message"]
    assert wrong not in result.stdout + result.stderr
    assert mailbox.unseen() == 1


def test_untrusted_certificate_is_refused(job: Job, mailbox: Mailbox) -> None:
    mailbox.deliver(message(("audiences_1.csv", b"ok")))
    job.env.pop("SSL_CERT_FILE")

    result = job.run()
    assert result.code != 0
    assert "certificate" in result.summary["message"]
    assert mailbox.unseen() == 1


def test_landed_but_unmarked_message_is_not_landed_again(job: Job, mailbox: Mailbox) -> None:
    """The job died after landing and recording the attachments, before the
    message was marked seen."""
    mailbox.deliver(message(("audiences_1.csv", b"a"), ("audiences_2.csv", b"b")))
    assert job.run().code == 0
    receipts = job.receipts()
    mailbox.mark_all_unseen()
    assert mailbox.unseen() == 1

    again = job.run()
    assert again.code == 0, again.stderr
    assert again.summary["files"] == 0
    assert job.receipts() == receipts
    assert mailbox.unseen() == 0


def test_same_named_attachments_of_different_messages_all_land(
    job: Job, mailbox: Mailbox
) -> None:
    mailbox.spec["filenamePattern"] = "daily_report.csv"
    job.configure(mailbox.spec)
    contents = [b"monday\n", b"tuesday\n", b"wednesday\n"]
    for data in contents:
        mailbox.deliver(message(("daily_report.csv", data)))

    result = job.run()
    assert result.code == 0, result.stderr
    assert result.summary["files"] == 3
    landed = job.landed()
    assert sorted(landed.values()) == sorted(contents), "nothing overwritten"
    assert set(landed) == {"daily_report.csv", "daily_report-2.csv", "daily_report-3.csv"}
    sources = {
        json.loads((job.home / f"receipt_{name}.txt").read_text())["source"] for name in landed
    }
    assert len(sources) == 3, "each receipt names its own message"
    assert all("email" in source and "daily_report.csv" in source for source in sources)
    assert mailbox.unseen() == 0


def test_temporary_login_failure_is_retried_not_blamed_on_the_credential(
    job: Job, mailbox: Mailbox
) -> None:
    """dovecot answers NO [UNAVAILABLE] when it cannot read its user database."""
    mailbox.deliver(message(("audiences_1.csv", b"ok")))
    users = mailbox.server.work / "passwd.d" / mailbox.user
    users.chmod(0o000)
    try:
        result = job.run("--retries", "1")
    finally:
        users.chmod(0o644)
    assert result.code != 0
    assert "temporarily unavailable" in result.summary["message"]
    assert "check the Credential" not in result.summary["message"]
    assert "retrying" in result.stderr
    assert mailbox.password not in result.stdout + result.stderr

    assert job.run().code == 0
    assert job.landed() == {"audiences_1.csv": b"ok"}
