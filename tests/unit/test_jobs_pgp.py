"""Outbound encryption in the transfer job (spec.pgp.encryptTo), with the real gpg:
the key reaches the job through its ConfigMap, every file leaves as <name>.pgp,
and a file that cannot be encrypted is never sent."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from connectors import pgp
from connectors.api.connection import ConnectionSpec
from connectors.jobs.clients.base import PermanentError
from connectors.jobs.ledger import Ledger
from connectors.jobs.main import load_encryption_key
from connectors.jobs.push import Encryption, push
from connectors.jobs.spec import load_connection
from connectors.jobs.summary import Summary
from connectors.landing.area import LandingArea
from connectors.planning.config import OperatorConfig
from connectors.planning.jobs import PGP_PUBLIC_KEY_FILE, transfer_config_map, transfer_cronjob
from tests.support import secrets as secret_scan

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg (gnupg)")

SPEC: dict[str, Any] = {
    "direction": "Outbound", "dataType": "Reports", "method": "SFTP", "methodology": "Push",
    "credentialRef": {"name": "acme-sftp"},
    "remote": {"host": "sftp.acme.example", "folder": "/in",
               "hostKeys": ["ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKyOOMW+MElTxcj3JShWTjA0j54elL"
                            "+x+D3NK2WR3xXx"]},
    "pgp": {"encryptTo": {"name": "acme-pgp"}},
}


@pytest.fixture(scope="module")
def partner() -> tuple[str, str]:
    """The partner's key pair: (private, public)."""
    private, public, _ = pgp.generate_key_pair("Acme <files@acme.example>")
    secret_scan.remember(private)
    return private, public


# ---- what the operator plans ---------------------------------------------------------------


