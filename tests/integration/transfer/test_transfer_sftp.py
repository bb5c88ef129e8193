"""The SFTP transfer job against OpenSSH sshd on loopback."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import Any

from tests.integration.transfer.transfer_servers import (
    CuttingProxy,
    Job,
    JobResult,
    Sshd,
    SystemUser,
    put_remote,
)


def spec(
    port: int, folder: Path, host_key: str, pattern: str = "*.csv", **remote: Any
) -> dict[str, Any]:
    return {
        "direction": "Inbound",
        "dataType": "Conversions",
        "method": "SFTP",
        "methodology": "Pull",
        "credentialRef": {"name": "partner-a"},
        "filenamePattern": pattern,
        "remote": {
            "host": "127.0.0.1",
            "port": port,
            "folder": str(folder),
            "hostKeys": [host_key],
            **remote,
        },
    }


def setup(
    job: Job, sshd: Sshd, user: SystemUser, folder: Path, port: int | None = None, **remote: Any
) -> None:
    port = port or sshd.port
    job.configure(
        spec(port, folder, sshd.host_key_line, **remote),
        [f"[127.0.0.1]:{port} {sshd.host_key_line}"],
    )
    job.credential(user.name, password=user.password)


def run_cut(
    job: Job, sshd: Sshd, user: SystemUser, folder: Path, limit: int, *extra: str
) -> tuple[JobResult, CuttingProxy]:
    """One run through a proxy that drops the session once `limit` bytes came
    back from sshd."""
    proxy = CuttingProxy(sshd.port, limit=limit)
    try:
        setup(job, sshd, user, folder, port=proxy.port)
        return job.run(*extra), proxy
    finally:
        proxy.close()


def ledger(job: Job) -> list[dict[str, Any]]:
    path = job.home / ".connectors" / "ledger.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_pull_fetches_each_matching_file_once(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha\n")
    put_remote(remote_dir, "b.csv", b"beta\n" * 1000)
    put_remote(remote_dir, "notes.txt", b"not ours")
    put_remote(remote_dir, "receipt_a.csv", b"reserved")
    (remote_dir / "sub.csv").mkdir()
    setup(job, sshd, system_user, remote_dir)

    first = job.run()
    assert first.code == 0, first.stderr
    assert job.landed() == {"a.csv": b"alpha\n", "b.csv": b"beta\n" * 1000}
    assert first.summary["files"] == 2
    assert first.summary["bytes"] == 6 + 5000
    assert first.summary["outcome"] == "Succeeded"
    assert job.receipts() == ["receipt_a.csv.txt", "receipt_b.csv.txt"]
    assert {e["name"] for e in ledger(job)} == {"a.csv", "b.csv"}
    assert (remote_dir / "a.csv").exists(), "files stay on the remote by default"

    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0
    assert len(ledger(job)) == 2

    put_remote(remote_dir, "c.csv", b"gamma")
    third = job.run()
    assert third.code == 0, third.stderr
    assert third.summary["files"] == 1
    assert job.landed()["c.csv"] == b"gamma"
    assert sorted(e["name"] for e in ledger(job)) == ["a.csv", "b.csv", "c.csv"]
    assert job.temporaries() == []


def test_private_key_login_and_delete_after_transfer(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"x" * 100_000)
    setup(job, sshd, system_user, remote_dir, deleteAfterTransfer=True)
    job.credential(system_user.name, key=sshd.client_key)

    result = job.run()
    assert result.code == 0, result.stderr
    assert job.landed() == {"a.csv": b"x" * 100_000}
    assert not (remote_dir / "a.csv").exists()


def test_unknown_host_key_is_refused_and_shown(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha")
    other = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl"
    job.configure(spec(sshd.port, remote_dir, other), [f"[127.0.0.1]:{sshd.port} {other}"])
    job.credential(system_user.name, password=system_user.password)

    result = job.run("--retries", "2")
    assert result.code != 0
    assert result.summary["outcome"] == "Failed"
    assert sshd.host_key_line in result.summary["message"], "shows the key it saw, to pin"
    assert job.landed() == {}


def test_empty_known_hosts_refuses(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha")
    setup(job, sshd, system_user, remote_dir)
    (job.root / "known_hosts").write_text("")

    result = job.run()
    assert result.code != 0
    assert sshd.host_key_line in result.summary["message"]
    assert job.landed() == {}


def test_wrong_password_is_a_clear_error_without_the_secret(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha")
    setup(job, sshd, system_user, remote_dir)
    wrong = "wrong-" + system_user.password
    job.credential(system_user.name, password=wrong)

    result = job.run()
    assert result.code != 0
    assert "authentication" in result.summary["message"]
    assert wrong not in result.stdout + result.stderr
    assert job.landed() == {}


def test_dropped_connection_lands_nothing_and_next_run_completes(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    big = os.urandom(24 * 1024 * 1024)
    put_remote(remote_dir, "big.csv", big)
    cut, proxy = run_cut(job, sshd, system_user, remote_dir, 8 * 1024 * 1024, "--retries", "0")
    assert proxy.cuts == 1
    assert cut.code != 0
    assert cut.summary["outcome"] == "Failed"
    assert job.landed() == {}
    assert job.temporaries() == []

    setup(job, sshd, system_user, remote_dir)
    done = job.run()
    assert done.code == 0, done.stderr
    assert job.landed() == {"big.csv": big}
    assert job.run().summary["files"] == 0
    assert len(ledger(job)) == 1


def test_retry_after_a_drop_completes_in_the_same_run(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    data = os.urandom(6 * 1024 * 1024)
    put_remote(remote_dir, "a.csv", data)
    result, proxy = run_cut(job, sshd, system_user, remote_dir, 2 * 1024 * 1024, "--retries", "2")
    assert proxy.cuts == 1
    assert result.code == 0, result.stderr
    assert job.landed() == {"a.csv": data}
    assert "retrying" in result.stderr


def test_landed_but_unrecorded_file_is_recorded_not_fetched_again(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """The job died after the rename and before the ledger write."""
    put_remote(remote_dir, "a.csv", b"alpha")
    setup(job, sshd, system_user, remote_dir)
    assert job.run().code == 0
    (job.home / ".connectors" / "ledger.jsonl").unlink()
    landed_inode = (job.home / "a.csv").stat().st_ino

    again = job.run()
    assert again.code == 0, again.stderr
    assert (job.home / "a.csv").stat().st_ino == landed_inode, "not downloaded again"
    assert [e["note"] for e in ledger(job)] == ["recovered"]


def push_spec(port: int, folder: Path, host_key: str) -> dict[str, Any]:
    return {
        "direction": "Outbound",
        "dataType": "Reports",
        "method": "SFTP",
        "methodology": "Push",
        "credentialRef": {"name": "partner-a"},
        "remote": {
            "host": "127.0.0.1",
            "port": port,
            "folder": str(folder),
            "hostKeys": [host_key],
        },
    }


def setup_push(job: Job, port: int, host_key: str, user: SystemUser, folder: Path) -> Path:
    """Configures an Outbound Push to `folder` through `port`; returns the empty outbox."""
    job.configure(push_spec(port, folder, host_key), [f"[127.0.0.1]:{port} {host_key}"])
    job.credential(user.name, password=user.password)
    outbox = job.home / "outbox"
    outbox.mkdir(parents=True)
    return outbox


def test_push_delivers_each_file_once(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    outbox = setup_push(job, sshd.port, sshd.host_key_line, system_user, remote_dir)
    (outbox / "report-1.csv").write_bytes(b"one" * 1000)
    (outbox / "report-2.csv").write_bytes(os.urandom(3 * 1024 * 1024))
    expected = {p.name: p.read_bytes() for p in outbox.iterdir()}

    first = job.run()
    assert first.code == 0, first.stderr
    assert first.summary["files"] == 2
    assert {p.name: p.read_bytes() for p in remote_dir.iterdir()} == expected
    assert list(outbox.iterdir()) == []
    assert sorted(p.name for p in (job.home / "sent").iterdir()) == sorted(expected)

    # The partner consumes the files; a second run must not send them again.
    for path in remote_dir.iterdir():
        path.unlink()
    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0
    assert list(remote_dir.iterdir()) == []


def test_push_of_many_files_records_them_in_batches_and_a_refused_one_alone(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """150 files go in batches (one ledger write before and one after each batch
    of uploads); the partner's server refuses one (a folder holds its name): the
    others are sent and moved to sent/, that one stays in the outbox, recorded
    as sending, and the next run, once the folder is gone, sends it alone."""
    outbox = setup_push(job, sshd.port, sshd.host_key_line, system_user, remote_dir)
    files = {f"r-{i:03d}.csv": os.urandom(500 + i) for i in range(150)}
    for name, data in files.items():
        (outbox / name).write_bytes(data)
    blocker = remote_dir / "r-075.csv"
    blocker.mkdir()
    blocker.chmod(0o755)

    first = job.run()
    assert first.code != 0
    assert first.summary["files"] == 149
    assert first.summary["failed"] == 1
    assert [p.name for p in outbox.iterdir()] == ["r-075.csv"]
    assert {p.name: p.read_bytes() for p in remote_dir.iterdir() if p.is_file()} == {
        name: data for name, data in files.items() if name != "r-075.csv"}
    kinds = {(e["name"], e["kind"]) for e in ledger(job)}
    assert ("r-075.csv", "sending") in kinds
    assert ("r-075.csv", "sent") not in kinds
    assert all((name, "sent") in kinds for name in files if name != "r-075.csv")

    blocker.rmdir()
    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 1
    assert (remote_dir / "r-075.csv").read_bytes() == files["r-075.csv"]
    assert list(outbox.iterdir()) == []
    assert sorted(p.name for p in (job.home / "sent").iterdir()) == sorted(files)


def test_files_of_every_size_in_one_pipelined_run(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """Many files in flight at once on one session: sizes around the read size
    (64 KiB), empty and large files, and one the user may not read, which fails
    alone and is tried again next run."""
    files = {"big.csv": os.urandom(70 * 1024 * 1024 + 12345), "empty.csv": b""}
    for size in (1, 65535, 65536, 65537, 3 * 65536):
        files[f"edge-{size}.csv"] = os.urandom(size)
    for i in range(300):
        files[f"s{i:03d}.csv"] = os.urandom(1000 + 37 * i)
    for name, data in files.items():
        put_remote(remote_dir, name, data)
    put_remote(remote_dir, "locked.csv", b"secret").chmod(0o000)
    setup(job, sshd, system_user, remote_dir)

    first = job.run()
    assert first.code != 0
    assert first.summary["files"] == len(files)
    assert first.summary["failed"] == 1
    assert "locked.csv: permission denied" in first.summary["message"]
    assert job.landed() == files
    receipts = {p.name for p in job.home.glob("receipt_*.txt")}
    assert receipts == {f"receipt_{name}.txt" for name in files}
    assert job.temporaries() == []

    again = job.run()
    assert again.summary["files"] == 0
    assert again.summary["failed"] == 1
    assert len(ledger(job)) == len(files)


def test_cut_with_many_files_in_flight_lands_each_file_once(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """The session drops while dozens of files are half-fetched: what had
    arrived whole lands, nothing half-written does, and the next run fetches
    exactly the rest."""
    files = {f"f{i:04d}.csv": os.urandom(20_000 + i) for i in range(600)}
    for name, data in files.items():
        put_remote(remote_dir, name, data)
    cut, proxy = run_cut(job, sshd, system_user, remote_dir, 4 * 1024 * 1024, "--retries", "0")
    assert proxy.cuts == 1
    assert cut.code != 0
    landed_first = job.landed()
    assert 0 < len(landed_first) < len(files)
    assert all(files[name] == data for name, data in landed_first.items())
    assert job.temporaries() == []

    setup(job, sshd, system_user, remote_dir)
    done = job.run()
    assert done.code == 0, done.stderr
    assert done.summary["files"] == len(files) - len(landed_first)
    assert job.landed() == files
    names = [entry["name"] for entry in ledger(job)]
    assert sorted(names) == sorted(files)


def test_push_interrupted_after_upload_is_not_sent_again(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """The previous run uploaded the file and died before recording it as sent:
    the ledger says 'sending', the remote has the whole file."""
    outbox = setup_push(job, sshd.port, sshd.host_key_line, system_user, remote_dir)
    data = b"report\n" * 100
    (outbox / "r.csv").write_bytes(data)
    os.utime(outbox / "r.csv", (1_700_000_000, 1_700_000_000))
    delivered = put_remote(remote_dir, "r.csv", data, mtime=1_600_000_000)
    (job.home / ".connectors").mkdir(parents=True)
    entry = {
        "kind": "sending",
        "name": "r.csv",
        "size": len(data),
        "mtime": 1_700_000_000,
        "sha256": "",
        "at": "2026-01-01T00:00:00Z",
        "note": "",
    }
    (job.home / ".connectors" / "ledger.jsonl").write_text(json.dumps(entry) + "\n")

    result = job.run()
    assert result.code == 0, result.stderr
    assert delivered.stat().st_mtime == 1_600_000_000, "not uploaded again"
    assert [p.name for p in (job.home / "sent").iterdir()] == ["r.csv"]
    assert [e["kind"] for e in ledger(job)] == ["sending", "sent"]


def test_missing_known_hosts_is_a_clear_error(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha")
    setup(job, sshd, system_user, remote_dir)
    (job.root / "known_hosts").unlink()

    result = job.run()
    assert result.code != 0
    assert "trusted host keys" in result.summary["message"]
    assert job.landed() == {}


LATIN1_NAME = os.fsdecode(b"conversions_caf\xe9.csv")


def test_a_name_that_is_not_utf8_is_reported_and_the_others_land(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    good = {f"conversions_{i}.csv": f"{i}\n".encode() for i in range(3)}
    for name, data in good.items():
        put_remote(remote_dir, name, data)
    put_remote(remote_dir, LATIN1_NAME, b"latin-1 name")
    put_remote(remote_dir, os.fsdecode(b"notes_\xe9.txt"), b"not ours")
    setup(job, sshd, system_user, remote_dir)

    result = job.run()
    assert job.landed() == good
    assert result.summary["files"] == 3
    assert result.summary["failed"] == 1
    assert "conversions_caf\\xe9.csv" in result.summary["message"]
    assert "UTF-8" in result.summary["message"]
    assert "Traceback" not in result.stderr


def test_a_new_version_of_a_landed_file_lands_beside_it(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"first\n", mtime=1_700_000_000)
    setup(job, sshd, system_user, remote_dir)
    assert job.run().code == 0

    put_remote(remote_dir, "a.csv", b"second version\n", mtime=1_700_000_100)
    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 1
    assert job.landed() == {"a.csv": b"first\n", "a-2.csv": b"second version\n"}
    receipt = json.loads((job.home / "receipt_a-2.csv.txt").read_text())
    assert receipt["name"] == "a-2.csv"
    assert receipt["source"].endswith(f"{remote_dir}/a.csv")
    assert job.run().summary["files"] == 0


def test_recovered_file_counts_its_bytes(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha")
    setup(job, sshd, system_user, remote_dir)
    assert job.run().code == 0
    (job.home / ".connectors" / "ledger.jsonl").unlink()

    again = job.run()
    assert again.summary["files"] == 1
    assert again.summary["bytes"] == 5, "files and bytes agree"


def test_one_file_that_cannot_land_does_not_hold_back_the_others(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """A name too long to land with its receipt, and a landing spot taken by a
    folder, in one batch with good files."""
    long_name = "x" * 240 + ".csv"
    put_remote(remote_dir, long_name, b"long")
    good = {f"g{i}.csv": f"{i}".encode() for i in range(5)}
    for name, data in good.items():
        put_remote(remote_dir, name, data)
    setup(job, sshd, system_user, remote_dir)
    (job.home / "g0.csv").mkdir(parents=True)

    result = job.run()
    landed = job.landed()
    assert landed == {**{k: v for k, v in good.items() if k != "g0.csv"}, "g0-2.csv": b"0"}
    assert result.summary["files"] == 5
    assert result.summary["failed"] == 1
    assert "too long" in result.summary["message"]
    assert job.temporaries() == []
    assert len(job.receipts()) == 5


def test_push_retries_after_the_sftp_subsystem_dies(
    job: Job, sshd_subsystem: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """The partner's sftp-server process ends while SSH stays up."""
    import signal
    import time

    from tests.integration.transfer.transfer_servers import descendants

    outbox = setup_push(job, sshd_subsystem.port, sshd_subsystem.host_key_line, system_user,
                        remote_dir)
    data = os.urandom(96 * 1024 * 1024)
    (outbox / "r.csv").write_bytes(data)

    process = job.start("--retries", "2")
    killed = False
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not killed:
        temp = remote_dir / ".r.csv.part"
        if temp.exists() and temp.stat().st_size > 0:
            for pid in descendants(sshd_subsystem.process.pid):
                with contextlib.suppress(OSError):
                    if Path(f"/proc/{pid}/exe").resolve().name == "sftp-server":
                        os.kill(pid, signal.SIGKILL)
                        killed = True
        time.sleep(0.002)
    result = job.finish(process)
    assert killed, "the upload never started"
    assert result.code == 0, result.summary["message"]
    assert "retrying" in result.stderr
    assert remote_files(remote_dir) == {"r.csv": data}, "no temporary file left behind"


