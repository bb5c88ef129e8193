"""The channel buffer that replaces paramiko's array, checked against the
plain bytes it stands for. The buffered packet reads are exercised by every
SFTP test against OpenSSH (tests/integration/transfer, tests/integration/listeners)."""

from __future__ import annotations

import random

import paramiko
import pytest

from connectors import paramiko_speedups
from connectors.paramiko_speedups import ChunkBuffer


def test_chunk_buffer_behaves_like_the_bytes_it_holds() -> None:
    rng = random.Random(11)
    buffer, model = ChunkBuffer(), bytearray()
    for _ in range(5000):
        if rng.random() < 0.5:
            data = rng.randbytes(rng.choice((0, 1, 7, 100, 4096)))
            buffer.append(data)
            model += data
        else:
            limit = rng.choice((None, 0, 1, 50, 5000, 10**6))
            assert buffer.peek(limit) == bytes(model[:limit])
            del buffer[:limit]
            del model[:limit]
        assert len(buffer) == len(model)


def test_chunk_buffer_only_deletes_prefixes() -> None:
    buffer = ChunkBuffer()
    buffer.append(b"abc")
    with pytest.raises(TypeError):
        del buffer[1:2]


def test_installed_pipe_reads_what_was_fed_in_order() -> None:
    paramiko_speedups.install()
    pipe = paramiko.buffered_pipe.BufferedPipe()
    for part in (b"hello ", b"", b"world", b"!"):
        pipe.feed(part)
    assert len(pipe) == 12
    assert pipe.read(3) == b"hel"
    assert pipe.read(100) == b"lo world!"
    pipe.feed(b"tail")
    assert pipe.empty() == b"tail"
    pipe.close()
    assert pipe.read(10) == b""
