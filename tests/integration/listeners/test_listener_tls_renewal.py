"""A renewed certificate is picked up without dropping sessions in progress: the
mounted files change (as a Secret volume does when cert-manager renews), new
handshakes present the new certificate, and a session set up before goes on."""

from __future__ import annotations

import ftplib
import hashlib
import io
import os
import smtplib
import ssl
from pathlib import Path

import pytest

from connectors.listeners.core.tls import certificate_fingerprint
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Workspace,
    listener_fixture,
    self_signed,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)


def client_context() -> ssl.SSLContext:
    # The test reads which certificate is presented; it does not judge it.
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


def presented(der: bytes | None) -> str:
    assert der is not None
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


def mounted(workspace: Workspace) -> Path:
    """A folder of tls.crt and tls.key, replaced whole the way a Secret volume is."""
    folder = workspace.root / "tls"
    folder.mkdir()
    renew(folder)
    return folder


def renew(folder: Path) -> str:
    fresh = folder / f"..{os.urandom(4).hex()}"
    fresh.mkdir()
    cert, _ = self_signed(fresh)
    for name in ("tls.crt", "tls.key"):
        link = folder / f"{name}.new"
        link.symlink_to(fresh.name + "/" + name)
        os.replace(link, folder / name)
    return certificate_fingerprint(cert)


def ftps(port: int) -> ftplib.FTP_TLS:
    client = ftplib.FTP_TLS(context=client_context())  # noqa: S321 - FTPS under test
    client.connect("127.0.0.1", port, timeout=60)
    client.login("acme", PASSWORD)
    client.prot_p()
    return client


def ftps_certificate(port: int) -> str:
    client = ftps(port)
    try:
        return presented(client.sock.getpeercert(binary_form=True))
    finally:
        client.quit()


def starttls_certificate(port: int) -> str:
    with smtplib.SMTP("127.0.0.1", port, timeout=60) as client:
        client.starttls(context=client_context())
        return presented(client.sock.getpeercert(binary_form=True))


def test_ftps_presents_a_renewed_certificate_and_keeps_sessions(workspace: Workspace) -> None:
    folder = mounted(workspace)
    first = certificate_fingerprint(folder / "tls.crt")
    gen = listener_fixture(workspace, "ftp", "--tls-cert-file", str(folder / "tls.crt"),
                           "--tls-key-file", str(folder / "tls.key"), "--require-tls",
                           "--tls-poll-seconds", "0.5")
    listener = next(gen)
    try:
        before = ftps(listener.port)
        assert presented(before.sock.getpeercert(binary_form=True)) == first
        second = renew(folder)
        assert second != first
        wait_until(lambda: ftps_certificate(listener.port) == second, timeout=30,
                   message="the renewed certificate")
        # The session set up before the renewal still uploads.
        before.storbinary("STOR conversions_kept.csv", io.BytesIO(b"a,b\n"))
        before.quit()
        home = workspace.home("acme-conversions")
        assert (home / "conversions_kept.csv").read_bytes() == b"a,b\n"
        assert "TLS certificate renewed: SHA256 " + second in listener.log_text()
    finally:
        gen.close()


def test_smtp_starttls_presents_a_renewed_certificate(workspace: Workspace) -> None:
    folder = mounted(workspace)
    gen = listener_fixture(workspace, "smtp", "--domain", "partners.example",
                           "--tls-cert-file", str(folder / "tls.crt"),
                           "--tls-key-file", str(folder / "tls.key"), "--tls-poll-seconds", "0.5")
    listener = next(gen)
    try:
        kept = smtplib.SMTP("127.0.0.1", listener.port, timeout=60)
        kept.starttls(context=client_context())
        assert starttls_certificate(listener.port) == certificate_fingerprint(folder / "tls.crt")
        second = renew(folder)
        wait_until(lambda: starttls_certificate(listener.port) == second, timeout=30,
                   message="the renewed certificate")
        # The session that did STARTTLS before the renewal is still served.
        assert kept.noop()[0] == 250
        kept.quit()
        assert "TLS certificate renewed: SHA256 " + second in listener.log_text()
    finally:
        gen.close()
