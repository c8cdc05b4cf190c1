"""The mapping layer: what every agent-run reader shares, so that readers stay small.

- Field paths (:func:`get`): ``info.task_id``, ``messages.0.content``, ``tasks[id=task_id]``.
- Rows (:func:`rows_at`): a list, an object of rows keyed by id (``*``), nested under a key.
- Content (:func:`text_of`, :func:`reasoning_of`): a string, or a list of content parts in
  OpenAI (``{type: text|input_text|output_text, text}``, ``image_url``), Anthropic
  (``text``, ``thinking``, ``tool_use``, ``tool_result``, ``image``) or Inspect AI
  (``text``, ``reasoning {reasoning, redacted, summary}``, ``image``, ``audio``, ``video``,
  ``document``, ``data``, server-side ``tool_use {id, name, arguments, result, error}``) shape.
- Tool calls (:func:`tool_call`): OpenAI ``{id, type, function: {name, arguments}}``, flat
  ``{id, name, arguments|args|input|parameters}`` with object or string arguments, Inspect
  AI ``{id, function: <name>, arguments: {...}}`` (the function as a string),
  Anthropic ``tool_use`` blocks ``{id, name, input}``, OpenAI Responses / Codex
  ``function_call`` items ``{call_id, name, arguments}``, ATIF ``{tool_call_id,
  function_name, arguments}``, and the legacy ``function_call`` of a message.
- OpenAI Responses API items (``message``, ``reasoning``, every ``*_call`` and ``*_output``
  item) to steps: :mod:`streamgrade.formats.responses`, built on this module.
- Messages to steps (:func:`messages_to_steps`): OpenAI chat, Anthropic Messages and
  ShareGPT (``{from, value}``) messages become the canonical :class:`~streamgrade.models.Step`
  list (after ATIF): tool results are attached as observations to the agent step whose call
  they answer. A tool result's ``error`` (Inspect AI ``{type, message}``, or a string) marks
  it as an error and its message is added to the text; an agent message's ``model`` becomes
  the step's model.
- Text-based agent loops (:func:`feedback`): the message after the model's turn is the
  result of its action (or a format error) and belongs to that agent step.
- The OpenAI chat view (:func:`chat_view`) of the steps (a user step may carry tool calls
  of its own, in dual-control runs: shown as text in user messages), and
  :func:`agent_session`, which every agent reader ends with.

Every function that reads untrusted input takes ``fail(field, message) -> InputError`` so
that an error names the file and the row's line or field (``Rows.fail`` bound to a row).
Sources: OpenAI Chat Completions and Responses API references, Anthropic Messages API
("tool use"), ATIF v1.x (harbor-framework/harbor), LLaMA-Factory's ShareGPT format.
"""

from __future__ import annotations

import json
import re
from typing import Any, Callable, Iterable

from ..errors import InputError
from ..models import ChatMessage, Observation, Session, SessionRef, Step, StepToolCall, ToolCall, ToolFunction

Fail = Callable[[str, str], InputError]

SYSTEM_ROLES = frozenset({"system", "developer"})
USER_ROLES = frozenset({"user", "human"})
AGENT_ROLES = frozenset({"assistant", "model", "ai", "gpt", "agent", "bot", "chatbot"})
TOOL_ROLES = frozenset({"tool", "function", "ipython", "observation", "environment", "tool_result", "tool_response"})
_TEXT_PARTS = frozenset({"text", "input_text", "output_text"})
_REASONING_PARTS = frozenset({"thinking", "redacted_thinking", "reasoning"})
_FILTER = re.compile(r"^(?P<name>[^\[\]]+)\[(?P<key>[^=\]]+)=(?P<ref>[^\]]+)\]$")


