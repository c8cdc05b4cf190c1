"""Reading Inspect AI evaluation log files: the ``.eval`` zip and the ``.json`` log, as an
index of their samples (for ``find``) and one sample at a time (for ``assemble``).

Source: UKGovernmentBEIS/inspect_ai, ``src/inspect_ai/log/_recorders/eval.py`` (the zip
layout), ``log/_recorders/json.py`` (the JSON log), ``log/_recorders/chunked/format.py``
(the experimental per-sample chunk layout) and ``log/_log.py`` (``EvalLog``).

``.eval`` (a zip: deflate by default; zstd when Inspect runs with ``INSPECT_USE_ZSTD``,
read here with :mod:`zstandard` since Python 3.11's zipfile lacks it; a member in another
method, such as the deflate64 Inspect can read, fails with the method named): ``header.json`` (the
``EvalLog`` without samples, once the eval has finished), ``_journal/start.json``
(``{version, eval, plan}``, written when it starts: a running log has only this),
``samples/<id>_epoch_<n>.json`` (one ``EvalSample`` each), ``summaries.json``,
``reductions.json``, ``_journal/summaries/<n>.json``. Early versions wrote ``start.json`` and
``results.json`` at the root. The zip is never extracted: members are read through
:mod:`zipfile` one at a time, each refused before decompression when its declared size is
over ``[limits] max_session_bytes`` (and zipfile stops at the declared size, so a member
that lies about it fails its CRC check instead of filling memory).

``.json``: one object ``{version, status, eval, plan, results, stats, error?, samples:[...],
reductions}``, pretty-printed with ``version`` first (the field order is part of the format),
at most ``[limits] max_file_bytes``; samples are kept as raw JSON and decoded one at a time.
Python's writer may emit ``NaN``/``Infinity``: such a file is read with :mod:`json`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import struct
import threading
import weakref
import zipfile
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ..errors import InputError
from ..inputs import max_file_bytes, max_session_bytes, open_regular
from .base import _decode, _line_of, check_utf8

HEADER, START, LEGACY_START, LEGACY_RESULTS = "header.json", "_journal/start.json", "start.json", "results.json"
SAMPLE_RE = re.compile(r"^samples/(?P<id>.+)_epoch_(?P<epoch>\d+)\.json$")
CHUNKED_RE = re.compile(r"^samples/(?P<id>.+)_epoch_(?P<epoch>\d+)/sample\.json$")
JSON_HEAD_RE = re.compile(rb'^\s*\{\s*"version"\s*:\s*\d+\s*,')
PEEK_BYTES = 4096
ZSTD = 93  # ZIP method number of Zstandard (zipfile.ZIP_ZSTANDARD from Python 3.14)
_METHODS = {9: "deflate64", 12: "bzip2", 14: "lzma", 95: "xz", 98: "ppmd"}
_HEADER_KEYS = ("version", "status", "eval", "plan", "results", "stats", "error")


@dataclass
class Entry:
    """One sample of a log: its ``id`` as text, ``epoch``, ``locator`` (the zip member, or
    the index in ``samples``), a content ``fingerprint``, and ``chunked`` for a sample in
    the experimental chunk layout (not read)."""

    id: str | None
    epoch: int | None
    locator: str
    fingerprint: str
    chunked: bool = False


@dataclass
class LogIndex:
    """A log file as ``find`` sees it: ``error`` when the file as a whole cannot be read;
    ``header`` the log's top level without samples (``header_error`` when that part is
    broken); ``entries`` its samples in Inspect's order (epoch, then id)."""

    path: str
    kind: str  # "eval" or "json"
    error: InputError | None = None
    header: dict[str, Any] = field(default_factory=dict)
    header_error: InputError | None = None
    entries: list[Entry] = field(default_factory=list)
    zip: zipfile.ZipFile | None = None
    raws: list[Any] = field(default_factory=list)  # .json: raw sample JSON (msgspec.Raw) or decoded objects
    _by_locator: dict[str, Entry] | None = field(default=None, repr=False)

    def entry(self, locator: str) -> Entry | None:
        """The sample at ``locator``, or None."""
        if self._by_locator is None:
            self._by_locator = {e.locator: e for e in self.entries}
        return self._by_locator.get(locator)


_cache: OrderedDict[tuple[str, int, int], LogIndex] = OrderedDict()
_CACHE_MAX = 4
_lock = threading.Lock()  # assemble runs in worker threads


def looks_like_json_log(path: str) -> bool:
    """Cheap check of a ``.json`` file: an object whose first key is ``version`` (a number)
    and whose first 4 KB name ``eval``: how Inspect writes every JSON log. Never raises."""
    try:
        with open_regular(path) as fh:
            head = fh.read(PEEK_BYTES)
    except (OSError, InputError):
        return False
    return bool(JSON_HEAD_RE.match(head)) and b'"eval"' in head


