"""What the SFTP listener speaks: status codes, the algorithms it negotiates,
the largest read it serves."""

from __future__ import annotations

# SFTP status codes (draft-ietf-secsh-filexfer-02), typed as plain ints.
SFTP_OK: int = 0
SFTP_EOF: int = 1
SFTP_NO_SUCH_FILE: int = 2
SFTP_PERMISSION_DENIED: int = 3
SFTP_FAILURE: int = 4
SFTP_BAD_MESSAGE: int = 5
SFTP_OP_UNSUPPORTED: int = 8

# paramiko's auth and channel results (paramiko.common), typed as plain ints.
AUTH_SUCCESSFUL: int = 0
AUTH_FAILED: int = 2
OPEN_SUCCEEDED: int = 0
OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED: int = 1

# What the listener negotiates: what a current OpenSSH server offers, less what
# paramiko lacks (chacha20-poly1305, umac, sntrup761) and less SHA-1. Never CBC
# ciphers, 3DES, MD5 or truncated (-96) MACs, or SHA-1 key exchange.
CIPHERS = (
    "aes128-ctr", "aes192-ctr", "aes256-ctr",
    "aes128-gcm@openssh.com", "aes256-gcm@openssh.com",
)
MACS = (
    "hmac-sha2-256", "hmac-sha2-512",
    "hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com",
)
KEX = (
    "mlkem768x25519-sha256", "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256", "ecdh-sha2-nistp384", "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512", "diffie-hellman-group-exchange-sha256",
    "diffie-hellman-group14-sha256",
)


def offered(wanted: tuple[str, ...], known: tuple[str, ...]) -> tuple[str, ...]:
    """`wanted` in its order, less what this paramiko does not implement."""
    return tuple(name for name in wanted if name in known)


def check_ciphers(names: tuple[str, ...]) -> tuple[str, ...]:
    """A cipher list from the command line: only names of CIPHERS."""
    unknown = [name for name in names if name not in CIPHERS]
    if unknown or not names:
        raise ValueError(f"unsupported or weak ciphers {unknown}; choose from {list(CIPHERS)}")
    return names

# The largest read we serve: OpenSSH asks for 32 KiB at a time, some clients
# for more; a reply must stay under the 256 KiB message limit of OpenSSH's client.
MAX_READ = 255 * 1024
