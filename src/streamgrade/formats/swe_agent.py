"""SWE-agent trajectories: ``<instance_id>.traj``, one JSON object per run, one session per file.

Source: SWE-agent/SWE-agent, ``sweagent/agent/agents.py`` (``DefaultAgent.get_trajectory_data``,
``save_trajectory``, ``add_step_to_history``, ``add_step_to_trajectory``,
``_add_demonstration_to_history``; ``RetryAgent.get_trajectory_data``) and
``sweagent/types.py`` (``TrajectoryStep``, ``HistoryItem``, ``AgentInfo``), 0.x and 1.x; the
shipped demonstrations and test fixtures (../shared/corpus/swe-agent/PROVENANCE.md).

A ``.traj`` is ``{environment, trajectory: [step], history: [item], info, replay_config?}``:

- ``history`` (what the model saw): ``{role: system|user|assistant|tool, content: str |
  content parts, agent, message_type? (system_prompt|observation|action|demonstration),
  thought?, action?, tool_calls?, tool_call_ids?, thinking_blocks?, is_demo?}``. Read first.
  Demonstrations (``is_demo``, ``message_type`` "demonstration": worked examples put in the
  prompt) are left out and counted in ``meta``. An assistant item is an agent step: with
  ``tool_calls`` (function calling) its content (else ``thought``) is the message and the
  calls are its calls; without them its ``action`` (the command parsed from the output) is
  one ``bash`` call ``{"command": action}`` and its ``thought`` the message. ``tool`` items
  answer the call named in ``tool_call_ids`` (a list) or ``tool_call_id``; a ``user`` item
  after the first agent step is the observation of the latest agent step (0.x and
  non-function-calling runs: the output of its action); ``user`` items before it are the
  task. When the last action has no observation in ``history`` (0.x stops at the
  ``submit`` turn), the last ``trajectory`` step's observation answers it.
- ``trajectory`` (what was executed): ``{action, observation, response, thought, state,
  execution_time?, query?, messages?, reasoning_content?}``; read only when ``history`` is
  absent, empty or has no assistant item: each step is an agent step (``thought``, else
  ``response``, as the message; ``action`` as a ``bash`` call; ``observation`` its result;
  ``execution_time`` in seconds as ``execution_time_s``), after the system and user
  messages of the history, else of the first step's ``query``/``messages`` (the model's
  input).
- A retry agent's file adds ``attempts: [attempt data]`` and the chosen attempt's data on
  top; an intermediate save holds only ``attempts``, and then the last attempt is read.

Task: the first user message that is not a demonstration (the rendered instance template:
the problem statement with the agent's instructions); without one, ``replay_config``
``problem_statement.text``. ``task_id``: ``replay_config.problem_statement.id``, else the file
stem. Termination: ``info.exit_status`` as written ("submitted", "exit_cost",
"exit_context", "exit_format", "exit_error", "submitted (exit_cost)", ...). Metrics:
``info.model_stats`` ``instance_cost`` (``cost_usd``), ``tokens_sent`` (``input_tokens``),
``tokens_received`` (``output_tokens``), ``api_calls``; ``steps`` the agent steps. Model:
``replay_config`` (a JSON string in 1.x, a dict in early 1.0) ``agent.model.name``, else the
``model_name`` of an ``args.yaml`` beside the file (0.x). Reward: the SWE-bench label of the
instance in the label files beside it (:mod:`.swebench_labels`), else None. The judge never
sees ``info.submission`` (beyond the agent's own observation of it), ``edited_files*``,
``review`` or label contents: ``meta`` only holds counts, versions and the label file's name.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..inputs import open_regular
from ..models import Observation, Session, SessionRef, Step, StepToolCall
from ._rows import looks_like_json, sanitise
from .base import load_json
from .mapping import (AGENT_ROLES, SYSTEM_ROLES, TOOL_ROLES, USER_ROLES, Fail, agent_session, as_float, feedback,
                      first_user, get, reasoning_of, role_of, text_of, tool_calls_in, attach)
from .swebench_labels import is_label_name, label_files, reward_of

NAME = "swe-agent"
SUFFIX = ".traj"
ARGS = "args.yaml"
_ARGS_MAX = 4 * 1024 * 1024
_MODEL_NAME = re.compile(rb"^[ \t]+model_name:[ \t]*['\"]?([^'\"\r\n#]+?)['\"]?[ \t]*$", re.M)
_STATS = (("instance_cost", "cost_usd"), ("tokens_sent", "input_tokens"), ("tokens_received", "output_tokens"),
          ("api_calls", "api_calls"))


def session_id(folder: Path, stem: str) -> str:
    """``<run>.<stem>``: the run folder is the trajectory's folder, or the one above it when
    the folder is the instance's own (``<run>/<id>/<id>.traj``, 1.x and mini-swe-agent)."""
    run = folder.parent.name if folder.name == stem else folder.name
    return f"{sanitise(run)}.{sanitise(stem)}" if run else sanitise(stem)


