"""Outbound Push with spec.pgp.encryptTo against OpenSSH sshd on loopback: the
job encrypts each file to the partner's OpenPGP key and sends it as <name>.pgp,
which the partner's own gpg decrypts to the original."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.api.connection import ConnectionSpec
from connectors.planning.jobs import PGP_PUBLIC_KEY_FILE, transfer_config_map
from tests.integration.transfer.test_transfer_sftp import ledger, push_spec
from tests.integration.transfer.transfer_servers import Job, Sshd, SystemUser
from tests.support.openpgp import GpgCli

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="needs gpg (gnupg)")


@pytest.fixture
def partner_gpg(tmp_path: Path) -> Iterator[GpgCli]:
    cli = GpgCli(tmp_path / "partner-gnupg")
    yield cli
    cli.stop()


def configure(job: Job, sshd: Sshd, user: SystemUser, remote_dir: Path,
              public_key: str | None) -> Path:
    """The job's files as the operator writes them: connection.json and the
    partner's key from the ConfigMap the planning makes, the login from the Secret."""
    spec = ConnectionSpec.model_validate({
        **push_spec(sshd.port, remote_dir, sshd.host_key_line),
        "pgp": {"encryptTo": {"name": "partner-a-pgp"}},
    })
    config_map = transfer_config_map("test", job.name, spec, {}, pgp_public_key=public_key)
    job.configure({}, [f"[127.0.0.1]:{sshd.port} {sshd.host_key_line}"])
    (job.root / "connection.json").write_text(config_map["data"]["connection.json"])
    key_file = job.root / PGP_PUBLIC_KEY_FILE
    if PGP_PUBLIC_KEY_FILE in config_map["data"]:
        key_file.write_text(config_map["data"][PGP_PUBLIC_KEY_FILE])
    job.credential(user.name, password=user.password)
    return key_file


def test_pushed_files_arrive_as_pgp_and_decrypt_to_the_original(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path, partner_gpg: GpgCli,
    tmp_path: Path,
) -> None:
    fingerprint = partner_gpg.new_key("Partner A <files@partner-a.example>")
    key_file = configure(job, sshd, system_user, remote_dir, partner_gpg.export(fingerprint))
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    files = {"report-1.csv": b"day,clicks\n" + b"2026-01-01,12\n" * 5000,
             "report-2.csv": os.urandom(3 * 1024 * 1024 + 17)}
    for name, data in files.items():
        (outbox / name).write_bytes(data)

    first = job.run("--pgp-public-key", str(key_file))
    assert first.code == 0, first.stderr
    assert first.summary["files"] == 2
    arrived = sorted(p.name for p in remote_dir.iterdir())
    assert arrived == ["report-1.csv.pgp", "report-2.csv.pgp"]  # never a file in clear
    assert first.summary["bytes"] == sum(p.stat().st_size for p in remote_dir.iterdir())
    for name, data in files.items():
        out = tmp_path / f"decrypted-{name}"
        partner_gpg.run("--decrypt", "--output", str(out), str(remote_dir / f"{name}.pgp"))
        assert out.read_bytes() == data
        assert (remote_dir / f"{name}.pgp").read_bytes()[:1] != b"-"  # binary, not armored
    assert sorted(p.name for p in (job.home / "sent").iterdir()) == sorted(files)
    assert list((job.home / ".connectors" / "encrypted").iterdir()) == []
    assert {e["note"] for e in ledger(job) if e["kind"] == "sent"} == {
        f"sent as {name}.pgp, encrypted to the partner's OpenPGP key" for name in files}

    # The partner takes the files; the next run has nothing to send.
    for path in remote_dir.iterdir():
        path.unlink()
    second = job.run("--pgp-public-key", str(key_file))
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0
    assert list(remote_dir.iterdir()) == []


def test_without_the_partner_key_nothing_is_sent(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    key_file = configure(job, sshd, system_user, remote_dir, None)
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "report.csv").write_bytes(b"confidential\n")
    result = job.run("--pgp-public-key", str(key_file))
    assert result.code == 1
    message = result.summary["message"]
    assert "spec.pgp.encryptTo names Credential partner-a-pgp" in message
    assert "nothing was sent" in message
    assert list(remote_dir.iterdir()) == []
    assert [p.name for p in outbox.iterdir()] == ["report.csv"]
    assert result.summary["outcome"] == "Failed"


def test_a_partner_key_that_cannot_encrypt_sends_nothing(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path, partner_gpg: GpgCli
) -> None:
    signing_only = partner_gpg.new_key("Signer <sign@partner-a.example>", encryption=None)
    key_file = configure(job, sshd, system_user, remote_dir, partner_gpg.export(signing_only))
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "report.csv").write_bytes(b"confidential\n")
    result = job.run("--pgp-public-key", str(key_file))
    assert result.code == 1
    assert "no key that can encrypt" in result.summary["message"]
    assert list(remote_dir.iterdir()) == []
