"""A strict OpenAI chat fine-tuning row (``--format openai-sft``): what OpenAI's supervised
fine-tuning accepts for chat models with tools, and nothing else.

Rules (OpenAI fine-tuning guide, "Preparing your dataset" and "Fine-tuning with tools",
and the cookbook's format validation "Data preparation and analysis for chat model
fine-tuning"; the openai SDK's ``types.chat`` message params):

- a row is ``{"messages": [...], "tools"?: [...]}``, no other key;
- one system message at most, first; a system message later in a run (an injected
  reminder, a compaction summary) becomes a user message ``[system] ...``;
- message keys: system/user ``{role, content}``; assistant ``{role, content, tool_calls?}``
  (``content`` "" when it only calls tools: chat templates such as DeepSeek-V3's index it);
  tool ``{role, tool_call_id, content}`` (no ``name``); other contents are non-empty strings;
- tool-call ids unique within the row (reused ids are renumbered, results follow their
  call's new id); every tool message answers a call of the assistant message before it,
  in call order (a result that answers none becomes a user message);
- arguments a JSON object text (a command or free text becomes ``{"input": text}``);
  function names ``^[a-zA-Z0-9_-]{1,64}$`` (others are rewritten consistently in calls and
  tools);
- ``tools`` present whenever a call is made, listing every called function, each with a
  non-null object ``parameters``;
- the row ends on an assistant message.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .tools import _args, definition, normalise

_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _fname(name: str) -> str:
    if _NAME.match(name):
        return name
    return (re.sub(r"[^a-zA-Z0-9_-]+", "_", name).strip("_") or "tool")[:64]


def to_openai_sft(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The strict row of OpenAI chat ``messages`` with ``tools`` (see the module docstring),
    or None when no assistant message remains."""
    out: list[dict[str, Any]] = []
    ids: dict[str, str] = {}  # a call's id in the source -> its id in the row (the latest use)
    pending: list[str] = []  # ids of the last assistant message's calls not answered yet
    used_fns: dict[str, dict[str, str]] = {}
    n_calls = 0
    for m in messages:
        role, content = m.get("role"), m.get("content")
        text = content if isinstance(content, str) else "" if content is None else json.dumps(content, ensure_ascii=False)
        if role == "system":
            if not out and text.strip():
                out.append({"role": "system", "content": text})
            elif text.strip():
                out.append({"role": "user", "content": f"[system] {text}"})
            continue
        if role == "user":
            if text.strip():
                out.append({"role": "user", "content": text})
            pending = []
            continue
        if role == "assistant":
            msg: dict[str, Any] = {"role": "assistant"}
            calls = []
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function") or {}
                name = _fname(str(fn.get("name") or "tool"))
                args = _args(fn.get("arguments"))
                new_id = f"call_{n_calls}"
                n_calls += 1
                calls.append({"id": new_id, "type": "function",
                              "function": {"name": name, "arguments": json.dumps(args or {}, ensure_ascii=False)}})
                ids[str(tc.get("id"))] = new_id
                props = used_fns.setdefault(name, {})
                for k, v in (args or {}).items():
                    props.setdefault(k, type(v).__name__)
            if not text.strip() and not calls:
                continue  # nothing said or called (reasoning only)
            msg["content"] = text if text.strip() else ""  # "" not absent: chat templates index it
            if calls:
                msg["tool_calls"] = calls
            out.append(msg)
            pending = [c["id"] for c in calls]
            continue
        if role == "tool":
            rid = ids.get(str(m.get("tool_call_id")))
            if rid is not None and rid in pending:
                out.append({"role": "tool", "tool_call_id": rid, "content": text or "(empty)"})
                pending.remove(rid)
            elif text.strip():
                out.append({"role": "user", "content": f"[tool result] {text}"})
            continue
    while out and out[-1]["role"] != "assistant":
        out.pop()
    if not any(x["role"] == "assistant" for x in out):
        return None
    _order_results(out)
    row: dict[str, Any] = {"messages": out}
    if used_fns:
        row["tools"] = _row_tools(tools, used_fns)
    return row


