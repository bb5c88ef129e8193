"""Benchmark of the transfer jobs (pull and push, SFTP and FTP) against OpenSSH and lftp.

Each case moves 1,000 files of 10 KB or one file of 1 GiB between the job and a
local server, once with `connectors transfer` and once with the client a
platform team would otherwise script, and prints files per second, MB/s and
the ratio:

| case            | the job                       | against                                  |
|-----------------|-------------------------------|------------------------------------------|
| sftp-pull-small | Inbound Pull from sshd        | OpenSSH `sftp`, `get -r FOLDER TARGET/`  |
| sftp-pull-large | Inbound Pull from sshd        | OpenSSH `sftp`, `get -r FOLDER TARGET/`  |
| ftp-pull-small  | Inbound Pull from vsftpd      | `lftp -f SCRIPT`, `mirror FOLDER TARGET` |
| sftp-push-small | Outbound Push to sshd         | OpenSSH `sftp`, `put -r SOURCE TARGET`   |
| sftp-push-large | Outbound Push to sshd         | OpenSSH `sftp`, `put -r SOURCE TARGET`   |
| ftp-push-small  | Outbound Push to vsftpd       | `lftp -f SCRIPT`, `mirror -R SOURCE TARGET` |
| ftp-push-large  | Outbound Push to vsftpd       | `lftp -f SCRIPT`, `mirror -R SOURCE TARGET` |

Not a test: run it by hand, as root (sshd, a throw-away system user for
vsftpd, a loop mount), on an idle machine:

    python bench/transfer.py [--small 1000] [--large-mib 1024] [--rounds 3]
    python bench/transfer.py --cases ftp-pull-small,ftp-push-small --json /tmp/t.json

Each case prints one JSON line: the best round of each side and their ratio,
the medians and their ratio, every round, and the job's own clock (its
summary's durationSeconds), which leaves out the interpreter's start-up and
imports (about half a second here). `--json PATH` writes one row per case with
every round's files/s (small) or MB/s (large) of both sides (bench/benchrows.py
describes the format); its ratio is that of the medians.

All data lives under /tmp/cx-bench-*, removed at the end. Before every run,
untimed, `sync` and a few seconds of quiet keep one run from paying for
another's writes (see settle()). Every run writes into a new folder, which is
counted (every file there, or the job's summary) and removed, untimed, after
the run; the next run's settle() absorbs the removal.

Pulls: the job makes every landed file, its receipt and its ledger record
durable before it counts them; OpenSSH's client and lftp do not sync at all,
so the comparison is conservative for the job. The SFTP job keeps up to
--files-in-flight requests going on its one session; the FTP job lists with
NLST and asks SIZE and MDTM of every file (vsftpd offers no MLSD), then
fetches the files one at a time on its one control connection, a data
connection each; lftp's `mirror` lists once (LIST) and also fetches one file
at a time (its default, --parallel=1).

Pushes: the job sends the files waiting in its outbox, which holds hard links
to the same source set the clients send (made untimed before the run), each
under a temporary name renamed into place, records each in its fsync'd ledger
and moves it to sent/; the partner's server writes the files without syncing,
for both sides alike. OpenSSH `sftp put -r` and `lftp mirror -R` write each
file under its own name. The FTP job uploads one file at a time (STOR, SIZE,
RNFR/RNTO), lftp too (STOR). The job needs its remote folder to exist: it is
made, untimed, before the job's run; `sftp put -r` makes its target itself
(within its run); for FTP the target is made for both, owned by the server's
user.

Both sides land on a fresh ext4 filesystem with a journal, made by mkfs.ext4
with its defaults in a sparse image file and loop-mounted (`--volume ext4`,
the default), as a Kubernetes data volume would be formatted: the pulls'
targets, the pushes' sources (the job's data root, with its outbox of hard
links) and the pushes' remote targets. The pulls' remote sets stay on /tmp.
This machine's root filesystem is ext4 *without* a journal, and there ext4
checks every free inode it considers for a new file against the inodes deleted
in the last one to six minutes, and skips those (`recently_deleted()` in
fs/ext4/ialloc.c, which runs only without a journal). After any mass deletion
on the machine, such as a test run cleaning up, creating a file there cost up
to 1 ms instead of 0.03 ms, and the ratio swung with it: the job creates two
files per landed file (the file and its receipt), OpenSSH's client one.
`--volume here` lands on /tmp instead, to see that.
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.devcluster.net import free_port, wait_for_port
from connectors.devcluster.pki import ssh_keypair

sys.path.insert(0, str(Path(__file__).parent))

# bench/benchrows.py and bench/listeners.py, beside this file
import benchrows
import listeners

SMALL_SIZE = 10 * 1000
SETTLE_SECONDS = 5.0
PASSIVE_PORTS = 20


@dataclass(frozen=True)
class Case:
    name: str
    protocol: str
    """sftp or ftp"""
    way: str
    """pull or push"""
    size: str
    """small (--small files of 10 KB) or large (one file of --large-mib MiB)"""

    @property
    def client(self) -> str:
        """How the other side is named, in the console's keys and the rows."""
        return "openssh" if self.protocol == "sftp" else "lftp"

    @property
    def theirs_name(self) -> str:
        return {
            ("sftp", "pull"): "OpenSSH sftp get -r",
            ("sftp", "push"): "OpenSSH sftp put -r",
            ("ftp", "pull"): "lftp mirror",
            ("ftp", "push"): "lftp mirror -R",
        }[self.protocol, self.way]


