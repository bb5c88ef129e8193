"""Loopback ports for local servers: a free one, and waiting until one answers.
The dev cluster, the tests and the benchmarks start their servers with these."""

from __future__ import annotations

import socket
import subprocess
import time


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for_port(port: int, timeout: float = 60.0,
                  process: subprocess.Popen[bytes] | None = None) -> None:
    """Returns once 127.0.0.1:`port` accepts a connection. RuntimeError when
    `process` (the server) exits first, TimeoutError after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode} before "
                               f"port {port} answered")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing answered on port {port} within {timeout:.0f} s")
