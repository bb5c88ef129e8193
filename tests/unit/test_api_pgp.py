"""Credentials of type PGPKey and what a Connection's spec.pgp needs of them: the
API rules, credential_misfit, pgp_misfit and `connectors validate`."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from connectors.api import ConnectionSpec, CredentialSpec
from connectors.api.compat import credential_misfit, pgp_credential_name, pgp_misfit
from connectors.api.credential import PGP_PUBLIC_KEY_PATTERN
from connectors.api.rules import broken_rules
from connectors.validate import validate_paths
from tests.support.openpgp import GpgCli

API = "connectors.dev/v1alpha1"
SSH_KEY = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0j54elL+x+D3NK2WR3xXx "
           "partner")
needs_gpg = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg (gnupg)")


@pytest.fixture(scope="module")
def keyring(tmp_path_factory: pytest.TempPathFactory) -> Any:
    cli = GpgCli(tmp_path_factory.mktemp("partner") / "gnupg")
    yield cli
    cli.stop()


@pytest.fixture(scope="module")
def partner_key(keyring: GpgCli) -> str:
    """A partner's real public key, as `gpg --armor --export` writes it."""
    return keyring.export(keyring.new_key("Partner <files@partner.example>"))


def broken(spec: dict[str, Any]) -> list[str]:
    model = CredentialSpec.model_validate(spec)
    return [rule.field for rule in broken_rules(model, model.rules)]


# ---- the Credential's rules ----------------------------------------------------------------


@needs_gpg
def test_a_partner_key_from_gpg_is_a_valid_pgpkey(partner_key: str) -> None:
    assert re.fullmatch(PGP_PUBLIC_KEY_PATTERN, partner_key)
    assert broken({"type": "PGPKey", "publicKey": partner_key}) == []
    # The way YAML block scalars and Windows editors hand it over.
    assert broken({"type": "PGPKey", "publicKey": "\n" + partner_key.replace("\n", "\r\n")}) == []


def test_a_pgpkey_without_a_key_is_valid_and_generated() -> None:
    assert broken({"type": "PGPKey"}) == []
    assert broken({"type": "PGPKey", "description": "our key for Acme's files"}) == []


@needs_gpg
def test_the_ssh_rule_is_for_publickey_and_the_openpgp_rule_for_pgpkey(partner_key: str) -> None:
    assert broken({"type": "PublicKey", "publicKey": SSH_KEY}) == []
    assert broken({"type": "PublicKey", "publicKey": partner_key}) == [".publicKey"]
    assert broken({"type": "PGPKey", "publicKey": SSH_KEY}) == [".publicKey"]
    assert broken({"type": "Password", "publicKey": partner_key}) == [".publicKey"]


@needs_gpg
@pytest.mark.parametrize("change", ["two blocks", "private", "no end", "text around"])
def test_one_armored_public_block_and_nothing_else(partner_key: str, change: str) -> None:
    text = {
        "two blocks": partner_key + partner_key,
        "private": partner_key.replace("PUBLIC KEY", "PRIVATE KEY"),
        "no end": partner_key.rsplit("-----END", 1)[0],
        "text around": "here is my key:\n" + partner_key,
    }[change]
    assert broken({"type": "PGPKey", "publicKey": text}) == [".publicKey"]


def test_a_pgpkey_takes_no_secret_ref_and_no_username() -> None:
    assert broken({"type": "PGPKey", "secretRef": {"name": "issued"}}) == [".secretRef"]
    assert broken({"type": "PGPKey", "username": "acme"}) == [".username"]


def test_every_message_of_the_openpgp_rules_is_in_words() -> None:
    for rule in CredentialSpec.rules:
        if "PGPKey" in rule.cel:
            assert "[^-]" not in rule.message, rule.message
            assert "\\s" not in rule.message, rule.message


# ---- which Credential fits where -----------------------------------------------------------


def connection(**spec: Any) -> ConnectionSpec:
    base = {"direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Push", "credentialRef": {"name": "login"}}
    return ConnectionSpec.model_validate({**base, **spec})


INBOUND = {"pgp": {"decryptWith": {"name": "ours"}}}
OUTBOUND = {"direction": "Outbound", "dataType": "Reports", "methodology": "Pull",
            "pgp": {"encryptTo": {"name": "theirs"}}}
GENERATED = {"type": "PGPKey"}
PARTNERS = {"type": "PGPKey", "publicKey": "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmDME\n"
                                           "-----END PGP PUBLIC KEY BLOCK-----\n"}


