"""OpenAI Responses API items to canonical steps: part of the mapping layer
(:mod:`streamgrade.formats.mapping`), for readers of traces recorded as Responses items.

- :func:`responses_call`: every ``*_call`` item (``function_call``, ``custom_tool_call``,
  ``local_shell_call``, ``web_search_call``, ...) as a :class:`~streamgrade.models.StepToolCall`.
- :func:`responses_output`: every ``*_output`` item as an :class:`~streamgrade.models.Observation`.
- :class:`ResponsesSteps`: items added in order become steps, one agent step per model
  response, outputs attached to their calls by ``call_id``.

Sources: the OpenAI Responses API reference (output and input item types) and openai/codex
``codex-rs/protocol/src/models.rs`` (``ResponseItem``: message, reasoning, local_shell_call,
function_call, function_call_output, custom_tool_call(+output), tool_search_call(+output),
web_search_call, image_generation_call), which Codex CLI records in its rollouts.
"""

from __future__ import annotations

import json
from typing import Any

from ..models import Observation, Step, StepToolCall
from .mapping import AGENT_ROLES, SYSTEM_ROLES, USER_ROLES, Fail, arguments_of, attach, role_of, text_of, tool_call


#: Responses item types that are the model's tool calls, and those that are a call's output.
RESPONSES_CALLS = frozenset({"function_call", "custom_tool_call", "local_shell_call", "shell_call", "apply_patch_call",
                             "web_search_call", "file_search_call", "tool_search_call", "image_generation_call",
                             "code_interpreter_call", "computer_call", "mcp_call"})
RESPONSES_OUTPUTS = frozenset({"function_call_output", "custom_tool_call_output", "local_shell_call_output",
                               "shell_call_output", "apply_patch_call_output", "computer_call_output",
                               "tool_search_output"})
def _at(field: str, sub: str) -> str:
    return f"{field}.{sub}" if field else sub


_CALL_ARGS = ("arguments", "input", "action", "code", "queries", "revised_prompt", "operation")


def responses_call(item: dict, fail: Fail, field: str, default_id: str) -> StepToolCall:
    """A Responses call item as a tool call. ``function_call`` / ``custom_tool_call``: its
    ``name`` (``<namespace>__<name>`` when it has a ``namespace``: an MCP server) and its
    ``arguments`` (a JSON string) or ``input`` (free text, e.g. an apply_patch patch) as given.
    Built-in call items are named by their type without ``_call`` (``web_search``,
    ``local_shell``, ...) with the first of ``arguments``, ``input``, ``action``, ``code``,
    ``queries``, ``revised_prompt``, ``operation`` as arguments. The id is ``call_id``, else
    ``id``, else ``default_id``."""
    kind = item.get("type")
    if kind in ("function_call", "custom_tool_call"):
        call = tool_call(item, fail, field, default_id)
        ns = item.get("namespace")
        if isinstance(ns, str) and ns:
            call.name = f"{ns}__{call.name}"
        return call
    name = kind[: -len("_call")] if isinstance(kind, str) and kind.endswith("_call") else str(kind)
    raw = next((item[k] for k in _CALL_ARGS if item.get(k) is not None), None)
    cid = item.get("call_id") or item.get("id")
    return StepToolCall(id=cid if isinstance(cid, str) and cid else default_id, name=name, arguments=arguments_of(raw))


def responses_output(item: dict, fail: Fail, field: str) -> Observation:
    """A Responses output item as an observation of call ``call_id``: ``output`` as text (a
    string as is; a list of content parts through :func:`text_of`; an object's ``content``,
    with ``success: false`` marking an error; other values as JSON text), or, for a
    ``tool_search_output``, its ``tools`` as JSON text. ``is_error`` from ``is_error``,
    ``success`` or a ``failed`` status, else None."""
    raw = item.get("tools") if item.get("type") == "tool_search_output" else item.get("output")
    err = item.get("is_error")
    is_error = err if isinstance(err, bool) else None
    if isinstance(raw, dict):
        if raw.get("success") is False:
            is_error = True
        raw = raw.get("content", raw.get("output", json.dumps(raw, ensure_ascii=False, default=str)))
    if raw is None or isinstance(raw, str):
        text = raw or ""
    elif isinstance(raw, list) and item.get("type") != "tool_search_output":
        text = text_of(raw, fail, _at(field, "output")) or ""
    else:
        text = json.dumps(raw, ensure_ascii=False, default=str)
    if is_error is None and item.get("status") == "failed":
        is_error = True
    cid = item.get("call_id") or item.get("id")
    return Observation(content=text, source_call_id=cid if isinstance(cid, str) and cid else None, is_error=is_error)


