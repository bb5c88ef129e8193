"""TLS settings of the listeners: Mozilla's "intermediate" server profile.

TLS 1.2 and 1.3 only. With TLS 1.2, only ECDHE or DHE key exchange (forward
secrecy) with AES-GCM or ChaCha20-Poly1305: no RSA key exchange, no CBC, no
SHA-1 MACs. TLS 1.3 suites are all acceptable. One list, used by the FTP
listener (pyOpenSSL, through pyftpdlib) and the SMTP listener (the standard
library's ssl module), so that both offer exactly the same.
"""

from __future__ import annotations

import logging
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

from OpenSSL import SSL

from connectors.planning.credentials import certificate_facts

log = logging.getLogger(__name__)

# https://ssl-config.mozilla.org/ "intermediate", TLS 1.2 part (the order is theirs).
INTERMEDIATE_CIPHERS = ":".join((
    "ECDHE-ECDSA-AES128-GCM-SHA256",
    "ECDHE-RSA-AES128-GCM-SHA256",
    "ECDHE-ECDSA-AES256-GCM-SHA384",
    "ECDHE-RSA-AES256-GCM-SHA384",
    "ECDHE-ECDSA-CHACHA20-POLY1305",
    "ECDHE-RSA-CHACHA20-POLY1305",
    "DHE-RSA-AES128-GCM-SHA256",
    "DHE-RSA-AES256-GCM-SHA384",
    "DHE-RSA-CHACHA20-POLY1305",
))


def pyopenssl_server_context(cert_file: Path, key_file: Path, *,
                             tls12_only: bool = False) -> SSL.Context:
    """A pyOpenSSL server context with the intermediate profile.

    `tls12_only` caps the protocol at TLS 1.2 and turns session tickets off:
    for FTPS data connections. A TLS 1.3 server sends its session tickets
    after the handshake; a client that only uploads never reads them, so its
    close() finds unread data and the kernel answers with a reset instead of a
    FIN, which discards whatever the server had not read yet: the tail of the
    upload. A TLS 1.2 server sends nothing after the handshake. (OpenSSL's
    SSL_CTX_set_num_tickets would keep TLS 1.3, but pyOpenSSL does not expose it.)
    """
    context = SSL.Context(SSL.TLS_SERVER_METHOD)
    context.set_min_proto_version(SSL.TLS1_2_VERSION)
    if tls12_only:
        context.set_max_proto_version(SSL.TLS1_2_VERSION)
    context.set_cipher_list(INTERMEDIATE_CIPHERS.encode())
    context.set_options(SSL.OP_NO_COMPRESSION | SSL.OP_NO_RENEGOTIATION | SSL.OP_NO_TICKET)
    context.use_certificate_chain_file(str(cert_file))
    context.use_privatekey_file(str(key_file))
    context.check_privatekey()
    return context


def stdlib_server_context(cert_file: Path, key_file: Path) -> ssl.SSLContext:
    """The same profile for servers built on the standard library (aiosmtpd)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_ciphers(INTERMEDIATE_CIPHERS)
    context.options |= ssl.OP_NO_COMPRESSION
    context.load_cert_chain(cert_file, key_file)
    return context


def certificate_fingerprint(cert_file: Path) -> str:
    """SHA-256 of the first certificate of a PEM file, as `openssl x509
    -fingerprint -sha256` prints it (and status.endpoint shows it)."""
    return certificate_facts(cert_file.read_text()).sha256


class CertificateReloader:
    """Notices a renewed certificate, so that new handshakes present it while
    sessions in progress go on undisturbed (a connection keeps what it was set
    up with).

    On a change, each subscriber builds fresh contexts and puts them where new
    connections take theirs from; a context in use is never changed, since
    OpenSSL does not allow that while another thread makes a connection from it.

    Kubernetes replaces a mounted Secret's files together (an atomic swap of
    the `..data` link), and cert-manager renews ahead of expiry: polling every
    `poll_seconds` is soon enough. A pair that does not load (a half-written
    file, a key that does not match) is ignored until the next look."""

    def __init__(self, cert_file: Path, key_file: Path, poll_seconds: float = 30.0) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.poll_seconds = poll_seconds
        self._subscribers: list[Callable[[], None]] = []
        self._seen = self._contents()
        self._stop = threading.Event()
        log.info("TLS certificate in use: SHA256 %s", certificate_fingerprint(cert_file))

    def subscribe(self, renew: Callable[[], None]) -> None:
        self._subscribers.append(renew)

    def check(self) -> bool:
        """Renews when the files changed; True when a new pair took effect."""
        contents = self._contents()
        if contents is None or contents == self._seen:
            return False
        try:
            stdlib_server_context(self.cert_file, self.key_file)  # a pair that loads
            for renew in self._subscribers:
                renew()
        except (OSError, ValueError, ssl.SSLError, SSL.Error) as err:
            log.warning("renewed TLS certificate not loaded yet: %s", type(err).__name__)
            return False
        self._seen = contents
        log.info("TLS certificate renewed: SHA256 %s", certificate_fingerprint(self.cert_file))
        return True

    def start(self) -> None:
        threading.Thread(target=self._poll, name="tls-reload", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_seconds):
            self.check()

    def _contents(self) -> tuple[bytes, bytes] | None:
        try:
            return self.cert_file.read_bytes(), self.key_file.read_bytes()
        except OSError:
            return None