# In the order they run: the small sets first, so that no small-file round is
# measured while the disk still takes a large file.
CASES = [
    Case("sftp-pull-small", "sftp", "pull", "small"),
    Case("ftp-pull-small", "ftp", "pull", "small"),
    Case("sftp-push-small", "sftp", "push", "small"),
    Case("ftp-push-small", "ftp", "push", "small"),
    Case("sftp-pull-large", "sftp", "pull", "large"),
    Case("sftp-push-large", "sftp", "push", "large"),
    Case("ftp-push-large", "ftp", "push", "large"),
]


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


@dataclass
class Sshd:
    port: int
    host_key: str
    """'ssh-ed25519 AAAA...' of the server"""
    key: Path
    """the client's private key, authorized for root"""
    known_hosts: Path


@dataclass
class Vsftpd:
    port: int
    user: str
    password: str
    uid: int
    gid: int


@contextmanager
def sshd_server(work: Path) -> Iterator[Sshd]:
    process, port, host_key, key = start_sshd(work)
    try:
        known_hosts = work / "known_hosts"
        known_hosts.write_text(f"[127.0.0.1]:{port} {host_key}\n")
        yield Sshd(port, host_key, key, known_hosts)
    finally:
        process.terminate()
        process.wait(20)


@contextmanager
def vsftpd_server(work: Path) -> Iterator[Vsftpd]:
    """vsftpd on loopback with a throw-away system user (vsftpd logs in
    system users; bench/listeners.py makes it the same way)."""
    password = "bench-" + secrets.token_hex(12)
    port, pasv = free_port(), free_port()
    config = listeners.write_vsftpd_config(work / "vsftpd.conf", port, pasv, PASSIVE_PORTS)
    binary = shutil.which("vsftpd") or "/usr/sbin/vsftpd"
    with listeners.system_user(password) as (name, _), listeners.process(
        [binary, str(config)], work / "vsftpd.log", port
    ):
        entry = pwd.getpwnam(name)
        yield Vsftpd(port, name, password, entry.pw_uid, entry.pw_gid)


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


def new_folder(parent: Path, prefix: str) -> Path:
    return parent / f"{prefix}-{time.monotonic_ns()}"


def count_files(folder: Path) -> int:
    return sum(1 for path in folder.rglob("*") if path.is_file())


def sftp_batch(server: Sshd, batch: Path) -> float:
    command = [
        "sftp", "-q", "-b", str(batch), "-P", str(server.port), "-i", str(server.key),
        "-o", f"UserKnownHostsFile={server.known_hosts}", "-o", "StrictHostKeyChecking=yes",
        "-o", "BatchMode=yes", "root@127.0.0.1",
    ]
    started = time.monotonic()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return time.monotonic() - started


def run_openssh(port: int, key: Path, known_hosts: Path, folder: Path, target: Path) -> float:
    """`sftp get -r FOLDER TARGET/`, timed, after settle()."""
    settle()
    target.mkdir(parents=True)
    batch = target.parent / "batch"
    batch.write_text(f"get -r {folder} {target}/\n")
    return sftp_batch(Sshd(port, "", key, known_hosts), batch)


def run_openssh_put(server: Sshd, source: Path, target: Path) -> float:
    """`sftp put -r SOURCE TARGET`, timed, after settle(); sftp makes TARGET."""
    settle()
    batch = target.parent / f"batch-{target.name}"
    batch.write_text(f"put -r {source} {target}\n")
    try:
        return sftp_batch(server, batch)
    finally:
        batch.unlink()


