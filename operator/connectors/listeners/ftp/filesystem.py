"""The partner's view of their home over FTP: pyftpdlib's AbstractedFS with
paths confined by the jail, what may be seen, read and uploaded decided by
listeners/core/rules.py, and uploads received through the one landing path."""

from __future__ import annotations

import errno
import logging
import os
from pathlib import Path
from typing import Any

from pyftpdlib.filesystems import (  # type: ignore[import-untyped]
    AbstractedFS,
    FilesystemError,
)

from connectors.api.accounts import Account
from connectors.landing.area import Receipt
from connectors.landing.receive import LandingFile, landing_area
from connectors.listeners.core.jail import Jail, PathRefused
from connectors.listeners.core.report import report_refused
from connectors.listeners.core.rules import may_read, may_see, upload_refusal

log = logging.getLogger(__name__)


class FtpUpload:
    """The file object pyftpdlib writes a STOR into."""

    def __init__(self, landing: LandingFile) -> None:
        self.landing = landing
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
    """The partner's home as `/`, with hidden entries and escapes refused."""

    def __init__(self, root: str, cmd_channel: Any) -> None:
        super().__init__(root, cmd_channel)
        self.jail = Jail(Path(root))

    @property
    def account(self) -> Account:
        account: Account = self.cmd_channel.account
        return account

    def validpath(self, path: str) -> bool:
        try:
            virtual = self.jail.virtual(Path(path)) if os.path.isabs(path) else path
            self.jail.real(virtual)
        except PathRefused:
            return False
        return True

    def listdir(self, path: str) -> list[str]:
        self._check_visible(path)
        return [name for name in super().listdir(path) if may_see(self.account, name)]

    def listdirinfo(self, path: str) -> list[str]:
        return self.listdir(path)

    def _visible(self, path: str) -> bool:
        """Whether the partner may see every part of a real path below the home
        (listeners/core/rules.py): anything else answers as if absent."""
        relative = os.path.relpath(path, self.jail.home)
        if relative == ".":
            return True
        return not relative.startswith("..") and all(
            may_see(self.account, name) for name in relative.split(os.sep))

    def _check_visible(self, path: str) -> None:
        if not self._visible(path):
            raise FileNotFoundError(errno.ENOENT, "No such file or directory")

    def stat(self, path: str) -> os.stat_result:
        self._check_visible(path)
        return os.stat(path)

    def lstat(self, path: str) -> os.stat_result:
        self._check_visible(path)
        return os.lstat(path)

    def getsize(self, path: str) -> int:
        self._check_visible(path)
        return os.path.getsize(path)

    def getmtime(self, path: str) -> float:
        self._check_visible(path)
        return os.path.getmtime(path)

    def isfile(self, path: str) -> bool:
        return self._visible(path) and os.path.isfile(path)

    def isdir(self, path: str) -> bool:
        return self._visible(path) and os.path.isdir(path)

    def lexists(self, path: str) -> bool:
        return self._visible(path) and os.path.lexists(path)

    def open(self, filename: str, mode: str) -> Any:
        if "w" in mode or "a" in mode or "+" in mode:
            return self._open_upload(filename, mode)
        name = os.path.basename(filename)
        self._check_visible(filename)
        if not may_read(self.account, name):
            raise FilesystemError("This account may not download this file")
        handle = super().open(filename, mode)
        info = os.fstat(handle.fileno())
        # What on_file_sent needs to tell this file from a newer one of that name.
        self.cmd_channel.sending = (filename, info.st_size, (info.st_dev, info.st_ino))
        return handle

    def _open_upload(self, filename: str, mode: str) -> FtpUpload:
        if mode != "wb":
            raise FilesystemError("Resume and append are not supported: uploads land whole")
        folder, name = os.path.split(filename)
        if os.path.realpath(folder) != str(self.jail.home):
            reason: str | None = "uploads go to the top of the home folder"
        else:
            reason = upload_refusal(self.account, name)
        if reason is not None:
            log.info("upload refused user=%r name=%r: %s", self.account.username, name, reason)
            report_refused(self.cmd_channel.reporter, self.account, "ftp",
                           f"upload of {name!r} refused: {reason}")
            raise FilesystemError(reason[0].upper() + reason[1:])
        area = landing_area(self.cmd_channel.landing_root, self.account)
        return FtpUpload(LandingFile(area, name))

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
        folder, name = os.path.split(path)
        if os.path.realpath(folder) != str(self.jail.home) or name not in self.cmd_channel.landed:
            raise FilesystemError("Only a file this session uploaded may have its time set")
        os.utime(os.path.join(self.jail.home, name), (timeval, timeval))
