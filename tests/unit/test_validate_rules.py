"""`connectors validate` applies the operator's rules beyond the schema, from the
operator's own functions, and says everything in words."""

from __future__ import annotations

import io
import re
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
import yaml
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from connectors.api import ConnectionSpec, CredentialSpec
from connectors.api.compat import credential_misfit
from connectors.api.crd import render_all
from connectors.api.words import PATTERN_WORDS
from connectors.cli import main
from connectors.planning.accounts import AccountSource, plan_accounts
from connectors.planning.status import validate_connection
from connectors.validate import Problem, validate_paths

REPO = Path(__file__).resolve().parents[2]
API = "connectors.dev/v1alpha1"


def validate(*args: str) -> tuple[int, list[str], str]:
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main(["validate", *args])
    return code, out.getvalue().splitlines(), err.getvalue()


def credential(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": API, "kind": "Credential", "metadata": {"name": name},
            "spec": {"type": "Password", **spec}}


def connection(name: str, ref: str, **spec: Any) -> dict[str, Any]:
    base = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Push", "credentialRef": {"name": ref}}
    return {"apiVersion": API, "kind": "Connection", "metadata": {"name": name},
            "spec": {**base, **spec}}


def write(tmp_path: Path, *documents: dict[str, Any]) -> Path:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def only(problems: list[Problem]) -> Problem:
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def test_success_is_one_summary_line() -> None:
    code, out, err = validate(str(REPO / "examples"))
    assert (code, err) == (0, "")
    files = len(list((REPO / "examples").glob("*.yaml")))
    # Each example holds one Credential and one Connection (and 04 a Secret, not ours).
    assert out == [f"{files} files, {2 * files} resources: valid"]


def test_a_credential_in_no_file_is_a_warning_and_fails_only_with_strict(tmp_path: Path) -> None:
    path = write(tmp_path, connection("acme-clicks", "acme-sftp"))
    code, out, _ = validate(str(path))
    assert code == 0
    assert out[0] == (
        f"{path}:11: Connection/acme-clicks: spec.credentialRef.name: warning: Credential "
        "acme-sftp is in none of these files, so whether it exists and fits cannot be checked: "
        "it must exist in namespace default when this is applied (--cluster looks it up there)")
    assert out[1] == "1 file, 1 resource: valid, 1 warning"
    code, out, _ = validate("--strict", str(path))
    assert code == 1
    assert len(out) == 1
    assert "warning: Credential acme-sftp is in none of these files" in out[0]


def test_the_namespace_option_names_where_a_manifest_without_one_goes(tmp_path: Path) -> None:
    path = write(tmp_path, connection("acme-clicks", "acme-sftp"))
    _, out, _ = validate("--namespace", "partners", str(path))
    assert "it must exist in namespace partners when" in out[0]


def test_credential_that_does_not_fit_the_method_says_what_the_operator_says(
    tmp_path: Path,
) -> None:
    key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0j54elL+x+D3NK2WR3xXx p"
    documents = (credential("acme-key", type="PublicKey", publicKey=key),
                 connection("acme-clicks", "acme-key", method="FTP"))
    problem = only(validate_paths([write(tmp_path, *documents)]))
    expected = credential_misfit(ConnectionSpec.model_validate(documents[1]["spec"]),
                                 CredentialSpec.model_validate(documents[0]["spec"]), "acme-key")
    assert expected is not None
    assert (problem.field_path, problem.severity, problem.message) == (
        "spec.credentialRef.name", "error", expected)
    assert "FTP needs a Credential of type Password" in problem.message


def test_two_credentials_claiming_one_username_on_one_listener(tmp_path: Path) -> None:
    path = write(tmp_path,
                 credential("acme-one", username="acme"), credential("acme-two", username="acme"),
                 connection("acme-clicks", "acme-one"), connection("acme-conversions", "acme-two",
                                                                   dataType="Conversions"))
    problem = only(validate_paths([path]))
    # The operator's own planner decides who keeps the login; the validator repeats it.
    sources = [AccountSource(n, "", ConnectionSpec.model_validate(
        {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP", "methodology": "Push",
         "credentialRef": {"name": c}}), "acme", None, (), credential=c)
        for n, c in (("acme-clicks", "acme-one"), ("acme-conversions", "acme-two"))]
    [(loser, why)] = plan_accounts(sources).conflicts.items()
    assert (problem.name, problem.field_path, problem.message) == (
        loser, "spec.credentialRef.name", why)
    assert "username acme is already the login of Credential acme-one" in problem.message


def test_one_credential_shared_by_two_connections_needs_two_places(tmp_path: Path) -> None:
    path = write(tmp_path, credential("acme"),
                 connection("acme-clicks", "acme"),
                 connection("acme-conversions", "acme", dataType="Conversions"))
    problem = only(validate_paths([path]))
    assert problem.name == "acme-conversions"
    assert "Connection acme-clicks already appears at / for login acme" in problem.message
    assert "set spec.folder" in problem.message


