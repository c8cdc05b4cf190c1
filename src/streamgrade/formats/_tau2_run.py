"""Parsing tau2-bench results files for :mod:`.tau2` (the format is described there).

A results file is parsed once per (path, size, mtime) into a :class:`Run`: ``info`` decoded,
the tasks and simulations kept as raw JSON (msgspec ``Raw``, no copy of the file's text) and
decoded one at a time when a session is assembled; a small LRU keeps the last
:data:`CACHE_FILES` files, :data:`CACHE_BYTES` of them at most. ``find`` only parses ``.json`` files whose first 64 KiB name a
tau2 field (:func:`candidate`).
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections import Counter, OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from ..errors import InputError
from ..inputs import max_file_bytes, max_session_bytes, open_regular, too_large
from .base import _decode, check_utf8, read_bytes
from .mapping import as_text

META = "results.json"
"""The metadata file of a dir-format run (``Results._resolve_paths``)."""
SIMULATIONS_DIR = "simulations"
"""Its folder of simulation files, ``<simulation id>.json`` (``SIMULATIONS_DIR``)."""
HEAD_BYTES = 64 * 1024
CACHE_FILES = 4
CACHE_BYTES = 256 * 1024 * 1024
"""Bytes of parsed tau2 files the LRU keeps at most (the newest is kept whatever its size)."""

_FIELDS = (b"git_commit", b"agent_info", b"user_info", b"environment_info", b"user_scenario",
           b"evaluation_criteria", b"termination_reason", b"reward_info", b"simulations")
_FIELD = re.compile(rb'"(' + b"|".join(_FIELDS) + rb'|tasks)"\s*:')


class _Head(msgspec.Struct):
    """What ``find`` reads of a simulation (or a simulation_index entry)."""

    id: Any = None
    task_id: Any = None
    trial: Any = None


class _Id(msgspec.Struct):
    id: Any = None


_OBJECT = msgspec.json.Decoder(dict[str, msgspec.Raw])


def head_of(path: str | Path) -> bytes | None:
    """The first 64 KiB of a regular file when it starts like a JSON object, else None."""
    try:
        with open_regular(path) as fh:
            head = fh.read(HEAD_BYTES)
    except (OSError, InputError):
        return None
    return head if head.lstrip()[:1] == b"{" else None


def candidate(head: bytes) -> bool:
    """Whether a file's head names a tau2 field (then it is parsed)."""
    return _FIELD.search(head) is not None


def looks_tau2(head: bytes) -> bool:
    """Whether a file that does not parse is still clearly a tau2 results file: its head
    names two tau2 fields (``git_commit`` and ``agent_info``, ...)."""
    return len({m.group(1) for m in _FIELD.finditer(head)} - {b"tasks"}) >= 2


@dataclass
class Run:
    """A parsed file: ``kind`` "results" (``tasks`` and ``simulations`` lists), "dir" (a
    dir-format run's results.json: ``info`` and ``tasks``, no ``simulations``) or "" (not
    tau2), or the ``error`` parsing raised. ``sims`` holds each simulation's raw JSON (an
    InputError for one over ``[limits] max_session_bytes``), ``heads`` its (task_id, trial,
    id) as text, ``tasks`` each task's raw JSON by id, ``index`` a dir run's
    ``simulation_index`` (simulation id -> (task_id, trial))."""

    path: str
    kind: str = ""
    info: dict = field(default_factory=dict)
    info_raw: bytes = b""
    tasks: dict[str, Any] = field(default_factory=dict)
    sims: list[Any] = field(default_factory=list)
    heads: list[tuple[str | None, str | None, str | None]] = field(default_factory=list)
    index: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    error: InputError | None = None
    nbytes: int = 0

    def __post_init__(self) -> None:
        counts = Counter(h[2] for h in self.heads if h[2])
        self._by_id = {h[2]: i for i, h in enumerate(self.heads) if h[2] and counts[h[2]] == 1}

    def locator(self, i: int) -> str:
        """``id:<simulation id>`` when the id is unique in the file, else ``index:<i>``."""
        sim_id = self.heads[i][2]
        return f"id:{sim_id}" if sim_id in self._by_id else f"index:{i}"

    def index_of(self, locator: str) -> int | None:
        """The simulation a :meth:`locator` names, or None."""
        kind, _, key = locator.partition(":")
        if kind == "id":
            return self._by_id.get(key)
        if kind == "index" and key.isdigit() and int(key) < len(self.sims):
            return int(key)
        return None

    def task(self, task_id: str | None) -> dict | None:
        """The task ``task_id`` decoded, or None."""
        raw = self.tasks.get(task_id) if task_id is not None else None
        try:
            doc = msgspec.json.decode(raw) if raw is not None else None
        except (msgspec.DecodeError, RecursionError):
            return None
        return doc if isinstance(doc, dict) else None

    def _hash(self, first: bytes, task_id: str | None) -> str:
        h = hashlib.sha256()
        task = self.tasks.get(task_id) if task_id is not None else None
        for part in (first, _compact(task) if task is not None else b"", _compact(self.info_raw)):
            h.update(len(part).to_bytes(8, "little"))
            h.update(part)
        return h.hexdigest()[:16]

    def fingerprint(self, i: int) -> str:
        """sha256 (16 hex) of simulation ``i``'s JSON text, its task's and ``info``'s, each
        with its whitespace normalised (a file rewritten with another indent is unchanged)."""
        raw = self.sims[i]
        return self._hash(str(raw).encode() if isinstance(raw, InputError) else _compact(raw), self.heads[i][0])

    def file_fingerprint(self, path: str, task_id: str | None) -> str:
        """The fingerprint of a dir run's simulation file: its name, size and mtime with its
        task's and ``info``'s JSON text (results.json is rewritten at every checkpoint)."""
        try:
            st = os.stat(path)
            own = f"{path}\0{st.st_size}\0{st.st_mtime_ns}".encode()
        except OSError:
            own = f"{path}\0absent".encode()
        return self._hash(own, task_id)


