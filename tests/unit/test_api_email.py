"""Connection.spec.email.allowedSenders: its validation, in the CRD and
offline, and how it reaches the SMTP listener's account table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.api import ConnectionSpec
from connectors.api.accounts import Account, AccountTable, permissions_for
from connectors.api.crd import render_all
from connectors.api.senders import ALLOWED_SENDER_MESSAGE, ALLOWED_SENDER_PATTERN
from connectors.planning import accounts
from connectors.validate import validate_paths

EMAIL = {"direction": "Inbound", "dataType": "Audiences", "method": "Email",
         "methodology": "Push", "credentialRef": {"name": "acme"},
         "filenamePattern": "audiences_*.csv"}


def problems(tmp_path: Path, spec: dict[str, Any]) -> list[tuple[str, str]]:
    manifest = tmp_path / "connection.yaml"
    documents = [
        {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
         "metadata": {"name": "acme"}, "spec": {"type": "Password"}},
        {"apiVersion": "connectors.dev/v1alpha1", "kind": "Connection",
         "metadata": {"name": "acme-audiences"}, "spec": spec},
    ]
    manifest.write_text(yaml.safe_dump_all(documents))
    return [(p.field_path, p.message) for p in validate_paths([manifest])]


def test_addresses_and_both_domain_forms_are_accepted(tmp_path: Path) -> None:
    spec = {**EMAIL, "email": {"allowedSenders": [
        "data@acme.example", "acme.example", "@globex.example", "O'Neil@Initech.Example"]}}
    assert problems(tmp_path, spec) == []
    model = ConnectionSpec.model_validate(spec)
    assert model.email is not None
    assert model.email.allowed_senders == spec["email"]["allowedSenders"]


@pytest.mark.parametrize("sender", [
    "*@acme.example", "*.acme.example", "acme", "@acme", "data @acme.example",
    "a\"b@acme.example", "data@acme.example.", "data@-acme.example",
])
def test_a_bad_sender_is_explained_in_words(tmp_path: Path, sender: str) -> None:
    spec = {**EMAIL, "email": {"allowedSenders": ["ok@acme.example", sender]}}
    assert problems(tmp_path, spec) == [("spec.email.allowedSenders[1]", ALLOWED_SENDER_MESSAGE)]


def test_an_empty_list_is_refused_rather_than_read_as_nobody_or_anybody(
    tmp_path: Path
) -> None:
    [(field, message)] = problems(tmp_path, {**EMAIL, "email": {"allowedSenders": []}})
    assert field == "spec.email.allowedSenders"
    assert "at least one address or domain" in message
    assert "remove it to accept mail from any sender" in message


@pytest.mark.parametrize("change", [
    {"method": "SFTP"},
    {"direction": "Outbound", "dataType": "Reports",
     "remote": {"recipients": ["partner@acme.example"]}},
    {"methodology": "Pull", "remote": {"host": "imap.acme.example"}},
])
def test_email_settings_only_for_inbound_email_push(tmp_path: Path,
                                                    change: dict[str, Any]) -> None:
    spec = {**EMAIL, **change, "email": {"allowedSenders": ["acme.example"]}}
    found = problems(tmp_path, spec)
    assert ("spec.email", "email applies only to Inbound Email Push, where partners' mail "
            "servers deliver to the platform's listener: remove it") in found


def test_the_crd_carries_the_same_rule_and_words() -> None:
    crd = yaml.safe_load(render_all()["connections.yaml"])
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    senders = schema["properties"]["email"]["properties"]["allowedSenders"]
    assert senders["maxItems"] == 64
    item = senders["items"]
    assert "pattern" not in item  # the API server would quote the expression
    [rule] = item["x-kubernetes-validations"]
    assert rule["message"] == ALLOWED_SENDER_MESSAGE
    assert ALLOWED_SENDER_PATTERN in rule["rule"]
    fields = {r.get("fieldPath") for r in schema["x-kubernetes-validations"]}
    assert {".email", ".email.allowedSenders"} <= fields


# --- into the account table


def source(spec: dict[str, Any], name: str = "acme-audiences") -> accounts.AccountSource:
    return accounts.AccountSource(name, f"uid-{name}", ConnectionSpec.model_validate(spec),
                              f"user-{name}", "$scrypt$hash", ())


def test_allowed_senders_reach_the_account_table() -> None:
    planned = accounts.plan_accounts([
        source({**EMAIL, "email": {"allowedSenders": ["acme.example"]}}),
        source(EMAIL, name="globex-audiences"),
    ])
    table = AccountTable.parse(planned.table.render())
    by_name = {a.connection: a for a in table.accounts}
    assert by_name["acme-audiences"].allowed_senders == ["acme.example"]
    assert by_name["globex-audiences"].allowed_senders is None


def test_a_table_without_allowed_senders_renders_as_before() -> None:
    """Listeners refuse unknown keys: the newer keys appear only where they are set,
    so an older listener still reads every table that does not use them."""
    account = Account(username="u", connection="c", direction="Inbound", home="c",
                      permissions=permissions_for("Inbound"))
    rendered = AccountTable(accounts=[account]).render()
    [written] = json.loads(rendered)["accounts"]
    every_other_field = {field.alias or name for name, field in Account.model_fields.items()
                         if name not in ("allowed_senders", "plain_ftp", "reply_with_results")}
    assert set(written) == every_other_field
    with_senders = account.model_copy(update={"allowed_senders": ["acme.example"]})
    assert '"allowedSenders": [' in AccountTable(accounts=[with_senders]).render()
    plain = account.model_copy(update={"plain_ftp": True})
    assert '"plainFtp": true' in AccountTable(accounts=[plain]).render()
