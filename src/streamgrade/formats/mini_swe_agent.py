"""mini-swe-agent trajectories: ``<instance_id>.traj.json``, one session per file.

Source: SWE-agent/mini-swe-agent, ``src/minisweagent/run/utils/save.py`` (``save_traj``, v1),
``src/minisweagent/agents/default.py`` (``DefaultAgent.run``/``step``/``parse_action``/
``has_finished`` in v1; ``serialize`` in v2), ``docs/usage/output_files.md`` and
``docs/advanced/v2_migration.md``; samples in ../shared/corpus/mini-swe-agent/PROVENANCE.md.

Shapes:

- v1 (``trajectory_format`` "mini-swe-agent-1"): ``{info: {exit_status, submission,
  model_stats: {instance_cost, api_calls}, mini_version, config: {agent, model:
  {model_name, ...}, environment, agent_type, model_type, environment_type}}, messages:
  [{role, content, extra?: {response}}], trajectory_format, instance_id?}``. The model's
  action is the one fenced block of an assistant message (```` ```bash ````, or
  ```` ```mswea_bash_command ````): it becomes a ``bash`` call ``{"command": ...}`` and is cut
  from the message (the rest, the THOUGHT, is the message; a turn with no or several
  blocks has no call). The next user message is its observation
  (``<returncode>N</returncode><output>...``; ``is_error`` when N is not 0); format errors,
  timeouts and the final submission (the text of the ``Submitted`` exception) come back
  as user messages too, and are observations of the turn before them.
- Older files: a bare JSON list of those messages (no ``info``).
- v2 (``trajectory_format`` "mini-swe-agent-1.1"): messages are the model's own output plus
  ``extra`` (``actions: [{command}]``, ``cost``, ``timestamp`` (unix s), ``returncode``,
  ``response``); tool-calling models give assistant ``tool_calls`` and ``role: "tool"``
  results with ``tool_call_id``; Responses-API models give ``{object: "response", output:
  [message | function_call | reasoning items]}`` and ``{type: "function_call_output",
  call_id, output}``; a rejected output comes back inside the format-error user message
  (``extra.interrupt_type``, ``extra.response``) and is kept as its own agent step; the run
  ends with ``{role: "exit", content, extra: {exit_status, submission}}``.

Task: the first user message (the rendered instance template: the problem statement with
the agent's instructions). ``task_id``: the file's ``instance_id``, else the file stem.
Termination: ``info.exit_status`` as written (``Submitted``, ``LimitsExceeded``,
``FormatError``, ``RetryError``, ...), else the exit message's. Reasoning: the message's
``reasoning_content``/``reasoning``, else the raw response's (``choices[0].message``).
Metrics: ``cost_usd`` and ``api_calls`` from ``info.model_stats``; ``input_tokens`` and
``output_tokens`` summed over the responses' ``usage``; ``steps`` the agent steps. Model:
``info.config.model.model_name``, else the first response's ``model``. Reward: the SWE-bench
label of the instance beside the file (:mod:`.swebench_labels`), else None; neither the
labels nor ``info.submission`` go into the task, steps or ``meta``.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..models import Observation, Session, SessionRef, Step, StepToolCall
from .base import load_json
from .mapping import (AGENT_ROLES, SYSTEM_ROLES, TOOL_ROLES, USER_ROLES, Fail, agent_session, attach, feedback,
                      first_user, get, reasoning_of, role_of, text_of, tool_call, tool_calls_in)
from .swe_agent import bash_call, find_trajectories, reward_for, stats_metrics

NAME = "mini-swe-agent"
SUFFIX = ".traj.json"
_FENCE = re.compile(r"```(?:bash|mswea_bash_command)[ \t]*\r?\n(.*?)\r?\n```", re.S)
_RETURNCODE = re.compile(r"\A\s*<returncode>\s*(-?\d+)\s*</returncode>")


def _extra(m: dict) -> dict:
    return m["extra"] if isinstance(m.get("extra"), dict) else {}


def _returncode_error(extra: dict, text: str) -> bool | None:
    code = extra.get("returncode")
    if not isinstance(code, int) or isinstance(code, bool):
        m = _RETURNCODE.match(text)
        code = int(m.group(1)) if m else None
    return None if code is None else code != 0


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _step_facts(m: dict, response: Any) -> tuple[dict[str, float], str | None, str | None]:
    """(metrics, ISO timestamp, model) of an assistant message from its raw response."""
    extra = _extra(m)
    usage = get(response, "usage") if isinstance(get(response, "usage"), dict) else m.get("usage")
    metrics: dict[str, float] = {}
    if isinstance(usage, dict):
        for keys, name in ((("prompt_tokens", "input_tokens"), "prompt_tokens"),
                           (("completion_tokens", "output_tokens"), "completion_tokens")):
            v = next((_num(usage.get(k)) for k in keys if _num(usage.get(k)) is not None), None)
            if v is not None:
                metrics[name] = v
    cost = _num(extra.get("cost"))
    cost = cost if cost is not None else _num(usage.get("cost")) if isinstance(usage, dict) else None
    if cost is not None:
        metrics["cost_usd"] = cost
    ts = _num(extra.get("timestamp"))
    when = None
    if ts is not None:
        try:
            when = datetime.fromtimestamp(ts, tz=timezone.utc).isoformat()
        except (OverflowError, OSError, ValueError):
            when = None
    model = get(response, "model")
    return metrics, when, model if isinstance(model, str) else None


def _action_calls(m: dict, text: str | None, i: int) -> tuple[list[StepToolCall], str | None]:
    """(bash calls, message) of a text-based turn: ``extra.actions`` (v2), else the one
    fenced block of the text; the block is cut from the message."""
    calls = []
    actions = _extra(m).get("actions")
    for k, a in enumerate(actions if isinstance(actions, list) else []):
        cmd = a.get("command") if isinstance(a, dict) else a
        if isinstance(cmd, str):
            calls.append(bash_call(cmd.strip(), f"call_{i}_{k}"))
    blocks = list(_FENCE.finditer(text or ""))
    if not calls and len(blocks) == 1:
        calls = [bash_call(blocks[0].group(1).strip(), f"call_{i}_0")]
    if calls and len(blocks) == 1 and text is not None:
        text = (text[: blocks[0].start()] + text[blocks[0].end():]).strip()
    return calls, text


def _reasoning(m: dict, response: Any) -> str | None:
    for v in (m.get("reasoning_content"), m.get("reasoning"), get(response, "choices.0.message.reasoning_content"),
              get(response, "choices.0.message.reasoning")):
        if isinstance(v, str) and v.strip():
            return v
    return reasoning_of(m.get("content")) or reasoning_of(m.get("thinking_blocks"))


def _response_step(resp: Any, fail: Fail, where: str, i: int) -> Step:
    """An agent step from a raw model response: a chat completion (``choices[0].message``)
    or a Responses-API object (``output`` items)."""
    if isinstance(get(resp, "choices.0.message"), dict):
        msg = get(resp, "choices.0.message")
        text = text_of(msg.get("content"), fail, f"{where}.choices[0].message.content")
        calls = tool_calls_in(msg, fail, f"{where}.choices[0].message", i)
        if not calls:
            calls, text = _action_calls({}, text, i)
        return Step(source="agent", message=text or None, tool_calls=calls, reasoning=_reasoning(msg, None))
    texts, calls, thoughts = [], [], []
    output = resp.get("output") if isinstance(resp, dict) else None
    for k, item in enumerate(output if isinstance(output, list) else []):
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "message":
            texts.append(text_of(item.get("content"), fail, f"{where}.output[{k}].content") or "")
        elif kind == "function_call":
            calls.append(tool_call(item, fail, f"{where}.output[{k}]", f"call_{i}_{len(calls)}"))
        elif kind == "reasoning":
            summary = item.get("summary")
            thoughts += [p["text"] for p in summary if isinstance(p, dict) and isinstance(p.get("text"), str)] \
                if isinstance(summary, list) else []
    text = "\n".join(t for t in texts if t) or None
    if not calls:
        calls, text = _action_calls({}, text, i)
    return Step(source="agent", message=text or None, tool_calls=calls, reasoning="\n".join(thoughts) or None)


def message_steps(messages: Any, fail: Fail, field: str = "messages") -> tuple[list[Step], str | None]:
    """(steps, the exit message's exit_status) of mini-swe-agent messages (module docstring)."""
    if not isinstance(messages, list):
        raise fail(field, f"expected a list of messages, got {type(messages).__name__}")
    steps: list[Step] = []
    exit_status = None
    for i, m in enumerate(messages):
        where = f"{field}[{i}]"
        if not isinstance(m, dict):
            raise fail(where, f"expected a message object, got {type(m).__name__}")
        extra, role = _extra(m), role_of(m)
        if role is None:
            if m.get("object") == "response" or isinstance(m.get("output"), list) and "type" not in m:
                step = _response_step(m, fail, where, i)
                step.metrics, step.timestamp, step.model = _step_facts(m, m)
                steps.append(step)
            elif m.get("type") == "function_call_output":
                out = m.get("output")
                text = out if isinstance(out, str) else text_of(out, fail, f"{where}.output") or ""
                cid = m.get("call_id")
                attach(steps, Observation(content=text, source_call_id=cid if isinstance(cid, str) else None,
                                          is_error=_returncode_error(extra, text)))
            elif m.get("type") == "function_call":
                steps.append(Step(source="agent", tool_calls=[tool_call(m, fail, where, f"call_{i}_0")]))
            else:
                raw = m.get("role")
                raise fail(f"{where}.role", "missing role" if raw is None else f"expected a string, got {type(raw).__name__}")
            continue
        if role == "exit":
            status = extra.get("exit_status")
            exit_status = status if isinstance(status, str) and status else exit_status
        text = text_of(m.get("content"), fail, f"{where}.content")
        if role in SYSTEM_ROLES:
            steps.append(Step(source="system", message=text or ""))
        elif role in USER_ROLES or role == "exit":
            if isinstance(extra.get("interrupt_type"), str) and isinstance(extra.get("response"), dict):
                rejected = _response_step(extra["response"], fail, f"{where}.extra.response", i)
                rejected.tool_calls = []  # the agent rejected its action: nothing ran
                rejected.metrics, rejected.timestamp, rejected.model = _step_facts({}, extra["response"])
                steps.append(rejected)
            obs = Observation(content=text or "", is_error=_returncode_error(extra, text or ""))
            if any(s.source == "agent" for s in steps):
                last = next(s for s in reversed(steps) if s.source == "agent")
                if (text or "").strip() or any(c.id not in {o.source_call_id for o in last.observations} for c in last.tool_calls):
                    feedback(steps, obs)
            elif role != "exit":
                steps.append(Step(source="user", message=text or ""))
        elif role in AGENT_ROLES:
            response = extra.get("response")
            calls = tool_calls_in(m, fail, where, i)
            if not calls:
                calls, text = _action_calls(m, text, i)
            step = Step(source="agent", message=text or None, reasoning=_reasoning(m, response), tool_calls=calls)
            step.metrics, step.timestamp, step.model = _step_facts(m, response)
            steps.append(step)
        elif role in TOOL_ROLES:
            cid = m.get("tool_call_id")
            attach(steps, Observation(content=text or "", source_call_id=cid if isinstance(cid, str) else None,
                                      is_error=_returncode_error(extra, text or "")),
                   name=m.get("name") if isinstance(m.get("name"), str) else None)
        else:
            raise fail(f"{where}.role", f"unknown role {role!r}")
    return steps, exit_status


def _duration(steps: list[Step]) -> float | None:
    times = [datetime.fromisoformat(s.timestamp) for s in steps if s.timestamp]
    return (max(times) - min(times)).total_seconds() if len(times) >= 2 else None


class MiniSWEAgentTrajectory:
    """mini-swe-agent ``.traj.json`` files (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """Each ``*.traj.json`` that looks like JSON, with its label files."""
        return find_trajectories(NAME, Path(folder), names, SUFFIX)

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the trajectory; InputError naming the file and field of bad input."""
        path = ref.path
        doc = load_json(path)
        fail: Fail = lambda field, msg: InputError(path, msg, field=field or None)  # noqa: E731
        if isinstance(doc, list):
            doc, field = {"messages": doc}, ""
        elif isinstance(doc, dict):
            field = "messages"
            if "messages" not in doc:
                raise fail("messages", "missing field")
        else:
            raise fail("", f"expected a JSON object or a list of messages, got {type(doc).__name__}")
        info = doc.get("info")
        if info is not None and not isinstance(info, dict):
            raise fail("info", f"expected an object, got {type(info).__name__}")
        info = info or {}
        steps, exit_message = message_steps(doc["messages"], fail, field)
        stem = Path(path).name[: -len(SUFFIX)]
        task_id = doc.get("instance_id") if isinstance(doc.get("instance_id"), str) else stem
        model = get(info, "config.model.model_name")
        if not isinstance(model, str):
            model = next((s.model for s in steps if s.model), None)
        reward, label = reward_for(ref, [task_id, stem])
        metrics = stats_metrics(info.get("model_stats"))
        for key, name in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
            figures = [s.metrics[key] for s in steps if key in s.metrics]
            if figures:
                metrics[name] = sum(figures)
        metrics["steps"] = float(sum(1 for s in steps if s.source == "agent"))
        status = info.get("exit_status")
        config_info = info.get("config") if isinstance(info.get("config"), dict) else {}
        meta = {"mini_version": info.get("mini_version"), "trajectory_format": doc.get("trajectory_format"),
                **{k: config_info.get(k) for k in ("agent_type", "model_type", "environment_type")},
                "has_submission": bool(info.get("submission")), "reward_source": label}
        return agent_session(
            ref, steps, fail=fail, task=first_user(steps), task_id=task_id, agent=NAME, model=model, reward=reward,
            termination=status if isinstance(status, str) and status else exit_message,
            duration_s=_duration(steps), metrics=metrics,
            meta={k: v for k, v in meta.items() if isinstance(v, (str, bool))})


__all__ = ["MiniSWEAgentTrajectory", "message_steps"]
