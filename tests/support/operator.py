"""The operator as a real process, started the way its Deployment starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from tests.conftest import Cluster


class OperatorProcess:
    def __init__(self, kubeconfig: str, namespaces: list[str], log_path: Path,
                 extra: list[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        # A relay, as a platform configures one for Outbound Email (example 07);
        # nothing sends through it on a control plane without a node.
        argv = [sys.executable, "-m", "connectors.cli", "run", "--standalone",
                "--resync-seconds", "30", "--smtp-relay", "relay.platform.example:25",
                # No metrics unless a test asks (a later --metrics-port wins).
                "--metrics-port", "0",
                *self.extra]
        for namespace in self.namespaces:
            argv += ["--namespace", namespace]
        env = {**os.environ, "KUBECONFIG": self.kubeconfig}
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(argv, env=env, stdout=log, stderr=subprocess.STDOUT,
                                        stdin=subprocess.DEVNULL)
        return self

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def restart(self) -> None:
        self.stop()
        self.start()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def wait_until_watching(cluster: Cluster, prefix: str, timeout: float = 120) -> None:
    """Returns once the operator reconciles objects in a new namespace named `prefix...`.

    kopf learns about namespaces that match a pattern from a namespace watch. A
    namespace created while that watch starts can be missed until the namespace
    changes (kopf 1.45 drops the events of the watch's own initial listing). So a
    sentinel namespace is created, and touched until the operator reconciles a
    Credential in it: from then on every new namespace is seen.
    """
    name = f"{prefix}ready-{uuid.uuid4().hex[:6]}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("apply", "-n", name, "-f", "-", input=(
        "apiVersion: connectors.dev/v1alpha1\nkind: Credential\n"
        "metadata: {name: sentinel}\nspec: {type: Password}\n"))
    deadline = time.monotonic() + timeout
    touches = 0
    try:
        while time.monotonic() < deadline:
            status = cluster.kubectl("get", "credential", "sentinel", "-n", name, "-o",
                                     "jsonpath={.status.conditions[0].status}").stdout
            if status == "True":
                return
            touches += 1
            cluster.kubectl("label", "namespace", name, f"connectors.dev/touch={touches}",
                            "--overwrite")
            time.sleep(2)
        raise AssertionError(f"the operator did not reconcile in namespace {name} "
                             f"within {timeout}s")
    finally:
        cluster.kubectl("delete", "namespace", name, "--wait=false")
