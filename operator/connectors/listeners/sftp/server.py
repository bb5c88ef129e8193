"""The SFTP listener, on paramiko.

One thread accepts connections; each connection gets a paramiko Transport
(its own thread, which does the crypto) and a thread that runs the SFTP
subsystem. Partners authenticate with a password or a public key from the
account table and see their home as `/`.

Speed: paramiko's own SFTPServer reads one request at a time, copies each
packet several times and sends one SSH packet per reply. `FastSFTPServer`
keeps paramiko's dispatch for the rare requests but handles READ and WRITE
itself: it drains everything the transport has buffered in one `recv`, parses
requests in place, writes with `pwrite`, and sends the replies of one batch in
a single channel write. That cuts the thread hand-offs between the transport
thread and the SFTP thread from one per request to one per batch.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat as stat_module
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import paramiko
from paramiko.sftp import (
    CMD_CLOSE,
    CMD_DATA,
    CMD_OPEN,
    CMD_READ,
    CMD_STATUS,
    CMD_WRITE,
)

from connectors import paramiko_speedups
from connectors.api.accounts import Account
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.accounts_file import AccountsFile
from connectors.listeners.core.defender import Defender
from connectors.listeners.core.downloads import finish_download
from connectors.listeners.core.jail import Jail, PathRefused, normalize, parts
from connectors.listeners.core.login_gate import Admission, LoginGate, SessionLimiter
from connectors.listeners.core.report import (
    TransferReporter,
    report_landed,
    report_refused,
)
from connectors.listeners.core.rules import may_list, may_read, may_see, upload_refusal

if TYPE_CHECKING:
    from typing_extensions import Buffer

log = logging.getLogger(__name__)

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


@dataclass
class SftpSettings:
    idle_timeout: float = 600.0
    max_sessions_per_account: int = 10
    # The channel window is how much a client may send before we acknowledge:
    # several times the 2 MiB that OpenSSH keeps in flight (64 requests of
    # 32 KiB), and small enough that many sessions cannot pile up memory.
    window_size: int = 8 * 1024 * 1024
    # The largest SSH packet we accept: bigger packets mean fewer per-packet
    # round trips through Python in the transport thread.
    max_packet_size: int = 256 * 1024
    ciphers: tuple[str, ...] | None = None


@dataclass
class SftpContext:
    """Everything the connections of one listener share."""

    accounts: AccountsFile
    data_root: Path
    defender: Defender
    reporter: TransferReporter
    host_key: paramiko.PKey
    settings: SftpSettings = field(default_factory=SftpSettings)
    sessions: SessionLimiter = field(default_factory=SessionLimiter)

    def gate(self) -> LoginGate:
        return LoginGate(self.accounts, self.defender, "sftp",
                         self.settings.max_sessions_per_account, self.sessions)


class Session(paramiko.ServerInterface):
    """Authentication and channel policy for one connection.

    A password or key check only says whose credential it is (`verified`);
    the login is complete, and takes its session slot, when the first channel
    opens, because paramiko asks `check_auth_publickey` the same question for
    an unsigned probe and for the signed request (see login_gate).
    """

    def __init__(self, context: SftpContext, address: str) -> None:
        self.context = context
        self.gate = context.gate()
        self.address = address
        self.verified: Account | None = None
        self.admission: Admission | None = None
        self.last_activity = time.monotonic()

    @property
    def account(self) -> Account | None:
        return self.admission.account if self.admission is not None else None

    def get_allowed_auths(self, username: str) -> str:
        return "publickey,password"

    def check_auth_password(self, username: str, password: str) -> int:
        account = self.gate.verify_password(self.address, username, password)
        return self._verified(account)

    def check_auth_publickey(self, username: str, key: paramiko.PKey) -> int:
        account = self.gate.verify_key(self.address, username, key.asbytes())
        if account is None:
            log.info("public key %s not accepted for user %r from %s",
                     key.fingerprint, username, self.address)
        return self._verified(account)

    def _verified(self, account: Account | None) -> int:
        if account is None:
            return AUTH_FAILED
        self.verified = account
        return AUTH_SUCCESSFUL

    def check_channel_request(self, kind: str, chanid: int) -> int:
        # Reached only on an authenticated transport.
        if kind != "session" or self.verified is None:
            return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        if self.admission is None:
            self.admission = self.gate.admit(self.address, self.verified)
            if self.admission is None:
                return OPEN_FAILED_ADMINISTRATIVELY_PROHIBITED
        return OPEN_SUCCEEDED

    def check_channel_subsystem_request(self, channel: paramiko.Channel, name: str) -> bool:
        return name == "sftp" and super().check_channel_subsystem_request(channel, name)

    def release(self) -> None:
        if self.admission is not None:
            self.admission.release()
            self.admission = None


class Refused(Exception):
    """A request refused with an SFTP status code and a message for the partner."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class ReadHandle(paramiko.SFTPHandle):
    """A download. It counts what it served so that closing it can tell a
    complete download (reported, and deleted with deleteAfterDownload) from a
    partial one."""

    def __init__(self, fd: int, path: Path) -> None:
        super().__init__()
        self.fd = fd
        self.path = path
        info = os.fstat(fd)
        self.size = info.st_size
        self.inode = (info.st_dev, info.st_ino)
        self.served = 0

    @property
    def complete(self) -> bool:
        return self.served >= self.size

    def read(self, offset: int, length: int) -> bytes | int:
        data = os.pread(self.fd, min(length, MAX_READ), offset)
        self.served += len(data)
        return data

    def write(self, offset: int, data: Buffer) -> int:
        return SFTP_PERMISSION_DENIED

    def stat(self) -> paramiko.SFTPAttributes | int:
        return paramiko.SFTPAttributes.from_stat(os.fstat(self.fd))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def _flags(attr: paramiko.SFTPAttributes) -> int:
    """Which fields a SETSTAT carries (paramiko keeps them in `_flags`)."""
    return int(getattr(attr, "_flags", 0))