def run_lftp(server: Vsftpd, command: str, script_folder: Path) -> float:
    """One lftp command on a plain FTP session to vsftpd, timed, after
    settle(). The script file keeps the password out of the process list;
    lftp's retries are limited so that a failure ends the run."""
    settle()
    script = script_folder / f"lftp-{time.monotonic_ns()}"
    script.touch(mode=0o600)
    script.write_text(
        "set cmd:fail-exit yes\nset ftp:ssl-allow no\nset net:max-retries 2\n"
        "set net:timeout 30\n"
        f"open -u {server.user},{server.password} -p {server.port} 127.0.0.1\n"
        f"{command}\nquit\n"
    )
    try:
        started = time.monotonic()
        subprocess.run(["lftp", "-f", str(script)], check=True, stdout=subprocess.DEVNULL)
        return time.monotonic() - started
    finally:
        script.unlink()


def run_transfer_job(
    spec: dict[str, Any], credential: dict[str, str | Path], known_hosts: Path | None,
    work: Path, data_root: Path, files_in_flight: int,
) -> tuple[float, dict[str, Any]]:
    """`connectors transfer` for a Connection named bench with `spec`, timed,
    after settle(): its wall clock and its summary."""
    settle()
    folder = work / "credential"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(mode=0o700)
    for key, value in credential.items():
        if isinstance(value, Path):
            shutil.copy(value, folder / key)
        else:
            (folder / key).write_text(value)
    config = work / "connection.json"
    config.write_text(json.dumps({"name": "bench", "spec": spec}))
    if known_hosts is None:
        known_hosts = work / "no-known-hosts"
        known_hosts.touch()
    command = [
        sys.executable, "-m", "connectors.cli", "transfer", "--connection", "bench",
        "--config", str(config), "--known-hosts", str(known_hosts),
        "--credential-dir", str(folder), "--data-root", str(data_root),
        "--termination-log", str(work / "no-termination-log"),
        "--files-in-flight", str(files_in_flight),
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True)
    elapsed = time.monotonic() - started
    if done.returncode != 0 or os.environ.get("BENCH_VERBOSE"):
        print(done.stderr, file=sys.stderr)
    done.check_returncode()
    summary: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return elapsed, summary


def run_job(
    port: int, host_key: str, key: Path, known_hosts: Path, folder: Path, work: Path,
    landing: Path, files_in_flight: int,
) -> tuple[float, dict[str, object]]:
    """The SFTP pull job from `folder` into a new data root under `landing`
    (bench/job_variants.py runs it too)."""
    spec = {
        "direction": "Inbound", "dataType": "Conversions", "method": "SFTP",
        "methodology": "Pull", "credentialRef": {"name": "bench"},
        "remote": {"host": "127.0.0.1", "port": port, "folder": str(folder),
                   "hostKeys": [host_key]},
    }
    return run_transfer_job(spec, {"username": "root", "ssh-privatekey": key}, known_hosts,
                            work, new_folder(landing, "job-data"), files_in_flight)


