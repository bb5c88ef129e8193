"""The SMTP listener's pure parts: a message lands whole or not at all, for
one recipient Connection or several, the refusal words, and its login through
the listeners' LoginGate."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.smtp import Envelope, LoginPassword, Session

from connectors.api.accounts import (
    Account,
    AccountTable,
    Permission,
    hash_password,
    permissions_for,
)
from connectors.landing.area import LandingArea
from connectors.landing.receipts import Receipt
from connectors.landing.receive import LandingFile
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender, DefenderSettings
from connectors.listeners.core.login_gate import Admission, LoginGate
from connectors.listeners.core.report import TransferRecord
from connectors.listeners.smtp import policy
from connectors.listeners.smtp.landing import Inbox, MessageRefused
from connectors.listeners.smtp.policy import reply_text
from connectors.listeners.smtp.server import AccountAuthenticator, ListenerSMTP

PASSWORD = "unit-mail-password-3"


class Recorder:
    def __init__(self) -> None:
        self.records: list[TransferRecord] = []

    def report(self, record: TransferRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


def mailer(permissions: list[Permission] | None = None, connection: str = "acme-mail",
           pattern: str = "report_*.csv", username: str = "mailer") -> Account:
    return Account(username=username, connection=connection, direction="Inbound",
                   home=connection, permissions=permissions or permissions_for("Inbound"),
                   filename_pattern=pattern, password_hash=hash_password(PASSWORD))


def mail(*attachments: tuple[str, bytes]) -> bytes:
    msg = EmailMessage()
    msg["From"] = "partner@acme.example"
    msg["To"] = "acme-mail@partners.example"
    msg["Subject"] = "files"
    msg.set_content("see attached")
    for name, data in attachments:
        msg.add_attachment(data, maintype="text", subtype="csv", filename=name)
    return bytes(msg)


def entries(home: Path) -> list[str]:
    """Everything in the folder, hidden temporaries included."""
    return sorted(p.name for p in home.iterdir()) if home.exists() else []


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def inbox(tmp_path: Path, recorder: Recorder) -> Inbox:
    return Inbox(tmp_path, recorder)


def test_all_attachments_land_with_receipts(inbox: Inbox, tmp_path: Path,
                                            recorder: Recorder) -> None:
    receipts = inbox.receive([mailer()], mail(("report_1.csv", b"a"), ("report_2.csv", b"bb")))
    assert [(r.name, r.size) for r in receipts] == [("report_1.csv", 1), ("report_2.csv", 2)]
    assert entries(tmp_path / "acme-mail") == [
        ".connectors", "receipt_report_1.csv.txt", "receipt_report_2.csv.txt",
        "report_1.csv", "report_2.csv"]
    assert [(r.outcome, r.files) for r in recorder.records] == [("Succeeded", 2)]


def test_a_name_too_long_in_bytes_is_refused_before_anything_is_written(
    inbox: Inbox, tmp_path: Path, recorder: Recorder
) -> None:
    # 128 characters, 245 bytes: the old character limit (200) let it through,
    # the first attachment landed, and the second failed with a 451.
    long_name = "report_" + "\u00e9" * 117 + ".csv"
    with pytest.raises(MessageRefused, match="bytes"):
        inbox.receive([mailer()], mail(("report_1.csv", b"a"), (long_name, b"b")))
    assert entries(tmp_path / "acme-mail") == []
    assert [r.outcome for r in recorder.records] == ["Failed"]


def test_an_account_without_upload_is_refused_permanently(inbox: Inbox, tmp_path: Path) -> None:
    with pytest.raises(MessageRefused, match="may not upload"):
        inbox.receive([mailer(["list"])], mail(("report_1.csv", b"a")))
    assert entries(tmp_path / "acme-mail") == []


def test_a_failed_second_landing_takes_back_the_first(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    real_land = LandingArea.land
    calls = 0

    def land_then_fail(self: LandingArea, temp: Path, name: str, size: int,
                       sha256: str) -> Receipt:
        nonlocal calls
        calls += 1
        if calls == 2:
            temp.unlink()
            raise OSError(28, "No space left on device")
        return real_land(self, temp, name, size, sha256)

    monkeypatch.setattr(LandingArea, "land", land_then_fail)
    with pytest.raises(OSError, match="No space"):
        inbox.receive([mailer()], mail(("report_1.csv", b"a"), ("report_2.csv", b"b"),
                                     ("report_3.csv", b"c")))
    assert calls == 2
    assert entries(tmp_path / "acme-mail") == [".connectors"]
    assert recorder.records == []  # nothing landed, nothing to report

    monkeypatch.setattr(LandingArea, "land", real_land)
    inbox.receive([mailer()], mail(("report_1.csv", b"a"), ("report_2.csv", b"b")))
    assert len(entries(tmp_path / "acme-mail")) == 5  # the retry lands once


def test_a_failed_write_leaves_no_temporary(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_write = LandingFile.write

    def write(self: LandingFile, data: bytes | memoryview) -> int:
        if self.name == "report_2.csv":
            raise OSError(5, "Input/output error")
        return real_write(self, data)

    monkeypatch.setattr(LandingFile, "write", write)
    with pytest.raises(OSError, match="Input/output"):
        inbox.receive([mailer()], mail(("report_1.csv", b"a"), ("report_2.csv", b"b")))
    assert entries(tmp_path / "acme-mail") == [".connectors"]


# --- several recipient Connections: each lands, or none does


def test_two_recipients_each_get_the_files_and_their_own_receipts(
    inbox: Inbox, tmp_path: Path, recorder: Recorder
) -> None:
    first, second = mailer(), mailer(connection="globex-mail", username="globex")
    receipts = inbox.receive([first, second], mail(("report_1.csv", b"a,b\n")))
    assert [r.connection for r in receipts] == ["acme-mail", "globex-mail"]
    for home in ("acme-mail", "globex-mail"):
        assert (tmp_path / home / "report_1.csv").read_bytes() == b"a,b\n"
        assert (tmp_path / home / "receipt_report_1.csv.txt").exists()
    assert sorted((r.connection, r.outcome) for r in recorder.records) == [
        ("acme-mail", "Succeeded"), ("globex-mail", "Succeeded")]


def test_one_recipients_pattern_refuses_the_message_for_all(
    inbox: Inbox, tmp_path: Path, recorder: Recorder
) -> None:
    strict = mailer(connection="globex-mail", username="globex", pattern="audiences_*.csv")
    with pytest.raises(MessageRefused, match=r"^globex-mail: "):
        inbox.receive([mailer(), strict], mail(("report_1.csv", b"a")))
    assert entries(tmp_path / "acme-mail") == []
    assert entries(tmp_path / "globex-mail") == []
    # Only the Connection whose rule refused it hears of it.
    assert [(r.connection, r.outcome) for r in recorder.records] == [("globex-mail", "Failed")]


def test_a_failure_in_the_second_area_takes_back_the_first(
    inbox: Inbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, recorder: Recorder
) -> None:
    real_land = LandingArea.land

    def refuse_globex(self: LandingArea, temp: Path, name: str, size: int,
                      sha256: str) -> Receipt:
        if self.connection == "globex-mail":
            temp.unlink()
            raise OSError(28, "No space left on device")
        return real_land(self, temp, name, size, sha256)

    monkeypatch.setattr(LandingArea, "land", refuse_globex)
    second = mailer(connection="globex-mail", username="globex")
    with pytest.raises(OSError, match="No space"):
        inbox.receive([mailer(), second], mail(("report_1.csv", b"a")))
    assert entries(tmp_path / "acme-mail") == [".connectors"]
    assert entries(tmp_path / "globex-mail") == [".connectors"]
    assert recorder.records == []


def test_reply_text_is_one_printable_ascii_line() -> None:
    text = reply_text("550 5.7.1 Message ignored: 'a\r\nRCPT TO:<x>' caf\u00e9")
    assert "\r" not in text
    assert "\n" not in text
    assert text.isascii()
    assert "caf\\xe9" in text
    assert len(reply_text("x" * 2000)) == policy.MAX_REPLY


# --- login


@pytest.fixture
def gate(tmp_path: Path) -> LoginGate:
    path = tmp_path / "accounts.json"
    path.write_text(AccountTable(accounts=[mailer()]).render())
    return LoginGate(AccountsFile(path), Defender(DefenderSettings()), "smtp",
                     max_sessions_per_account=1)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def session(loop: asyncio.AbstractEventLoop) -> Session:
    new = Session(loop)
    # aiosmtpd types peer as a string; it is the socket's peername tuple.
    new.peer = ("192.0.2.7", 40000)  # type: ignore[assignment]
    return new


def test_login_takes_a_session_slot_and_keeps_no_password(
    gate: LoginGate, loop: asyncio.AbstractEventLoop
) -> None:
    authenticate = AccountAuthenticator(gate)
    first = ListenerSMTP(object(), loop=loop)
    result = authenticate(first, session(loop), Envelope(), "PLAIN",
                          LoginPassword(b"mailer", PASSWORD.encode()))
    assert result.success
    assert isinstance(result.auth_data, Admission)
    assert PASSWORD not in repr(result.auth_data)
    assert first.admission is result.auth_data
    assert gate.sessions.count("mailer") == 1

    second = ListenerSMTP(object(), loop=loop)
    full = authenticate(second, session(loop), Envelope(), "PLAIN",
                        LoginPassword(b"mailer", PASSWORD.encode()))
    assert not full.success
    assert (full.message or "").startswith("454 ")
    assert second.admission is None

    first.admission.release()
    assert gate.sessions.count("mailer") == 0


def test_wrong_password_is_scored_and_takes_no_slot(
    gate: LoginGate, loop: asyncio.AbstractEventLoop
) -> None:
    authenticate = AccountAuthenticator(gate)
    server = ListenerSMTP(object(), loop=loop)
    result = authenticate(server, session(loop), Envelope(), "LOGIN",
                          LoginPassword(b"mailer", b"guess"))
    assert not result.success
    assert server.admission is None
    assert gate.sessions.count("mailer") == 0
