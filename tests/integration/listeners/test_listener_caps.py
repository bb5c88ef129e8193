"""Connection caps (listeners/core/capacity.py), with real clients on loopback: the
connections past --max-connections, or past --max-unauthenticated before login,
are refused with the documented answer before any login; closing one lets a
partner in; a connection that does not log in within --login-grace-seconds is
closed."""

from __future__ import annotations

import ftplib
import io
import smtplib
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

import paramiko
import pytest

from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Listener,
    Workspace,
    listener_fixture,
    need,
    wait_until,
)
from tests.integration.listeners.smtp_support import ADDRESS, close, connect, message
from tests.integration.listeners.smtp_support import visible as mail_files
from tests.integration.listeners.test_listener_ftp import login as ftp_login
from tests.integration.listeners.test_listener_sftp import known_hosts, paramiko_client
from tests.support.wait import eventually

pytestmark = pytest.mark.timeout(300)

# Small caps, so that a test fills them with a handful of connections.
CAPS = ("--max-connections", "4", "--max-unauthenticated", "2")
TOO_MANY = "Too many connections, try again later"


@contextmanager
def listening(workspace: Workspace, protocol: str, *extra: str) -> Iterator[Listener]:
    generator = listener_fixture(workspace, protocol, *extra)
    listener = next(generator)
    try:
        yield listener
    finally:
        next(generator, None)


def raw(listener: Listener, greeting: bytes = b"") -> socket.socket:
    """A TCP connection that says nothing; it has read `greeting` when given."""
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=30)
    if greeting:
        assert sock.recv(1024).startswith(greeting)
    return sock


def occupy(listener: Listener) -> socket.socket:
    """A connection the listener took, and that will never log in: for SSH one
    that exchanged versions and got the key exchange offer (not a disconnect),
    for FTP and SMTP one greeted with 220. A refusal is tried again: the
    harness's own probe of the port may still hold a place for a moment."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        sock = socket.create_connection(("127.0.0.1", listener.port), timeout=30)
        if listener.protocol == "sftp":
            sock.sendall(b"SSH-2.0-capacity_test\r\n")
            accepted = _first_ssh_packet(sock) == 20  # SSH_MSG_KEXINIT
        else:
            accepted = sock.recv(1024).startswith(b"220 ")
        if accepted:
            return sock
        sock.close()
        time.sleep(0.2)
    raise AssertionError(f"the {listener.protocol} listener took no connection")


def _first_ssh_packet(sock: socket.socket) -> int:
    """The message type of the first packet after the server's version line."""
    data = b""
    while b"\r\n" not in data or len(data.partition(b"\r\n")[2]) < 6:
        chunk = sock.recv(4096)
        if not chunk:
            return -1
        data += chunk
    return data.partition(b"\r\n")[2][5]


def read_all(sock: socket.socket, limit: float = 30.0) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(limit)
    chunks = []
    while chunk := sock.recv(4096):
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def closed_within(sock: socket.socket, limit: float) -> tuple[float, bytes]:
    started = time.monotonic()
    said = read_all(sock, limit)
    return time.monotonic() - started, said


# --- SFTP


def ssh_refusal(listener: Listener) -> str:
    """What the listener sends a connection it has no room for: the version line,
    then an SSH_MSG_DISCONNECT packet in clear. Its description."""
    sock = socket.create_connection(("127.0.0.1", listener.port), timeout=30)
    sock.sendall(b"SSH-2.0-capacity_test\r\n")
    data = read_all(sock)
    version, _, packet = data.partition(b"\r\n")
    assert version.startswith(b"SSH-2.0-"), data
    length, _, kind = struct.unpack(">IBB", packet[:6])
    assert kind == 1, data  # SSH_MSG_DISCONNECT
    assert len(packet) == 4 + length, data  # the one packet, then the connection closed
    reason, size = struct.unpack(">II", packet[6:14])
    assert reason == 12, data  # SSH_DISCONNECT_TOO_MANY_CONNECTIONS
    return packet[14:14 + size].decode()


