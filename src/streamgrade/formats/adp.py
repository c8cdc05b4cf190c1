"""Agent Data Protocol (ADP) standardized trajectories: a JSON list (or JSONL file, or a
single JSON object) of ``Trajectory`` rows ``{id, content: [item, ...], details: {...}}``,
one session per trajectory.

Source: neulab/agent-data-protocol, ``schema/trajectory.py``, ``schema/action/{action,api,
code,message}.py``, ``schema/observation/{observation,text,image,web,json}.py``,
``schema/tool_call_links.py`` and the converters that define what the items mean
(``schema/atif.py`` ``adp_trajectory_to_atif``, ``agents/openhands_sdk/std_to_sft.py``);
samples and schema notes in ../shared/corpus/adp (PROVENANCE.md, schema/SCHEMA.md). Each
``content`` item has ``class_``:

- ``api_action {function, kwargs, description?, reasoning_content?, tool_call_id?, reward?}``:
  one tool call ``function(kwargs)``; ``description`` (the agent's visible thought) is the
  step's message, ``reasoning_content`` its reasoning.
- ``code_action {language, content, description?, ...}``: one tool call named as upstream's
  ATIF conversion names it (``code_action_to_tool_call``): bash/sh/shell ->
  ``execute_bash {command}``, python/py/python3 -> ``execute_ipython_cell {code}``, any
  other language -> ``execute_code {language, content}``.
- ``message_action {content, description?}``: an agent message (description first, as the
  OpenHands SDK converter joins them); ``<finish> ... </finish>`` marks the end.
- ``text_observation {content, source, name?}``, ``image_observation {content: <path>,
  annotations, source}``, ``web_observation {html, axtree, url, image_observation,
  viewport_size}``, ``json_observation {content: {...}}``. An observation is the result of
  a tool call when it names the call (``tool_call_id``, schema 1.2+), or when it directly
  follows tool actions (upstream's ``backfill_adjacent_tool_call_links``: CodeAct and
  SWE-agent samples mark tool output ``source: user``); consecutive actions are one step
  with parallel calls, answered in order, and so is a message directly followed by actions
  (one model turn: older Toucan samples split it, newer ones use ``description``). Any other observation is a message of its
  ``source``: user (``user_msg`` in older versions) -> user step, system (or ``name:
  "system"``) -> system step, agent/assistant -> agent message, environment -> environment
  feedback. Image and web observations are text: ``[image: <path>]`` plus the annotated
  elements' text, and ``URL: ...`` plus the accessibility tree (else the HTML). Screenshot
  files are not read (the samples name absolute paths that do not ship). Older spellings
  are accepted: CamelCase classes (``MessageAction``) and ``message``/``text``/
  ``thoughts`` fields (the SCHEMA.md example).

Task: the first ``text_observation`` from the user; when there is none, the first item
(a message or text observation: Android-in-the-Wild puts the goal in a ``message_action``),
as the SDK converter does. task_id: ``details.instance_id``/``task_id``, else the
trajectory id (WebArena's six trajectories of task "0" share it). model:
``details.model_name``/``model``. reward: the first of ``details.reward``, ``resolved``,
``success``, ``target``, ``correct`` that is a number or boolean (most std files carry
none: None). termination: ``details.exit_status`` (SWE-agent: ``submitted``), else "stop"
when the last item is a message or a finish/stop/submit call, else "unknown". Per-item
``reward`` values go to ``metrics`` (``step_reward_sum``, ``step_rewards``), never to the
steps. ``meta`` keeps ids, versions, tool names and the names (not values) of ``details``:
its values may hold evaluation logs (nebius ``eval_logs``) and are never shown.

Finding: ``.json``/``.jsonl`` files not owned by another format (openai_chat's
``owned_elsewhere``) whose first 64 KiB name a ``class_`` with an
``_action``/``_observation`` value are parsed (the row cache shared with the generic
readers); a file is claimed when a row is a trajectory (``content`` items with ADP
classes), or when it does not parse (one failing session). Session id ``<stem>.<id>``
(``<folder>.<id>`` for the generic ``sample_std``/``full_std`` names), ``.row<i>`` added to
a repeated id; locator = row index; fingerprint = the row's content hash.

ADP dataset folders (``datasets/<name>/``) also hold ``sample_raw.json`` (the source
dataset's own shape, one adapter per dataset upstream) and ``sample_sft.json`` /
``sample_sft/*.json`` (the std trajectories converted for fine-tuning). Beside a std file
these are withheld from the generic readers (:meth:`ADPTrajectories.withhold`): they
would grade the same runs a second time in a shape they half understand (WebArena's raw
rows fail, nebius raw carries the ``target`` label and eval logs). They are not read, so
they are reported as not recognised with that reason (:func:`withheld_reason`), never
dropped silently; ``metadata.json`` and ``schema_raw.json`` (dataset config) are owned.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..models import Observation, Session, SessionRef, Step, StepToolCall
from ._rows import file_stem, load_rows, looks_like_json, peek, row_at, sanitise, unique_id
from .mapping import Fail, agent_session, arguments_of, as_float, as_text
from .openai_chat import clones_desktop_folder, owned_elsewhere

NAME = "adp"
STD_NAMES = ("sample_std.json", "sample_standardized.json", "full_std.jsonl", "sample_std.jsonl")
GENERIC_STEMS = frozenset({"sample_std", "sample_standardized", "full_std", "std", "standardized"})
RAW_NAMES = ("sample_raw.json", "sample_raw.jsonl")
SFT_NAMES = ("sample_sft.json", "sample_sft.jsonl")
CONFIG_NAMES = ("metadata.json", "schema_raw.json")
ACTIONS = frozenset({"api_action", "code_action", "message_action"})
OBSERVATIONS = frozenset({"text_observation", "image_observation", "web_observation", "json_observation"})
USER_SOURCES = frozenset({"user", "user_msg", "human"})
FINISH_CALLS = frozenset({"finish", "stop", "submit", "final_answer", "end", "exit"})
REWARD_KEYS = ("reward", "resolved", "success", "target", "correct")
_PEEK = re.compile(rb'"class_"\s*:\s*"[A-Za-z_]*(?:_action|_observation|Action|Observation)"')
_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def class_of(item: Any) -> str | None:
    """An item's ``class_`` in snake case (``MessageAction`` -> ``message_action``)."""
    cls = item.get("class_") if isinstance(item, dict) else None
    if not isinstance(cls, str) or not cls:
        return None
    return cls if cls.islower() else _CAMEL.sub("_", cls).lower()