@pytest.mark.parametrize("method", ["SFTP", "FTP", "Email"])
@pytest.mark.parametrize("credential", [GENERATED, PARTNERS], ids=["generated", "partner's"])
def test_a_pgpkey_is_never_a_login(method: str, credential: dict[str, Any]) -> None:
    spec = connection(method=method, filenamePattern="*.csv")
    misfit = credential_misfit(spec, CredentialSpec.model_validate(credential), "acme-pgp")
    assert misfit is not None
    assert "Credential acme-pgp is of type PGPKey" in misfit
    assert "logs nobody in" in misfit
    assert "spec.pgp.decryptWith" in misfit


@pytest.mark.parametrize(("spec", "name", "credential", "words"), [
    (INBOUND, "ours", GENERATED, None),
    (INBOUND, "ours", PARTNERS, "holds a partner's public key, which can only encrypt"),
    (INBOUND, "ours", {"type": "Password"}, "is of type Password, but spec.pgp.decryptWith "
                                            "needs a Credential of type PGPKey"),
    (INBOUND, "ours", {"type": "PublicKey", "publicKey": SSH_KEY}, "of type PublicKey"),
    (OUTBOUND, "theirs", PARTNERS, None),
    (OUTBOUND, "theirs", GENERATED, "has no publicKey: spec.pgp.encryptTo encrypts files to "
                                    "the partner's OpenPGP public key"),
    (OUTBOUND, "theirs", {"type": "Password"}, "spec.pgp.encryptTo needs a Credential of type "
                                               "PGPKey"),
    (INBOUND, "someone-else", GENERATED, "not the one spec.pgp names"),
    ({}, "ours", {"type": "Password"}, None),
])
def test_pgp_misfit(spec: dict[str, Any], name: str, credential: dict[str, Any],
                    words: str | None) -> None:
    misfit = pgp_misfit(connection(**spec), CredentialSpec.model_validate(credential), name)
    if words is None:
        assert misfit is None
    else:
        assert misfit is not None
        assert words in misfit, misfit
        assert name in misfit


def test_the_credential_spec_pgp_names() -> None:
    assert pgp_credential_name(connection(**INBOUND)) == "ours"
    assert pgp_credential_name(connection(**OUTBOUND)) == "theirs"
    assert pgp_credential_name(connection()) is None


# ---- connectors validate -------------------------------------------------------------------


def write(tmp_path: Path, *documents: dict[str, Any]) -> Path:
    path = tmp_path / "manifests.yaml"
    path.write_text(yaml.safe_dump_all(documents, sort_keys=False))
    return path


def manifest(kind: str, name: str, spec: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": API, "kind": kind, "metadata": {"name": name}, "spec": spec}


def test_validate_names_decrypt_with_that_holds_a_partner_key(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        manifest("Credential", "login", {"type": "Password"}),
        manifest("Credential", "ours", PARTNERS),
        manifest("Connection", "acme", {
            "direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Push", "credentialRef": {"name": "login"}, **INBOUND}),
    )
    problems = [p for p in validate_paths([path]) if p.field_path.startswith("spec.pgp")]
    assert [p.field_path for p in problems] == ["spec.pgp.decryptWith.name"]
    assert "can only encrypt" in problems[0].message


def test_validate_names_a_pgpkey_used_as_a_login(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        manifest("Credential", "ours", GENERATED),
        manifest("Connection", "acme", {
            "direction": "Inbound", "dataType": "Clicks", "method": "SFTP",
            "methodology": "Push", "credentialRef": {"name": "ours"}}),
    )
    [problem] = validate_paths([path])
    assert problem.field_path == "spec.credentialRef.name"
    assert "of type PGPKey" in problem.message


@needs_gpg
def test_validate_reads_the_partner_key_as_the_operator_does(
    tmp_path: Path, keyring: GpgCli, partner_key: str
) -> None:
    signing_only = GpgCli(tmp_path / "signer")
    sign_key = signing_only.export(signing_only.new_key("S <s@partner.example>", encryption=None))
    path = write(tmp_path,
                 manifest("Credential", "good", {"type": "PGPKey", "publicKey": partner_key}),
                 manifest("Credential", "bad", {"type": "PGPKey", "publicKey": sign_key}))
    [problem] = validate_paths([path])
    assert (problem.name, problem.field_path) == ("bad", "spec.publicKey")
    assert "no key that can encrypt" in problem.message
