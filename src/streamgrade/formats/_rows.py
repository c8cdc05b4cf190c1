"""Shared helpers of the row-dump formats (openai-chat, trace-rows): a cheap peek at a file's
first bytes, parsing JSON lists and JSONL files into rows, and a small LRU of parsed files
keyed by (path, size, mtime_ns) so ``find`` and the per-row ``assemble`` calls parse a file
once. What rows mean (field paths, messages, tool calls) is the mapping layer's
(:mod:`streamgrade.formats.mapping`).

Rows are kept as their raw JSON bytes (msgspec ``Raw``: no copy of a JSON list's text; one
``bytes`` per JSONL line) and decoded when a reader asks for one, so a parsed file costs its
size in memory, not the several times more of decoded Python objects; the LRU holds at most
:data:`CACHE_FILES` files and :data:`CACHE_BYTES` bytes of them. A row's raw bytes give its
content fingerprint
(:meth:`Rows.fingerprint`): a row that is unchanged keeps it whatever else the file gains,
so a JSONL file that grows by appends has only its new rows graded.

Limits (``[limits]``, see :mod:`streamgrade.inputs`): a JSON file over ``max_file_bytes``
does not parse (its one session fails with the reason); a row or JSONL line over
``max_session_bytes`` is kept as an error, and only its session fails. A JSONL file is read
in blocks, and an overlong line is skipped without being held in memory.
"""

from __future__ import annotations

import codecs
import hashlib
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import msgspec

from ..errors import InputError
from ..inputs import max_file_bytes, max_session_bytes, open_regular, too_large
from .base import _decode, check_utf8, read_bytes

CACHE_FILES = 4
"""Parsed files kept in the LRU (a file's rows are asked for once per session: find, then
each row's assemble, which the scan order keeps close together)."""

CACHE_BYTES = 256 * 1024 * 1024
"""Raw bytes of parsed files kept in the LRU at most (the newest file is kept whatever its
size)."""

_BLOCK = 1 << 20


@dataclass(frozen=True)
class Rows:
    """A parsed file: its rows' raw JSON (``raws``: a JSON list's items, a single JSON object
    as one row, or a JSONL file's lines; an InputError for a row over the size limit), the
    1-based JSONL ``lines`` of each row (None for JSON), or the ``error`` that parsing
    raised (then there are no rows)."""

    path: str
    raws: list[Any]
    lines: list[int] | None = None
    error: InputError | None = None

    def __len__(self) -> int:
        return len(self.raws)

    @property
    def nbytes(self) -> int:
        return sum(len(r) for r in self.raws if not isinstance(r, InputError))

    def row(self, index: int) -> Any:
        """Row ``index`` decoded; InputError (naming the line or row) when it is over the
        size limit or nested too deeply for the decoder."""
        raw = self.raws[index]
        if isinstance(raw, InputError):
            raise raw
        line = self.lines[index] if self.lines is not None else None
        return _decode(msgspec.json.decode, self.path, bytes(raw), line)

    def try_row(self, index: int) -> Any:
        """Row ``index`` decoded, or None when it cannot be (see :meth:`row`)."""
        try:
            return self.row(index)
        except InputError:
            return None

    def fingerprint(self, *indices: int) -> str:
        """sha256 hex (16 chars) of the raw bytes of the given rows: the content fingerprint
        of the session they make up."""
        h = hashlib.sha256()
        for i in indices:
            raw = self.raws[i]
            data = str(raw).encode() if isinstance(raw, InputError) else bytes(raw)
            h.update(len(data).to_bytes(8, "little"))
            h.update(data)
        return h.hexdigest()[:16]

    def where(self, index: int, field: str = "") -> tuple[int | None, str]:
        """(line, field) naming row ``index`` and ``field`` inside it: JSON files give the
        field ``[17].traj[3]``, JSONL files line 18 and the field ``traj[3]``."""
        if self.lines is not None:
            return self.lines[index], field
        if not field:
            return None, f"[{index}]"
        return None, f"[{index}]{'' if field.startswith('[') else '.'}{field}"

    def fail(self, index: int, field: str, message: str) -> InputError:
        """An InputError naming the file, and the row's line or field."""
        line, name = self.where(index, field)
        return InputError(self.path, message, line=line, field=name or None)


_cache: OrderedDict[tuple[str, int, int], Rows] = OrderedDict()
_lock = threading.Lock()


def looks_like_json(path: str | Path) -> bool:
    """True when the file is a regular file that looks like JSON: its first non-blank byte
    is ``[`` or ``{``, or (a dump whose first bytes are corrupted) its first 256 bytes hold
    invalid UTF-8 and, with the invalid bytes dropped, the first non-blank character is
    ``[``, ``{`` or ``"`` (e.g. ``\\xff"task_id": 0, ...}``, a JSONL line whose ``{`` was
    overwritten). Plain text (``hello``), other binary data, FIFOs and devices do not
    (opened without blocking; see :func:`streamgrade.inputs.open_regular`)."""
    try:
        with open_regular(path) as fh:
            head = fh.read(256)
    except (OSError, InputError):
        return False
    head = head.lstrip()
    if head[:1] in (b"[", b"{"):
        return True
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return False  # valid UTF-8 (so far) that does not start like JSON
    except UnicodeDecodeError:
        pass
    text = head.decode("utf-8", "ignore").lstrip()
    return text[:1] in ("[", "{", '"')