def test_push_cut_by_the_network_completes_without_leftovers(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    proxy = CuttingProxy(sshd.port, limit=40_000)
    try:
        outbox = setup_push(job, proxy.port, sshd.host_key_line, system_user, remote_dir)
        data = os.urandom(32 * 1024 * 1024)
        (outbox / "r.csv").write_bytes(data)
        result = job.run("--retries", "2")
    finally:
        proxy.close()
    assert proxy.cuts == 1
    assert result.code == 0, result.summary["message"]
    assert "retrying" in result.stderr
    assert remote_files(remote_dir) == {"r.csv": data}


def test_the_job_ends_its_ssh_session_with_a_disconnect(
    job: Job, sshd_subsystem: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    put_remote(remote_dir, "a.csv", b"alpha")
    port = sshd_subsystem.port
    job.configure(
        spec(port, remote_dir, sshd_subsystem.host_key_line),
        [f"[127.0.0.1]:{port} {sshd_subsystem.host_key_line}"],
    )
    job.credential(system_user.name, password=system_user.password)
    log = Path(sshd_subsystem.client_key).parent / "sshd.log"
    before = log.read_text() if log.exists() else ""

    assert job.run().code == 0
    import time

    time.sleep(0.5)
    new = log.read_text()[len(before) :]
    assert "Received disconnect from 127.0.0.1" in new, new


def remote_files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def test_results_go_back_to_the_origin_when_asked(
    job: Job, sshd: Sshd, system_user: SystemUser, remote_dir: Path
) -> None:
    """remote.resultsTo Origin: each receipt, and each result the processor writes
    later, is uploaded next to the partner's file once; neither is fetched back."""
    put_remote(remote_dir, "a.csv", b"alpha\n")
    setup(job, sshd, system_user, remote_dir, resultsTo="Origin")
    first = job.run()
    assert first.code == 0, first.stderr
    assert first.summary["files"] == 1
    receipt = json.loads(remote_files(remote_dir)["receipt_a.csv.txt"])
    assert receipt["name"] == "a.csv"
    assert "result_a.csv.csv" not in remote_files(remote_dir)

    # What the namespace's processor writes once it has checked the file.
    (job.home / "result_a.csv.csv").write_bytes(b"line,column,error_type,code,message\r\n")
    second = job.run()
    assert second.code == 0, second.stderr
    assert second.summary["files"] == 0, "an answer is never fetched as a file"
    assert remote_files(remote_dir)["result_a.csv.csv"] == (
        b"line,column,error_type,code,message\r\n")
    answered = [e for e in ledger(job) if e["kind"] == "answered"]
    assert sorted(e["name"] for e in answered) == ["receipt_a.csv.txt", "result_a.csv.csv"]

    third = job.run()
    assert third.code == 0, third.stderr
    assert len([e for e in ledger(job) if e["kind"] == "answered"]) == 2
