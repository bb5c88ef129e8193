"""A real listener's /metrics and audit log after a known sequence of real
clients: one good login with an upload and a refused name, one wrong password.
Counters must have moved by exactly what happened, and the labels must never
carry a file name, a username or an address."""

from __future__ import annotations

import ftplib
import hashlib
import io
import json
import smtplib
import uuid
from pathlib import Path
from typing import Any

import paramiko
import pytest

from connectors.api.accounts import hash_password
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Listener,
    Workspace,
    free_port,
    listener_fixture,
    wait_until,
)
from tests.integration.listeners.smtp_support import ADDRESS, DOMAIN, SENDER, message
from tests.integration.listeners.smtp_support import close as smtp_close
from tests.integration.listeners.smtp_support import connect as smtp_connect
from tests.integration.listeners.test_listener_sftp import paramiko_client
from tests.support import secrets as secret_scan
from tests.support.metrics import Samples, label_values, scrape, total

pytestmark = pytest.mark.timeout(300)

NAMESPACE = "partners"
CONTENT = b"id,value\n1,2\n3,4\n"
# A wrong password is a secret too: it may be a partner's real one, mistyped.
WRONG = f"wrong-{uuid.uuid4().hex[:12]}"
secret_scan.remember(WRONG)


def metrics_listener(workspace: Workspace, protocol: str, *extra: str) -> tuple[Any, int]:
    port = free_port()
    generator = listener_fixture(
        workspace, protocol, "--metrics-port", str(port), "--metrics-address", "127.0.0.1",
        *extra,
        # The namespace labels every series; no cluster to report to.
        env={"CONNECTORS_NAMESPACE": NAMESPACE,
             "KUBECONFIG": str(workspace.root / "no-kubeconfig")})
    return generator, port


def listener_metrics(port: int) -> Samples:
    _, samples = scrape(port)
    return samples


def assert_bounded_labels(samples: Samples, *forbidden: str) -> None:
    values = label_values(samples, "connectors_listener_")
    assert values, "no listener series at all"
    leaked = sorted(v for v in values if any(v == f or f in v for f in forbidden))
    assert leaked == [], f"label values carry names or addresses: {leaked}"


def test_sftp_metrics_count_exactly_what_happened(workspace: Workspace) -> None:
    generator, port = metrics_listener(workspace, "sftp")
    for listener in generator:
        before = listener_metrics(port)
        assert total(before, "connectors_listener_logins_total") == 0
        # The names exist before anything happened: the definitions are loaded.
        text, _ = scrape(port)
        for name in ("connectors_listener_logins_total", "connectors_listener_sessions",
                     "connectors_listener_landing_seconds"):
            assert f"# TYPE {name.removesuffix('_total')}" in text

        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(listener, "acme", WRONG)
        client = paramiko_client(listener, "acme", PASSWORD)
        try:
            sftp = client.open_sftp()
            sftp.putfo(io.BytesIO(CONTENT), "conversions_1.csv")
            with pytest.raises(PermissionError):
                sftp.putfo(io.BytesIO(b"x\n"), "other.csv")
            during = listener_metrics(port)
            assert total(during, "connectors_listener_sessions", protocol="sftp",
                         namespace=NAMESPACE) == 1
        finally:
            client.close()
        wait_until(lambda: total(listener_metrics(port), "connectors_listener_sessions") == 0,
                   message="the session to be counted closed")
        after = listener_metrics(port)
        expect_upload_counts(after, "sftp", connection="acme-conversions")
        assert_bounded_labels(after, "conversions_1.csv", "other.csv", "127.0.0.1")
        assert ("acme" not in label_values(after, "connectors_listener_")), "a username label"
        assert (listener.workspace.home("acme-conversions") / "conversions_1.csv").read_bytes() \
            == CONTENT


