"""The FTP transfer job against vsftpd on loopback: plain, explicit and
implicit FTPS (the certificate verified through SSL_CERT_FILE)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from tests.integration.transfer.transfer_servers import (
    Certificate,
    Job,
    SystemUser,
    Vsftpd,
    kill_sessions_mid_transfer,
    put_remote,
)


def spec(server: Vsftpd, folder: Path, port: int | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "direction": "Inbound",
        "dataType": "Clicks",
        "method": "FTP",
        "methodology": "Pull",
        "credentialRef": {"name": "partner-a"},
        "filenamePattern": "clicks_*.csv",
        "remote": {
            "host": "127.0.0.1",
            "port": port or server.port,
            "folder": str(folder),
            "tls": server.tls,
            **extra,
        },
    }


def setup(
    job: Job, server: Vsftpd, user: SystemUser, folder: Path, cert: Certificate, **extra: Any
) -> None:
    job.configure(spec(server, folder, **extra))
    job.credential(user.name, password=user.password)
    job.env["SSL_CERT_FILE"] = str(cert.cert)


def test_pull_fetches_each_matching_file_once(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    put_remote(remote_dir, "clicks_1.csv", b"1\n" * 5000)
    put_remote(remote_dir, "clicks_2.csv", b"")
    put_remote(remote_dir, "other.csv", b"no")
    put_remote(remote_dir, "result_clicks_1.csv", b"reserved")
    setup(job, vsftpd, system_user, remote_dir, certificate)

    first = job.run()
    assert first.code == 0, first.stderr
    assert job.landed() == {"clicks_1.csv": b"1\n" * 5000, "clicks_2.csv": b""}
    assert first.summary["files"] == 2

    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0

    put_remote(remote_dir, "clicks_3.csv", b"three", mtime=1_700_000_500)
    third = job.run()
    assert third.summary["files"] == 1, third.stderr
    assert job.landed()["clicks_3.csv"] == b"three"
    assert job.temporaries() == []


def test_wrong_password_is_a_clear_error(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    put_remote(remote_dir, "clicks_1.csv", b"1")
    setup(job, vsftpd, system_user, remote_dir, certificate)
    wrong = "nope-" + system_user.password
    job.credential(system_user.name, password=wrong)

    result = job.run()
    assert result.code != 0
    assert "refused" in result.summary["message"]
    assert wrong not in result.stdout + result.stderr
    assert job.landed() == {}


def test_untrusted_certificate_is_refused_unless_skipped(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    if vsftpd.tls == "None":
        return
    put_remote(remote_dir, "clicks_1.csv", b"1")
    setup(job, vsftpd, system_user, remote_dir, certificate)
    job.env.pop("SSL_CERT_FILE")

    refused = job.run()
    assert refused.code != 0
    assert "certificate" in refused.summary["message"]
    assert job.landed() == {}

    job.configure(spec(vsftpd, remote_dir, insecureSkipTlsVerify=True))
    accepted = job.run()
    assert accepted.code == 0, accepted.stderr
    assert job.landed() == {"clicks_1.csv": b"1"}


def test_killed_session_lands_nothing_and_next_run_completes(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    big = os.urandom(64 * 1024 * 1024)
    put_remote(remote_dir, "clicks_big.csv", big)
    setup(job, vsftpd, system_user, remote_dir, certificate)

    process = job.start("--retries", "0", "--timeout", "20")
    killed = kill_sessions_mid_transfer(vsftpd.process.pid, job.home)
    cut = job.finish(process)
    assert killed, "the download never started"
    assert cut.code != 0
    assert cut.summary["outcome"] == "Failed"
    assert job.landed() == {}
    assert job.temporaries() == []

    done = job.run()
    assert done.code == 0, done.stderr
    assert job.landed() == {"clicks_big.csv": big}
    assert job.run().summary["files"] == 0
    assert len(job.receipts()) == 1


def test_push_delivers_each_file_once(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    job.configure(
        {
            "direction": "Outbound",
            "dataType": "Reports",
            "method": "FTP",
            "methodology": "Push",
            "credentialRef": {"name": "partner-a"},
            "remote": {
                "host": "127.0.0.1",
                "port": vsftpd.port,
                "folder": str(remote_dir),
                "tls": vsftpd.tls,
            },
        }
    )
    job.credential(system_user.name, password=system_user.password)
    job.env["SSL_CERT_FILE"] = str(certificate.cert)
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "report-1.csv").write_bytes(b"one\n" * 100)
    (outbox / "report-2.csv").write_bytes(os.urandom(2 * 1024 * 1024))
    expected = {p.name: p.read_bytes() for p in outbox.iterdir()}

    first = job.run()
    assert first.code == 0, first.stderr
    assert {p.name: p.read_bytes() for p in remote_dir.iterdir()} == expected
    assert sorted(p.name for p in (job.home / "sent").iterdir()) == sorted(expected)

    for path in remote_dir.iterdir():
        path.unlink()
    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0
    assert list(remote_dir.iterdir()) == []


def test_a_name_that_is_not_utf8_is_reported_and_the_others_land(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    good = {f"clicks_{i}.csv": f"{i}\n".encode() for i in range(3)}
    for name, data in good.items():
        put_remote(remote_dir, name, data)
    put_remote(remote_dir, os.fsdecode(b"clicks_caf\xe9.csv"), b"latin-1 name")
    setup(job, vsftpd, system_user, remote_dir, certificate)

    result = job.run()
    assert job.landed() == good
    assert result.summary["files"] == 3
    assert result.summary["failed"] == 1
    assert "clicks_caf\\xe9.csv" in result.summary["message"]
    assert "Traceback" not in result.stderr


def test_failure_messages_name_their_cause(
    job: Job, vsftpd: Vsftpd, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    """A session killed mid-download: 'connection lost while downloading X: '
    must go on with a cause, never end empty."""
    put_remote(remote_dir, "clicks_big.csv", os.urandom(64 * 1024 * 1024))
    setup(job, vsftpd, system_user, remote_dir, certificate)

    process = job.start("--retries", "0", "--timeout", "20")
    assert kill_sessions_mid_transfer(vsftpd.process.pid, job.home)
    cut = job.finish(process)
    assert cut.code != 0
    for part in cut.summary["message"].split("; "):
        assert part.strip(), cut.summary["message"]
        assert not part.rstrip().endswith(":"), cut.summary["message"]
