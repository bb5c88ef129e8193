"""Speed: paramiko's own SFTPServer reads one request at a time, copies each
packet several times and sends one SSH packet per reply. `FastSFTPServer`
keeps paramiko's dispatch for the rare requests but handles READ and WRITE
itself: it drains everything the transport has buffered in one `recv`, parses
requests in place, writes with `pwrite`, and sends the replies of one batch in
a single channel write. That cuts the thread hand-offs between the transport
thread and the SFTP thread from one per request to one per batch. Where a
file lands is decided in filesystem.py, not here."""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import time
from collections.abc import Callable
from typing import Any, cast

import paramiko
from paramiko.sftp import CMD_CLOSE, CMD_DATA, CMD_OPEN, CMD_READ, CMD_STATUS, CMD_WRITE

from connectors.listeners.sftp.auth import Session
from connectors.listeners.sftp.filesystem import (
    PartnerFilesystem,
    ReadHandle,
    Refused,
    UploadHandle,
)
from connectors.listeners.sftp.protocol import (
    MAX_READ,
    SFTP_BAD_MESSAGE,
    SFTP_EOF,
    SFTP_FAILURE,
    SFTP_OK,
    SFTP_PERMISSION_DENIED,
)

log = logging.getLogger(__name__)


def _status(request_number: int, code: int, message: str) -> bytes:
    text = message.encode("utf-8", "replace")
    body = struct.pack(">BII", CMD_STATUS, request_number, code)
    body += struct.pack(">I", len(text)) + text + struct.pack(">I", 0)
    return struct.pack(">I", len(body)) + body


_OK_MESSAGE = b"Success"
_OK_TAIL = struct.pack(">I", len(_OK_MESSAGE)) + _OK_MESSAGE + struct.pack(">I", 0)
_OK_LENGTH = 1 + 4 + 4 + len(_OK_TAIL)