def peek(path: str | Path, n: int = 65536) -> bytes:
    """The first ``n`` bytes of a regular file (opened without blocking, see
    :func:`streamgrade.inputs.open_regular`), or b"" when it cannot be read: for the cheap
    content checks of ``find``."""
    try:
        with open_regular(path) as fh:
            return fh.read(n)
    except (OSError, InputError):
        return b""


def load_rows(path: str | Path) -> Rows:
    """The file's rows, from the LRU when the file's size and mtime are unchanged. Parse
    errors are returned in ``Rows.error`` (and cached), not raised."""
    p = str(path)
    try:
        st = os.stat(p)
    except OSError:
        return Rows(p, [], error=InputError(p, "file is missing"))
    key = (p, st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
        rows = _parse(p)
        _cache[key] = rows
        total = sum(r.nbytes for r in _cache.values())
        while len(_cache) > 1 and (total > CACHE_BYTES or len(_cache) > CACHE_FILES):
            total -= _cache.popitem(last=False)[1].nbytes
        return rows


def clear_cache() -> None:
    """Forget every parsed file (tests)."""
    with _lock:
        _cache.clear()


def _parse(path: str) -> Rows:
    try:
        return _parse_jsonl(path) if path.endswith(".jsonl") else _parse_json(path)
    except InputError as exc:
        return Rows(path, [], error=exc)


_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])
_RAW = msgspec.json.Decoder(msgspec.Raw)


def _parse_json(path: str) -> Rows:
    """A JSON file's rows as raw items: the items of a top-level list, or the document as
    one row; each over ``max_session_bytes`` replaced by its InputError. Raises InputError
    (see :func:`~streamgrade.formats.base.load_json`) for bad JSON or a file over
    ``max_file_bytes``."""
    data = read_bytes(path, max_file_bytes())
    check_utf8(path, data)
    decoder = _RAW_LIST if data.lstrip()[:1] == b"[" else _RAW
    doc = _decode(decoder.decode, path, data, None)
    items = doc if isinstance(doc, list) else [doc]
    limit = max_session_bytes()
    return Rows(path, [too_large(path, len(r), limit, f"row [{i}]") if len(r) > limit else r
                       for i, r in enumerate(items)])


def _lines(f, limit: int) -> Iterator[tuple[int, int, bytes | int, bool]]:
    """(line number, byte offset, the line or, when it is over ``limit``, its length,
    whether it is the unterminated last line) for each line of the binary file ``f``, read
    in blocks; an overlong line is never held in memory."""
    n = pos = 0
    buf = bytearray()
    over: int | None = None
    while block := f.read(_BLOCK):
        start = 0
        while True:
            i = block.find(b"\n", start)
            piece = block[start:] if i < 0 else block[start:i]
            if over is not None:
                over += len(piece)
            else:
                buf += piece
                if len(buf) > limit:
                    over, buf = len(buf), bytearray()
            if i < 0:
                break
            n += 1
            yield n, pos, (over if over is not None else bytes(buf)), False
            pos += (over if over is not None else len(buf)) + 1
            buf, over, start = bytearray(), None, i + 1
    if over is not None or buf:
        yield n + 1, pos, (over if over is not None else bytes(buf)), True


def _parse_jsonl(path: str) -> Rows:
    """A JSONL file's non-blank lines, each validated as JSON and kept raw; a line over
    ``max_session_bytes`` is kept as its InputError. Raises InputError naming the line for
    invalid JSON (a truncated last line included), JSON nested too deeply or non-UTF-8
    bytes, and for a file that is empty or over ``max_file_bytes``."""
    limit = max_session_bytes()
    raws: list[Any] = []
    lines: list[int] = []
    with open_regular(path, max_file_bytes()) as f:
        for n, offset, line, last in _lines(f, limit):
            if isinstance(line, int):
                raws.append(too_large(path, line, limit, "line", line=n))
            elif not line.strip():
                continue
            else:
                try:
                    line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise InputError(path, f"invalid UTF-8 byte 0x{line[exc.start]:02x} at byte offset "
                                           f"{offset + exc.start}", line=n) from None
                _decode(_RAW.decode, path, line, n, truncated_is_last=last)
                raws.append(line)
            lines.append(n)
    if not raws:
        raise InputError(path, "file is empty")
    return Rows(path, raws, lines=lines)


def row_at(path: str, locator: str) -> tuple[Rows, int, Any]:
    """(the file's rows, the index ``locator`` names, that row decoded) for a reader's
    ``assemble``. Raises InputError naming the file: it does not parse, the locator is not a
    row index, the row is gone, or it is over the size limit."""
    rows = load_rows(path)
    if rows.error is not None:
        raise rows.error
    try:
        index = int(locator)
    except ValueError:
        raise InputError(path, f"bad row locator {locator!r}") from None
    if not 0 <= index < len(rows):
        raise InputError(path, f"row {index} not found: the file has {len(rows)} rows")
    return rows, index, rows.row(index)


def unique_id(seen: set[str], sid: str, index: int) -> str:
    """``sid``, or ``sid.row<index>`` when another row of the same file took it first;
    records the result in ``seen`` (session ids unique within a file)."""
    if sid in seen:
        sid = f"{sid}.row{index}"
    seen.add(sid)
    return sid


def file_stem(name: str) -> str:
    """The name without ``.traces.json``, ``.jsonl`` or ``.json``."""
    for suffix in (".traces.json", ".jsonl", ".json"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return Path(name).stem


def sanitise(text: str) -> str:
    """``text`` with runs of characters other than letters, digits, ``.``, ``_`` and ``-``
    replaced by ``_`` (for session ids)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "_"
