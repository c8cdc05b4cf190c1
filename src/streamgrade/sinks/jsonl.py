"""Run-level JSONL exports appended exactly once, with no half line, across crashes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .ledger import Ledger

log = logging.getLogger("streamgrade.sinks")


class JsonlExport:
    """An append-only JSONL file under OUT/exports/ whose committed length lives in the
    ledger (see :mod:`streamgrade.sinks.ledger` for the exactly-once rule).

    ``recover()`` must run before the first append: it cuts bytes beyond the committed length.
    ``append_many(lines)`` writes lines (bytes, no newline) with one fsync, returning the new
    length for the ledger; on OSError (disk full, read-only) it cuts back and re-raises, so the
    file never keeps half a line; ``rollback(size)`` undoes appends whose commit failed."""

    def __init__(self, path: str | Path, ledger: Ledger):
        self.path = Path(path)
        self.name = self.path.name
        self.ledger = ledger
        self.size = 0

    def recover(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        committed = self.ledger.committed_bytes(self.name)
        size = self.path.stat().st_size if self.path.exists() else 0
        if committed is None:
            committed = _last_newline(self.path, size)
            if committed != size:
                log.warning("%s: cutting %d bytes of a partial last line", self.path, size - committed, extra={"file": str(self.path)})
        if size > committed:
            log.warning(
                "%s: cutting %d bytes appended after the last committed line (interrupted run)",
                self.path, size - committed, extra={"file": str(self.path)},
            )
            os.truncate(self.path, committed)
            size = committed
        elif size < committed:
            log.warning("%s: file is shorter than the ledger says (%d < %d bytes); was it edited?", self.path, size, committed,
                        extra={"file": str(self.path)})
        self.size = size
        self.ledger.set_committed_bytes(self.name, size)

    def append(self, line: bytes) -> int:
        """Append one line; see :meth:`append_many`."""
        return self.append_many([line])

    def append_many(self, lines: list[bytes], *, fsync: bool = True) -> int:
        """Append lines (bytes without newlines) in one write and one fsync (or none, with
        ``fsync=False``, when the caller flushes the filesystem itself); returns the new
        length. On OSError the file is cut back to its length before the call and the error
        re-raised."""
        if not lines:
            return self.size
        data = b"".join(line + b"\n" for line in lines)
        try:
            with open(self.path, "ab") as f:
                f.write(data)
                f.flush()
                if fsync:
                    os.fsync(f.fileno())
        except OSError:
            self.rollback(self.size)
            raise
        self.size += len(data)
        return self.size

    def rollback(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (a batch whose ledger commit will not happen)."""
        try:
            os.truncate(self.path, size)
        except OSError:
            pass
        self.size = size


def _last_newline(path: Path, size: int) -> int:
    """Length of the file up to and including its last newline (0 if none)."""
    if size == 0:
        return 0
    with open(path, "rb") as f:
        pos = size
        while pos > 0:
            step = min(65536, pos)
            f.seek(pos - step)
            block = f.read(step)
            i = block.rfind(b"\n")
            if i >= 0:
                return pos - step + i + 1
            pos -= step
    return 0
