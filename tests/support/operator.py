"""The operator as a real process, started the way its Deployment starts it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path


class OperatorProcess:
    def __init__(self, kubeconfig: str, namespaces: list[str], log_path: Path,
                 extra: list[str] | None = None) -> None:
        self.kubeconfig = kubeconfig
        self.namespaces = namespaces
        self.log_path = log_path
        self.extra = extra or []
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> OperatorProcess:
        argv = [sys.executable, "-m", "connectors.cli", "run", "--standalone",
                "--resync-seconds", "30", *self.extra]
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
