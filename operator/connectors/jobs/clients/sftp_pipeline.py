"""Many SFTP downloads pipelined on one channel.

paramiko transfers one file per call: its requests for one file can overlap
(prefetch), but the next file starts only when the previous one is closed, and
each request and reply crosses paramiko's transport thread on its own, with a
lock, a condition and a GIL hand-over each. On a run of many small files that
per-message cost, not the network, sets the pace (bench/transfer.py measured
about 2.5 ms per 10 KB file, a third of OpenSSH's `sftp get -r`).

Here paramiko still does SSH (key exchange, host key check, encryption,
windows); this module speaks SFTP version 3 itself on the channel paramiko
opened and initialised:

- requests for many files (OPEN, then READs, CLOSE) go out together, many per
  SSH packet, as the replies come back;
- replies are parsed from large reads of the channel, not two reads per reply.

Draft-ietf-secsh-filexfer-02, section 6.1: a server may process requests in any
order except that those on one handle keep their order, and replies may come
in any order. So replies are matched by request id, and data that arrives
before an earlier part of its file is held until the gap is filled.

`Pipeline` is pure: it plans requests and interprets replies (their wire
format is in sftp_wire.py). `run_pipeline` moves bytes between it and a
channel.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import paramiko

from ...errors import describe
from .base import FileError, Finish, RemoteFile, Sink, TransferError, TransientError
from .sftp_wire import (
    FX_EOF,
    FXP_CLOSE,
    FXP_DATA,
    FXP_HANDLE,
    FXP_OPEN,
    FXP_READ,
    FXP_STATUS,
    ProtocolError,
    Reply,
    ReplyReader,
    encode_close,
    encode_open,
    encode_read,
    parse_status,
    parse_string,
    status_error,
)

# Bounds of what is asked for and not yet answered. OpenSSH's client keeps 64
# reads of 32 KiB in flight per file; here the bound is across files.
FILES_IN_FLIGHT = 64
BYTES_IN_FLIGHT = 16 << 20
READ_SIZE = 1 << 16
RECV_SIZE = 2 * BYTES_IN_FLIGHT


@dataclass(eq=False)
class _Download:
    file: RemoteFile
    path: str
    sink: Sink
    handle: bytes | None = None
    requested: int = 0
    """Bytes [0, requested) have been asked for."""
    written: int = 0
    """Bytes [0, written) have been passed to the sink."""
    early: dict[int, memoryview] = field(default_factory=dict)
    """Data that arrived before the bytes in front of it."""
    gaps: list[tuple[int, int]] = field(default_factory=list)
    """(offset, length) to ask for again after a short read."""
    pending: int = 0
    """Requests of this file not yet answered."""
    probed: bool = False
    """The read that reaches one byte past the listed size was sent."""
    at_end: bool = False
    """The end of the file was found at the listed size: a short read up to it,
    or, for an empty file, an end-of-file status."""
    error: FileError | None = None
    handed_back: bool = False
    """The sink went back to `finish`: complete, or with `error`."""
    closing: bool = False


@dataclass(frozen=True)
class _Request:
    download: _Download
    kind: int
    offset: int = 0
    length: int = 0


class Pipeline:
    """Plans the requests of many downloads and interprets their replies.

    No I/O: `requests()` returns the bytes to send now, `receive()` takes what
    the server sent. Sinks are opened with `start(file)` when a file's turn
    comes, and handed back to `finish(file, sink, error)` once: with no error
    when every byte up to the listed size arrived and a read past it found the
    end of the file; otherwise with the error (`abandon()` hands back the
    rest when the session ends early). A file that grew or shrank since the
    listing is an error: it is fetched whole on a later run.
    """

    def __init__(
        self,
        files: Iterator[RemoteFile],
        folder: str,
        start: Callable[[RemoteFile], Sink],
        finish: Finish,
        *,
        files_in_flight: int = FILES_IN_FLIGHT,
        bytes_in_flight: int = BYTES_IN_FLIGHT,
        read_size: int = READ_SIZE,
    ) -> None:
        self._files = files
        self._folder = folder
        self._start = start
        self._finish = finish
        self._files_in_flight = files_in_flight
        self._bytes_in_flight = bytes_in_flight
        self._read_size = read_size
        self._reader = ReplyReader()
        self._active: dict[RemoteFile, _Download] = {}
        self._requests: dict[int, _Request] = {}
        # Clear of the ids of paramiko's own requests (listing, deleting) on the session.
        self._next_id = 1 << 20
        self._outstanding_bytes = 0
        self._more_files = True

    @property
    def done(self) -> bool:
        return not self._more_files and not self._active and not self._requests

    def abandon(self, error: TransferError) -> None:
        """The session ended early: every sink not yet handed back goes back
        with `error`."""
        for download in list(self._active.values()):
            if not download.handed_back:
                self._hand_back(download, error)
        self._active.clear()
        self._requests.clear()
        self._more_files = False

    # ---- requests -------------------------------------------------------------------------

    def requests(self) -> bytes:
        out: list[bytes] = []
        self._admit(out)
        for download in list(self._active.values()):
            self._plan(download, out)
        return b"".join(out)

    def _register(self, request: _Request) -> int:
        """A new request id, and what it asked for."""
        request_id = self._next_id
        self._next_id = (self._next_id + 1) & 0xFFFFFFFF
        self._requests[request_id] = request
        request.download.pending += 1
        return request_id

    def _admit(self, out: list[bytes]) -> None:
        while self._more_files and len(self._active) < self._files_in_flight:
            file = next(self._files, None)
            if file is None:
                self._more_files = False
                return
            path = f"{self._folder.rstrip('/')}/{file.name}"
            download = _Download(file, path, self._start(file))
            self._active[file] = download
            out.append(encode_open(self._register(_Request(download, FXP_OPEN)), path))

    def _plan(self, download: _Download, out: list[bytes]) -> None:
        if download.handle is None or download.closing:
            return
        if not download.handed_back:
            self._plan_reads(download, out)
        if download.pending == 0 and download.handed_back:
            download.closing = True
            request_id = self._register(_Request(download, FXP_CLOSE))
            out.append(encode_close(request_id, download.handle))

    def _plan_reads(self, download: _Download, out: list[bytes]) -> None:
        handle = download.handle
        assert handle is not None
        size = download.file.size
        while self._outstanding_bytes < self._bytes_in_flight:
            if download.gaps:
                offset, length = download.gaps.pop()
            elif download.requested < size:
                offset = download.requested
                length = min(self._read_size, size - offset)
                download.requested += length
            elif not download.probed:
                offset, length = size, 0  # an empty file: only the probe below
            else:
                break
            if offset + length == size:
                # The read that reaches the listed size asks for one byte more. A
                # disk file answers a read with all it asks for up to end-of-file
                # (draft-02, 6.4): getting exactly the rest proves the file did
                # not grow, in the same request.
                length += 1
                download.probed = True
            if offset < size:
                self._outstanding_bytes += length
            request_id = self._register(_Request(download, FXP_READ, offset, length))
            out.append(encode_read(request_id, handle, offset, length))

    # ---- replies --------------------------------------------------------------------------

    def receive(self, data: bytes) -> None:
        for reply in self._reader.feed(data):
            request = self._requests.pop(reply.request_id, None)
            if request is None:
                raise ProtocolError(f"the server answered request {reply.request_id}, never sent")
            download = request.download
            download.pending -= 1
            if request.kind == FXP_READ and request.offset < download.file.size:
                self._outstanding_bytes -= request.length
            if request.kind == FXP_OPEN:
                self._opened(download, reply)
            elif request.kind == FXP_READ:
                self._read(download, request, reply)
            else:
                self._closed(download)

    def _opened(self, download: _Download, reply: Reply) -> None:
        if reply.kind == FXP_HANDLE:
            download.handle = bytes(parse_string(reply.body)[0])
            return
        code, message = self._expect_status(reply)
        self._fail(download, status_error(download.file.name, "opening", code, message))
        del self._active[download.file]  # nothing open to close

    def _read(self, download: _Download, request: _Request, reply: Reply) -> None:
        if download.error is not None:
            return
        name, size = download.file.name, download.file.size
        asked_end = request.offset + request.length
        if reply.kind == FXP_DATA:
            data, _ = parse_string(reply.body)
            end = request.offset + len(data)
            if not data or len(data) > request.length:
                self._fail(download, FileError(
                    f"{name}: the server answered a read of {request.length} bytes with "
                    f"{len(data)}"
                ))
            elif end > size:
                self._fail(download, FileError(
                    f"{name}: longer than the {size} bytes listed (still being written?); "
                    "it will be fetched again on the next run"
                ))
            else:
                if end == size and asked_end > size:
                    download.at_end = True  # a short read at the listed size: end-of-file
                elif end < asked_end:  # a short read before it: ask for the rest again
                    download.gaps.append((end, asked_end - end))
                self._deliver(download, request.offset, data)
        else:
            code, message = self._expect_status(reply)
            if code != FX_EOF:
                self._fail(download, status_error(name, "downloading", code, message))
            elif request.offset < size:
                self._fail(download, FileError(
                    f"{name}: shorter than the {size} bytes listed (changed on the server?); "
                    "it will be fetched again on the next run"
                ))
            else:
                download.at_end = True
        if download.error is None and download.at_end and download.written == size:
            self._hand_back(download, None)

    def _deliver(self, download: _Download, offset: int, data: memoryview) -> None:
        if offset != download.written:
            download.early[offset] = data
            return
        download.sink.write(data)
        download.written += len(data)
        while download.written in download.early:
            block = download.early.pop(download.written)
            download.sink.write(block)
            download.written += len(block)

    def _closed(self, download: _Download) -> None:
        # A failed CLOSE of a file opened for reading loses nothing.
        del self._active[download.file]

    def _fail(self, download: _Download, error: FileError) -> None:
        download.error = error
        download.early.clear()
        download.gaps.clear()
        self._hand_back(download, error)

    def _hand_back(self, download: _Download, error: TransferError | None) -> None:
        download.handed_back = True
        self._finish(download.file, download.sink, error)

    @staticmethod
    def _expect_status(reply: Reply) -> tuple[int, str]:
        if reply.kind != FXP_STATUS:
            raise ProtocolError(f"the server sent SFTP packet type {reply.kind} out of place")
        return parse_status(reply.body)


class Channel(Protocol):
    """What run_pipeline needs of a paramiko Channel."""

    def sendall(self, data: bytes, /) -> None: ...

    def recv(self, nbytes: int, /) -> bytes: ...


def run_pipeline(channel: Channel, pipeline: Pipeline, stopped: Callable[[], bool]) -> None:
    """Sends what the pipeline asks, feeds it the replies, until all files are
    done or `stopped()`. A lost session raises TransientError; an error of the
    local disk (from a sink) propagates as it is."""
    while not pipeline.done and not stopped():
        outgoing = pipeline.requests()
        with _session_errors():
            if outgoing:
                channel.sendall(outgoing)
            if pipeline.done:
                return
            data = channel.recv(RECV_SIZE)
        if not data:
            raise TransientError("the server closed the SFTP session")
        pipeline.receive(data)


@contextlib.contextmanager
def _session_errors() -> Iterator[None]:
    try:
        yield
    except TimeoutError:
        raise TransientError("the server stopped answering SFTP requests") from None
    except (OSError, EOFError, paramiko.SSHException) as exc:
        raise TransientError(f"connection lost: {describe(exc)}") from None
