"""The hand-off and the status table as pure functions of the objects' status."""

from __future__ import annotations

from typing import Any

from connectors.kubectl.facts import (
    Fact,
    ListenerKeys,
    handoff_facts,
    render_text,
    secret_fact,
    with_secret,
)
from connectors.kubectl.table import render_text as table_text
from connectors.kubectl.table import rows


def connection(spec: dict[str, Any], status: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "acme-x", "namespace": "team"},
            "spec": {"dataType": "Clicks", "credentialRef": {"name": "acme"}, **spec},
            "status": status or {}}


def by_key(facts: list[Fact]) -> dict[str, Any]:
    return {f.key: f.value for f in facts}


PASSWORD = {"metadata": {"name": "acme", "namespace": "team"}, "spec": {"type": "Password"},
            "status": {"username": "acme", "secretName": "acme-credential"}}


def test_a_connection_not_ready_says_why() -> None:
    facts = by_key(handoff_facts(connection(
        {"direction": "Inbound", "methodology": "Push", "method": "SFTP"},
        {"conditions": [{"type": "Ready", "status": "False", "reason": "CredentialNotFound",
                         "message": "Credential acme does not exist"}]}), None, ListenerKeys()))
    assert facts["ready"] == "False (CredentialNotFound): Credential acme does not exist"
    assert facts["credential"].startswith("not found")
    assert facts["host"] == "not yet known"


def test_ports_of_partner_servers_follow_the_protocol_defaults() -> None:
    cases = [({"method": "FTP", "remote": {"host": "h", "folder": "/o", "tls": "Implicit"}}, 990),
             ({"method": "FTP", "remote": {"host": "h", "folder": "/o"}}, 21),
             ({"method": "Email", "remote": {"host": "h", "tls": "STARTTLS"}}, 143),
             ({"method": "Email", "remote": {"host": "h"}}, 993),
             ({"method": "SFTP", "remote": {"host": "h", "folder": "/o", "port": 2222}}, 2222)]
    for spec, port in cases:
        facts = by_key(handoff_facts(connection({"direction": "Inbound", "methodology": "Pull",
                                                 **spec}), PASSWORD, ListenerKeys()))
        assert facts["port"] == port, spec


def test_outbound_email_names_its_recipients() -> None:
    facts = by_key(handoff_facts(connection(
        {"direction": "Outbound", "methodology": "Push", "method": "Email",
         "remote": {"recipients": ["a@p.example", "b@p.example"]}}), PASSWORD, ListenerKeys()))
    assert facts["recipients"] == ["a@p.example", "b@p.example"]
    assert "host" not in facts
    assert "a@p.example; b@p.example" in render_text(handoff_facts(connection(
        {"direction": "Outbound", "methodology": "Push", "method": "Email",
         "remote": {"recipients": ["a@p.example", "b@p.example"]}}), PASSWORD, ListenerKeys()))


def test_the_secret_replaces_the_not_shown_line_and_a_key_gets_lines_of_its_own() -> None:
    facts = handoff_facts(connection({"direction": "Inbound", "methodology": "Push",
                                      "method": "SFTP"}), PASSWORD, ListenerKeys())
    assert [f.key for f in facts].count("secret") == 1
    revealed = with_secret(facts, secret_fact(PASSWORD, "s3cr3t-s3cr3t"))
    assert "secret" not in by_key(revealed)
    assert render_text(revealed).splitlines()[-1].split() == ["Password:", "s3cr3t-s3cr3t"]
    key = {**PASSWORD, "spec": {"type": "PublicKey"}}
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n"
    text = render_text(with_secret(facts, secret_fact(key, pem)))
    assert text.endswith("Private key:\n" + pem.rstrip("\n"))


def test_status_rows_are_sorted_and_show_the_last_transfer() -> None:
    done = connection({"direction": "Inbound", "methodology": "Pull", "method": "SFTP"},
                      {"conditions": [{"type": "Ready", "status": "True", "reason": "Ready"}],
                       "lastTransfer": {"time": "2026-01-02T03:04:05Z", "outcome": "Succeeded",
                                        "files": 3, "bytes": 1200}})
    other = {**connection({"direction": "Inbound", "methodology": "Push", "method": "FTP"}),
             "metadata": {"name": "a-first", "namespace": "team"}}
    table = rows([done, other])
    assert [r["name"] for r in table] == ["a-first", "acme-x"]
    assert table[0]["ready"] == "Unknown"
    lines = table_text(table, with_namespace=False).splitlines()
    assert lines[2].split() == ["acme-x", "SFTP", "Inbound", "Pull", "True", "Ready",
                                "2026-01-02T03:04:05Z", "Succeeded", "3", "1200"]
