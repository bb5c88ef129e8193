"""Starting, watching and stopping the dev cluster's processes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def _spawn(name: str, argv: list[str], workdir: Path) -> int:
    log = (workdir / f"{name}.log").open("ab")
    # A session of its own, so `down` can stop the process group and a test
    # run's Ctrl-C does not leave half a control plane behind in odd states.
    process = subprocess.Popen(
        argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    return process.pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours counts as dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return True
    return state != "Z"


def _kill_all(pids: dict[str, int]) -> None:
    # Stop in reverse start order, one at a time: the controller manager, then the
    # API server while etcd still answers (with a node it removes its `kubernetes`
    # endpoint lease on the way out and would wait for a dead etcd), then etcd.
    for pid in reversed(list(pids.values())):
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + 10
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)


def _run(*argv: str, check: bool = True, input: str | None = None,
         timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, check=check, capture_output=True, text=True, input=input,
                          timeout=timeout)


def _have(command: str) -> bool:
    return Path(command).exists() if command.startswith("/") else shutil.which(command) is not None


def _wait(what: str, check: Callable[[], bool], timeout: float, pids: dict[str, int],
          workdir: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, pid in pids.items():
            if not _alive(pid):
                log_tail = (workdir / f"{name}.log").read_text(errors="replace")[-3000:]
                raise RuntimeError(f"{name} exited during start-up; its log ends:\n{log_tail}")
        if check():
            return
        time.sleep(0.25)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s; logs in {workdir}")


def cached_build(script: Path, override: str) -> Path:
    """Runs a build script of hack/ (cached by version: a warm run takes under a
    second); returns the folder its last line names, or $`override` when set."""
    if value := os.environ.get(override):
        return Path(value)
    result = subprocess.run([str(script)], check=True, stdout=subprocess.PIPE, text=True)
    return Path(result.stdout.strip().splitlines()[-1])
