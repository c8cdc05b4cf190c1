"""Run-level JSONL exports appended exactly once, with no half line, across crashes."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from .atomic import sync_filesystem
from .layout import APPENDED_EXPORTS, SCORES_JSONL, Layout
from .ledger import Ledger
from .meter import METER

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
        """Make the file agree with the ledger before the first append.

        The normal case after a crash (kill -9 between an append and its ledger commit):
        the file is longer than its committed length, which ends a line; the bytes beyond it
        belong to sessions still pending, and are cut. For scores.jsonl, whose lines name
        their session, a line beyond the committed length that the ledger records as
        appended is never cut.

        Anything else means the file and the ledger disagree (a second process wrote the
        folder, a file was edited or replaced, the ledger was deleted): appending would glue
        a line onto half a line, or lose or duplicate lines. Raises :class:`ExportMismatch`
        naming the file, both lengths and the repair command; nothing is changed."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.touch(exist_ok=True)
        size = self.path.stat().st_size
        committed = self.ledger.committed_bytes(self.name)
        if committed is None:
            if size:
                raise ExportMismatch(self.path, f"holds {size} bytes but the ledger {self.ledger.path} records no "
                                                "append to it (was the ledger deleted or replaced?)")
            committed = 0
        elif committed > size:
            raise ExportMismatch(self.path, f"is {size} bytes, shorter than the {committed} bytes the ledger "
                                            "records as committed (was it edited or truncated?)")
        elif committed and _byte_at(self.path, committed - 1) != b"\n":
            raise ExportMismatch(self.path, f"the ledger's committed length ({committed} bytes) ends in the middle "
                                            "of a line")
        if size > committed:
            lost = _committed_lines_beyond(self.path, committed, self.ledger) if self.name == SCORES_JSONL else 0
            if lost:
                raise ExportMismatch(self.path, f"{lost} lines beyond the committed length ({committed} of {size} "
                                                "bytes) belong to sessions the ledger records as appended")
            log.warning("%s: cutting %d bytes appended after the last committed line (interrupted run)",
                        self.path, size - committed, extra={"file": str(self.path)})
            os.truncate(self.path, committed)
            size = committed
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
        METER.add("exports", len(data))
        self.size += len(data)
        return self.size

    def rollback(self, size: int) -> None:
        """Cut the file back to ``size`` bytes (a batch whose ledger commit will not happen)."""
        try:
            os.truncate(self.path, size)
        except OSError:
            pass
        self.size = size


class ExportSet:
    """The run-level JSONL exports of an output folder (:data:`.layout.APPENDED_EXPORTS`),
    appended together in batches: ``recover()`` each before the first batch (see
    :meth:`JsonlExport.recover`); :meth:`append_batch` is one group commit's file work."""

    def __init__(self, layout: Layout, ledger: Ledger):
        self.layout = layout
        self.exports = {name: JsonlExport(layout.export(name), ledger) for name in APPENDED_EXPORTS}

    def __iter__(self):
        return iter(self.exports)

    def recover(self) -> None:
        for exp in self.exports.values():
            exp.recover()

    def sizes(self) -> dict[str, int]:
        """Each export's length (bytes) now."""
        return {name: exp.size for name, exp in self.exports.items()}

    def rollback(self, sizes: dict[str, int]) -> None:
        """Cut every export back to ``sizes`` (a batch whose ledger commit failed)."""
        for name, exp in self.exports.items():
            exp.rollback(sizes[name])

    def append_batch(self, lines_by_item: list[list[tuple[str, bytes]]]) -> dict[str, int]:
        """Blocking: each export's new lines (``(export name, line)`` per item) in one
        append, then one flush of the output filesystem (syncfs), which also makes the
        batch's per-session files durable: the ledger commit that follows never names a
        session whose files could be lost. Returns the new committed length of each export
        appended to. On OSError every append of the batch is rolled back and it re-raises."""
        before = self.sizes()
        committed: dict[str, int] = {}
        try:
            for name, exp in self.exports.items():
                lines = [line for item_lines in lines_by_item for n, line in item_lines if n == name]
                if lines:
                    committed[name] = exp.append_many(lines, fsync=False)
            sync_filesystem(self.layout.out)
        except OSError:
            self.rollback(before)
            raise
        return committed


class ExportMismatch(Exception):
    """A JSONL export and the ledger disagree (see :meth:`JsonlExport.recover`); the message
    names the file and says how to repair the folder (``streamgrade repair OUT``)."""

    def __init__(self, path: Path, what: str):
        self.path = path
        out = path.parent.parent
        super().__init__(f"{path} {what}. Nothing was changed. Run `streamgrade repair {out}` to rebuild the "
                         "exports from the session folders and the ledger (the old files are kept in "
                         f"{out / 'exports' / 'backup-<time>'}/)")


def _byte_at(path: Path, offset: int) -> bytes:
    with open(path, "rb") as f:
        f.seek(offset)
        return f.read(1)


def _committed_lines_beyond(path: Path, offset: int, ledger: Ledger) -> int:
    """How many scores.jsonl lines after ``offset`` the ledger records as appended (lines
    that a cut would lose)."""
    import msgspec

    keys = []
    with open(path, "rb") as f:
        f.seek(offset)
        for line in f:
            try:
                rec = msgspec.json.decode(line)
            except msgspec.DecodeError:
                continue  # a half line: never committed
            if isinstance(rec, dict):
                keys.append((str(rec.get("session_id")), str(rec.get("fingerprint")), str(rec.get("status"))))
    if not keys:
        return 0
    done = ledger.appended_many([(sid, fp) for sid, fp, _ in keys])
    return sum((sid, fp, SCORES_JSONL, status) in done for sid, fp, status in keys)