def requested_times(attr: paramiko.SFTPAttributes) -> tuple[float, float] | None:
    """(atime, mtime) when a SETSTAT asks to set them."""
    if _flags(attr) & paramiko.SFTPAttributes.FLAG_AMTIME:
        return (float(attr.st_atime or 0), float(attr.st_mtime or 0))
    return None


def changes_content(attr: paramiko.SFTPAttributes) -> bool:
    """A SETSTAT with a size truncates or extends: never on a landed file."""
    return bool(_flags(attr) & paramiko.SFTPAttributes.FLAG_SIZE)


class UploadHandle(paramiko.SFTPHandle):
    def __init__(self, landing: LandingFile) -> None:
        super().__init__()
        self.landing = landing
        # Times a client set on the open file (OpenSSH `put -p`): applied once it lands.
        self.times: tuple[float, float] | None = None

    def write(self, offset: int, data: Buffer) -> int:
        self.landing.pwrite(offset, memoryview(data))
        return SFTP_OK

    def read(self, offset: int, length: int) -> bytes | int:
        return SFTP_PERMISSION_DENIED

    def stat(self) -> paramiko.SFTPAttributes | int:
        attrs = paramiko.SFTPAttributes()
        attrs.st_size = self.landing.size
        attrs.st_mode = stat_module.S_IFREG | 0o640
        return attrs

    def chattr(self, attr: paramiko.SFTPAttributes) -> int:
        # OpenSSH `put -p` sets times and modes: times are kept for the landed
        # file, modes ignored (the platform owns its files' permissions).
        if changes_content(attr):
            return SFTP_PERMISSION_DENIED
        self.times = requested_times(attr) or self.times
        return SFTP_OK

    def close(self) -> None:
        """Reached only when the session ends with the file still open: a dropped
        upload, which must leave nothing visible."""
        self.landing.abort()


