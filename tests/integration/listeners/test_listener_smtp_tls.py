"""What strangers learn from both SMTP ports, and the TLS they get: the same
intermediate profile as FTPS, refused below it, one log line per failed
handshake. Real clients: python's smtplib and openssl s_client."""

from __future__ import annotations

import re
import smtplib
import ssl
import subprocess
import time

import pytest

from tests.integration.listeners.listener_harness import Listener, need, wait_until
from tests.integration.listeners.smtp_support import (
    TlsListener,
    close,
    connect,
    weak_client_context,
)

pytestmark = pytest.mark.timeout(300)


def new_lines(listener: Listener, before: str) -> list[str]:
    return listener.log_text()[len(before):].splitlines()


VERSION = re.compile(rb"\d+\.\d+")


@pytest.mark.parametrize("which", ["port", "submission"])
def test_greeting_and_ehlo_name_no_software(tls: TlsListener, which: str) -> None:
    client = smtplib.SMTP(timeout=30)
    try:
        code, greeting = client.connect("127.0.0.1", getattr(tls, which))
        assert code == 220
        assert greeting == b"partners.example Connectors ESMTP"
        code, ehlo = client.ehlo("client.example")
        assert code == 250
        for text in (greeting, ehlo):
            assert b"Python" not in text
            assert b"aiosmtpd" not in text
            assert not VERSION.search(text.replace(b"partners.example", b"")), text
    finally:
        close(client)


@pytest.mark.parametrize(("ciphers", "version"), [
    ("ECDHE-ECDSA-AES128-SHA256", None),  # CBC
    ("ECDHE-ECDSA-AES256-SHA384", None),  # CBC
    ("ECDHE-ECDSA-AES128-SHA", None),     # CBC, SHA-1
    ("AES128-SHA", None),                 # no forward secrecy
    (None, ssl.TLSVersion.TLSv1_1),
])
def test_weak_tls_is_refused(tls: TlsListener, ciphers: str | None,
                             version: ssl.TLSVersion | None) -> None:
    client = connect(tls.port)
    try:
        with pytest.raises((ssl.SSLError, OSError)):
            client.starttls(context=weak_client_context(ciphers=ciphers, version=version))
    finally:
        client.close()


@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3])
def test_modern_tls_is_accepted(tls: TlsListener, version: ssl.TLSVersion) -> None:
    """The control of test_weak_tls_is_refused: the same client, good settings."""
    context = weak_client_context(ciphers="ECDHE-ECDSA-AES128-GCM-SHA256", version=version)
    client = connect(tls.port)
    try:
        code, _ = client.starttls(context=context)
        assert code == 220
        assert isinstance(client.sock, ssl.SSLSocket)
        assert client.sock.version() == ("TLSv1.3" if version == ssl.TLSVersion.TLSv1_3
                                         else "TLSv1.2")
    finally:
        close(client)


def test_openssl_s_client_cbc_suite_is_refused(tls: TlsListener) -> None:
    openssl = need("openssl")

    def s_client(*options: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [openssl, "s_client", "-starttls", "smtp", "-connect", f"127.0.0.1:{tls.port}",
             *options],
            input="QUIT\r\n", capture_output=True, text=True, timeout=60, check=False)

    weak = s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-SHA256:@SECLEVEL=0")
    assert weak.returncode != 0
    assert "ECDHE-ECDSA-AES128-SHA256" not in weak.stdout
    good = s_client("-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
    assert "Cipher is ECDHE-ECDSA-AES128-GCM-SHA256" in good.stdout, good.stdout + good.stderr


def test_each_failed_handshake_is_one_log_line(tls: TlsListener) -> None:
    time.sleep(0.5)  # the start-up lines are written
    before = tls.listener.log_text()
    failures = 4
    for _ in range(failures):
        client = connect(tls.port)
        try:
            with pytest.raises((ssl.SSLError, OSError)):
                client.starttls(context=weak_client_context(version=ssl.TLSVersion.TLSv1_1))
        finally:
            client.close()

    def all_logged() -> bool:
        return sum("TLS handshake failed" in line
                   for line in new_lines(tls.listener, before)) >= failures

    wait_until(all_logged, timeout=20, message="the handshake failures in the log")
    time.sleep(1.0)  # anything else the failures would make the listener write
    lines = new_lines(tls.listener, before)
    assert len(lines) == failures, "\n".join(lines)
    assert all("TLS handshake failed address=127.0.0.1: UNSUPPORTED_PROTOCOL" in line
               for line in lines), "\n".join(lines)
    assert "Traceback" not in tls.listener.log_text()
