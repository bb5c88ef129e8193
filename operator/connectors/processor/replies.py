"""Answering an email with its results (spec.email.replyWithResults).

A checked file that came by email is answered with a reply to the envelope
sender, through the platform's relay, with the result file and the receipt
attached, but only
when the sender is one of the Connection's allowed senders: a forged or
unknown sender never receives anything. The reply is marked as automatic
(RFC 3834), so that the partner's auto-responder does not answer it, and
refers to the original message (In-Reply-To), so that it lands in its thread.
"""

from __future__ import annotations

import hashlib
import logging
import smtplib
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path

from ..api.senders import sender_allowed
from ..landing.mail_origin import MailOrigin, read_origin
from ..landing.names import receipt_name
from .work import Checked

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Relay:
    host: str
    port: int
    sender: str
    timeout: float = 30.0

    @classmethod
    def parse(cls, address: str | None, sender: str | None) -> Relay | None:
        """From --smtp-relay HOST:PORT and --smtp-from; None when either is unset."""
        if not address or not sender:
            return None
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--smtp-relay must be HOST:PORT, not {address!r}")
        return cls(host.strip("[]"), int(port), sender)


def reply_for(item: Checked, origin: MailOrigin, relay: Relay, attachment: bytes,
              display_name: str, receipt: bytes | None = None) -> EmailMessage:
    message = EmailMessage()
    message["From"] = relay.sender
    message["To"] = origin.sender
    subject = origin.subject or item.name
    message["Subject"] = subject if subject.lower().startswith("re:") else f"Re: {subject}"
    message["Date"] = formatdate(usegmt=True)
    domain = relay.sender.rpartition("@")[2] or "connectors.invalid"
    seed = f"{item.connection}\0{item.name}\0{item.result_file}".encode()
    message["Message-ID"] = f"<{hashlib.sha256(seed).hexdigest()[:32]}@{domain}>"
    if origin.message_id:
        message["In-Reply-To"] = origin.message_id
        message["References"] = origin.message_id
    message["Auto-Submitted"] = "auto-replied"
    message["X-Auto-Response-Suppress"] = "All"
    result = item.result
    lines = [f"{display_name}: {item.name} was checked.", "",
             f"Status: {result.status}",
             f"Rows accepted: {result.rows_accepted}",
             f"Rows rejected: {result.rows_rejected}"]
    if result.failure is not None:
        lines.append(f"Why: {result.failure.message}")
    lines += ["", f"The attached {item.result_file} lists every error by line and column."]
    message.set_content("\n".join(lines) + "\n")
    message.add_attachment(attachment, maintype="text", subtype="csv",
                           filename=item.result_file)
    if receipt is not None:
        # The receipt too, as partners on SFTP and FTP find it in their folder.
        message.add_attachment(receipt, maintype="application", subtype="json",
                               filename=receipt_name(item.name))
    return message


def answer(item: Checked, home: Path, trace_id: str, reply_to: list[str] | None,
           relay: Relay | None, display_name: str) -> str | None:
    """Sends the reply when one is due; returns the address answered, or None.
    Raises OSError or smtplib.SMTPException when the relay refuses."""
    if reply_to is None:
        return None
    origin = read_origin(home, trace_id)
    if origin is None or not sender_allowed(origin.sender, reply_to):
        return None
    if relay is None:
        log.warning("no reply to %s for %s: the operator has no --smtp-relay", origin.sender,
                    item.name)
        return None
    attachment = (home / item.result_file).read_bytes()
    try:
        receipt: bytes | None = (home / receipt_name(item.name)).read_bytes()
    except OSError:
        receipt = None
    message = reply_for(item, origin, relay, attachment, display_name, receipt)
    with smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout) as smtp:
        smtp.send_message(message, from_addr=relay.sender, to_addrs=[origin.sender])
    return origin.sender
