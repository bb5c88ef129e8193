"""The pipelined SFTP download planner, driven by scripted replies.

Pipeline does no I/O: it turns files into request bytes and reply bytes into
sink writes, so the protocol cases a real server rarely shows (short reads,
replies out of order, a file that grows or shrinks after listing) are played
here byte for byte. The same code against OpenSSH is covered by
tests/integration/transfer/test_transfer_sftp.py.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field

import pytest

from connectors.jobs.clients.base import FileError, RemoteFile, TransferError
from connectors.jobs.clients.sftp_pipeline import Pipeline
from connectors.jobs.clients.sftp_wire import (
    FX_EOF,
    FX_PERMISSION_DENIED,
    FXP_CLOSE,
    FXP_DATA,
    FXP_HANDLE,
    FXP_OPEN,
    FXP_READ,
    FXP_STATUS,
    ProtocolError,
    ReplyReader,
)


def string(data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + data


def reply(kind: int, request_id: int, body: bytes) -> bytes:
    return struct.pack(">IBI", len(body) + 5, kind, request_id) + body


def status(request_id: int, code: int, text: str = "") -> bytes:
    body = struct.pack(">I", code) + string(text.encode()) + string(b"")
    return reply(FXP_STATUS, request_id, body)


@dataclass
class Request:
    kind: int
    request_id: int
    path: str = ""
    handle: bytes = b""
    offset: int = 0
    length: int = 0


def parse_requests(data: bytes) -> list[Request]:
    requests = []
    at = 0
    while at < len(data):
        length, kind, request_id = struct.unpack_from(">IBI", data, at)
        body = data[at + 9 : at + 4 + length]
        at += 4 + length
        (size,) = struct.unpack_from(">I", body)
        first = body[4 : 4 + size]
        if kind == FXP_OPEN:
            requests.append(Request(kind, request_id, path=first.decode()))
        elif kind == FXP_READ:
            offset, count = struct.unpack_from(">QI", body, 4 + size)
            requests.append(Request(kind, request_id, handle=first, offset=offset, length=count))
        else:
            requests.append(Request(kind, request_id, handle=first))
    return requests


@dataclass
class Server:
    """Answers like an SFTP server holding `files`, with knobs for misbehaviour."""

    files: dict[str, bytes]
    max_read: int = 1 << 30
    denied: set[str] = field(default_factory=set)
    handles: dict[bytes, str] = field(default_factory=dict)
    opened: int = 0
    reads: int = 0
    most_open: int = 0
    closed: list[str] = field(default_factory=list)

    def answer(self, request: Request) -> bytes:
        if request.kind == FXP_OPEN:
            name = request.path.rsplit("/", 1)[-1]
            if name in self.denied:
                return status(request.request_id, FX_PERMISSION_DENIED, "Permission denied")
            handle = f"h{self.opened}".encode()
            self.opened += 1
            self.handles[handle] = name
            self.most_open = max(self.most_open, len(self.handles))
            return reply(FXP_HANDLE, request.request_id, string(handle))
        name = self.handles[request.handle]
        if request.kind == FXP_CLOSE:
            del self.handles[request.handle]
            self.closed.append(name)
            return status(request.request_id, 0)
        self.reads += 1
        end = request.offset + min(request.length, self.max_read)
        data = self.files[name][request.offset : end]
        if not data:
            return status(request.request_id, FX_EOF, "End of file")
        return reply(FXP_DATA, request.request_id, string(data))


class Sink:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> int:
        self.data += data
        return len(data)


@dataclass
class Outcome:
    done: dict[str, bytes] = field(default_factory=dict)
    failed: dict[str, TransferError] = field(default_factory=dict)


def run(
    pipeline_files: list[RemoteFile],
    server: Server,
    *,
    shuffle: random.Random | None = None,
    chunk: int | None = None,
    **limits: int,
) -> Outcome:
    """Plays the pipeline against `server` until it is done: replies to each
    round of requests, optionally in shuffled order and cut into `chunk`-byte
    pieces, as a channel may deliver them."""
    outcome = Outcome()

    def finish(file: RemoteFile, sink: object, error: TransferError | None) -> None:
        assert file.name not in outcome.done
        assert file.name not in outcome.failed
        assert isinstance(sink, Sink)
        if error is None:
            outcome.done[file.name] = bytes(sink.data)
        else:
            outcome.failed[file.name] = error

    pipeline = Pipeline(iter(pipeline_files), "/in", lambda file: Sink(), finish, **limits)
    for _ in range(100_000):
        if pipeline.done:
            return outcome
        answers = [server.answer(r) for r in parse_requests(pipeline.requests())]
        if shuffle is not None:
            shuffle.shuffle(answers)
        stream = b"".join(answers)
        step = chunk or len(stream) or 1
        for at in range(0, len(stream), step):
            pipeline.receive(stream[at : at + step])
    raise AssertionError("the pipeline never finished")


def listed(files: dict[str, bytes]) -> list[RemoteFile]:
    return [RemoteFile(name, len(data), 0) for name, data in files.items()]


def test_every_file_arrives_whole_and_every_handle_is_closed() -> None:
    files = {f"f{i}.csv": random.randbytes(i * 7919 % 200_000) for i in range(40)}
    server = Server(files)
    outcome = run(listed(files), server, read_size=1 << 16)
    assert outcome.done == files
    assert outcome.failed == {}
    assert sorted(server.closed) == sorted(files)
    assert server.handles == {}


def test_a_small_file_costs_one_read_which_also_proves_its_end() -> None:
    files = {f"f{i}.csv": random.randbytes(100 + i) for i in range(10)}
    server = Server(files)
    outcome = run(listed(files), server)
    assert outcome.done == files
    assert server.reads == 10


def test_replies_out_of_order_and_in_pieces_still_give_the_bytes_in_order() -> None:
    files = {f"f{i}.csv": random.randbytes(300_000 + i) for i in range(5)}
    outcome = run(listed(files), Server(files), shuffle=random.Random(7), chunk=1000)
    assert outcome.done == files


def test_short_reads_are_asked_for_again() -> None:
    files = {"a.csv": random.randbytes(500_000), "b.csv": random.randbytes(10)}
    outcome = run(listed(files), Server(files, max_read=4096), shuffle=random.Random(3))
    assert outcome.done == files


def test_a_file_that_grew_since_listing_fails_alone() -> None:
    files = {"grew.csv": b"x" * 2000, "ok.csv": b"y" * 100}
    files_listed = [RemoteFile("grew.csv", 1000, 0), RemoteFile("ok.csv", 100, 0)]
    server = Server(files)
    outcome = run(files_listed, server)
    assert outcome.done == {"ok.csv": files["ok.csv"]}
    assert isinstance(outcome.failed["grew.csv"], FileError)
    assert "longer than the 1000 bytes listed" in str(outcome.failed["grew.csv"])
    assert sorted(server.closed) == ["grew.csv", "ok.csv"]


def test_a_file_that_shrank_since_listing_fails_alone() -> None:
    files = {"shrank.csv": b"x" * 10, "ok.csv": b"y" * 100}
    files_listed = [RemoteFile("shrank.csv", 70_000, 0), RemoteFile("ok.csv", 100, 0)]
    outcome = run(files_listed, Server(files))
    assert outcome.done == {"ok.csv": files["ok.csv"]}
    assert "shorter than the 70000 bytes listed" in str(outcome.failed["shrank.csv"])


def test_a_file_that_cannot_be_opened_fails_alone_with_the_reason() -> None:
    files = {"locked.csv": b"x", "ok.csv": b"y"}
    server = Server(files, denied={"locked.csv"})
    outcome = run(listed(files), server)
    assert outcome.done == {"ok.csv": b"y"}
    assert str(outcome.failed["locked.csv"]) == "opening locked.csv: permission denied"
    assert server.closed == ["ok.csv"]


def test_empty_file_is_confirmed_by_end_of_file() -> None:
    outcome = run([RemoteFile("empty.csv", 0, 0)], Server({"empty.csv": b""}))
    assert outcome.done == {"empty.csv": b""}


def test_open_files_and_requested_bytes_stay_within_bounds() -> None:
    files = {f"f{i}.csv": random.randbytes(50_000) for i in range(100)}
    server = Server(files)
    pipeline = Pipeline(
        iter(listed(files)), "/in", lambda file: Sink(), lambda *a: None,
        files_in_flight=8, bytes_in_flight=100_000, read_size=16_384,
    )
    while not pipeline.done:
        requests = parse_requests(pipeline.requests())
        assert len([r for r in requests if r.kind == FXP_OPEN]) + len(server.handles) <= 8
        asked = sum(r.length for r in requests if r.kind == FXP_READ and r.length > 1)
        assert asked <= 100_000 + 16_384
        pipeline.receive(b"".join(server.answer(r) for r in requests))
    assert server.most_open <= 8
    assert len(server.closed) == 100


def test_abandon_hands_back_every_unfinished_file() -> None:
    files = {f"f{i}.csv": b"z" * 100 for i in range(10)}
    handed: list[str] = []
    pipeline = Pipeline(
        iter(listed(files)), "/in", lambda file: Sink(),
        lambda file, sink, error: handed.append(file.name), files_in_flight=4,
    )
    pipeline.requests()
    pipeline.abandon(TransferError("cut"))
    assert sorted(handed) == ["f0.csv", "f1.csv", "f2.csv", "f3.csv"]
    assert pipeline.done


def test_a_reply_to_no_request_is_a_protocol_error() -> None:
    pipeline = Pipeline(iter([]), "/in", lambda file: Sink(), lambda *a: None)
    with pytest.raises(ProtocolError):
        pipeline.receive(status(99, 0))


def test_reader_refuses_a_packet_length_no_server_sends() -> None:
    with pytest.raises(ProtocolError):
        list(ReplyReader().feed(struct.pack(">IBI", 1 << 30, FXP_DATA, 1)))
