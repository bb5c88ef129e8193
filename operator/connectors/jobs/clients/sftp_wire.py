"""SFTP version 3 on the wire, as the pipelined downloads speak it: the packet
types and status codes they use, encoding OPEN, READ and CLOSE requests, and
cutting a byte stream into replies (draft-ietf-secsh-filexfer-02)."""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

from .base import FileError, TransientError

# Packet types and status codes of SFTP version 3.
FXP_OPEN = 3
FXP_CLOSE = 4
FXP_READ = 5
FXP_STATUS = 101
FXP_HANDLE = 102
FXP_DATA = 103
FX_OK = 0
FX_EOF = 1
FX_NO_SUCH_FILE = 2
FX_PERMISSION_DENIED = 3
FXF_READ = 0x01

_HEADER = struct.Struct(">IBI")  # length, type, request id
_U32 = struct.Struct(">I")
_READ_TAIL = struct.Struct(">QI")


def _string(data: bytes) -> bytes:
    return _U32.pack(len(data)) + data


def _packet(kind: int, request_id: int, body: bytes) -> bytes:
    return _HEADER.pack(len(body) + 5, kind, request_id) + body


def encode_open(request_id: int, path: str) -> bytes:
    # pflags READ, and empty attributes (flags 0).
    body = _string(path.encode()) + _U32.pack(FXF_READ) + _U32.pack(0)
    return _packet(FXP_OPEN, request_id, body)


def encode_read(request_id: int, handle: bytes, offset: int, length: int) -> bytes:
    return _packet(FXP_READ, request_id, _string(handle) + _READ_TAIL.pack(offset, length))


def encode_close(request_id: int, handle: bytes) -> bytes:
    return _packet(FXP_CLOSE, request_id, _string(handle))


@dataclass(frozen=True)
class Reply:
    kind: int
    request_id: int
    body: memoryview
    """After the request id: a status's code and message, a handle or data,
    each still with its length prefix. A view into what the channel returned:
    file data reaches the sink without a copy."""


class ProtocolError(TransientError):
    """The server sent something that is not SFTP; the session is dropped."""


class ReplyReader:
    """Cuts a byte stream into SFTP replies.

    Replies are views into the chunks fed in; only a reply that straddles two
    chunks is copied, to join its parts. Copying every byte into one buffer and
    out again cost a tenth of a large download's CPU time."""

    MAX_PACKET = 1 << 24  # paramiko and OpenSSH refuse larger packets too

    def __init__(self) -> None:
        self._rest = b""
        """The start of a reply whose end has not arrived yet."""

    def feed(self, data: bytes) -> Iterator[Reply]:
        view = memoryview(data)
        if self._rest:
            packet, view = self._complete(view)
            if packet is None:
                return
            yield self._reply(packet, 0)
        position = 0
        end = len(view)
        while end - position >= 9:
            length = self._length(view, position)
            if end - position < 4 + length:
                break
            yield self._reply(view, position)
            position += 4 + length
        self._rest = bytes(view[position:])

    def _complete(self, view: memoryview) -> tuple[memoryview | None, memoryview]:
        """Joins the stored start of a reply with its end from `view`: (the
        reply, or None while it is still incomplete; what follows it)."""
        rest = self._rest
        if len(rest) < 9:
            take = 9 - len(rest)
            rest, view = rest + bytes(view[:take]), view[take:]
            if len(rest) < 9:
                self._rest = rest
                return None, view
        missing = 4 + self._length(memoryview(rest), 0) - len(rest)
        if len(view) < missing:
            self._rest = rest + bytes(view)
            return None, view[len(view) :]
        self._rest = b""
        return memoryview(rest + bytes(view[:missing])), view[missing:]

    def _length(self, view: memoryview, position: int) -> int:
        (length,) = _U32.unpack_from(view, position)
        if length > self.MAX_PACKET or length < 5:
            raise ProtocolError(f"the server sent an SFTP packet of {length} bytes")
        return int(length)

    @staticmethod
    def _reply(view: memoryview, position: int) -> Reply:
        length, kind, request_id = _HEADER.unpack_from(view, position)
        return Reply(kind, request_id, view[position + 9 : position + 4 + length])


def parse_string(body: memoryview, at: int = 0) -> tuple[memoryview, int]:
    """An SFTP string at `at`: (a view of its bytes, the offset after it)."""
    if len(body) < at + 4:
        raise ProtocolError("the server sent a truncated SFTP reply")
    (length,) = _U32.unpack_from(body, at)
    if len(body) < at + 4 + length:
        raise ProtocolError("the server sent a truncated SFTP reply")
    return body[at + 4 : at + 4 + length], at + 4 + length


def parse_status(body: memoryview) -> tuple[int, str]:
    if len(body) < 4:
        raise ProtocolError("the server sent a truncated SFTP status")
    (code,) = _U32.unpack_from(body)
    message = b""
    if len(body) >= 8:  # version 3 servers add a message; some older ones do not
        message = bytes(parse_string(body, 4)[0])
    return code, message.decode("utf-8", "replace")


def status_error(name: str, what: str, code: int, message: str) -> FileError:
    if code == FX_NO_SUCH_FILE:
        return FileError(f"{what} {name}: no such file (removed since it was listed?)")
    if code == FX_PERMISSION_DENIED:
        return FileError(f"{what} {name}: permission denied")
    return FileError(f"{what} {name}: the server answered {message or f'status {code}'}")
