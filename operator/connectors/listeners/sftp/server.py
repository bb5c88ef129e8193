"""The SFTP listener, on paramiko.

One thread accepts connections; each connection gets a paramiko Transport
(its own thread, which does the crypto) and a thread that runs the SFTP
subsystem. A connection past the listener's cap (core/capacity.py) is
refused before its key exchange (refusal.py), one not logged in within the
login grace time is closed. Partners authenticate with a password or a public key from the
account table (auth.py) and see their home as `/` (filesystem.py); reads and
writes take the fast path of speedups.py.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko

from connectors import paramiko_speedups
from connectors.listeners.core.capacity import ConnectionCap, Ticket
from connectors.listeners.sftp import refusal
from connectors.listeners.sftp.auth import Session, SftpContext
from connectors.listeners.sftp.filesystem import PartnerFilesystem
from connectors.listeners.sftp.protocol import CIPHERS, KEX, MACS, offered
from connectors.listeners.sftp.speedups import FastSFTPServer

log = logging.getLogger(__name__)
# Refusals under way at once, each on its own short-lived thread; past that a
# connection is simply closed.
MAX_REFUSING = 16


def load_host_key(path: Path) -> paramiko.PKey:
    """The host key from the Secret-mounted file; never generated here, so that
    it stays the same across restarts and replicas."""
    return paramiko.PKey.from_path(path)


class SftpListener:
    """Accepts connections and serves each in its own threads."""

    def __init__(self, context: SftpContext, address: str, port: int,
                 cap: ConnectionCap | None = None) -> None:
        self.context = context
        self.cap = cap or ConnectionCap("sftp", context.settings.limits)
        self._refusing = threading.BoundedSemaphore(MAX_REFUSING)
        paramiko_speedups.install()
        self.socket = socket.create_server((address, port), backlog=128, reuse_port=False)
        self._stop = threading.Event()
        self._transports: set[paramiko.Transport] = set()
        self._lock = threading.Lock()

    @property
    def port(self) -> int:
        port: int = self.socket.getsockname()[1]
        return port

    def serve_forever(self) -> None:
        self.socket.settimeout(1.0)
        while not self._stop.is_set():
            try:
                connection, peer = self.socket.accept()
            except TimeoutError:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                raise
            address = str(peer[0])
            if self.context.defender.banned(address):
                # Banned: drop before any key exchange spends CPU on it.
                connection.close()
                continue
            ticket = self.cap.open()
            if ticket is None:
                self._refuse(connection, address)
                continue
            threading.Thread(target=self._serve_connection, args=(connection, address, ticket),
                             name=f"sftp-{address}", daemon=True).start()

    def _refuse(self, connection: socket.socket, address: str) -> None:
        if not self._refusing.acquire(blocking=False):
            connection.close()
            return

        def refuse() -> None:
            try:
                refusal.refuse(connection)
            finally:
                self._refusing.release()

        threading.Thread(target=refuse, name=f"sftp-refuse-{address}", daemon=True).start()

    def request_stop(self) -> None:
        """Safe from a signal handler: the accept loop notices within a second."""
        self._stop.set()

    def shutdown(self) -> None:
        self._stop.set()
        self.socket.close()
        with self._lock:
            transports = list(self._transports)
        for transport in transports:
            transport.close()

    def _serve_connection(self, connection: socket.socket, address: str,
                          ticket: Ticket) -> None:
        try:
            self._serve(connection, address, ticket)
        finally:
            ticket.close()

    def _serve(self, connection: socket.socket, address: str, ticket: Ticket) -> None:
        connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        settings = self.context.settings
        transport = paramiko.Transport(
            connection,
            default_window_size=settings.window_size,
            default_max_packet_size=settings.max_packet_size,
        )
        transport.add_server_key(self.context.host_key)
        options = transport.get_security_options()
        known: Any = paramiko.Transport
        options.ciphers = offered(settings.ciphers or CIPHERS, known._preferred_ciphers)
        options.digests = offered(MACS, known._preferred_macs)
        options.kex = offered(KEX, known._preferred_kex)
        transport.set_subsystem_handler("sftp", FastSFTPServer, PartnerFilesystem)
        session = Session(self.context, address, ticket)
        with self._lock:
            self._transports.add(transport)
        try:
            # With an event, start_server returns at once: the login grace time
            # runs from here, through the key exchange (which paramiko bounds
            # by its banner and handshake timeouts too).
            transport.start_server(event=threading.Event(), server=session)
            self._watch(transport, session, ticket)
            error = transport.get_exception()
            if error is not None:
                log.info("connection from %s ended: %s", address, type(error).__name__)
        except (paramiko.SSHException, EOFError, OSError) as err:
            log.info("connection from %s ended: %s", address, type(err).__name__)
        finally:
            transport.close()
            session.release()
            with self._lock:
                self._transports.discard(transport)

    def _watch(self, transport: paramiko.Transport, session: Session, ticket: Ticket,
               clock: Callable[[], float] = time.monotonic) -> None:
        """Waits for the connection to end; closes it after the idle timeout, or
        when it has not logged in within the login grace time."""
        timeout = self.context.settings.idle_timeout
        while transport.is_active():
            transport.join(timeout=1.0)
            if ticket.grace_expired():
                ticket.expire()
                transport.close()
                return
            if timeout > 0 and clock() - session.last_activity > timeout:
                log.info("closing idle connection from %s", session.address)
                transport.close()
                return