def _compact(raw: Any) -> bytes:
    """JSON text with its whitespace normalised (``msgspec.json.format``, no decoding)."""
    try:
        return msgspec.json.format(raw, indent=0) if raw else b""
    except (msgspec.DecodeError, RecursionError):  # validated when the file was parsed
        return bytes(raw)


def _list(raw: Any) -> list | None:
    """A raw JSON array as a list of raw items; None for anything else."""
    if raw is None:
        return None
    try:
        return msgspec.json.decode(raw, type=list[msgspec.Raw])
    except (msgspec.DecodeError, RecursionError):
        return None


def _head(raw: Any) -> tuple[str | None, str | None, str | None]:
    try:
        h = msgspec.json.decode(raw, type=_Head)
    except (msgspec.DecodeError, RecursionError):
        return None, None, None
    return as_text(h.task_id), as_text(h.trial), as_text(h.id)


def _parse(path: str) -> Run:
    try:
        data = read_bytes(path, max_file_bytes())
        check_utf8(path, data)
        if data.lstrip()[:1] != b"{":
            return Run(path)
        top = _decode(_OBJECT.decode, path, data, None)
    except InputError as exc:
        return Run(path, error=exc)
    tasks, sims = _list(top.get("tasks")), _list(top.get("simulations"))
    info_raw = top.get("info")
    try:
        info = msgspec.json.decode(info_raw) if info_raw is not None else None
    except (msgspec.DecodeError, RecursionError):
        info = None
    info = info if isinstance(info, dict) else {}
    if tasks is None:
        return Run(path)
    if sims is None:
        if "simulations" in top or not ("git_commit" in info or "environment_info" in info):
            return Run(path)
        kind = "dir"
        index = {}
        for e in _list(top.get("simulation_index")) or []:
            task_id, trial, sim_id = _head(e)
            if sim_id is not None:
                index[sim_id] = (task_id, trial)
    else:
        kind, index = "results", {}
    by_id: dict[str, Any] = {}
    for t in tasks:
        try:
            tid = as_text(msgspec.json.decode(t, type=_Id).id)
        except (msgspec.DecodeError, RecursionError):
            tid = None
        if tid is not None:
            by_id.setdefault(tid, t)
    limit = max_session_bytes()
    raws = [too_large(path, len(r), limit, f"simulations[{i}]") if len(r) > limit else r for i, r in enumerate(sims or [])]
    return Run(path, kind=kind, info=info, info_raw=bytes(info_raw) if info_raw is not None else b"", tasks=by_id,
               sims=raws, heads=[_head(r) for r in sims or []], index=index, nbytes=len(data))


_cache: OrderedDict[tuple[str, int, int], Run] = OrderedDict()
_lock = threading.Lock()


def load(path: str | Path) -> Run:
    """The parsed file, from the LRU when its size and mtime are unchanged; parse errors are
    in ``Run.error``, never raised."""
    p = str(path)
    try:
        st = os.stat(p)
    except OSError:
        return Run(p, error=InputError(p, "file is missing"))
    key = (p, st.st_size, st.st_mtime_ns)
    with _lock:
        hit = _cache.get(key)
        if hit is not None:
            _cache.move_to_end(key)
            return hit
    run = _parse(p)
    with _lock:
        _cache[key] = run
        total = sum(r.nbytes for r in _cache.values())
        while len(_cache) > 1 and (len(_cache) > CACHE_FILES or total > CACHE_BYTES):
            total -= _cache.popitem(last=False)[1].nbytes
    return run


def clear_cache() -> None:
    """Forget every parsed file (tests)."""
    with _lock:
        _cache.clear()


def owned_names(folder: Path, names: list[str]) -> set[str]:
    """tau2 files in ``folder`` that are no session: a results file with no simulations yet,
    a dir-format run's results.json (its simulations are the files in ``simulations/``)."""
    out = set()
    for n in names:
        if n.endswith(".json"):
            head = head_of(folder / n)
            if head is not None and candidate(head):
                run = load(folder / n)
                if run.error is None and (run.kind == "dir" or (run.kind == "results" and not run.sims)):
                    out.add(n)
    return out
