"""The Credential reconciler with PGPKey Credentials, against the fake of Kube
and the real gpg: a generated key pair once, a partner's key read and shown."""

from __future__ import annotations

import base64
import shutil
from pathlib import Path
from typing import Any

import pytest

from connectors import pgp
from connectors.controller.reconcilers.credential import reconcile_credential
from connectors.planning.credentials import PGP_PRIVATE_KEY, PGP_PUBLIC_KEY
from tests.support import secrets as secret_scan
from tests.support.fake_kube import FakeKube
from tests.support.openpgp import GpgCli

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg (gnupg)")
NS = "partners"


def credential(name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "connectors.dev/v1alpha1", "kind": "Credential",
            "metadata": {"name": name, "namespace": NS, "uid": f"uid-{name}", "generation": 1,
                         "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"type": "PGPKey", **spec}}


def ready(obj: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in obj["status"]["conditions"] if c["type"] == "Ready")


def secret_value(secret: dict[str, Any], key: str) -> str:
    return base64.b64decode(secret["data"][key]).decode()


def test_a_key_pair_is_generated_once_and_its_public_half_shown(tmp_path: Path) -> None:
    kube = FakeKube()
    outcome = reconcile_credential(kube, kube.put(credential("acme-pgp")))  # type: ignore[arg-type]
    assert outcome.verdict.ok, outcome.verdict
    stored = kube.objects[("Credential", NS, "acme-pgp")]
    status = stored["status"]
    secret = kube.objects[("Secret", NS, "acme-pgp-credential")]
    assert secret["type"] == "Opaque"
    assert set(secret["data"]) == {PGP_PRIVATE_KEY, PGP_PUBLIC_KEY}
    private = secret_value(secret, PGP_PRIVATE_KEY)
    secret_scan.remember(private)
    assert private.startswith(pgp.PRIVATE_BEGIN)
    assert status["publicKey"] == secret_value(secret, PGP_PUBLIC_KEY)
    assert status["fingerprints"] == [pgp.fingerprint_of(status["publicKey"])]
    assert status.get("username") is None
    assert ready(stored)["reason"] == "KeyPairGenerated"
    assert status["fingerprints"][0] in ready(stored)["message"]
    # The user id names the Credential and its namespace, for the partner's keyring.
    shown = GpgCli(tmp_path / "gnupg").run("--with-colons", "--import-options", "show-only",
                                           "--import", input=status["publicKey"].encode())
    assert "connectors <acme-pgp@partners>" in shown.stdout.decode()
    # The next reconcile keeps the pair and writes nothing.
    before = len(kube.writes())
    reconcile_credential(kube, stored)  # type: ignore[arg-type]
    assert kube.writes()[before:] == []
    assert secret_value(kube.objects[("Secret", NS, "acme-pgp-credential")],
                        PGP_PRIVATE_KEY) == private


def test_a_partner_key_is_read_and_fingerprinted(tmp_path: Path) -> None:
    cli = GpgCli(tmp_path / "gnupg")
    fingerprint = cli.new_key("Partner <files@partner.example>")
    kube = FakeKube()
    body = kube.put(credential("acme-partner", publicKey=cli.export(fingerprint)))
    outcome = reconcile_credential(kube, body)  # type: ignore[arg-type]
    assert outcome.verdict.ok, outcome.verdict
    status = kube.objects[("Credential", NS, "acme-partner")]["status"]
    assert status["fingerprints"] == [fingerprint]
    assert status.get("secretName") is None
    assert status.get("publicKey") is None
    assert not [key for key in kube.objects if key[0] == "Secret"]
    cli.stop()


def test_a_partner_key_that_cannot_encrypt_is_not_ready(tmp_path: Path) -> None:
    cli = GpgCli(tmp_path / "gnupg")
    fingerprint = cli.new_key("Signer <sign@partner.example>", encryption=None)
    kube = FakeKube()
    body = kube.put(credential("acme-signer", publicKey=cli.export(fingerprint)))
    outcome = reconcile_credential(kube, body)  # type: ignore[arg-type]
    assert not outcome.verdict.ok
    assert outcome.verdict.reason == "InvalidPublicKey"
    assert "no key that can encrypt" in outcome.verdict.message
    assert [e[2] for e in kube.events] == ["InvalidPublicKey"]


def test_without_gpg_the_credential_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONNECTORS_GPG", "gpg-that-is-not-installed")
    kube = FakeKube()
    outcome = reconcile_credential(kube, kube.put(credential("no-gpg")))  # type: ignore[arg-type]
    assert outcome.verdict.reason == "KeyGenerationFailed"
    assert "GnuPG (gpg) is not installed" in outcome.verdict.message
    assert not [key for key in kube.objects if key[0] == "Secret"]
