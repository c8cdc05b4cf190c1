"""OpenHands (ex-OpenDevin) event histories as canonical steps, for the readers of
:mod:`.openhands` (evaluation ``output.jsonl`` rows).

Source: All-Hands-AI/OpenHands ``openhands/events/serialization/event.py`` (``event_to_dict``),
``serialization/action.py`` and ``observation.py``, ``openhands/core/schema/action.py`` /
``observation.py`` (the ``action`` / ``observation`` type names), ``openhands/events/tool.py``
(``ToolCallMetadata``), ``openhands/events/utils.py`` (``get_pairs_from_events``) and
``evaluation/utils/shared.py`` (``compatibility_for_eval_history_pairs``).

An event is ``event_to_dict(event)``: ``{id, timestamp, source: agent|user|environment,
message, cause?, action|observation, args (actions) | content + extras (observations),
tool_call_metadata? {function_name, tool_call_id, model_response, total_calls_in_response},
llm_metrics?, success?}``. A history is either shape:

- new (late 2024 on): a flat list of events; an observation names the action it answers by
  ``cause`` (the action's ``id``) and, with native tool calling, ``tool_call_metadata``;
- V1 (OpenHands/benchmarks on the software-agent-sdk, late 2025): a flat list of events
  with a ``kind`` (``ActionEvent``, ``ObservationEvent``, ``MessageEvent``, ...), mapped by
  :func:`_v1_event`;
- old (OpenDevin 2024, and the compatibility pairs later): a list of ``[action,
  observation]`` pairs; ``{"observation": "null"}`` (NullObservation) means none, an
  ``{"action": "null"}`` pairs a background observation with no action.

Mapping (one pass, in order):

- ``system`` action: a system step (``args.content``); ``args.tools`` are the tool
  definitions, ``args.openhands_version`` the version.
- ``message`` action: a user step (source ``user``) or an agent step without calls.
- Other agent actions (``run``, ``run_ipython``, ``read``, ``write``, ``edit``, ``browse``,
  ``browse_interactive``, ``delegate``, ``think``, ``finish``, ``reject``, ``mcp``, ...)
  are tool calls. With ``tool_call_metadata`` the call is the model's own: id
  ``tool_call_id``, name ``function_name``, arguments the matching call of
  ``model_response.choices[0].message.tool_calls`` (the JSON text the model wrote), and the
  actions of one model response (same ``model_response.id``) share one step whose message
  and reasoning are the response's ``content`` / ``reasoning_content`` and whose metrics are
  its ``usage`` tokens. Without it (pre function-calling CodeAct, OpenDevin) the call is
  named after the action type, with id ``event_<id>`` and the action's ``args`` as
  arguments (bookkeeping args such as ``thought``, ``blocking``, ``hidden``,
  ``confirmation_state`` and empty values left out); the step's message is ``args.thought``.
- A user action other than a message (a command the harness ran as the user) is a user
  step with the event's ``message``.
- An observation is attached to the call it answers: its ``tool_call_metadata.tool_call_id``,
  else the call made by its ``cause`` event, else (pairs) its pair's action; one whose cause
  made no call is an environment step, one with no cause at all answers the latest
  unanswered call if any (:func:`~.mapping.attach`). ``is_error`` is set for ``error`` and
  ``user_rejected`` observations and from ``success`` when given.
- Bookkeeping is left out and counted (``skipped``): ``recall``, ``change_agent_state``,
  ``condensation`` (and ``condensation_request`` unless it is a tool call),
  ``pause``/``resume``/``stop`` actions; ``agent_state_changed``, ``recall`` and ``condense``
  observations (workspace context and microagent knowledge the harness injects, state
  changes). ``null`` actions and observations (the empty side of a pair) are not events.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from ..models import Observation, Step, StepToolCall
from .mapping import Fail, arguments_of, attach, text_of, tool_call

SKIP_ACTIONS = frozenset({"recall", "change_agent_state", "condensation", "condensation_request",
                          "pause", "resume", "stop"})
SKIP_OBSERVATIONS = frozenset({"agent_state_changed", "recall", "condense"})
NOISE_ARGS = frozenset({"thought", "blocking", "is_static", "cwd", "hidden", "confirmation_state", "security_risk",
                        "impl_source", "kernel_init_code", "include_extra", "wait_for_response", "keep_prompt",
                        "is_confirmed", "browsergym_send_msg_to_user", "return_axtree", "translated_ipython_code"})
ERROR_OBSERVATIONS = frozenset({"error", "user_rejected"})


@dataclass
class History:
    """What a history gave besides its steps: ``tools`` (the system event's definitions),
    ``version`` (``openhands_version``), the type of the last agent action (``last_action``)
    and the finish action's args (``finish``), the number of events read and left out, and
    the first and last event timestamps (ISO 8601 as written, usually without UTC offset)."""

    steps: list[Step] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    version: str | None = None
    last_action: str | None = None
    finish: dict[str, Any] | None = None
    events: int = 0
    skipped: int = 0
    first_ts: str | None = None
    last_ts: str | None = None
    calls: dict[int, str] = field(default_factory=dict)  # action event id -> its call id
    responses: dict[str, Step] = field(default_factory=dict)  # model_response.id -> its step


def _str(obj: dict, key: str, where: str, fail: Fail) -> str | None:
    """``obj[key]`` when a string, None when absent or null; InputError otherwise."""
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise fail(f"{where}.{key}", f"expected a string, got {type(value).__name__}")


def _dict(obj: dict, key: str, where: str, fail: Fail) -> dict | None:
    value = obj.get(key)
    if value is None or isinstance(value, dict):
        return value
    raise fail(f"{where}.{key}", f"expected an object, got {type(value).__name__}")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def clean_args(args: dict[str, Any]) -> dict[str, Any]:
    """An action's args as tool-call arguments: bookkeeping keys, empty values and
    ``is_input: false`` (a command, not input to a running one) dropped."""
    return {k: v for k, v in args.items()
            if k not in NOISE_ARGS and v not in (None, "", {}, []) and not (k == "is_input" and v is False)}


def history_steps(history: Any, fail: Fail, field_name: str = "history") -> History:
    """The steps of a history in either shape (see the module docstring). Raises InputError
    (through ``fail``) naming the field, e.g. ``history[3].args.command``."""
    if not isinstance(history, list):
        raise fail(field_name, f"expected a list of events, got {type(history).__name__}")
    h = History()
    for i, item in enumerate(history):
        where = f"{field_name}[{i}]"
        if isinstance(item, list):
            if len(item) != 2:
                raise fail(where, f"expected an [action, observation] pair, got a list of {len(item)}")
            link = _event(h, item[0], f"{where}[0]", fail, None)
            _event(h, item[1], f"{where}[1]", fail, link)
        else:
            _event(h, item, where, fail, None)
    return h


def _event(h: History, e: Any, where: str, fail: Fail, link: str | None) -> str | None:
    """Map one event; returns the call id an action made (for its pair's observation)."""
    if not isinstance(e, dict):
        raise fail(where, f"expected an event object, got {type(e).__name__}")
    ts = _str(e, "timestamp", where, fail)
    if isinstance(e.get("kind"), str):  # V1 (software-agent-sdk) events: {kind, ...}
        h.events += 1
        _times(h, ts)
        _v1_event(h, e, e["kind"], where, fail, ts)
        return None
    if "action" in e:
        kind = e["action"]
        if not isinstance(kind, str):
            raise fail(f"{where}.action", f"expected a string, got {type(kind).__name__}")
        if kind == "null":  # NullAction: the empty side of a pair
            return None
        h.events += 1
        _times(h, ts)
        return _action(h, e, kind, where, fail, ts)
    if "observation" in e:
        kind = e["observation"]
        if not isinstance(kind, str):
            raise fail(f"{where}.observation", f"expected a string, got {type(kind).__name__}")
        if kind == "null":  # NullObservation: the empty side of a pair
            return None
        h.events += 1
        _times(h, ts)
        _observation(h, e, kind, where, fail, link, ts)
        return None
    raise fail(where, "neither an action nor an observation (no 'action' or 'observation' key)")


def _times(h: History, ts: str | None) -> None:
    if ts:
        h.first_ts = h.first_ts or ts
        h.last_ts = ts


def _action(h: History, e: dict, kind: str, where: str, fail: Fail, ts: str | None) -> str | None:
    args = _dict(e, "args", where, fail) or {}
    source = e.get("source") if isinstance(e.get("source"), str) else None
    tcm = _dict(e, "tool_call_metadata", where, fail)
    if kind == "system":
        h.steps.append(Step(source="system", message=_str(args, "content", f"{where}.args", fail)
                            or _str(e, "message", where, fail) or "", timestamp=ts))
        tools = args.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
                raise fail(f"{where}.args.tools", "expected a list of tool definition objects")
            h.tools = tools
        version = args.get("openhands_version")
        h.version = version if isinstance(version, str) else h.version
        return None
    if kind in SKIP_ACTIONS and tcm is None:
        h.skipped += 1
        return None
    if kind == "message":
        text = _str(args, "content", f"{where}.args", fail)
        text = text if text is not None else _str(e, "message", where, fail) or ""
        images = args.get("image_urls")
        if isinstance(images, list) and images:
            text += "\n" + "\n".join("[image]" for _ in images)
        if source == "user":
            h.steps.append(Step(source="user", message=text, timestamp=ts))
        else:
            h.steps.append(Step(source="agent", message=text or None, timestamp=ts))
            h.last_action = kind
        return None
    if source == "user":  # a command the harness ran as the user, not the agent's call
        text = _str(e, "message", where, fail) or json.dumps(clean_args(args), ensure_ascii=False, default=str)
        h.steps.append(Step(source="user", message=text, timestamp=ts))
        return None
    h.last_action = kind
    if kind == "finish":
        h.finish = args
    eid = _int(e.get("id"))
    default_id = f"event_{eid}" if eid is not None else f"call_{h.events}"
    call, step = _call(h, e, kind, args, tcm, where, fail, default_id, ts)
    if step is None:
        thought = _str(args, "thought", f"{where}.args", fail)
        step = Step(source="agent", message=(thought or None) if kind != "think" else None, timestamp=ts)
        h.steps.append(step)
    step.tool_calls.append(call)
    if eid is not None:
        h.calls[eid] = call.id
    return call.id


def _call(h: History, e: dict, kind: str, args: dict, tcm: dict | None, where: str, fail: Fail,
          default_id: str, ts: str | None) -> tuple[StepToolCall, Step | None]:
    """The tool call of an agent action, and the step of its model response when that is
    known (a new one for the first action of a response, the shared one after)."""
    if tcm is None:
        return StepToolCall(id=default_id, name=kind, arguments=clean_args(args)), None
    tw = f"{where}.tool_call_metadata"
    cid = _str(tcm, "tool_call_id", tw, fail) or default_id
    name = _str(tcm, "function_name", tw, fail) or kind
    arguments: dict[str, Any] | str = clean_args(args)
    response = _dict(tcm, "model_response", tw, fail)
    if response is None:
        return StepToolCall(id=cid, name=name, arguments=arguments), None
    rw = f"{tw}.model_response"
    choices = response.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    message = first.get("message") if isinstance(first, dict) else None
    if message is not None and not isinstance(message, dict):
        raise fail(f"{rw}.choices[0].message", f"expected an object, got {type(message).__name__}")
    message = message or {}
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise fail(f"{rw}.choices[0].message.tool_calls", f"expected a list, got {type(calls).__name__}")
    for j, c in enumerate(calls or []):
        if isinstance(c, dict) and c.get("id") == cid:
            arguments = tool_call(c, fail, f"{rw}.choices[0].message.tool_calls[{j}]", cid).arguments
            break
    call = StepToolCall(id=cid, name=name, arguments=arguments_of(arguments))
    rid = response.get("id") if isinstance(response.get("id"), str) and response.get("id") else None
    if rid is not None and rid in h.responses:
        return call, h.responses[rid]
    reasoning = message.get("reasoning_content")
    model = response.get("model")
    text = text_of(message.get("content"), fail, f"{rw}.choices[0].message.content")
    step = Step(source="agent", message=text or None,
                reasoning=reasoning if isinstance(reasoning, str) and reasoning else None, timestamp=ts,
                model=model if isinstance(model, str) else None, metrics=_usage(response.get("usage")))
    h.steps.append(step)
    if rid is not None:
        h.responses[rid] = step
    return call, step


def _usage(usage: Any) -> dict[str, float]:
    if not isinstance(usage, dict):
        return {}
    out = {}
    for k in ("prompt_tokens", "completion_tokens"):
        v = usage.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            out[k] = float(v)
    return out


def _observation(h: History, e: dict, kind: str, where: str, fail: Fail, link: str | None, ts: str | None) -> None:
    if kind in SKIP_OBSERVATIONS:
        h.skipped += 1
        return
    content = _str(e, "content", where, fail)
    content = content if content is not None else _str(e, "message", where, fail) or ""
    success = e.get("success")
    is_error = True if kind in ERROR_OBSERVATIONS else (not success if isinstance(success, bool) else None)
    tcm = _dict(e, "tool_call_metadata", where, fail)
    cid = _str(tcm, "tool_call_id", f"{where}.tool_call_metadata", fail) if tcm is not None else None
    cause = _int(e.get("cause"))
    if cid is None and cause is not None:
        cid = h.calls.get(cause)
    cid = cid or link
    if cid is None and cause is not None:  # answers an event that made no call (a user's command)
        h.steps.append(Step(source="environment", message=content, timestamp=ts))
        return
    attach(h.steps, Observation(content=content, source_call_id=cid, is_error=is_error))


def _v1_event(h: History, e: dict, kind: str, where: str, fail: Fail, ts: str | None) -> None:
    """One V1 event (OpenHands/software-agent-sdk ``openhands/sdk/event``, serialised with
    its ``kind``): ``SystemPromptEvent {system_prompt, tools}``, ``MessageEvent {source,
    llm_message}``, ``ActionEvent {thought, reasoning_content, tool_name, tool_call_id,
    tool_call {id, name, arguments}, action, llm_response_id}``, ``ObservationEvent
    {tool_call_id, observation {content | output, is_error | error}}``,
    ``UserRejectObservation {rejection_reason}``, ``AgentErrorEvent {error}``; the others
    (condensation, pause, state updates, conversation errors, tokens) are skipped."""
    if kind == "SystemPromptEvent":
        prompt = text_of(e.get("system_prompt"), fail, f"{where}.system_prompt")
        h.steps.append(Step(source="system", message=prompt or "", timestamp=ts))
        tools = e.get("tools")
        if tools is not None:
            if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
                raise fail(f"{where}.tools", "expected a list of tool definition objects")
            h.tools = tools
    elif kind == "MessageEvent":
        msg = _dict(e, "llm_message", where, fail) or {}
        text = text_of(msg.get("content"), fail, f"{where}.llm_message.content") or ""
        if e.get("source") == "user":
            h.steps.append(Step(source="user", message=text, timestamp=ts))
        else:
            reasoning = _str(msg, "reasoning_content", f"{where}.llm_message", fail)
            h.steps.append(Step(source="agent", message=text or None, reasoning=reasoning or None, timestamp=ts))
            h.last_action = "message"
    elif kind == "ActionEvent":
        cid = _str(e, "tool_call_id", where, fail) or f"call_{h.events}"
        raw = _dict(e, "tool_call", where, fail)
        if raw is not None:
            call = tool_call(raw, fail, f"{where}.tool_call", cid)
        else:
            action = _dict(e, "action", where, fail) or {}
            call = StepToolCall(id=cid, name=_str(e, "tool_name", where, fail) or str(action.get("kind") or "action"),
                                arguments=clean_args({k: v for k, v in action.items() if k != "kind"}))
        h.last_action = "finish" if call.name == "finish" else call.name
        if call.name == "finish" and isinstance(call.arguments, dict):
            h.finish = call.arguments
        rid = _str(e, "llm_response_id", where, fail)
        step = h.responses.get(rid) if rid else None
        if step is None:
            reasoning = _str(e, "reasoning_content", where, fail)
            step = Step(source="agent", message=text_of(e.get("thought"), fail, f"{where}.thought") or None,
                        reasoning=reasoning or None, timestamp=ts)
            h.steps.append(step)
            if rid:
                h.responses[rid] = step
        step.tool_calls.append(call)
    elif kind in ("ObservationEvent", "UserRejectObservation", "AgentErrorEvent"):
        cid = _str(e, "tool_call_id", where, fail)
        if kind == "ObservationEvent":
            o = _dict(e, "observation", where, fail) or {}
            ow = f"{where}.observation"
            if o.get("content") is not None:
                content = text_of(o["content"], fail, f"{ow}.content")
            else:
                content = _str(o, "output", ow, fail)
            flag = o.get("is_error", o.get("error"))
            is_error = flag if isinstance(flag, bool) else None
        elif kind == "UserRejectObservation":
            content, is_error = f"Action rejected: {_str(e, 'rejection_reason', where, fail) or ''}", True
        else:
            content, is_error = _str(e, "error", where, fail), True
        attach(h.steps, Observation(content=content or "", source_call_id=cid, is_error=is_error))
    else:
        h.skipped += 1


__all__ = ["History", "history_steps", "clean_args", "SKIP_ACTIONS", "SKIP_OBSERVATIONS"]