# -- field paths and rows -------------------------------------------------------------------
def get(obj: Any, path: str, root: Any = None) -> Any:
    """``obj`` followed along the dotted ``path``; None when a step is missing.

    A segment is a key, a list index (``messages.0``), or a join ``table[key=ref]``: the
    first item of the list ``table`` (looked up in ``root``, the document, when given, else
    in ``obj``) whose ``key`` equals ``obj``'s value at ``ref`` (tau2-bench's
    ``tasks[id=task_id].description``)."""
    if not path:
        return None
    cur = obj
    for part in path.split("."):
        m = _FILTER.match(part)
        if m:
            table = get(root if root is not None else obj, m["name"])
            want = get(obj, m["ref"])
            if not isinstance(table, list) or want is None:
                return None
            cur = next((t for t in table if isinstance(t, dict) and _same(t.get(m["key"]), want)), None)
        elif isinstance(cur, dict):
            cur = cur.get(part)
        elif isinstance(cur, list) and part.lstrip("-").isdigit() and -len(cur) <= int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return None
        if cur is None:
            return None
    return cur


def _same(a: Any, b: Any) -> bool:
    return a == b or (a is not None and b is not None and str(a) == str(b))


def rows_at(doc: Any, path: str = "") -> list[tuple[str | None, Any]]:
    """The rows of a document as (key, row): ``path`` empty gives the items of a top-level
    list (key None) or the document itself; a dotted path leads to a list or to an object;
    a last segment ``*`` takes the values of an object, keyed by their keys (a dict of rows
    keyed by id, FireAct's ``{question_id: trajectory}``). An object reached without ``*``
    is one row. Missing paths give no rows."""
    keyed = path == "*" or path.endswith(".*")
    base = path[:-2] if path.endswith(".*") else ("" if path == "*" else path)
    node = get(doc, base) if base else doc
    if keyed:
        return [(str(k), v) for k, v in node.items()] if isinstance(node, dict) else []
    if isinstance(node, list):
        return [(None, r) for r in node]
    return [] if node is None else [(None, node)]


def as_text(value: Any) -> str | None:
    """A string as is, an int as its decimal text, else None (ids, names)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def as_float(value: Any) -> float | None:
    """A number, a bool (1.0/0.0: pass/fail labels) or a numeric string as float, else None."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value.strip())
        except ValueError:
            return {"true": 1.0, "false": 0.0, "pass": 1.0, "fail": 0.0}.get(value.strip().lower())
    return None


# -- content --------------------------------------------------------------------------------
def text_of(content: Any, fail: Fail, field: str) -> str | None:
    """Message content as text: a string as is, None as None, a list of content parts
    joined with newlines (text parts' text; image parts as ``[image]``; other parts as
    ``[<type>]``; reasoning, ``tool_use`` and ``tool_result`` parts are left to
    :func:`reasoning_of`, :func:`tool_calls_in` and :func:`results_in`), one part object
    (with ``type`` or ``text``) as that part. Anything else is an InputError naming
    ``field``."""
    if content is None or isinstance(content, str):
        return content
    if isinstance(content, dict) and ("type" in content or "text" in content):
        content = [content]  # one content part on its own
    if not isinstance(content, list):
        raise fail(field, f"expected a string, a list of content parts or null, got {type(content).__name__}")
    parts: list[str] = []
    for k, part in enumerate(content):
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict):
            kind = _part_type(part)
            if kind in _REASONING_PARTS or kind in ("tool_use", "tool_result", "function_call", "function_call_output",
                                                    "data"):  # Inspect AI's "data": a provider's internal payload
                continue
            text = part.get("text")
            if isinstance(text, str) and (kind is None or kind in _TEXT_PARTS or kind not in ("image", "image_url")):
                parts.append(text)
            elif kind in ("image", "image_url", "input_image"):
                parts.append("[image]")
            else:
                parts.append(f"[{kind or 'part'}]")
        else:
            raise fail(f"{field}[{k}]", f"expected a content part object or string, got {type(part).__name__}")
    return "\n".join(parts)


def _part_type(part: dict) -> str | None:
    """A content part's ``type`` when it is a string (a list or object there is no type)."""
    kind = part.get("type")
    return kind if isinstance(kind, str) else None


