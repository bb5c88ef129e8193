"""TLS settings of the listeners: Mozilla's "intermediate" server profile.

TLS 1.2 and 1.3 only. With TLS 1.2, only ECDHE or DHE key exchange (forward
secrecy) with AES-GCM or ChaCha20-Poly1305: no RSA key exchange, no CBC, no
SHA-1 MACs. TLS 1.3 suites are all acceptable. One list, used by the FTP
listener (pyOpenSSL, through pyftpdlib) and the SMTP listener (the standard
library's ssl module), so that both offer exactly the same.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from OpenSSL import SSL

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
