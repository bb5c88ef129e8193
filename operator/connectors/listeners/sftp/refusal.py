"""Refusing an SSH connection the listener has no room for (core/capacity.py).

sshd past MaxStartups writes the line "Exceeded MaxStartups" before its
version string and closes: OpenSSH's client then says only that the remote
host closed the connection during the identification exchange. Here the
refusal is an SSH disconnect with the reason made for it, RFC 4253's
SSH_DISCONNECT_TOO_MANY_CONNECTIONS (12), which every client shows in its own
words: OpenSSH prints `Received disconnect from HOST port PORT:12: Too many
connections, try again later`. It goes right after the version strings,
before the key exchange, so a refusal costs no cryptography: an unencrypted
packet, as the protocol allows before the first key exchange, built by
paramiko's own Packetizer.
"""

from __future__ import annotations

import logging
import socket
import time

import paramiko
from paramiko.common import cMSG_DISCONNECT
from paramiko.message import Message
from paramiko.packet import Packetizer

from connectors.listeners.core.capacity import TOO_MANY

log = logging.getLogger(__name__)

DISCONNECT_TOO_MANY_CONNECTIONS = 12
# What paramiko's Transport announces, so that a refusal looks like the server.
VERSION = f"SSH-2.0-paramiko_{paramiko.__version__}"


def refuse(connection: socket.socket, timeout: float = 5.0) -> None:
    """Says "too many connections" the SSH way, then closes `connection`."""
    try:
        connection.settimeout(timeout)
        connection.sendall(f"{VERSION}\r\n".encode())
        message = Message()
        message.add_byte(cMSG_DISCONNECT)
        message.add_int(DISCONNECT_TOO_MANY_CONNECTIONS)
        message.add_string(TOO_MANY)
        message.add_string("")  # language tag
        Packetizer(connection).send_message(message)
        connection.shutdown(socket.SHUT_WR)
        # Read what the client sends meanwhile (its version, its key exchange
        # offer) until it hangs up: a socket closed with unread data resets the
        # connection, and the reset could overtake the message.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and connection.recv(4096):
            pass
    except OSError as err:
        log.debug("refusing a connection: %s", type(err).__name__)
    finally:
        connection.close()
