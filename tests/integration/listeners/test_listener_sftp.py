"""The SFTP listener against OpenSSH's sftp client and paramiko's client."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

import paramiko
import pytest

from connectors.devcluster.pki import ssh_keypair
from connectors.landing.names import TEMP_PREFIX
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Listener,
    Workspace,
    listener_fixture,
    need,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)


def known_hosts(listener: Listener) -> Path:
    path = listener.workspace.root / f"known_hosts_{listener.port}"
    public = (listener.workspace.root / "ssh_host_ed25519_key.pub").read_text().split()
    path.write_text(f"[127.0.0.1]:{listener.port} {public[0]} {public[1]}\n")
    return path


def sftp(listener: Listener, user: str, *commands: str, key: Path | None = None,
         cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Runs OpenSSH sftp in batch mode; the batch stops at the first failing command."""
    need("sftp")
    key = key or listener.workspace.client_key
    return subprocess.run(
        ["sftp", "-b", "-", "-P", str(listener.port), "-i", str(key),
         "-o", "IdentitiesOnly=yes", "-o", "IdentityAgent=none",
         "-o", "PasswordAuthentication=no", "-o", "BatchMode=yes",
         "-o", f"UserKnownHostsFile={known_hosts(listener)}",
         "-o", "StrictHostKeyChecking=yes", f"{user}@127.0.0.1"],
        input="\n".join(commands) + "\n", capture_output=True, text=True, timeout=120,
        cwd=cwd or listener.workspace.root, check=False,
    )


def paramiko_client(listener: Listener, user: str, password: str) -> paramiko.SSHClient:
    client = paramiko.SSHClient()
    public = (listener.workspace.root / "ssh_host_ed25519_key.pub").read_text().split()
    host_key = paramiko.PKey.from_type_string(public[0], base64.b64decode(public[1]))
    # SSHClient refuses unknown hosts (RejectPolicy): trust exactly the listener's key.
    client.get_host_keys().add(f"[127.0.0.1]:{listener.port}", public[0], host_key)
    client.connect("127.0.0.1", port=listener.port, username=user, password=password,
                   look_for_keys=False, allow_agent=False, timeout=30, banner_timeout=30,
                   auth_timeout=30)
    return client


def landed(home: Path) -> list[str]:
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


def temporaries(home: Path) -> list[str]:
    if not home.exists():
        return []
    return [p.name for p in home.iterdir() if p.name.startswith(TEMP_PREFIX)]


def test_upload_lands_with_receipt_and_is_listed(sftp_listener: Listener) -> None:
    root = sftp_listener.workspace.root
    (root / "conversions_1.csv").write_bytes(b"id,value\n1,2\n")
    result = sftp(sftp_listener, "acme", "put conversions_1.csv", "ls -1")
    assert result.returncode == 0, result.stderr
    home = sftp_listener.workspace.home("acme-conversions")
    assert (home / "conversions_1.csv").read_bytes() == b"id,value\n1,2\n"
    receipt = json.loads((home / "receipt_conversions_1.csv.txt").read_text())
    assert receipt["sha256"] == hashlib.sha256(b"id,value\n1,2\n").hexdigest()
    assert receipt["size"] == 13
    assert receipt["connection"] == "acme-conversions"
    assert "conversions_1.csv" in result.stdout
    assert ".connectors" not in result.stdout
    assert temporaries(home) == []


def test_receipt_can_be_read_back_but_uploads_cannot(sftp_listener: Listener) -> None:
    root = sftp_listener.workspace.root
    (root / "conversions_2.csv").write_bytes(b"x\n")
    assert sftp(sftp_listener, "acme", "put conversions_2.csv").returncode == 0
    got = sftp(sftp_listener, "acme", "get receipt_conversions_2.csv.txt back.txt")
    assert got.returncode == 0, got.stderr
    assert json.loads((root / "back.txt").read_text())["name"] == "conversions_2.csv"
    refused = sftp(sftp_listener, "acme", "get conversions_2.csv copy.csv")
    assert refused.returncode != 0
    assert not (root / "copy.csv").exists()


