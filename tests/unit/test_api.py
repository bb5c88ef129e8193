"""The models, the CRDs generated from them and the offline validator."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from connectors.api import ConnectionSpec, CredentialSpec
from connectors.api.accounts import AccountTable, hash_password, verify_password
from connectors.api.compat import credential_misfit
from connectors.api.connection import FILENAME_PATTERN, FILENAME_PATTERN_MESSAGE
from connectors.api.crd import render_all
from connectors.api.rules import broken_rules
from connectors.validate import validate_paths

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


def test_checked_in_crds_match_the_models() -> None:
    for folder in ("crds", "charts/connectors/crds"):
        for name, text in render_all().items():
            on_disk = (REPO / folder / name).read_text()
            assert on_disk == text, f"{folder}/{name} is out of date: run `connectors crds`"


def test_every_cel_rule_names_a_field_and_explains_itself() -> None:
    for spec in (ConnectionSpec, CredentialSpec):
        for rule in spec.rules:
            assert rule.field.startswith("."), rule
            assert len(rule.message) > 30, rule


def test_crd_declares_every_status_field_so_nothing_is_pruned() -> None:
    crd = yaml.safe_load(render_all()["connections.yaml"])
    status = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["status"]
    assert set(status["properties"]) == {"observedGeneration", "conditions", "endpoint",
                                         "lastTransfer", "submissions"}
    conditions = status["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert set(conditions["items"]["properties"]) >= {
        "type", "status", "reason", "message", "lastTransitionTime", "observedGeneration"
    }


def test_crd_schema_is_structural() -> None:
    """No $ref, anyOf or title may reach the API server: it refuses non-structural schemas."""
    for text in render_all().values():
        for word in ("$ref", "anyOf", "allOf", "title:"):
            assert word not in text


def test_examples_are_valid() -> None:
    assert sorted(EXAMPLES.glob("*.yaml")), "examples/ is empty"
    assert validate_paths([EXAMPLES]) == []


def test_platform_initiated_combinations() -> None:
    base = {"dataType": "Conversions", "method": "SFTP", "credentialRef": {"name": "c"}}
    seen = {}
    for direction in ("Inbound", "Outbound"):
        for methodology in ("Push", "Pull"):
            spec = ConnectionSpec.model_validate(
                {**base, "direction": direction, "methodology": methodology}
            )
            seen[(direction, methodology)] = spec.platform_initiated
    assert seen == {
        ("Inbound", "Push"): False,
        ("Inbound", "Pull"): True,
        ("Outbound", "Push"): True,
        ("Outbound", "Pull"): False,
    }


def test_reports_inbound_breaks_exactly_one_rule() -> None:
    spec = ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Reports", "method": "SFTP",
        "methodology": "Push", "credentialRef": {"name": "c"},
    })
    assert [r.field for r in broken_rules(spec, spec.rules)] == [".dataType"]


@pytest.mark.parametrize(("direction", "methodology", "broken"), [
    ("Outbound", "Pull", []),
    ("Inbound", "Push", [".deleteAfterDownload"]),
])
def test_delete_after_download_is_for_outbound_pull(direction: str, methodology: str,
                                                    broken: list[str]) -> None:
    spec = ConnectionSpec.model_validate({
        "direction": direction, "dataType": "Reports" if direction == "Outbound" else "Clicks",
        "method": "SFTP", "methodology": methodology, "credentialRef": {"name": "c"},
        "deleteAfterDownload": True,
    })
    assert [r.field for r in broken_rules(spec, spec.rules)] == broken


@pytest.mark.parametrize(("method", "credential", "fits"), [
    ("SFTP", {"type": "PublicKey", "publicKey": "ssh-ed25519 AAAAC3Nz k"}, True),
    ("FTP", {"type": "PublicKey", "publicKey": "ssh-ed25519 AAAAC3Nz k"}, False),
    ("Email", {"type": "PublicKey", "publicKey": "ssh-ed25519 AAAAC3Nz k"}, False),
    ("SFTP", {"type": "PublicKey"}, False),
    ("FTP", {"type": "Password"}, True),
])
def test_credential_fit_for_a_listener(method: str, credential: dict[str, str], fits: bool) -> None:
    connection = ConnectionSpec.model_validate({
        "direction": "Inbound", "dataType": "Clicks", "method": method, "methodology": "Push",
        "credentialRef": {"name": "c"}, "filenamePattern": "*.csv",
    })
    misfit = credential_misfit(connection, CredentialSpec.model_validate(credential), "c")
    assert (misfit is None) == fits, misfit


def test_validator_output_format_and_exit_status(tmp_path: Path) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: connectors.dev/v1alpha1\n"
        "kind: Connection\n"
        "metadata:\n"
        "  name: acme\n"
        "spec:\n"
        "  direction: Inbound\n"
        "  dataType: Clicks\n"
        "  method: SFTP\n"
        "  methodology: Pull\n"
        "  credentialRef: {name: acme}\n"
        "  remote:\n"
        "    host: sftp.acme.example\n"
        "    folder: incoming\n"
        "    hostKeys: [ssh-ed25519 AAAAC3Nz]\n"
    )
    result = subprocess.run([sys.executable, "-m", "connectors.cli", "validate", str(tmp_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{manifest}:10: Connection/acme: spec.credentialRef.name: warning: Credential acme is "
        "in none of these files, so whether it exists and fits cannot be checked: it must "
        "exist in namespace default when this is applied (--cluster looks it up there)",
        f"{manifest}:13: Connection/acme: spec.remote.folder: remote.folder must be an absolute "
        "path on the partner's server, such as /outgoing, for SFTP and FTP",
    ]


def test_validator_checks_credential_references_within_the_files(tmp_path: Path) -> None:
    (tmp_path / "all.yaml").write_text(
        (EXAMPLES / "01-inbound-push-sftp-conversions.yaml").read_text().replace(
            "name: acme-sftp\n", "name: acme-sftp-renamed\n", 1)
    )
    problems = validate_paths([tmp_path])
    assert [(p.field_path, p.line, p.severity) for p in problems] == [
        ("spec.credentialRef.name", 24, "warning")]
    assert "Credential acme-sftp is in none of these files" in problems[0].message


def test_validator_exit_2_for_unreadable_input(tmp_path: Path) -> None:
    broken = tmp_path / "broken.yaml"
    broken.write_text("kind: Connection\nspec: [unclosed\n")
    for target in (broken, tmp_path / "missing.yaml"):
        result = subprocess.run(
            [sys.executable, "-m", "connectors.cli", "validate", str(target)],
            capture_output=True, text=True, check=False,
        )
        assert result.returncode == 2, result
        assert str(target) in result.stderr


def test_validator_never_prints_values(tmp_path: Path) -> None:
    (tmp_path / "c.yaml").write_text(
        "apiVersion: connectors.dev/v1alpha1\nkind: Credential\nmetadata: {name: c}\n"
        "spec: {type: Password, password: s3cret-value-never-shown}\n"
    )
    result = subprocess.run([sys.executable, "-m", "connectors.cli", "validate", str(tmp_path)],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "spec.password: unknown field" in result.stdout
    assert "s3cret-value-never-shown" not in result.stdout + result.stderr


def test_password_hash_round_trip_and_table_render_is_stable() -> None:
    encoded = hash_password("correct horse", salt=b"0123456789abcdef")
    assert verify_password("correct horse", encoded)
    assert not verify_password("wrong horse", encoded)
    assert not verify_password("correct horse", None)
    assert not verify_password("correct horse", "$md5$nope")
    assert "correct horse" not in encoded
    cheap = hash_password("x" * 32, log_n=10)
    assert cheap.startswith("$scrypt$ln=10,")
    assert verify_password("x" * 32, cheap)
    assert not verify_password("y" * 32, cheap)
    table = AccountTable.model_validate({"accounts": [
        {"username": "b", "connection": "b", "direction": "Inbound", "home": "b",
         "permissions": ["upload"]},
        {"username": "a", "connection": "a", "direction": "Outbound", "home": "a",
         "permissions": ["list"]},
    ]})
    rendered = table.render()
    assert AccountTable.parse(rendered).render() == rendered
    assert [a.username for a in AccountTable.parse(rendered).accounts] == ["a", "b"]


FILENAME_REGEX = r"^[^/\\\[\]]+$"


@pytest.mark.parametrize("pattern", ["in/*.csv", "in\\*.csv", "[abc]*.csv"])
def test_bad_filename_pattern_is_explained_in_words_offline(tmp_path: Path, pattern: str) -> None:
    manifest = tmp_path / "bad.yaml"
    manifest.write_text(
        "apiVersion: connectors.dev/v1alpha1\nkind: Connection\nmetadata: {name: acme}\n"
        "spec:\n  direction: Inbound\n  dataType: Clicks\n  method: SFTP\n"
        "  methodology: Push\n  credentialRef: {name: acme}\n"
        f"  filenamePattern: {json.dumps(pattern)}\n")
    [problem] = validate_paths([manifest])
    assert problem.field_path == "spec.filenamePattern"
    assert problem.message == FILENAME_PATTERN_MESSAGE
    assert FILENAME_REGEX not in problem.message
    assert "should match pattern" not in problem.message
    # The words name every character the rule refuses, and the two wildcards.
    for refused in ("'/'", "'\\'", "'['", "']'", "* (any run of characters)",
                    "? (one character)"):
        assert refused in problem.message


def test_crd_explains_a_bad_filename_pattern_in_words_too() -> None:
    crd = yaml.safe_load(render_all()["connections.yaml"])
    spec = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    field = spec["properties"]["filenamePattern"]
    # A `pattern` keyword would make the API server quote the regular expression.
    assert "pattern" not in field
    [rule] = field["x-kubernetes-validations"]
    assert rule["message"] == FILENAME_PATTERN_MESSAGE
    # The CEL rule checks the very expression the models check.
    assert FILENAME_REGEX in rule["rule"]
    assert FILENAME_PATTERN == FILENAME_REGEX


def test_python_m_connectors_is_the_connectors_command() -> None:
    result = subprocess.run([sys.executable, "-m", "connectors", "--help"],
                            capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: connectors ")
    assert "validate" in result.stdout


def test_one_list_of_key_types_for_the_api_and_the_listener() -> None:
    """A security-key type passed the API and was then dropped by the SFTP
    listener (paramiko cannot verify it): such a Credential was Ready and
    could never log in. The API now refuses what the listener cannot use."""
    import base64 as b64

    from connectors.api.credential import KEY_TYPES, CredentialSpec
    from connectors.api.credential import RULES as CREDENTIAL_RULES
    from connectors.api.rules import broken_rules
    from connectors.listeners.core.login_gate import key_blobs

    blob = b64.b64encode(b"\x00\x00\x00\x0bssh-ed25519" + b"\x00" * 36).decode()
    for kind in KEY_TYPES:
        assert key_blobs([f"{kind} {blob} partner"]), kind
    good = CredentialSpec.model_validate({"type": "PublicKey",
                                          "publicKey": f"ssh-ed25519 {blob} partner"})
    assert broken_rules(good, CREDENTIAL_RULES) == []
    security_key = CredentialSpec.model_validate(
        {"type": "PublicKey", "publicKey": f"sk-ssh-ed25519@openssh.com {blob} partner"})
    assert [rule.field for rule in broken_rules(security_key, CREDENTIAL_RULES)] == [".publicKey"]
    assert not key_blobs([f"sk-ssh-ed25519@openssh.com {blob} partner"])