def load_index(path: str) -> LogIndex:
    """The cached index of the log at ``path`` (keyed by path, size and mtime); never
    raises: a file that cannot be read is an index with ``error``."""
    try:
        st = os.stat(path)
    except OSError:
        st = None
    key = (path, st.st_size if st else -1, st.st_mtime_ns if st else -1)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    kind = "eval" if path.endswith(".eval") else "json"
    try:
        index = _index_eval(path) if kind == "eval" else _index_json(path)
    except InputError as exc:
        index = LogIndex(path, kind, error=exc)
    with _lock:
        for k in [k for k in _cache if k[0] == path]:
            del _cache[k]
        _cache[key] = index
        while len(_cache) > _CACHE_MAX:
            _cache.popitem(last=False)
    return index


def clear_cache() -> None:
    """Forget every parsed log (tests)."""
    with _lock:
        _cache.clear()


def decode_json(path: str, data: bytes, member: str | None = None) -> Any:
    """JSON ``data`` decoded (``NaN``/``Infinity`` accepted, as Inspect's Python writer emits
    them); InputError naming the file and, in a zip, the member (with the line inside it)."""
    try:
        return msgspec.json.decode(data)
    except (msgspec.DecodeError, RecursionError):
        pass
    try:
        return json.loads(data)
    except (ValueError, RecursionError):
        pass
    if member is None:
        check_utf8(path, data)
        return _decode(msgspec.json.decode, path, data, None)  # raises, naming the line
    try:
        data.decode("utf-8")
        msgspec.json.decode(data)
        reason = "invalid JSON"
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        reason = f"invalid UTF-8 byte 0x{data[exc.start]:02x} at line {line} (byte offset {exc.start})"
    except msgspec.DecodeError as exc:
        reason = f"invalid JSON at line {_line_of(exc, data)}: {exc}"
    except RecursionError:
        reason = "invalid JSON: nested too deeply for the decoder"
    raise InputError(path, reason, field=member)


# -- .eval --------------------------------------------------------------------------------
def _open_zip(path: str) -> zipfile.ZipFile:
    fh = open_regular(path)
    try:
        return zipfile.ZipFile(fh)
    except zipfile.BadZipFile as exc:
        fh.close()
        raise InputError(path, f"truncated or corrupt zip archive: {exc}") from None
    except Exception as exc:  # noqa: BLE001 - zipfile raises many kinds on damaged input
        fh.close()
        raise InputError(path, f"corrupt zip archive: {type(exc).__name__}: {exc}") from None


def read_member(index: LogIndex, name: str) -> Any:
    """The JSON of zip member ``name``, decompressed within ``[limits] max_session_bytes``;
    InputError naming the file and the member (missing, over the limit, unsupported
    compression, encrypted, truncated, bad CRC, not JSON)."""
    zf = index.zip
    path = index.path
    try:
        info = zf.getinfo(name) if zf is not None else None
    except KeyError:
        info = None
    if info is None:
        raise InputError(path, "member is missing from the zip archive", field=name)
    limit = max_session_bytes()
    if info.file_size > limit:
        raise InputError(path, f"member is {info.file_size:,} bytes uncompressed, over the limit of {limit:,} "
                               "([limits] max_session_bytes); not decompressed", field=name)
    if info.compress_type == ZSTD:
        return decode_json(path, _read_zstd(path, info, limit), name)
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        method = _METHODS.get(info.compress_type, f"method {info.compress_type}")
        raise InputError(path, f"member is compressed with {method}, which this reader cannot decompress "
                               "(stored, deflate and zstd only)", field=name)
    try:
        with zf.open(info) as f:
            data = f.read(limit + 1)
    except Exception as exc:  # noqa: BLE001 - BadZipFile, zlib.error, EOFError, RuntimeError (encrypted), ...
        raise InputError(path, f"cannot decompress member (truncated or corrupt zip): {type(exc).__name__}: {exc}",
                         field=name) from None
    if len(data) > limit:
        raise InputError(path, f"member decompresses to more than {limit:,} bytes ([limits] max_session_bytes)",
                         field=name)
    return decode_json(path, data, name)


def _read_zstd(path: str, info: zipfile.ZipInfo, limit: int) -> bytes:
    """A zstd member's bytes (ZIP method 93), at most ``limit`` of them, CRC checked; read
    through its own file handle (the local header gives where its data starts)."""
    import zstandard

    name = info.filename
    try:
        with open_regular(path) as fh:
            fh.seek(info.header_offset)
            head = fh.read(30)
            if len(head) != 30 or head[:4] != b"PK\x03\x04":
                raise InputError(path, "bad local header (truncated or corrupt zip)", field=name)
            name_len, extra_len = struct.unpack("<HH", head[26:30])
            fh.seek(info.header_offset + 30 + name_len + extra_len)
            packed = fh.read(info.compress_size)
        if len(packed) != info.compress_size:
            raise InputError(path, "member data is cut short (truncated zip)", field=name)
        out = bytearray()
        with zstandard.ZstdDecompressor().stream_reader(packed) as reader:
            while len(out) <= limit and (chunk := reader.read(min(1 << 20, limit + 1 - len(out)))):
                out += chunk
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - zstandard.ZstdError, OSError, ...
        raise InputError(path, f"cannot decompress zstd member: {type(exc).__name__}: {exc}", field=name) from None
    if len(out) > limit:
        raise InputError(path, f"member decompresses to more than {limit:,} bytes ([limits] max_session_bytes)",
                         field=name)
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise InputError(path, "member fails its size or CRC-32 check (truncated or corrupt zip)", field=name)
    return bytes(out)