def test_ftp_metrics_count_exactly_what_happened(workspace: Workspace) -> None:
    generator, port = metrics_listener(workspace, "ftp")
    for listener in generator:
        refused = ftplib.FTP()  # noqa: S321 - plain FTP is the protocol under test
        refused.connect("127.0.0.1", listener.port, timeout=60)
        with pytest.raises(ftplib.error_perm):
            refused.login("acme", WRONG)
        refused.close()
        client = ftplib.FTP()  # noqa: S321
        client.connect("127.0.0.1", listener.port, timeout=60)
        client.login("acme", PASSWORD)
        try:
            client.storbinary("STOR conversions_1.csv", io.BytesIO(CONTENT))
            with pytest.raises(ftplib.error_perm):
                client.storbinary("STOR other.csv", io.BytesIO(b"x\n"))
            assert total(listener_metrics(port), "connectors_listener_sessions",
                         protocol="ftp") == 1
        finally:
            client.quit()
        wait_until(lambda: total(listener_metrics(port), "connectors_listener_sessions") == 0,
                   message="the session to be counted closed")
        after = listener_metrics(port)
        expect_upload_counts(after, "ftp", connection="acme-conversions")
        assert_bounded_labels(after, "conversions_1.csv", "other.csv", "127.0.0.1")


def expect_upload_counts(samples: Samples, protocol: str, connection: str) -> None:
    """One good login with one upload and one refused name; one wrong password."""
    logins = {result: total(samples, "connectors_listener_logins_total", protocol=protocol,
                            namespace=NAMESPACE, result=result)
              for result in ("success", "bad_password", "unknown_user", "suspended", "banned",
                             "too_many_sessions", "bad_key")}
    assert logins == {"success": 1, "bad_password": 1, "unknown_user": 0, "suspended": 0,
                      "banned": 0, "too_many_sessions": 0, "bad_key": 0}
    assert total(samples, "connectors_listener_logins_total") == 2
    assert total(samples, "connectors_listener_uploads_total", connection=connection,
                 protocol=protocol, result="landed", namespace=NAMESPACE) == 1
    assert total(samples, "connectors_listener_uploads_total", connection=connection,
                 protocol=protocol, result="refused", reason="pattern_mismatch") == 1
    assert total(samples, "connectors_listener_uploads_total") == 2
    assert total(samples, "connectors_listener_files_landed_total", connection=connection) == 1
    assert total(samples, "connectors_listener_received_bytes_total",
                 connection=connection, protocol=protocol) == len(CONTENT)
    assert total(samples, "connectors_listener_landing_seconds_count", protocol=protocol) == 1
    assert 0 < total(samples, "connectors_listener_landing_seconds_sum", protocol=protocol) < 30
    assert total(samples, "connectors_listener_bans_total") == 0
    assert total(samples, "connectors_listener_emails_total") == 0
    assert total(samples, "connectors_listener_downloads_total") == 0
    assert total(samples, "connectors_listener_sent_bytes_total") == 0


def test_three_wrong_passwords_are_a_ban(workspace: Workspace) -> None:
    generator, port = metrics_listener(workspace, "sftp", "--ban-address-failures", "3")
    for listener in generator:
        for _ in range(3):
            with pytest.raises(paramiko.AuthenticationException):
                paramiko_client(listener, "nobody", WRONG)
        samples = listener_metrics(port)
        assert total(samples, "connectors_listener_logins_total", result="unknown_user") == 3
        assert total(samples, "connectors_listener_bans_total", protocol="sftp") == 1
        # The banned address is dropped before any key exchange: no login is counted.
        with pytest.raises((paramiko.SSHException, EOFError, OSError)):
            paramiko_client(listener, "acme", PASSWORD)
        samples = listener_metrics(port)
        assert total(samples, "connectors_listener_logins_total", result="success") == 0
        assert_bounded_labels(samples, "nobody", "127.0.0.1")


def audit_events(listener: Listener) -> list[dict[str, Any]]:
    """Every line of the log must be a JSON object; the audit events among them."""
    lines = [line for line in listener.log_text().splitlines() if line.strip()]
    records = []
    for line in lines:
        record = json.loads(line)
        assert set(record) >= {"time", "level", "logger", "message"}, record
        records.append(record)
    return [r["audit"] for r in records if r["logger"] == "connectors.audit"]


