"""IMAP client of the Inbound Email pull, on imaplib: IMAPS or STARTTLS, the
certificate verified unless the user turned that off for a test server.

Messages are read with BODY.PEEK[], which leaves them unseen: the job marks a
message seen only after its attachments have landed and been recorded.
"""

from __future__ import annotations

import imaplib
import re
import ssl
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from ...errors import describe
from .base import PermanentError, TransientError, tls_context

T = TypeVar("T")
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)")


@dataclass(frozen=True)
class ImapSettings:
    host: str
    port: int
    mailbox: str
    username: str
    password: str
    tls: str = "IMAPS"
    """IMAPS or STARTTLS."""
    insecure: bool = False
    timeout: float = 30.0


def _guard(what: str, action: Callable[[], T]) -> T:
    try:
        return action()
    except (imaplib.IMAP4.abort, OSError, EOFError) as exc:
        raise TransientError(f"connection lost while {what}: {describe(exc)}") from None
    except imaplib.IMAP4.error as exc:
        if _temporary(exc):
            raise TransientError(f"{what}: the server is temporarily unavailable") from None
        raise PermanentError(f"{what}: {describe(exc)}") from None


# Response codes of RFC 5530 that say "try again later", not "wrong
# credentials": a login refused with one of them is retried, never reported
# as a Credential problem.
_TEMPORARY_CODES = (b"[UNAVAILABLE]", b"[INUSE]", b"[SERVERBUG]", b"[LIMIT]")


def _temporary(exc: BaseException) -> bool:
    text = describe(exc).encode("utf-8", "replace").upper()
    return any(code in text for code in _TEMPORARY_CODES)


class ImapClient:
    def __init__(self, settings: ImapSettings) -> None:
        self.settings = settings
        self.imap = self._connect()
        self.uidvalidity = self._select()

    def _connect(self) -> imaplib.IMAP4:
        s = self.settings
        where = f"{s.host}:{s.port}"
        context = tls_context(s.insecure)
        imap: imaplib.IMAP4 | None = None
        try:
            if s.tls == "STARTTLS":
                imap = imaplib.IMAP4(s.host, s.port, timeout=s.timeout)
                imap.starttls(ssl_context=context)
            else:
                imap = imaplib.IMAP4_SSL(s.host, s.port, ssl_context=context, timeout=s.timeout)
        except ssl.SSLCertVerificationError as exc:
            raise PermanentError(
                f"the TLS certificate of {where} does not verify ({exc.verify_message}); "
                "fix the server's certificate, or set remote.insecureSkipTlsVerify for a test "
                "server"
            ) from None
        except (OSError, EOFError, imaplib.IMAP4.error) as exc:
            raise TransientError(f"cannot connect to {where}: {describe(exc)}") from None
        try:
            imap.login(s.username, s.password)
        except imaplib.IMAP4.abort as exc:
            raise TransientError(
                f"connection lost while logging in to {where}: {describe(exc)}"
            ) from None
        except imaplib.IMAP4.error as exc:
            # The server's text may quote the command; never show it.
            imap.shutdown()
            if _temporary(exc):
                raise TransientError(
                    f"login as {s.username!r} on {where}: the server is temporarily "
                    "unavailable ([UNAVAILABLE] or alike); the run is retried"
                ) from None
            raise PermanentError(
                f"login as {s.username!r} on {where} refused: check the Credential"
            ) from None
        except OSError as exc:
            raise TransientError(
                f"connection lost while logging in to {where}: {describe(exc)}"
            ) from None
        return imap

    def _select(self) -> int:
        mailbox = self.settings.mailbox
        typ, _ = _guard("selecting the mailbox", lambda: self.imap.select(_quote(mailbox)))
        if typ != "OK":
            raise PermanentError(f"cannot open mailbox {mailbox!r} (remote.folder)")
        _, data = self.imap.response("UIDVALIDITY")
        try:
            return int(data[0]) if data and data[0] else 0
        except (TypeError, ValueError):
            return 0

    def unseen(self) -> list[int]:
        typ, data = _guard("searching", lambda: self.imap.uid("SEARCH", "UNSEEN"))
        if typ != "OK" or not data or not data[0]:
            return []
        return [int(u) for u in data[0].split()]

    def size(self, uid: int) -> int | None:
        _typ, data = _guard(
            "reading a size", lambda: self.imap.uid("FETCH", str(uid), "(RFC822.SIZE)")
        )
        for item in data or ():
            head = item[0] if isinstance(item, tuple) else item
            if isinstance(head, bytes) and (match := _SIZE.search(head)):
                return int(match.group(1))
        return None

    def fetch(self, uid: int) -> bytes | None:
        """The whole message, without setting \\Seen."""
        _typ, data = _guard(
            "fetching a message", lambda: self.imap.uid("FETCH", str(uid), "(BODY.PEEK[])")
        )
        for item in data or ():
            if isinstance(item, tuple) and isinstance(item[1], bytes):
                return item[1]
        return None

    def mark_seen(self, uid: int) -> None:
        _guard(
            "marking a message seen",
            lambda: self.imap.uid("STORE", str(uid), "+FLAGS.SILENT", r"(\Seen)"),
        )

    def close(self) -> None:
        try:
            self.imap.close()
            self.imap.logout()
        except (imaplib.IMAP4.error, OSError, EOFError):
            self.imap.shutdown()


def _quote(mailbox: str) -> str:
    escaped = mailbox.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'