def _summary_texts(parts: Any) -> list[str]:
    if not isinstance(parts, list):
        return []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str) and p["text"]]


class ResponsesSteps:
    """Steps from OpenAI Responses API items added in order (a response's output items, a
    conversation's input items, a Codex rollout's ``response_item`` lines).

    ``message`` items become steps by role (system/developer: system; user; assistant: agent);
    the model's items (``reasoning``, assistant ``message``, every :data:`RESPONSES_CALLS`
    item) that follow one another make one agent step, as one response does: a new agent
    step starts at a ``reasoning`` item or an assistant message once the open step has
    content, and at any model item after an output or a user/system message. Output items
    (:data:`RESPONSES_OUTPUTS`) are attached to the step of their call (:func:`attach`).
    Reasoning text is the item's ``content`` texts, else its ``summary`` texts (encrypted
    reasoning has none). Other item types are ignored (:meth:`add` returns None)."""

    def __init__(self) -> None:
        self.steps: list[Step] = []
        self._open: Step | None = None

    def close(self) -> None:
        """End the open agent step: the next model item starts a new one."""
        self._open = None

    def append(self, step: Step) -> Step:
        """Add a step made elsewhere (a context message, a compaction marker); closes."""
        self.steps.append(step)
        self._open = None
        return step

    def _agent(self, new: bool = False) -> Step:
        if new or self._open is None:
            self._open = Step(source="agent")
            self.steps.append(self._open)
        return self._open

    def add(self, item: Any, fail: Fail, field: str) -> Step | None:
        """Add one item; the step it made or joined, or None for an item type not read.
        InputError (through ``fail``, naming ``field``) for a malformed item."""
        if not isinstance(item, dict):
            raise fail(field, f"expected an item object, got {type(item).__name__}")
        kind = item.get("type") if isinstance(item.get("type"), str) else None
        if kind == "message" or (kind is None and "role" in item):
            role = role_of(item)
            if role is None:
                raise fail(_at(field, "role"), "missing role")
            text = text_of(item.get("content"), fail, _at(field, "content"))
            if role in AGENT_ROLES:
                open_ = self._open
                step = self._agent(new=open_ is not None and (open_.message is not None or bool(open_.tool_calls)))
                step.message = text if text else step.message
                return step
            if role in SYSTEM_ROLES or role in USER_ROLES:
                return self.append(Step(source="system" if role in SYSTEM_ROLES else "user", message=text or ""))
            raise fail(_at(field, "role"), f"unknown role {role!r}")
        if kind == "reasoning":
            open_ = self._open
            step = self._agent(new=open_ is not None and (open_.message is not None or bool(open_.tool_calls)
                                                          or open_.reasoning is not None))
            texts = _summary_texts(item.get("content")) or _summary_texts(item.get("summary"))
            if texts:
                step.reasoning = "\n".join([*([step.reasoning] if step.reasoning else []), *texts])
            return step
        if kind in RESPONSES_CALLS:
            step = self._agent()
            step.tool_calls.append(responses_call(item, fail, field, f"call_{len(self.steps) - 1}_{len(step.tool_calls)}"))
            return step
        if kind in RESPONSES_OUTPUTS:
            attach(self.steps, responses_output(item, fail, field))
            self._open = None
            return self.steps[-1] if self.steps else None
        return None


__all__ = ["RESPONSES_CALLS", "RESPONSES_OUTPUTS", "responses_call", "responses_output", "ResponsesSteps"]
