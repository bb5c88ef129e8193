"""The SFTP listener, on paramiko.

One thread accepts connections; each connection gets a paramiko Transport
(its own thread, which does the crypto) and a thread that runs the SFTP
subsystem. Partners authenticate with a password or a public key from the
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
from connectors.listeners.sftp.auth import Session, SftpContext
from connectors.listeners.sftp.filesystem import PartnerFilesystem
from connectors.listeners.sftp.protocol import CIPHERS, KEX, MACS, offered
from connectors.listeners.sftp.speedups import FastSFTPServer

log = logging.getLogger(__name__)


def load_host_key(path: Path) -> paramiko.PKey:
    """The host key from the Secret-mounted file; never generated here, so that
    it stays the same across restarts and replicas."""
    return paramiko.PKey.from_path(path)


class SftpListener:
    """Accepts connections and serves each in its own threads."""

    def __init__(self, context: SftpContext, address: str, port: int) -> None:
        self.context = context
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
            threading.Thread(target=self._serve_connection, args=(connection, address),
                             name=f"sftp-{address}", daemon=True).start()

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

    def _serve_connection(self, connection: socket.socket, address: str) -> None:
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
        session = Session(self.context, address)
        with self._lock:
            self._transports.add(transport)
        try:
            transport.start_server(server=session)
            self._watch(transport, session)
        except (paramiko.SSHException, EOFError, OSError) as err:
            log.info("connection from %s ended: %s", address, type(err).__name__)
        finally:
            transport.close()
            session.release()
            with self._lock:
                self._transports.discard(transport)

    def _watch(self, transport: paramiko.Transport, session: Session,
               clock: Callable[[], float] = time.monotonic) -> None:
        """Waits for the connection to end; closes it after the idle timeout."""
        timeout = self.context.settings.idle_timeout
        while transport.is_active():
            transport.join(timeout=1.0)
            if timeout > 0 and clock() - session.last_activity > timeout:
                log.info("closing idle connection from %s", session.address)
                transport.close()
                return
