"""Who gets a listener login, and where each Connection appears in it."""

from __future__ import annotations

import itertools

import pytest

from connectors.api.connection import ConnectionSpec
from connectors.planning.accounts import AccountSource, plan_accounts


def source(connection: str, credential: str, *, username: str = "acme", created: str = "",
           credential_created: str = "", folder: str | None = None) -> AccountSource:
    spec = ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Clicks", "method": "SFTP", "methodology": "Push",
        "credentialRef": {"name": credential}, **({"folder": folder} if folder else {})})
    return AccountSource(connection, f"uid-{connection}", spec, username, "hash", (),
                         credential=credential, created=created,
                         credential_created=credential_created)


def places(sources: list[AccountSource]) -> dict[str, str | None]:
    return {a.connection: a.folder for a in plan_accounts(sources).table.accounts}


def test_the_older_credential_keeps_a_username_whatever_the_names() -> None:
    """A new Credential claiming a partner's username, under a name that sorts
    first, does not take the login over."""
    brandx = source("brandx-clicks", "brandx", created="2026-01-01T00:00:00Z",
                    credential_created="2026-01-01T00:00:00Z")
    intruder = source("brandx-aaa-test", "aaa-test", created="2026-02-01T00:00:00Z",
                      credential_created="2026-02-01T00:00:00Z")
    plan = plan_accounts([intruder, brandx])
    assert places([intruder, brandx]) == {"brandx-clicks": None}
    assert "already the login of Credential brandx" in plan.conflicts["brandx-aaa-test"]
    assert "give Credential aaa-test another username" in plan.conflicts["brandx-aaa-test"]


def test_one_credential_serves_its_connections_each_in_its_place() -> None:
    clicks = source("brandx-clicks", "brandx", created="2026-01-01T00:00:00Z")
    conversions = source("brandx-conversions", "brandx", created="2026-01-02T00:00:00Z",
                         folder="conversions")
    plan = plan_accounts([conversions, clicks])
    assert plan.conflicts == {}
    assert places([conversions, clicks]) == {"brandx-clicks": None,
                                             "brandx-conversions": "conversions"}
    assert {a.username for a in plan.table.accounts} == {"acme"}


@pytest.mark.parametrize(("newer_folder", "older_folder"), [(None, None), ("x", "x")])
def test_a_contested_place_stays_with_the_older_connection(
        newer_folder: str | None, older_folder: str | None) -> None:
    older = source("zeta", "brandx", created="2026-01-01T00:00:00Z", folder=older_folder)
    newer = source("alpha", "brandx", created="2026-03-01T00:00:00Z", folder=newer_folder)
    plan = plan_accounts([newer, older])
    assert places([newer, older]) == {"zeta": older_folder}
    assert "Connection zeta already appears at" in plan.conflicts["alpha"]
    assert "set spec.folder" in plan.conflicts["alpha"]


def test_adding_or_removing_a_connection_never_moves_another() -> None:
    """Every subset of a set of Connections gives each of its accounted
    Connections the same place as the full set does, or none."""
    everyone = [
        source("a", "brandx", created="2026-01-01T00:00:00Z"),
        source("b", "brandx", created="2026-01-02T00:00:00Z", folder="b"),
        source("c", "brandx", created="2026-01-03T00:00:00Z"),
        source("d", "other", created="2026-01-04T00:00:00Z",
               credential_created="2025-01-01T00:00:00Z"),
        source("e", "brandx", created="2026-01-05T00:00:00Z", folder="e"),
    ]
    for size in range(1, len(everyone)):
        for subset in itertools.combinations(everyone, size):
            smaller = places(list(subset))
            for extra in everyone:
                if extra in subset:
                    continue
                larger = places([*subset, extra])
                moved = {name: (smaller[name], larger.get(name, "gone"))
                         for name in smaller if larger.get(name, "gone") != smaller[name]
                         and name in larger}
                assert moved == {}, (subset, extra)


def test_within_one_second_the_incumbent_keeps_login_and_place() -> None:
    """Creation times have one-second resolution: a tie never moves a login."""
    second = "2026-01-01T00:00:00Z"
    holder = source("zeta-clicks", "zeta", created=second, credential_created=second)
    taker = source("aaa-test", "aaa", created=second, credential_created=second)
    current = plan_accounts([holder]).table
    plan = plan_accounts([taker, holder], current)
    assert [a.connection for a in plan.table.accounts] == ["zeta-clicks"]
    assert "already the login of Credential zeta" in plan.conflicts["aaa-test"]
    # The same for a place within one Credential.
    newcomer = source("aaa-more", "zeta", created=second, credential_created=second)
    plan = plan_accounts([newcomer, holder], current)
    assert [a.connection for a in plan.table.accounts] == ["zeta-clicks"]
    assert "Connection zeta-clicks already appears at /" in plan.conflicts["aaa-more"]
