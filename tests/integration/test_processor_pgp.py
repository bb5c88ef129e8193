"""spec.pgp.decryptWith in `connectors process`: a file the partner encrypted with
the gpg command line to the platform's public key is decrypted and checked; a
file that is not encrypted to that key is answered with a result that says so,
and the partner's file stays as it came."""

from __future__ import annotations

import csv
import io
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors import pgp
from connectors.api.processing import Processed, ProcessingTable
from connectors.processor.work import DECRYPTED_DIR
from tests.integration.test_processor import land
from tests.support.conversions import conversions_file
from tests.support.openpgp import GpgCli

pytestmark = pytest.mark.timeout(300)

CONNECTION = "acme-conversions"


@pytest.fixture
def partner(tmp_path: Path) -> Iterator[GpgCli]:
    gpg = GpgCli(tmp_path / "partner-gnupg")
    yield gpg
    gpg.stop()


def summary(result: bytes) -> tuple[list[dict[str, str]], dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(result.decode("ascii"))))
    return ([r for r in rows if r["error_type"] != "summary"],
            {r["code"]: r["message"] for r in rows if r["error_type"] == "summary"})


def wait_for(path: Path, timeout: float = 90.0) -> bytes:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_bytes()
        time.sleep(0.2)
    raise AssertionError(f"{path.name} did not appear")


def test_encrypted_files_are_decrypted_checked_and_refused_when_not_for_us(
        tmp_path: Path, partner: GpgCli) -> None:
    private, public, _ = pgp.generate_key_pair("connectors acme-pgp@partners")
    secrets = tmp_path / "secrets" / "acme-pgp-credential"
    secrets.mkdir(parents=True)
    (secrets / "pgp-private-key.asc").write_text(private)
    partner.import_key(public)
    stranger = partner.new_key("someone else <else@example.com>")

    plain = conversions_file(200, bad_lines=(9,))
    source = tmp_path / "conversions_sealed.csv"
    source.write_bytes(plain)

    def encrypted(recipient: str) -> bytes:
        return partner.run("--trust-model", "always", "--encrypt", "--recipient", recipient,
                           "--output", "-", str(source)).stdout

    root = tmp_path / "data"
    root.mkdir()
    land(root, CONNECTION, "conversions_sealed.csv.pgp",
         encrypted("acme-pgp@partners"))
    land(root, CONNECTION, "conversions_open.csv.pgp", plain)
    land(root, CONNECTION, "conversions_other.csv.pgp", encrypted(stranger))
    table = tmp_path / "processing.json"
    table.write_text(ProcessingTable(connections=[Processed(
        connection=CONNECTION, home=CONNECTION, data_type="Conversions",
        decrypt_with="acme-pgp-credential")]).render())
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors", "process", "--data-root", str(root), "--table",
         str(table), "--poll-seconds", "0.2", "--sinks-secrets", str(tmp_path / "secrets"),
         "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=(tmp_path / "processor.log").open("ab"),
        env={k: v for k, v in os.environ.items() if k != "CONNECTORS_NAMESPACE"})
    home = root / CONNECTION
    try:
        sealed = wait_for(home / "result_conversions_sealed.csv.pgp.csv")
        opened = wait_for(home / "result_conversions_open.csv.pgp.csv")
        other = wait_for(home / "result_conversions_other.csv.pgp.csv")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)

    errors, counts = summary(sealed)
    assert (counts["status"], counts["rows_accepted"], counts["rows_rejected"]) == (
        "Complete", "199", "1")
    assert [(e["line"], e["column"]) for e in errors] == [("9", "Amount")]

    for result in (opened, other):
        errors, counts = summary(result)
        assert counts["status"] == "Failed"
        assert errors[0]["code"] == "not_decrypted"
    assert "not encrypted" in summary(opened)[0][0]["message"]
    # The partner's files stay as they came; no plain text is left behind
    # without a sink to hand it to.
    assert (home / "conversions_open.csv.pgp").read_bytes() == plain
    assert not list((home / ".connectors" / DECRYPTED_DIR).glob("*"))


def test_a_key_not_mounted_yet_holds_the_file_without_spinning(
        tmp_path: Path, partner: GpgCli) -> None:
    """The decryption key's Secret is missing (mounted Secrets are optional): the
    file waits, claimed once per pass rather than in a tight loop, and is
    checked once the key appears."""
    private, public, _ = pgp.generate_key_pair("connectors late-pgp@partners")
    partner.import_key(public)
    source = tmp_path / "conversions_late.csv"
    source.write_bytes(conversions_file(20))
    root = tmp_path / "data"
    root.mkdir()
    land(root, CONNECTION, "conversions_late.csv.pgp", partner.run(
        "--trust-model", "always", "--encrypt", "--recipient", "late-pgp@partners",
        "--output", "-", str(source)).stdout)
    table = tmp_path / "processing.json"
    table.write_text(ProcessingTable(connections=[Processed(
        connection=CONNECTION, home=CONNECTION, data_type="Conversions",
        decrypt_with="late-pgp-credential")]).render())
    secrets = tmp_path / "secrets"
    secrets.mkdir()
    log = tmp_path / "processor.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "connectors", "process", "--data-root", str(root), "--table",
         str(table), "--poll-seconds", "0.2", "--sinks-secrets", str(secrets),
         "--metrics-port", "0"],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"),
        env={k: v for k, v in os.environ.items() if k != "CONNECTORS_NAMESPACE"})
    try:
        time.sleep(3)
        waits = log.read_text().count("cannot decrypt conversions_late.csv.pgp yet")
        assert 1 <= waits <= 30, f"{waits} attempts in 3 s"
        assert not (root / CONNECTION / "result_conversions_late.csv.pgp.csv").exists()
        (secrets / "late-pgp-credential").mkdir()
        (secrets / "late-pgp-credential" / "pgp-private-key.asc").write_text(private)
        result = wait_for(root / CONNECTION / "result_conversions_late.csv.pgp.csv")
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert summary(result)[1]["rows_accepted"] == "20"
