"""Benchmark of the SFTP pull job against OpenSSH's own client.

Pulls 1,000 files of 10 KB and one file of 1 GiB from a local OpenSSH sshd,
once with `connectors transfer` and once with `sftp` (`get -r`), and prints
files per second, MB/s and the ratio. Not a test: run it by hand, as root
(sshd needs it), on an idle machine:

    python bench/transfer.py [--small 1000] [--large-mib 1024] [--rounds 2]

Each line reports the best round of each side and their ratio, the medians,
and the job's own clock (its summary's durationSeconds), which leaves out the
interpreter's start-up and imports (about half a second here).

All data lives under /tmp/cx-bench-*, removed at the end. The job makes every
landed file, its receipt and its ledger record durable before it counts them;
OpenSSH's client does not sync at all, so the comparison is conservative for
the job. Before every run, untimed, `sync` and a few seconds of quiet keep one
run from paying for another's writes (see settle()). Every run writes into a
new folder.

Both sides land on a fresh ext4 filesystem with a journal, made by mkfs.ext4
with its defaults in a sparse image file and loop-mounted (`--volume ext4`,
the default), as a Kubernetes data volume would be formatted. This machine's
root filesystem is ext4 *without* a journal, and there ext4 checks every free
inode it considers for a new file against the inodes deleted in the last one
to six minutes, and skips those (`recently_deleted()` in fs/ext4/ialloc.c,
which runs only without a journal). After any mass deletion on the machine,
such as a test run cleaning up, creating a file there cost up to 1 ms instead
of 0.03 ms, and the ratio swung with it: the job creates two files per landed
file (the file and its receipt), OpenSSH's client one. `--volume here` lands
on /tmp instead, to see that.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from connectors.devcluster.net import free_port, wait_for_port
from connectors.devcluster.pki import ssh_keypair

SMALL_SIZE = 10 * 1000
SETTLE_SECONDS = 5.0


def start_sshd(work: Path) -> tuple[subprocess.Popen[bytes], int, str, Path]:
    host_key = work / "host_ed25519"
    client_key = work / "client_ed25519"
    for key in (host_key, client_key):
        ssh_keypair(key)
    authorized = work / "authorized_keys"
    shutil.copy(f"{client_key}.pub", authorized)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {host_key}\nPidFile {work}/sshd.pid\n"
        f"UsePAM no\nPasswordAuthentication no\nPubkeyAuthentication yes\n"
        f"AuthorizedKeysFile {authorized}\nStrictModes no\nPermitRootLogin prohibit-password\n"
        "Subsystem sftp internal-sftp\nMaxSessions 50\nLogLevel ERROR\n"
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen(["/usr/sbin/sshd", "-D", "-e", "-f", str(config)])
    wait_for_port(port, 30)
    line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
    return process, port, line, client_key


def make_small(folder: Path, count: int) -> None:
    folder.mkdir(parents=True)
    for i in range(count):
        (folder / f"f{i:05d}.csv").write_bytes(os.urandom(SMALL_SIZE))


def make_large(folder: Path, mib: int) -> None:
    folder.mkdir(parents=True)
    block = os.urandom(1 << 20)
    with (folder / "big.bin").open("wb") as handle:
        for _ in range(mib):
            handle.write(block)


def mount_volume(work: Path, size_gib: int) -> Path:
    """A fresh journaled ext4 in a sparse file, loop-mounted under `work`."""
    image = work / "volume.img"
    with image.open("wb") as handle:
        handle.truncate(size_gib << 30)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)
    mountpoint = work / "volume"
    mountpoint.mkdir()
    subprocess.run(["mount", "-o", "loop", str(image), str(mountpoint)], check=True)
    return mountpoint


def settle() -> None:
    """Flushes what was written and lets the disk go quiet. The job syncs what
    it lands and OpenSSH's client does not, so a disk still absorbing earlier
    writes slows only the job: small-file rounds measured right after the
    1 GiB file was written came out at 0.66-0.74x, one after a 64 MiB file at
    1.19x."""
    os.sync()
    time.sleep(SETTLE_SECONDS)


def run_openssh(port: int, key: Path, known_hosts: Path, folder: Path, target: Path) -> float:
    settle()
    target.mkdir(parents=True)
    batch = target.parent / "batch"
    batch.write_text(f"get -r {folder} {target}/\n")
    command = [
        "sftp", "-q", "-b", str(batch), "-P", str(port), "-i", str(key),
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "root@127.0.0.1",
    ]
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_job(
    port: int, host_key: str, key: Path, known_hosts: Path, folder: Path, work: Path,
    landing: Path, files_in_flight: int,
) -> tuple[float, dict[str, object]]:
    settle()
    data_root = landing / f"job-data-{time.monotonic_ns()}"
    credential = work / "credential"
    credential.mkdir(exist_ok=True)
    (credential / "username").write_text("root")
    shutil.copy(key, credential / "ssh-privatekey")
    config = work / "connection.json"
    config.write_text(json.dumps({"name": "bench", "spec": {
        "direction": "Inbound", "dataType": "Conversions", "method": "SFTP",
        "methodology": "Pull", "credentialRef": {"name": "bench"},
        "remote": {"host": "127.0.0.1", "port": port, "folder": str(folder),
                   "hostKeys": [host_key]},
    }}))
    command = [
        sys.executable, "-m", "connectors.cli", "transfer", "--connection", "bench",
        "--config", str(config), "--known-hosts", str(known_hosts),
        "--credential-dir", str(credential), "--data-root", str(data_root),
        "--termination-log", str(work / "no-termination-log"),
        "--files-in-flight", str(files_in_flight),
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0 or os.environ.get("BENCH_VERBOSE"):
        print(done.stderr, file=sys.stderr)
    done.check_returncode()
    return elapsed, json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=2, help="best of N runs each")
    parser.add_argument("--files-in-flight", type=int, default=64)
    parser.add_argument(
        "--volume", choices=("ext4", "here"), default="ext4",
        help="land on a fresh loop-mounted ext4 with a journal, or on /tmp",
    )
    options = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cx-bench-", dir="/tmp"))
    sshd = None
    landing = work
    try:
        if options.volume == "ext4":
            # Every round of both sides keeps its copy, plus room to spare.
            set_mib = options.large_mib + options.small * SMALL_SIZE / 2**20
            needed_mib = 2 * options.rounds * set_mib
            landing = mount_volume(work, int(needed_mib) // 1024 + 2)
        sshd, port, host_key, key = start_sshd(work)
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
        remote = work / "remote"
        results = {}
        for label, folder, files, size in (
            ("small", remote / "small", options.small, options.small * SMALL_SIZE),
            ("large", remote / "large", 1, options.large_mib << 20),
        ):
            # Each set is written just before its rounds, so that the small
            # files are not measured while the disk still takes the large one.
            if label == "small":
                make_small(folder, options.small)
            else:
                make_large(folder, options.large_mib)
            settle()
            ours, theirs, inside = [], [], []
            for _ in range(options.rounds):
                target = landing / f"openssh-{time.monotonic_ns()}"
                theirs.append(run_openssh(port, key, known_hosts, folder, target))
                elapsed, summary = run_job(
                    port, host_key, key, known_hosts, folder, work, landing,
                    options.files_in_flight,
                )
                assert summary["files"] == files, summary
                ours.append(elapsed)
                inside.append(float(str(summary["durationSeconds"])))
            best_ours, best_theirs = min(ours), min(theirs)
            results[label] = {
                "volume": options.volume,
                "files": files,
                "bytes": size,
                "job_seconds": round(best_ours, 3),
                "openssh_seconds": round(best_theirs, 3),
                "job_files_per_s": round(files / best_ours, 1),
                "openssh_files_per_s": round(files / best_theirs, 1),
                "job_MB_per_s": round(size / best_ours / 1e6, 1),
                "openssh_MB_per_s": round(size / best_theirs / 1e6, 1),
                "ratio_job_to_openssh": round(best_theirs / best_ours, 3),
                # Medians show how much the machine varied between rounds.
                "job_median_seconds": round(statistics.median(ours), 3),
                "openssh_median_seconds": round(statistics.median(theirs), 3),
                # The job's own clock (durationSeconds: from reading its
                # config through connecting, listing, fetching and landing),
                # without the Python interpreter's start-up and imports.
                "job_in_process_seconds": round(min(inside), 3),
                "ratio_in_process_to_openssh": round(best_theirs / min(inside), 3),
                "job_rounds_seconds": [round(x, 3) for x in ours],
                "openssh_rounds_seconds": [round(x, 3) for x in theirs],
            }
            print(json.dumps({label: results[label]}), flush=True)
        return 0
    finally:
        if sshd is not None:
            sshd.terminate()
            sshd.wait(20)
        if landing != work:
            subprocess.run(["umount", str(landing)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
