"""Opening input files: only regular files, never more than the configured size.

Session files come from folders streamgrade does not control. A FIFO, socket or device
named like a session file would block ``open()`` forever (a FIFO waits for a writer) or
stream without end; a huge file would be read whole into memory. So every reader opens its
input through :func:`open_regular`: ``open(2)`` with ``O_NONBLOCK`` (which never waits on a
FIFO), then ``fstat`` on the descriptor (no race with a rename between a check and the
open) to refuse anything but a regular file, and a size check against
:data:`limits.max_file_bytes` (``[limits]`` in the config, set by
:func:`configure_limits`).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from .errors import InputError

#: Default most bytes of one session's data: a single-session file, one JSONL line, one row
#: of a JSON list (``[limits] max_session_bytes``).
DEFAULT_MAX_SESSION_BYTES = 64 * 1024 * 1024
#: Default most bytes of a multi-session file (JSON list, JSONL) held in memory
#: (``[limits] max_file_bytes``).
DEFAULT_MAX_FILE_BYTES = 512 * 1024 * 1024

_limits = {"max_session_bytes": DEFAULT_MAX_SESSION_BYTES, "max_file_bytes": DEFAULT_MAX_FILE_BYTES}


def configure_limits(*, max_session_bytes: int, max_file_bytes: int) -> None:
    """Set the size limits (bytes) of the readers, for this process."""
    _limits.update(max_session_bytes=int(max_session_bytes), max_file_bytes=int(max_file_bytes))


def max_session_bytes() -> int:
    """The most bytes of one session's data (a single-session file, a row, a line)."""
    return _limits["max_session_bytes"]


def max_file_bytes() -> int:
    """The most bytes of a multi-session file held in memory."""
    return _limits["max_file_bytes"]


def file_kind(mode: int) -> str:
    """What a non-regular file is, from its ``st_mode``: FIFO, socket, device, folder."""
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def too_large(path: str | Path, size: int, limit: int, what: str = "file", *, line: int | None = None) -> InputError:
    """The error of a file (or ``what``: "line", "row") over its size limit ``limit``."""
    setting = "max_session_bytes" if limit == max_session_bytes() else "max_file_bytes"
    return InputError(str(path), f"{what} is {size:,} bytes, over the limit of {limit:,} ([limits] {setting})",
                      line=line)


def open_regular(path: str | Path, max_bytes: int | None = None) -> BinaryIO:
    """``path`` opened for binary reading, if it is a regular file (a symlink to one
    counts) of at most ``max_bytes`` (None: no size check, for readers that stream a file
    in bounded pieces or only peek at it).

    Raises InputError naming the file: missing, unreadable, not a regular file (FIFO,
    socket, device, folder), or too large. Never blocks on a FIFO."""
    p = str(path)
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise InputError(p, "file is missing") from None
    except OSError as exc:
        raise InputError(p, f"cannot read: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InputError(p, f"not a regular file: {file_kind(st.st_mode)}")
        if max_bytes is not None and st.st_size > max_bytes:
            raise too_large(p, st.st_size, max_bytes)
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file ``path``, at most ``max_bytes`` (default
    :func:`max_session_bytes`); see :func:`open_regular` for the errors."""
    with open_regular(path, max_session_bytes() if max_bytes is None else max_bytes) as f:
        try:
            return f.read()
        except OSError as exc:
            raise InputError(str(path), f"cannot read: {exc.strerror}") from None


def is_regular(path: str | Path) -> bool:
    """True when ``path`` is a regular file (following symlinks); never raises."""
    try:
        return stat.S_ISREG(os.stat(path).st_mode)
    except (OSError, ValueError):
        return False


__all__ = ["open_regular", "read_regular", "is_regular", "configure_limits", "max_session_bytes", "max_file_bytes",
           "file_kind", "too_large", "DEFAULT_MAX_SESSION_BYTES", "DEFAULT_MAX_FILE_BYTES"]
