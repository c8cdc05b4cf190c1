"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
from pathlib import Path
from typing import BinaryIO, Iterator

from .meter import METER


def _discard(tmp: str | Path) -> None:
    """Remove a temporary file left by a failed write (it may already be gone)."""
    try:
        os.unlink(tmp)
    except OSError:
        pass


def fsync_dir(folder: str | Path) -> None:
    """fsync a directory so that a rename or a new file in it survives a crash."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    """The process's umask, read without changing it (Linux /proc; else the usual 022)."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


@contextlib.contextmanager
def atomic_writer(path: str | Path, *, fsync: bool = True, kind: str = "other") -> Iterator[BinaryIO]:
    """Stream a file into place atomically, readable as a normal file is (0666 less the
    umask, 0644 usually): yields a binary file open on a temporary file in the same folder; on a clean exit it is renamed over ``path`` (after an fsync of the
    file and, after the rename, of the folder, unless ``fsync=False`` for regenerable data
    such as cached frames); on an error it is removed and ``path`` is untouched. The bytes
    are counted in :data:`.meter.METER` under ``kind``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600: a trainer running as another user must read it
        with os.fdopen(fd, "wb") as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
            size = f.tell()
        os.replace(tmp, path)
        METER.add(kind, size)
    except BaseException:
        _discard(tmp)
        raise
    if fsync:
        fsync_dir(path.parent)


def write_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: a temporary file in the same folder, written,
    fsynced, then renamed over ``path`` (POSIX rename is atomic), then the folder fsynced.
    Raises OSError (ENOSPC, EROFS, EACCES, ...) naming the file; the old file is untouched and
    the temporary file removed when that happens."""
    with atomic_writer(path) as f:
        f.write(data)


def write_files_atomic(folder: str | Path, files: dict[str, bytes], *, fsync: bool = True, kind: str = "other") -> None:
    """Write several files of one folder atomically: each to a temporary file (written,
    fsynced), renamed over its name, then the folder fsynced once for all of them. With
    ``fsync=False`` the caller makes them durable later with :func:`sync_filesystem` (one
    flush for a whole batch). Raises OSError; a file whose write failed keeps its old content
    and no temporary file stays. The bytes are counted in :data:`.meter.METER` under
    ``kind``."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    suffix = f".{os.getpid()}.{threading.get_ident()}.tmp"
    for name, data in files.items():
        final = folder / name
        tmp = folder / f".{name}{suffix}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, final)
        except BaseException:
            _discard(tmp)
            raise
        METER.add(kind, len(data))
    if fsync:
        fsync_dir(folder)


_libc = None


def sync_filesystem(path: str | Path) -> None:
    """Flush everything written to the filesystem holding ``path`` to disk: Linux
    ``syncfs(2)`` (one journal commit for a whole batch of files), else ``os.sync()``.
    Raises OSError when the flush fails (EIO, ENOSPC on some filesystems)."""
    global _libc
    if _libc is None:
        try:
            import ctypes

            _libc = ctypes.CDLL(None, use_errno=True)
            _libc.syncfs  # noqa: B018 - probe
        except (OSError, AttributeError):
            _libc = False
    if _libc is False:
        os.sync()
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        if _libc.syncfs(fd) != 0:
            import ctypes

            err = ctypes.get_errno()
            raise OSError(err, os.strerror(err), str(path))
    finally:
        os.close(fd)
