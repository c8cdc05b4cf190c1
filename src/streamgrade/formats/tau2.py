"""tau2-bench results (sierra-research/tau2-bench): one session per simulation run.

Built from the repository's ``src/tau2/`` (versions of mid-2025 to 2026):
``data_model/simulation.py`` (Results, Info, SimulationRun, RewardInfo, TerminationReason,
SimulationIndexEntry, the "json" and "dir" storage formats), ``data_model/tasks.py`` (Task,
UserScenario, Description, EvaluationCriteria), ``data_model/message.py`` (AssistantMessage,
UserMessage, ToolMessage, MultiToolMessage, ToolCall with ``requestor``, Tick),
``orchestrator/orchestrator.py`` (how a trajectory is recorded), ``agent/llm_agent.py`` (the
agents' system prompts) and ``environment/environment.py`` (EnvironmentInfo).

Files (see :mod:`._tau2_run` for the parsing):

* A results file (``Results.save``, what ``tau2 run`` writes): a JSON object ``{timestamp?,
  info {git_commit, user_info {implementation, llm, ...}, agent_info {implementation, llm,
  ...}, environment_info {domain_name, policy, tool_defs?}, ...}, tasks [...], simulations
  [...]}``, recognised by content (a ``.json`` object with ``tasks`` and ``simulations``
  lists, whatever its name). Each simulation is a session ``<stem>.task<task_id>.trial<trial>``
  (sanitised; ``.sim<id>`` added when that repeats in the file, or instead of task and trial
  when there is no task id); its ``locator`` is ``id:<simulation id>`` (``index:<i>`` when the
  id is missing or repeated) and its fingerprint hashes the simulation's own JSON text with its
  task's and ``info``'s, so a file that grows by checkpoints has only its new runs graded. A
  file that starts like one but does not parse is one session ``<stem>`` failing with the
  error and its line; one with no simulations yet is owned, not reported.
* The dir format (``save(format="dir")``, the default of voice runs): ``<run>/results.json``
  (``info``, ``tasks``, ``simulation_index [{id, task_id, trial}]``, no ``simulations``) and
  ``<run>/simulations/<simulation id>.json``: each simulation file is a session
  ``<run>.task<task_id>.trial<trial>`` read with results.json's info and task.

A simulation: ``{id, task_id, trial?, duration, termination_reason, agent_cost?, user_cost?,
reward_info? {reward, ...checks}, messages [...] | null, ticks?, mode?, policy?, review?, ...}``;
a message ``{role system|assistant|user|tool, content, tool_calls? [{id, name, arguments,
requestor}], timestamp, cost?, usage?, reasoning_content?}``, a tool message ``{id (of the call
it answers), role tool, content, requestor, error}``, a MultiToolMessage ``{role tool,
tool_messages}``. Full-duplex runs may keep ``ticks`` instead of messages: flattened in tick
order as ``SimulationRun.get_messages`` does, a speaker's consecutive text chunks joined.

The trajectory. The orchestrator records no system message and opens with the agent's greeting
("Hi! How can I help you today?"); the agent's system prompt holds the domain policy
(``llm_agent.py``: ``<instructions>`` + ``<policy>``). So the policy (``environment_info.policy``,
or the simulation's own ``policy``) is the first step, a system step, unless the messages have
one: the agent was given it, and the judge grades adherence to it (the rubric's process part);
it is the agent's input, not ground truth. In dual-control runs (telecom) the simulated user
calls tools on its own device (``requestor`` "user"): those are tool calls of the user step,
their results (tool messages with requestor "user") its observations, shown to the judge as
text (:func:`~streamgrade.formats.mapping.chat_view`). Results link to calls by id;
``error: true`` sets ``is_error``. The task is the user's first message; a run without a user
(solo mode: ``llm_agent_solo`` with ``dummy_user`` only calls tools and ends with ``done``,
recorded as "###STOP###") takes the task's ``ticket``, which the solo agent gets in its system
prompt (``<ticket>``). Neither: InputError.

The judge never sees (not in task, steps or meta): ``reward_info``, the task's
``evaluation_criteria`` (reference actions, communicate_info, nl_assertions; the reference
``actions`` go to ``Session.reference_actions`` only, for golden-path verification,
:mod:`streamgrade.golden`),
``user_scenario`` (the simulated user's hidden persona and instructions), ``description``
(purpose, relevant policies, notes: written for the evaluator), ``initial_state``, the user
simulator's ``global_simulation_guidelines``, and the LLM ``review`` / ``user_only_review`` /
``hallucination_check`` / ``auth_classification`` of a run.

Fields: ``reward`` = ``reward_info.reward`` (None when not evaluated: ``reward_info`` null or
absent); ``termination`` = ``termination_reason`` (user_stop, agent_stop, max_steps,
too_many_errors, agent_error or the older assistant_error, user_error, timeout, ...);
``duration_s`` = ``duration``; metrics ``cost_usd`` (``agent_cost``), ``user_cost``,
``input_tokens`` / ``output_tokens`` (the agent messages' ``usage``), ``tool_errors``,
``user_tool_calls``, ``messages``; ``model`` = ``agent_info.llm`` (voice:
``audio_native_config.model``), ``agent`` = ``agent_info.implementation``; ``tools`` from
``environment_info.tool_defs`` when it was saved.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config
from ..errors import InputError
from ..golden import reference_actions
from ..models import Observation, Session, SessionRef, Step
from ._rows import file_stem, sanitise
from ._tau2_run import META, SIMULATIONS_DIR, Run, candidate, head_of, load, looks_tau2
from .base import _decode, load_json
from .mapping import Fail, agent_session, as_text, attach, first_user, get, text_of, tool_call

NAME = "tau2"


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def session_id(prefix: str, task_id: str | None, trial: str | None, sim_id: str | None, i: int, seen: set[str]) -> str:
    """``<prefix>.task<task_id>.trial<trial>``, made unique among ``seen`` (and added to it)."""
    sid = None
    if task_id is not None:
        sid = f"{prefix}.task{sanitise(task_id)}" + (f".trial{sanitise(trial)}" if trial is not None else "")
    if sid is None or sid in seen:
        sid = f"{sid or prefix}.sim{sanitise(sim_id) if sim_id else i}"
        if sid in seen:
            sid = f"{sid}.{i}"
    seen.add(sid)
    return sid


class Tau2Results:
    """tau2-bench results files and dir-format runs (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per simulation of each results file in ``folder``, or per simulation file
        when ``folder`` is a dir-format run's ``simulations/``. Peeks at the first 64 KiB of
        each ``.json`` and parses only candidates (cached); never raises."""
        folder = Path(folder)
        if folder.name == SIMULATIONS_DIR and os.path.isfile(folder.parent / META):
            refs = self._dir_refs(folder, names)
            if refs is not None:
                return refs
        out: list[SessionRef] = []
        for n in sorted(names):
            if not n.endswith(".json"):
                continue
            path = str(folder / n)
            head = head_of(path)
            if head is None or not candidate(head):
                continue
            run = load(path)
            stem = sanitise(file_stem(n))
            if run.error is not None:
                if looks_tau2(head):
                    out.append(SessionRef(session_id=stem, format=NAME, path=path, files=(path,)))
                continue
            if run.kind != "results":
                continue
            seen: set[str] = set()
            for i, (task_id, trial, sim_id) in enumerate(run.heads):
                out.append(SessionRef(session_id=session_id(stem, task_id, trial, sim_id, i, seen), format=NAME,
                                      path=path, files=(path,), locator=run.locator(i), fingerprint=run.fingerprint(i)))
        return out

    def _dir_refs(self, folder: Path, names: list[str]) -> list[SessionRef] | None:
        """The simulation files of a dir-format run (None when ``folder/../results.json`` is
        not a tau2 run's metadata; when it is one that does not parse, each simulation fails
        with its error)."""
        meta = str(folder.parent / META)
        run = load(meta)
        if run.kind != "dir" and not (run.error is not None and looks_tau2(head_of(meta) or b"")):
            return None
        prefix = sanitise(folder.parent.name)
        seen: set[str] = set()
        out = []
        for i, n in enumerate(sorted(n for n in names if n.endswith(".json"))):
            path = str(folder / n)
            stem = n[: -len(".json")]
            task_id, trial = run.index.get(stem, (None, None))
            sid = session_id(prefix, task_id, trial, stem, i, seen)
            out.append(SessionRef(session_id=sid, format=NAME, path=path, files=(path, meta),
                                  fingerprint=run.file_fingerprint(path, task_id)))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read one simulation (see module docstring). Raises InputError naming the file and
        the field (``simulations[3].messages[5].tool_calls[0].name``; in a dir-format
        simulation file ``messages[5]...``), or the line of a JSON syntax error."""
        if not ref.locator and len(ref.files) == 2:  # dir format: the simulation file, results.json
            run = load(ref.files[1])
            if run.error is not None:
                raise run.error
            if run.kind != "dir":
                raise InputError(ref.files[1], "not a tau2 dir-format results.json (info and tasks, no simulations)")
            return _session(ref, run, load_json(ref.path), ref.path, "")
        run = load(ref.path)
        if run.error is not None:
            raise run.error
        i = run.index_of(ref.locator)
        if i is None:
            raise InputError(ref.path, f"simulation {ref.locator or '(none)'} not found in the file")
        raw = run.sims[i]
        if isinstance(raw, InputError):
            raise raw
        return _session(ref, run, _decode(msgspec.json.decode, ref.path, bytes(raw), None), ref.path, f"simulations[{i}]")


def _session(ref: SessionRef, run: Run, sim: Any, path: str, where: str) -> Session:
    def fail(field: str, message: str) -> InputError:
        name = f"{where}{'' if not field or field.startswith('[') or not where else '.'}{field}"
        return InputError(path, message, field=name or None)

    if not isinstance(sim, dict):
        raise fail("", f"expected a simulation object, got {type(sim).__name__}")
    msgs, field = sim.get("messages"), "messages"
    if msgs is None and isinstance(sim.get("ticks"), list):
        msgs, field = _tick_messages(sim["ticks"], fail), "ticks"
    elif not isinstance(msgs, list):
        raise fail("messages", "missing field" if msgs is None else f"expected a list, got {type(msgs).__name__}")
    else:
        msgs = [(f"messages[{j}]", m) for j, m in enumerate(msgs)]
    info = run.info
    task_id = as_text(sim.get("task_id"))
    steps: list[Step] = []
    policy = _str(sim.get("policy")) or _str(get(info, "environment_info.policy"))
    if policy and not any(isinstance(m, dict) and m.get("role") == "system" for _, m in msgs):
        steps.append(Step(source="system", message=policy))
    steps += _steps(msgs, fail)
    task = first_user(steps)
    task_doc = run.task(task_id)
    ticket = _str(get(task_doc, "ticket"))
    if task is None and ticket is None:
        raise fail(field, "no task: no user message, and the task has no ticket (solo runs take the ticket)")
    reward = None
    info_r = sim.get("reward_info")
    if info_r is not None:
        if not isinstance(info_r, dict):
            raise fail("reward_info", f"expected an object or null, got {type(info_r).__name__}")
        r = info_r.get("reward")
        if r is not None and _num(r) is None:
            raise fail("reward_info.reward", f"expected a number, got {type(r).__name__}")
        reward = _num(r)
    term = sim.get("termination_reason")
    if term is not None and not isinstance(term, str):
        raise fail("termination_reason", f"expected a string, got {type(term).__name__}")
    metrics = {name: v for key, name in (("agent_cost", "cost_usd"), ("user_cost", "user_cost"))
               if (v := _num(sim.get(key))) is not None}
    for key, name in (("prompt_tokens", "input_tokens"), ("completion_tokens", "output_tokens")):
        if any(key in s.metrics for s in steps):
            metrics[name] = sum(s.metrics.get(key, 0.0) for s in steps if s.source == "agent")
    metrics["tool_errors"] = float(sum(1 for s in steps for o in s.observations if o.is_error))
    metrics["user_tool_calls"] = float(sum(len(s.tool_calls) for s in steps if s.source == "user"))
    metrics["messages"] = float(len(msgs))
    scalar = lambda v: v if isinstance(v, (str, int, float, bool)) else None  # noqa: E731
    meta = {
        "simulation_id": as_text(sim.get("id")),
        "domain": scalar(get(info, "environment_info.domain_name")),
        "mode": scalar(sim.get("mode")),
        "seed": scalar(sim.get("seed")),
        "user_implementation": scalar(get(info, "user_info.implementation")),
        "user_model": scalar(get(info, "user_info.llm")),
        "git_commit": scalar(get(info, "git_commit")),
        "start_time": scalar(sim.get("start_time")),
        "end_time": scalar(sim.get("end_time")),
        "task_from_ticket": task is None,
        "from_ticks": field == "ticks",
    }
    return agent_session(
        ref, steps, task=task or ticket, fail=fail, reward=reward, termination=term, task_id=task_id,
        trial=as_text(sim.get("trial")), duration_s=_num(sim.get("duration")),
        model=_str(get(info, "agent_info.llm")) or _str(get(info, "audio_native_config.model")),
        agent=_str(get(info, "agent_info.implementation")), tools=_tools(info), metrics=metrics, meta=meta,
        reference_actions=reference_actions(get(task_doc, "evaluation_criteria.actions")),
    )


def _tools(info: dict) -> list[dict[str, Any]]:
    """``environment_info.tool_defs`` ({name: {name, doc, params}}) as OpenAI function tools."""
    defs = get(info, "environment_info.tool_defs")
    if not isinstance(defs, dict):
        return []
    out = []
    for name, d in defs.items():
        d = d if isinstance(d, dict) else {}
        fn: dict[str, Any] = {"name": _str(d.get("name")) or name}
        if isinstance(d.get("doc"), str):
            fn["description"] = d["doc"]
        if isinstance(d.get("params"), dict):
            fn["parameters"] = d["params"]
        out.append({"type": "function", "function": fn})
    return out


def _steps(msgs: list[tuple[str, Any]], fail: Fail) -> list[Step]:
    """(field, message) pairs as steps: assistant -> agent step, user -> user step (with the
    user's own tool calls in dual-control runs), tool results attached to the step whose
    call they answer (the requestor's), system -> system step. A call without an id gets
    ``call_<message index>_<k>``."""
    steps: list[Step] = []
    for j, (where, m) in enumerate(msgs):
        if not isinstance(m, dict):
            raise fail(where, f"expected a message object, got {type(m).__name__}")
        role = m.get("role")
        if not isinstance(role, str):
            raise fail(f"{where}.role", "missing role" if role is None else f"expected a string, got {type(role).__name__}")
        if role == "tool":
            subs = m.get("tool_messages")
            if subs is None:
                _result(steps, m, fail, where)
                continue
            if not isinstance(subs, list):
                raise fail(f"{where}.tool_messages", f"expected a list, got {type(subs).__name__}")
            for k, t in enumerate(subs):
                _result(steps, t, fail, f"{where}.tool_messages[{k}]")
            continue
        text = text_of(m.get("content"), fail, f"{where}.content")
        if role == "system":
            steps.append(Step(source="system", message=text or ""))
            continue
        if role not in ("assistant", "user"):
            raise fail(f"{where}.role", f"unknown role {role!r}")
        calls = m.get("tool_calls")
        if calls is not None and not isinstance(calls, list):
            raise fail(f"{where}.tool_calls", f"expected a list, got {type(calls).__name__}")
        tcs = [tool_call(c, fail, f"{where}.tool_calls[{k}]", f"call_{j}_{k}") for k, c in enumerate(calls or [])]
        ts = m.get("timestamp") if isinstance(m.get("timestamp"), str) else None
        if role == "user":
            steps.append(Step(source="user", message=text or "", tool_calls=tcs, timestamp=ts))
            continue
        reasoning = m.get("reasoning_content")
        usage = m.get("usage") if isinstance(m.get("usage"), dict) else {}
        metrics = {k: v for k, v in (("cost_usd", _num(m.get("cost"))), ("prompt_tokens", _num(usage.get("prompt_tokens"))),
                                     ("completion_tokens", _num(usage.get("completion_tokens")))) if v is not None}
        steps.append(Step(source="agent", message=text or None, reasoning=_str(reasoning), tool_calls=tcs,
                          metrics=metrics, timestamp=ts))
    return steps


def _result(steps: list[Step], t: Any, fail: Fail, where: str) -> None:
    """A tool message attached to the agent's or (``requestor`` "user") the user's step."""
    if not isinstance(t, dict):
        raise fail(where, f"expected a tool message object, got {type(t).__name__}")
    body = t.get("content")
    text = str(body) if isinstance(body, (int, float)) else text_of(body, fail, f"{where}.content")
    cid = t.get("id") if isinstance(t.get("id"), str) and t.get("id") else None
    err = t.get("error")
    obs = Observation(content=text or "", source_call_id=cid, is_error=err if isinstance(err, bool) else None)
    attach(steps, obs, source="user" if t.get("requestor") == "user" else "agent")


def _tick_messages(ticks: list, fail: Fail) -> list[tuple[str, Any]]:
    """Full-duplex ticks as (field, message) pairs in tick order (per tick: the agent's chunk
    and calls, their results, the user's chunk and calls, their results, as
    ``Tick.get_all_messages``); consecutive text chunks of one speaker are one message,
    joined with a space where their ``utterance_ids`` differ (``merge_message_chunks``)."""
    out: list[tuple[str, Any]] = []
    last_ids: list[Any] = [None]
    for k, t in enumerate(ticks):
        if not isinstance(t, dict):
            raise fail(f"ticks[{k}]", f"expected a tick object, got {type(t).__name__}")
        for who, role in (("agent", "assistant"), ("user", "user")):
            chunk = t.get(f"{who}_chunk")
            chunk = chunk if isinstance(chunk, dict) else {}
            calls = t.get(f"{who}_tool_calls") or None
            content = chunk.get("content") if isinstance(chunk.get("content"), str) else None
            ids = chunk.get("utterance_ids") if isinstance(chunk.get("utterance_ids"), list) else None
            prev = out[-1][1] if out else None
            if content and not calls and isinstance(prev, dict) and prev.get("role") == role and prev.get("_chunk"):
                gap = " " if ids and last_ids[0] and not set(map(str, ids)) & set(map(str, last_ids[0])) else ""
                prev["content"] += gap + content
                last_ids[0] = ids
            elif content or calls:
                out.append((f"ticks[{k}].{who}_chunk", {"role": role, "content": content, "tool_calls": calls,
                                                          "_chunk": not calls}))
                last_ids[0] = ids
            results = t.get(f"{who}_tool_results") or []
            for j, r in enumerate(results if isinstance(results, list) else [results]):
                out.append((f"ticks[{k}].{who}_tool_results[{j}]", r))
    return out


__all__ = ["Tau2Results", "NAME", "session_id"]
