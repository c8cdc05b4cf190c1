"""One tool list per source, never per trajectory.

A trained model must see the tool list of its deployment, not the calls one run happened to
make: listing only those tells it which calls to make. So every training row of a source
(the same ``source_format`` and the same folder: one benchmark dump, one Harbor job, one
run folder) carries the same list:

- the tools the source declares (the union, by name, of every session's declared tool
  definitions: ATIF ``tool_definitions``, Inspect, OpenHands ``kwargs.tools``, trace rows),
  first;
- else the union over the source's runs of the functions they call, each with the argument
  names and JSON types seen (:func:`infer_tools`; the description says it was inferred).

Functions a row calls that its source list lacks are added from the calls (a declared list
that misses one would break OpenAI's rule that every called function is declared).
Definitions are in OpenAI's shape ``{"type": "function", "function": {"name",
"description", "parameters"}}``, ``parameters`` never null.
"""

from __future__ import annotations

import json
import os
from typing import Any

_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}


def source_key(record: dict[str, Any]) -> str:
    """The source of a graded session: its format and the folder of its source path."""
    return f"{record.get('source_format') or ''}\x1f{os.path.dirname(str(record.get('source_path') or ''))}"


def _args(raw: Any) -> dict[str, Any] | None:
    if isinstance(raw, dict):
        return raw
    if isinstance(raw, str):
        try:
            value = json.loads(raw)
        except ValueError:
            return {"input": raw}  # a command or free text: one string argument
        return value if isinstance(value, dict) else {"input": raw}
    return None


def calls_of(messages: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """{function name: {argument: JSON type}} of the calls in OpenAI chat messages."""
    found: dict[str, dict[str, str]] = {}
    for m in messages:
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            name = fn.get("name") if isinstance(fn, dict) else None
            if not isinstance(name, str) or not name:
                continue
            props = found.setdefault(name, {})
            args = _args(fn.get("arguments"))
            for k, v in (args or {}).items():
                props.setdefault(k, _JSON_TYPES.get(type(v), "string"))
    return found


def definition(name: str, props: dict[str, str], description: str) -> dict[str, Any]:
    """An OpenAI function definition with an object schema of ``props`` (name -> type)."""
    return {"type": "function", "function": {
        "name": name, "description": description,
        "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in sorted(props.items())}}}}


def infer_tools(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Function definitions inferred from the calls in ``messages`` (see module docstring)."""
    return [definition(n, p, "(inferred from the calls made)") for n, p in sorted(calls_of(messages).items())]


def normalise(tool: Any) -> dict[str, Any] | None:
    """A declared tool in OpenAI's shape with a non-null object ``parameters``, or None
    when it names no function; a property with a null schema gets ``{}``. Accepts
    ``{"type": "function", "function": {...}}`` and the flat ``{"name", "description",
    "parameters" | "input_schema"}`` of other APIs."""
    if not isinstance(tool, dict):
        return None
    fn = tool.get("function") if isinstance(tool.get("function"), dict) else tool
    name = fn.get("name")
    if not isinstance(name, str) or not name:
        return None
    params = fn.get("parameters", fn.get("input_schema"))
    if not isinstance(params, dict) or not params:
        params = {"type": "object", "properties": {}}
    props = params.get("properties")
    if isinstance(props, dict) and not all(isinstance(v, dict) for v in props.values()):
        # a null property schema breaks LLaMA-Factory's tool formatter (and OpenAI's check)
        params = {**params, "properties": {k: (v if isinstance(v, dict) else {}) for k, v in props.items()}}
    out = {"name": name, "description": fn.get("description") if isinstance(fn.get("description"), str) else "",
           "parameters": params}
    return {"type": "function", "function": out}


class SourceTools:
    """Collects, in a first pass over the graded sessions, each source's declared tools and
    the calls its runs make; :meth:`tools_for` then gives every row of a source the same
    list (see module docstring). Memory: one definition per function per source."""

    def __init__(self) -> None:
        self.declared: dict[str, dict[str, dict[str, Any]]] = {}
        self.called: dict[str, dict[str, dict[str, str]]] = {}

    def add(self, key: str, messages: list[dict[str, Any]], tools: list[Any]) -> None:
        for t in tools or []:
            d = normalise(t)
            if d is not None:
                self.declared.setdefault(key, {}).setdefault(d["function"]["name"], d)
        for name, props in calls_of(messages).items():
            merged = self.called.setdefault(key, {}).setdefault(name, {})
            for k, v in props.items():
                merged.setdefault(k, v)

    def tools_for(self, key: str, messages: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        """The source's list (declared, else inferred), plus any function ``messages`` call
        that it lacks."""
        declared = self.declared.get(key, {})
        called = self.called.get(key, {})
        if declared:
            out = dict(declared)
        else:
            out = {n: definition(n, p, "(inferred from the calls made in this source's runs)")
                   for n, p in called.items()}
        for name, props in calls_of(messages or []).items():
            if name not in out:
                out[name] = definition(name, props, "(inferred from the calls made)")
        return [out[n] for n in sorted(out)]


__all__ = ["SourceTools", "source_key", "infer_tools", "normalise", "calls_of", "definition"]