@dataclass
class Bench:
    """What every case needs: the servers it uses, where runs write, the settings."""

    work: Path
    landing: Path
    options: argparse.Namespace
    sshd: Sshd | None
    vsftpd: Vsftpd | None

    def set_of(self, case: Case) -> tuple[Path, int, int]:
        """The folder of the case's files (written the first time it is asked
        for), how many files, how many bytes. Pulls read theirs from /tmp,
        pushes from the landing volume (the job's outbox holds hard links)."""
        base = self.work / "remote" if case.way == "pull" else self.landing / "source"
        folder = base / case.size
        if case.size == "small":
            files, size = self.options.small, self.options.small * SMALL_SIZE
        else:
            files, size = 1, self.options.large_mib << 20
        if not folder.exists():
            if case.size == "small":
                make_small(folder, files)
            else:
                make_large(folder, self.options.large_mib)
            # Readable by the FTP server's user, down from /tmp.
            for path in folder.iterdir():
                path.chmod(0o644)
            for parent in (folder, *folder.parents):
                if parent == Path("/tmp"):
                    break
                parent.chmod(0o755)
        return folder, files, size

    def theirs(self, case: Case, source: Path) -> tuple[float, Path]:
        """One run of the other side's client: seconds, and the folder it wrote."""
        if case.protocol == "sftp":
            assert self.sshd is not None
            if case.way == "pull":
                target = new_folder(self.landing, "openssh")
                seconds = run_openssh(self.sshd.port, self.sshd.key, self.sshd.known_hosts,
                                      source, target)
                return seconds, target
            target = new_folder(self.landing, "openssh-remote")
            return run_openssh_put(self.sshd, source, target), target
        assert self.vsftpd is not None
        if case.way == "pull":
            target = new_folder(self.landing, "lftp")
            return run_lftp(self.vsftpd, f"mirror {source} {target}", self.work), target
        target = self.ftp_folder("lftp-remote")
        return run_lftp(self.vsftpd, f"mirror -R {source} {target}", self.work), target

    def ftp_folder(self, prefix: str) -> Path:
        """A new folder on the volume that the FTP server's user may write."""
        assert self.vsftpd is not None
        folder = new_folder(self.landing, prefix)
        folder.mkdir()
        os.chown(folder, self.vsftpd.uid, self.vsftpd.gid)
        return folder

    def ours(self, case: Case, source: Path) -> tuple[float, dict[str, Any], list[Path]]:
        """One run of the job: seconds, its summary, the folders it wrote."""
        data_root = new_folder(self.landing, "job-data")
        written = [data_root]
        remote: dict[str, Any] = {"host": "127.0.0.1"}
        credential: dict[str, str | Path]
        if case.protocol == "sftp":
            assert self.sshd is not None
            remote |= {"port": self.sshd.port, "hostKeys": [self.sshd.host_key]}
            credential = {"username": "root", "ssh-privatekey": self.sshd.key}
            known_hosts: Path | None = self.sshd.known_hosts
        else:
            assert self.vsftpd is not None
            remote |= {"port": self.vsftpd.port, "tls": "None"}
            credential = {"username": self.vsftpd.user, "password": self.vsftpd.password}
            known_hosts = None
        spec: dict[str, Any]
        if case.way == "pull":
            remote["folder"] = str(source)
            spec = {"direction": "Inbound", "dataType": "Conversions"}
        else:
            if case.protocol == "sftp":
                target = new_folder(self.landing, "job-remote")
                target.mkdir()
            else:
                target = self.ftp_folder("job-remote")
            written.append(target)
            remote["folder"] = str(target)
            spec = {"direction": "Outbound", "dataType": "Reports"}
            outbox = data_root / "bench" / "outbox"
            outbox.mkdir(parents=True)
            for path in source.iterdir():
                (outbox / path.name).hardlink_to(path)
        spec |= {"method": case.protocol.upper(), "credentialRef": {"name": "bench"},
                 "methodology": case.way.capitalize(), "remote": remote}
        elapsed, summary = run_transfer_job(spec, credential, known_hosts, self.work,
                                            data_root, self.options.files_in_flight)
        return elapsed, summary, written

    def measure(self, case: Case) -> tuple[dict[str, Any], benchrows.Row]:
        """The case's rounds: the console's line and the JSON row."""
        source, files, size = self.set_of(case)
        settle()
        ours: list[float] = []
        theirs: list[float] = []
        inside: list[float] = []
        for _ in range(self.options.rounds):
            seconds, target = self.theirs(case, source)
            landed = count_files(target)
            if landed != files:
                raise RuntimeError(f"{case.theirs_name} wrote {landed} files, not {files}")
            shutil.rmtree(target)
            theirs.append(seconds)
            seconds, summary, written = self.ours(case, source)
            if summary["files"] != files or summary["outcome"] != "Succeeded":
                raise RuntimeError(f"the job moved {summary['files']} files, not {files}: "
                                   f"{summary}")
            if case.way == "push" and (landed := count_files(written[-1])) != files:
                raise RuntimeError(f"the job left {landed} files on the server, not {files}")
            for folder in written:
                shutil.rmtree(folder)
            ours.append(seconds)
            inside.append(float(summary["durationSeconds"]))
        line = console_line(case, files, size, ours, theirs, inside)
        return {"volume": self.options.volume, **line}, json_row(
            case, files, size, ours, theirs, inside)


def console_line(case: Case, files: int, size: int, ours: list[float], theirs: list[float],
                 inside: list[float]) -> dict[str, Any]:
    """The best round of each side, the medians, every round, the job's own clock."""
    client = case.client
    best_ours, best_theirs = min(ours), min(theirs)
    median_ours, median_theirs = statistics.median(ours), statistics.median(theirs)
    return {
        "files": files,
        "bytes": size,
        "job_seconds": round(best_ours, 3),
        f"{client}_seconds": round(best_theirs, 3),
        "job_files_per_s": round(files / best_ours, 1),
        f"{client}_files_per_s": round(files / best_theirs, 1),
        "job_MB_per_s": round(size / best_ours / 1e6, 1),
        f"{client}_MB_per_s": round(size / best_theirs / 1e6, 1),
        f"ratio_job_to_{client}": round(best_theirs / best_ours, 3),
        # Medians show how much the machine varied between rounds.
        "job_median_seconds": round(median_ours, 3),
        f"{client}_median_seconds": round(median_theirs, 3),
        "ratio_of_medians": round(median_theirs / median_ours, 3),
        # The job's own clock (durationSeconds: from reading its config
        # through connecting, listing, transferring and recording), without
        # the Python interpreter's start-up and imports.
        "job_in_process_seconds": round(min(inside), 3),
        f"ratio_in_process_to_{client}": round(best_theirs / min(inside), 3),
        "job_rounds_seconds": [round(x, 3) for x in ours],
        f"{client}_rounds_seconds": [round(x, 3) for x in theirs],
    }