def test_the_configmap_carries_the_partner_key_and_the_job_finds_it(
    tmp_path: Path, partner: tuple[str, str]
) -> None:
    spec = ConnectionSpec.model_validate(SPEC)
    config_map = transfer_config_map("team-a", "acme-reports", spec, {}, pgp_public_key=partner[1])
    assert config_map["data"][PGP_PUBLIC_KEY_FILE] == partner[1]
    cronjob = transfer_cronjob("team-a", "acme-reports", spec, "acme-sftp-credential", "acme",
                               OperatorConfig(), {})
    env = {e["name"]: e.get("value") for e in
           cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["CONNECTORS_PGP_PUBLIC_KEY"] == f"/etc/connectors/connection/{PGP_PUBLIC_KEY_FILE}"
    # The job reads what the operator wrote, as the mounted ConfigMap gives it.
    for key, value in config_map["data"].items():
        (tmp_path / key).write_text(value)
    connection = load_connection(tmp_path / "connection.json", "acme-reports")
    assert connection.spec.encrypt_to == "acme-pgp"
    assert load_encryption_key(connection, tmp_path / PGP_PUBLIC_KEY_FILE) == partner[1]


def test_without_encrypt_to_there_is_no_key_and_no_encryption(partner: tuple[str, str],
                                                              tmp_path: Path) -> None:
    spec = ConnectionSpec.model_validate({k: v for k, v in SPEC.items() if k != "pgp"})
    config_map = transfer_config_map("team-a", "acme-reports", spec, {}, pgp_public_key=partner[1])
    assert PGP_PUBLIC_KEY_FILE not in config_map["data"]
    (tmp_path / "connection.json").write_text(config_map["data"]["connection.json"])
    connection = load_connection(tmp_path / "connection.json", "acme-reports")
    assert connection.spec.encrypt_to is None
    assert load_encryption_key(connection, tmp_path / "absent.asc") is None


def connection_for(tmp_path: Path, key: str | None) -> Any:
    spec = ConnectionSpec.model_validate(SPEC)
    config_map = transfer_config_map("team-a", "acme-reports", spec, {}, pgp_public_key=key)
    assert (PGP_PUBLIC_KEY_FILE in config_map["data"]) == (key is not None)
    (tmp_path / "connection.json").write_text(config_map["data"]["connection.json"])
    return load_connection(tmp_path / "connection.json", "acme-reports")


def test_a_job_without_the_partner_key_sends_nothing(tmp_path: Path) -> None:
    """The Credential is not Ready yet, so the operator had no key to give."""
    connection = connection_for(tmp_path, None)
    with pytest.raises(PermanentError, match="nothing was sent") as raised:
        load_encryption_key(connection, tmp_path / PGP_PUBLIC_KEY_FILE)
    assert "Credential acme-pgp" in str(raised.value)


def test_a_job_with_a_key_that_cannot_encrypt_sends_nothing(tmp_path: Path) -> None:
    connection = connection_for(tmp_path, None)
    key_file = tmp_path / PGP_PUBLIC_KEY_FILE
    key_file.write_text("-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm9wZQ==\n"
                        "-----END PGP PUBLIC KEY BLOCK-----\n")
    with pytest.raises(PermanentError, match=r"cannot be used.*nothing was sent"):
        load_encryption_key(connection, key_file)


# ---- push, with a client that delivers into a local folder ----------------------------------


class FolderClient:
    """A PushClient whose partner is a local folder: what `upload` writes is
    exactly what the partner would receive."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.uploads: list[str] = []

    def remote_size(self, name: str) -> int | None:
        path = self.folder / name
        return path.stat().st_size if path.exists() else None

    def upload(self, name: str, source: Path) -> None:
        self.uploads.append(name)
        shutil.copyfile(source, self.folder / name)

    def close(self) -> None:
        pass


def outbox(tmp_path: Path, files: dict[str, bytes]) -> LandingArea:
    landing = LandingArea(tmp_path / "data", "acme-reports")
    landing.ensure()
    landing.outbox.mkdir()
    for name, data in files.items():
        (landing.outbox / name).write_bytes(data)
    return landing


def test_each_file_is_sent_as_pgp_and_decrypts_to_the_original(
    tmp_path: Path, partner: tuple[str, str]
) -> None:
    files = {"report-1.csv": b"day,clicks\n1,2\n" * 1000, "report-2.csv": b""}
    landing = outbox(tmp_path, files)
    connection = connection_for(tmp_path, partner[1])
    client = FolderClient(tmp_path / "partner")
    ledger = Ledger(landing.internal / "ledger.jsonl")
    summary = Summary("acme-reports")
    push(client, connection.spec, landing, ledger, summary, partner[1])
    assert sorted(client.uploads) == ["report-1.csv.pgp", "report-2.csv.pgp"]
    assert summary.files == 2
    assert summary.bytes == sum(p.stat().st_size for p in client.folder.iterdir())
    for name, data in files.items():
        pgp.decrypt_file(client.folder / f"{name}.pgp", tmp_path / name, partner[0])
        assert (tmp_path / name).read_bytes() == data
    assert sorted(p.name for p in landing.sent.iterdir()) == sorted(files)
    assert list((landing.internal / "encrypted").iterdir()) == []
    notes = [json.loads(line)["note"] for line in
             (landing.internal / "ledger.jsonl").read_text().splitlines()]
    assert "sent as report-1.csv.pgp, encrypted to the partner's OpenPGP key" in notes


def test_a_file_that_cannot_be_encrypted_is_not_sent(tmp_path: Path) -> None:
    """Checked at start in a real run; here the key fails at the file itself."""
    landing = outbox(tmp_path, {"report.csv": b"secret numbers\n"})
    connection = connection_for(tmp_path, None)
    client = FolderClient(tmp_path / "partner")
    summary = Summary("acme-reports")
    ledger = Ledger(landing.internal / "ledger.jsonl")
    push(client, connection.spec, landing, ledger, summary, "not a key")
    assert client.uploads == []
    assert list(client.folder.iterdir()) == []
    assert summary.failed == 1
    assert "report.csv: not sent: encrypting it to the partner's OpenPGP key failed" in (
        summary.errors[0])
    assert [p.name for p in landing.outbox.iterdir()] == ["report.csv"]
    assert not (landing.internal / "ledger.jsonl").exists()


def test_an_upload_cut_off_is_checked_against_the_copy_it_was_sending(
    tmp_path: Path, partner: tuple[str, str]
) -> None:
    """The previous run encrypted, recorded 'sending', uploaded, and died: the
    partner has <name>.pgp of the very copy still kept; it is not sent again.
    A second file died before its upload completed: its same copy is sent."""
    landing = outbox(tmp_path, {"a.csv": b"a\n" * 500, "b.csv": b"b\n" * 500})
    connection = connection_for(tmp_path, partner[1])
    client = FolderClient(tmp_path / "partner")
    ledger = Ledger(landing.internal / "ledger.jsonl")
    first = Summary("acme-reports")
    # What the dead run did: encrypted both, recorded both as sending, uploaded a only.
    encryption = Encryption(landing, partner[1])
    from connectors.jobs.ledger import SENDING, Entry
    from connectors.jobs.push import outbox_files

    copies = {}
    for file in outbox_files(landing):
        copies[file.name] = encryption.encrypted(file).read_bytes()
        ledger.record(Entry(SENDING, file.name, file.size, file.mtime))
    shutil.copyfile(encryption.path(next(f for f in outbox_files(landing) if f.name == "a.csv")),
                    client.folder / "a.csv.pgp")
    (landing.internal / "encrypted" / ".stale.encrypting").write_bytes(b"half")

    push(client, connection.spec, landing, ledger, first, partner[1])
    assert client.uploads == ["b.csv.pgp"]
    assert (client.folder / "b.csv.pgp").read_bytes() == copies["b.csv"]
    assert (client.folder / "a.csv.pgp").read_bytes() == copies["a.csv"]
    assert sorted(p.name for p in landing.sent.iterdir()) == ["a.csv", "b.csv"]
    assert list((landing.internal / "encrypted").iterdir()) == []
