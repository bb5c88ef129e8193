"""Real peers for the sink tests: SeaweedFS (`weed server -s3`, built from Go
modules by hack/seaweedfs/build.sh) as the S3-compatible object store, and an
HTTP receiver of CloudEvents (http.server in a thread) that records what it was
sent and answers what the test scripts."""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from connectors.devcluster.net import free_port
from connectors.devcluster.processes import cached_build
from connectors.sinks.object_store import s3_client
from tests.support import secrets as secret_scan

REPO = Path(__file__).resolve().parents[3]
BUILD_SCRIPT = REPO / "hack" / "seaweedfs" / "build.sh"
STARTUP_TIMEOUT = 90.0


# ---- SeaweedFS ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Identity:
    access_key_id: str
    secret_access_key: str = field(repr=False)


@dataclass(frozen=True)
class SeaweedFS:
    endpoint: str
    admin: Identity
    """May do anything: creates the buckets."""
    reader: Identity
    """May read and list, not write: for AccessDenied."""
    workdir: Path

    def client(self, identity: Identity | None = None) -> Any:
        who = identity or self.admin
        return s3_client(self.endpoint, None, who.access_key_id, who.secret_access_key)


def weed_binary() -> Path:
    if shutil.which("go") is None and not BUILD_SCRIPT.exists():
        pytest.skip("SeaweedFS needs the Go toolchain to be built (hack/seaweedfs/build.sh)")
    return cached_build(BUILD_SCRIPT, "CONNECTORS_SEAWEEDFS_BIN")


def _stop(process: subprocess.Popen[bytes]) -> None:
    # weed may take a while to stop after SIGTERM (its filer keeps trying to
    # reach its peers); a test run need not wait for a clean shutdown of test data.
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(3)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(20)


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedFS]:
    """`weed server` with a master, a volume server, a filer and the S3 gateway,
    every port a free one on 127.0.0.1, its data in a temporary folder, two S3
    identities from a config file; buckets are not created on upload."""
    weed = weed_binary()
    workdir = tmp_path_factory.mktemp("seaweedfs")
    (workdir / "data").mkdir()
    admin = Identity("AK" + secrets.token_hex(8).upper(), "sk-" + secrets.token_urlsafe(24))
    reader = Identity("AK" + secrets.token_hex(8).upper(), "sk-" + secrets.token_urlsafe(24))
    for identity in (admin, reader):
        secret_scan.remember(identity.secret_access_key)
    config = {"identities": [
        {"name": "connectors", "actions": ["Admin", "Read", "Write", "List", "Tagging"],
         "credentials": [{"accessKey": admin.access_key_id,
                          "secretKey": admin.secret_access_key}]},
        {"name": "reader", "actions": ["Read", "List"],
         "credentials": [{"accessKey": reader.access_key_id,
                          "secretKey": reader.secret_access_key}]},
    ]}
    config_file = workdir / "s3.json"
    config_file.write_text(json.dumps(config))
    config_file.chmod(0o600)
    ports = {name: free_port() for name in (
        "master", "master.grpc", "volume", "volume.grpc", "filer", "filer.grpc", "s3", "s3.grpc")}
    command = [
        str(weed), "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", f"-dir={workdir / 'data'}",
        f"-master.port={ports['master']}", f"-master.port.grpc={ports['master.grpc']}",
        "-master.volumeSizeLimitMB=64",
        f"-volume.port={ports['volume']}", f"-volume.port.grpc={ports['volume.grpc']}",
        # Each bucket is a collection that grows several volumes at once; they
        # are files that start empty, so many cost nothing.
        "-volume.max=400", "-volume.preStopSeconds=0",
        "-filer", f"-filer.port={ports['filer']}", f"-filer.port.grpc={ports['filer.grpc']}",
        f"-filer.localSocket={workdir / 'filer.sock'}",
        "-s3", f"-s3.port={ports['s3']}", f"-s3.port.grpc={ports['s3.grpc']}",
        "-s3.port.iceberg=0", "-s3.port.lance=0", f"-s3.localSocket={workdir / 's3.sock'}",
        f"-s3.config={config_file}", "-s3.autoCreateBucket=false",
    ]
    # Named .out, not .log: the suite's secret scan reads the product's logs,
    # and this is a third party's.
    output = open(workdir / "weed.out", "wb")  # noqa: SIM115 (closed below)
    process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT,
                               cwd=workdir)
    endpoint = f"http://127.0.0.1:{ports['s3']}"
    server = SeaweedFS(endpoint, admin, reader, workdir)
    try:
        _wait_until_it_answers(server, process)
        yield server
    finally:
        _stop(process)
        output.close()
        for name, port in ports.items():
            if name.endswith(".grpc"):
                kind = name.split(".")[0]
                Path(f"/tmp/seaweedfs-{kind}-grpc-{port}.sock").unlink(missing_ok=True)


