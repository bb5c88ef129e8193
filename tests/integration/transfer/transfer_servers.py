"""Real servers on loopback for the transfer job tests: OpenSSH sshd, vsftpd and
dovecot from Debian packages, each with its own configuration in a temporary
folder, and a local system user to log in as. A server whose binary is
missing skips its tests with the reason."""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectors.devcluster.net import free_port, wait_for_port
from connectors.devcluster.pki import self_signed, ssh_keypair
from tests.support import secrets as secret_scan

STARTUP_TIMEOUT = 60.0


def need(binary: str) -> str:
    path = shutil.which(binary) or shutil.which(binary, path="/usr/sbin:/sbin")
    if path is None:
        pytest.skip(f"{binary} is not installed (Debian package needed)")
    return path


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)


@dataclass
class SystemUser:
    name: str
    password: str = field(repr=False)
    home: Path


@pytest.fixture(scope="session")
def system_user() -> Iterator[SystemUser]:
    """A local account for sshd and vsftpd (both authenticate system users)."""
    if os.geteuid() != 0:
        pytest.skip("creating a test system user needs root")
    need("useradd")
    name = f"cxt{secrets.token_hex(3)}"
    password = "pw-" + secrets.token_urlsafe(12)
    secret_scan.remember(password)
    base = Path(tempfile.mkdtemp(prefix="cx-home-", dir="/tmp"))
    base.chmod(0o755)
    home = base / name
    subprocess.run(
        ["useradd", "--home-dir", str(home), "--create-home", "--shell", "/bin/sh", name],
        check=True,
    )
    subprocess.run(["chpasswd"], input=f"{name}:{password}\n".encode(), check=True)
    try:
        yield SystemUser(name, password, home)
    finally:
        subprocess.run(["userdel", "--force", name], check=False)
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture
def remote_dir(system_user: SystemUser) -> Iterator[Path]:
    """An empty folder on the 'partner' side owned by the test user."""
    folder = system_user.home / f"out-{secrets.token_hex(4)}"
    folder.mkdir()
    entry = pwd.getpwnam(system_user.name)
    os.chown(folder, entry.pw_uid, entry.pw_gid)
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def put_remote(folder: Path, name: str, data: bytes, mtime: int = 1_700_000_000) -> Path:
    path = folder / name
    path.write_bytes(data)
    path.chmod(0o644)
    os.utime(path, (mtime, mtime))
    return path


# ---- sshd -----------------------------------------------------------------------------------


@dataclass
class Sshd:
    port: int
    host_key_line: str
    """'ssh-ed25519 AAAA...' of the server."""
    process: subprocess.Popen[bytes]
    client_key: Path
    """A private key the test user authorized."""


@pytest.fixture(scope="session")
def sshd(system_user: SystemUser, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sshd]:
    binary = need("sshd")
    need("ssh-keygen")
    work = tmp_path_factory.mktemp("sshd")
    host_key = work / "host_ed25519"
    ssh_keypair(host_key)
    client_key = ssh_keypair(work / "client_ed25519")
    keys_dir = Path(tempfile.mkdtemp(prefix="cx-keys-", dir="/tmp"))
    keys_dir.chmod(0o755)
    authorized = keys_dir / "authorized_keys"
    authorized.write_text(Path(f"{client_key}.pub").read_text())
    authorized.chmod(0o644)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {work}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile {authorized}