def is_trajectory(row: Any) -> bool:
    """A row with a ``content`` list holding at least one item of an ADP class."""
    content = row.get("content") if isinstance(row, dict) else None
    return isinstance(content, list) and any(
        (c := class_of(i)) in ACTIONS or c in OBSERVATIONS or (c or "").endswith("_observation") for i in content)


def _has_std(folder: Path, names: list[str]) -> bool:
    return any(n in names for n in STD_NAMES)


def withheld_reason(folder: Path, name: str, names: list[str]) -> str | None:
    """Why an ADP dataset folder's raw or SFT file is not graded (see module docstring), or
    None when ``name`` is not one."""
    if _has_std(folder, names) and name in RAW_NAMES:
        return ("adp: the dataset's raw source data (its own shape, not ADP standardized), not read: "
                "its runs are graded from the standardized file beside it")
    if _has_std(folder, names) and name in SFT_NAMES:
        return "adp: the standardized trajectories converted for fine-tuning, not read: graded from the std file beside it"
    if folder.name == "sample_sft" and name.endswith((".json", ".jsonl")) and \
            any((folder.parent / s).is_file() for s in STD_NAMES):
        return "adp: a fine-tuning conversion of ../sample_std.json, not read: graded from that file"
    return None


def owned_config(folder: Path, names: list[str]) -> set[str]:
    """An ADP dataset folder's config files (``metadata.json``, ``schema_raw.json``)."""
    return {n for n in CONFIG_NAMES if n in names} if _has_std(folder, names) else set()


