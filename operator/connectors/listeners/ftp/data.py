"""The FTP data connection: where an upload is settled.

An upload lands only when its data connection ended cleanly (for TLS, the
client's close_notify or the size it declared with ALLO); anything else
answers 426 and lands nothing. An exhausted passive port range refuses the
data connection with 425 instead of binding a random port."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import time
from typing import Any

from OpenSSL import SSL
from pyftpdlib.handlers import DTPHandler  # type: ignore[import-untyped]

try:  # pyftpdlib 2.x moved it; 1.5 exported it from handlers
    from pyftpdlib.handlers.ftp.dispatchers import (  # type: ignore[import-untyped]
        PassiveDTP,
    )
except ImportError:  # pragma: no cover
    from pyftpdlib.handlers import PassiveDTP

from connectors.listeners.core.report import report_landed
from connectors.listeners.ftp.filesystem import FtpUpload

log = logging.getLogger(__name__)


_DISCONNECTED = frozenset({errno.ECONNRESET, errno.ENOTCONN, errno.ESHUTDOWN,
                           errno.ECONNABORTED, errno.EPIPE, errno.ETIMEDOUT})

# Bytes read from a data connection per loop turn: pyftpdlib's 64 KiB default
# costs one Python round trip per 64 KiB; larger reads keep up with vsftpd.
DATA_READ_SIZE = 1024 * 1024


class PassivePortsExhausted(OSError):
    pass


class StrictPassiveDTP(PassiveDTP):  # type: ignore[misc]
    """PASV/EPSV that never leaves the configured port range."""

    def _in_range(self, port: int) -> bool:
        ports = self.cmd_channel.passive_ports
        return ports is None or port in ports

    def bind(self, addr: tuple[str, int]) -> None:
        if not self._in_range(addr[1]):
            # pyftpdlib's fallback to a kernel-chosen port: refuse instead.
            self.close()
            raise PassivePortsExhausted("passive port range exhausted")
        super().bind(addr)

    def listen(self, num: int) -> None:
        # Reached unbound when every port in the range gave EPERM.
        if not self._in_range(self.socket.getsockname()[1]):
            self.close()
            raise PassivePortsExhausted("passive port range exhausted")
        super().listen(num)


def client_vanished(control: Any) -> bool:
    """True when the control connection is closed or reset.

    Peeks at the TCP socket under any TLS layer: a killed client sends no TLS
    close_notify, only a FIN (or a reset).
    """
    try:
        fileno = control.fileno()
    except (OSError, AttributeError):
        return True
    if fileno < 0:
        return True
    try:
        with socket.socket(fileno=os.dup(fileno)) as raw:
            data = raw.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except (BlockingIOError, InterruptedError):
        return False
    except OSError:
        return True
    return data == b""


class LandingDTPMixin:
    """Lands or discards an upload when its data connection ends.

    The data connection's end is the only end-of-file marker FTP has, and a
    client killed mid-upload ends it too. A killed client's control connection
    closes at the same moment, but its FIN may be processed just after the
    data connection's. So the decision waits SETTLE_SECONDS, then lands the
    file only if the control connection is still there. The wait overlaps the
    fsync, which runs on a worker thread so the loop keeps serving others; the
    226 reply comes after landing, so a client that sees it can rely on the file.
    """

    ac_in_buffer_size = DATA_READ_SIZE
    # sendfile() count per loop turn for downloads (pyftpdlib: 64 KiB).
    ac_out_buffer_size = DATA_READ_SIZE
    SETTLE_SECONDS = 0.2
    POLL_SECONDS = 0.01

    receive: bool
    transfer_finished: bool
    file_obj: Any
    cmd_channel: Any
    _closed: bool
    _resp: tuple[str, Any] | None

    socket: Any
    _data_wrapper: Any
    tot_bytes_received: int
    _read_buffer: memoryview | None = None

    def handle_read(self) -> None:
        """Receives an upload into one reused buffer.

        pyftpdlib's handle_read calls recv(size), which allocates (and for 1 MiB,
        maps and unmaps) a new buffer per call; recv_into a reused one does not.
        TLS sockets and ASCII-mode transfers keep pyftpdlib's path.
        """
        upload = self.file_obj
        if (not isinstance(upload, FtpUpload) or self._data_wrapper is not None
                or type(self.socket) is not socket.socket):
            super().handle_read()  # type: ignore[misc]
            return
        if self._read_buffer is None:
            self._read_buffer = memoryview(bytearray(DATA_READ_SIZE))
        try:
            count = self.socket.recv_into(self._read_buffer)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as err:
            if err.errno not in _DISCONNECTED:
                raise
            # A reset is no end of file: the upload is incomplete.
            self._resp = ("426 Connection reset; transfer aborted.", log.info)
            self.close()
            return
        if count == 0:
            self.handle_close()  # type: ignore[attr-defined]
            return
        self.tot_bytes_received += count
        upload.write(self._read_buffer[:count])


    def ended_cleanly(self) -> bool:
        """Whether the data connection's end proves that every byte arrived.

        On TLS only the client's close_notify does: a reset or a bare FIN
        looks the same to pyftpdlib as a finished upload, and a reset makes
        the kernel discard what had not been read yet. Without close_notify,
        the size the client declared with ALLO, if it matches, proves it too.
        """
        if not isinstance(self.socket, SSL.Connection):
            return True
        if self.socket.get_shutdown() & SSL.RECEIVED_SHUTDOWN:
            return True
        declared = self.cmd_channel.stor_declared_size
        return declared is not None and declared == self.tot_bytes_received

    cmd: str | None

    def close(self) -> None:
        if self.cmd is None:
            # No command used this data connection (its STOR was refused, say):
            # pyftpdlib would answer its close with a stray "226", which the
            # client takes as the reply to its next command.
            self._resp = None
        upload = self.file_obj if not self._closed else None
        if isinstance(upload, FtpUpload) and not upload.closed and not upload.pending:
            if self.transfer_finished and not self.ended_cleanly():
                log.info("upload of %r ended without TLS close_notify after %d bytes: "
                         "discarded", upload.landing.name, self.tot_bytes_received)
                self.transfer_finished = False
                self._resp = ("426 Data connection closed without TLS close_notify; "
                              "upload discarded, send it again.", log.info)
            if self.transfer_finished:
                upload.pending = True
                self._resp = None  # answered once the upload has landed
                Settlement(self.cmd_channel, upload, self.SETTLE_SECONDS,
                           self.POLL_SECONDS).start()
            else:
                log.info("incomplete upload of %r discarded", upload.landing.name)
                upload.close()
        super().close()  # type: ignore[misc]


class Settlement:
    """Decides about one finished upload from the loop, without blocking it."""

    def __init__(self, control: Any, upload: FtpUpload, settle: float, poll: float) -> None:
        self.control = control
        self.upload = upload
        self.poll = poll
        self.deadline = time.monotonic() + settle
        self.synced = upload.landing.sync_in_background()

    def start(self) -> None:
        self._later(self.poll)

    def _later(self, seconds: float) -> None:
        self.control.ioloop.call_later(seconds, self._check, _errback=self._failed)

    def _check(self) -> None:
        if time.monotonic() < self.deadline or not self.synced.done():
            self._later(self.poll)
            return
        if self.control._closed or client_vanished(self.control.socket):
            log.info("client gone: upload of %r discarded", self.upload.landing.name)
            self.upload.discard()
            return
        try:
            self.synced.result()
            receipt = self.upload.commit()
        except OSError as err:
            log.error("could not land %r: %s", self.upload.landing.name, err.strerror)
            self.upload.discard()
            self.control.respond("451 The file could not be stored.")
            return
        self.control.landed.add(os.path.realpath(self.upload.landing.area.home / receipt.name))
        report_landed(self.control.reporter, self.upload.account, "ftp", [receipt],
                      self.control.peer)
        self.control.respond("226 Transfer complete.")

    def _failed(self) -> None:
        log.exception("landing %r failed", self.upload.landing.name)
        with contextlib.suppress(Exception):
            self.synced.result(timeout=60)  # the fd must outlive the fsync using it
        self.upload.discard()
        if not self.control._closed:
            self.control.respond("451 The file could not be stored.")


class LandingDTP(LandingDTPMixin, DTPHandler):  # type: ignore[misc]
    # pyftpdlib's loop calls handle_read_event, which DTPHandler binds to its own
    # handle_read at class creation: rebind it to ours. Only here: on TLS the
    # read event drives the handshake and the shutdown (SSLConnectionMixin).
    handle_read_event = LandingDTPMixin.handle_read


class TLSDataMixin:
    """FTPS data connections use the handler's `data_ssl_context` (TLS 1.2,
    see tls.pyopenssl_server_context), and a failed handshake is one log line."""

    cmd_channel: Any

    def secure_connection(self, ssl_context: Any) -> None:
        context = getattr(self.cmd_channel, "data_ssl_context", None) or ssl_context
        super().secure_connection(context)  # type: ignore[misc]
