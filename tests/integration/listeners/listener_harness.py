"""Starts a real listener (`connectors listen ...`) as a subprocess on loopback,
with its own account table, data root, host key and TLS certificate."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from connectors.api.accounts import Account, AccountTable, hash_password, permissions_for
from connectors.devcluster import net
from connectors.devcluster.net import free_port
from connectors.devcluster.pki import self_signed
from connectors.devcluster.pki import ssh_keypair as make_ssh_keypair
from tests.support import secrets as secret_scan
from tests.support.wait import eventually

PASSWORD = "correct-horse-battery-1"
MAIL_PASSWORD = "mail-staple-2"
secret_scan.remember(PASSWORD)
secret_scan.remember(MAIL_PASSWORD)

__all__ = ["free_port", "self_signed"]  # for the tests that import them from here


def need(binary: str) -> str:
    path = shutil.which(binary)
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package needed for this test)")
    return path


def wait_for_port(port: int, process: subprocess.Popen[bytes], log: Path,
                  timeout: float = 60.0) -> None:
    """net.wait_for_port, failing with the listener's log."""
    try:
        net.wait_for_port(port, timeout, process)
    except RuntimeError:
        raise AssertionError(f"listener exited early:\n{log.read_text()}") from None
    except TimeoutError:
        raise AssertionError(f"listener did not open port {port}:\n{log.read_text()}") from None


def wait_until(predicate: object, timeout: float = 60.0, message: str = "condition") -> None:
    assert callable(predicate)
    eventually(predicate, timeout, message, interval=0.1)


@dataclass
class Workspace:
    root: Path
    data: Path = field(init=False)
    accounts_file: Path = field(init=False)
    client_key: Path = field(init=False)
    host_key: Path = field(init=False)

    def __post_init__(self) -> None:
        self.data = self.root / "data"
        self.data.mkdir()
        self.accounts_file = self.root / "accounts" / "accounts.json"
        self.accounts_file.parent.mkdir()
        self.client_key = make_ssh_keypair(self.root / "client_key", comment="test")
        self.host_key = make_ssh_keypair(self.root / "ssh_host_ed25519_key", comment="test")

    def client_public_key(self) -> str:
        return (self.root / "client_key.pub").read_text().strip()

    def default_accounts(self) -> list[Account]:
        password_hash = hash_password(PASSWORD)
        return [
            Account(username="acme", connection="acme-conversions", direction="Inbound",
                    home="acme-conversions", permissions=permissions_for("Inbound"),
                    filename_pattern="conversions_*.csv", password_hash=password_hash,
                    authorized_keys=[self.client_public_key()]),
            Account(username="globex", connection="globex-reports", direction="Outbound",
                    home="globex-reports", permissions=permissions_for("Outbound"),
                    password_hash=password_hash, authorized_keys=[self.client_public_key()]),
            Account(username="mailer", connection="acme-mail", direction="Inbound",
                    home="acme-mail", permissions=permissions_for("Inbound"),
                    filename_pattern="report_*.csv", password_hash=hash_password(MAIL_PASSWORD)),
            Account(username="frozen", connection="frozen-conn", direction="Inbound",
                    home="frozen-conn", permissions=permissions_for("Inbound"),
                    password_hash=password_hash, suspended=True),
        ]

    def write_accounts(self, accounts: list[Account]) -> None:
        """Writes the table the way kubelet updates a Secret volume: a new
        timestamped folder, then an atomic swap of the `..data` symlink."""
        folder = self.accounts_file.parent
        stamp = folder / f"..{time.time_ns()}"
        stamp.mkdir()
        (stamp / "accounts.json").write_text(AccountTable(accounts=accounts).render())
        link = folder / "..data"
        temp_link = folder / "..data_tmp"
        temp_link.unlink(missing_ok=True)
        temp_link.symlink_to(stamp.name)
        os.replace(temp_link, link)
        if not self.accounts_file.is_symlink():
            self.accounts_file.symlink_to("..data/accounts.json")

    def home(self, connection: str) -> Path:
        return self.data / connection


@dataclass
class Listener:
    protocol: str
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    workspace: Workspace

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def start_listener(workspace: Workspace, protocol: str, *extra: str,
                   env: dict[str, str] | None = None) -> Listener:
    port = free_port()
    log = workspace.root / f"{protocol}-{port}.log"
    command = [
        sys.executable, "-m", "connectors.cli", "listen", protocol,
        "--address", "127.0.0.1", "--port", str(port),
        "--accounts-file", str(workspace.accounts_file),
        "--data-root", str(workspace.data),
        "--host-key-file", str(workspace.host_key),
        "--accounts-poll-seconds", "0.5",
        # No metrics unless a test asks (a later --metrics-port wins): the
        # default port would be one for every listener of the machine.
        "--metrics-port", "0",
        *extra,
    ]
    if protocol == "smtp" and "--submission-port" not in extra:
        # Its default is one fixed port (2587): tests that want it ask for a free one.
        command += ["--submission-port", "0"]
    environment = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTORS_")}
    environment.update(env or {})
    with log.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                                   env=environment)
    listener = Listener(protocol, port, process, log, workspace)
    try:
        wait_for_port(port, process, log)
    except BaseException:
        listener.stop()
        raise
    return listener


@pytest.fixture
def workspace(tmp_path: Path) -> Workspace:
    space = Workspace(tmp_path)
    space.write_accounts(space.default_accounts())
    return space


def listener_fixture(workspace: Workspace, protocol: str, *extra: str,
                     env: dict[str, str] | None = None) -> Iterator[Listener]:
    listener = start_listener(workspace, protocol, *extra, env=env)
    try:
        yield listener
    finally:
        listener.stop()
        # Secrets must never reach the log, whatever the test did.
        text = listener.log_text()
        assert PASSWORD not in text
        assert MAIL_PASSWORD not in text
