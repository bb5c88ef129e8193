"""One measurement: the SFTP listener's resident memory with N idle logged-in sessions.

    python bench/listener_memory.py --sessions 0 20 50

Starts `connectors listen sftp` on loopback (its own account table, data folder
and host key in a temporary folder), then for each N opens paramiko sessions
up to N, each logged in with a password and holding an open SFTP channel (a
complete login: the listener counts it as logged in), waits for the listener
to settle, and reads VmRSS from /proc/<pid>/status. The listener runs with
MALLOC_ARENA_MAX=2, as the operator runs it in its pods (`--malloc-arena-max
""`: glibc's default, up to 8 arenas per core). Prints one line per N and
the cost per session between the first and the last N. Not a loop of runs: the
figure in charts/connectors/values.yaml comes from one run of this. With
--upload-mib M, every session then uploads M MiB at once (zeros, to the
listener's data folder) and the listener's peak RSS is printed.
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paramiko

from connectors.api.accounts import Account, AccountTable, hash_password, permissions_for
from connectors.devcluster.net import free_port, wait_for_port
from connectors.devcluster.pki import ssh_keypair

PASSWORD = "memory-measurement-1"


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def hwm_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM")


class Zeros(io.RawIOBase):
    """`size` bytes of zeros, read in the client's chunks."""

    def __init__(self, size: int) -> None:
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = min(len(buffer), self.left)
        buffer[:count] = bytes(count)
        self.left -= count
        return count


def upload_all(clients: list[paramiko.SSHClient], mib: int) -> None:
    def upload(index: int, client: paramiko.SSHClient) -> None:
        sftp = client.open_sftp()
        sftp.putfo(io.BufferedReader(Zeros(mib * 1024 * 1024)), f"upload-{index}.bin",
                   confirm=False)
        sftp.close()

    threads = [threading.Thread(target=upload, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def settled_rss(pid: int, seconds: float = 3.0) -> int:
    time.sleep(seconds)
    return rss_kib(pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[0, 20, 50])
    parser.add_argument("--upload-mib", type=int, default=0,
                        help="then every session uploads this many MiB at once; the "
                             "listener's peak RSS (VmHWM) is printed")
    parser.add_argument("--malloc-arena-max", default="2",
                        help='MALLOC_ARENA_MAX of the listener ("": glibc\'s default)')
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    if args.malloc_arena_max:
        env["MALLOC_ARENA_MAX"] = args.malloc_arena_max
    counts = sorted(args.sessions)
    root = Path(tempfile.mkdtemp(prefix="listener-memory-"))
    (root / "data").mkdir()
    (root / "accounts").mkdir()
    ssh_keypair(root / "host_key", comment="bench")
    (root / "accounts" / "accounts.json").write_text(AccountTable(accounts=[
        Account(username="acme", connection="acme-conversions", direction="Inbound",
                home="acme-conversions", permissions=permissions_for("Inbound"),
                password_hash=hash_password(PASSWORD))]).render())
    port = free_port()
    listener = subprocess.Popen(
        [sys.executable, "-m", "connectors.cli", "listen", "sftp", "--address", "127.0.0.1",
         "--port", str(port), "--accounts-file", str(root / "accounts" / "accounts.json"),
         "--data-root", str(root / "data"), "--host-key-file", str(root / "host_key"),
         "--metrics-port", "0", "--max-sessions-per-account", "0",
         "--max-connections", str(max(counts) + 10), "--max-unauthenticated", "10"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    clients: list[paramiko.SSHClient] = []
    results: list[tuple[int, int]] = []
    try:
        wait_for_port(port, 60, listener)
        for count in counts:
            while len(clients) < count:
                client = paramiko.SSHClient()
                client.set_missing_host_key_policy(paramiko.AutoAddPolicy())  # noqa: S507
                client.connect("127.0.0.1", port=port, username="acme", password=PASSWORD,
                               look_for_keys=False, allow_agent=False, timeout=30)
                client.open_sftp().listdir(".")
                clients.append(client)
            rss = settled_rss(listener.pid)
            results.append((count, rss))
            print(f"{count:4d} idle SFTP sessions: listener RSS {rss / 1024:7.1f} MiB",
                  flush=True)
        if args.upload_mib:
            upload_all(clients, args.upload_mib)
            peak = hwm_kib(listener.pid)
            print(f"{len(clients):4d} SFTP sessions uploading {args.upload_mib} MiB each at "
                  f"once: listener peak RSS {peak / 1024:7.1f} MiB, "
                  f"{(peak - results[0][1]) / max(1, len(clients)) / 1024:.1f} MiB per session "
                  "over the listener started", flush=True)
    finally:
        for client in clients:
            client.close()
        listener.terminate()
        listener.wait(timeout=30)
    # The first sessions also bring the malloc arenas: the cost of one more
    # session is read between consecutive points.
    for (first, low), (last, high) in itertools.pairwise(results):
        print(f"from {first} to {last} sessions: {(high - low) / (last - first):.0f} KiB "
              "per session")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
