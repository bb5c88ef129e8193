"""`connectors new` step by step, without a terminal: which questions apply, which
choices each step offers after the answers before it, and which answers the
API's models and rules refuse (the wizard in a real terminal is
tests/integration/test_wizard_terminal.py)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from connectors.api.connection import FILENAME_PATTERN_MESSAGE
from connectors.api.credential import CredentialSpec
from connectors.validate import check_paths
from connectors.wizard import Cancelled, Terminal, Wizard, render_yaml, steps
from connectors.wizard.steps import Context

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0j54elL+x+D3NK2WR3xXx p@n"
# A DSA key: well-formed, and refused by the operator.
DSA = ("ssh-dss AAAAB3NzaC1kc3MAAACBAP1/U4EddRIpUt9KnC7s5Of2EbdSPO9EAMMeP4C2USZpRV1AIlH7WT2NW"
       "PqQ==")


def question(key: str, answers: dict[str, Any]) -> steps.Question:
    return next(q for q in steps.QUESTIONS if q.key == key and q.applies(answers))


def offered(key: str, answers: dict[str, Any], context: Context | None = None) -> list[str]:
    return [c.value for c in steps.choices(question(key, answers), answers,
                                           context or Context())]


def test_reports_are_offered_only_outbound() -> None:
    inbound = offered("dataType", {"direction": "Inbound"})
    assert "Reports" not in inbound
    assert "Conversions" in inbound
    assert offered("dataType", {"direction": "Outbound"})[-1] == "Reports"


def test_outbound_email_is_push_only_and_the_rest_both() -> None:
    email = {"direction": "Outbound", "dataType": "Reports", "method": "Email"}
    assert offered("methodology", email) == ["Push"]
    assert offered("methodology", {**email, "method": "SFTP"}) == ["Push", "Pull"]
    assert offered("methodology", {"direction": "Inbound", "dataType": "Clicks",
                                   "method": "Email"}) == ["Push", "Pull"]


def test_tls_offers_the_methods_own() -> None:
    ftp = {"direction": "Inbound", "dataType": "Clicks", "method": "FTP", "methodology": "Pull"}
    assert offered("remote.tls", ftp) == ["Explicit", "Implicit", "None"]
    assert offered("remote.tls", {**ftp, "method": "Email"}) == ["IMAPS", "STARTTLS"]


def keys(step: int, answers: dict[str, Any]) -> list[str]:
    return [q.key for q in steps.questions(step, answers)]


def test_step_3_asks_for_the_server_only_when_the_platform_connects() -> None:
    pull = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Pull"}
    assert keys(3, pull) == ["method", "filenamePattern", "methodology", "remote.host",
                             "remote.port", "remote.folder", "remote.hostKeys", "schedule"]
    assert keys(3, {**pull, "methodology": "Push"}) == ["method", "filenamePattern",
                                                        "methodology", "folder"]
    assert keys(3, {**pull, "method": "FTP"})[-2:] == ["remote.tls", "schedule"]
    outbound_email = {"direction": "Outbound", "dataType": "Reports", "method": "Email",
                      "methodology": "Push"}
    assert keys(3, outbound_email) == ["method", "filenamePattern", "methodology",
                                       "remote.recipients", "schedule"]
    assert keys(3, {**pull, "method": "Email", "methodology": "Push"}) == [
        "method", "filenamePattern", "methodology"]


def test_new_credentials_offered_are_those_that_fit() -> None:
    listener = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
                "methodology": "Push"}
    assert offered("credential", listener) == [steps.NEW_PUBLIC_KEY, steps.NEW_PASSWORD]
    assert offered("credential", {**listener, "methodology": "Pull"}) == [
        steps.NEW_KEY_PAIR, steps.NEW_PASSWORD]
    assert offered("credential", {**listener, "method": "FTP"}) == [steps.NEW_PASSWORD]


def test_existing_credentials_are_offered_when_they_fit() -> None:
    context = Context(existing={
        "partner-key": CredentialSpec(type="PublicKey", public_key=KEY),
        "generated-pair": CredentialSpec(type="PublicKey"),
        "login": CredentialSpec(type="Password"),
        "named-only": None,
    })
    listener = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
                "methodology": "Push"}
    assert offered("credential", listener, context)[:3] == [
        "existing:login", "existing:named-only", "existing:partner-key"]
    assert "existing:generated-pair" not in offered("credential", listener, context)
    ftp = offered("credential", {**listener, "method": "FTP"}, context)
    assert ftp == ["existing:login", "existing:named-only", steps.NEW_PASSWORD]


BASE = {"name": "acme-x", "direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
        "methodology": "Pull"}


def refused(key: str, value: str | list[str], answers: dict[str, Any] | None = None,
            context: Context | None = None) -> str | None:
    answers = dict(BASE if answers is None else answers)
    q = question(key, answers)
    parsed, problem = steps.parse(q, value)
    return problem or steps.check(q, answers, parsed, context or Context())


def test_answers_are_refused_in_the_apis_words() -> None:
    assert refused("filenamePattern", "in/*.csv") == FILENAME_PATTERN_MESSAGE
    assert refused("filenamePattern", "") is None
    email = {**BASE, "method": "Email", "methodology": "Push"}
    assert refused("filenamePattern", "", email) == (
        "filenamePattern is required when method is Email: every attachment must match it, "
        "for example 'audiences_*.csv'")
    assert refused("remote.folder", "outgoing", {**BASE, "remote.host": "h.example"}) == (
        "remote.folder must be an absolute path on the partner's server, such as /outgoing, "
        "for SFTP and FTP")
    assert refused("remote.host", "bad host!") == (
        "must be a DNS name (letters, digits and '-' in labels separated by dots, such as "
        "'sftp.partner.example') or an IP address")
    assert refused("remote.port", "abc") == "must be a whole number, such as 2222"
    assert refused("remote.port", "70000") == "Input should be less than or equal to 65535"
    assert refused("remote.port", "2222") is None
    assert refused("schedule", "61 * * * *") == (
        "schedule '61 * * * *' is not a valid cron expression (minute hour day-of-month "
        "month day-of-week), e.g. '0 * * * *'")
    assert refused("schedule", "") is None
    assert refused("remote.hostKeys", [], {**BASE, "remote.host": "h.example"}) == (
        "remote.hostKeys needs at least one trusted host key for SFTP (the platform never "
        "trusts an unknown host); read it with: ssh-keyscan -t ed25519 HOST")
    assert refused("remote.hostKeys", ["ssh-ed25519 nonsense"]) is not None
    push = {**BASE, "methodology": "Push"}
    assert refused("folder", "../up", push) == (
        "must be one folder name of up to 63 letters, digits, '.', '_' and '-', starting "
        "with a letter or digit, such as 'clicks'")


def test_a_name_is_a_kubernetes_name_not_taken() -> None:
    assert refused("name", "Acme") == ("must be lower-case letters, digits, '-' and '.', such "
                                       "as acme-conversions")
    assert refused("name", "") == "a name is required"
    taken = Context(taken_connections={"acme-x"}, namespace="team")
    assert refused("name", "acme-x", context=taken) == (
        "a Connection named acme-x exists already in namespace team: choose another name")


def test_a_new_credential_is_checked_as_the_operator_checks_it() -> None:
    push = {**BASE, "methodology": "Push", "credential": steps.NEW_PUBLIC_KEY}
    assert refused("credential.publicKey", [DSA], push) is not None
    assert refused("credential.publicKey", ["not a key"], push) == (
        "publicKey must hold OpenSSH public keys, one per line, such as 'ssh-ed25519 "
        "AAAAC3Nza... partner@example.com'; types: ssh-ed25519, ssh-rsa, ecdsa-sha2-nistp256, "
        "ecdsa-sha2-nistp384, ecdsa-sha2-nistp521 (DSA keys are refused)")
    assert refused("credential.publicKey", [KEY], push) is None
    assert refused("credential.username", "Not Valid", push) == (
        "must be 1 to 32 characters of lower-case letters, digits, '.', '_' and '-', "
        "starting with a letter, such as 'acme'")
    # Empty: the Credential's name is the login, and a name of 40 letters is none.
    long_name = {**push, "credential.name": "a" * 40}
    assert refused("credential.username", "", long_name) is not None
    assert refused("credential.name", "Bad_Name", push) == (
        "must be a Kubernetes name: lower-case letters, digits and '-', starting and ending "
        "with a letter or digit, such as 'acme-sftp'")
    assert refused("credential.name", "acme", push, Context(existing={"acme": None})) == (
        "a Credential named acme exists already: choose another name, or go back and choose "
        "it as an existing one")


def test_a_host_key_as_ssh_keyscan_prints_it_loses_its_host() -> None:
    q = question("remote.hostKeys", BASE)
    parsed, _ = steps.parse(q, [f"sftp.acme.example {KEY}", "", KEY])
    assert parsed == [KEY, KEY]


def test_the_documents_pass_connectors_validate(tmp_path: Path) -> None:
    answers = {**BASE, "filenamePattern": "clicks_*.csv", "remote.host": "sftp.acme.example",
               "remote.folder": "/out", "remote.hostKeys": [KEY], "schedule": "0 * * * *",
               "credential": steps.NEW_KEY_PAIR, "credential.name": "acme-pull"}
    docs = steps.documents(answers, "team")
    assert [d["kind"] for d in docs] == ["Credential", "Connection"]
    assert docs[0]["spec"] == {"type": "PublicKey"}
    assert docs[1]["spec"]["credentialRef"] == {"name": "acme-pull"}
    path = tmp_path / "new.yaml"
    path.write_text(render_yaml(docs))
    report = check_paths([path])
    assert (report.problems, len(report.resources)) == ([], 2)


def test_a_validator_problem_leads_back_to_its_question() -> None:
    answers = {**BASE, "credential": steps.NEW_PUBLIC_KEY}
    found = steps.question_for("Connection", "spec.remote.hostKeys[0]", answers)
    assert found is not None
    assert found.key == "remote.hostKeys"
    found = steps.question_for("Credential", "spec.publicKey", answers)
    assert found is not None
    assert found.key == "credential.publicKey"
    found = steps.question_for("Connection", "spec.credentialRef.name", answers)
    assert found is not None
    assert (found.key, found.step) == ("credential", 4)


def drive(lines: list[str], context: Context | None = None) -> tuple[list[dict[str, Any]], str]:
    shown = io.StringIO()
    wizard = Wizard(Terminal(io.StringIO("".join(f"{line}\n" for line in lines)), shown),
                    context or Context())
    return wizard.run(), shown.getvalue()


def test_the_wizard_asks_again_and_goes_back() -> None:
    docs, shown = drive([
        "Acme", "acme-reports", "2",            # a bad name, asked again; Outbound
        "7",                                    # Reports
        "3", "", "reports_*.csv",               # Email; a pattern it needs, asked again
        "data@acme.example, ops@acme.example",  # recipients (Push: the only methodology)
        "",                                     # the default schedule
        "", "",                                 # Password (the only fit): name, username
        "2",                                    # review: change step 1
        "", "1",                                # keep the name; Inbound
        "2",                                    # Reports is gone: Clicks
        "", "", "",                             # Email, the pattern and Push kept
        "", "",                                 # the Credential as before
        "1",                                    # finish
    ])
    assert "must be lower-case letters, digits, '-' and '.'" in shown
    assert "filenamePattern is required when method is Email" in shown
    # Outbound Email: Push is the only methodology, said rather than asked.
    assert "Methodology: Push: the platform connects to the partner's server, on a schedule " \
           "(the only choice here)" in shown
    second = shown[shown.rindex("Step 2 of 5"):]
    assert "Reports" not in second.split("Step 3")[0]
    connection = docs[-1]
    assert connection["metadata"] == {"name": "acme-reports"}
    assert connection["spec"]["direction"] == "Inbound"
    assert connection["spec"]["dataType"] == "Clicks"
    assert "remote" not in connection["spec"], "Inbound Email Push needs no server"


def test_ctrl_d_cancels() -> None:
    with pytest.raises(Cancelled):
        drive(["acme-x"])