class FastSFTPServer(paramiko.SFTPServer):
    """paramiko's SFTPServer with a batched request loop (see the module docstring)."""

    RECV_SIZE = 4 * 1024 * 1024

    # paramiko helpers that types-paramiko does not declare.
    _send_status: Callable[..., None]
    _send_handle_response: Callable[..., None]
    _convert_pflags: Callable[[int], int]
    _send_server_version: Callable[[], int]

    def __init__(self, channel: paramiko.Channel, name: str, server: Session,
                 sftp_si: type[PartnerFilesystem], *args: Any, **kwargs: Any) -> None:
        super().__init__(channel, name, server, sftp_si, *args, **kwargs)
        self.session = server
        self.filesystem = cast(PartnerFilesystem, self.server)
        self.channel = channel
        self._inbuf = bytearray()
        self._out: list[bytes] = []

    # paramiko's _read_all concatenates bytes one recv at a time; the version
    # exchange still goes through it, so make it linear.
    def _read_all(self, n: int) -> bytes:
        while len(self._inbuf) < n:
            chunk = self.channel.recv(self.RECV_SIZE)
            if not chunk:
                raise EOFError()
            self._inbuf += chunk
        out = bytes(self._inbuf[:n])
        del self._inbuf[:n]
        return out

    def _write_all(self, out: bytes) -> None:
        self._send(out)

    def _send(self, data: bytes) -> None:
        """Sends in packet-sized pieces: paramiko's sendall re-slices the whole
        remaining buffer after every packet, which is quadratic for a batch of
        replies (2 MiB of reads cost 64 MiB of copying)."""
        step = max(1024, int(getattr(self.channel, "out_max_packet_size", 32768)) - 64)
        if len(data) <= step:
            self.channel.sendall(data)
            return
        view = memoryview(data)
        for start in range(0, len(view), step):
            self.channel.sendall(bytes(view[start:start + step]))

    def start_subsystem(self, name: str, transport: paramiko.Transport,
                        channel: paramiko.Channel) -> None:
        self.sock = channel
        self.channel = channel
        self._send_server_version()
        try:
            self._serve()
        except EOFError:
            # The client ended the session: say it went well, as sshd does.
            # OpenSSH scp (SFTP mode) exits 1 after a good upload without it.
            with contextlib.suppress(OSError, EOFError, paramiko.SSHException):
                channel.send_exit_status(0)
        except (OSError, paramiko.SSHException) as err:
            log.debug("sftp session ended: %s", type(err).__name__)

    def _serve(self) -> None:
        buffer = self._inbuf
        while True:
            if self._out:
                # Nothing more is buffered: answer the whole batch at once.
                self._send(b"".join(self._out))
                self._out.clear()
            chunk = self.channel.recv(self.RECV_SIZE)
            if not chunk:
                raise EOFError()
            self.session.last_activity = time.monotonic()
            buffer += chunk
            consumed = self._handle_buffered(buffer)
            del buffer[:consumed]

    def _handle_buffered(self, buffer: bytearray) -> int:
        """Handles every complete request in `buffer`; returns bytes consumed."""
        view = memoryview(buffer)
        position = 0
        try:
            while len(buffer) - position >= 4:
                (size,) = struct.unpack_from(">I", buffer, position)
                if size == 0 or size > 1024 * 1024:
                    raise EOFError()  # garbage: no legitimate request is that large
                end = position + 4 + size
                if end > len(buffer):
                    break
                self._handle(view[position + 4:end])
                position = end
        finally:
            view.release()
        return position

    def _handle(self, packet: memoryview) -> None:
        kind = packet[0]
        (request_number,) = struct.unpack_from(">I", packet, 1)
        if kind == CMD_WRITE:
            self._write(request_number, packet)
        elif kind == CMD_READ:
            self._read(request_number, packet)
        else:
            self._flush()
            try:
                self._process(kind, request_number, paramiko.Message(bytes(packet[5:])))
            except Exception as err:
                log.debug("sftp request failed: %s", type(err).__name__)
                self._send_status(request_number, SFTP_FAILURE)

    def _flush(self) -> None:
        if self._out:
            self._send(b"".join(self._out))
            self._out.clear()

    @staticmethod
    def _handle_name(packet: memoryview, offset: int) -> tuple[bytes, int]:
        (length,) = struct.unpack_from(">I", packet, offset)
        return bytes(packet[offset + 4:offset + 4 + length]), offset + 4 + length

    def _write(self, request_number: int, packet: memoryview) -> None:
        handle_name, offset = self._handle_name(packet, 5)
        file_offset, length = struct.unpack_from(">QI", packet, offset)
        data = packet[offset + 12:offset + 12 + length]
        handle = self.file_table.get(handle_name)
        if handle is None:
            self._out.append(_status(request_number, SFTP_BAD_MESSAGE, "Invalid handle"))
            return
        if isinstance(handle, UploadHandle):
            try:
                handle.landing.pwrite(file_offset, data)
            except OSError as err:
                self._out.append(_status(request_number, SFTP_FAILURE, err.strerror or "error"))
                return
            self._out.append(struct.pack(">IBII", _OK_LENGTH, CMD_STATUS, request_number,
                                         SFTP_OK) + _OK_TAIL)
            return
        self._out.append(_status(request_number, SFTP_PERMISSION_DENIED, "Permission denied"))

    def _read(self, request_number: int, packet: memoryview) -> None:
        handle_name, offset = self._handle_name(packet, 5)
        file_offset, length = struct.unpack_from(">QI", packet, offset)
        handle = self.file_table.get(handle_name)
        if not isinstance(handle, ReadHandle):
            self._out.append(_status(request_number, SFTP_PERMISSION_DENIED,
                                     "not open for reading"))
            return
        try:
            data = os.pread(handle.fd, min(length, MAX_READ), file_offset)
        except OSError as err:
            self._out.append(_status(request_number, SFTP_FAILURE, err.strerror or "error"))
            return
        if not data:
            self._out.append(_status(request_number, SFTP_EOF, "End of file"))
            return
        handle.served += len(data)
        self._out.append(struct.pack(">IBII", 9 + len(data), CMD_DATA, request_number, len(data)))
        self._out.append(data)

    def _process(self, t: int, request_number: int, msg: paramiko.Message) -> None:
        if t == CMD_OPEN:
            self._open(request_number, msg)
        elif t == CMD_CLOSE:
            self._close(request_number, msg)
        else:
            base: Any = super()
            base._process(t, request_number, msg)

    def _open(self, request_number: int, msg: paramiko.Message) -> None:
        path = msg.get_text()
        flags = self._convert_pflags(msg.get_int())
        try:
            handle = self.filesystem.open_handle(path, flags)
        except Refused as refused:
            self._send_status(request_number, refused.code, refused.message)
            return
        except OSError as err:
            self._send_status(request_number, self.convert_errno(err.errno or 0))
            return
        self._send_handle_response(request_number, handle)

    def _close(self, request_number: int, msg: paramiko.Message) -> None:
        """paramiko answers OK to every close; ours lands an upload first and
        reports a failure to land as an error, so the client knows."""
        name = msg.get_binary()
        if name in self.folder_table:
            del self.folder_table[name]
            self._send_status(request_number, SFTP_OK)
            return
        handle = self.file_table.pop(name, None)
        if handle is None:
            self._send_status(request_number, SFTP_BAD_MESSAGE, "Invalid handle")
            return
        if not isinstance(handle, UploadHandle):
            handle.close()
            if isinstance(handle, ReadHandle) and handle.complete:
                self.filesystem.downloaded(handle)
            self._send_status(request_number, SFTP_OK)
            return
        try:
            receipt = handle.landing.commit()
        except OSError as err:
            log.error("could not land %r: %s", handle.landing.name, err.strerror)
            self._send_status(request_number, SFTP_FAILURE, "the file could not be stored")
            return
        self.filesystem.landed_upload(handle, receipt)
        self._send_status(request_number, SFTP_OK)