def _order_results(msgs: list[dict[str, Any]]) -> None:
    """Tool messages right after their assistant message, in call order (in place)."""
    i = 0
    while i < len(msgs):
        m = msgs[i]
        if m["role"] == "assistant" and m.get("tool_calls"):
            order = [c["id"] for c in m["tool_calls"]]
            j = i + 1
            while j < len(msgs) and msgs[j]["role"] == "tool":
                j += 1
            msgs[i + 1:j] = sorted(msgs[i + 1:j], key=lambda t: order.index(t["tool_call_id"]))
            i = j
        else:
            i += 1


_PY_TO_JSON = {"str": "string", "bool": "boolean", "int": "integer", "float": "number", "list": "array",
               "dict": "object", "NoneType": "string"}


def _row_tools(tools: list[dict[str, Any]], used: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for t in tools:
        d = normalise(t)
        if d is not None:
            d["function"]["name"] = _fname(d["function"]["name"])
            out.setdefault(d["function"]["name"], d)
    for name, props in used.items():
        if name not in out:
            out[name] = definition(name, {k: _PY_TO_JSON.get(v, "string") for k, v in props.items()},
                                   "(inferred from the calls made)")
    return [out[n] for n in sorted(out)]


def check_openai_sft(row: dict[str, Any]) -> list[str]:
    """The rules of the module docstring a row breaks (empty when it passes)."""
    problems: list[str] = []
    if set(row) - {"messages", "tools", "parallel_tool_calls"}:
        problems.append(f"unknown top-level keys {sorted(set(row) - {'messages', 'tools', 'parallel_tool_calls'})}")
    msgs = row.get("messages")
    if not isinstance(msgs, list) or not msgs:
        return problems + ["no messages"]
    allowed = {"system": {"role", "content"}, "user": {"role", "content"}, "assistant": {"role", "content", "tool_calls", "weight"},
               "tool": {"role", "tool_call_id", "content"}}
    seen_ids: set[str] = set()
    open_ids: list[str] = []
    called: set[str] = set()
    for i, m in enumerate(msgs):
        role = m.get("role")
        if role not in allowed:
            problems.append(f"[{i}] role {role!r}")
            continue
        if set(m) - allowed[role]:
            problems.append(f"[{i}] {role} has keys {sorted(set(m) - allowed[role])}")
        if role == "system" and i != 0:
            problems.append(f"[{i}] system message not first")
        if role in ("system", "user", "tool") and not (isinstance(m.get("content"), str) and m["content"]):
            problems.append(f"[{i}] {role} content is not a non-empty string")
        if role == "assistant":
            if "content" in m and not isinstance(m["content"], str):
                problems.append(f"[{i}] assistant content is not a string")
            if not m.get("content") and not m.get("tool_calls"):
                problems.append(f"[{i}] assistant says and calls nothing")
            open_ids = []
            for c in m.get("tool_calls") or []:
                cid, fn = c.get("id"), c.get("function") or {}
                if cid in seen_ids:
                    problems.append(f"[{i}] tool-call id {cid!r} reused")
                seen_ids.add(cid)
                open_ids.append(cid)
                called.add(fn.get("name"))
                if not _NAME.match(str(fn.get("name"))):
                    problems.append(f"[{i}] function name {fn.get('name')!r}")
                try:
                    if not isinstance(json.loads(fn.get("arguments")), dict):
                        raise ValueError
                except (TypeError, ValueError):
                    problems.append(f"[{i}] arguments of {cid!r} are not a JSON object")
        if role == "tool":
            if m.get("tool_call_id") not in open_ids:
                problems.append(f"[{i}] tool result answers no pending call")
            else:
                open_ids.remove(m["tool_call_id"])
        if role == "user":
            open_ids = []
    if msgs[-1].get("role") != "assistant":
        problems.append("row does not end on an assistant message")
    tools = row.get("tools")
    if called:
        names = {(t.get("function") or {}).get("name") for t in tools or [] if isinstance(t, dict)}
        if called - names:
            problems.append(f"called functions missing from tools: {sorted(called - names)}")
    for t in tools or []:
        params = (t.get("function") or {}).get("parameters") if isinstance(t, dict) else None
        if not isinstance(params, dict):
            problems.append(f"tool {(t.get('function') or {}).get('name')!r} has no parameter schema")
    return problems


__all__ = ["to_openai_sft", "check_openai_sft"]
