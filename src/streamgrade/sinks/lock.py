"""One process owns an output folder: an OS lock on ``OUT/.streamgrade.lock``.

The lock is ``flock(2)`` (an exclusive, non-blocking lock on the file's open description)
through the filelock library (tox-dev/filelock, ``FileLock`` with ``preserve_lock_file``).
The kernel drops an flock when its holder exits, however it exits (kill -9 included), so no
stale lock survives a crash and nothing has to be cleaned up. While it holds the lock, the
process keeps ``{"pid", "host", "command", "since"}`` in the file, so that a second process
can say who holds it.

Two ``grade`` or ``watch`` runs on one output folder would otherwise both append to its
JSONL exports and both commit to its ledger: duplicated lines, committed lengths that stop
matching the files, and lines cut in half by the next recovery.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from filelock import FileLock, Timeout

from .layout import Layout


class OutputLocked(Exception):
    """Another process holds the output folder's lock. ``holder`` is what it wrote in the
    lock file (``pid``, ``host``, ``command``, ``since``), or {} when it had not written yet."""

    def __init__(self, out: Path, holder: dict):
        self.out = out
        self.holder = holder
        pid = holder.get("pid")
        who = f"process {pid}" if pid else "another process"
        if holder.get("host") and holder.get("host") != socket.gethostname():
            who += f" on {holder['host']}"
        if holder.get("command"):
            who += f" (streamgrade {holder['command']}"
            who += f", since {holder['since']})" if holder.get("since") else ")"
        super().__init__(f"output folder {out} is in use by {who}; one process at a time may write it "
                         f"(wait for it to finish or stop it, or choose another output folder with -o)")


class OutputLock:
    """The lock of the output folder ``out`` for ``command`` (grade, watch, repair).

    :meth:`acquire` takes it at once or raises :class:`OutputLocked`; OSError when the lock
    file cannot be created (read-only output). :meth:`release` gives it up (the process's
    exit does too). Usable as a context manager."""

    def __init__(self, out: str | Path, command: str = "grade"):
        self.path = Layout(out).lock
        self.out = Path(out)
        self.command = command
        self._lock: FileLock | None = None

    def _write_holder(self, fd: int) -> None:
        data = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                           "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}).encode() + b"\n"
        os.ftruncate(fd, 0)
        os.pwrite(fd, data, 0)

    def holder(self) -> dict:
        """What the lock file says of its holder ({} when unreadable or empty)."""
        try:
            with open(self.path, "rb") as f:
                value = json.loads(f.read(4096) or b"{}")
        except (OSError, ValueError):
            return {}
        return value if isinstance(value, dict) else {}

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=0, preserve_lock_file=True, on_acquired=self._write_holder)
        try:
            lock.acquire()
        except Timeout:
            raise OutputLocked(self.out, self.holder()) from None
        self._lock = lock

    def release(self) -> None:
        if self._lock is not None:
            try:
                os.truncate(self.path, 0)  # no stale holder record for the next reader
            except OSError:
                pass
            self._lock.release()
            self._lock = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    def __enter__(self) -> "OutputLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


__all__ = ["OutputLock", "OutputLocked"]
