"""`connectors transfer --log-format json`: every line of the job's log is a JSON
object, and the run ends in one audit event with its outcome and counts; a
failed login says why without the password."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.integration.transfer.test_transfer_sftp import put_remote, setup
from tests.integration.transfer.transfer_servers import Job, Sshd, SystemUser
from tests.support import secrets as secret_scan

pytestmark = pytest.mark.timeout(300)


def records(stderr: str) -> list[dict[str, Any]]:
    lines = [line for line in stderr.splitlines() if line.strip()]
    parsed = [json.loads(line) for line in lines]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in parsed), parsed
    return parsed


def test_a_run_is_one_audit_event(job: Job, sshd: Sshd, system_user: SystemUser,
                                  remote_dir: Path) -> None:
    put_remote(remote_dir, "a.csv", b"alpha\n")
    setup(job, sshd, system_user, remote_dir)
    job.env["CONNECTORS_NAMESPACE"] = "partners"
    result = job.run("--log-format", "json")
    assert result.code == 0, result.stderr
    [event] = [r["audit"] for r in records(result.stderr) if r["logger"] == "connectors.audit"]
    assert {k: event[k] for k in ("event", "result", "namespace", "connection", "files",
                                  "bytes", "failed")} == {
        "event": "transfer", "result": "Succeeded", "namespace": "partners",
        "connection": job.name, "files": 1, "bytes": 6, "failed": 0}
    assert "reason" not in event

    job.credential(system_user.name, password="not-the-password-7")
    secret_scan.remember("not-the-password-7")
    failed = job.run("--log-format", "json", "--retries", "0")
    assert failed.code == 1
    logged = records(failed.stderr)
    [event] = [r for r in logged if r["logger"] == "connectors.audit"]
    assert event["level"] == "WARNING"
    assert event["audit"]["result"] == "Failed"
    assert event["audit"]["reason"] == failed.summary["message"]
    for secret in (system_user.password, "not-the-password-7"):
        secret_scan.assert_absent(secret, failed.stderr, "the transfer job's JSON log")