def find_trajectories(fmt: str, folder: Path, names: list[str], suffix: str, extra: tuple[str, ...] = ()) -> list[SessionRef]:
    """One ref per ``<stem><suffix>`` in ``folder`` that looks like JSON (a peek at its first
    bytes; one that then fails to parse is still a session, whose assemble says why). Its
    files: the trajectory, the names in ``extra`` present in the folder, then its label
    files (:func:`.swebench_labels.label_files`)."""
    out: list[SessionRef] = []
    have = set(names)
    for n in sorted(names):
        if not n.endswith(suffix) or len(n) == len(suffix):
            continue
        path = str(folder / n)
        if not looks_like_json(path):
            continue
        stem = n[: -len(suffix)]
        files = (path, *(str(folder / e) for e in extra if e in have), *label_files(folder, names, stem))
        out.append(SessionRef(session_id=session_id(folder, stem), format=fmt, path=path, files=files))
    return out


def reward_for(ref: SessionRef, ids: list[str | None]) -> tuple[float | None, str | None]:
    """The SWE-bench label of the first of ``ids`` found in the ref's label files."""
    files = [f for f in ref.files if f != ref.path and is_label_name(Path(f).name)]
    return reward_of(files, list(dict.fromkeys(i for i in ids if i)))


def bash_call(command: str, call_id: str) -> StepToolCall:
    """A shell action as a ``bash`` tool call ``{"command": command}``."""
    return StepToolCall(id=call_id, name="bash", arguments={"command": command})


def stats_metrics(stats: Any) -> dict[str, float]:
    """``cost_usd``, ``input_tokens``, ``output_tokens``, ``api_calls`` from a
    ``model_stats`` object (numbers only)."""
    out: dict[str, float] = {}
    if isinstance(stats, dict):
        for key, name in _STATS:
            v = stats.get(key)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[name] = float(v)
    return out


def _text(value: Any, fail: Fail, field: str) -> str | None:
    """A string field: the string, None when absent; InputError for another type."""
    if value is None or isinstance(value, str):
        return value
    raise fail(field, f"expected a string, got {type(value).__name__}")


def _agent_step(item: dict, fail: Fail, where: str, i: int) -> Step:
    calls = tool_calls_in(item, fail, where, i)
    content = text_of(item.get("content"), fail, f"{where}.content")
    thought = _text(item.get("thought"), fail, f"{where}.thought")
    action = _text(item.get("action"), fail, f"{where}.action")
    if calls:
        message = content or thought
    elif action and action.strip():
        calls = [bash_call(action.strip(), f"call_{i}_0")]
        message = thought if thought is not None else content
    else:
        message = content or thought
    reasoning = item.get("reasoning_content")
    if not isinstance(reasoning, str) or not reasoning:
        reasoning = reasoning_of(item.get("thinking_blocks")) or reasoning_of(item.get("content"))
    return Step(source="agent", message=message or None, reasoning=reasoning or None, tool_calls=calls)


