"""The Outbound Email push through a real SMTP peer (aiosmtpd) on loopback."""

from __future__ import annotations

import email
import email.policy
import ssl
from collections.abc import Iterator
from email.message import EmailMessage
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.integration.transfer.transfer_servers import Certificate, Job, free_port


class Collector:
    def __init__(self) -> None:
        self.messages: list[tuple[Envelope, EmailMessage]] = []

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope, parsed))
        return "250 OK"


@pytest.fixture(params=[False, True], ids=["plain", "starttls"])
def relay(
    request: pytest.FixtureRequest, certificate: Certificate
) -> Iterator[tuple[Controller, Collector, bool]]:
    collector = Collector()
    starttls = bool(request.param)
    kwargs: dict[str, Any] = {}
    if starttls:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(certificate.cert), str(certificate.key))
        kwargs = {"tls_context": context, "require_starttls": True}
    controller = Controller(collector, hostname="127.0.0.1", port=free_port(), **kwargs)
    controller.start()
    try:
        yield controller, collector, starttls
    finally:
        controller.stop()


def test_push_sends_each_file_once_with_anti_loop_headers(
    job: Job, relay: tuple[Controller, Collector, bool], certificate: Certificate
) -> None:
    controller, collector, starttls = relay
    job.configure(
        {
            "direction": "Outbound",
            "dataType": "Reports",
            "method": "Email",
            "methodology": "Push",
            "credentialRef": {"name": "partner-a"},
            "filenamePattern": "report_*.csv",
            "displayName": "Partner A reports",
            "remote": {"recipients": ["ops@partner.example", "data@partner.example"]},
        }
    )
    job.credential("unused")
    job.env.update(
        {
            "CONNECTORS_SMTP_RELAY": f"127.0.0.1:{controller.port}",
            "CONNECTORS_SMTP_FROM": "reports@platform.example",
            "CONNECTORS_SMTP_STARTTLS": "true" if starttls else "false",
            "SSL_CERT_FILE": str(certificate.cert),
        }
    )
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "report_1.csv").write_bytes(b"a,b\n1,2\n")
    (outbox / "report_2.csv").write_bytes(b"c\n" * 10_000)

    first = job.run()
    assert first.code == 0, first.stderr
    assert first.summary["files"] == 2
    assert len(collector.messages) == 2
    received = {}
    for envelope, msg in collector.messages:
        assert sorted(envelope.rcpt_tos) == ["data@partner.example", "ops@partner.example"]
        assert msg["Auto-Submitted"] == "auto-generated"
        assert msg["From"] == "reports@platform.example"
        (part,) = list(msg.iter_attachments())
        received[part.get_filename()] = part.get_content()
    assert received == {"report_1.csv": "a,b\n1,2\n", "report_2.csv": "c\n" * 10_000}
    assert sorted(p.name for p in (job.home / "sent").iterdir()) == ["report_1.csv", "report_2.csv"]

    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0
    assert len(collector.messages) == 2


def test_relay_down_fails_without_moving_files(job: Job) -> None:
    job.configure(
        {
            "direction": "Outbound",
            "dataType": "Reports",
            "method": "Email",
            "methodology": "Push",
            "credentialRef": {"name": "partner-a"},
            "filenamePattern": "*.csv",
            "remote": {"recipients": ["ops@partner.example"]},
        }
    )
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "r.csv").write_bytes(b"x")
    result = job.run(
        "--smtp-relay",
        f"127.0.0.1:{free_port()}",
        "--smtp-from",
        "a@b.example",
        "--retries",
        "1",
    )
    assert result.code != 0
    assert result.summary["outcome"] == "Failed"
    assert (outbox / "r.csv").exists()