def openssh_sftp(listener: Listener, *commands: str) -> subprocess.CompletedProcess[str]:
    need("sftp")
    return subprocess.run(
        ["sftp", "-b", "-", "-P", str(listener.port), "-i", str(listener.workspace.client_key),
         "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={known_hosts(listener)}",
         "-o", "StrictHostKeyChecking=yes", "acme@127.0.0.1"],
        input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=120,
        cwd=listener.workspace.root, check=False)


def sftp_upload(listener: Listener, name: str) -> None:
    client = paramiko_client(listener, "acme", PASSWORD)
    try:
        client.open_sftp().putfo(io.BytesIO(b"a,b\n1,2\n"), name)
    finally:
        client.close()


def test_sftp_past_the_unauthenticated_cap_is_refused_until_one_goes(
        workspace: Workspace) -> None:
    with listening(workspace, "sftp", *CAPS) as listener:
        idle = [occupy(listener), occupy(listener)]
        assert ssh_refusal(listener) == TOO_MANY
        # OpenSSH's client says why, and fails.
        result = openssh_sftp(listener, "ls")
        assert result.returncode != 0
        assert f"Received disconnect from 127.0.0.1 port {listener.port}:12: {TOO_MANY}" \
            in result.stderr, result.stderr
        with pytest.raises(paramiko.SSHException):
            paramiko_client(listener, "acme", PASSWORD)

        idle.pop().close()
        wait_until(lambda: openssh_sftp(listener, "ls").returncode == 0, 30,
                   "a place to come free")
        (workspace.root / "conversions_1.csv").write_text("a,b\n1,2\n")
        result = openssh_sftp(listener, "put conversions_1.csv")
        assert result.returncode == 0, result.stderr
        assert (workspace.home("acme-conversions") / "conversions_1.csv").exists()
        idle.pop().close()
        assert "refused 1 connection(s) (too many unauthenticated)" in listener.log_text()


def test_sftp_past_the_total_cap_is_refused_and_a_partner_gets_the_freed_place(
        workspace: Workspace) -> None:
    with listening(workspace, "sftp", *CAPS) as listener:
        # Three logged in (a channel open: the login is complete), one not: four.
        sessions, channels = [], []
        for _ in range(3):
            client = eventually(lambda: _logged_in(listener), 30, "a login", interval=0.2)
            sessions.append(client)
            channels.append(client.open_sftp())
        idle = occupy(listener)
        assert ssh_refusal(listener) == TOO_MANY
        assert "too many connections" in listener.log_text()

        channels.pop().close()
        sessions.pop().close()
        wait_until(lambda: _uploads(listener, "conversions_2.csv"), 30,
                   "a partner to log in and upload")
        assert (workspace.home("acme-conversions") / "conversions_2.csv").exists()
        idle.close()
        for client in sessions:
            client.close()


def _logged_in(listener: Listener) -> paramiko.SSHClient | None:
    try:
        return paramiko_client(listener, "acme", PASSWORD)
    except paramiko.SSHException:
        return None  # refused: the harness's probe of the port held a place


def _uploads(listener: Listener, name: str) -> bool:
    try:
        sftp_upload(listener, name)
    except paramiko.SSHException:
        return False
    return True


def test_sftp_without_a_login_is_closed_after_the_grace_time(workspace: Workspace) -> None:
    with listening(workspace, "sftp", "--login-grace-seconds", "2") as listener:
        # paramiko's own banner timeout is 15 s: closed well before, it is the grace time.
        silent = raw(listener)
        seconds, _ = closed_within(silent, 30)
        assert 1.5 <= seconds < 10, seconds
        # One that exchanged versions and stopped there, likewise.
        stalled = raw(listener, b"SSH-2.0-")
        stalled.sendall(b"SSH-2.0-stalled\r\n")
        seconds, _ = closed_within(stalled, 30)
        assert 1.5 <= seconds < 10, seconds
        # A partner who logs in stays past it.
        client = paramiko_client(listener, "acme", PASSWORD)
        channel = client.open_sftp()
        time.sleep(4)
        assert channel.listdir(".") is not None
        client.close()
        assert "no login within 2s" in listener.log_text()