@pytest.mark.parametrize("command", [
    "mkdir newdir", "rm conversions_3.csv", "rename conversions_3.csv conversions_4.csv",
    "rmdir .connectors", "symlink conversions_3.csv conversions_5.csv",
])
def test_changes_other_than_upload_are_refused(sftp_listener: Listener, command: str) -> None:
    root = sftp_listener.workspace.root
    (root / "conversions_3.csv").write_bytes(b"x\n")
    assert sftp(sftp_listener, "acme", "put conversions_3.csv").returncode == 0
    before = landed(sftp_listener.workspace.home("acme-conversions"))
    result = sftp(sftp_listener, "acme", command)
    assert result.returncode != 0
    assert landed(sftp_listener.workspace.home("acme-conversions")) == before


@pytest.mark.parametrize("name", ["other.csv", "receipt_conversions_1.csv", "result_x.csv",
                                  ".hidden.csv"])
def test_refused_names_land_nothing(sftp_listener: Listener, name: str) -> None:
    root = sftp_listener.workspace.root
    (root / "source.csv").write_bytes(b"x\n")
    result = sftp(sftp_listener, "acme", f"put source.csv {name}")
    assert result.returncode != 0
    assert landed(sftp_listener.workspace.home("acme-conversions")) == [".connectors"]


def test_refusal_carries_a_clear_message(sftp_listener: Listener) -> None:
    client = paramiko_client(sftp_listener, "acme", PASSWORD)
    try:
        channel = client.open_sftp()
        with pytest.raises(OSError, match="does not match the filename pattern"):
            channel.open("other.csv", "w")
        with pytest.raises(OSError, match="written by the platform"):
            channel.open("receipt_conversions_1.csv", "w")
    finally:
        client.close()


def test_password_login_and_upload_with_paramiko(sftp_listener: Listener) -> None:
    client = paramiko_client(sftp_listener, "acme", PASSWORD)
    try:
        channel = client.open_sftp()
        with channel.open("conversions_pw.csv", "w") as handle:
            handle.write(b"a" * 100_000)
        names = channel.listdir(".")
    finally:
        client.close()
    assert "conversions_pw.csv" in names
    assert (sftp_listener.workspace.home("acme-conversions") / "conversions_pw.csv"
            ).stat().st_size == 100_000


def test_wrong_password_and_unknown_user_and_suspended_fail(sftp_listener: Listener) -> None:
    for user, password in [("acme", "wrong"), ("nobody", PASSWORD), ("frozen", PASSWORD)]:
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(sftp_listener, user, password)


def test_unknown_key_is_refused(sftp_listener: Listener) -> None:
    other = sftp_listener.workspace.root / "other_key"
    ssh_keypair(other)
    result = sftp(sftp_listener, "acme", "ls", key=other)
    assert result.returncode != 0
    assert "Permission denied" in result.stderr


def test_paths_cannot_leave_the_home(sftp_listener: Listener, tmp_path: Path) -> None:
    outside = tmp_path / "data" / "globex-reports"
    outside.mkdir(parents=True)
    (outside / "secret.txt").write_text("not yours")
    for path in ["../globex-reports/secret.txt", "/../../globex-reports/secret.txt",
                 "/etc/passwd", "../../../../etc/passwd", ".connectors"]:
        result = sftp(sftp_listener, "acme", f"get {path} stolen")
        assert result.returncode != 0, path
        assert not (sftp_listener.workspace.root / "stolen").exists()
    listing = sftp(sftp_listener, "acme", "ls -1 ../..")
    assert "secret.txt" not in listing.stdout


def test_planted_symlink_does_not_escape(sftp_listener: Listener, tmp_path: Path) -> None:
    secret_dir = tmp_path / "elsewhere"
    secret_dir.mkdir()
    (secret_dir / "secret.txt").write_text("not yours")
    home = sftp_listener.workspace.home("acme-conversions")
    home.mkdir(parents=True, exist_ok=True)
    (home / "link").symlink_to(secret_dir)
    (home / "receipt_link.txt").symlink_to(secret_dir / "secret.txt")
    for command in ["get link/secret.txt stolen", "get receipt_link.txt stolen"]:
        result = sftp(sftp_listener, "acme", command)
        assert result.returncode != 0, command
    assert not (sftp_listener.workspace.root / "stolen").exists()
    # The link itself may be listed; what it points to may not.
    listing = sftp(sftp_listener, "acme", "ls -1 link/")
    assert "secret.txt" not in listing.stdout