def reasoning_of(content: Any) -> str | None:
    """The text of Anthropic ``thinking`` parts and ``reasoning`` parts in a content list
    (Inspect AI ``{type: reasoning, reasoning, redacted, summary}``: a redacted part's
    ``reasoning`` is opaque, so only its ``summary`` is read)."""
    if not isinstance(content, list):
        return None
    texts = [(p.get("summary") if p.get("redacted") is True else p.get("thinking") or p.get("reasoning") or p.get("text"))
             for p in content if isinstance(p, dict) and _part_type(p) in _REASONING_PARTS]
    texts = [t for t in texts if isinstance(t, str) and t]
    return "\n".join(texts) or None


def arguments_of(raw: Any) -> dict[str, Any] | str:
    """Tool-call arguments as the source gave them: an object, or a string (a JSON text is
    kept verbatim, so the view shows the agent's own bytes; a command or free text too);
    missing arguments are ``{}``; any other JSON value is encoded as text."""
    if raw is None:
        return {}
    if isinstance(raw, (dict, str)):
        return raw
    return json.dumps(raw, ensure_ascii=False, default=str)


def tool_call(obj: Any, fail: Fail, field: str, default_id: str) -> StepToolCall:
    """One tool call in any shape listed in the module docstring; InputError naming the
    field when it has no name."""
    if not isinstance(obj, dict):
        raise fail(field, f"expected a tool call object, got {type(obj).__name__}")
    fn = obj.get("function") if isinstance(obj.get("function"), dict) else obj
    name = fn.get("name") or obj.get("function_name") or obj.get("tool_name")
    if name is None and isinstance(obj.get("function"), str):  # Inspect AI: {id, function: "bash", arguments}
        name = obj["function"]
    if not isinstance(name, str) or not name:
        where = f"{field}.function.name" if fn is not obj else f"{field}.name"
        raise fail(where, "missing tool name" if name is None else "expected a non-empty string")
    key = next((k for k in ("arguments", "args", "input", "parameters") if k in fn), "arguments")
    raw_args = fn.get(key)
    if raw_args is not None and not isinstance(raw_args, (dict, str, list)):
        where = f"{field}.function.{key}" if fn is not obj else f"{field}.{key}"
        raise fail(where, f"expected a JSON string or object, got {type(raw_args).__name__}")
    # call_id first: a Responses item's ``id`` ("fc_...") is the item's, its ``call_id`` the
    # one its output names
    cid = obj.get("call_id") or obj.get("id") or obj.get("tool_call_id") or obj.get("tool_use_id")
    cid = cid if isinstance(cid, str) and cid else default_id
    return StepToolCall(id=cid, name=name, arguments=arguments_of(raw_args))


def tool_calls_in(message: dict, fail: Fail, field: str, step: int) -> list[StepToolCall]:
    """The tool calls of a message: its ``tool_calls`` list, its legacy ``function_call``,
    and the ``tool_use`` / ``function_call`` parts of its content."""
    out: list[StepToolCall] = []
    calls = message.get("tool_calls")
    if calls is not None and not isinstance(calls, list):
        raise fail(f"{field}.tool_calls", f"expected a list, got {type(calls).__name__}")
    for j, c in enumerate(calls or []):
        out.append(tool_call(c, fail, f"{field}.tool_calls[{j}]", f"call_{step}_{len(out)}"))
    legacy = message.get("function_call")
    if isinstance(legacy, dict):
        out.append(tool_call(legacy, fail, f"{field}.function_call", f"call_{step}_{len(out)}"))
    content = message.get("content")
    if isinstance(content, list):
        for k, part in enumerate(content):
            if isinstance(part, dict) and part.get("type") in ("tool_use", "function_call"):
                out.append(tool_call(part, fail, f"{field}.content[{k}]", f"call_{step}_{len(out)}"))
    return out