def json_row(case: Case, files: int, size: int, ours: list[float], theirs: list[float],
             inside: list[float]) -> benchrows.Row:
    """files/s for the small set, MB/s for the large file, every round."""
    if case.size == "small":
        label, unit, amount = f"{files:,} x 10 KB", "files/s", float(files)
    else:
        label, unit, amount = benchrows.size_label(size), "MB/s", size / 1e6
    return benchrows.row(
        f"{case.protocol.upper()} {case.way} job vs {case.theirs_name}, {label}", unit,
        [amount / x for x in ours], [amount / x for x in theirs],
        theirs_name=case.theirs_name, case=case.name,
        seconds={"ours": [round(x, 3) for x in ours], "theirs": [round(x, 3) for x in theirs],
                 "job_clock": [round(x, 3) for x in inside]})


def parse_cases(text: str) -> list[Case]:
    wanted = [name.strip() for name in text.split(",") if name.strip()]
    known = {case.name for case in CASES}
    unknown = [name for name in wanted if name not in known]
    if unknown or not wanted:
        raise argparse.ArgumentTypeError(
            f"unknown cases {', '.join(unknown) or '(none given)'}; choose among "
            + ", ".join(sorted(known)))
    return [case for case in CASES if case.name in wanted]


def volume_gib(cases: list[Case], options: argparse.Namespace) -> int:
    """The push sets, one run's copy of the largest set, and room to spare."""
    size = {"small": options.small * SMALL_SIZE, "large": options.large_mib << 20}
    sources = sum(size[s] for s in {case.size for case in cases if case.way == "push"})
    # The job lands a receipt beside every file; a small file takes a block or more.
    one_run = max(2 * size[case.size] if case.size == "large" else 4 * options.small * 16384
                  for case in cases)
    return int((sources + one_run) / 2**30) + 2


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=1000)
    parser.add_argument("--large-mib", type=int, default=1024)
    parser.add_argument("--rounds", type=int, default=3, help="N runs of each side per case")
    parser.add_argument("--files-in-flight", type=int, default=64)
    parser.add_argument(
        "--volume", choices=("ext4", "here"), default="ext4",
        help="land on a fresh loop-mounted ext4 with a journal, or on /tmp",
    )
    parser.add_argument(
        "--cases", type=parse_cases, default=CASES, metavar="NAME,NAME",
        help="a subset of: " + ", ".join(case.name for case in CASES) + " (default: all)",
    )
    parser.add_argument("--json", type=Path, default=None, metavar="PATH",
                        help="also write one row per case, every round's figures, to PATH")
    options = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root: it starts sshd, makes a system user for vsftpd and mounts a "
              "volume", file=sys.stderr)
        return 2
    cases: list[Case] = options.cases
    work = Path(tempfile.mkdtemp(prefix="cx-bench-", dir="/tmp"))
    work.chmod(0o755)  # the FTP server's user reads the pulls' sets below it
    landing = work
    rows: list[benchrows.Row] = []
    try:
        with ExitStack() as stack:
            if options.volume == "ext4":
                landing = mount_volume(work, volume_gib(cases, options))
            sshd = vsftpd = None
            if any(case.protocol == "sftp" for case in cases):
                sshd = stack.enter_context(sshd_server(work))
            if any(case.protocol == "ftp" for case in cases):
                vsftpd = stack.enter_context(vsftpd_server(work))
            bench = Bench(work, landing, options, sshd, vsftpd)
            settings = {
                "small_files": options.small, "small_file_bytes": SMALL_SIZE,
                "large_mib": options.large_mib, "rounds": options.rounds,
                "volume": options.volume, "files_in_flight": options.files_in_flight,
                "cases": [case.name for case in cases],
            }
            for case in cases:
                line, row = bench.measure(case)
                print(json.dumps({case.name: line}), flush=True)
                rows.append(row)
                # After every case: a case that fails later leaves the others' rows.
                benchrows.write(options.json, "transfer", rows, settings)
        return 0
    finally:
        if landing != work:
            subprocess.run(["umount", str(landing)], check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
