"""The partner's view of their home over SFTP: paths confined by the jail,
what may be seen, read and uploaded decided by listeners/core/rules.py, and
uploads received through the one landing path (landing/receive.py)."""

from __future__ import annotations

import contextlib
import logging
import os
import stat as stat_module
from pathlib import Path
from typing import TYPE_CHECKING, Any

import paramiko

from connectors.api.accounts import Account
from connectors.landing.area import Receipt
from connectors.landing.receive import LandingFile
from connectors.listeners.core.downloads import finish_download
from connectors.listeners.core.jail import PathRefused, normalize
from connectors.listeners.core.places import PartnerView, Place
from connectors.listeners.core.report import (
    Peer,
    TransferReporter,
    report_landed,
    report_refused,
)
from connectors.listeners.core.rules import (
    Refusal,
    may_list,
    may_read,
    may_see,
    refusal_code,
    upload_refusal,
)
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

    def __init__(self, fd: int, path: Path, account: Account) -> None:
        super().__init__()
        self.fd = fd
        self.path = path
        self.account = account
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
    def __init__(self, landing: LandingFile, place: Place, virtual: str) -> None:
        super().__init__()
        self.landing = landing
        self.place = place
        # The partner's path of the file, for setting its times once landed.
        self.virtual = virtual
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
    """The partner's view of their login: one place per Connection it serves
    (listeners/core/places.py), each confined to its landing area."""

    def __init__(self, server: Session, *args: Any, **kwargs: Any) -> None:
        super().__init__(server, *args, **kwargs)
        assert server.login is not None  # the channel opens only after auth
        self.session = server
        self.view = PartnerView(server.login, server.context.data_root)
        self.view.ensure()
        # Files this session landed (partner paths): their times may still be set.
        self.landed: set[str] = set()

    @property
    def reporter(self) -> TransferReporter:
        return self.session.context.reporter

    @property
    def peer(self) -> Peer:
        """Who this session is, for the audit log."""
        return Peer(self.session.address, self.view.login.username)

    def _real(self, path: str) -> tuple[Place, Path]:
        """The place and real path of a partner path, refused like a missing
        file unless the partner may see every part of it (rules.py)."""
        try:
            place, rest = self.view.locate(path)
            if place is None or not all(may_see(place.account, name) for name in rest):
                raise PathRefused("no such file")
            return place, place.jail.real("/" + "/".join(rest))
        except PathRefused as err:
            raise Refused(SFTP_NO_SUCH_FILE, str(err)) from None

    def open_handle(self, path: str, flags: int) -> paramiko.SFTPHandle:
        """Opens a file; raises Refused with a message for the partner."""
        if flags & (os.O_WRONLY | os.O_RDWR):
            return self._open_upload(path, flags)
        place, real = self._real(path)
        if not may_read(place.account, real.name):
            raise Refused(SFTP_PERMISSION_DENIED, "this account may not download this file")
        try:
            fd = os.open(os.path.realpath(real), os.O_RDONLY | os.O_CLOEXEC)
        except OSError as err:
            code = paramiko.SFTPServer.convert_errno(err.errno or 0)
            raise Refused(code, err.strerror or "error") from None
        if not stat_module.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise Refused(SFTP_PERMISSION_DENIED, "not a regular file")
        return ReadHandle(fd, real, place.account)

    def downloaded(self, handle: ReadHandle) -> None:
        """A download ran to its end: report it, and with deleteAfterDownload
        remove the file, unless the platform replaced it meanwhile (another
        inode under the same name is a new file the partner has not seen)."""
        finish_download(self.reporter, handle.account, "sftp", handle.path, handle.size,
                        handle.inode, self.peer)

    def _open_upload(self, path: str, flags: int) -> paramiko.SFTPHandle:
        try:
            place, rest = self.view.locate(path)
        except PathRefused as err:
            raise Refused(SFTP_PERMISSION_DENIED, str(err)) from None
        if place is None:
            raise Refused(SFTP_PERMISSION_DENIED,
                          "upload into one of the folders: " + ", ".join(self.view.folders))
        name = rest[0] if len(rest) == 1 else ""
        reason = upload_refusal(place.account, name)
        if reason is None and flags & os.O_APPEND:
            reason = Refusal("appending and resuming are not supported: uploads land whole",
                             "append")
        if reason is not None:
            log.info("upload refused user=%r path=%r: %s", place.account.username, path, reason)
            report_refused(self.reporter, place.account, "sftp",
                           f"upload of {path!r} refused: {reason}", refusal_code(reason),
                           self.peer, name)
            raise Refused(SFTP_PERMISSION_DENIED, reason)
        return UploadHandle(LandingFile(place.area, name), place, place.virtual_path(name))

    def landed_upload(self, handle: UploadHandle, receipt: Receipt) -> None:
        """An upload landed: keep the times the client set, and report it."""
        self.landed.add(handle.virtual)
        if handle.times is not None:
            with contextlib.suppress(OSError):
                os.utime(handle.place.area.home / receipt.name, handle.times)
        report_landed(self.reporter, handle.place.account, "sftp", [receipt], self.peer)

    def list_folder(self, path: str) -> list[paramiko.SFTPAttributes] | int:
        try:
            if self.view.is_root(path):
                return self._list_root()
            place, real = self._real(path)
            if not may_list(place.account):
                return SFTP_PERMISSION_DENIED
            return self._entries(place, real)
        except Refused as refused:
            return refused.code
        except OSError as err:
            return paramiko.SFTPServer.convert_errno(err.errno or 0)

    def _list_root(self) -> list[paramiko.SFTPAttributes] | int:
        """The root Connection's files, and one folder per folder Connection."""
        root = self.view.root
        if root is not None and not may_list(root.account) and not self.view.folders:
            return SFTP_PERMISSION_DENIED
        entries = []
        if root is not None and may_list(root.account):
            entries = self._entries(root, root.jail.home)
        for folder, place in self.view.folders.items():
            entries.append(paramiko.SFTPAttributes.from_stat(os.stat(place.jail.home), folder))
        return entries

    @staticmethod
    def _entries(place: Place, real: Path) -> list[paramiko.SFTPAttributes]:
        return [
            paramiko.SFTPAttributes.from_stat(entry.stat(follow_symlinks=False), entry.name)
            for entry in os.scandir(real)
            if may_see(place.account, entry.name)
        ]

    def stat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            if self.view.is_root(path) and self.view.root is None:
                return _folder_attributes()
            _, real = self._real(path)
            return paramiko.SFTPAttributes.from_stat(os.stat(real))
        except Refused as refused:
            return refused.code
        except OSError as err:
            return paramiko.SFTPServer.convert_errno(err.errno or 0)

    def lstat(self, path: str) -> paramiko.SFTPAttributes | int:
        try:
            if self.view.is_root(path) and self.view.root is None:
                return _folder_attributes()
            place, rest = self.view.locate(path)
            if place is None or not all(may_see(place.account, name) for name in rest):
                return SFTP_NO_SUCH_FILE
            candidate = place.jail.home.joinpath(*rest)
            # lstat describes a link itself, so only its folder must be inside.
            place.jail.check_inside(candidate.parent if rest else candidate)
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
            virtual = normalize(path)
            place, rest = self.view.locate(virtual)
        except PathRefused:
            return SFTP_NO_SUCH_FILE
        if place is None or virtual not in self.landed or changes_content(attr):
            return SFTP_PERMISSION_DENIED
        times = requested_times(attr)
        if times is not None:
            try:
                os.utime(place.area.home / rest[0], times)
            except OSError as err:
                return paramiko.SFTPServer.convert_errno(err.errno or 0)
        return SFTP_OK

    def symlink(self, target_path: str, path: str) -> int:
        return SFTP_PERMISSION_DENIED

    def readlink(self, path: str) -> str | int:
        return SFTP_OP_UNSUPPORTED


def _folder_attributes() -> paramiko.SFTPAttributes:
    """The root of a login whose Connections all have folders: a folder of
    folders, with nothing of its own to stat."""
    attributes = paramiko.SFTPAttributes()
    attributes.st_mode = stat_module.S_IFDIR | 0o550
    attributes.st_size = 0
    return attributes