def history_steps(history: Any, fail: Fail, field: str = "history") -> tuple[list[Step], int]:
    """(steps, demonstration items left out) of a SWE-agent ``history`` (module docstring)."""
    if not isinstance(history, list):
        raise fail(field, f"expected a list of messages, got {type(history).__name__}")
    steps: list[Step] = []
    demos = 0
    for i, item in enumerate(history):
        where = f"{field}[{i}]"
        if not isinstance(item, dict):
            raise fail(where, f"expected a message object, got {type(item).__name__}")
        if item.get("is_demo") is True or item.get("message_type") == "demonstration":
            demos += 1
            continue
        role = role_of(item)
        if role is None:
            raw = item.get("role")
            raise fail(f"{where}.role", "missing role" if raw is None else f"expected a string, got {type(raw).__name__}")
        if role in AGENT_ROLES:
            steps.append(_agent_step(item, fail, where, i))
            continue
        text = text_of(item.get("content"), fail, f"{where}.content") or ""
        if role in SYSTEM_ROLES:
            steps.append(Step(source="system", message=text))
        elif role in USER_ROLES:
            if not feedback(steps, Observation(content=text)):
                steps.append(Step(source="user", message=text))
        elif role in TOOL_ROLES:
            ids = item.get("tool_call_ids", item.get("tool_call_id"))
            ids = [ids] if isinstance(ids, str) else ids
            if ids is not None and not (isinstance(ids, list) and all(isinstance(x, str) for x in ids)):
                raise fail(f"{where}.tool_call_ids", "expected a list of tool call id strings")
            attach(steps, Observation(content=text, source_call_id=ids[0] if ids else None))
        else:
            raise fail(f"{where}.role", f"unknown role {role!r}")
    return steps, demos


def trajectory_steps(trajectory: Any, fail: Fail, field: str = "trajectory", start: int = 0) -> list[Step]:
    """The agent steps of a SWE-agent ``trajectory`` (module docstring), from index ``start``;
    a step's call id is ``step_<index>``."""
    if not isinstance(trajectory, list):
        raise fail(field, f"expected a list of steps, got {type(trajectory).__name__}")
    steps: list[Step] = []
    for i in range(start, len(trajectory)):
        st = trajectory[i]
        where = f"{field}[{i}]"
        if not isinstance(st, dict):
            raise fail(where, f"expected a step object, got {type(st).__name__}")
        action = _text(st.get("action"), fail, f"{where}.action")
        thought = _text(st.get("thought"), fail, f"{where}.thought")
        observation = _text(st.get("observation"), fail, f"{where}.observation")
        calls = [bash_call(action.strip(), f"step_{i}")] if action and action.strip() else []
        message = thought if thought or calls else text_of(st.get("response"), fail, f"{where}.response")
        obs = [Observation(content=observation, source_call_id=calls[0].id if calls else None)] \
            if observation is not None and (calls or observation.strip()) else []
        secs = as_float(st.get("execution_time")) if isinstance(st.get("execution_time"), (int, float)) else None
        reasoning = st.get("reasoning_content")
        steps.append(Step(source="agent", message=message or None, tool_calls=calls, observations=obs,
                          reasoning=reasoning if isinstance(reasoning, str) and reasoning else None,
                          metrics={"execution_time_s": secs} if secs is not None else {}))
    return steps


def _query_head(trajectory: Any, fail: Fail, field: str) -> list[Step]:
    """The system and user messages the first trajectory step's model input began with."""
    first = trajectory[0] if isinstance(trajectory, list) and trajectory and isinstance(trajectory[0], dict) else {}
    for key in ("query", "messages"):
        q = first.get(key)
        if isinstance(q, list) and q:
            head = []
            for j, item in enumerate(q):
                if isinstance(item, dict) and role_of(item) in AGENT_ROLES:
                    break
                head.append(item)
            return [s for s in history_steps(head, fail, f"{field}[0].{key}")[0] if s.source in ("system", "user")]
    return []


