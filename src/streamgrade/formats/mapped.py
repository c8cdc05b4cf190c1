"""Dumps described in TOML, with no code: ``[[formats.mappings]]`` (see
configs/streamgrade.toml). Each mapping is a reader of its own, asked before every built-in
reader, that owns the files it claims.

A mapping names the files (globs on file names, any suffix: ``*.traj``), optionally a field
that a document must have to be claimed (``detect``), where the rows are (``rows``: empty
for a top-level list, each JSONL line, or a lone object; a dotted path such as
``simulations``; ``*`` or ``results.*`` for an object of rows keyed by id), and where each
row keeps its fields, as dotted paths into the row (:func:`streamgrade.formats.mapping.get`):
``messages`` (OpenAI, Anthropic or ShareGPT messages, every tool-call shape), ``task``
(which may join a table of the same file: ``tasks[id=task_id].description``; without it the
task is the first user message), ``task_id``, ``trial``, ``reward``, ``model``, ``agent``,
``termination``, ``tools``, ``system`` (a system prompt given beside the messages) and
``id``. Nothing else of a row reaches the judge. ``reference_actions`` (which may join like
``task``) goes to ``Session.reference_actions``, for golden-path verification only.

Rows are kept as their raw JSON text (msgspec ``Raw``, reached level by level without
decoding the rest), so each row has a content fingerprint and a big file costs its size.
"""

from __future__ import annotations

import fnmatch
import hashlib
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config, MappingSpec
from ..errors import InputError
from ..golden import reference_actions
from ..inputs import max_file_bytes, max_session_bytes, too_large
from ..models import Session, SessionRef, Step
from ._rows import _decode, check_utf8, file_stem, load_rows, looks_like_json, read_bytes, sanitise, unique_id
from .mapping import agent_session, as_float, as_text, get, messages_to_steps, rows_at

_RAW_OBJ = msgspec.json.Decoder(dict[str, msgspec.Raw])
_RAW_LIST = msgspec.json.Decoder(list[msgspec.Raw])


class _Doc:
    """A JSON file's rows at a mapping's ``rows`` path, as raw JSON: ``rows`` of (key, raw),
    and ``root`` decoded lazily, one top-level field at a time, for joins."""

    def __init__(self, path: str, spec: MappingSpec):
        data = read_bytes(path, max_file_bytes())
        check_utf8(path, data)
        self.path, self.data = path, data
        self.rows: list[tuple[str | None, Any]] = []
        self._top: dict[str, msgspec.Raw] | None = None
        self._root: dict[str, Any] = {}
        node: Any = _decode(msgspec.json.Decoder(msgspec.Raw).decode, path, data, None)
        parts = [p for p in spec.rows.split(".") if p] if spec.rows else []
        keyed = bool(parts) and parts[-1] == "*"
        for part in parts[:-1] if keyed else parts:
            obj = _decode(_RAW_OBJ.decode, path, bytes(node), None) if bytes(node)[:1] == b"{" else None
            if obj is not None and self._top is None:
                self._top = obj
            node = obj.get(part) if obj is not None else None
            if node is None:
                return
        head = bytes(node).lstrip()[:1]
        if keyed:
            if head == b"{":
                self.rows = [(k, v) for k, v in _RAW_OBJ.decode(bytes(node)).items()]
        elif head == b"[":
            self.rows = [(None, v) for v in _RAW_LIST.decode(bytes(node))]
        else:
            self.rows = [(None, node)]
        if self._top is None and data.lstrip()[:1] == b"{":
            self._top = _RAW_OBJ.decode(data)

    def root(self, path: str) -> dict[str, Any]:
        """The top-level fields a join in ``path`` reads (``tasks`` of ``tasks[id=task_id]...``)."""
        for part in path.split("."):
            name = part.split("[", 1)[0]
            if "[" in part and self._top is not None and name in self._top and name not in self._root:
                self._root[name] = msgspec.json.decode(bytes(self._top[name]))
        return self._root


_docs: OrderedDict[tuple[str, int, int, str], _Doc] = OrderedDict()
_lock = threading.Lock()


def _load(path: str, spec: MappingSpec) -> _Doc:
    import os

    st = os.stat(path)
    key = (path, st.st_size, st.st_mtime_ns, spec.rows)
    with _lock:
        doc = _docs.get(key)
        if doc is None:
            doc = _docs[key] = _Doc(path, spec)
            while len(_docs) > 2:
                _docs.popitem(last=False)
        _docs.move_to_end(key)
        return doc


