"""The FTP and SFTP transfer jobs against partner servers beyond vsftpd and
OpenSSH: proftpd (plain FTP, FTPS, and its own SFTP, mod_sftp) with MLSD
denied, and pure-ftpd with `-x` (no names starting with a dot). Both come
from Debian's packages, unpacked by hack/install-deps.sh."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.transfer.transfer_servers import (
    Certificate,
    Job,
    Partner,
    SystemUser,
    put_remote,
    start_proftpd,
    start_pure_ftpd,
    stop,
)


@pytest.fixture(scope="module", params=["None", "Explicit"])
def proftpd(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    certificate: Certificate,
) -> Iterator[Partner]:
    server = start_proftpd(tmp_path_factory.mktemp("proftpd"), certificate, tls=request.param)
    try:
        yield server
    finally:
        stop(server.process)


@pytest.fixture(scope="module")
def proftpd_sftp(
    tmp_path_factory: pytest.TempPathFactory, certificate: Certificate
) -> Iterator[Partner]:
    server = start_proftpd(tmp_path_factory.mktemp("proftpd-sftp"), certificate, sftp=True)
    try:
        yield server
    finally:
        stop(server.process)


@pytest.fixture(scope="module", params=["None", "Explicit"])
def pure_ftpd(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    certificate: Certificate,
) -> Iterator[Partner]:
    server = start_pure_ftpd(tmp_path_factory.mktemp("pure-ftpd"), certificate, request.param)
    try:
        yield server
    finally:
        stop(server.process)


def ftp_spec(server: Partner, folder: Path, direction: str) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "direction": direction,
        "dataType": "Clicks" if direction == "Inbound" else "Reports",
        "method": "FTP",
        "methodology": "Pull" if direction == "Inbound" else "Push",
        "credentialRef": {"name": "partner-a"},
        "remote": {
            "host": "127.0.0.1",
            "port": server.port,
            "folder": str(folder),
            "tls": server.tls,
        },
    }
    if direction == "Inbound":
        spec["filenamePattern"] = "clicks_*.csv"
    return spec


def sftp_spec(server: Partner, folder: Path, direction: str) -> dict[str, Any]:
    spec = ftp_spec(server, folder, direction)
    spec["method"] = "SFTP"
    spec["remote"] = {
        "host": "127.0.0.1",
        "port": server.port,
        "folder": str(folder),
        "hostKeys": [server.host_key_line],
    }
    return spec


def configure(
    job: Job, server: Partner, user: SystemUser, cert: Certificate, spec: dict[str, Any]
) -> None:
    known = [f"[127.0.0.1]:{server.port} {server.host_key_line}"] if server.host_key_line else []
    job.configure(spec, known)
    job.credential(user.name, password=user.password)
    job.env["SSL_CERT_FILE"] = str(cert.cert)


def remote_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def fill_outbox(job: Job) -> dict[str, bytes]:
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    (outbox / "report-1.csv").write_bytes(b"one\n" * 100)
    (outbox / "report-2.csv").write_bytes(os.urandom(300_000))
    return {p.name: p.read_bytes() for p in outbox.iterdir()}


def pull_many(job: Job, folder: Path) -> dict[str, bytes]:
    files = {f"clicks_{i:02d}.csv": f"row {i}\r\n".encode() * (i + 1) for i in range(22)}
    for name, data in files.items():
        put_remote(folder, name, data)
    put_remote(folder, "other.txt", b"not ours")
    (folder / "clicks_folder.csv").mkdir()
    return files


def test_proftpd_pull_without_mlsd_fetches_every_file(
    job: Job, proftpd: Partner, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    """NLST leaves the session in ASCII mode, where proftpd refuses SIZE: the
    job must switch back to binary, or it drops every file."""
    files = pull_many(job, remote_dir)
    configure(job, proftpd, system_user, certificate, ftp_spec(proftpd, remote_dir, "Inbound"))

    result = job.run()
    assert result.code == 0, result.stderr
    assert result.summary["files"] == len(files)
    assert job.landed() == files, "byte for byte: CRLF kept, binary mode"


def test_proftpd_push(
    job: Job, proftpd: Partner, system_user: SystemUser, remote_dir: Path, certificate: Certificate
) -> None:
    configure(job, proftpd, system_user, certificate, ftp_spec(proftpd, remote_dir, "Outbound"))
    expected = fill_outbox(job)

    result = job.run()
    assert result.code == 0, result.stderr
    assert result.summary["files"] == 2
    assert remote_files(remote_dir) == expected


def test_proftpd_sftp_pull_and_push(
    job: Job,
    proftpd_sftp: Partner,
    system_user: SystemUser,
    remote_dir: Path,
    certificate: Certificate,
) -> None:
    files = pull_many(job, remote_dir)
    configure(
        job, proftpd_sftp, system_user, certificate, sftp_spec(proftpd_sftp, remote_dir, "Inbound")
    )
    pulled = job.run()
    assert pulled.code == 0, pulled.stderr
    assert job.landed() == files

    for path in remote_dir.iterdir():
        if path.is_file():
            path.unlink()
    push = Job(job.root / "push")
    push_spec = sftp_spec(proftpd_sftp, remote_dir, "Outbound")
    configure(push, proftpd_sftp, system_user, certificate, push_spec)
    expected = fill_outbox(push)
    pushed = push.run()
    assert pushed.code == 0, pushed.stderr
    assert remote_files(remote_dir) == expected


def test_pure_ftpd_pull(
    job: Job,
    pure_ftpd: Partner,
    system_user: SystemUser,
    remote_dir: Path,
    certificate: Certificate,
) -> None:
    files = pull_many(job, remote_dir)
    configure(job, pure_ftpd, system_user, certificate, ftp_spec(pure_ftpd, remote_dir, "Inbound"))

    result = job.run()
    assert result.code == 0, result.stderr
    assert job.landed() == files


def test_pure_ftpd_refusing_dot_files_still_gets_pushes(
    job: Job,
    pure_ftpd: Partner,
    system_user: SystemUser,
    remote_dir: Path,
    certificate: Certificate,
) -> None:
    """pure-ftpd -x refuses the hidden temporary name `.NAME.part`: the job
    uploads to the visible `NAME.part` instead, then renames."""
    configure(job, pure_ftpd, system_user, certificate, ftp_spec(pure_ftpd, remote_dir, "Outbound"))
    expected = fill_outbox(job)

    result = job.run()
    assert result.code == 0, result.summary["message"]
    assert result.summary["files"] == 2
    assert remote_files(remote_dir) == expected, "no temporary file left behind"
