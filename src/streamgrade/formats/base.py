"""The protocol every input format implements, and helpers they share."""

from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Any, Protocol

import msgspec

from ..config import Config
from ..errors import InputError
from ..models import Session, SessionRef


class Format(Protocol):
    """An input format.

    ``name`` is the ``source_format`` of its records. ``find(folder, names)`` returns the
    sessions whose naming file is among ``names`` (file names in ``folder``). Formats named
    by file names alone (Clones) never read files; container formats (one file, many
    sessions: JSON rows, ATIF with continuations) peek at and parse candidate files, caching
    the parse by (path, size, mtime), and never raise: a file that cannot be parsed is still
    one session whose assemble reports the error.
    ``assemble(ref, config)`` reads the files (blocking; the pipeline runs it in a worker
    thread) and returns the Session with its actions extracted, or raises
    :class:`InputError` naming the file and the line or field.
    """

    name: str

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]: ...

    def assemble(self, ref: SessionRef, config: Config) -> Session: ...


def fingerprint(files: list[str] | tuple[str, ...]) -> str:
    """sha256 hex (first 16 chars) of each file's name, size and mtime in ns; a missing file
    counts as absent. Changes whenever a file of the session is written, added or removed."""
    h = hashlib.sha256()
    for f in sorted(files):
        try:
            st = os.stat(f)
            h.update(f"{f}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        except OSError:
            h.update(f"{f}\0absent\n".encode())
    return h.hexdigest()[:16]


def read_bytes(path: str | Path) -> bytes:
    """The file's bytes; InputError when it is missing, unreadable or empty."""
    try:
        data = Path(path).read_bytes()
    except FileNotFoundError:
        raise InputError(str(path), "file is missing") from None
    except OSError as exc:
        raise InputError(str(path), f"cannot read: {exc.strerror}") from None
    if not data.strip():
        raise InputError(str(path), "file is empty")
    return data


def check_utf8(path: str | Path, data: bytes) -> None:
    """Raise InputError naming the line and byte offset of the first invalid UTF-8 byte."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise InputError(str(path), f"invalid UTF-8 byte 0x{data[exc.start]:02x} at byte offset {exc.start}", line=line) from None


def load_json(path: str | Path) -> Any:
    """Parse a whole JSON file; InputError with the line of a syntax error."""
    data = read_bytes(path)
    check_utf8(path, data)
    try:
        return msgspec.json.decode(data)
    except msgspec.DecodeError as exc:
        raise InputError(str(path), f"invalid JSON: {exc}", line=_line_of(exc, data)) from None


def iter_jsonl(path: str | Path):
    """Yield (line_number, object) for each non-blank line of a JSONL file; InputError
    naming the line for invalid JSON (a truncated last line included) or non-UTF-8 bytes."""
    data = read_bytes(path)
    check_utf8(path, data)
    decoder = msgspec.json.Decoder()
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        try:
            yield n, decoder.decode(line)
        except msgspec.DecodeError as exc:
            what = "truncated or invalid JSON" if n == data.count(b"\n") + 1 else "invalid JSON"
            raise InputError(str(path), f"{what}: {exc}", line=n) from None


def _line_of(exc: Exception, data: bytes) -> int | None:
    """The 1-based line of the byte offset msgspec names in a decode error, if any
    ("... (byte 41)" in msgspec 0.18+, "at byte 41" in older versions)."""
    m = re.search(r"(?:\(byte |at byte )(\d+)", str(exc))
    if not m:
        return None
    return data.count(b"\n", 0, int(m.group(1))) + 1


def require(obj: Any, field: str, kind: type | tuple[type, ...], path: str, *, where: str = "", line: int | None = None) -> Any:
    """``obj[field]`` checked to be of ``kind`` (bool is not a number); InputError naming
    ``where.field`` (and ``line``) if not."""
    name = f"{where}.{field}" if where else field
    if not isinstance(obj, dict) or field not in obj:
        raise InputError(path, "missing field", field=name, line=line)
    value = obj[field]
    if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
        expected = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise InputError(path, f"expected {expected}, got {type(value).__name__}", field=name, line=line)
    return value
