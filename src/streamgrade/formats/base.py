"""The protocol every input format implements, and helpers they share."""

from __future__ import annotations

import hashlib
import math
import os
import re
from pathlib import Path
from typing import Any, Protocol

import msgspec

from ..config import Config
from ..errors import InputError
from ..inputs import read_regular
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
    A format may set ``exclusive = True``: the files of the sessions it finds are then not
    shown to the formats after it in the registry (the generic row readers), so that one
    file is never read as two kinds of session. An exclusive format may also define
    ``withhold(folder, names) -> set[str]``: names of files of its own layout that it does
    not read (a dataset's raw sample beside the trajectories it grades); they are kept from
    the formats after it too, and reported as not recognised with the reason
    :func:`~streamgrade.formats.explain.explain` gives (never dropped silently).
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


def within(path: str | Path, root: str | Path) -> bool:
    """Whether ``path`` lies inside the folder ``root`` (or is it), both lexically (after
    normalising ``.`` and ``..``) and after resolving symlinks (``os.path.realpath``, which
    follows a link whether or not its target exists). Only names and links are looked at,
    never a file's content; a path that cannot be resolved (NUL byte) is not inside. Use it
    before checking that a file a document names exists, so that the answer for a path
    outside does not depend on what is there."""
    try:
        lex_root, lex = os.path.abspath(root), os.path.abspath(path)
        if os.path.commonpath([lex_root, lex]) != lex_root:
            return False
        real_root, real = os.path.realpath(root), os.path.realpath(path)
        return os.path.commonpath([real_root, real]) == real_root
    except ValueError:  # a NUL byte, or paths on different drives
        return False


def read_bytes(path: str | Path, max_bytes: int | None = None) -> bytes:
    """The file's bytes; InputError when it is missing, unreadable, not a regular file,
    larger than ``max_bytes`` (default ``[limits] max_session_bytes``: a file holding one
    session) or empty (see :mod:`streamgrade.inputs`)."""
    data = read_regular(path, max_bytes)
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


def load_json(path: str | Path, max_bytes: int | None = None) -> Any:
    """Parse a whole JSON file of at most ``max_bytes`` (see :func:`read_bytes`);
    InputError naming the line of a syntax error (for an error msgspec gives no byte offset
    for: the line where truncated input ends, the line of a number out of range, the line
    where nesting too deep for the decoder is deepest)."""
    data = read_bytes(path, max_bytes)
    check_utf8(path, data)
    return _decode(msgspec.json.decode, path, data, None)


def iter_jsonl(path: str | Path):
    """Yield (line_number, object) for each non-blank line of a JSONL file; InputError
    naming the line for invalid JSON (a truncated last line included), JSON nested too
    deeply, or non-UTF-8 bytes."""
    data = read_bytes(path)
    check_utf8(path, data)
    decoder = msgspec.json.Decoder()
    last = data.count(b"\n") + 1
    for n, line in enumerate(data.split(b"\n"), start=1):
        if not line.strip():
            continue
        yield n, _decode(decoder.decode, path, line, n, truncated_is_last=n == last)


def _decode(decode, path: str | Path, data: bytes, line: int | None, *, truncated_is_last: bool = False) -> Any:
    """``decode(data)`` with every decoder failure as an InputError naming ``path`` and a
    line: ``line`` when given (JSONL), else the line found in ``data``."""
    try:
        return decode(data)
    except msgspec.DecodeError as exc:
        what = "truncated or invalid JSON" if truncated_is_last else "invalid JSON"
        at = line if line is not None else _line_of(exc, data)
        raise InputError(str(path), f"{what}: {exc}", line=at) from None
    except RecursionError:
        depth, offset = _max_depth(data)
        at = line if line is not None else data.count(b"\n", 0, offset) + 1
        raise InputError(str(path), f"invalid JSON: nested too deeply ({depth} levels) for the decoder", line=at) from None


def _line_of(exc: Exception, data: bytes) -> int:
    """The 1-based line of a decode error: the byte offset msgspec names ("... (byte 41)"
    in msgspec 0.18+, "at byte 41" in older versions); for "Input data was truncated" the
    line where the input ends (its last non-blank byte); for "Number out of range" the line
    of the first number literal that overflows a float; else the line where the input ends."""
    text = str(exc)
    m = re.search(r"(?:\(byte |at byte )(\d+)", text)
    if m:
        return data.count(b"\n", 0, int(m.group(1))) + 1
    if "out of range" in text:
        offset = _overflow_offset(data)
        if offset is not None:
            return data.count(b"\n", 0, offset) + 1
    return data.rstrip().count(b"\n") + 1


_STRING_OR_NUMBER = re.compile(rb'"(?:[^"\\]|\\.)*"?|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?')


def _overflow_offset(data: bytes) -> int | None:
    """Byte offset of the first number literal (outside strings) too large for a float."""
    for m in _STRING_OR_NUMBER.finditer(data):
        tok = m.group()
        if tok[:1] == b'"' or not any(c in tok for c in b".eE"):
            continue  # strings; integers are arbitrary precision
        try:
            if math.isinf(float(tok)):
                return m.start()
        except ValueError:
            continue
    return None


def _max_depth(data: bytes) -> tuple[int, int]:
    """(deepest nesting of arrays and objects outside strings, byte offset where it is
    first reached)."""
    depth = best = at = 0
    in_str = esc = False
    for i, c in enumerate(data):
        if in_str:
            if esc:
                esc = False
            elif c == 0x5C:  # backslash
                esc = True
            elif c == 0x22:
                in_str = False
        elif c == 0x22:
            in_str = True
        elif c in (0x5B, 0x7B):
            depth += 1
            if depth > best:
                best, at = depth, i
        elif c in (0x5D, 0x7D):
            depth -= 1
    return best, at


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
