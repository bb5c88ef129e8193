"""Helpers of the SMTP listener tests: a listener with a certificate, and real
clients (swaks, msmtp, python smtplib) that speak STARTTLS to it."""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path

from tests.integration.listeners.listener_harness import (
    MAIL_PASSWORD,
    Listener,
    Workspace,
    listener_fixture,
    need,
    self_signed,
)

DOMAIN = "partners.example"
ADDRESS = f"acme-mail@{DOMAIN}"
SENDER = "partner@acme.example"


@dataclass
class TlsListener:
    listener: Listener
    cert: Path

    @property
    def port(self) -> int:
        return self.listener.port


@contextmanager
def smtp_listener_with_tls(workspace: Workspace, *extra: str) -> Iterator[TlsListener]:
    """An SMTP listener with a self-signed certificate for localhost/127.0.0.1."""
    cert, key = self_signed(workspace.root)
    generator = listener_fixture(workspace, "smtp", "--domain", DOMAIN,
                                 "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                 *extra)
    listener = next(generator)
    try:
        yield TlsListener(listener, cert)
    finally:
        # Stops the listener and checks its log (listener_fixture's cleanup).
        next(generator, None)


def client_context(cert: Path) -> ssl.SSLContext:
    """A client that trusts only the listener's certificate."""
    context = ssl.create_default_context(cafile=str(cert))
    context.check_hostname = False  # the certificate names localhost; we dial 127.0.0.1
    return context


def weak_client_context(*, ciphers: str | None = None,
                        version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    """A client willing to use what a safe server must refuse (OpenSSL's own
    client-side floor lowered, so that the refusal is the server's)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_ciphers(f"{ciphers or 'ALL'}:@SECLEVEL=0")
    if version is not None:
        with warnings.catch_warnings():  # "TLSv1_1 is deprecated": that is the point
            warnings.simplefilter("ignore", DeprecationWarning)
            context.minimum_version = version
            context.maximum_version = version
    else:
        context.maximum_version = ssl.TLSVersion.TLSv1_2  # TLS 1.3 suites are all fine
    return context


def connect(port: int) -> smtplib.SMTP:
    client = smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30)
    client.ehlo()
    return client


def logged_in(tls: TlsListener, user: str = "mailer",
              password: str = MAIL_PASSWORD) -> smtplib.SMTP:
    """A session after STARTTLS and AUTH (raises SMTPAuthenticationError)."""
    client = connect(tls.port)
    try:
        client.starttls(context=client_context(tls.cert))
        client.ehlo()
        client.login(user, password)
    except BaseException:
        close(client)
        raise
    return client


def close(client: smtplib.SMTP) -> None:
    try:
        client.quit()
    except (smtplib.SMTPException, OSError):
        client.close()


def drop(client: smtplib.SMTP) -> None:
    """Hangs up without QUIT, as a client that crashed or lost its network."""
    sock = client.sock
    if sock is not None:
        sock.shutdown(socket.SHUT_RDWR)
        sock.close()
    client.sock = None
    client.file = None


def message(*attachments: tuple[str, bytes], to: str = ADDRESS) -> EmailMessage:
    """A message with file attachments; non-ASCII names go out RFC 2231 encoded."""
    msg = EmailMessage()
    msg["From"] = SENDER
    msg["To"] = to
    msg["Subject"] = "files"
    msg.set_content("see attached")
    for name, data in attachments:
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return msg


def visible(folder: Path) -> list[str]:
    """A landing folder's entries as a partner sees them (no hidden ones)."""
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith("."))


def temporaries(folder: Path) -> list[str]:
    if not folder.exists():
        return []
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".upload-"))


def msmtp(tls: TlsListener, workspace: Workspace, content: bytes,
          password: str = MAIL_PASSWORD) -> subprocess.CompletedProcess[str]:
    """Sends `content` with msmtp: STARTTLS (certificate checked) then AUTH PLAIN."""
    binary = need("msmtp")
    config = workspace.root / "msmtprc"
    config.write_text(
        "defaults\n"
        "tls on\n"
        "tls_starttls on\n"
        f"tls_trust_file {tls.cert}\n"
        "account listener\n"
        "host localhost\n"
        f"port {tls.port}\n"
        f"from {SENDER}\n"
        "auth plain\n"
        "user mailer\n"
        f"password {password}\n"
        "account default : listener\n"
    )
    config.chmod(0o600)  # msmtp refuses a password in a file others may read
    return subprocess.run(
        [binary, "-C", str(config), "--", ADDRESS],
        input=content.decode(), capture_output=True, text=True, timeout=120, check=False,
    )
