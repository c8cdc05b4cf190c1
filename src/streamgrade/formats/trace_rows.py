"""Exported agent trace rows (Harbor's ``harbor.utils.traces_utils.export_traces``): a JSON
list (or JSONL file) of rows ``{agent, conversations: [{role, content}], date, episode,
model, model_provider, result, run_id, task, trial_name, tool_definitions?}``.

Source: Harbor's golden fixtures (../shared/corpus/harbor/PROVENANCE.md). The rows of one
trial are cumulative prefixes: row ``episode-k`` holds every message up to agent turn k. So
one session is made per ``trial_name`` within a file (never across files: exports may share
placeholder trial names), from its LONGEST row (most conversation messages; a tie goes to the
highest episode number of ``episode-N``). ``metrics["episodes"]`` counts the rows collapsed.

Finding: ``*.traces.json`` files always, and other ``.json``/``.jsonl`` files (not owned by
another format, regular files, first byte ``[`` or ``{``) that hold rows with ``trial_name``,
``episode`` and ``conversations``. A ``*.traces.json`` file that does not parse, or holds no
such rows, is claimed as one session (``<stem>``) whose assemble reports the problem.
Session id ``<stem>.<trial_name>`` (sanitised), locator = trial_name; the fingerprint is the
hash of the trial's rows' JSON text, so rows of other trials appended to the file leave it
unchanged.

Fields: transcript from the chosen row's ``conversations`` (content strings or OpenAI
content parts; any role string kept); tools from ``tool_definitions`` when present; task =
the first user message (for OpenHands exports this is the agent's system prompt sent as a
user message: the export does not mark it); task_id from ``task``; trial = trial_name;
agent; model = ``<model_provider>/<model>`` when a provider is given and the model does not
already start with it. reward from ``result`` when it is a number or a numeric string
("1.0"); anything else (null, objects, other text) gives None. termination is ``"unknown"``:
the rows do not say why the run ended.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..models import Session, SessionRef
from ._rows import file_stem, load_rows, looks_like_json, sanitise
from .mapping import agent_session, as_float, as_text, first_user, messages_to_steps
from .openai_chat import clones_desktop_folder, owned_elsewhere

NAME = "trace-rows"
SUFFIX = ".traces.json"


def is_trace_row(row: Any) -> bool:
    """A row with trial_name, episode and conversations."""
    return isinstance(row, dict) and "trial_name" in row and "episode" in row and "conversations" in row


def episode_number(value: Any) -> int:
    """N of "episode-N" (or an int episode); -1 when there is none."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str):
        m = re.search(r"(\d+)\s*$", value)
        if m:
            return int(m.group(1))
    return -1


def _trial_key(row: dict[str, Any]) -> str:
    name = row.get("trial_name")
    return name if isinstance(name, str) else str(name)


def _longest(rows: list[tuple[int, dict[str, Any]]]) -> tuple[int, dict[str, Any]]:
    def key(item: tuple[int, dict[str, Any]]) -> tuple[int, int, int]:
        i, row = item
        conv = row.get("conversations")
        return (len(conv) if isinstance(conv, list) else -1, episode_number(row.get("episode")), i)

    return max(rows, key=key)


class TraceRows:
    """The exported trace-rows format (see module docstring)."""

    name = NAME

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per trial_name within each trace file."""
        out: list[SessionRef] = []
        clones = clones_desktop_folder(names)
        for n in sorted(names):
            traces = n.endswith(SUFFIX)
            if not traces and (clones or not n.endswith((".json", ".jsonl")) or owned_elsewhere(n)):
                continue
            path = str(folder / n)
            if not looks_like_json(path):
                if traces:
                    out.append(SessionRef(session_id=sanitise(file_stem(n)), format=NAME, path=path, files=(path,), locator=""))
                continue
            rows = load_rows(path)
            stem = sanitise(file_stem(n))
            trials: dict[str, list[int]] = {}
            if rows.error is None:
                for i in range(len(rows)):
                    row = rows.try_row(i)
                    if is_trace_row(row):
                        trials.setdefault(_trial_key(row), []).append(i)
            if not trials:
                if traces:
                    out.append(SessionRef(session_id=stem, format=NAME, path=path, files=(path,), locator=""))
                continue
            seen: set[str] = set()
            for trial, indices in trials.items():
                sid = f"{stem}.{sanitise(trial)}"
                k = 2
                while sid in seen:
                    sid, k = f"{stem}.{sanitise(trial)}-{k}", k + 1
                seen.add(sid)
                out.append(SessionRef(session_id=sid, format=NAME, path=path, files=(path,), locator=trial,
                                      fingerprint=rows.fingerprint(*indices)))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """The session of trial ``ref.locator`` from its longest row. Raises InputError naming
        the file and the field (``[3].conversations[2].role``)."""
        rows = load_rows(ref.path)
        if rows.error is not None:
            raise rows.error
        if not ref.locator:
            raise InputError(ref.path, "no trace rows: expected a list of rows with trial_name, episode and conversations")
        decoded = ((i, rows.try_row(i)) for i in range(len(rows)))
        mine = [(i, r) for i, r in decoded if is_trace_row(r) and _trial_key(r) == ref.locator]
        if not mine:
            raise InputError(ref.path, f"no rows of trial {ref.locator!r}")
        index, row = _longest(mine)
        fail = lambda f, msg: rows.fail(index, f, msg)  # noqa: E731 - errors name this row
        steps = messages_to_steps(row["conversations"], fail, "conversations")
        if not steps:
            raise rows.fail(index, "conversations", "no messages")
        task = first_user(steps)
        if task is None:
            raise rows.fail(index, "conversations", "no user message: the task is the first user message")
        tools = row.get("tool_definitions")
        if tools is None:
            tools = []
        if not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools):
            raise rows.fail(index, "tool_definitions", "expected a list of tool definition objects")
        model = as_text(row.get("model"))
        provider = as_text(row.get("model_provider"))
        if model and provider and not model.startswith(provider + "/"):
            model = f"{provider}/{model}"
        return agent_session(
            ref, steps, task=task, fail=fail,
            reward=as_float(row.get("result")),
            meta={
                "row": index,
                "episode": row.get("episode"),
                "run_id": row.get("run_id"),
                "date": row.get("date"),
            },
            task_id=as_text(row.get("task")),
            trial=ref.locator,
            agent=as_text(row.get("agent")),
            model=model,
            tools=tools,
            termination="unknown",
            metrics={"episodes": float(len(mine))},
        )