class PartnerFilesystem(paramiko.SFTPServerInterface):
    """The partner's view of their home."""

    def __init__(self, server: Session, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        assert server.account is not None  # the channel opens only after auth
        self.session = server
        self.account: Account = server.account
        self.area = landing_area(server.context.data_root, self.account)
        self.area.ensure()
        self.jail = Jail(self.area.home)
        # Files this session landed: their partner may still set their times.
        self.landed: set[str] = set()

    def _real(self, path: str) -> Path:
        try:
            return self._visible(path)
        except PathRefused as err:
            raise Refused(SFTP_NO_SUCH_FILE, str(err)) from None

    def _visible(self, path: str) -> Path:
        """The real path, refused like a missing file unless the partner may see
        every part of it (listeners/core/rules.py)."""
        real = self.jail.real(path)
        if not all(may_see(self.account, name) for name in parts(normalize(path))):
            raise PathRefused("no such file")
        return real

    def open_handle(self, path: str, flags: int) -> paramiko.SFTPHandle:
        """Opens a file; raises Refused with a message for the partner."""
        if flags & (os.O_WRONLY | os.O_RDWR):
            return self._open_upload(path, flags)
        real = self._real(path)
        if not may_read(self.account, real.name):
            raise Refused(SFTP_PERMISSION_DENIED, "this account may not download this file")
        try:
            fd = os.open(os.path.realpath(real), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            code = paramiko.SFTPServer.convert_errno(err.errno or 0)
            raise Refused(code, err.strerror or "error") from None
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Refused(SFTP_PERMISSION_DENIED, "not a regular file")
        return ReadHandle(fd, real)

    def downloaded(self, handle: ReadHandle) -> None:
        """A download ran to its end: report it, and with deleteAfterDownload
        remove the file, unless the platform replaced it meanwhile (another
        inode under the same name is a new file the partner has not seen)."""
        finish_download(self.session.context.reporter, self.account, "sftp", handle.path,
                        handle.size, handle.inode)

    def _open_upload(self, path: str, flags: int) -> paramiko.SFTPHandle:
        try:
            components = parts(normalize(path))
        except PathRefused as err:
            raise Refused(SFTP_PERMISSION_DENIED, str(err)) from None
        name = components[0] if len(components) == 1 else ""
        reason = upload_refusal(self.account, name)
        if reason is None and flags & os.O_APPEND:
            reason = "appending and resuming are not supported: uploads land whole"
        if reason is not None:
            log.info("upload refused user=%r path=%r: %s", self.account.username, path, reason)
            report_refused(self.session.context.reporter, self.account, "sftp",
                           f"upload of {path!r} refused: {reason}")
            raise Refused(SFTP_PERMISSION_DENIED, reason)
        return UploadHandle(LandingFile(self.area, name))

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        if not may_list(self.account):
            return SFTP_PERMISSION_DENIED
        try:
            real = self._visible(path)
            entries = [
                paramiko.SFTPAttributes.from_stat(entry.stat(follow_symlinks=False), entry.name)
                for entry in os.scandir(real)
                if may_see(self.account, entry.name)
            ]
        except PathRefused:
            return SFTP_NO_SUCH_FILE
        except OSError as err:
            return paramiko.SFTPServer.convert_errno(err.errno or 0)
        return entries

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            real = self._visible(path)
            return paramiko.SFTPAttributes.from_stat(os.stat(real))
        except PathRefused:
            return SFTP_NO_SUCH_FILE
        except OSError as err:
            return paramiko.SFTPServer.convert_errno(err.errno or 0)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            components = parts(normalize(path))
            if not all(may_see(self.account, name) for name in components):
                return SFTP_NO_SUCH_FILE
            candidate = self.jail.home.joinpath(*components)
            # lstat describes a link itself, so only its folder must be inside.
            self.jail.check_inside(candidate.parent if components else candidate)
            return paramiko.SFTPAttributes.from_stat(os.lstat(candidate))
        except PathRefused:
            return SFTP_NO_SUCH_FILE
        except OSError as err:
            return paramiko.SFTPServer.convert_errno(err.errno or 0)

    def canonicalize(self, path: str) -> str:
        try:
            return normalize(path)
        except PathRefused:
            return "/"

    # Partners never change the landing area except by uploading: no delete
    # (processing owns the files), no rename (it would bypass the name rules),
    # no folders, no links.
    def remove(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def posix_rename(self, oldpath: str, newpath: str) -> int:
        return SFTP_PERMISSION_DENIED

    def mkdir(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        return SFTP_PERMISSION_DENIED

    def rmdir(self, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def chattr(self, path: str, attr: paramiko.SFTPAttributes) -> int:
        """Clients set the times (and modes) of a file they just uploaded
        (rclone, `put -p`), and retry the whole upload when refused. So on a
        file this session landed, times are applied and modes ignored; any
        other change, or any other file, is refused."""
        try:
            components = parts(normalize(path))
        except PathRefused:
            return SFTP_NO_SUCH_FILE
        if len(components) != 1 or components[0] not in self.landed or changes_content(attr):
            return SFTP_PERMISSION_DENIED
        times = requested_times(attr)
        if times is not None:
            try:
                os.utime(self.area.home / components[0], times)
            except OSError as err:
                return paramiko.SFTPServer.convert_errno(err.errno or 0)
        return SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def readlink(self, path: str) -> str | int:
        return SFTP_OP_UNSUPPORTED


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
        self.filesystem.landed.add(receipt.name)
        if handle.times is not None:
            with contextlib.suppress(OSError):
                os.utime(self.filesystem.area.home / receipt.name, handle.times)
        account = self.filesystem.account
        report_landed(self.session.context.reporter, account, "sftp", [receipt])
        self._send_status(request_number, SFTP_OK)


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

