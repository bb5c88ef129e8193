"""Helpers of the SMTP listener tests: a listener with a certificate on its two
ports (mail exchanger and submission), and real clients (swaks, msmtp, python
smtplib) that speak STARTTLS to it."""

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
    free_port,
    listener_fixture,
    need,
    self_signed,
    wait_for_port,
)

DOMAIN = "partners.example"
ADDRESS = f"acme-mail@{DOMAIN}"
SENDER = "partner@acme.example"


@dataclass
class TlsListener:
    listener: Listener
    cert: Path
    submission: int
    """The submission port (login after STARTTLS); `port` is the mail exchanger's."""

    @property
    def port(self) -> int:
        return self.listener.port


@contextmanager
def smtp_listener_with_tls(workspace: Workspace, *extra: str,
                           env: dict[str, str] | None = None) -> Iterator[TlsListener]:
    """An SMTP listener with a self-signed certificate for localhost/127.0.0.1,
    taking mail on a free port like any MX and on a second free port for
    submission."""
    cert, key = self_signed(workspace.root)
    submission = free_port()
    generator = listener_fixture(workspace, "smtp", "--domain", DOMAIN,
                                 "--tls-cert-file", str(cert), "--tls-key-file", str(key),
                                 "--submission-port", str(submission), *extra, env=env)
    listener = next(generator)
    try:
        wait_for_port(submission, listener.process, listener.log)
        yield TlsListener(listener, cert, submission)
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
    """A session on the submission port after STARTTLS and AUTH (raises
    SMTPAuthenticationError)."""
    client = connect(tls.submission)
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
    """Sends `content` with msmtp to the submission port: STARTTLS (certificate
    checked) then AUTH PLAIN."""
    binary = need("msmtp")
    config = workspace.root / "msmtprc"
    config.write_text(
        "defaults\n"
        "tls on\n"
        "tls_starttls on\n"
        f"tls_trust_file {tls.cert}\n"
        "account listener\n"
        "host localhost\n"
        f"port {tls.submission}\n"
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


def swaks(port: int, workspace: Workspace, *args: str, to: str = ADDRESS,
          sender: str = SENDER, user: str | None = "mailer", password: str = MAIL_PASSWORD,
          tls: bool = True) -> subprocess.CompletedProcess[str]:
    """swaks, a real SMTP client; without `user` it delivers like a mail server
    (no AUTH). `to` may name several recipients, comma-separated."""
    need("swaks")
    auth = ["--auth", "PLAIN", "--auth-user", user, "--auth-password", password] if user else []
    return subprocess.run(
        ["swaks", "--server", f"127.0.0.1:{port}", "--to", to,
         "--from", sender, "--timeout", "60",
         # Hide what swaks sends: the AUTH line's base64 carries the password.
         "--hide-send", *(["--tls"] if tls else []), *auth, *args],
        capture_output=True, text=True, timeout=120, check=False,
        cwd=workspace.root,
    )


def attachment(workspace: Workspace, name: str, content: bytes = b"a,b\n1,2\n") -> str:
    (workspace.root / name).write_bytes(content)
    return name  # swaks runs in workspace.root and names the attachment so