def _wait_until_it_answers(server: SeaweedFS, process: subprocess.Popen[bytes]) -> None:
    """Until an object can be written: the S3 gateway, the filer (and its lock
    service), the master and the volume server are then all up."""
    deadline = time.monotonic() + STARTUP_TIMEOUT
    last = ""
    s3 = server.client()
    while time.monotonic() < deadline:
        if process.poll() is not None:
            tail = (server.workdir / "weed.out").read_text(errors="replace")[-3000:]
            raise RuntimeError(f"weed exited with {process.returncode}; its output ends:\n{tail}")
        try:
            if not any(b["Name"] == "ready" for b in s3.list_buckets().get("Buckets", [])):
                s3.create_bucket(Bucket="ready")
            s3.put_object(Bucket="ready", Key="ready", Body=b"ready")
            return
        except Exception as err:  # not up yet: connection refused, 503, no lock server ...
            last = f"{type(err).__name__}: {err}"
        time.sleep(0.25)
    raise TimeoutError(f"SeaweedFS did not take an object in {STARTUP_TIMEOUT:.0f} s: {last}")


@pytest.fixture
def bucket(seaweedfs: SeaweedFS) -> str:
    """A new, empty bucket for one test."""
    name = f"sink-{secrets.token_hex(4)}"
    s3 = seaweedfs.client()
    s3.create_bucket(Bucket=name)
    # The filer creates the bucket's folder asynchronously: wait until a put works.
    deadline = time.monotonic() + 30
    while True:
        try:
            s3.head_bucket(Bucket=name)
            return name
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---- a CloudEvents receiver --------------------------------------------------------------


@dataclass
class Received:
    method: str
    path: str
    headers: dict[str, str]
    """Lowercase names."""
    body: bytes
    """The whole body, when small; b"" for a large one (see sha256)."""
    sha256: str
    size: int


@dataclass
class Receiver:
    """An HTTP server on 127.0.0.1 that records every request and answers
    each with the next scripted (status, headers), then 200."""

    url: str
    requests: list[Received] = field(default_factory=list)
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    delay: float = 0.0
    """Seconds to wait before answering (for a read timeout)."""
    keep_body_up_to: int = 1 << 20

    def answer(self, *statuses: int | tuple[int, dict[str, str]]) -> None:
        self.script.extend(s if isinstance(s, tuple) else (s, {}) for s in statuses)


def _handler(receiver: Receiver) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            digest = hashlib.sha256()
            kept = bytearray()
            left = length
            while left:
                chunk = self.rfile.read(min(left, 1 << 16))
                if not chunk:
                    break
                digest.update(chunk)
                if length <= receiver.keep_body_up_to:
                    kept += chunk
                left -= len(chunk)
            receiver.requests.append(Received(
                "POST", self.path, {k.lower(): v for k, v in self.headers.items()},
                bytes(kept), digest.hexdigest(), length - left))
            status, headers = receiver.script.pop(0) if receiver.script else (200, {})
            if receiver.delay:
                time.sleep(receiver.delay)
            body = f"answer {status}".encode()
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with contextlib.suppress(OSError):
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), http.server.BaseHTTPRequestHandler)
    server.daemon_threads = True
    state = Receiver(f"http://127.0.0.1:{server.server_address[1]}/events")
    server.RequestHandlerClass = _handler(state)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()  # the socket listens already: requests wait for the thread
    yield state
    server.shutdown()
    server.server_close()
    thread.join(5)
