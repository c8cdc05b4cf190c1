"""One process owns an output folder: an OS lock on ``OUT/.streamgrade.lock``.

The lock is ``flock(2)`` (an exclusive, non-blocking lock on the file's open description)
through the filelock library (tox-dev/filelock, ``FileLock``; its API is the same from 3.12
to 4.x). The kernel drops an flock when its holder exits, however it exits (kill -9
included), so no stale lock survives a crash and nothing has to be cleaned up. Once it holds
the lock, the process writes ``{"pid", "host", "command", "since"}`` to
``OUT/.streamgrade.holder``, so that a second process can say who holds it (a record left
by a crashed holder is never believed: its pid must be alive).

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
        layout = Layout(out)
        self.path, self.holder_path = layout.lock, layout.lock_holder
        self.out = Path(out)
        self.command = command
        self._lock: FileLock | None = None

    def holder(self) -> dict:
        """Who holds the lock, from the holder record, when that process is alive on this
        host ({} when unknown)."""
        try:
            value = json.loads(self.holder_path.read_bytes()[:4096] or b"{}")
        except (OSError, ValueError):
            return {}
        if not isinstance(value, dict):
            return {}
        pid = value.get("pid")
        if value.get("host") == socket.gethostname() and isinstance(pid, int):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return {}  # a record left by a holder that died
            except OSError:
                pass  # alive, another user's
        return value

    def acquire(self) -> None:
        from .atomic import write_atomic

        self.path.parent.mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(self.path), timeout=0)
        try:
            lock.acquire()
        except Timeout:
            raise OutputLocked(self.out, self.holder()) from None
        self._lock = lock
        record = {"pid": os.getpid(), "host": socket.gethostname(), "command": self.command,
                  "since": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        try:
            write_atomic(self.holder_path, json.dumps(record).encode() + b"\n")
        except OSError:
            self.release()
            raise

    def release(self) -> None:
        if self._lock is not None:
            try:
                self.holder_path.unlink()
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
