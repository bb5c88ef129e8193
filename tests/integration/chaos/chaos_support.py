"""Helpers of the chaos tests: the seed, random contents, a listener that can
be SIGKILLed and restarted on its port, and the inspection of a landing folder
(what landed, what is partial, duplicated or without its receipt)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from tests.integration.listeners.listener_harness import Workspace, wait_for_port

DEFAULT_SEED = 20_111
RECEIPT_PREFIX, RECEIPT_SUFFIX = "receipt_", ".txt"


def chaos_seed() -> int:
    """The seed of a run: CHAOS_SEED replays a failure (the contents, sizes and
    kill delays; thread timing on the machine is not replayable)."""
    return int(os.environ.get("CHAOS_SEED", str(DEFAULT_SEED)))


def random_content(rng: random.Random, largest: int) -> bytes:
    """1 byte to `largest` bytes: mostly small (log-uniform), a quarter spread
    evenly up to the largest, so that kills find both many files and long ones."""
    if rng.random() < 0.25:
        size = rng.randint(1, largest)
    else:
        size = min(largest, max(1, int(math.exp(rng.uniform(0.0, math.log(largest))))))
    return rng.randbytes(size)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


@dataclass
class Sent:
    """One file a client sent (or a remote file a job must fetch)."""

    name: str
    sha256: str
    size: int
    acknowledged: bool = False
    attempts: int = 0
    last_error: str = ""


# ---- a listener killed and restarted on one port -------------------------------------------


class RestartingListener:
    """`connectors listen PROTOCOL` on a fixed port, restarted after each kill.
    Every start appends to one log, after a marker line, so that a failure can
    be read next to the kills around it."""

    def __init__(self, workspace: Workspace, protocol: str, port: int, *extra: str) -> None:
        self.workspace = workspace
        self.protocol = protocol
        self.port = port
        self.extra = extra
        self.log = workspace.root / f"chaos-{protocol}.log"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.kills = 0
        self._lock = threading.Lock()

    def command(self) -> list[str]:
        return [
            sys.executable, "-m", "connectors.cli", "listen", self.protocol,
            "--address", "127.0.0.1", "--port", str(self.port),
            "--accounts-file", str(self.workspace.accounts_file),
            "--data-root", str(self.workspace.data),
            "--host-key-file", str(self.workspace.host_key),
            "--metrics-port", "0",
            *self.extra,
        ]

    def start(self) -> None:
        environment = {k: v for k, v in os.environ.items() if not k.startswith("CONNECTORS_")}
        for attempt in range(5):
            self.starts += 1
            with self.log.open("ab") as output:
                output.write(f"=== chaos: start {self.starts} at {time.time():.3f}\n".encode())
                output.flush()
                process = subprocess.Popen(self.command(), stdout=output,
                                           stderr=subprocess.STDOUT, env=environment)
            try:
                wait_for_port(self.port, process, self.log)
            except AssertionError:
                # The port of the killed process may not be free yet: try again.
                process.kill()
                process.wait(timeout=30)
                if attempt == 4:
                    raise
                time.sleep(0.5)
                continue
            with self._lock:
                self.process = process
            return

    def kill(self) -> None:
        with self._lock:
            process = self.process
        assert process is not None
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
        self.kills += 1
        with self.log.open("ab") as output:
            output.write(f"=== chaos: SIGKILL {self.kills} at {time.time():.3f}\n".encode())

    def stop(self) -> None:
        """A graceful stop (SIGTERM) at the end."""
        with self._lock:
            process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=30)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


class Killer(threading.Thread):
    """SIGKILLs a listener every `low`..`high` seconds and restarts it, until
    stopped. An error here is kept and raised by `join_and_check`."""

    def __init__(self, listener: RestartingListener, rng: random.Random, low: float,
                 high: float, stop: threading.Event) -> None:
        super().__init__(name=f"killer-{listener.protocol}", daemon=True)
        self.listener = listener
        self.rng = rng
        self.low, self.high = low, high
        self.stop_event = stop
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop_event.wait(self.rng.uniform(self.low, self.high)):
                self.listener.kill()
                self.listener.start()
        except BaseException as error:  # reported by join_and_check
            self.error = error

    def join_and_check(self) -> None:
        self.join(timeout=120)
        assert not self.is_alive(), f"the killer of {self.listener.protocol} did not stop"
        if self.error is not None:
            raise AssertionError(
                f"restarting the {self.listener.protocol} listener failed: {self.error!r}\n"
                f"{tail(self.listener.log_text())}"
            ) from self.error


def tail(text: str, lines: int = 60) -> str:
    return "\n".join(text.splitlines()[-lines:])


def log_lines_about(text: str, names: Iterable[str], context: int = 3) -> str:
    """The log lines that mention any of `names`, with the lines around them
    (the kills and restarts show as '=== chaos:' lines)."""
    wanted = set(names)
    lines = text.splitlines()
    keep: set[int] = set()
    for number, line in enumerate(lines):
        if any(name in line for name in wanted):
            keep.update(range(max(0, number - context), min(len(lines), number + context + 1)))
    return "\n".join(lines[number] for number in sorted(keep))


# ---- what is in a landing folder ---------------------------------------------------------------


@dataclass
class Inspection:
    """A landing folder against the files sent to it."""

    landed: list[str] = field(default_factory=list)
    """Visible files (not receipts) whose name was sent and whose content is
    the content sent under that name."""
    partial: list[str] = field(default_factory=list)
    """Visible files whose content is not what was sent under their name."""
    duplicates: list[str] = field(default_factory=list)
    """Visible files under a name that was never sent (`name-2.csv`, copies)."""
    lost: list[str] = field(default_factory=list)
    """Acknowledged files that are not there whole."""
    receipt_problems: list[str] = field(default_factory=list)
    """Receipts without their file or not describing it, files without a receipt."""


def problem_names(inspection: Inspection) -> set[str]:
    """The file names a failed inspection is about, with their receipts' names."""
    problems = (inspection.lost + inspection.partial + inspection.duplicates
                + inspection.receipt_problems)
    names = {problem.split(":")[0] for problem in problems}
    return names | {receipt_of(name) for name in names} | {
        name.removeprefix(RECEIPT_PREFIX).removesuffix(RECEIPT_SUFFIX) for name in names}


