"""spec.email.replyWithResults, end to end on loopback: swaks delivers a CSV to the
real SMTP listener, `connectors process` checks it and answers the sender through
a real SMTP relay (aiosmtpd), with the result file attached."""

from __future__ import annotations

import email
import email.policy
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from email.message import EmailMessage

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from connectors.api.accounts import Account, hash_password, permissions_for
from connectors.api.processing import Processed, ProcessingTable
from tests.integration.listeners.listener_harness import MAIL_PASSWORD, Workspace, free_port
from tests.integration.listeners.smtp_support import (
    DOMAIN,
    attachment,
    smtp_listener_with_tls,
    swaks,
)
from tests.support.conversions import conversions_file

pytestmark = pytest.mark.timeout(300)

SENDER = "data@acme.example"


class Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 OK"


@pytest.fixture
def relay() -> Iterator[tuple[int, Collector]]:
    collector = Collector()
    port = free_port()
    controller = Controller(collector, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, collector
    finally:
        controller.stop()


def mail_account(connection: str, reply: bool) -> Account:
    return Account(username=f"user-{connection}", connection=connection, direction="Inbound",
                   home=connection, permissions=permissions_for("Inbound"),
                   filename_pattern="conversions_*.csv",
                   password_hash=hash_password(MAIL_PASSWORD),
                   allowed_senders=["acme.example"], reply_with_results=reply)


def run_processor(workspace: Workspace, relay_port: int, *entries: Processed
                  ) -> subprocess.Popen[bytes]:
    table = workspace.root / "processing.json"
    table.write_text(ProcessingTable(connections=list(entries)).render())
    return subprocess.Popen(
        [sys.executable, "-m", "connectors", "process", "--data-root", str(workspace.data),
         "--table", str(table), "--poll-seconds", "0.2",
         "--smtp-relay", f"127.0.0.1:{relay_port}", "--smtp-from", "results@platform.example",
         "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=(workspace.root / "processor.log").open("ab"),
        env={k: v for k, v in os.environ.items() if k != "CONNECTORS_NAMESPACE"})


def test_the_sender_gets_the_result_as_a_reply(workspace: Workspace,
                                               relay: tuple[int, Collector]) -> None:
    relay_port, collector = relay
    workspace.write_accounts([mail_account("reply-mail", True),
                              mail_account("silent-mail", False)])
    content = conversions_file(100, bad_lines=(3, 50, 101))
    with smtp_listener_with_tls(workspace) as listener:
        for connection in ("reply-mail", "silent-mail"):
            sent = swaks(listener.port, workspace, "--attach",
                         attachment(workspace, f"conversions_{connection}.csv", content),
                         "--header", f"Subject: conversions for {connection}",
                         to=f"{connection}@{DOMAIN}", sender=SENDER, user=None)
            assert sent.returncode == 0, sent.stdout + sent.stderr
    processor = run_processor(
        workspace, relay_port,
        Processed(connection="reply-mail", home="reply-mail", data_type="Conversions",
                  reply_to=["acme.example"], display_name="Acme conversions"),
        Processed(connection="silent-mail", home="silent-mail", data_type="Conversions"))
    try:
        deadline = time.monotonic() + 60
        while not collector.messages and time.monotonic() < deadline:
            time.sleep(0.2)
        # The other Connection's result is written too, and must not be mailed.
        result = workspace.home("silent-mail") / "result_conversions_silent-mail.csv.csv"
        while not result.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1)
    finally:
        processor.terminate()
        processor.wait(timeout=30)
    assert result.exists()
    [(envelope, reply)] = collector.messages
    assert envelope.rcpt_tos == [SENDER]
    assert envelope.mail_from == "results@platform.example"
    assert reply["Subject"] == "Re: conversions for reply-mail"
    assert reply["Auto-Submitted"] == "auto-replied"
    assert reply["In-Reply-To"], "the reply refers to the partner's message"
    body = reply.get_body(("plain",))
    assert body is not None
    assert "Rows accepted: 97" in body.get_content()
    attached, receipt = list(reply.iter_attachments())
    assert attached.get_filename() == "result_conversions_reply-mail.csv.csv"
    assert receipt.get_filename() == "receipt_conversions_reply-mail.csv.txt"
    assert json.loads(receipt.get_content())["name"] == "conversions_reply-mail.csv"
    lines = attached.get_content().splitlines()
    assert [line.split(",")[0] for line in lines[1:4]] == ["3", "50", "101"]
