"""SMTP client of the Outbound Email push: each waiting file goes as one
message, with its file attached, to remote.recipients through the platform's
relay.

Auto-Submitted: auto-generated (RFC 3834) and X-Auto-Response-Suppress keep
partners' auto-responders from replying, so two platforms cannot loop. The
Message-ID is derived from the file (connection, name, size, mtime): when a
run dies between sending and recording, the next run sends again with the
same Message-ID, which lets the receiving side drop the duplicate.
"""

from __future__ import annotations

import argparse
import hashlib
import mimetypes
import smtplib
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import formatdate
from pathlib import Path
from typing import TypeVar

from ...errors import describe
from ..spec import TransferSpec
from .base import FileError, PermanentError, TransientError, tls_context

T = TypeVar("T")


@dataclass(frozen=True)
class SmtpSettings:
    connection: str
    display_name: str
    relay_host: str
    relay_port: int
    sender: str
    recipients: tuple[str, ...]
    starttls: bool = False
    timeout: float = 30.0

    @classmethod
    def from_args(
        cls, connection: str, spec: TransferSpec, args: argparse.Namespace
    ) -> SmtpSettings:
        if not args.smtp_relay:
            raise PermanentError(
                "Outbound Email needs --smtp-relay HOST:PORT (CONNECTORS_SMTP_RELAY)"
            )
        if not args.smtp_from:
            raise PermanentError("Outbound Email needs --smtp-from ADDRESS (CONNECTORS_SMTP_FROM)")
        host, _, port = str(args.smtp_relay).rpartition(":")
        if not host or not port.isdigit():
            raise PermanentError(f"--smtp-relay must be HOST:PORT, not {args.smtp_relay!r}")
        return cls(
            connection=connection,
            display_name=spec.display_name or connection,
            relay_host=host.strip("[]"),
            relay_port=int(port),
            sender=args.smtp_from,
            recipients=tuple(spec.remote.recipients or ()),
            starttls=bool(args.smtp_starttls),
            timeout=float(args.timeout),
        )


def build_message(settings: SmtpSettings, name: str, data: bytes, mtime: int) -> EmailMessage:
    message = EmailMessage()
    message["From"] = settings.sender
    message["To"] = ", ".join(settings.recipients)
    message["Subject"] = f"{settings.display_name}: {name}"
    message["Date"] = formatdate(localtime=False, usegmt=True)
    seed = f"{settings.connection}\0{name}\0{len(data)}\0{mtime}".encode()
    domain = settings.sender.rpartition("@")[2] or "connectors.invalid"
    message["Message-ID"] = f"<{hashlib.sha256(seed).hexdigest()[:32]}@{domain}>"
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message["Precedence"] = "bulk"
    message.set_content(f"{settings.display_name} sends the attached file {name}.\n")
    maintype, _, subtype = (mimetypes.guess_type(name)[0] or "application/octet-stream").partition(
        "/"
    )
    message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


def _guard(what: str, action: Callable[[], T]) -> T:
    try:
        return action()
    except smtplib.SMTPAuthenticationError as exc:
        raise PermanentError(
            f"{what}: the relay refused authentication ({exc.smtp_code})"
        ) from None
    except smtplib.SMTPRecipientsRefused as exc:
        raise FileError(f"{what}: recipients refused: {', '.join(exc.recipients)}") from None
    except smtplib.SMTPResponseException as exc:
        text = (
            exc.smtp_error.decode(errors="replace")
            if isinstance(exc.smtp_error, bytes)
            else str(exc.smtp_error)
        )
        if 400 <= exc.smtp_code < 500:
            raise TransientError(f"{what}: {exc.smtp_code} {text}") from None
        raise FileError(f"{what}: {exc.smtp_code} {text}") from None
    except ssl.SSLCertVerificationError as exc:
        raise PermanentError(
            f"{what}: the relay's TLS certificate does not verify ({exc.verify_message})"
        ) from None
    except (smtplib.SMTPException, OSError) as exc:
        raise TransientError(f"{what}: {describe(exc)}") from None


class SmtpClient:
    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        where = f"{settings.relay_host}:{settings.relay_port}"
        self.smtp = _guard(f"connecting to the relay {where}", self._connect)

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        smtp = smtplib.SMTP(s.relay_host, s.relay_port, timeout=s.timeout)
        smtp.ehlo()
        if s.starttls:
            smtp.starttls(context=tls_context(False))
            smtp.ehlo()
        return smtp

    def remote_size(self, name: str) -> int | None:
        # Mail cannot be looked up once sent; an uncertain file is sent again
        # with the same Message-ID.
        return None

    def upload(self, name: str, source: Path) -> None:
        data = source.read_bytes()
        message = build_message(self.settings, name, data, int(source.stat().st_mtime))
        _guard(f"sending {name}", lambda: self.smtp.send_message(message))

    def close(self) -> None:
        try:
            self.smtp.quit()
        except (smtplib.SMTPException, OSError):
            self.smtp.close()
