"""The SMTP listener's mail exchanger policy, without a server: which recipient
an address names, which senders a Connection allows, and the rate limits
(with a clock the test moves)."""

from __future__ import annotations

from pathlib import Path

import pytest

from connectors.api.accounts import Account, AccountTable, permissions_for
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.smtp.policy import (
    NO_SUCH_RECIPIENT,
    RELAY_DENIED,
    SENDER_REFUSED,
    MailRate,
    SlidingWindow,
    connection_of,
    recipient_refusal,
    sender_allowed,
)

DOMAIN = "partners.example"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- recipients


def test_connection_of_an_address_needs_the_listeners_domain() -> None:
    assert connection_of("acme-mail@partners.example", DOMAIN) == "acme-mail"
    assert connection_of("Acme-Mail@PARTNERS.example", DOMAIN) == "Acme-Mail"
    assert connection_of("acme-mail@elsewhere.example", DOMAIN) is None
    assert connection_of("acme-mail@sub.partners.example", DOMAIN) is None
    assert connection_of("@partners.example", DOMAIN) is None
    assert connection_of("postmaster", DOMAIN) is None


def account(connection: str, *, suspended: bool = False, direction: str = "Inbound",
            senders: list[str] | None = None) -> Account:
    return Account(username=f"u-{connection}", connection=connection,
                   direction=direction,  # type: ignore[arg-type]
                   home=connection, permissions=permissions_for(direction),
                   filename_pattern="report_*.csv", suspended=suspended,
                   allowed_senders=senders)


@pytest.fixture
def accounts(tmp_path: Path) -> AccountsFile:
    path = tmp_path / "accounts.json"
    path.write_text(AccountTable(accounts=[
        account("acme-mail"),
        account("frozen-mail", suspended=True),
        account("globex-reports", direction="Outbound"),
        account("picky-mail", senders=["data@acme.example", "@globex.example", "initech.example"]),
    ]).render())
    return AccountsFile(path)


@pytest.mark.parametrize(("address", "refusal"), [
    ("acme-mail@partners.example", None),
    ("ACME-MAIL@Partners.Example", None),
    ("nobody@partners.example", NO_SUCH_RECIPIENT),
    ("frozen-mail@partners.example", NO_SUCH_RECIPIENT),     # suspended: the same words
    ("globex-reports@partners.example", NO_SUCH_RECIPIENT),  # no inbox: the same words
    ("acme-mail@elsewhere.example", RELAY_DENIED),
])
def test_recipients_unknown_suspended_or_without_inbox_are_one_answer(
    accounts: AccountsFile, address: str, refusal: str | None
) -> None:
    found, reply = recipient_refusal(accounts, DOMAIN, address, "anyone@anywhere.example")
    assert reply == refusal
    assert (found is not None) == (refusal is None)
    if found is not None:
        assert found.connection == "acme-mail"


@pytest.mark.parametrize(("sender", "allowed"), [
    ("data@acme.example", True),
    ("DATA@Acme.Example", True),
    ("other@acme.example", False),
    ("anyone@globex.example", True),      # @domain form
    ("anyone@initech.example", True),     # bare domain form
    ("anyone@eu.globex.example", False),  # sub-domains are not included
    ("<>", False),                        # the null sender of a bounce, as aiosmtpd has it
    ("", False),
])
def test_allowed_senders_at_rcpt(accounts: AccountsFile, sender: str, allowed: bool) -> None:
    found, reply = recipient_refusal(accounts, DOMAIN, "picky-mail@partners.example", sender)
    assert reply == (None if allowed else SENDER_REFUSED)
    # The Connection is known either way: a refused sender is reported to it.
    assert found is not None
    assert found.connection == "picky-mail"


# --- allowed-sender matching


def test_no_list_allows_everyone_even_the_null_sender() -> None:
    assert sender_allowed("anyone@anywhere.example", None)
    assert sender_allowed("", None)


@pytest.mark.parametrize(("sender", "rules", "allowed"), [
    ("partner@example.com", ["partner@example.com"], True),
    ("Partner@Example.COM", ["partner@example.com"], True),
    ("partner@example.com", ["PARTNER@EXAMPLE.COM"], True),
    ("other@example.com", ["partner@example.com"], False),
    ("partner@example.com.evil.example", ["example.com"], False),
    ("partner@evil-example.com", ["example.com"], False),
    ("partner@example.com", ["example.com"], True),
    ("partner@example.com", ["@example.com"], True),
    ("partner@mail.example.com", ["@example.com"], False),
    ("example.com", ["example.com"], False),       # not an address at all
    ("@example.com", ["example.com"], False),
    ("partner@example.com", [], False),            # the API refuses an empty list anyway
    ("x@b.example", ["a@a.example", "b.example"], True),
])
def test_sender_matching(sender: str, rules: list[str], allowed: bool) -> None:
    assert sender_allowed(sender, rules) is allowed


# --- rates


def test_window_allows_limit_events_then_refuses_until_the_oldest_ages_out() -> None:
    clock = Clock()
    window = SlidingWindow(3, window=60.0, clock=clock)
    for second in (0.0, 10.0, 20.0):
        clock.now = 1000.0 + second
        assert window.has_room("k", clock.now)
        window.record("k", clock.now)
    clock.now = 1059.0
    assert not window.has_room("k", clock.now)
    assert window.has_room("other", clock.now)
    clock.now = 1060.0  # the first event is now a full minute old
    assert window.has_room("k", clock.now)


def test_zero_means_no_limit() -> None:
    window = SlidingWindow(0)
    for _ in range(10_000):
        window.record("k", 1.0)
    assert window.has_room("k", 1.0)
    assert window.keys() == 0


def test_senders_seen_once_do_not_accumulate() -> None:
    window = SlidingWindow(5, window=60.0)
    for index in range(5000):
        window.record(f"sender-{index}", float(index // 1000) * 120.0)
    # Swept whenever the table passes 1024 keys: the senders of earlier
    # minutes go, never all 5000 stay.
    assert window.keys() <= 1024
    assert window.has_room("sender-0", 480.0)


def test_mail_rate_counts_sender_and_client_and_is_all_or_nothing() -> None:
    clock = Clock()
    rate = MailRate(per_sender=2, per_client=3, clock=clock)
    assert rate.admit("a@x.example", "192.0.2.1")
    assert rate.admit("A@X.example", "192.0.2.1")        # the same sender, any case
    assert not rate.admit("a@x.example", "192.0.2.2")     # sender full, from anywhere
    assert rate.admit("b@x.example", "192.0.2.1")         # client's third
    assert not rate.admit("c@x.example", "192.0.2.1")     # client full
    # The refusals above recorded nothing: c@ still has its whole allowance elsewhere.
    assert rate.admit("c@x.example", "192.0.2.9")
    assert rate.admit("c@x.example", "192.0.2.9")
    assert not rate.admit("c@x.example", "192.0.2.9")
    clock.now += 60.0
    assert rate.admit("a@x.example", "192.0.2.1")


def test_mail_rate_without_limits_admits_everything() -> None:
    rate = MailRate(per_sender=0, per_client=0)
    assert all(rate.admit("a@x.example", "192.0.2.1") for _ in range(1000))
