"""The partner software people use, against the SFTP and FTP listeners.

Partners retry when their client reports a failure, so a client that fails
after the data landed turns into a duplicate. Each client here uploads one
file and must exit 0, the file must land once, whole, with its receipt, and
nothing temporary may stay behind. Clients come from Debian packages
(openssh-client, putty-tools, rclone, lftp, curl); a missing one skips.
"""

from __future__ import annotations

import base64
import contextlib
import ftplib
import hashlib
import io
import json
import os
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest

from connectors.landing.names import MAX_NAME_BYTES, TEMP_PREFIX
from tests.integration.listeners.listener_harness import (
    PASSWORD,
    Listener,
    Workspace,
    listener_fixture,
    need,
    self_signed,
)

pytestmark = pytest.mark.timeout(300)

SIZE = 5 * 1024 * 1024 + 4321  # several TLS records and SFTP writes, not a round number


def payload(name: str) -> bytes:
    seed = hashlib.sha256(name.encode()).digest()
    return (seed * (SIZE // len(seed) + 1))[:SIZE]


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=cwd, env={**os.environ, **(env or {})}, input=stdin,
                          capture_output=True, text=True, timeout=240, check=False)


def assert_landed_once(workspace: Workspace, name: str, content: bytes) -> None:
    home = workspace.home("acme-conversions")
    assert (home / name).read_bytes() == content, f"{name} did not land whole"
    receipt = json.loads((home / f"receipt_{name}.txt").read_text())
    assert receipt["sha256"] == hashlib.sha256(content).hexdigest()
    assert receipt["size"] == len(content)
    others = [p.name for p in home.iterdir()
              if p.name.startswith(TEMP_PREFIX) or (name in p.name and p.name not in
                                                    (name, f"receipt_{name}.txt"))]
    assert others == [], f"left behind: {others}"


def source(workspace: Workspace, name: str) -> tuple[Path, bytes]:
    content = payload(name)
    path = workspace.root / "outgoing" / name
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(content)
    return path, content


def host_public_key(workspace: Workspace) -> tuple[str, str]:
    kind, blob = (workspace.root / "ssh_host_ed25519_key.pub").read_text().split()[:2]
    return kind, blob


def known_hosts(listener: Listener) -> Path:
    kind, blob = host_public_key(listener.workspace)
    path = listener.workspace.root / f"known_hosts_{listener.port}"
    path.write_text(f"[127.0.0.1]:{listener.port} {kind} {blob}\n")
    return path


def obscured(password: str) -> str:
    return run([need("rclone"), "obscure", password], cwd=Path("/")).stdout.strip()


@pytest.fixture
def sftp_listener(workspace: Workspace) -> Iterator[Listener]:
    yield from listener_fixture(workspace, "sftp")


@pytest.fixture
def ftps_listener(workspace: Workspace) -> Iterator[Listener]:
    cert, key = self_signed(workspace.root)
    yield from listener_fixture(workspace, "ftp", "--tls-cert-file", str(cert),
                                "--tls-key-file", str(key), "--require-tls")


def ssh_options(listener: Listener) -> list[str]:
    return ["-i", str(listener.workspace.client_key), "-o", "IdentitiesOnly=yes",
            "-o", "IdentityAgent=none", "-o", "BatchMode=yes",
            "-o", f"UserKnownHostsFile={known_hosts(listener)}",
            "-o", "StrictHostKeyChecking=yes"]


def test_openssh_sftp_put_with_times(sftp_listener: Listener) -> None:
    """`put -p` sets the file's times after writing it."""
    workspace = sftp_listener.workspace
    path, content = source(workspace, "conversions_sftp.csv")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    result = run([need("sftp"), "-b", "-", "-P", str(sftp_listener.port),
                  *ssh_options(sftp_listener), "acme@127.0.0.1"],
                 cwd=path.parent, stdin=f"put -p {path.name}\n")
    assert result.returncode == 0, result.stderr
    assert_landed_once(workspace, path.name, content)
    landed = workspace.home("acme-conversions") / path.name
    assert int(landed.stat().st_mtime) == 1_600_000_000


def test_openssh_scp_exits_zero(sftp_listener: Listener) -> None:
    """scp (SFTP mode, the default since OpenSSH 9.0) wants an exit status."""
    workspace = sftp_listener.workspace
    path, content = source(workspace, "conversions_scp.csv")
    result = run([need("scp"), "-P", str(sftp_listener.port), *ssh_options(sftp_listener),
                  str(path), "acme@127.0.0.1:/conversions_scp.csv"], cwd=path.parent)
    assert result.returncode == 0, result.stderr
    assert_landed_once(workspace, path.name, content)


def test_putty_psftp(sftp_listener: Listener) -> None:
    workspace = sftp_listener.workspace
    path, content = source(workspace, "conversions_psftp.csv")
    fingerprint = run(["ssh-keygen", "-l", "-E", "sha256", "-f",
                       str(workspace.root / "ssh_host_ed25519_key.pub")],
                      cwd=workspace.root).stdout.split()[1]
    password_file = workspace.root / "psftp-password"
    password_file.write_text(PASSWORD)
    batch = workspace.root / "psftp-batch"
    batch.write_text(f"put {path.name}\n")
    result = run([need("psftp"), "-P", str(sftp_listener.port), "-l", "acme",
                  "-pwfile", str(password_file), "-batch", "-hostkey", fingerprint,
                  "-b", str(batch), "127.0.0.1"], cwd=path.parent)
    if "-pwfile" in result.stderr and "unknown option" in result.stderr:
        pytest.skip("this psftp has no -pwfile")
    assert result.returncode == 0, result.stdout + result.stderr
    assert_landed_once(workspace, path.name, content)


def test_rclone_sftp_sets_times_without_retrying(sftp_listener: Listener) -> None:
    """rclone sets the modification time after an upload and retries the whole
    upload (a duplicate) when that is refused."""
    workspace = sftp_listener.workspace
    path, content = source(workspace, "conversions_rclone.csv")
    os.utime(path, (1_600_000_000, 1_600_000_000))
    remote = (f":sftp,host=127.0.0.1,port={sftp_listener.port},user=acme,"
              f"key_file={workspace.client_key},"
              f"known_hosts_file={known_hosts(sftp_listener)}:")
    result = run([need("rclone"), "copyto", "--retries", "1", "--low-level-retries", "1",
                  str(path), remote + path.name], cwd=workspace.root)
    assert result.returncode == 0, result.stderr
    assert_landed_once(workspace, path.name, content)
    landed = workspace.home("acme-conversions") / path.name
    assert int(landed.stat().st_mtime) == 1_600_000_000
    assert sftp_listener.log_text().count(f"name={path.name} ") == 1, "landed more than once"


def test_rclone_ftps(ftps_listener: Listener) -> None:
    """rclone over explicit FTPS (Go's TLS 1.3 client) used to land a
    truncated file and get 226; then its MFMT was refused."""
    workspace = ftps_listener.workspace
    for index in range(3):
        path, content = source(workspace, f"conversions_rclone_ftps_{index}.csv")
        remote = (f":ftp,host=127.0.0.1,port={ftps_listener.port},user=acme,"
                  f"pass={obscured(PASSWORD)},explicit_tls=true,no_check_certificate=true:")
        result = run([need("rclone"), "copyto", "--retries", "1", "--low-level-retries", "1",
                      str(path), remote + path.name], cwd=workspace.root)
        assert result.returncode == 0, result.stderr
        assert_landed_once(workspace, path.name, content)
    assert PASSWORD not in ftps_listener.log_text()


def lftp_put(listener: Listener, folder: Path, command: str) -> subprocess.CompletedProcess[str]:
    script = ("set ftp:ssl-force true; set ftp:ssl-protect-data true; "
              "set ssl:verify-certificate no; set net:max-retries 1; "
              f"{command}; bye")
    return run([need("lftp"), "-u", f"acme,{PASSWORD}", "-p", str(listener.port),
                "-e", script, "127.0.0.1"], cwd=folder)


@pytest.mark.parametrize("size", [150_000, SIZE])
def test_lftp_ftps_uploads_land_whole(ftps_listener: Listener, size: int) -> None:
    """lftp over FTPS, one file at a time and four at once (the sizes that
    landed truncated with a 226): lftp's success means landed, whole."""
    workspace = ftps_listener.workspace
    folder = workspace.root / "outgoing"
    folder.mkdir(exist_ok=True)
    contents = {}
    for index in range(22):
        name = f"conversions_lftp_{index}.csv"
        contents[name] = payload(name)[:size]
        (folder / name).write_bytes(contents[name])
    names = list(contents)
    singles = lftp_put(ftps_listener, folder, "; ".join(f"put {n}" for n in names[:10]))
    assert singles.returncode == 0, singles.stderr
    parallel = lftp_put(ftps_listener, folder, f"mput -P 4 {' '.join(names[10:])}")
    assert parallel.returncode == 0, parallel.stderr
    for name, content in contents.items():
        assert_landed_once(workspace, name, content)


def test_curl_ftps(ftps_listener: Listener) -> None:
    workspace = ftps_listener.workspace
    path, content = source(workspace, "conversions_curl.csv")
    result = run([need("curl"), "-sS", "--ssl-reqd", "-k", "--user", f"acme:{PASSWORD}",
                  "-T", str(path), f"ftp://127.0.0.1:{ftps_listener.port}/"],
                 cwd=workspace.root)
    assert result.returncode == 0, result.stderr
    assert_landed_once(workspace, path.name, content)


def tls_session(listener: Listener) -> ftplib.FTP_TLS:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    client = ftplib.FTP_TLS(context=context)  # noqa: S321 - FTPS is under test
    client.connect("127.0.0.1", listener.port, timeout=60)
    client.login("acme", PASSWORD)
    client.prot_p()
    return client


def stor_without_close_notify(client: ftplib.FTP_TLS, name: str, data: bytes) -> None:
    """Sends a whole file, then closes the data connection with a bare FIN:
    Python's SSLSocket.close() sends no close_notify."""
    connection = client.transfercmd(f"STOR {name}")
    connection.sendall(data)
    connection.close()


def test_ftps_upload_without_close_notify_does_not_land(ftps_listener: Listener) -> None:
    """Without the client's close_notify nothing proves the upload complete:
    the client is told, and nothing lands."""
    workspace = ftps_listener.workspace
    client = tls_session(ftps_listener)
    data = payload("conversions_unproven.csv")[:150_000]
    stor_without_close_notify(client, "conversions_unproven.csv", data)
    with pytest.raises(ftplib.error_temp, match=r"^426"):
        client.voidresp()
    # The declared size (ALLO) is the other proof: it matches, so it lands.
    client.sendcmd(f"ALLO {len(data)}")
    stor_without_close_notify(client, "conversions_declared.csv", data)
    assert client.voidresp().startswith("226")
    client.quit()
    home = workspace.home("acme-conversions")
    assert not (home / "conversions_unproven.csv").exists()
    assert_landed_once(workspace, "conversions_declared.csv", data)
    assert [p.name for p in home.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


def test_ftps_refuses_weak_tls(ftps_listener: Listener) -> None:
    """Mozilla's intermediate profile: no TLS 1.1, no RSA key exchange, no CBC."""
    for version, cipher in ((ssl.TLSVersion.TLSv1_2, "AES128-GCM-SHA256"),
                            (ssl.TLSVersion.TLSv1_2, "ECDHE-RSA-AES128-SHA"),
                            (ssl.TLSVersion.TLSv1_2, "AES256-SHA"),
                            (ssl.TLSVersion.TLSv1_1, "DEFAULT:@SECLEVEL=0")):
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        with contextlib.suppress(ssl.SSLError, ValueError):
            context.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        context.maximum_version = version
        context.set_ciphers(cipher)
        client = ftplib.FTP_TLS(context=context)  # noqa: S321 - FTPS is under test
        client.connect("127.0.0.1", ftps_listener.port, timeout=30)
        with pytest.raises((ssl.SSLError, OSError, EOFError)):
            client.auth()
        client.close()
    # A good client still gets in.
    tls_session(ftps_listener).quit()
    # One line per failed handshake, no traceback.
    text = ftps_listener.log_text()
    assert "Traceback" not in text


def long_name(size: int) -> str:
    """A conversions_*.csv name of exactly `size` bytes, in 2-byte characters."""
    fill = size - len("conversions_.csv")
    return "conversions_" + "é" * (fill // 2) + "x" * (fill % 2) + ".csv"


def test_sftp_name_too_long_for_its_receipt_is_refused_before_upload(
        sftp_listener: Listener) -> None:
    """A name the receipt cannot follow is refused at open, so the client
    never sends data it would have to send again; one that fits lands."""
    workspace = sftp_listener.workspace
    client = paramiko.SSHClient()
    kind, blob = host_public_key(workspace)
    client.get_host_keys().add(f"[127.0.0.1]:{sftp_listener.port}", kind,
                               paramiko.PKey.from_type_string(kind, base64.b64decode(blob)))
    client.connect("127.0.0.1", port=sftp_listener.port, username="acme", password=PASSWORD,
                   look_for_keys=False, allow_agent=False, timeout=30)
    sftp = client.open_sftp()
    too_long, fits = long_name(MAX_NAME_BYTES + 1), long_name(MAX_NAME_BYTES)
    assert len(too_long.encode()) == 244
    assert len(fits.encode()) == 243
    with pytest.raises(PermissionError, match="bytes"):
        sftp.open(too_long, "wb")
    with sftp.open(fits, "wb") as handle:
        handle.write(b"fits\n")
    client.close()
    home = workspace.home("acme-conversions")
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == sorted(
        [fits, f"receipt_{fits}.txt"])
    assert [p.name for p in home.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


def test_ftp_name_too_long_for_its_receipt_is_refused_before_upload(
        ftps_listener: Listener) -> None:
    workspace = ftps_listener.workspace
    client = tls_session(ftps_listener)
    too_long, fits = long_name(MAX_NAME_BYTES + 1), long_name(MAX_NAME_BYTES)
    with pytest.raises(ftplib.error_perm, match="bytes"):
        client.storbinary(f"STOR {too_long}", io.BytesIO(b"too long\n"))
    client.storbinary(f"STOR {fits}", io.BytesIO(b"fits\n"))
    client.quit()
    home = workspace.home("acme-conversions")
    assert sorted(p.name for p in home.iterdir() if not p.name.startswith(".")) == sorted(
        [fits, f"receipt_{fits}.txt"])
    assert [p.name for p in home.iterdir() if p.name.startswith(TEMP_PREFIX)] == []


@pytest.mark.parametrize("option", [
    "Ciphers=aes128-cbc", "Ciphers=3des-cbc", "MACs=hmac-md5", "MACs=hmac-sha1-96",
    "MACs=hmac-sha1", "KexAlgorithms=diffie-hellman-group14-sha1",
    "KexAlgorithms=diffie-hellman-group1-sha1",
])
def test_sftp_refuses_weak_algorithms(sftp_listener: Listener, option: str) -> None:
    """What a current OpenSSH server no longer offers, the listener refuses."""
    result = run([need("sftp"), "-b", "-", "-P", str(sftp_listener.port),
                  *ssh_options(sftp_listener), "-o", option, "acme@127.0.0.1"],
                 cwd=sftp_listener.workspace.root, stdin="ls\n")
    assert result.returncode != 0
    assert "no matching" in result.stderr, result.stderr


def test_sftp_offers_what_openssh_clients_use(sftp_listener: Listener) -> None:
    result = run([need("sftp"), "-b", "-", "-P", str(sftp_listener.port),
                  *ssh_options(sftp_listener), "-o", "Ciphers=aes256-gcm@openssh.com",
                  "-o", "KexAlgorithms=curve25519-sha256@libssh.org", "acme@127.0.0.1"],
                 cwd=sftp_listener.workspace.root, stdin="ls\n")
    assert result.returncode == 0, result.stderr


def test_python_ftplib_ftps(ftps_listener: Listener) -> None:
    """Python's ftplib ends an FTPS upload with a two-way TLS shutdown and
    fails when the server closes without its own close_notify: it did after
    every upload, so a partner's script saw an error for a landed file."""
    workspace = ftps_listener.workspace
    client = tls_session(ftps_listener)
    contents = {f"conversions_ftplib_{index}.csv": payload(f"ftplib{index}")[:70_000 * index + 5]
                for index in range(3)}
    for name, content in contents.items():
        assert client.storbinary(f"STOR {name}", io.BytesIO(content)).startswith("226")
    client.quit()
    for name, content in contents.items():
        assert_landed_once(workspace, name, content)