def results_in(content: Any, fail: Fail, field: str) -> list[Observation]:
    """Anthropic ``tool_result`` parts (``{tool_use_id, content, is_error}``) and Responses
    ``function_call_output`` items of a content list, as observations."""
    out: list[Observation] = []
    if not isinstance(content, list):
        return out
    for k, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") in ("tool_result", "function_call_output"):
            body = part.get("content", part.get("output"))
            text = text_of(body, fail, f"{field}[{k}].content") if not isinstance(body, (int, float)) else str(body)
            cid = part.get("tool_use_id") or part.get("call_id")
            err = part.get("is_error")
            out.append(Observation(content=text or "", source_call_id=cid if isinstance(cid, str) else None,
                                   is_error=err if isinstance(err, bool) else None))
    return out


def inline_results(content: Any, fail: Fail, field: str) -> list[Observation]:
    """The results carried inside the call of server-side tool-use parts (Inspect AI
    ``ContentToolUse``: ``{type: tool_use, id, name, arguments, result, error?}``, run by the
    model provider), as observations of those calls."""
    out: list[Observation] = []
    if not isinstance(content, list):
        return out
    for k, part in enumerate(content):
        if isinstance(part, dict) and part.get("type") == "tool_use" and "result" in part:
            out.append(_result_obs(part.get("result"), part.get("error"), part.get("id"), fail, f"{field}[{k}].result"))
    return out


def _result_obs(body: Any, error: Any, cid: Any, fail: Fail, field: str) -> Observation:
    """An observation of a tool result ``body`` (text, content parts, a number or other
    JSON), with ``error`` (a message string or an object with ``message``) marking it as an
    error and added to the text."""
    if isinstance(body, (int, float)) or (body is not None and not isinstance(body, (str, list, dict))):
        text = str(body)
    elif isinstance(body, dict) and "type" not in body and "text" not in body:
        text = json.dumps(body, ensure_ascii=False, default=str)
    else:
        text = text_of(body, fail, field) or ""
    message = error.get("message") if isinstance(error, dict) else error
    if isinstance(message, str) and message and message not in text:
        text = f"{text}\nError: {message}" if text else f"Error: {message}"
    return Observation(content=text, source_call_id=cid if isinstance(cid, str) else None,
                       is_error=True if error else None)


# -- messages to steps ----------------------------------------------------------------------
def role_of(message: dict) -> str | None:
    """A message's role (``role``, or ShareGPT's ``from``), lower-cased."""
    role = message.get("role", message.get("from"))
    return role.strip().lower() if isinstance(role, str) else None


def messages_to_steps(messages: Any, fail: Fail, field: str = "messages") -> list[Step]:
    """Chat messages (OpenAI, Anthropic or ShareGPT shape; see the module docstring) as
    steps. A tool result becomes an observation of the agent step that made the call (by
    ``tool_call_id``, else the first unanswered call with its ``name``, else the first
    unanswered call); a result that answers no call is environment feedback. Errors name
    the field, e.g. ``messages[3].tool_calls[0].function.name``."""
    if not isinstance(messages, list):
        raise fail(field, f"expected a list of messages, got {type(messages).__name__}")
    steps: list[Step] = []
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise fail(where, f"expected a message object, got {type(m).__name__}")
        role = role_of(m)
        if role is None:
            raise fail(f"{where}.role", "missing role" if m.get("role", m.get("from")) is None
                       else f"expected a string, got {type(m.get('role', m.get('from'))).__name__}")
        body = m.get("content", m.get("value", m.get("text")))
        if role in SYSTEM_ROLES:
            steps.append(Step(source="system", message=text_of(body, fail, f"{where}.content") or ""))
        elif role in USER_ROLES:
            for obs in results_in(body, fail, f"{where}.content"):
                attach(steps, obs)
            text = text_of(body, fail, f"{where}.content")
            if text or not isinstance(body, list):
                steps.append(Step(source="user", message=text or ""))
        elif role in AGENT_ROLES or role == "function_call":
            if role == "function_call" and isinstance(body, str):  # ShareGPT: the call as JSON text
                try:
                    m = {"function_call": json.loads(body)}
                except ValueError:
                    raise fail(f"{where}.value", "expected a JSON function call") from None
                body = None
            reasoning = m.get("reasoning_content") or m.get("reasoning") or reasoning_of(body)
            model = m.get("model")
            steps.append(Step(source="agent", message=text_of(body, fail, f"{where}.content") or None,
                              reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
                              tool_calls=tool_calls_in(m, fail, where, i),
                              observations=inline_results(body, fail, f"{where}.content"),
                              model=model if isinstance(model, str) and model else None))
        elif role in TOOL_ROLES:
            text = text_of(body, fail, f"{where}.content") if not isinstance(body, (int, float)) else str(body)
            cid = m.get("tool_call_id") or m.get("tool_use_id") or m.get("call_id")
            obs = _result_obs(text, m.get("error") or m.get("tool_error"), cid, fail, f"{where}.content")
            if m.get("is_error") is True:
                obs.is_error = True
            name = m.get("name") if isinstance(m.get("name"), str) else m.get("function")
            attach(steps, obs, name=name if isinstance(name, str) else None)
        else:
            raise fail(f"{where}.role", f"unknown role {role!r}")
    return steps