def receipt_of(name: str) -> str:
    return f"{RECEIPT_PREFIX}{name}{RECEIPT_SUFFIX}"


def inspect_home(home: Path, sent: dict[str, Sent]) -> Inspection:
    """Every visible entry of `home`, checked against `sent` (by name)."""
    result = Inspection()
    entries = {p.name: p for p in home.iterdir()} if home.is_dir() else {}
    visible = {name: path for name, path in entries.items()
               if not name.startswith(".") and path.is_file()}
    files = {name: path for name, path in visible.items()
             if not name.startswith((RECEIPT_PREFIX, "result_"))}
    digests = {name: file_sha256(path) for name, path in files.items()}
    for name in sorted(files):
        expected = sent.get(name)
        if expected is None:
            result.duplicates.append(name)
        elif digests[name] != expected.sha256:
            result.partial.append(f"{name}: {files[name].stat().st_size} bytes on disk, "
                                  f"{expected.size} sent")
        else:
            result.landed.append(name)
        if receipt_of(name) not in visible:
            result.receipt_problems.append(f"{name}: no receipt")
    for name in sorted(visible):
        if not (name.startswith(RECEIPT_PREFIX) and name.endswith(RECEIPT_SUFFIX)):
            continue
        described = name[len(RECEIPT_PREFIX):-len(RECEIPT_SUFFIX)]
        if described not in files:
            result.receipt_problems.append(f"{name}: its file {described} is not there")
            continue
        try:
            receipt = json.loads(visible[name].read_text())
        except (ValueError, UnicodeDecodeError) as error:
            result.receipt_problems.append(f"{name}: not a JSON receipt ({error})")
            continue
        actual = (described, files[described].stat().st_size, digests[described])
        if (receipt.get("name"), receipt.get("size"), receipt.get("sha256")) != actual:
            result.receipt_problems.append(
                f"{name}: says {receipt.get('name')}, {receipt.get('size')} bytes, "
                f"{receipt.get('sha256')}; the file is {actual[1]} bytes, {actual[2]}")
    for name, expected in sorted(sent.items()):
        if expected.acknowledged and name not in result.landed:
            state = "missing" if name not in files else "not whole"
            result.lost.append(f"{name}: acknowledged after {expected.attempts} attempt(s), "
                               f"{state}")
    return result


class PartialWatcher(threading.Thread):
    """Looks at the visible files of some folders while the chaos runs: a file
    visible under a sent name with another size than the one sent is partial,
    even if a retry later overwrites it."""

    def __init__(self, homes: list[Path], expected: Callable[[], dict[str, Sent]],
                 stop: threading.Event, period: float = 0.2) -> None:
        super().__init__(name="partial-watcher", daemon=True)
        self.homes = homes
        self.expected = expected
        self.stop_event = stop
        self.period = period
        self.seen: set[str] = set()
        self.scans = 0

    def run(self) -> None:
        while not self.stop_event.wait(self.period):
            self.scan()

    def scan(self) -> None:
        sent = self.expected()
        for home in self.homes:
            try:
                names = os.listdir(home)
            except FileNotFoundError:
                continue
            for name in names:
                expected = sent.get(name)
                if expected is None:
                    continue
                try:
                    size = os.stat(home / name).st_size
                except FileNotFoundError:
                    continue
                if size != expected.size:
                    self.seen.add(f"{name}: seen with {size} of {expected.size} bytes")
        self.scans += 1


# ---- a slow network between a job and its partner ------------------------------------------------


class SlowProxy:
    """Forwards 127.0.0.1:port to a server, the server's bytes at most
    `bytes_per_second` per connection: on loopback a pull of a few megabytes
    takes a few milliseconds, too short for a kill at a random moment to
    find it downloading or landing; through this it takes seconds."""

    CHUNK = 16 * 1024

    def __init__(self, target_port: int, bytes_per_second: int) -> None:
        self.target_port = target_port
        self.rate = bytes_per_second
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self.listener.getsockname()[1])
        self.listener.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, name="slow-proxy", daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=10)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            pair = (client, server)
            for source, sink, rate in ((client, server, None), (server, client, self.rate)):
                threading.Thread(target=self._pump, args=(source, sink, rate, pair),
                                 daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, rate: int | None,
              pair: tuple[socket.socket, socket.socket]) -> None:
        try:
            while data := source.recv(self.CHUNK):
                sink.sendall(data)
                if rate is not None:
                    time.sleep(len(data) / rate)
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
        self._thread.join(timeout=10)