StrictModes no
AllowUsers {system_user.name}
Subsystem sftp internal-sftp
ForceCommand internal-sftp
MaxStartups 50
MaxSessions 50
LogLevel ERROR
"""
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    process = subprocess.Popen([binary, "-D", "-e", "-f", str(config)])
    try:
        wait_for_port(port, STARTUP_TIMEOUT, process)
        line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        yield Sshd(port, line, process, client_key)
    finally:
        stop(process)
        shutil.rmtree(keys_dir, ignore_errors=True)


# ---- running the job ------------------------------------------------------------------------


@dataclass
class JobResult:
    code: int
    summary: dict[str, Any]
    stdout: str
    stderr: str


@dataclass
class Job:
    """The transfer job of one Connection, run as the CronJob pod would: the
    `connectors transfer` command with its mounted files in a temp folder."""

    root: Path
    name: str = "partner-a"
    env: dict[str, str] = field(default_factory=dict)

    @property
    def data_root(self) -> Path:
        return self.root / "data"

    @property
    def home(self) -> Path:
        return self.data_root / self.name

    @property
    def credential_dir(self) -> Path:
        return self.root / "credential"

    def configure(self, spec: dict[str, Any], known_hosts: list[str] | None = None) -> None:
        (self.root / "connection").mkdir(parents=True, exist_ok=True)
        (self.root / "connection.json").write_text(
            json.dumps({"name": self.name, "namespace": "test", "spec": spec})
        )
        (self.root / "known_hosts").write_text("".join(f"{line}\n" for line in known_hosts or []))

    def credential(
        self, username: str, password: str | None = None, key: Path | None = None
    ) -> None:
        shutil.rmtree(self.credential_dir, ignore_errors=True)
        self.credential_dir.mkdir(parents=True)
        (self.credential_dir / "username").write_text(username)
        if password is not None:
            (self.credential_dir / "password").write_text(password)
        if key is not None:
            shutil.copy(key, self.credential_dir / "ssh-privatekey")

    def command(self, *extra: str) -> list[str]:
        return [
            sys.executable,
            "-m",
            "connectors.cli",
            "transfer",
            "--connection",
            self.name,
            "--config",
            str(self.root / "connection.json"),
            "--known-hosts",
            str(self.root / "known_hosts"),
            "--credential-dir",
            str(self.credential_dir),
            "--data-root",
            str(self.data_root),
            "--termination-log",
            str(self.root / "termination-log"),
            "--backoff",
            "0.2",
            *extra,
        ]

    def start(self, *extra: str) -> subprocess.Popen[str]:
        (self.root / "termination-log").write_text("")
        return subprocess.Popen(
            self.command(*extra),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **self.env},
        )

    def finish(self, process: subprocess.Popen[str], timeout: float = 600) -> JobResult:
        stdout, stderr = process.communicate(timeout=timeout)
        return self.result(process.returncode, stdout, stderr)

    def run(self, *extra: str, timeout: float = 600) -> JobResult:
        return self.finish(self.start(*extra), timeout)

    def result(self, code: int, stdout: str, stderr: str) -> JobResult:
        termination = self.root / "termination-log"
        lines = [line for line in stdout.splitlines() if line.strip()]
        assert lines, f"no summary on stdout; stderr:\n{stderr}"
        summary = json.loads(lines[-1])
        assert json.loads(termination.read_text()) == summary
        return JobResult(code, summary, stdout, stderr)

    def landed(self) -> dict[str, bytes]:
        if not self.home.is_dir():
            return {}
        return {
            p.name: p.read_bytes()
            for p in self.home.iterdir()
            if p.is_file() and not p.name.startswith((".", "receipt_", "result_"))
        }

    def receipts(self) -> list[str]:
        return sorted(p.name for p in self.home.glob("receipt_*"))

    def temporaries(self) -> list[Path]:
        return [p for p in self.home.rglob(".upload-*")]


@pytest.fixture
def job(tmp_path: Path) -> Job:
    return Job(tmp_path)


# ---- a TCP proxy that cuts the connection ---------------------------------------------------


class CuttingProxy:
    """Forwards `listen`:port to a server on 127.0.0.1, and cuts the first
    `cut_connections` connections once `limit` bytes came back from the server:
    a server that drops the session halfway through a file. With no cuts, a
    plain relay (a pod reaches a loopback server through the node's address)."""

    def __init__(self, target_port: int, limit: int, cut_connections: int = 1,
                 listen: str = "127.0.0.1") -> None:
        self.target_port = target_port
        self.limit = limit
        self.cuts_left = cut_connections
        self.cuts = 0
        self.listener = socket.create_server((listen, 0))
        self.port = int(self.listener.getsockname()[1])
        self.listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            cut = self.cuts_left > 0
            self.cuts_left -= 1
            server = socket.create_connection(("127.0.0.1", self.target_port))
            pair = (client, server)
            threading.Thread(
                target=self._pump, args=(client, server, None, pair), daemon=True
            ).start()
            limit = self.limit if cut else None
            threading.Thread(
                target=self._pump, args=(server, client, limit, pair), daemon=True
            ).start()

    def _pump(
        self,
        source: socket.socket,
        sink: socket.socket,
        limit: int | None,
        pair: tuple[socket.socket, socket.socket],
    ) -> None:
        moved = 0
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                moved += len(data)
                if limit is not None and moved >= limit:
                    self.cuts += 1
                    break
        except OSError:
            pass
        for sock in pair:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()

    def close(self) -> None:
        self._stop.set()
        self.listener.close()


# ---- TLS certificate ------------------------------------------------------------------------


@dataclass
class Certificate:
    cert: Path
    key: Path


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> Certificate:
    """A self-signed certificate for 127.0.0.1."""
    work = tmp_path_factory.mktemp("tls")
    return Certificate(*self_signed(work, ["127.0.0.1"], cert_file="cert.pem",
                                    key_file="key.pem"))


# ---- vsftpd ---------------------------------------------------------------------------------


@dataclass
class Vsftpd:
    port: int
    tls: str
    """None, Explicit or Implicit."""
    process: subprocess.Popen[bytes]


def start_vsftpd(work: Path, tls: str, cert: Certificate) -> Vsftpd:
    binary = need("vsftpd")
    port = free_port()
    pasv = free_port()
    Path("/var/run/vsftpd/empty").mkdir(parents=True, exist_ok=True)
    lines = [
        "listen=YES",
        "listen_ipv6=NO",
        "listen_address=127.0.0.1",
        f"listen_port={port}",
        "background=NO",
        "anonymous_enable=NO",
        "local_enable=YES",
        "write_enable=YES",
        "local_umask=022",
        "pasv_enable=YES",
        f"pasv_min_port={pasv}",
        f"pasv_max_port={pasv + 20}",
        "seccomp_sandbox=NO",
        "isolate=NO",
        "isolate_network=NO",
        "secure_chroot_dir=/var/run/vsftpd/empty",
        "pam_service_name=vsftpd",
        "xferlog_enable=NO",
        "dirmessage_enable=NO",
        f"vsftpd_log_file={work}/vsftpd.log",
        "max_per_ip=50",
    ]
    if tls != "None":
        lines += [
            "ssl_enable=YES",
            f"rsa_cert_file={cert.cert}",
            f"rsa_private_key_file={cert.key}",
            "force_local_logins_ssl=YES",
            "force_local_data_ssl=YES",
            # The strict setting, as many partners run it: the client must
            # resume the control connection's TLS session on data connections.
            "require_ssl_reuse=YES",
            "ssl_ciphers=HIGH",
        ]
    if tls == "Implicit":
        lines.append("implicit_ssl=YES")
    config = work / f"vsftpd-{tls}.conf"
    config.write_text("\n".join(lines) + "\n")
    config.chmod(0o600)
    process = subprocess.Popen([binary, str(config)])
    wait_for_port(port, STARTUP_TIMEOUT, process)
    return Vsftpd(port, tls, process)


@pytest.fixture(scope="session", params=["None", "Explicit", "Implicit"])
def vsftpd(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    certificate: Certificate,
) -> Iterator[Vsftpd]:
    server = start_vsftpd(tmp_path_factory.mktemp("vsftpd"), request.param, certificate)
    try:
        yield server
    finally:
        stop(server.process)


def descendants(pid: int) -> list[int]:
    """Processes below `pid` (a server's per-session processes), from /proc."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry.name))
    found: list[int] = []
    queue = [pid]
    while queue:
        for child in children.get(queue.pop(), []):
            found.append(child)
            queue.append(child)
    return found


def kill_sessions_mid_transfer(server_pid: int, landing: Path, timeout: float = 120) -> bool:
    """Waits until a download has started writing its temporary file, freezes
    the server's session processes (SIGSTOP, so the transfer cannot finish
    meanwhile on a fast loopback), then kills them."""
    import signal

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        partial = [p for p in landing.glob(".upload-*") if p.stat().st_size > 0]
        if partial:
            sessions = descendants(server_pid)
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGSTOP)
            for pid in sessions:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            return bool(sessions)
        time.sleep(0.005)
    return False


# ---- dovecot --------------------------------------------------------------------------------


@dataclass
class Dovecot:
    imap_port: int
    imaps_port: int
    work: Path
    uid: int
    gid: int
    process: subprocess.Popen[bytes]

    def add_user(self, name: str, password: str) -> Path:
        """A mail account; returns its Maildir, which the test fills."""
        maildir = self.work / "mail" / name / "Maildir"
        for sub in ("new", "cur", "tmp"):
            (maildir / sub).mkdir(parents=True, exist_ok=True)
        for path in [maildir.parent, maildir, *maildir.iterdir()]:
            os.chown(path, self.uid, self.gid)
        # One passwd-file per user: dovecot notices a changed file by its mtime,
        # which two users added within one second would not change.
        (self.work / "passwd.d").mkdir(exist_ok=True)
        (self.work / "passwd.d" / name).write_text(f"{name}:{{PLAIN}}{password}::::::\n")
        return maildir


def deliver(maildir: Path, message: bytes, uid: int, gid: int) -> None:
    """Drops a message into Maildir/new as a delivery agent would."""
    name = f"{time.time_ns()}.{secrets.token_hex(4)}.test"
    temp = maildir / "tmp" / name
    temp.write_bytes(message)
    os.chown(temp, uid, gid)
    os.replace(temp, maildir / "new" / name)


@pytest.fixture(scope="session")
def dovecot(system_user: SystemUser, certificate: Certificate) -> Iterator[Dovecot]:
    binary = need("dovecot")
    work = Path(tempfile.mkdtemp(prefix="cx-dovecot-", dir="/tmp"))
    work.chmod(0o755)
    entry = pwd.getpwnam(system_user.name)
    (work / "mail").mkdir()
    os.chown(work / "mail", entry.pw_uid, entry.pw_gid)
    imap_port, imaps_port = free_port(), free_port()
    config = work / "dovecot.conf"
    config.write_text(
        f"""base_dir = {work}/run
