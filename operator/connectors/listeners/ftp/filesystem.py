"""The partner's view of their home over FTP: pyftpdlib's AbstractedFS with
paths confined by the jail, what may be seen, read and uploaded decided by
listeners/core/rules.py, and uploads received through the one landing path."""

from __future__ import annotations

import errno
import logging
import os
from dataclasses import dataclass
from typing import Any

from pyftpdlib.filesystems import (  # type: ignore[import-untyped]
    AbstractedFS,
    FilesystemError,
)

from connectors.api.accounts import Account
from connectors.landing.area import Receipt
from connectors.landing.receive import LandingFile
from connectors.listeners.core.jail import PathRefused
from connectors.listeners.core.places import PartnerView, Place
from connectors.listeners.core.report import report_refused
from connectors.listeners.core.rules import may_read, may_see, upload_refusal
from connectors.listeners.ftp.auth import NO_ROOT, place_of_real

log = logging.getLogger(__name__)


class FtpUpload:
    """The file object pyftpdlib writes a STOR into."""

    def __init__(self, landing: LandingFile, account: Account) -> None:
        self.landing = landing
        self.account = account
        # pyftpdlib logs and reports `name`: the final path, not the temporary one.
        self.name = str(landing.area.home / landing.name)
        # Set while the decision to land waits (see LandingDTPMixin): pyftpdlib's
        # close() must not discard the file in the meantime.
        self.pending = False

    @property
    def closed(self) -> bool:
        return self.landing.closed

    def write(self, data: bytes | memoryview) -> int:
        return self.landing.write(data)

    def commit(self) -> Receipt:
        self.pending = False
        return self.landing.commit()

    def discard(self) -> None:
        self.pending = False
        self.landing.abort()

    def close(self) -> None:
        """Closing without commit() is an abort: the temporary file goes."""
        if not self.pending and not self.landing.closed:
            self.landing.abort()


