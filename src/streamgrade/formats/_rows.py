"""Shared helpers of the row-dump formats (openai-chat, trace-rows): a cheap peek at a file's
first bytes, whole-file parsing of JSON lists and JSONL files into rows, a small LRU of parsed
files keyed by (path, size, mtime_ns) so ``find`` and the per-row ``assemble`` calls parse a
file once, dotted-path lookup, and OpenAI-message normalisation with errors naming the field.
"""

from __future__ import annotations

import codecs
import json
import os
import re
import threading
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..models import ChatMessage, ToolCall, ToolFunction
from .base import iter_jsonl, load_json

MAX_BYTES = 512 * 1024 * 1024
"""Files larger than this are never parsed by the row formats."""

CACHE_SIZE = 4
"""Parsed files kept in the LRU."""


@dataclass(frozen=True)
class Rows:
    """A parsed file: its ``rows`` (a JSON list's items, a single JSON object as one row, or
    a JSONL file's lines), the 1-based JSONL ``lines`` of each row (None for JSON), or the
    ``error`` that parsing raised."""

    path: str
    rows: list[Any]
    lines: list[int] | None = None
    error: InputError | None = None

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
    """True when the file exists, is at most :data:`MAX_BYTES` and looks like JSON: its
    first non-blank byte is ``[`` or ``{``, or (a dump whose first bytes are corrupted) its
    first 256 bytes hold invalid UTF-8 and, with the invalid bytes dropped, the first
    non-blank character is ``[``, ``{`` or ``"`` (e.g. ``\\xff"task_id": 0, ...}``, a JSONL
    line whose ``{`` was overwritten). Plain text (``hello``) and other binary data do not."""
    try:
        if os.path.getsize(path) > MAX_BYTES:
            return False
        with open(path, "rb") as fh:
            head = fh.read(256)
    except OSError:
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
        while len(_cache) > CACHE_SIZE:
            _cache.popitem(last=False)
        return rows


def clear_cache() -> None:
    """Forget every parsed file (tests)."""
    with _lock:
        _cache.clear()


def _parse(path: str) -> Rows:
    try:
        if path.endswith(".jsonl"):
            pairs = list(iter_jsonl(path))
            return Rows(path, [obj for _, obj in pairs], lines=[n for n, _ in pairs])
        doc = load_json(path)
    except InputError as exc:
        return Rows(path, [], error=exc)
    if isinstance(doc, list):
        return Rows(path, doc)
    return Rows(path, [doc])


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


def dotted(obj: Any, path: str) -> Any:
    """``obj`` followed along the dotted ``path`` (``info.task_id``; digits index lists);
    None when any step is missing."""
    if not path:
        return None
    for part in path.split("."):
        if isinstance(obj, dict):
            if part not in obj:
                return None
            obj = obj[part]
        elif isinstance(obj, list) and part.isdigit() and int(part) < len(obj):
            obj = obj[int(part)]
        else:
            return None
    return obj


def as_float(value: Any) -> float | None:
    """A number (not bool) or a numeric string as float, else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return None
    return None


def as_text(value: Any) -> str | None:
    """A string as is, an int as its decimal text, else None (ids, names)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def content_text(content: Any, rows: Rows, index: int, field: str) -> str | None:
    """Message content as text: a string as is, None as None, a list of OpenAI content parts
    joined with newlines (text parts' ``text``; a string part as is; other parts as
    ``[<type>]``). Anything else is an InputError naming ``field``."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = []
        for k, part in enumerate(content):
            if isinstance(part, str):
                parts.append(part)
            elif isinstance(part, dict):
                text = part.get("text")
                if isinstance(text, str):
                    parts.append(text)
                else:
                    parts.append(f"[{part.get('type') or 'part'}]")
            else:
                raise rows.fail(index, f"{field}[{k}]", f"expected a content part object or string, got {type(part).__name__}")
        return "\n".join(parts)
    raise rows.fail(index, field, f"expected a string, a list of content parts or null, got {type(content).__name__}")


def chat_messages(messages: Any, rows: Rows, index: int, field: str) -> list[ChatMessage]:
    """OpenAI-shaped messages of row ``index`` (at ``field`` in the row) as ChatMessages.

    Every role is kept (system included). Tool calls stay in OpenAI shape; ``arguments``
    given as an object or list is JSON-encoded to a string, missing or null arguments become
    ``"{}"``; a tool call without an ``id`` gets ``call_<message>_<call>``. Tool messages
    keep ``tool_call_id`` and ``name``. Errors name the field, e.g.
    ``[17].traj[3].tool_calls[0].function.arguments``.
    """
    if not isinstance(messages, list):
        raise rows.fail(index, field, f"expected a list of messages, got {type(messages).__name__}")
    out: list[ChatMessage] = []
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise rows.fail(index, where, f"expected a message object, got {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str) or not role:
            raise rows.fail(index, f"{where}.role", "missing role" if role is None else f"expected a string, got {type(role).__name__}")
        content = content_text(m.get("content"), rows, index, f"{where}.content")
        calls = _tool_calls(m.get("tool_calls"), rows, index, where, i)
        msg = ChatMessage(role=role, content=content, tool_calls=calls)
        if isinstance(m.get("tool_call_id"), str):
            msg.tool_call_id = m["tool_call_id"]
        if isinstance(m.get("name"), str):
            msg.name = m["name"]
        reasoning = m.get("reasoning_content")
        if isinstance(reasoning, str) and reasoning:
            msg.reasoning_content = reasoning
        out.append(msg)
    return out


def _tool_calls(calls: Any, rows: Rows, index: int, where: str, i: int) -> list[ToolCall] | None:
    if calls is None:
        return None
    if not isinstance(calls, list):
        raise rows.fail(index, f"{where}.tool_calls", f"expected a list, got {type(calls).__name__}")
    if not calls:
        return None
    out = []
    for j, call in enumerate(calls):
        cw = f"{where}.tool_calls[{j}]"
        if not isinstance(call, dict):
            raise rows.fail(index, cw, f"expected a tool call object, got {type(call).__name__}")
        fn = call.get("function")
        if not isinstance(fn, dict):
            raise rows.fail(index, f"{cw}.function", "missing function" if fn is None else f"expected an object, got {type(fn).__name__}")
        name = fn.get("name")
        if not isinstance(name, str) or not name:
            raise rows.fail(index, f"{cw}.function.name", "missing function name" if name is None else "expected a non-empty string")
        args = fn.get("arguments")
        if args is None:
            args = "{}"
        elif isinstance(args, (dict, list)):
            try:
                args = json.dumps(args, ensure_ascii=False, allow_nan=False)
            except (TypeError, ValueError) as exc:
                raise rows.fail(index, f"{cw}.function.arguments", f"arguments not JSON-encodable: {exc}") from None
        elif not isinstance(args, str):
            raise rows.fail(index, f"{cw}.function.arguments", f"expected a JSON string or object, got {type(args).__name__}")
        cid = call.get("id")
        cid = cid if isinstance(cid, str) and cid else f"call_{i}_{j}"
        ctype = call.get("type") if isinstance(call.get("type"), str) else "function"
        out.append(ToolCall(id=cid, function=ToolFunction(name=name, arguments=args), type=ctype))
    return out