def test_outbound_account_downloads_and_cannot_upload(sftp_listener: Listener) -> None:
    home = sftp_listener.workspace.home("globex-reports")
    home.mkdir(parents=True)
    (home / "report_1.csv").write_bytes(b"r\n")
    (home / ".hidden").write_bytes(b"h\n")
    root = sftp_listener.workspace.root
    got = sftp(sftp_listener, "globex", "ls -1", "get report_1.csv r.csv")
    assert got.returncode == 0, got.stderr
    assert (root / "r.csv").read_bytes() == b"r\n"
    assert ".hidden" not in got.stdout
    (root / "up.csv").write_bytes(b"u\n")
    assert sftp(sftp_listener, "globex", "put up.csv").returncode != 0
    assert not (home / "up.csv").exists()


def slow_upload(listener: Listener, name: str) -> subprocess.Popen[bytes]:
    """OpenSSH sftp putting 50 MiB slowly (-l limits its bandwidth in Kbit/s), so
    that a kill lands mid-upload; returns once the upload has written 2 MiB."""
    need("sftp")
    root = listener.workspace.root
    with (root / name).open("wb") as handle:
        for _ in range(50):
            handle.write(os.urandom(1024 * 1024))
    home = listener.workspace.home("acme-conversions")
    process = subprocess.Popen(
        ["sftp", "-l", "16000", "-b", "-", "-P", str(listener.port),
         "-i", str(listener.workspace.client_key), "-o", "IdentitiesOnly=yes",
         "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known_hosts(listener)}",
         "acme@127.0.0.1"],
        stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root,
    )
    assert process.stdin is not None
    process.stdin.write(f"put {name}\n".encode())
    process.stdin.close()
    wait_until(lambda: any((home / temp).stat().st_size > 2 * 1024 * 1024
                           for temp in temporaries(home)), message="the upload to start")
    return process


def test_killed_client_leaves_nothing(sftp_listener: Listener) -> None:
    home = sftp_listener.workspace.home("acme-conversions")
    process = slow_upload(sftp_listener, "conversions_big.csv")
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    wait_until(lambda: temporaries(home) == [], message="the temporary file to go")
    assert landed(home) == [".connectors"]


def test_listener_stopped_mid_upload_leaves_nothing(sftp_listener: Listener) -> None:
    """A pod being deleted gets SIGTERM while a partner uploads: the upload is
    cut and its temporary file goes with the process, not minutes later when
    the next pod's sweep finds it stale."""
    home = sftp_listener.workspace.home("acme-conversions")
    process = slow_upload(sftp_listener, "conversions_cut.csv")
    sftp_listener.process.send_signal(signal.SIGTERM)
    assert sftp_listener.process.wait(timeout=30) == 0
    assert process.wait(timeout=30) != 0, "the cut upload reported success"
    assert temporaries(home) == []
    assert landed(home) == [".connectors"]


def test_brute_force_is_banned(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "sftp", "--ban-user-failures", "3",
                           "--ban-address-failures", "100", "--ban-seconds", "600")
    listener = next(gen)
    try:
        for _ in range(3):
            with pytest.raises(paramiko.AuthenticationException):
                paramiko_client(listener, "acme", "guess")
        # The right password no longer works while the user is banned.
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(listener, "acme", PASSWORD)
        # Another user from the same address still gets in.
        paramiko_client(listener, "globex", PASSWORD).close()
    finally:
        gen.close()


def test_sessions_per_account_are_limited(workspace: Workspace) -> None:
    """A session is a login that opened a channel; the next one is refused
    its channel while the account has its maximum."""
    gen = listener_fixture(workspace, "sftp", "--max-sessions-per-account", "1")
    listener = next(gen)
    try:
        first = paramiko_client(listener, "acme", PASSWORD)
        first.open_sftp()
        second = paramiko_client(listener, "acme", PASSWORD)
        with pytest.raises(paramiko.ChannelException):
            second.open_sftp()
        second.close()
        first.close()

        def another_gets_in() -> bool:
            client = paramiko_client(listener, "acme", PASSWORD)
            try:
                client.open_sftp().close()
            except paramiko.ChannelException:
                return False
            finally:
                client.close()
            return True

        wait_until(another_gets_in, message="the session slot to be released")
    finally:
        gen.close()