class PartnerFS(AbstractedFS):  # type: ignore[misc]
    """The partner's view of their login over FTP: one place per Connection
    (listeners/core/places.py), hidden entries and escapes refused.

    pyftpdlib works on real paths: `ftp2fs` maps a partner path into its
    place's landing area and `fs2ftp` maps back, so every other method sees a
    real path inside one place, or the root."""

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__(root, cmd_channel)
        self.view: PartnerView = cmd_channel.view

    def ftp2fs(self, ftppath: str) -> str:
        virtual = self.ftpnorm(ftppath)
        try:
            place, rest = self.view.locate(virtual)
        except PathRefused:
            return os.path.join(self.root, NO_ROOT, "refused")
        if place is None:
            return str(self.root)
        # Not resolved: validpath judges where it leads.
        return str(place.jail.home.joinpath(*rest))

    def fs2ftp(self, fspath: str) -> str:
        if os.path.realpath(fspath) == os.path.realpath(self.root):
            return "/"
        place = place_of_real(self.view, fspath)
        if place is None:
            return "/"
        relative = os.path.relpath(os.path.realpath(fspath), place.jail.home)
        if relative == ".":
            return place.virtual
        return place.virtual_path(relative.replace(os.sep, "/"))

    def validpath(self, path: str) -> bool:
        """Confinement only: inside a place and no hidden part. What may be
        seen, read or uploaded is decided where it is done."""
        if self._is_root(path):
            return True
        place = place_of_real(self.view, path)
        if place is None:
            return False
        relative = os.path.relpath(os.path.realpath(path), place.jail.home)
        return relative == "." or not any(part.startswith(".")
                                          for part in relative.split(os.sep))

    def _is_root(self, path: str) -> bool:
        return os.path.realpath(path) == os.path.realpath(str(self.root))

    def _located(self, path: str) -> tuple[Place, list[str]] | None:
        """The place of a real path and its parts below the place's home, when
        the path stays inside the home and the partner may see every part."""
        place = place_of_real(self.view, path)
        if place is None:
            return None
        relative = os.path.relpath(os.path.realpath(path), place.jail.home)
        rest = [] if relative == "." else relative.split(os.sep)
        if not all(may_see(place.account, name) for name in rest):
            return None
        return place, rest

    def _visible(self, path: str) -> bool:
        if self._is_root(path) or self._located(path) is not None:
            return True
        folder, name = os.path.split(path)
        return self._is_root(folder) and name in self.view.folders

    def _place(self, path: str) -> Place:
        located = self._located(path)
        if located is None:
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        return located[0]

    def listdir(self, path: str) -> list[str]:
        if self._is_root(path):
            root = self.view.root
            own = ([name for name in super().listdir(path)
                    if may_see(root.account, name) and name not in self.view.folders]
                   if root is not None else [])
            return own + list(self.view.folders)
        place = self._place(path)
        return [name for name in super().listdir(path) if may_see(place.account, name)]

    def listdirinfo(self, path: str) -> list[str]:
        return self.listdir(path)

    def _check_visible(self, path: str) -> None:
        if not self._visible(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    def stat(self, path: str) -> os.stat_result:
        self._check_visible(path)
        return os.stat(self._stat_target(path))

    def lstat(self, path: str) -> os.stat_result:
        self._check_visible(path)
        return os.lstat(self._stat_target(path))

    def _stat_target(self, path: str) -> str:
        """What to stat for a real path. The root of a login without a root
        Connection is no folder on disk: it reads as the data volume's root,
        which it stands in for. A listing of the root joins folder names to the
        root's path: those are the folders' landing areas."""
        if self._is_root(path) and self.view.root is None:
            return os.path.dirname(path)
        folder, name = os.path.split(path)
        if self._is_root(folder) and name in self.view.folders:
            return str(self.view.folders[name].jail.home)
        return path

    def chdir(self, path: str) -> None:
        """Only the partner path changes: the process's working folder means
        nothing to a server of many sessions, and the root may be no folder."""
        if not self.isdir(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")
        self.cwd = self.fs2ftp(path)

    def getsize(self, path: str) -> int:
        self._check_visible(path)
        return os.path.getsize(path)

    def getmtime(self, path: str) -> float:
        self._check_visible(path)
        return os.path.getmtime(self._stat_target(path))

    def isfile(self, path: str) -> bool:
        return self._visible(path) and os.path.isfile(path)

    def isdir(self, path: str) -> bool:
        return self._is_root(path) or (
            self._visible(path) and os.path.isdir(self._stat_target(path)))

    def lexists(self, path: str) -> bool:
        return self._is_root(path) or (self._visible(path) and os.path.lexists(path))

    def open(self, filename: str, mode: str) -> Any:
        if "w" in mode or "a" in mode or "+" in mode:
            return self._open_upload(filename, mode)
        place = self._place(filename)
        if not may_read(place.account, os.path.basename(filename)):
            raise FilesystemError("This account may not download this file")
        handle = super().open(filename, mode)
        info = os.fstat(handle.fileno())
        # What on_file_sent needs to tell this file from a newer one of that name.
        self.cmd_channel.sending = Sending(filename, info.st_size,
                                           (info.st_dev, info.st_ino), place.account)
        return handle

    def _open_upload(self, filename: str, mode: str) -> FtpUpload:
        if mode != "wb":
            raise FilesystemError("Resume and append are not supported: uploads land whole")
        folder, name = os.path.split(filename)
        place = place_of_real(self.view, folder)
        if place is None or os.path.realpath(folder) != str(place.jail.home):
            folders = ", ".join(self.view.folders)
            raise FilesystemError("Uploads go to the top of the home folder" + (
                f" or of one of the folders {folders}" if folders else ""))
        reason = upload_refusal(place.account, name)
        if reason is not None:
            log.info("upload refused user=%r name=%r: %s", place.account.username, name, reason)
            report_refused(self.cmd_channel.reporter, place.account, "ftp",
                           f"upload of {name!r} refused: {reason}", reason.code,
                           self.cmd_channel.peer, name)
            raise FilesystemError(reason[0].upper() + reason[1:])
        return FtpUpload(LandingFile(place.area, name), place.account)

    # Partners change nothing but by uploading (see listeners/core/rules.py).
    def mkdir(self, path: str) -> None:
        raise FilesystemError("Permission denied")

    def rmdir(self, path: str) -> None:
        raise FilesystemError("Permission denied")

    def remove(self, path: str) -> None:
        raise FilesystemError("Permission denied")

    def rename(self, src: str, dst: str) -> None:
        raise FilesystemError("Permission denied")

    def chmod(self, path: str, mode: int) -> None:
        raise FilesystemError("Permission denied")

    def utime(self, path: str, timeval: float) -> None:
        """MFMT, which clients such as rclone send after an upload and retry
        the whole upload when refused: allowed on a file this session landed."""
        if os.path.realpath(path) not in self.cmd_channel.landed:
            raise FilesystemError("Only a file this session uploaded may have its time set")
        os.utime(path, (timeval, timeval))


@dataclass(frozen=True)
class Sending:
    """The file a RETR is sending, for on_file_sent."""

    path: str
    size: int
    inode: tuple[int, int]
    account: Account