def _replay_config(value: Any) -> dict:
    """``replay_config`` as an object: a dict, or a JSON string of one (1.x); else empty."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            return {}
    return value if isinstance(value, dict) else {}


def _args_model(path: str) -> str | None:
    """The first ``model_name:`` of an ``args.yaml`` (0.x run config); None when unreadable."""
    try:
        with open_regular(path, _ARGS_MAX) as fh:
            m = _MODEL_NAME.search(fh.read())
    except (OSError, InputError):
        return None
    if m is None:
        return None
    return m.group(1).decode("utf-8", "replace").strip() or None


def _reconcile(steps: list[Step], history: list, trajectory: Any, fail: Fail, field: str) -> None:
    """Complete a history with the last executed step: 0.x histories end at the submitting
    turn, whose output is the last trajectory step's observation (given to the last agent
    step when its one call is unanswered); some 1.x files were saved before the last step
    reached the history (the last trajectory step's action is not the last history
    action), and then that step is added."""
    if not isinstance(trajectory, list) or not trajectory or not isinstance(trajectory[-1], dict):
        return
    last_item = next((h for h in reversed(history) if isinstance(h, dict) and role_of(h) in AGENT_ROLES), None)
    last = next((s for s in reversed(steps) if s.source == "agent"), None)
    action = trajectory[-1].get("action")
    if last_item is None or last is None or not isinstance(action, str) or not isinstance(last_item.get("action"), str):
        return
    if last_item["action"].strip() != action.strip():
        steps.extend(trajectory_steps(trajectory, fail, field, len(trajectory) - 1))
        return
    obs = trajectory[-1].get("observation")
    if len(last.tool_calls) == 1 and not last.observations and isinstance(obs, str):
        last.observations.append(Observation(content=obs, source_call_id=last.tool_calls[0].id))


class SWEAgentTrajectory:
    """SWE-agent ``.traj`` files (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """Each ``*.traj`` that looks like JSON; its files add an ``args.yaml`` beside it
        and its label files."""
        return find_trajectories(NAME, Path(folder), names, SUFFIX, (ARGS,))

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the trajectory; InputError naming the file and field of bad input."""
        path = ref.path
        doc = load_json(path)
        fail: Fail = lambda field, msg: InputError(path, msg, field=field or None)  # noqa: E731
        if not isinstance(doc, dict):
            raise fail("", f"expected a JSON object, got {type(doc).__name__}")
        attempts, prefix = doc.get("attempts"), ""
        if attempts is not None and not isinstance(attempts, list):
            raise fail("attempts", f"expected a list, got {type(attempts).__name__}")
        if "history" not in doc and "trajectory" not in doc and attempts:
            k = len(attempts) - 1
            doc, prefix = attempts[k], f"attempts[{k}]."
            if not isinstance(doc, dict):
                raise fail(prefix[:-1], f"expected an attempt object, got {type(doc).__name__}")
        info = doc.get("info")
        if info is not None and not isinstance(info, dict):
            raise fail(f"{prefix}info", f"expected an object, got {type(info).__name__}")
        info = info or {}
        history, trajectory = doc.get("history"), doc.get("trajectory")
        steps, demos = history_steps(history, fail, f"{prefix}history") if history is not None else ([], 0)
        source = "history"
        if not any(s.source == "agent" for s in steps) and trajectory:
            head = steps or _query_head(trajectory, fail, f"{prefix}trajectory")
            steps, source = head + trajectory_steps(trajectory, fail, f"{prefix}trajectory"), "trajectory"
        elif trajectory is not None:
            _reconcile(steps, history, trajectory, fail, f"{prefix}trajectory")
        rc = _replay_config(doc.get("replay_config"))
        stem = Path(path).name[: -len(SUFFIX)]
        task_id = get(rc, "problem_statement.id") if isinstance(get(rc, "problem_statement.id"), str) else stem
        statement = get(rc, "problem_statement.text")
        model = get(rc, "agent.model.name") or get(rc, "agent.agent_configs.0.model.name")
        args = next((f for f in ref.files if Path(f).name == ARGS), None)
        if not isinstance(model, str):
            model = _args_model(args) if args else None
        reward, label = reward_for(ref, [task_id, stem])
        metrics = stats_metrics(info.get("model_stats"))
        metrics["steps"] = float(sum(1 for s in steps if s.source == "agent"))
        exit_status = info.get("exit_status")
        version = info.get("swe_agent_version")
        meta = {"source": source, "environment": doc.get("environment") if isinstance(doc.get("environment"), str) else None,
                "swe_agent_version": version if isinstance(version, str) else None, "n_demo_messages": demos,
                "n_attempts": len(attempts) if isinstance(attempts, list) else None,
                "has_submission": bool(info.get("submission")), "reward_source": label}
        return agent_session(
            ref, steps, fail=fail, task=first_user(steps) or (statement if isinstance(statement, str) else None),
            task_id=task_id, agent=NAME, model=model, reward=reward,
            termination=exit_status if isinstance(exit_status, str) and exit_status else None,
            metrics=metrics, meta={k: v for k, v in meta.items() if v is not None})



__all__ = ["SWEAgentTrajectory", "history_steps", "trajectory_steps", "find_trajectories", "session_id",
           "reward_for", "bash_call", "stats_metrics"]