def attach(steps: list[Step], obs: Observation, name: str | None = None, source: str = "agent") -> None:
    """Attach a tool result to the step of ``source`` whose call it answers (see
    :func:`messages_to_steps`), or add it as environment feedback. ``source`` is "user" for
    a result of the user's own call (dual-control runs, where the simulated user acts on
    its device: tau2-bench telecom)."""
    answered = lambda s: {o.source_call_id for o in s.observations}  # noqa: E731
    for step in reversed(steps):
        if step.source != source or not step.tool_calls:
            continue
        ids = [c.id for c in step.tool_calls]
        if obs.source_call_id is not None:
            if obs.source_call_id in ids:
                step.observations.append(obs)
                return
            continue
        free = [c for c in step.tool_calls if c.id not in answered(step)]
        pick = next((c for c in free if c.name == name), free[0] if free else None)
        if pick is not None:
            obs.source_call_id = pick.id
            step.observations.append(obs)
            return
        break  # the latest calls are all answered: this is feedback, not a result
    if obs.source_call_id is not None and steps and steps[-1].source == source:
        steps[-1].observations.append(obs)  # answers a call we cannot see: keep it, unlinked in the view
        return
    steps.append(Step(source="environment", message=obs.content))


def feedback(steps: list[Step], obs: Observation) -> bool:
    """Environment output that follows an agent step in a text-based agent loop, where the
    next message after the model's turn is the result of its action (SWE-agent's and
    mini-swe-agent's observation messages, a format error, a timeout notice): ``obs``
    answers the latest agent step's first unanswered call, or else is appended to that
    step unlinked (feedback that answers no call). Returns False, changing nothing, when
    there is no agent step yet (the caller keeps the message as a user step)."""
    for step in reversed(steps):
        if step.source == "agent":
            done = {o.source_call_id for o in step.observations}
            free = next((c for c in step.tool_calls if c.id not in done), None)
            if free is not None and obs.source_call_id is None:
                obs.source_call_id = free.id
            step.observations.append(obs)
            return True
    return False


# -- the OpenAI chat view --------------------------------------------------------------------
def _arguments_text(args: dict[str, Any] | str) -> str:
    return args if isinstance(args, str) else json.dumps(args, ensure_ascii=False, default=str)


def _linked(s: Step) -> tuple[list[Observation], list[Observation]]:
    """(the step's observations that answer one of its calls, in call order; the others)."""
    ids = [c.id for c in s.tool_calls]
    linked = sorted((o for o in s.observations if o.source_call_id in ids), key=lambda o: ids.index(o.source_call_id))
    return linked, [o for o in s.observations if o.source_call_id not in ids]


