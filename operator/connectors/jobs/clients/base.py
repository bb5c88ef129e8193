"""What the transfer job needs from a protocol client, and how failures are
told apart: a transient failure (the network, a dropped session) is retried
with a fresh connection; a permanent one (login refused, host key not
trusted) is not; a file error concerns one file and the run goes on."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    import ssl


@dataclass(frozen=True)
class RemoteFile:
    name: str
    size: int
    mtime: int
    """Seconds since the epoch, as the server reports it."""


@dataclass(frozen=True)
class Unreadable:
    """A listing entry the job cannot use: a name that is not UTF-8, a size
    the server will not tell. Reported (when it concerns the Connection),
    never silently dropped, and never fetched under a guessed name."""

    name: str
    """As shown in messages: bytes that are not UTF-8 appear as \\xNN."""
    reason: str


@dataclass
class Listing:
    files: list[RemoteFile] = field(default_factory=list)
    unreadable: list[Unreadable] = field(default_factory=list)


def decode_name(raw: bytes) -> str | None:
    """A remote name as text, or None when it is not valid UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def shown_name(raw: bytes) -> str:
    """A remote name for messages and pattern matching: bytes that are not
    UTF-8 appear as \\xNN, so the name stays readable and printable."""
    return raw.decode("utf-8", "backslashreplace")


NOT_UTF8 = (
    "the name is not valid UTF-8, so it cannot land under a name the platform can "
    "read; skipped (rename it on the server)"
)


class TransferError(Exception):
    """Base of the errors the job reports; messages never hold a secret."""


class PermanentError(TransferError):
    """Retrying cannot help: wrong password, untrusted host key, bad folder."""


class TransientError(TransferError):
    """The connection failed; a new one may succeed."""


class FileError(TransferError):
    """One file failed (permission denied, vanished); the others go on."""


class Sink(Protocol):
    def write(self, data: bytes | memoryview, /) -> int: ...


class PullWorker(Protocol):
    def delete(self, file: RemoteFile) -> None: ...


@runtime_checkable
class StreamingWorker(PullWorker, Protocol):
    """Fetches one file at a time (FTP: one data connection per file)."""

    def fetch(self, file: RemoteFile, sink: Sink) -> None: ...


Finish = Callable[[RemoteFile, Sink, "TransferError | None"], None]


@runtime_checkable
class PipelinedWorker(PullWorker, Protocol):
    """Fetches many files at once on one session (SFTP)."""

    def fetch_many(
        self,
        files: Iterator[RemoteFile],
        start: Callable[[RemoteFile], Sink],
        finish: Finish,
        stopped: Callable[[], bool],
    ) -> None:
        """Opens a sink per file with `start` and hands each back once to
        `finish`: complete (error None), failed (a FileError) or cut off (a
        TransientError, raised again afterwards)."""


class PullClient(Protocol):
    def list_files(self) -> Listing: ...

    def worker(self) -> contextlib.AbstractContextManager[PullWorker]: ...

    def close(self) -> None: ...


class PushClient(Protocol):
    def remote_size(self, name: str) -> int | None: ...

    def upload(self, name: str, source: Path) -> None: ...

    def close(self) -> None: ...


def tls_context(insecure: bool) -> ssl.SSLContext:
    """Verified against the system CAs (SSL_CERT_FILE overrides them) unless
    the user explicitly turned verification off for a test server."""
    # Imported here, where TLS is used (FTP, IMAP, SMTP): an SFTP run does not
    # pay the 10 ms its import costs.
    import ssl

    context = ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


@contextlib.contextmanager
def closing_on_error(client: PullClient | PushClient) -> Iterator[None]:
    try:
        yield
    except BaseException:
        with contextlib.suppress(Exception):
            client.close()
        raise
