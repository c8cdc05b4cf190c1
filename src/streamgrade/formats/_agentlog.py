"""What the agent-log readers (claude-code, codex-cli) share.

Cheap looks at JSONL files for ``find``: the first lines of a file's head, and whether a byte
pattern occurs anywhere in it, without parsing the file. Never raises: a file that cannot be
opened (missing, a FIFO, unreadable) looks like nothing. And :func:`span`, a session's
duration from its lines' timestamps.

A small cache keyed by (path, size, mtime_ns) keeps what a reader concluded about a file, so
``find`` and the unrecognised-file accounting (:func:`streamgrade.formats.explain.owned`) look
at a file once.
"""

from __future__ import annotations

import os
import re
import threading
from collections import OrderedDict
from datetime import datetime
from typing import Any, Callable, Iterable

import msgspec

from ..errors import InputError
from ..inputs import open_regular

HEAD_BYTES = 64 * 1024
_BLOCK = 1 << 20
_decoder = msgspec.json.Decoder()


def head(path: str, size: int = HEAD_BYTES) -> bytes:
    """The first ``size`` bytes of a regular file; b"" when it cannot be read."""
    try:
        with open_regular(path) as fh:
            return fh.read(size)
    except (OSError, InputError):
        return b""


def first_records(data: bytes, limit: int = 8) -> tuple[list[Any], bytes]:
    """The JSON values of the first ``limit`` complete non-blank lines of ``data`` (a file's
    head), None for a line that is not JSON; and the start of the first non-blank line when
    it is not complete within ``data`` (a line longer than the head), else b""."""
    out: list[Any] = []
    lines = data.split(b"\n")
    complete, rest = lines[:-1], lines[-1]
    for line in complete:
        if not line.strip():
            continue
        try:
            out.append(_decoder.decode(line))
        except (msgspec.DecodeError, RecursionError):
            out.append(None)
        if len(out) >= limit:
            break
    partial = rest if not out and rest.strip() else b""
    return out, partial


def contains(path: str, pattern: re.Pattern[bytes], overlap: int = 256) -> bool:
    """Whether ``pattern`` (which must match fewer than ``overlap`` bytes) occurs in the file,
    read in 1 MB blocks; False when it cannot be read."""
    try:
        with open_regular(path) as fh:
            tail = b""
            while block := fh.read(_BLOCK):
                if pattern.search(tail + block):
                    return True
                tail = block[-overlap:]
    except (OSError, InputError):
        return False
    return False


class Verdicts:
    """What a reader concluded about files, by (path, size, mtime_ns); at most ``size``
    entries (oldest dropped). ``get(path, judge)`` returns the cached verdict or computes
    ``judge(path)`` (never raising) and keeps it."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._cache: OrderedDict[tuple[str, int, int], Any] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: str, judge: Callable[[str], Any]) -> Any:
        try:
            st = os.stat(path)
        except OSError:
            return judge(path)
        key = (path, st.st_size, st.st_mtime_ns)
        with self._lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        verdict = judge(path)
        with self._lock:
            self._cache[key] = verdict
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return verdict

    def clear(self) -> None:
        with self._lock:
            self._cache.clear()


def str_or_none(v: Any) -> str | None:
    """``v`` when it is a string, else None: for JSON values used as keys or looked up in a
    set (a list there would raise TypeError: unhashable)."""
    return v if isinstance(v, str) else None


def span(times: Iterable[Any]) -> float | None:
    """Seconds from the earliest to the latest ISO 8601 timestamp with a UTC offset ("Z"
    included) among ``times`` (others are skipped); None for fewer than two."""
    parsed = []
    for t in times:
        if not isinstance(t, str):
            continue
        try:
            d = datetime.fromisoformat(t.replace("Z", "+00:00"))
        except ValueError:
            continue
        if d.tzinfo is not None:
            parsed.append(d)
    return round((max(parsed) - min(parsed)).total_seconds(), 3) if len(parsed) >= 2 else None


__all__ = ["head", "first_records", "contains", "span", "str_or_none", "Verdicts", "HEAD_BYTES"]