def _user_acts(s: Step) -> list[ChatMessage]:
    """A user step with tool calls of its own (dual control: the user acts on its device) as
    user messages, chat messages having no user tool calls: its text and one
    ``[calls name(arguments)]`` line per call, then one ``[name result] ...`` message per
    result (``[name error] ...`` when the result is flagged as an error)."""
    lines = [s.message] if s.message else []
    lines += [f"[calls {c.name}({_arguments_text(c.arguments)})]" for c in s.tool_calls]
    out = [ChatMessage(role="user", content="\n".join(lines))]
    names = {c.id: c.name for c in s.tool_calls}
    linked, other = _linked(s)
    for o in linked:
        out.append(ChatMessage(role="user", content=f"[{names[o.source_call_id]} {'error' if o.is_error else 'result'}] {o.content}"))
    out.extend(ChatMessage(role="user", content=o.content) for o in other)
    return out


def chat_view(steps: Iterable[Step]) -> list[ChatMessage]:
    """The steps as OpenAI chat messages: system and user steps as they are, an agent step
    as one assistant message (tool calls with JSON-string arguments, ``reasoning_content``)
    followed by one ``tool`` message per observation linked to one of its calls, in call
    order; observations that answer none of its calls, and environment steps, become user
    messages. Every tool message follows the assistant message holding its call. A user
    step with tool calls (dual control) becomes user messages that show the calls and their
    results (:func:`_user_acts`)."""
    out: list[ChatMessage] = []
    for s in steps:
        if s.source == "user" and s.tool_calls:
            out.extend(_user_acts(s))
            continue
        if s.source in ("system", "user"):
            out.append(ChatMessage(role=s.source, content=s.message or ""))
            continue
        if s.source != "agent":
            out.append(ChatMessage(role="user", content=s.message or ""))
            for o in s.observations:
                out.append(ChatMessage(role="user", content=o.content))
            continue
        calls = [ToolCall(id=c.id, function=ToolFunction(name=c.name, arguments=_arguments_text(c.arguments)))
                 for c in s.tool_calls]
        out.append(ChatMessage(role="assistant", content=s.message or None, tool_calls=calls or None,
                               reasoning_content=s.reasoning or None))
        linked, other = _linked(s)
        for o in linked:
            out.append(ChatMessage(role="tool", tool_call_id=o.source_call_id, content=o.content))
        for o in other:
            out.append(ChatMessage(role="user", content=o.content))
    return out


def first_user(steps: Iterable[Step]) -> str | None:
    """The first non-empty user message: the task when the source states none."""
    return next((s.message for s in steps if s.source == "user" and s.message and s.message.strip()), None)


def agent_session(ref: SessionRef, steps: list[Step], *, task: str | None = None, kind: str = "agent",
                  fail: Fail | None = None, **fields: Any) -> Session:
    """The Session of an agent trajectory: its canonical ``steps``, their chat view as the
    transcript, and ``task`` (default: the first user message). ``fields`` are any other
    Session fields (task_id, trial, reward, model, tools, termination, metrics, meta, ...).
    Raises InputError (through ``fail``, or naming ``ref.path``) when there is no step or
    no task."""
    fail = fail or (lambda field, msg: InputError(ref.path, msg, field=field or None))
    if not steps:
        raise fail("", "no messages or steps")
    task = task if task and task.strip() else first_user(steps)
    if task is None:
        raise fail("", "no task: neither a task field nor a user message")
    return Session(ref=ref, task=task, kind=kind, steps=steps, transcript=chat_view(steps), **fields)


__all__ = ["get", "rows_at", "as_text", "as_float", "text_of", "reasoning_of", "arguments_of", "tool_call",
           "tool_calls_in", "results_in", "inline_results", "role_of", "messages_to_steps", "attach", "feedback",
           "chat_view", "first_user",
           "agent_session", "Fail"]