class MappedFormat:
    """The reader of one ``[[formats.mappings]]`` entry (see the module docstring)."""

    exclusive = True

    def __init__(self, spec: MappingSpec):
        self.spec = spec
        self.name = spec.name

    # -- finding -------------------------------------------------------------------------
    def _rows(self, path: str) -> list[tuple[str | None, Any, int | None]]:
        """(key, raw row, JSONL line) of a file; InputError when it does not parse."""
        if path.endswith(".jsonl"):
            rows = load_rows(path)
            if rows.error is not None:
                raise rows.error
            out = []
            for i, raw in enumerate(rows.raws):
                if isinstance(raw, InputError):
                    raise raw
                if not self.spec.rows:
                    out.append((None, raw, rows.lines[i]))
                    continue
                for key, row in rows_at(rows.row(i), self.spec.rows):
                    out.append((key, msgspec.json.encode(row), rows.lines[i]))
            return out
        return [(k, r, None) for k, r in _load(path, self.spec).rows]

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per row of each file whose name matches ``files`` (and which has the
        ``detect`` field); a file that does not parse is one ref whose assemble reports it."""
        out: list[SessionRef] = []
        for n in names:
            if not any(fnmatch.fnmatchcase(n, g) for g in self.spec.files):
                continue
            path = str(folder / n)
            stem = sanitise(file_stem(n))
            if not looks_like_json(path):
                continue
            try:
                rows = self._rows(path)
                if self.spec.detect and not self._detected(path):
                    continue
            except InputError:
                out.append(SessionRef(session_id=stem, format=self.name, path=path, files=(path,)))
                continue
            seen: set[str] = set()
            for i, (key, raw, _) in enumerate(rows):
                rid = key
                if rid is None and self.spec.id:
                    row = _try(raw)
                    rid = as_text(get(row, self.spec.id)) if row is not None else None
                sid = f"{stem}.{sanitise(rid)}" if rid is not None else f"{stem}.row{i}"
                sid = unique_id(seen, sid, i)
                out.append(SessionRef(session_id=sid, format=self.name, path=path, files=(path,), locator=str(i),
                                      fingerprint=hashlib.sha256(bytes(raw)).hexdigest()[:16]))
        return out

    def _detected(self, path: str) -> bool:
        if path.endswith(".jsonl"):
            rows = load_rows(path)
            first = rows.try_row(0) if len(rows) else None
            return get(first, self.spec.detect) is not None
        doc = _load(path, self.spec)
        head = self.spec.detect.split(".", 1)[0].split("[", 1)[0]
        return doc._top is not None and head in doc._top

    # -- reading -------------------------------------------------------------------------
    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """The session of row ``ref.locator``. Raises InputError naming the file and the
        row's line or field (``simulations[3].messages[2].tool_calls[0].name``)."""
        spec = self.spec
        rows = self._rows(ref.path)
        if not ref.locator:
            raise InputError(ref.path, f"no rows at {spec.rows or 'the top level'!r} (mapping {spec.name})")
        index = int(ref.locator)
        if not 0 <= index < len(rows):
            raise InputError(ref.path, f"row {index} not found: the file has {len(rows)} rows")
        key, raw, line = rows[index]
        if len(raw) > max_session_bytes():
            raise too_large(ref.path, len(raw), max_session_bytes(), f"row {index}", line=line)
        where = f"{spec.rows.rstrip('*').rstrip('.') or ''}[{key if key is not None else index}]"

        def fail(field: str, msg: str) -> InputError:
            name = f"{where}.{field}" if field and line is None else (field or (where if line is None else None))
            return InputError(ref.path, msg, line=line, field=name)

        row = _decode(msgspec.json.decode, ref.path, bytes(raw), line)
        if not isinstance(row, dict):
            raise fail("", f"expected a row object, got {type(row).__name__}")
        root: dict[str, Any] = {}
        for path in (spec.task, spec.reference_actions) if line is None else ():
            if path:
                root = _load(ref.path, spec).root(path)  # the joins' tables, added to one dict
        messages = get(row, spec.messages)
        if messages is None:
            raise fail(spec.messages, "missing messages list")
        steps = messages_to_steps(messages, fail, spec.messages)
        system = get(row, spec.system) if spec.system else None
        if isinstance(system, str) and system.strip():
            steps.insert(0, Step(source="system", message=system))
        task = get(row, spec.task, root=root) if spec.task else None
        tools = get(row, spec.tools) if spec.tools else None
        reward = get(row, spec.reward) if spec.reward else None
        return agent_session(
            ref, steps, fail=fail,
            task=task if isinstance(task, str) else (msgspec.json.encode(task).decode() if task else None),
            task_id=as_text(get(row, spec.task_id)) if spec.task_id else None,
            trial=as_text(get(row, spec.trial)) if spec.trial else None,
            reward=as_float(reward),
            model=as_text(get(row, spec.model)) if spec.model else None,
            agent=as_text(get(row, spec.agent)) if spec.agent else None,
            termination=as_text(get(row, spec.termination)) if spec.termination else None,
            tools=[t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else [],
            meta={"mapping": spec.name, "row": index, "key": key},
            reference_actions=reference_actions(get(row, spec.reference_actions, root=root))
            if spec.reference_actions else None,
        )


def _try(raw: Any) -> Any:
    try:
        return msgspec.json.decode(bytes(raw))
    except (msgspec.DecodeError, RecursionError):
        return None


def mapped_formats(config: Config) -> list[MappedFormat]:
    """The readers of the config's ``[[formats.mappings]]``, in the order given."""
    return [MappedFormat(spec) for spec in config.formats.mappings]


__all__ = ["MappedFormat", "mapped_formats"]