def _index_eval(path: str) -> LogIndex:
    zf = _open_zip(path)
    index = LogIndex(path, "eval", zip=zf)
    weakref.finalize(index, zf.fp.close)  # zipfile leaves a file object it was given open
    try:
        infos = zf.infolist()
    except Exception as exc:  # noqa: BLE001
        raise InputError(path, f"corrupt zip archive: {exc}") from None
    names = {i.filename for i in infos}
    entries: list[tuple[tuple, Entry]] = []
    for info in infos:
        m = SAMPLE_RE.match(info.filename) or CHUNKED_RE.match(info.filename)
        if m is None:
            continue
        chunked = info.filename.endswith("/sample.json")
        fp = hashlib.sha256(f"{info.filename}\0{info.CRC}\0{info.file_size}".encode()).hexdigest()[:16]
        epoch = int(m["epoch"])
        order = (epoch, m["id"] if not m["id"].isdigit() else m["id"].zfill(20))
        entries.append((order, Entry(m["id"], epoch, info.filename, fp, chunked)))
    index.entries = [e for _, e in sorted(entries, key=lambda t: t[0])]
    try:
        if HEADER in names:
            index.header = _object(path, read_member(index, HEADER), HEADER)
        elif START in names:
            index.header = _object(path, read_member(index, START), START)
        elif LEGACY_START in names:
            index.header = _object(path, read_member(index, LEGACY_START), LEGACY_START)
            if LEGACY_RESULTS in names:
                index.header.update(_object(path, read_member(index, LEGACY_RESULTS), LEGACY_RESULTS))
    except InputError as exc:
        index.header, index.header_error = {}, exc
    return index


def _object(path: str, doc: Any, name: str) -> dict[str, Any]:
    if not isinstance(doc, dict):
        raise InputError(path, f"expected a JSON object, got {type(doc).__name__}", field=name)
    return doc


# -- .json --------------------------------------------------------------------------------
def _index_json(path: str) -> LogIndex:
    with open_regular(path, max_file_bytes()) as fh:
        try:
            data = fh.read()
        except OSError as exc:
            raise InputError(path, f"cannot read: {exc.strerror}") from None
    if not data.strip():
        raise InputError(path, "file is empty")
    check_utf8(path, data)  # raw parts are decoded later: bad UTF-8 must fail here, naming its line
    index = LogIndex(path, "json")
    raw = True  # samples kept as raw JSON, decoded one at a time
    try:
        top: Any = msgspec.json.decode(data, type=dict[str, msgspec.Raw])
    except msgspec.ValidationError:
        raise InputError(path, "expected a JSON object") from None
    except (msgspec.DecodeError, RecursionError):
        top, raw = decode_json(path, data), False  # NaN / Infinity, or raises naming the line
        if not isinstance(top, dict):
            raise InputError(path, "expected a JSON object") from None
    index.header = {k: (msgspec.json.decode(top[k]) if raw else top[k]) for k in _HEADER_KEYS if k in top}
    samples = top.get("samples")
    if raw and samples is not None:
        try:
            samples = msgspec.json.decode(samples, type=list[msgspec.Raw] | None)
        except msgspec.ValidationError:
            raise InputError(path, "expected a list of samples", field="samples") from None
    if samples is not None and not isinstance(samples, list):
        raise InputError(path, "expected a list of samples", field="samples")
    index.raws = samples or []
    for i, s in enumerate(index.raws):
        body = bytes(s) if raw else json.dumps(s, sort_keys=True, default=str).encode()
        key = _key(s, raw)
        index.entries.append(Entry(key[0], key[1], str(i), hashlib.sha256(body).hexdigest()[:16]))
    return index


class _Key(msgspec.Struct):
    id: Any = None
    epoch: Any = None


def _key(sample: Any, raw: bool) -> tuple[str | None, int | None]:
    """(id as text, epoch) of a sample, or Nones when they are missing or malformed."""
    try:
        k = msgspec.json.decode(sample, type=_Key) if raw else _Key(sample.get("id"), sample.get("epoch"))
    except (msgspec.ValidationError, msgspec.DecodeError, AttributeError):
        return None, None
    sid = k.id if isinstance(k.id, str) else str(k.id) if isinstance(k.id, int) and not isinstance(k.id, bool) else None
    epoch = k.epoch if isinstance(k.epoch, int) and not isinstance(k.epoch, bool) else None
    return sid, epoch


def json_sample(index: LogIndex, i: int) -> Any:
    """Sample ``i`` of a JSON log, decoded."""
    s = index.raws[i]
    return msgspec.json.decode(s) if isinstance(s, msgspec.Raw) else s


__all__ = ["Entry", "LogIndex", "load_index", "clear_cache", "read_member", "json_sample", "looks_like_json_log",
           "decode_json"]
