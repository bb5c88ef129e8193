"""End to end: a partner uploads with OpenSSH sftp to the listener the operator declared.

The listener runs from exactly the command, arguments, environment and mounted
files of the Deployment the operator wrote (tests/support/podrunner.py), with the
token of the ServiceAccount that Deployment names. The only change is the one a
pod's own network namespace would make unneeded: it listens on a free loopback port.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import Cluster
from tests.e2e.conftest import example
from tests.integration import operator_scenarios as scenarios
from tests.support.podrunner import materialize, pod_template
from tests.support.secrets import assert_absent
from tests.support.wait import eventually


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_partner_upload_lands_with_receipt_and_status(
    crds: Cluster, e2e_namespace: str, tmp_path: Path
) -> None:
    for binary in ("sftp", "sshpass"):
        if shutil.which(binary) is None:
            pytest.skip(f"{binary} is not installed (hack/install-deps.sh installs it)")
    ns = e2e_namespace
    scenarios.apply(crds, ns, example("01-inbound-push-sftp-conversions.yaml"))
    scenarios.wait_condition(crds, ns, "acme-conversions", "True")

    data = tmp_path / "data"
    pod = materialize(crds, ns, pod_template(crds, "Deployment", ns, "connectors-sftp"),
                      tmp_path / "pod", data)
    port = free_port()
    pod.start(CONNECTORS_LISTEN_ADDRESS="127.0.0.1", CONNECTORS_LISTEN_PORT=str(port))
    try:
        eventually(lambda: _listening(port), 60, "the listener to accept connections")
        # The partner pins the host key the operator generated, and logs in with the
        # password from the Secret.
        public = scenarios.secret_value(crds, ns, "connectors-sftp-hostkey",
                                        "ssh_host_ed25519_key.pub")
        known_hosts = tmp_path / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {' '.join(public.split()[:2])}\n")
        password = scenarios.secret_value(crds, ns, "acme-sftp-credential", "password")
        upload = tmp_path / "conversions_2026-11-27.csv"
        upload.write_text("click_id,value\nabc,1.50\n")
        batch = tmp_path / "batch"
        batch.write_text(f"put {upload}\nls\n")
        result = subprocess.run(
            # ssh takes the first value of an option, and -b turns BatchMode on: so
            # BatchMode=no (a password prompt, for sshpass to answer) must come first.
            ["sshpass", "-e", "sftp", "-o", "BatchMode=no", "-b", str(batch), "-P", str(port),
             "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
             "-o", "PubkeyAuthentication=no", "acme@127.0.0.1"],
            # sshpass reads the password from the environment: never on a command line.
            env={**os.environ, "SSHPASS": password}, capture_output=True, text=True,
            timeout=120, check=False,
        )
        assert result.returncode == 0, result.stderr
        assert_absent(password, result.stdout + result.stderr, "the sftp client output")

        home = pod.local("/data") / "acme-conversions"
        landed = home / "conversions_2026-11-27.csv"
        eventually(landed.exists, 30, "the upload to land")
        assert landed.read_text() == upload.read_text()
        receipt = home / "receipt_conversions_2026-11-27.csv.txt"
        eventually(receipt.exists, 30, "the receipt")
        assert "sha256" in receipt.read_text()

        def reported() -> dict[str, object] | None:
            connection = scenarios.get(crds, ns, "connections", "acme-conversions") or {}
            last = (connection.get("status") or {}).get("lastTransfer")
            return last if last and last.get("files") == 1 else None
        last = eventually(reported, 60, "status.lastTransfer from the listener")
        assert last["bytes"] == len(upload.read_bytes())
        assert last["outcome"] == "Succeeded"
        assert_absent(password, pod.log(), "the listener log")
    finally:
        pod.stop()


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        time.sleep(0.2)
        return False
