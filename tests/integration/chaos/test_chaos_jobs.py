"""Chaos: a pull job (`connectors transfer`) fetches files from a partner's
OpenSSH sshd and is SIGKILLed at random moments, then run again, as a CronJob
pod is after a node dies. The partner drops its files in waves meanwhile.

At the end every remote file has landed exactly once under its own name, whole,
with a receipt that describes it: no `stem-2.ext` copy of a file that did not
change, nothing partial visible (also watched while the job runs), no receipt
without its file.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.integration.chaos.chaos_support import (
    PartialWatcher,
    Sent,
    SlowProxy,
    chaos_seed,
    inspect_home,
    problem_names,
    random_content,
    sha256,
    tail,
)
from tests.integration.transfer.transfer_servers import Job, Sshd, SystemUser, put_remote

pytestmark = pytest.mark.timeout(600)

REMOTE_FILES = 220
WAVES = 6
LARGEST = 200 * 1024
KILL_AFTER = (0.3, 2.0)  # seconds after a run starts, uniformly
AT_LANDING = 0.5  # the share of runs killed just as their files become visible
BYTES_PER_SECOND = 500_000  # from the partner, per connection (SlowProxy)
CHAOS_SECONDS = 40.0  # then the runs go to their end, until nothing is left to fetch
MAX_RUNS = 300


def pull_spec(port: int, host_key: str, folder: Path) -> dict[str, Any]:
    return {
        "direction": "Inbound",
        "dataType": "Conversions",
        "method": "SFTP",
        "methodology": "Pull",
        "credentialRef": {"name": "partner-a"},
        "filenamePattern": "*.csv",
        "remote": {"host": "127.0.0.1", "port": port, "folder": str(folder),
                   "hostKeys": [host_key]},
    }


def visible_files(home: Path) -> int:
    try:
        return sum(not name.startswith((".", "receipt_")) for name in os.listdir(home))
    except FileNotFoundError:
        return 0


def kill_at_random(process: subprocess.Popen[str], home: Path, rng: random.Random) -> str | None:
    """SIGKILLs the run at a random moment; returns when ('delay' or
    'landing'), or None if the run ended first. A landing of a batch (its
    renames, the ledger, the receipts) lasts milliseconds: a uniform delay
    seldom finds it, so part of the kills wait for the first file of a batch
    to become visible, then strike within a few milliseconds."""
    if rng.random() >= AT_LANDING:
        try:
            process.wait(timeout=rng.uniform(*KILL_AFTER))
        except subprocess.TimeoutExpired:
            process.kill()
            return "delay"
        return None
    jitter = rng.uniform(0.0, 0.01)
    baseline = visible_files(home)
    deadline = time.monotonic() + 2 * KILL_AFTER[1]
    while process.poll() is None:
        if visible_files(home) != baseline or time.monotonic() > deadline:
            time.sleep(jitter)
            process.kill()
            return "landing" if time.monotonic() <= deadline else "delay"
        time.sleep(0.001)
    return None


@dataclass
class Pull:
    job: Job
    remote_dir: Path


@pytest.fixture
def pull(tmp_path: Path, sshd: Sshd, system_user: SystemUser,
         remote_dir: Path) -> Iterator[Pull]:
    """The job of a Connection pulling from `remote_dir` through a SlowProxy.
    (A fixture: the test's failure report then shows no password.)"""
    job = Job(tmp_path / "job")
    proxy = SlowProxy(sshd.port, BYTES_PER_SECOND)
    try:
        job.configure(pull_spec(proxy.port, sshd.host_key_line, remote_dir),
                      [f"[127.0.0.1]:{proxy.port} {sshd.host_key_line}"])
        job.credential(system_user.name, password=system_user.password)
        yield Pull(job, remote_dir)
    finally:
        proxy.close()


def ledger_names(job: Job) -> set[str]:
    path = job.home / ".connectors" / "ledger.jsonl"
    if not path.exists():
        return set()
    names = set()
    for line in path.read_text().splitlines():
        with contextlib.suppress(ValueError):
            names.add(json.loads(line)["name"])
    return names


def test_pull_job_survives_sigkill(pull: Pull, tmp_path: Path,
                                   capsys: pytest.CaptureFixture[str]) -> None:
    seed = chaos_seed()
    kill_delays = random.Random(f"{seed}:job:kills")
    job, remote_dir = pull.job, pull.remote_dir

    remote: dict[str, Sent] = {}
    lock = threading.Lock()
    waves = [list(range(start, REMOTE_FILES, WAVES)) for start in range(WAVES)]

    def drop_wave() -> None:
        for index in waves.pop(0):
            data = random_content(random.Random(f"{seed}:job:{index}"), LARGEST)
            name = f"conversions_{index:04d}.csv"
            with lock:
                remote[name] = Sent(name, sha256(data), len(data), acknowledged=True)
            put_remote(remote_dir, name, data, mtime=1_700_000_000 + index)

    def expected() -> dict[str, Sent]:
        with lock:
            return dict(remote)

    stop = threading.Event()
    watcher = PartialWatcher([job.home], expected, stop)
    watcher.start()
    kills = runs = 0
    kinds: dict[str, int] = {"delay": 0, "landing": 0}
    started = time.monotonic()
    chaos_until = started + CHAOS_SECONDS
    finished = False
    log = tmp_path / "job-runs.log"  # every run's stderr, after a marker line

    def keep_log(outcome: str, stderr: str) -> None:
        with log.open("a") as output:
            output.write(f"=== chaos: run {runs} {outcome}\n{stderr}")
    try:
        while runs < MAX_RUNS:
            if waves:
                drop_wave()
            runs += 1
            process = job.start()
            if time.monotonic() < chaos_until:
                kind = kill_at_random(process, job.home, kill_delays)
                if kind is not None:
                    kills += 1
                    kinds[kind] += 1
                    keep_log(f"SIGKILL {kills} ({kind})", process.communicate(timeout=60)[1])
                    continue
            stdout, stderr = process.communicate(timeout=300)
            keep_log(f"exit {process.returncode}", stderr)
            result = job.result(process.returncode, stdout, stderr)
            assert result.code == 0, (
                f"run {runs} after {kills} kills failed (replay with CHAOS_SEED={seed}): "
                f"{result.summary}\n{tail(stderr)}")
            if not waves and result.summary["files"] == 0:
                finished = True
                break
    finally:
        stop.set()
        watcher.join(timeout=60)
    watcher.scan()
    elapsed = time.monotonic() - started

    inspection = inspect_home(job.home, expected())
    partial = len(inspection.partial) + len(watcher.seen)
    with capsys.disabled():
        print(f"\nchaos jobs: seed={seed} remote={len(remote)} landed={len(inspection.landed)} "
              f"duplicates={len(inspection.duplicates)} partial={partial} kills={kills} "
              f"({kinds['landing']} as files became visible; {runs} runs; {elapsed:.0f}s)")

    replay = f"replay with CHAOS_SEED={seed}"
    assert finished, f"files were still left to fetch after {runs} runs ({replay})"
    assert kills >= 5, f"only {kills} runs were killed: the chaos tested little ({replay})"
    assert not watcher.seen, f"partial files were visible during the runs: {watcher.seen}"
    names = problem_names(inspection)
    recorded = sorted(names & ledger_names(job))
    runs_and_landings = [line for line in log.read_text().splitlines()
                         if line.startswith("=== chaos") or " landed " in line
                         or " recorded " in line or any(name in line for name in names)]
    summary = (f"lost={inspection.lost} partial={inspection.partial} "
               f"duplicates={inspection.duplicates} receipts={inspection.receipt_problems}\n"
               f"in the job's ledger: {recorded}\n"
               f"--- {log}, the runs and what they landed:\n" + "\n".join(runs_and_landings))
    assert not inspection.lost, f"remote files not landed ({replay}): {summary}"
    assert not inspection.partial, f"partial files visible ({replay}): {summary}"
    assert not inspection.duplicates, f"files landed twice ({replay}): {summary}"
    assert not inspection.receipt_problems, f"receipts wrong ({replay}): {summary}"
