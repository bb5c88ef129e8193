"""Pure pieces of the listeners: jail, defender, naming rules, landing, parsing, options."""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
from pathlib import Path

import pytest

from connectors.api.accounts import (
    Account,
    AccountTable,
    hash_password,
    permissions_for,
    shard_file,
    table_digest,
)
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners import main as listen
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender, DefenderSettings
from connectors.listeners.core.jail import Jail, PathRefused, normalize
from connectors.listeners.core.login_gate import SessionLimiter, key_blobs
from connectors.listeners.core.report import BackgroundReporter, TransferRecord, event_message
from connectors.listeners.core.rules import may_read, may_see, upload_refusal
from connectors.listeners.ftp.auth import ftp_permissions
from connectors.listeners.ftp.server import parse_port_range


def inbound(pattern: str | None = "conversions_*.csv") -> Account:
    return Account(username="acme", connection="acme-conversions", direction="Inbound",
                   home="acme-home", permissions=permissions_for("Inbound"),
                   filename_pattern=pattern)


def outbound(pattern: str | None = None) -> Account:
    return Account(username="globex", connection="globex-reports", direction="Outbound",
                   home="globex-reports", permissions=permissions_for("Outbound"),
                   filename_pattern=pattern)


# --- jail


@pytest.mark.parametrize(("path", "cwd", "expected"), [
    ("a.csv", "/", "/a.csv"),
    ("../../etc/passwd", "/", "/etc/passwd"),
    ("/../x", "/", "/x"),
    ("..", "/sub", "/"),
    ("", "/sub", "/sub"),
    ("//x//y/", "/", "/x/y"),
])
def test_normalize_keeps_paths_under_the_virtual_root(path: str, cwd: str,
                                                      expected: str) -> None:
    assert normalize(path, cwd) == expected