def probe_key(listener: Listener, user: str, key: paramiko.PKey) -> paramiko.Transport:
    """Offers `key` for `user` without signing (RFC 4252 7: the query a client
    makes before it signs) and keeps the connection open."""
    transport = paramiko.Transport(("127.0.0.1", listener.port))
    transport.start_client(timeout=30)
    request = paramiko.Message()
    request.add_byte(bytes([5]))  # SSH_MSG_SERVICE_REQUEST
    request.add_string("ssh-userauth")
    transport._send_message(request)  # type: ignore[attr-defined]
    query = paramiko.Message()
    query.add_byte(bytes([50]))  # SSH_MSG_USERAUTH_REQUEST
    query.add_string(user)
    query.add_string("ssh-connection")
    query.add_string("publickey")
    query.add_boolean(False)  # no signature: a probe
    query.add_string(key.get_name())
    query.add_string(key.asbytes())
    transport._send_message(query)  # type: ignore[attr-defined]
    return transport


def test_unsigned_key_probes_are_no_login(workspace: Workspace) -> None:
    """Anyone may hold a partner's public key. Probing with it takes no session
    slot and does not wipe the partner's failure count."""
    gen = listener_fixture(workspace, "sftp", "--max-sessions-per-account", "2",
                           "--ban-user-failures", "3", "--ban-address-failures", "100")
    listener = next(gen)
    public = paramiko.Ed25519Key.from_private_key_file(str(workspace.client_key))
    probes: list[paramiko.Transport] = []
    try:
        for _ in range(2):
            with pytest.raises(paramiko.AuthenticationException):
                paramiko_client(listener, "acme", "guess")
        probes = [probe_key(listener, "acme", public) for _ in range(5)]
        time.sleep(1.0)  # let the listener answer every probe
        # The partner's own key still gets a session while the probes stay open.
        client = paramiko.SSHClient()
        host = (workspace.root / "ssh_host_ed25519_key.pub").read_text().split()
        client.get_host_keys().add(f"[127.0.0.1]:{listener.port}", host[0],
                                   paramiko.PKey.from_type_string(host[0],
                                                                  base64.b64decode(host[1])))
        client.connect("127.0.0.1", port=listener.port, username="acme",
                       key_filename=str(workspace.client_key), look_for_keys=False,
                       allow_agent=False, timeout=30)
        client.open_sftp().close()
        client.close()
        # The two earlier failures still count: the probes reset nothing, so a
        # third failure bans the user. (A signed login does reset them; the
        # count starts again after it, hence three more.)
        for _ in range(3):
            with pytest.raises(paramiko.AuthenticationException):
                paramiko_client(listener, "acme", "guess")
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(listener, "acme", PASSWORD)
    finally:
        for transport in probes:
            transport.close()
        gen.close()


def test_probes_do_not_reset_failures(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "sftp", "--ban-user-failures", "3",
                           "--ban-address-failures", "100")
    listener = next(gen)
    public = paramiko.Ed25519Key.from_private_key_file(str(workspace.client_key))
    try:
        for _ in range(2):
            with pytest.raises(paramiko.AuthenticationException):
                paramiko_client(listener, "acme", "guess")
        probe = probe_key(listener, "acme", public)
        time.sleep(1.0)
        probe.close()
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(listener, "acme", "guess")
        # Three failures in all: banned, the right password no longer works.
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(listener, "acme", PASSWORD)
    finally:
        gen.close()


def test_idle_sessions_are_closed(workspace: Workspace) -> None:
    gen = listener_fixture(workspace, "sftp", "--idle-timeout", "2")
    listener = next(gen)
    try:
        client = paramiko_client(listener, "acme", PASSWORD)
        client.open_sftp()
        transport = client.get_transport()
        assert transport is not None
        wait_until(lambda: not transport.is_active(), message="the idle session to close")
    finally:
        gen.close()


def test_account_table_reloads_without_dropping_sessions(
    sftp_listener: Listener, workspace: Workspace
) -> None:
    client = paramiko_client(sftp_listener, "acme", PASSWORD)
    try:
        accounts = workspace.default_accounts()
        renamed = [a.model_copy(update={"username": "acme2"}) if a.username == "acme" else a
                   for a in accounts]
        workspace.write_accounts(renamed)

        def new_user_works() -> bool:
            try:
                paramiko_client(sftp_listener, "acme2", PASSWORD).close()
            except paramiko.AuthenticationException:
                return False
            return True

        wait_until(new_user_works, message="the new account table")
        # The session opened before the change keeps working.
        channel = client.open_sftp()
        with channel.open("conversions_after.csv", "w") as handle:
            handle.write(b"still here\n")
        with pytest.raises(paramiko.AuthenticationException):
            paramiko_client(sftp_listener, "acme", PASSWORD)
    finally:
        client.close()
    assert (workspace.home("acme-conversions") / "conversions_after.csv").exists()
