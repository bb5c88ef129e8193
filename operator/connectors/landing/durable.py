"""Making landed files durable: fsync of files and folders, a batch synced at once,
renames into place, and the SHA-256 of a file.

fsync one file after the other costs several milliseconds each on a real disk,
which caps a job that lands many small files at a few hundred files per
second. sync_files and publish make a whole batch durable at once (syncfs, or
concurrent fsyncs) with one fsync of the folder, with the same guarantee:
nothing is visible under its final name before its data is on disk."""

from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

# The many-files path (temp_name, final_name, publish, sync_files) works on
# plain strings: pathlib's joins and conversions, per file, cost more than
# the string work they wrap.
StrPath = str | os.PathLike[str]


def remove(path: StrPath) -> None:
    """Removes a file, if it is there."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def fsync_dir(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def hash_file(path: StrPath) -> str:
    """The SHA-256 of a file, read in 1 MiB blocks (hashlib releases the GIL)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


def _keep(source: Path, target: Path) -> None:
    """A hard link (no copy of the data), or a synced copy where the volume's
    filesystem has no hard links (some network filesystems)."""
    try:
        os.link(source, target)
    except OSError as err:
        if err.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP, errno.EXDEV,
                             errno.EMLINK):
            raise
        shutil.copy2(source, target)
        _fsync_path(target)


# From this many files on, one syncfs(2) of the landing volume is cheaper than
# an fsync per file. It also flushes other writers' dirty data on the same
# filesystem, which on a Connection's data volume is little; a few files are
# fsync'd one by one.
SYNCFS_MIN_FILES = 16


def sync_files(paths: Sequence[StrPath]) -> None:
    """Makes the data of `paths` (all on one filesystem) durable."""
    if len(paths) >= SYNCFS_MIN_FILES and _syncfs(paths[0]):
        return
    if len(paths) <= 1:
        for path in paths:
            _fsync_path(path)
        return
    from concurrent.futures import ThreadPoolExecutor

    # Concurrent fsyncs: each releases the GIL, and the filesystem merges
    # them into fewer journal commits.
    with ThreadPoolExecutor(min(16, len(paths)), thread_name_prefix="fsync") as pool:
        list(pool.map(_fsync_path, paths))


def _syncfs(path: StrPath) -> bool:
    """syncfs(2) through libc (Linux); False where it is not available."""
    try:
        import ctypes

        syncfs = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return False
    fd = os.open(path, os.O_RDONLY)
    try:
        return int(syncfs(fd)) == 0
    finally:
        os.close(fd)


def _fsync_path(path: StrPath) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def publish(temps: Sequence[tuple[StrPath, StrPath]]) -> None:
    """Renames synced (temporary, final) pairs into place, then one fsync per
    folder. The data must already be durable (sync_files)."""
    for temp, final in temps:
        os.replace(temp, final)
    for folder in {os.path.dirname(final) for _, final in temps}:
        fsync_dir(folder)


# rename(2) with RENAME_NOREPLACE, through libc (Linux).
_AT_FDCWD = -100
_RENAME_NOREPLACE = 1


@functools.cache
def _renameat2() -> Callable[..., int] | None:
    try:
        import ctypes

        function: Callable[..., int] = ctypes.CDLL(None, use_errno=True).renameat2
    except (OSError, AttributeError):
        return None
    return function


def rename_no_replace(source: str, target: str) -> None:
    """rename(2) that never replaces what is there: FileExistsError when
    `target` exists. renameat2(RENAME_NOREPLACE) where the filesystem has it,
    else link and unlink, which refuse an existing target as well."""
    function = _renameat2()
    if function is not None:
        import ctypes

        if function(_AT_FDCWD, os.fsencode(source), _AT_FDCWD, os.fsencode(target),
                    _RENAME_NOREPLACE) == 0:
            return
        code = ctypes.get_errno()
        if code not in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
            raise OSError(code, os.strerror(code), target)
    os.link(source, target)
    os.unlink(source)