# --- FTP


def test_ftp_past_the_caps_is_told_421_and_a_freed_place_takes_a_login(
        workspace: Workspace) -> None:
    with listening(workspace, "ftp", *CAPS) as listener:
        idle = [occupy(listener), occupy(listener)]
        refused = read_all(raw(listener))
        assert refused == f"421 {TOO_MANY}\r\n".encode()
        with pytest.raises(ftplib.error_temp, match=f"^421 {TOO_MANY}$"):
            ftp_login(listener)

        idle.pop().close()
        client = _eventually_logged_in(listener)
        client.storbinary("STOR conversions_1.csv", io.BytesIO(b"a,b\n1,2\n"))
        # Logged in, it left the unauthenticated count: two more may connect...
        second = ftp_login(listener)
        idle.append(occupy(listener))
        # ...and now there are four in all: two logged in, two idle.
        assert read_all(raw(listener)) == f"421 {TOO_MANY}\r\n".encode()
        for one in (client, second):
            one.quit()
        for sock in idle:
            sock.close()
        assert (workspace.home("acme-conversions") / "conversions_1.csv").exists()


def _eventually_logged_in(listener: Listener) -> ftplib.FTP:
    clients: list[ftplib.FTP] = []

    def attempt() -> bool:
        try:
            clients.append(ftp_login(listener))
        except ftplib.error_temp:
            return False
        return True

    wait_until(attempt, 30, "a place to come free")
    return clients[0]


def test_ftp_without_a_login_is_closed_after_the_grace_time(workspace: Workspace) -> None:
    with listening(workspace, "ftp", "--login-grace-seconds", "2") as listener:
        sock = raw(listener, b"220 ")
        sock.sendall(b"USER acme\r\n")  # a command is not a login: the grace time runs on
        seconds, said = closed_within(sock, 30)
        assert 1.5 <= seconds < 10, seconds
        assert said.endswith(b"421 No login within 2 seconds; closing the connection.\r\n"), said
        client = ftp_login(listener)
        time.sleep(3)
        assert client.pwd() == "/"
        client.quit()


# --- SMTP


def test_smtp_past_the_caps_is_told_421_and_a_freed_place_takes_mail(
        workspace: Workspace) -> None:
    with listening(workspace, "smtp", "--domain", "partners.example", *CAPS) as listener:
        idle = [occupy(listener), occupy(listener)]
        assert read_all(raw(listener)) == f"421 4.7.0 {TOO_MANY}\r\n".encode()

        idle.pop().close()

        def delivered() -> bool:
            try:
                client = connect(listener.port)
            except smtplib.SMTPConnectError as refused:  # 421 in place of the greeting
                return refused.smtp_code != 421 and pytest.fail(str(refused))
            try:
                client.send_message(message(("report_1.csv", b"a,b\n1,2\n")), to_addrs=[ADDRESS])
            finally:
                close(client)
            return True

        wait_until(delivered, 30, "a place to come free")
        assert "report_1.csv" in mail_files(workspace.home("acme-mail"))
        idle.pop().close()


def test_smtp_without_a_login_is_closed_after_the_grace_time(workspace: Workspace) -> None:
    with listening(workspace, "smtp", "--domain", "partners.example",
                   "--login-grace-seconds", "2") as listener:
        sock = raw(listener, b"220 ")
        sock.sendall(b"EHLO idle.example\r\n")
        seconds, said = closed_within(sock, 30)
        assert 1.5 <= seconds < 10, seconds
        assert said.endswith(b"421 4.7.0 No login within 2 seconds; closing the "
                             b"connection\r\n"), said