state_dir = {work}/state
instance_name = cx-{work.name}
log_path = {work}/dovecot.log
protocols = imap
listen = 127.0.0.1
ssl = yes
ssl_cert = <{certificate.cert}
ssl_key = <{certificate.key}
disable_plaintext_auth = yes
auth_mechanisms = plain
first_valid_uid = 1
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {work}/passwd.d/%u
}}
userdb {{
  driver = static
  args = uid={entry.pw_uid} gid={entry.pw_gid} home={work}/mail/%u
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {imap_port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}
"""
    )
    process = subprocess.Popen([binary, "-F", "-c", str(config)])
    try:
        wait_for_port(imaps_port, STARTUP_TIMEOUT, process)
        wait_for_port(imap_port, STARTUP_TIMEOUT, process)
        yield Dovecot(imap_port, imaps_port, work, entry.pw_uid, entry.pw_gid, process)
    finally:
        stop(process)
        shutil.rmtree(work, ignore_errors=True)


# ---- other partner servers: proftpd (FTP, FTPS, mod_sftp) and pure-ftpd ----------------------
#
# Debian's vsftpd, proftpd and pure-ftpd packages conflict (each provides
# ftp-server), so hack/install-deps.sh unpacks proftpd and pure-ftpd from
# Debian's .deb files into EXTRA_SERVERS without installing them as system
# services; the tests start their own instances on free loopback ports.

EXTRA_SERVERS = Path(os.environ.get("CONNECTORS_TEST_SERVERS", "/opt/connectors-test-servers"))


def need_extra(binary: str) -> Path:
    for folder in (EXTRA_SERVERS / "usr/sbin", Path("/usr/sbin")):
        if (folder / binary).is_file():
            return folder / binary
    pytest.skip(f"{binary} is not unpacked in {EXTRA_SERVERS} (run hack/install-deps.sh)")


@dataclass
class Partner:
    """A partner server the transfer job talks to."""

    kind: str
    """proftpd, pure-ftpd or proftpd-sftp."""
    port: int
    tls: str
    process: subprocess.Popen[bytes]
    log: Path
    host_key_line: str = ""


def start_proftpd(
    work: Path, cert: Certificate, tls: str = "None", sftp: bool = False, deny_mlsd: bool = True
) -> Partner:
    binary = need_extra("proftpd")
    modules = binary.parent.parent / "lib/proftpd"
    port = free_port()
    pasv = free_port()
    log = work / "proftpd.log"
    lines = [
        'ServerName "partner"',
        "ServerType standalone",
        "DefaultServer on",
        f"Port {port}",
        "DefaultAddress 127.0.0.1",
        "SocketBindTight on",
        "UseIPv6 off",
        "User nobody",
        "Group nogroup",
        "RequireValidShell off",
        "AuthOrder mod_auth_unix.c",
        "UseReverseDNS off",
        "WtmpLog off",
        "DelayTable none",
        "UseLastlog off",
        f"ScoreboardFile {work}/scoreboard",
        f"PidFile {work}/proftpd.pid",
        f"SystemLog {log}",
        "TransferLog none",
        "AllowOverwrite on",
        "MaxInstances 50",
        f"PassivePorts {pasv} {pasv + 20}",
        f"ModulePath {modules}",
    ]
    if deny_mlsd:
        # As some partners configure it: no machine listing, only NLST/LIST.
        lines += ["<Limit MLSD MLST>", "  DenyAll", "</Limit>"]
    host_key_line = ""
    if tls != "None":
        lines += [
            "LoadModule mod_tls.c",
            "TLSEngine on",
            "TLSRequired on",
            f"TLSECCertificateFile {cert.cert}",
            f"TLSECCertificateKeyFile {cert.key}",
            "TLSProtocol TLSv1.2 TLSv1.3",
            f"TLSLog {work}/tls.log",
        ]
        if tls == "Implicit":
            lines.append("TLSOptions UseImplicitSSL")
    if sftp:
        host_key = work / "host_ecdsa"
        ssh_keypair(host_key, "ecdsa", pem=True)
        host_key_line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        lines += [
            "LoadModule mod_sftp.c",
            "SFTPEngine on",
            f"SFTPHostKey {host_key}",
            f"SFTPLog {work}/sftp.log",
            "SFTPAuthMethods password",
        ]
    config = work / "proftpd.conf"
    config.write_text("\n".join(lines) + "\n")
    process = subprocess.Popen([str(binary), "-n", "-q", "-c", str(config)])
    wait_for_port(port, STARTUP_TIMEOUT, process)
    return Partner("proftpd-sftp" if sftp else "proftpd", port, tls, process, log, host_key_line)


def start_pure_ftpd(work: Path, cert: Certificate, tls: str = "None") -> Partner:
    binary = need_extra("pure-ftpd")
    port = free_port()
    pasv = free_port()
    args = [
        str(binary),
        "-S", f"127.0.0.1,{port}",
        "-p", f"{pasv}:{pasv + 20}",
        "-l", "unix",
        "-E",  # no anonymous logins
        "-H",  # no reverse DNS
        "-u", "1",  # the test user's uid may be low
        "-x",  # refuse names starting with a dot, as some partners do
        "-c", "50",
        "-C", "50",
    ]  # fmt: skip
    if tls != "None":
        pem = work / "pure-ftpd.pem"
        pem.write_bytes(cert.key.read_bytes() + cert.cert.read_bytes())
        pem.chmod(0o600)
        args += ["-Y", "2", "-2", str(pem)]
    process = subprocess.Popen(args)
    wait_for_port(port, STARTUP_TIMEOUT, process)
    return Partner("pure-ftpd", port, tls, process, work / "none")


# ---- sshd with an external sftp-server, whose process can be killed alone --------------------


@pytest.fixture(scope="session")
def sshd_subsystem(
    system_user: SystemUser, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Sshd]:
    """Like `sshd`, but SFTP runs as its own process (sftp-server), so a test
    can end the SFTP session while the SSH connection stays up."""
    binary = need("sshd")
    server = Path("/usr/lib/openssh/sftp-server")
    if not server.is_file():
        pytest.skip("/usr/lib/openssh/sftp-server is not installed (openssh-sftp-server)")
    work = tmp_path_factory.mktemp("sshd-subsystem")
    host_key = work / "host_ed25519"
    ssh_keypair(host_key)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        f"""Port {port}
ListenAddress 127.0.0.1
HostKey {host_key}
PidFile {work}/sshd.pid
UsePAM no
PasswordAuthentication yes
KbdInteractiveAuthentication no
StrictModes no
AllowUsers {system_user.name}
Subsystem sftp {server}
MaxStartups 50
MaxSessions 50
LogLevel VERBOSE
"""
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)
    log = work / "sshd.log"
    process = subprocess.Popen([binary, "-D", "-E", str(log), "-f", str(config)])
    try:
        wait_for_port(port, STARTUP_TIMEOUT, process)
        line = " ".join(Path(f"{host_key}.pub").read_text().split()[:2])
        yield Sshd(port, line, process, work / "none")
    finally:
        stop(process)