class ADPTrajectories:
    """The ADP standardized-trajectory format (see module docstring)."""

    name = NAME
    exclusive = True

    def withhold(self, folder: Path, names: list[str]) -> set[str]:
        """Raw and SFT files of an ADP dataset folder, kept from the formats after this one."""
        return {n for n in names if withheld_reason(folder, n, names) is not None}

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per row of each claimed file (see module docstring)."""
        out: list[SessionRef] = []
        if clones_desktop_folder(names):
            return out
        for n in sorted(names):
            if not n.endswith((".json", ".jsonl")) or owned_elsewhere(n):
                continue
            path = str(folder / n)
            if not looks_like_json(path) or not _PEEK.search(peek(path)):
                continue
            stem = file_stem(n)
            base = sanitise(folder.name if stem in GENERIC_STEMS else stem)
            rows = load_rows(path)
            if rows.error is not None:
                out.append(SessionRef(session_id=base, format=NAME, path=path, files=(path,)))
                continue
            decoded = [rows.try_row(i) for i in range(len(rows))]
            if not any(is_trajectory(r) for r in decoded) and not any(isinstance(r, InputError) for r in rows.raws):
                continue
            seen: set[str] = set()
            for i, row in enumerate(decoded):
                tid = as_text(row.get("id")) if isinstance(row, dict) else None
                sid = f"{base}.{sanitise(tid)}" if tid else f"{base}.row{i}"
                sid = unique_id(seen, sid, i)
                out.append(SessionRef(session_id=sid, format=NAME, path=path, files=(path,), locator=str(i),
                                      fingerprint=rows.fingerprint(i)))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read trajectory ``int(ref.locator)``; InputError naming the file and the field
        (``[3].content[7].function``; for JSONL the line and ``content[7].function``)."""
        rows, index, row = row_at(ref.path, ref.locator)
        fail: Fail = lambda f, msg: rows.fail(index, f, msg)  # noqa: E731 - errors name this row
        if not isinstance(row, dict):
            raise fail("", f"expected a trajectory object, got {type(row).__name__}")
        content = row.get("content")
        if not isinstance(content, list):
            raise fail("content", "missing field" if content is None else f"expected a list, got {type(content).__name__}")
        details = row.get("details") if isinstance(row.get("details"), dict) else {}
        steps, task, rewards = _Builder(fail).build(content)
        tid = as_text(row.get("id"))
        metrics: dict[str, float] = {"steps": float(len(steps))}
        if rewards:
            metrics["step_reward_sum"] = float(sum(rewards))
            metrics["step_rewards"] = float(len(rewards))
        reward = next((r for k in REWARD_KEYS if (r := _label(details.get(k))) is not None), None)
        exit_status = details.get("exit_status")
        model = details.get("model_name") or details.get("model")
        tools = row.get("available_custom_tools", row.get("available_apis"))
        return agent_session(
            ref, steps, task=task, fail=fail,
            task_id=as_text(details.get("instance_id")) or as_text(details.get("task_id")) or tid,
            model=model if isinstance(model, str) and model else None,
            reward=reward,
            termination=exit_status if isinstance(exit_status, str) and exit_status else _termination(content),
            metrics=metrics,
            meta={"row": index, "trajectory_id": tid,
                  "schema_version": row.get("schema_version") if isinstance(row.get("schema_version"), str) else None,
                  "n_items": len(content),
                  "available_tools": [t for t in tools if isinstance(t, str)] if isinstance(tools, list) else None,
                  "details_keys": sorted(str(k) for k in details)},
        )


def _label(value: Any) -> float | None:
    """A pass/fail label or reward: a bool or a number (not text, which may be anything)."""
    return as_float(value) if isinstance(value, (bool, int, float)) else None


def _termination(content: list[Any]) -> str:
    last = content[-1] if content else None
    cls = class_of(last)
    if cls == "message_action":
        return "stop"
    if cls == "api_action" and str(last.get("function", "")).lower() in FINISH_CALLS:
        return "stop"
    return "unknown"


def _text(item: dict, fail: Fail, where: str, *keys: str, required: bool = True) -> str | None:
    """The first of ``keys`` present in ``item`` as a string (None only when not required)."""
    for k in keys:
        if k in item and item[k] is not None:
            if not isinstance(item[k], str):
                raise fail(f"{where}.{k}", f"expected a string, got {type(item[k]).__name__}")
            return item[k]
    if required:
        raise fail(f"{where}.{keys[0]}", "missing field")
    return None


def observation_text(item: dict, cls: str, fail: Fail, where: str) -> str:
    """The text an observation shows the agent (see module docstring)."""
    if cls == "web_observation":
        parts = [f"URL: {item['url']}"] if isinstance(item.get("url"), str) and item["url"] else []
        page = item.get("axtree") if isinstance(item.get("axtree"), str) and item["axtree"] else item.get("html")
        if page is not None and not isinstance(page, str):
            raise fail(f"{where}.html", f"expected a string, got {type(page).__name__}")
        parts += [page] if page else []
        return "\n\n".join(parts) or "[web page]"
    if cls == "image_observation":
        path = _text(item, fail, where, "content", required=False) or ""
        notes = item.get("annotations")
        if notes is not None and not isinstance(notes, list):
            raise fail(f"{where}.annotations", f"expected a list, got {type(notes).__name__}")
        seen = [f"{a['text']} ({a.get('element_type', '?')})" for a in notes or []
                if isinstance(a, dict) and isinstance(a.get("text"), str) and a["text"]]
        return f"[image: {path}]" + ("\nElements detected: " + ", ".join(seen) if seen else "")
    body = item.get("content", item.get("text"))
    if body is None or isinstance(body, str):
        return body or ""
    return json.dumps(body, ensure_ascii=False, default=str)


def code_call(language: str, code: str, call_id: str) -> StepToolCall:
    """A code action as upstream's ADP->ATIF conversion names it (module docstring)."""
    lang = language.lower()
    if lang in ("bash", "sh", "shell"):
        return StepToolCall(id=call_id, name="execute_bash", arguments={"command": code})
    if lang in ("python", "py", "python3"):
        return StepToolCall(id=call_id, name="execute_ipython_cell", arguments={"code": code})
    return StepToolCall(id=call_id, name="execute_code", arguments={"language": language, "content": code})