def test_json_audit_log_of_logins_and_an_upload(workspace: Workspace) -> None:
    for listener in listener_fixture(
            workspace, "sftp", "--log-format", "json",
            env={"CONNECTORS_NAMESPACE": NAMESPACE,
                 "KUBECONFIG": str(workspace.root / "no-kubeconfig")}):
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(listener, "acme", WRONG)
        client = paramiko_client(listener, "acme", PASSWORD)
        try:
            client.open_sftp().putfo(io.BytesIO(CONTENT), "conversions_9.csv")
        finally:
            client.close()
        home = listener.workspace.home("acme-conversions")
        receipt = json.loads((home / "receipt_conversions_9.csv.txt").read_text())
        wait_until(lambda running=listener: any(  # type: ignore[misc]
                       e.get("event") == "upload" for e in audit_events(running)),
                   message="the upload's audit event")
        events = audit_events(listener)
        logins = [e for e in events if e["event"] == "login"]
        assert logins == [
            {"event": "login", "namespace": NAMESPACE, "result": "bad_password",
             "protocol": "sftp", "user": "acme", "remote_address": "127.0.0.1"},
            {"event": "login", "namespace": NAMESPACE, "result": "success", "protocol": "sftp",
             "connection": "acme-conversions", "user": "acme", "remote_address": "127.0.0.1"},
        ]
        [upload] = [e for e in events if e["event"] == "upload"]
        assert upload == {
            "event": "upload", "namespace": NAMESPACE, "result": "landed", "protocol": "sftp",
            "connection": "acme-conversions", "user": "acme", "remote_address": "127.0.0.1",
            "file": "conversions_9.csv", "size": len(CONTENT),
            "sha256": hashlib.sha256(CONTENT).hexdigest(), "trace_id": receipt["trace_id"]}
        text = listener.log_text()
        for secret in (PASSWORD, WRONG):
            secret_scan.assert_absent(secret, text, "the listener's JSON log")
        # Nor the password's hash: the scrypt string's salt and digest.
        account_hash = json.loads(Path(listener.workspace.accounts_file).read_text())[
            "accounts"][0]["passwordHash"]
        for part in account_hash.split("$")[1:]:
            if len(part) >= 8:
                secret_scan.assert_absent(part, text, "the listener's JSON log")
        assert hash_password(PASSWORD) != account_hash  # salted: the test above is meaningful


def test_smtp_metrics_count_messages_per_connection(workspace: Workspace) -> None:
    """Port 25, as a partner's mail server delivers: one message accepted with two
    attachments, one refused for an attachment outside filenamePattern."""
    generator, port = metrics_listener(workspace, "smtp", "--domain", DOMAIN)
    for listener in generator:
        client = smtp_connect(listener.port)
        try:
            client.send_message(message(("report_1.csv", b"a,b\n"), ("report_2.csv", b"c\n")),
                                from_addr=SENDER, to_addrs=[ADDRESS])
            with pytest.raises(smtplib.SMTPDataError):
                client.send_message(message(("other.txt", b"x\n")), from_addr=SENDER,
                                    to_addrs=[ADDRESS])
        finally:
            smtp_close(client)
        samples = listener_metrics(port)
        where = {"namespace": NAMESPACE, "connection": "acme-mail", "protocol": "smtp"}
        assert total(samples, "connectors_listener_emails_total", result="accepted",
                     **where) == 1
        assert total(samples, "connectors_listener_emails_total", result="refused",
                     reason="pattern_mismatch", **where) == 1
        assert total(samples, "connectors_listener_emails_total") == 2
        assert total(samples, "connectors_listener_files_landed_total", **where) == 2
        assert total(samples, "connectors_listener_received_bytes_total", **where) == 6
        assert total(samples, "connectors_listener_landing_seconds_count", protocol="smtp") == 2
        assert total(samples, "connectors_listener_uploads_total") == 0
        assert total(samples, "connectors_listener_logins_total") == 0  # no login on port 25
        assert_bounded_labels(samples, "report_1.csv", "other.txt", "127.0.0.1", SENDER)


def test_sftp_downloads_are_counted_with_their_bytes(workspace: Workspace) -> None:
    home = workspace.home("globex-reports")
    home.mkdir(parents=True)
    (home / "report_1.csv").write_bytes(b"r1\n" * 1000)
    generator, port = metrics_listener(workspace, "sftp")
    where = {"namespace": NAMESPACE, "connection": "globex-reports", "protocol": "sftp"}
    for listener in generator:
        client = paramiko_client(listener, "globex", PASSWORD)
        try:
            got = io.BytesIO()
            client.open_sftp().getfo("report_1.csv", got)
        finally:
            client.close()
        assert got.getvalue() == b"r1\n" * 1000
        wait_until(lambda: total(listener_metrics(port), "connectors_listener_downloads_total",
                                 **where) == 1, message="the download to be counted")
        samples = listener_metrics(port)
        assert total(samples, "connectors_listener_sent_bytes_total", **where) == 3000
        assert total(samples, "connectors_listener_uploads_total") == 0
        assert_bounded_labels(samples, "report_1.csv", "127.0.0.1")