def test_one_credential_shared_by_two_connections_in_two_places(tmp_path: Path) -> None:
    path = write(tmp_path, credential("acme"),
                 connection("acme-clicks", "acme"),
                 connection("acme-conversions", "acme", dataType="Conversions",
                            folder="conversions"))
    assert validate_paths([path]) == []


def test_one_credential_shared_across_listeners_is_fine(tmp_path: Path) -> None:
    path = write(tmp_path, credential("acme"),
                 connection("acme-clicks", "acme"),
                 connection("acme-audiences", "acme", method="Email", dataType="Audiences",
                            filenamePattern="audiences_*.csv"))
    assert validate_paths([path]) == []


def test_platform_initiated_connections_claim_no_listener_username(tmp_path: Path) -> None:
    remote = {"host": "ftp.acme.example", "folder": "/out"}
    path = write(tmp_path, credential("acme"), connection("acme-clicks", "acme"),
                 connection("acme-pull", "acme", method="FTP", methodology="Pull",
                            remote=remote))
    assert validate_paths([path]) == []


def test_a_schedule_out_of_range_is_refused_as_the_operator_refuses_it(tmp_path: Path) -> None:
    spec = {"direction": "Inbound", "dataType": "Clicks", "method": "FTP", "methodology": "Pull",
            "credentialRef": {"name": "acme"}, "schedule": "61 * * * *",
            "remote": {"host": "ftp.acme.example", "folder": "/out"}}
    problem = only(validate_paths([write(tmp_path, credential("acme"),
                                         connection("acme-pull", "acme", **spec))]))
    _, verdict = validate_connection(spec)
    assert verdict.reason == "InvalidSchedule"
    assert problem.field_path == "spec.schedule"
    assert f"spec.{problem.message}" == verdict.message


def test_a_weak_partner_key_is_refused_with_its_line(tmp_path: Path) -> None:
    weak = rsa.generate_private_key(public_exponent=65537, key_size=1024)  # noqa: S505
    line = weak.public_key().public_bytes(serialization.Encoding.OpenSSH,
                                          serialization.PublicFormat.OpenSSH).decode()
    problem = only(validate_paths([write(tmp_path, credential(
        "acme", type="PublicKey", publicKey=f"{line} laptop\n"),
        connection("acme-clicks", "acme"))]))
    assert problem.field_path == "spec.publicKey"
    assert problem.message.startswith("publicKey line 1: RSA key of 1024 bits")


@pytest.mark.parametrize(("kind", "spec", "field", "words"), [
    ("Credential", {"type": "Password", "username": "Acme"}, "spec.username",
     "lower-case letters, digits, '.', '_' and '-', starting with a letter"),
    ("Credential", {"type": "Password", "secretRef": {"name": "Acme_Login"}},
     "spec.secretRef.name", "must be a Kubernetes name"),
    ("Connection", {"direction": "Inbound", "dataType": "Clicks", "method": "FTP",
                    "methodology": "Pull", "credentialRef": {"name": "acme"},
                    "schedule": "hourly", "remote": {"host": "ftp.acme.example",
                                                     "folder": "/out"}},
     "spec.schedule", "five cron fields"),
    ("Connection", {"direction": "Inbound", "dataType": "Clicks", "method": "FTP",
                    "methodology": "Pull", "credentialRef": {"name": "acme"},
                    "remote": {"host": "ftp_acme", "folder": "/out"}},
     "spec.remote.host", "a DNS name"),
    ("Connection", {"direction": "Outbound", "dataType": "Reports", "method": "Email",
                    "methodology": "Push", "credentialRef": {"name": "acme"},
                    "filenamePattern": "*.csv", "remote": {"recipients": ["nobody"]}},
     "spec.remote.recipients[0]", "an email address"),
])
def test_pattern_errors_are_said_in_words(tmp_path: Path, kind: str, spec: dict[str, Any],
                                          field: str, words: str) -> None:
    manifest = {"apiVersion": API, "kind": kind, "metadata": {"name": "acme"}, "spec": spec}
    problems = validate_paths([write(tmp_path, manifest)])
    problem = next(p for p in problems if p.field_path == field)
    assert words in problem.message
    assert "should match" not in problem.message
    assert not re.search(r"\^|\$'|\[a-z", problem.message), problem.message


def test_every_pattern_of_the_crds_has_words() -> None:
    def patterns(node: Any) -> list[str]:
        if isinstance(node, dict):
            own = [node["pattern"]] if isinstance(node.get("pattern"), str) else []
            return own + [p for value in node.values() for p in patterns(value)]
        if isinstance(node, list):
            return [p for item in node for p in patterns(item)]
        return []
    found = {p for text in render_all().values() for p in patterns(yaml.safe_load(text))}
    assert found, "the CRDs should carry some patterns"
    assert found <= set(PATTERN_WORDS), found - set(PATTERN_WORDS)


def test_the_operator_condition_says_a_pattern_error_in_words_too() -> None:
    _, verdict = validate_connection({
        "direction": "Inbound", "dataType": "Clicks", "method": "SFTP", "methodology": "Push",
        "credentialRef": {"name": "Not_A_Name"}})
    assert verdict.reason == "InvalidSpec"
    assert verdict.message.startswith("spec.credentialRef.name: must be a Kubernetes name")
