"""The partner's view of their home over SFTP: paths confined by the jail,
what may be seen, read and uploaded decided by listeners/core/rules.py, and
uploads received through the one landing path (landing/receive.py)."""

from __future__ import annotations

import logging
import os
import stat as stat_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from connectors.api.accounts import Account
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.downloads import finish_download
from connectors.listeners.core.jail import Jail, PathRefused, normalize, parts
from connectors.listeners.core.report import report_refused
from connectors.listeners.core.rules import may_list, may_read, may_see, upload_refusal
from connectors.listeners.sftp.auth import Session
from connectors.listeners.sftp.protocol import (
    MAX_READ,
    SFTP_NO_SUCH_FILE,
    SFTP_OK,
    SFTP_OP_UNSUPPORTED,
    SFTP_PERMISSION_DENIED,
)

if TYPE_CHECKING:
    from typing_extensions import Buffer

log = logging.getLogger(__name__)


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
