"""OpenAI's fine-tuning rules for chat (SFT) and preference (DPO) rows, and the openai SDK's
typed message parameters, as checks that return problems.

Sources:
- the openai Python SDK, ``openai/types/chat/``: ``ChatCompletion{System,Developer,User,
  Assistant,Tool,Function}MessageParam``, ``ChatCompletionMessageFunctionToolCallParam``
  and ``ChatCompletionFunctionToolParam`` (TypedDicts generated from OpenAI's OpenAPI
  spec). Each message is validated with a pydantic ``TypeAdapter`` of its role's TypedDict
  (value types), and its keys are checked against the TypedDict's declared keys (pydantic
  ignores unknown TypedDict keys, the fine-tuning API does not);
- OpenAI's OpenAPI spec, ``FineTuneChatRequestInput`` (a line is ``messages``, ``tools``,
  ``parallel_tool_calls``, ``functions``), ``FineTuneChatCompletionRequestAssistantMessage``
  (assistant ``weight`` 0 or 1) and ``FineTunePreferenceRequestInput`` (``input``
  ``{messages, tools, parallel_tool_calls}``, ``preferred_output`` and
  ``non_preferred_output`` each one assistant message);
- the OpenAI Cookbook's format validation (openai/openai-cookbook,
  examples/Chat_finetuning_data_prep.ipynb: known keys only, known roles, text content,
  an assistant message in every example) and the fine-tuning guide ("Fine-tuning with
  tools": ``tools`` given with the calls, tool results answer the call ids);
- what issue 11 lists from OpenAI's validator: no ``name`` on tool messages, tool-call
  ids unique within a row, one system message and first, parameters never null.

Kinds: ``unknown-key``, ``bad-role``, ``sdk-type`` (the SDK's TypedDict rejects a value),
``missing-content``, ``weight``, ``system-not-first``, ``tool-call-id-reused``,
``tool-result-unmatched``, ``tool-call-unanswered`` (a call with no result before the next
turn), ``bad-arguments`` (not a JSON object text), ``bad-function-name``,
``tools-missing``, ``tool-not-declared``, ``null-parameters``, ``no-assistant``,
``bad-shape``; DPO adds ``bad-output`` and ``identical-outputs``.
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

from .rows import Problem, Row

SFT_ROW_KEYS = {"messages", "tools", "parallel_tool_calls", "functions"}
DPO_ROW_KEYS = {"input", "preferred_output", "non_preferred_output"}
DPO_INPUT_KEYS = {"messages", "tools", "parallel_tool_calls"}
_FN_NAME = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")  # the function name rule of the API's tools


@lru_cache(maxsize=None)
def _message_types() -> dict[str, tuple[Any, frozenset[str]]]:
    """role -> (pydantic TypeAdapter of the SDK's TypedDict, its keys); the assistant adds
    the fine-tuning ``weight``."""
    from openai.types import chat
    from pydantic import TypeAdapter

    types = {"system": chat.ChatCompletionSystemMessageParam, "developer": chat.ChatCompletionDeveloperMessageParam,
             "user": chat.ChatCompletionUserMessageParam, "assistant": chat.ChatCompletionAssistantMessageParam,
             "tool": chat.ChatCompletionToolMessageParam, "function": chat.ChatCompletionFunctionMessageParam}
    out = {}
    for role, td in types.items():
        keys = set(td.__required_keys__) | set(td.__optional_keys__)
        out[role] = (TypeAdapter(td), frozenset(keys | ({"weight"} if role == "assistant" else set())))
    out["_tool"] = (TypeAdapter(chat.ChatCompletionFunctionToolParam), frozenset({"type", "function"}))
    return out


def _sdk_errors(role: str, value: dict[str, Any]) -> list[str]:
    from pydantic import ValidationError

    adapter, _ = _message_types()[role]
    try:
        adapter.validate_python({k: v for k, v in value.items() if k != "weight"})
    except ValidationError as exc:
        return [f"{'.'.join(str(x) for x in e['loc'])}: {e['msg']}" for e in exc.errors()[:3]]
    return []


class _Checker:
    def __init__(self, consumer: str, row: Row) -> None:
        self.consumer, self.row = consumer, row
        self.problems: list[Problem] = []

    def add(self, kind: str, field: str, detail: str) -> None:
        self.problems.append(Problem(self.consumer, kind, self.row.label, self.row.at(field), detail))

    def messages(self, msgs: Any, field: str, *, ids: set[str], allow_system: bool = True) -> list[str]:
        """Check a message list; returns the names of the functions it calls. ``ids`` holds
        the tool-call ids seen so far in the row (updated)."""
        called: list[str] = []
        if not isinstance(msgs, list) or not msgs:
            self.add("bad-shape", field, "messages must be a non-empty list")
            return called
        open_calls: list[str] = []
        for i, m in enumerate(msgs):
            where = f"{field}[{i}]"
            if not isinstance(m, dict):
                self.add("bad-shape", where, "a message is not an object")
                continue
            role = m.get("role")
            types = _message_types()
            if role not in types or role == "_tool":
                self.add("bad-role", where, f"role {role!r} is not one of system, developer, user, assistant, tool")
                continue
            extra = sorted(set(m) - types[role][1])
            if extra:
                self.add("unknown-key", where, f"{role} message has key(s) {extra} the SDK's "
                         f"{role} message type does not declare")
            for err in _sdk_errors(role, m):
                self.add("sdk-type", where, err)
            if role in ("system", "developer") and (i > 0 or not allow_system):
                self.add("system-not-first", where, f"{role} message at position {i}: only the first message may be one")
            content = m.get("content")
            has_calls = bool(m.get("tool_calls"))
            if role == "assistant":
                if "weight" in m and m["weight"] not in (0, 1):
                    self.add("weight", where, f"weight {m['weight']!r} is not 0 or 1")
                if not has_calls and not (isinstance(content, str) and content.strip()) and not isinstance(content, list):
                    self.add("missing-content", where, "an assistant message with neither text nor tool calls")
            elif "weight" in m:
                self.add("weight", where, f"weight on a {role} message (only assistant messages take one)")
            elif not (isinstance(content, str) and content.strip()) and not (isinstance(content, list) and content):
                self.add("missing-content", where, f"{role} message content is {type(content).__name__} or empty")
            if role in ("user", "system", "developer", "assistant") and open_calls:
                self.add("tool-call-unanswered", where, f"calls {open_calls} have no tool result before this {role} message")
                open_calls = []
            if role == "assistant" and has_calls:
                for k, c in enumerate(m["tool_calls"] if isinstance(m["tool_calls"], list) else []):
                    cw = f"{where}.tool_calls[{k}]"
                    fn = c.get("function") if isinstance(c, dict) else None
                    cid = c.get("id") if isinstance(c, dict) else None
                    if not isinstance(fn, dict) or not isinstance(cid, str):
                        continue  # the SDK check above reported it
                    if cid in ids:
                        self.add("tool-call-id-reused", cw, f"tool-call id {cid!r} is used earlier in the row")
                    ids.add(cid)
                    open_calls.append(cid)
                    name = fn.get("name")
                    if not isinstance(name, str) or not _FN_NAME.match(name):
                        self.add("bad-function-name", cw, f"function name {name!r} does not match {_FN_NAME.pattern}")
                    called.append(str(name))
                    try:
                        args = json.loads(fn.get("arguments"))
                    except (TypeError, json.JSONDecodeError):
                        args = None
                    if not isinstance(args, dict):
                        self.add("bad-arguments", cw, f"arguments are not a JSON object text: {str(fn.get('arguments'))[:80]!r}")
            if role == "tool":
                tid = m.get("tool_call_id")
                if tid in open_calls:
                    open_calls.remove(tid)
                else:
                    self.add("tool-result-unmatched", where, f"tool_call_id {tid!r} answers no open call of the "
                             "assistant message before it")
        if not any(isinstance(m, dict) and m.get("role") == "assistant" for m in msgs) and field == "messages":
            self.add("no-assistant", field, "no assistant message to train on")
        return called

    def tools(self, tools: Any, field: str, called: list[str]) -> None:
        if tools is None:
            if called:
                self.add("tools-missing", field, f"the row calls {sorted(set(called))} but has no tools")
            return
        if not isinstance(tools, list):
            self.add("bad-shape", field, "tools must be a list")
            return
        declared = set()
        adapter = _message_types()["_tool"][0]
        from pydantic import ValidationError

        for i, t in enumerate(tools):
            where = f"{field}[{i}]"
            try:
                adapter.validate_python(t)
            except ValidationError as exc:
                self.add("sdk-type", where, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:2]))
            fn = t.get("function") if isinstance(t, dict) else None
            if isinstance(t, dict) and set(t) - {"type", "function"}:
                self.add("unknown-key", where, f"tool keys {sorted(set(t) - {'type', 'function'})}")
            if not isinstance(fn, dict):
                continue
            declared.add(fn.get("name"))
            params = fn.get("parameters", {})
            if not isinstance(params, dict):
                self.add("null-parameters", where, f"parameters of {fn.get('name')!r} are {params!r}")
            elif isinstance(params.get("properties"), dict):
                nulls = sorted(k for k, v in params["properties"].items() if not isinstance(v, dict))
                if nulls:
                    self.add("null-parameters", where, f"{fn.get('name')!r} has properties {nulls[:6]} whose "
                             "schema is null, not a JSON Schema object")
        for name in sorted(set(called) - declared):
            self.add("tool-not-declared", field, f"the row calls {name!r}, which tools does not list")


def check_sft_row(row: Row, consumer: str = "openai-sft", extra_keys: frozenset[str] = frozenset()) -> list[Problem]:
    """Problems OpenAI's chat fine-tuning has with ``row`` (see the module docstring).
    ``extra_keys``: top-level keys to tolerate (e.g. ``metadata`` in a TRL ChatML file)."""
    c = _Checker(consumer, row)
    d = row.data
    extra = sorted(set(d) - SFT_ROW_KEYS - extra_keys)
    if extra:
        c.add("unknown-key", "", f"row keys {extra} (a line holds {sorted(SFT_ROW_KEYS)})")
    called = c.messages(d.get("messages"), "messages", ids=set())
    c.tools(d.get("tools"), "tools", called)
    return c.problems


def check_dpo_row(row: Row, consumer: str = "openai-dpo", extra_keys: frozenset[str] = frozenset()) -> list[Problem]:
    """Problems OpenAI's preference fine-tuning has with ``row`` (see the module docstring)."""
    c = _Checker(consumer, row)
    d = row.data
    extra = sorted(set(d) - DPO_ROW_KEYS - extra_keys)
    if extra:
        c.add("unknown-key", "", f"row keys {extra} (a line holds {sorted(DPO_ROW_KEYS)})")
    inp = d.get("input")
    if not isinstance(inp, dict):
        c.add("bad-shape", "input", "input must be an object with messages")
        return c.problems
    if set(inp) - DPO_INPUT_KEYS:
        c.add("unknown-key", "input", f"input keys {sorted(set(inp) - DPO_INPUT_KEYS)}")
    ids: set[str] = set()
    called = c.messages(inp.get("messages"), "input.messages", ids=ids)
    if isinstance(inp.get("messages"), list) and not any(
            isinstance(m, dict) and m.get("role") == "user" for m in inp["messages"]):
        c.add("bad-shape", "input.messages", "no user message in the input")
    outs = []
    for side in ("preferred_output", "non_preferred_output"):
        out = d.get(side)
        if not (isinstance(out, list) and len(out) == 1 and isinstance(out[0], dict) and out[0].get("role") == "assistant"):
            c.add("bad-output", side, "must be a list of exactly one assistant message")
            continue
        outs.append(out[0])
        # the input's ids are taken; each side continues the input on its own
        called += c.messages(out, side, ids=set(ids), allow_system=False)
    if len(outs) == 2 and outs[0].get("content") == outs[1].get("content") and \
            _calls(outs[0]) == _calls(outs[1]):
        c.add("identical-outputs", "", "preferred and non-preferred outputs say the same (ids aside)")
    c.tools(inp.get("tools"), "input.tools", called)
    return c.problems


def _calls(m: dict[str, Any]) -> list[tuple[Any, Any]]:
    return [(c.get("function", {}).get("name"), c.get("function", {}).get("arguments"))
            for c in m.get("tool_calls") or [] if isinstance(c, dict)]
