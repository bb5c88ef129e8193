"""Benchmark: our SFTP and FTP listeners against OpenSSH sshd and vsftpd.

Same run, same machine, loopback, same client for both sides of a pair:
OpenSSH `sftp` for SFTP, `curl` for FTP. Each round uploads then downloads one
file (1 GiB by default, kept in /tmp between runs and never committed).
Prints MB/s (10**6 bytes per second, wall clock of the client process,
connection setup included) and the ratio ours/theirs.

Needs root (sshd, and a throw-away system user for vsftpd) and the Debian
packages openssh-client, openssh-server, vsftpd and curl.

    python bench/listeners.py                 # 1 GiB, 3 rounds, sftp and ftp
    python bench/listeners.py --size-mib 256 --rounds 1 --protocols sftp
    python bench/listeners.py --json /tmp/listeners.json   # also the rows as JSON

The console table shows MB/s of the median round; `--json PATH` writes each
row with the figures of every round (bench/benchrows.py describes the format).

Our upload includes what makes it safe and sshd/vsftpd do not do: a SHA-256
of the data, fsync, rename and a receipt; the numbers include that cost. The
"upload+fsync" row adds to theirs the time `sync FILE` takes right after the
upload, which is the like-for-like comparison when the disk is the limit.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from connectors.api.accounts import Account, AccountTable, hash_password
from connectors.devcluster.net import free_port, wait_for_port
from connectors.devcluster.pki import ssh_keypair

sys.path.insert(0, str(Path(__file__).parent))

# bench/benchrows.py, beside this file
import benchrows

USER = "bench"


def source_file(size_mib: int) -> Path:
    path = Path(f"/tmp/connectors-bench-{size_mib}MiB.bin")
    if not path.exists() or path.stat().st_size != size_mib << 20:
        print(f"writing {path} ...", file=sys.stderr)
        with path.open("wb") as handle:
            for _ in range(size_mib):
                handle.write(os.urandom(1 << 20))
    return path


@contextmanager
def process(command: list[str], log: Path, port: int) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as output:
        proc = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, 60, proc)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def timed(command: list[str], stdin: str | None = None) -> float:
    start = time.monotonic()
    subprocess.run(command, input=stdin, text=True, check=True, stdout=subprocess.DEVNULL,
                   timeout=3600)
    return time.monotonic() - start


@dataclass
class Setup:
    work: Path
    source: Path
    client_key: Path
    host_key: Path
    password: str


def write_accounts(setup: Setup, data: Path) -> Path:
    public = (setup.client_key.with_suffix(".pub")).read_text().strip()
    account = Account(username=USER, connection="bench", direction="Inbound", home="bench",
                      permissions=["upload", "list", "download"],
                      password_hash=hash_password(setup.password), authorized_keys=[public])
    path = setup.work / "accounts.json"
    path.write_text(AccountTable(accounts=[account]).render())
    return path


def sync_time(path: Path) -> float:
    """Seconds to make an uploaded file durable (fsync), as our listeners do
    before they answer; sshd and vsftpd leave it in the page cache."""
    return timed(["sync", str(path)])


def sftp_transfer(setup: Setup, port: int, user: str, put: str, get_from: str,
                  local_out: Path, uploaded: Path | None = None) -> tuple[float, float, float]:
    known = setup.work / f"known_hosts_{port}"
    public = setup.host_key.with_suffix(".pub").read_text().split()
    known.write_text(f"[127.0.0.1]:{port} {public[0]} {public[1]}\n")
    base = ["sftp", "-q", "-b", "-", "-P", str(port), "-i", str(setup.client_key),
            "-o", "IdentitiesOnly=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "StrictHostKeyChecking=yes", f"{user}@127.0.0.1"]
    up = timed(base, f"put {setup.source} {put}\n")
    durable = up + sync_time(uploaded) if uploaded is not None else up
    down = timed(base, f"get {get_from} {local_out}\n")
    local_out.unlink()
    return up, down, durable


def bench_sftp_ours(setup: Setup) -> tuple[float, float, float]:
    data = setup.work / "data-sftp"
    data.mkdir(exist_ok=True)
    accounts = write_accounts(setup, data)
    port = free_port()
    command = [sys.executable, "-m", "connectors.cli", "listen", "sftp", "--address",
               "127.0.0.1", "--port", str(port), "--accounts-file", str(accounts),
               "--data-root", str(data), "--host-key-file", str(setup.host_key),
               "--metrics-port", "0"]
    with process(command, setup.work / "ours-sftp.log", port):
        result = sftp_transfer(setup, port, USER, "up.bin", "up.bin", setup.work / "down.bin")
    shutil.rmtree(data / "bench")
    return result


def bench_sftp_openssh(setup: Setup) -> tuple[float, float, float]:
    port = free_port()
    target = setup.work / "sshd-up.bin"
    config = setup.work / "sshd_config"
    config.write_text("\n".join([
        f"Port {port}", "ListenAddress 127.0.0.1", f"HostKey {setup.host_key}",
        f"PidFile {setup.work}/sshd.pid", f"AuthorizedKeysFile {setup.client_key}.pub",
        "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
        "PermitRootLogin prohibit-password", "StrictModes no",
        "Subsystem sftp internal-sftp", "",
    ]))
    Path("/run/sshd").mkdir(exist_ok=True)
    command = [shutil.which("sshd") or "/usr/sbin/sshd", "-D", "-e", "-f", str(config)]
    with process(command, setup.work / "sshd.log", port):
        result = sftp_transfer(setup, port, "root", str(target), str(target),
                               setup.work / "down.bin", target)
    target.unlink()
    return result


@contextmanager
def system_user(password: str) -> Iterator[tuple[str, Path]]:
    name = f"cxb{secrets.token_hex(3)}"
    home = Path(tempfile.mkdtemp(prefix="cx-bench-home-", dir="/tmp")) / name
    home.parent.chmod(0o755)  # vsftpd changes into the home as the user
    subprocess.run(["useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/sh",
                    name], check=True)
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n", text=True, check=True)
    try:
        yield name, home
    finally:
        subprocess.run(["userdel", "--remove", name], check=False,
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(home.parent, ignore_errors=True)


def curl_transfer(setup: Setup, port: int, user: str, local_out: Path,
                  uploaded: Path | None = None) -> tuple[float, float, float]:
    # A netrc file keeps the password out of the process list.
    netrc = setup.work / f"netrc-{port}"
    netrc.write_text(f"machine 127.0.0.1 login {user} password {setup.password}\n")
    netrc.chmod(0o600)
    base = ["curl", "-sS", "--netrc-file", str(netrc)]
    url = f"ftp://127.0.0.1:{port}/up.bin"
    up = timed([*base, "-T", str(setup.source), url])
    durable = up + sync_time(uploaded) if uploaded is not None else up
    down = timed([*base, "-o", str(local_out), url])
    local_out.unlink()
    return up, down, durable


def bench_ftp_ours(setup: Setup) -> tuple[float, float, float]:
    data = setup.work / "data-ftp"
    data.mkdir(exist_ok=True)
    accounts = write_accounts(setup, data)
    port = free_port()
    pasv = free_port()
    command = [sys.executable, "-m", "connectors.cli", "listen", "ftp", "--address",
               "127.0.0.1", "--port", str(port), "--accounts-file", str(accounts),
               "--data-root", str(data), "--passive-ports", f"{pasv}-{pasv + 5}",
               "--metrics-port", "0"]
    with process(command, setup.work / "ours-ftp.log", port):
        result = curl_transfer(setup, port, USER, setup.work / "down.bin")
    shutil.rmtree(data / "bench")
    return result


def write_vsftpd_config(config: Path, port: int, pasv: int, pasv_ports: int) -> Path:
    """vsftpd on 127.0.0.1:`port` for local system users, plain FTP, writable,
    passive ports `pasv` to `pasv` + `pasv_ports` - 1; bench/transfer.py uses it too."""
    Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
    config.write_text("\n".join([
        "listen=YES", "listen_ipv6=NO", "listen_address=127.0.0.1", f"listen_port={port}",
        "background=NO", "anonymous_enable=NO", "local_enable=YES", "write_enable=YES",
        "local_umask=022", "pasv_enable=YES", f"pasv_min_port={pasv}",
        f"pasv_max_port={pasv + pasv_ports - 1}", "seccomp_sandbox=NO", "isolate=NO",
        "isolate_network=NO", "secure_chroot_dir=/var/run/vsftpd/empty",
        "pam_service_name=vsftpd", "xferlog_enable=NO", "dirmessage_enable=NO", "",
    ]))
    config.chmod(0o600)
    return config


def bench_ftp_vsftpd(setup: Setup) -> tuple[float, float, float]:
    port, pasv = free_port(), free_port()
    config = write_vsftpd_config(setup.work / "vsftpd.conf", port, pasv, 6)
    with system_user(setup.password) as (name, home), process(
        [shutil.which("vsftpd") or "/usr/sbin/vsftpd", str(config)],
        setup.work / "vsftpd.log", port,
    ):
        return curl_transfer(setup, port, name, setup.work / "down.bin", home / "up.bin")


def mb_per_s(size: int, seconds: float) -> float:
    return size / seconds / 1e6


Bench = Callable[[Setup], tuple[float, float, float]]


PROTOCOL_NAMES = {"sftp": ("SFTP", "OpenSSH sshd"), "ftp": ("FTP", "vsftpd")}


def run_pair(name: str, ours: Bench, theirs: Bench, setup: Setup, rounds: int,
             theirs_name: str) -> tuple[list[dict[str, object]], list[benchrows.Row]]:
    """The console rows (MB/s of the median round) and the JSON rows (MB/s of
    every round)."""
    size = setup.source.stat().st_size
    samples: dict[str, list[float]] = {f"{side}-{kind}": [] for side in ("ours", "theirs")
                                       for kind in ("up", "down", "durable")}
    for round_number in range(rounds):
        # Alternate the order so neither side always gets the warmer cache.
        order = [("ours", ours), ("theirs", theirs)]
        if round_number % 2:
            order.reverse()
        for side, bench in order:
            up, down, durable = bench(setup)
            samples[f"{side}-up"].append(up)
            samples[f"{side}-down"].append(down)
            samples[f"{side}-durable"].append(durable)
            print(f"  {name} {side} round {round_number + 1}: up {mb_per_s(size, up):.0f} MB/s,"
                  f" down {mb_per_s(size, down):.0f} MB/s,"
                  f" up until durable {mb_per_s(size, durable):.0f} MB/s", file=sys.stderr)
    rows = []
    json_rows = []
    labels = {"up": "upload", "down": "download", "durable": "upload+fsync"}
    protocol, server = PROTOCOL_NAMES[name]
    for direction, label in labels.items():
        ours_rate = mb_per_s(size, statistics.median(samples[f"ours-{direction}"]))
        theirs_rate = mb_per_s(size, statistics.median(samples[f"theirs-{direction}"]))
        rows.append({"protocol": name, "direction": label,
                     "ours_MBps": round(ours_rate, 1), "theirs": theirs_name,
                     "theirs_MBps": round(theirs_rate, 1),
                     "ratio": round(ours_rate / theirs_rate, 2)})
        json_rows.append(benchrows.row(
            f"{protocol} listener {label} vs {server}, {benchrows.size_label(size)}", "MB/s",
            [mb_per_s(size, x) for x in samples[f"ours-{direction}"]],
            [mb_per_s(size, x) for x in samples[f"theirs-{direction}"]],
            theirs_name=theirs_name))
    return rows, json_rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="median of N rounds")
    parser.add_argument("--protocols", default="sftp,ftp")
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write the rows, every round's figures, to PATH")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: it starts sshd and creates a system user for vsftpd", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="connectors-bench-", dir="/tmp"))
    try:
        setup = Setup(work, source_file(args.size_mib), ssh_keypair(work / "client_key"),
                      ssh_keypair(work / "host_key"), "bench-" + secrets.token_urlsafe(12))
        rows: list[dict[str, object]] = []
        json_rows: list[benchrows.Row] = []
        protocols = args.protocols.split(",")
        pairs = [("sftp", bench_sftp_ours, bench_sftp_openssh, "OpenSSH sshd (internal-sftp)"),
                 ("ftp", bench_ftp_ours, bench_ftp_vsftpd, "vsftpd")]
        for name, ours, theirs, theirs_name in pairs:
            if name in protocols:
                console, measured = run_pair(name, ours, theirs, setup, args.rounds, theirs_name)
                rows += console
                json_rows += measured
        benchrows.write(args.json, "listeners", json_rows, {
            "size_mib": args.size_mib, "rounds": args.rounds, "protocols": protocols,
            "client": {"sftp": "OpenSSH sftp", "ftp": "curl"}})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"{'protocol':8} {'direction':12} {'ours MB/s':>10} {'theirs MB/s':>12} {'ratio':>6}")
    for row in rows:
        print(f"{row['protocol']:8} {row['direction']:12} {row['ours_MBps']:>10} "
              f"{row['theirs_MBps']:>12} {row['ratio']:>6}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
