"""Bytes written under output folders, counted where they are written, by kind.

The sinks add what they write (:data:`METER`): ``session files`` (scores.json, results.json,
sft.json), ``pages`` (results.html, sft.html), ``index`` (index.html), ``exports``
(scores.jsonl appends and the rebuilt training files), ``frames`` (JPEG frames of
recordings) and ``other`` (the lock's holder file, agreement and calibration files). A
pipeline run takes the difference of two :meth:`WriteMeter.snapshot` calls and adds its
ledger's growth on disk (state.sqlite, which also holds the session store, and its WAL):
SQLite's own page writes are not visible to Python, so the ledger counts as the bytes it
grew by, not as the bytes SQLite wrote (WAL frames are written once more into the
database at each checkpoint).

Counts are per process: two pipelines running in one process at once would mix theirs.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

KINDS = ("session files", "pages", "index", "exports", "frames", "other", "ledger")


class WriteMeter:
    """Thread-safe byte counters by kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, int] = {}

    def add(self, kind: str, n: int) -> None:
        """Count ``n`` bytes written of ``kind``."""
        if n:
            with self._lock:
                self._counts[kind] = self._counts.get(kind, 0) + n

    def snapshot(self) -> dict[str, int]:
        """The counts so far, by kind."""
        with self._lock:
            return dict(self._counts)


METER = WriteMeter()


def since(before: dict[str, int]) -> dict[str, int]:
    """What :data:`METER` counted since the ``before`` snapshot, by kind (kinds with bytes)."""
    now = METER.snapshot()
    return {k: v - before.get(k, 0) for k, v in now.items() if v - before.get(k, 0)}


def db_size(path: str | Path) -> int:
    """Bytes on disk of an SQLite database and its WAL (0 for what does not exist)."""
    total = 0
    for p in (str(path), f"{path}-wal"):
        try:
            total += os.stat(p).st_size
        except OSError:
            pass
    return total


__all__ = ["METER", "WriteMeter", "KINDS", "since", "db_size"]