class _Builder:
    """Content items to canonical steps (the rules of the module docstring)."""

    def __init__(self, fail: Fail):
        self.fail = fail
        self.steps: list[Step] = []
        self.pending: Step | None = None  # the tool step whose results may follow
        self.calls: dict[str, Step] = {}
        self.rewards: list[float] = []

    def build(self, content: list[Any]) -> tuple[list[Step], str | None, list[float]]:
        task_at = next((k for k, i in enumerate(content) if class_of(i) == "text_observation"
                        and str(i.get("source", "")).lower() in USER_SOURCES), None)
        if task_at is None and content and class_of(content[0]) in ("message_action", "text_observation"):
            task_at = 0
        task = None
        prev_tool = False  # the previous item was a tool action (or a message the next call joins)
        for k, item in enumerate(content):
            where = f"content[{k}]"
            if not isinstance(item, dict):
                raise self.fail(where, f"expected an item object, got {type(item).__name__}")
            cls = class_of(item)
            if cls is None:
                raise self.fail(f"{where}.class_", "missing class_" if item.get("class_") is None else "expected a string")
            r = item.get("reward")
            if isinstance(r, (int, float)) and not isinstance(r, bool):
                self.rewards.append(float(r))
            if k == task_at:
                task = _text(item, self.fail, where, "content", "message", "text")
                self.steps.append(Step(source="user", message=task))
                self.pending, prev_tool = None, False
            elif cls in ("api_action", "code_action"):
                self.tool_action(item, cls, where, k, prev_tool)
                prev_tool = True
            elif cls == "message_action":
                self.message(item, where)
                prev_tool = True  # a call right after a message is made in the same turn
            elif cls in OBSERVATIONS or cls.endswith("_observation"):
                self.observation(item, cls, where)
                prev_tool = False
            else:
                raise self.fail(f"{where}.class_", f"unknown ADP class {item.get('class_')!r}")
        return self.steps, task, self.rewards

    def tool_action(self, item: dict, cls: str, where: str, k: int, join: bool) -> None:
        cid = item.get("tool_call_id")
        cid = cid if isinstance(cid, str) and cid and cid not in self.calls else f"call_{k}"
        if cls == "api_action":
            name = _text(item, self.fail, where, "function")
            if not name:
                raise self.fail(f"{where}.function", "expected a non-empty string")
            kwargs = item.get("kwargs")
            if kwargs is not None and not isinstance(kwargs, (dict, str)):
                raise self.fail(f"{where}.kwargs", f"expected an object, got {type(kwargs).__name__}")
            call = StepToolCall(id=cid, name=name, arguments=arguments_of(kwargs))
        else:
            code = _text(item, self.fail, where, "content", "code")
            call = code_call(_text(item, self.fail, where, "language", required=False) or "code", code or "", cid)
        thought = _text(item, self.fail, where, "description", "thoughts", required=False)
        reasoning = _text(item, self.fail, where, "reasoning_content", required=False)
        if join and self.pending is not None:
            step = self.pending
            step.tool_calls.append(call)
            if thought and thought.strip() and thought != step.message:
                step.message = f"{step.message}\n\n{thought}" if step.message else thought
        else:
            step = Step(source="agent", message=thought or None, reasoning=reasoning or None, tool_calls=[call])
            self.steps.append(step)
            self.pending = step
        self.calls[cid] = step

    def message(self, item: dict, where: str) -> None:
        text = _text(item, self.fail, where, "content", "message")
        thought = _text(item, self.fail, where, "description", "thoughts", required=False)
        reasoning = _text(item, self.fail, where, "reasoning_content", required=False)
        message = f"{thought}\n\n{text}" if thought and thought.strip() else text
        step = Step(source="agent", message=message, reasoning=reasoning or None)
        self.steps.append(step)
        self.pending = step  # tool actions right after it are calls of the same turn

    def observation(self, item: dict, cls: str, where: str) -> None:
        text = observation_text(item, cls, self.fail, where)
        cid = item.get("tool_call_id")
        if isinstance(cid, str) and cid in self.calls:
            step = self.calls[cid]
            step.observations.append(Observation(content=text, source_call_id=cid))
            return
        step = self.pending
        if step is not None:
            answered = {o.source_call_id for o in step.observations}
            free = next((c for c in step.tool_calls if c.id not in answered), None)
            if free is not None:
                step.observations.append(Observation(content=text, source_call_id=free.id))
                return
        self.pending = None
        source = str(item.get("source", "")).lower()
        if source in USER_SOURCES:
            self.steps.append(Step(source="user", message=text))
        elif source == "system" or item.get("name") == "system":
            self.steps.append(Step(source="system", message=text))
        elif source in ("agent", "assistant"):
            self.steps.append(Step(source="agent", message=text))
        else:
            self.steps.append(Step(source="environment", message=text))