def test_jail_maps_inside_and_refuses_hidden_and_escaping_links(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (tmp_path / "outside").mkdir()
    (home / "out").symlink_to(tmp_path / "outside")
    (home / "sub").mkdir()
    (home / "in").symlink_to(home / "sub")
    jail = Jail(home)
    assert jail.real("/../../x.csv") == jail.home / "x.csv"
    assert jail.real("in") == jail.home / "in"
    for bad in ["out", "out/file", ".connectors", "sub/.upload-x.part", "a\x00b"]:
        with pytest.raises(PathRefused):
            jail.real(bad)
    assert jail.virtual(home / "sub") == "/sub"


# --- defender


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_defender_bans_an_address_then_forgives() -> None:
    clock = Clock()
    defender = Defender(DefenderSettings(max_failures_per_address=3, max_failures_per_user=100,
                                         window_seconds=60, ban_seconds=300), clock)
    assert not defender.failure("10.0.0.1", "a")
    assert not defender.failure("10.0.0.1", "b")
    assert defender.failure("10.0.0.1", "c")
    assert defender.banned("10.0.0.1")
    assert not defender.banned("10.0.0.2")
    clock.now += 301
    assert not defender.banned("10.0.0.1")


def test_defender_failures_outside_the_window_do_not_add_up() -> None:
    clock = Clock()
    defender = Defender(DefenderSettings(max_failures_per_address=2, window_seconds=10), clock)
    defender.failure("10.0.0.1", None)
    clock.now += 11
    defender.failure("10.0.0.1", None)
    assert not defender.banned("10.0.0.1")


def test_defender_bans_a_user_across_addresses_and_success_resets() -> None:
    clock = Clock()
    defender = Defender(DefenderSettings(max_failures_per_address=100, max_failures_per_user=3),
                        clock)
    defender.failure("10.0.0.1", "acme")
    defender.failure("10.0.0.2", "acme")
    defender.success("10.0.0.3", "acme")
    defender.failure("10.0.0.4", "acme")
    assert not defender.banned("10.0.0.5", "acme")
    defender.failure("10.0.0.5", "acme")
    defender.failure("10.0.0.6", "acme")
    assert defender.banned("10.0.0.7", "acme")
    assert not defender.banned("10.0.0.7", "other")


# --- naming rules


@pytest.mark.parametrize(("name", "fragment"), [
    ("other.csv", "does not match"),
    ("receipt_conversions_1.csv", "written by the platform"),
    ("result_conversions_1.csv", "written by the platform"),
    (".conversions_1.csv", "reserved"),
    ("", "a file name is needed"),
    ("conversions_" + "é" * 116 + ".csv", "bytes"),
    ("conversions_\x07.csv", "control characters"),
    ("sub/conversions_1.csv", "top of the home"),
])
def test_upload_refusals(name: str, fragment: str) -> None:
    reason = upload_refusal(inbound(), name)
    assert reason is not None
    assert fragment in reason


def test_upload_allowed_and_outbound_never_uploads() -> None:
    assert upload_refusal(inbound(), "conversions_2024.csv") is None
    assert upload_refusal(inbound(None), "anything.bin") is None
    assert upload_refusal(outbound(), "report.csv") == "this account may not upload files"


def test_read_rules() -> None:
    assert may_read(inbound(), "receipt_conversions_1.csv.txt")
    assert may_read(inbound(), "result_conversions_1.csv")
    assert not may_read(inbound(), "conversions_1.csv")
    assert may_read(outbound(), "report.csv")
    assert not may_read(outbound(), ".connectors")


@pytest.mark.parametrize(("account", "name", "seen", "read"), [
    # Outbound Pull: the Connection's files only; what the platform keeps beside
    # them is as if absent.
    (outbound("report_*.csv"), "report_1.csv", True, True),
    (outbound("report_*.csv"), "internal.txt", False, False),
    (outbound("report_*.csv"), "receipt_report_1.csv.txt", False, False),
    (outbound("report_*.csv"), ".upload-1.report_2.csv.part", False, False),
    (outbound(None), "anything.bin", True, True),
    # Inbound Push: its own uploads are listed but not read back; receipts are.
    (inbound(), "conversions_1.csv", True, False),
    (inbound(), "receipt_conversions_1.csv.txt", True, True),
    (inbound(), "notes.txt", False, False),
    (inbound(), ".connectors", False, False),
])
def test_what_a_partner_sees_and_reads(account: Account, name: str, seen: bool,
                                       read: bool) -> None:
    assert may_see(account, name) is seen
    assert may_read(account, name) is read


def test_ftp_permission_letters() -> None:
    assert ftp_permissions(inbound()) == "elrwT"
    assert ftp_permissions(outbound()) == "elr"


def test_parse_port_range() -> None:
    assert parse_port_range("30000-30002") == [30000, 30001, 30002]
    assert parse_port_range("2121") == [2121]
    assert parse_port_range(None) is None
    for bad in ["0-10", "20-10", "x-y", "1-70000"]:
        with pytest.raises(ValueError):  # noqa: PT011 - the message is for people
            parse_port_range(bad)


# --- landing


def test_landing_file_commits_atomically_with_receipt(tmp_path: Path) -> None:
    area = landing_area(tmp_path, inbound())
    area.ensure()
    landing = LandingFile(area, "conversions_1.csv")
    landing.write(b"hello ")
    landing.write(b"world")
    assert not (area.home / "conversions_1.csv").exists()  # invisible until commit
    receipt = landing.commit()
    assert (area.home / "conversions_1.csv").read_bytes() == b"hello world"
    assert receipt.sha256 == hashlib.sha256(b"hello world").hexdigest()
    assert receipt.connection == "acme-conversions"
    assert area.home == tmp_path / "acme-home"
    saved = json.loads((area.home / "receipt_conversions_1.csv.txt").read_text())
    assert saved["size"] == 11
    assert [p.name for p in area.home.iterdir() if p.name.startswith(".upload-")] == []


def test_landing_file_out_of_order_writes_hash_the_file(tmp_path: Path) -> None:
    area = landing_area(tmp_path, inbound())
    area.ensure()
    landing = LandingFile(area, "conversions_2.csv")
    landing.pwrite(5, b"56789")
    landing.pwrite(0, b"01234")
    receipt = landing.commit()
    assert receipt.sha256 == hashlib.sha256(b"0123456789").hexdigest()
    assert receipt.size == 10


def test_landing_file_abort_leaves_nothing(tmp_path: Path) -> None:
    area = landing_area(tmp_path, inbound())
    area.ensure()
    landing = LandingFile(area, "conversions_3.csv")
    landing.write(b"partial")
    landing.abort()
    assert sorted(p.name for p in area.home.iterdir()) == [".connectors"]


# --- account table


def write_table(path: Path, accounts: list[Account]) -> None:
    path.write_text(AccountTable(accounts=accounts).render())


def test_accounts_file_reloads_keeps_last_good_and_hides_suspended(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    write_table(path, [inbound()])
    table = AccountsFile(path)
    assert table.lookup("acme") is not None
    assert table.lookup("globex") is None
    write_table(path, [inbound().model_copy(update={"suspended": True}), outbound()])
    assert table.reload()
    assert table.lookup("acme") is None  # suspended
    assert table.lookup("globex") is not None
    path.write_text("{not json")
    assert not table.reload()
    assert table.lookup("globex") is not None  # last good table stays


def test_accounts_file_ignores_unsafe_homes(tmp_path: Path) -> None:
    path = tmp_path / "accounts.json"
    escaping = [outbound().model_copy(update={"username": f"u{i}", "home": home})
                for i, home in enumerate(["../etc", "a/b", ".connectors", ""])]
    write_table(path, [inbound(), *escaping])
    table = AccountsFile(path)
    assert table.lookup("acme") is not None
    assert [table.lookup(f"u{i}") for i in range(4)] == [None] * 4


def test_accounts_file_follows_a_swapped_symlink(tmp_path: Path) -> None:
    first, second = tmp_path / "..v1", tmp_path / "..v2"
    first.mkdir()
    second.mkdir()
    write_table(first / "accounts.json", [inbound()])
    write_table(second / "accounts.json", [outbound()])
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / "accounts.json").symlink_to("..data/accounts.json")
    table = AccountsFile(tmp_path / "accounts.json")
    assert table.lookup("acme") is not None
    (tmp_path / "..tmp").symlink_to(second.name)
    os.replace(tmp_path / "..tmp", tmp_path / "..data")
    assert table.reload()
    assert table.lookup("acme") is None
    assert table.lookup("globex") is not None


def test_a_folder_of_shards_is_one_table_and_a_new_shard_joins_it(tmp_path: Path) -> None:
    """The pod's projected volume: shard files appear as their Secrets are made,
    all at once with each swap of ..data; the table is all of them, and the
    digests reported are one per shard."""
    first, second = tmp_path / "..v1", tmp_path / "..v2"
    first.mkdir()
    second.mkdir()
    write_table(first / shard_file(3), [inbound()])
    write_table(second / shard_file(3), [inbound()])
    write_table(second / shard_file(11), [outbound()])
    (second / "notes.txt").write_text("not a shard")
    (tmp_path / "..data").symlink_to(first.name)
    (tmp_path / shard_file(3)).symlink_to(f"..data/{shard_file(3)}")
    reported: list[list[str]] = []
    table = AccountsFile(tmp_path, on_load=reported.append)
    assert table.lookup("acme") is not None
    assert table.lookup("globex") is None
    (tmp_path / shard_file(11)).symlink_to(f"..data/{shard_file(11)}")  # dangling until the swap
    (tmp_path / "..tmp").symlink_to(second.name)
    os.replace(tmp_path / "..tmp", tmp_path / "..data")
    assert table.reload()
    assert table.lookup("acme") is not None
    assert table.lookup("globex") is not None
    assert reported == [
        [table_digest((first / shard_file(3)).read_bytes())],
        [table_digest((second / shard_file(3)).read_bytes()),
         table_digest((second / shard_file(11)).read_bytes())]]
    (second / shard_file(11)).write_text("{broken")
    assert not table.reload()
    assert table.lookup("globex") is not None  # the last good table stays whole


def test_an_empty_folder_is_an_empty_table(tmp_path: Path) -> None:
    table = AccountsFile(tmp_path)
    assert table.accounts() == []
    assert table.lookup("acme") is None


# --- sftp pieces


def test_key_blobs_read_authorized_keys_lines() -> None:
    blob = "AAAAC3NzaC1lZDI1NTE5AAAAIHWcD8yPQbhBk1lyjF0w7jqnOZ6x5cmVGY3kP8m6mPjV"
    lines = [f"ssh-ed25519 {blob} partner", f'from="10.0.0.1" ssh-ed25519 {blob}',
             "ssh-ed25519 !!!notbase64", "garbage"]
    blobs = key_blobs(lines)
    assert len(blobs) == 1
    assert next(iter(blobs)).startswith(b"\x00\x00\x00\x0bssh-ed25519")


def test_session_limiter() -> None:
    limiter = SessionLimiter()
    assert limiter.acquire("acme", 2)
    assert limiter.acquire("acme", 2)
    assert not limiter.acquire("acme", 2)
    limiter.release("acme")
    assert limiter.acquire("acme", 2)
    assert limiter.acquire("other", 0)  # 0: no limit


# --- reporting


def test_background_reporter_hands_records_to_another_thread() -> None:
    seen: list[tuple[str, str]] = []
    done = threading.Event()

    class Recorder:
        def report(self, record: TransferRecord) -> None:
            seen.append((record.connection, threading.current_thread().name))
            done.set()

        def close(self) -> None:
            return None

    reporter = BackgroundReporter(Recorder())
    reporter.report(TransferRecord("acme", "sftp", 1, 10, "Succeeded", names=("a.csv",)))
    assert done.wait(30)
    reporter.close()
    assert seen == [("acme", "transfer-report")]


def test_record_to_status_and_event() -> None:
    record = TransferRecord("acme", "ftp", 2, 30, "Succeeded", names=("a.csv", "b.csv"))
    status = record.last_transfer().model_dump(by_alias=True, exclude_none=True)
    assert status["files"] == 2
    assert status["bytes"] == 30
    assert status["outcome"] == "Succeeded"
    assert "a.csv, b.csv" in event_message(record)
    refused = TransferRecord("acme", "smtp", 0, 0, "Failed", message="attachment 'x' refused")
    assert "attachment 'x' refused" in event_message(refused)


# --- command line


def test_options_come_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTORS_LISTEN_PORT", "3022")
    monkeypatch.setenv("CONNECTORS_REQUIRE_TLS", "true")
    monkeypatch.setenv("CONNECTORS_PASSIVE_PORTS", "30000-30009")
    parser = argparse.ArgumentParser()
    listen.add_arguments(parser)
    args = parser.parse_args(["ftp"])
    assert args.port == 3022
    assert args.require_tls is True
    assert args.passive_ports == "30000-30009"
    assert args.data_root == "/data"
    assert parser.parse_args(["ftp", "--port", "1"]).port == 1
    help_text = parser.format_help()
    for env in ["CONNECTORS_ACCOUNTS_FILE", "CONNECTORS_HOST_KEY_FILE", "CONNECTORS_EMAIL_DOMAIN",
                "CONNECTORS_IDLE_TIMEOUT", "CONNECTORS_MAX_SESSIONS_PER_ACCOUNT"]:
        assert env in help_text


def test_hash_is_not_logged_on_a_bad_table(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "accounts.json"
    secret_hash = hash_password("pw")
    path.write_text(json.dumps({"version": 1, "accounts": [
        {"username": "a", "passwordHash": secret_hash, "bogus": True}]}))
    AccountsFile(path)
    assert secret_hash not in caplog.text
    assert "invalid" in caplog.text


def test_a_replaced_file_is_kept_even_where_hard_links_are_refused(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Some network filesystems refuse link(2): the earlier version is copied instead."""
    import errno as errno_codes
    import os as os_module

    from connectors.landing.area import LandingArea

    area = LandingArea(tmp_path, "acme")
    area.ensure()
    (area.home / "conversions_1.csv").write_bytes(b"first\n")

    def no_links(source: object, target: object) -> None:
        raise OSError(errno_codes.EPERM, "Operation not permitted")

    monkeypatch.setattr(os_module, "link", no_links)
    folder = area.keep_superseded("conversions_1.csv")
    assert folder is not None
    assert (folder / "conversions_1.csv").read_bytes() == b"first\n"
