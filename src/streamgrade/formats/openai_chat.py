"""OpenAI-chat trajectory dumps: a JSON list (or JSONL file, or single JSON object) of rows,
each holding a list of OpenAI chat messages, one session per row.

Example: tau-bench's historical trajectories (sierra-research/tau-bench,
``historical_trajectories/gpt-4o-airline.json``; schema in
../shared/corpus/tau-bench/PROVENANCE.md): rows ``{task_id, trial, reward, info, traj}``.
Where a dump keeps its fields is configured in ``[formats.openai_chat]``
(:class:`~streamgrade.config.OpenAIChatMapping`): the keys tried for the messages list and
dotted paths for task_id, trial, reward, model and agent.

Finding: ``.json``/``.jsonl`` files not owned by another format (see :data:`SKIP_NAMES`,
:data:`SKIP_SUFFIXES`; nothing in a Clones desktop folder, one with meta.json and
input_log.jsonl; no ATIF file, broken ATIF file or file an ATIF file in the folder
references, see :func:`~streamgrade.formats.harbor.atif_files`), regular files that look
like JSON (:func:`~streamgrade.formats._rows.looks_like_json`: first byte ``[`` or ``{``, or
a corrupted first byte: invalid UTF-8 followed by ``[``, ``{`` or ``"``), are parsed (once:
a small LRU keyed by path, size and mtime serves the later ``assemble`` calls). A file is
claimed when at least one row holds one of the mapping's messages fields, or is over
``[limits] max_session_bytes`` (never read, so it fails with that reason); then every
row of it gets a session except trace rows (rows with both ``trial_name`` and ``episode``,
which belong to the trace-rows format), so a malformed row is reported rather than
silently skipped. A ``.json``/``.jsonl`` file that looks like JSON but does not parse (not
UTF-8, not JSON, nested too deeply, over ``[limits] max_file_bytes``) is claimed as one
session (``<stem>``) whose assemble reports the error and its line, so a damaged dump never disappears silently. Valid JSON
without message rows (configs, summaries) and text that does not look like JSON are not
claimed.
``find`` uses the mapping set by :meth:`OpenAIChat.configure` (the pipeline calls it with the
run's config; the default mapping otherwise); ``assemble`` uses the config it is given.

Session ids: ``<stem>.task<task_id>.trial<trial>`` when both are known (``.row<index>``
appended if that id repeats within the file), else ``<stem>.row<index>``; the ref's
``locator`` is the row index, and its fingerprint the hash of the row's own JSON text
(:meth:`~streamgrade.formats._rows.Rows.fingerprint`): rows appended to a file leave the
others unchanged, so only the new rows are graded.

What the judge sees: the transcript (system messages kept; tool calls in OpenAI shape with
``arguments`` as a JSON string) and the task = the first user message's content. Nothing
else of the row: tau-bench's ``info.task.instruction`` (the simulated user's hidden brief)
and ``info.task.actions`` (the reference action sequence) are never put in the task, the
transcript or ``meta``. The reference actions (the mapping's ``reference_actions`` path,
default ``info.task.actions``) go to ``Session.reference_actions`` only, for golden-path verification (:mod:`streamgrade.golden`),
which no judge reads.

Termination: ``"stop"`` when the last message is the assistant's without tool calls,
``"tool_call"`` when it is an assistant message with tool calls, else ``"unknown"`` (the
dump does not say why the run ended: tau-bench rows usually end with the simulated user's
``###STOP###`` message or a tool result).

Metrics: ``user_cost`` from ``info.user_cost`` when it is a number. ``reward`` is the row's
reward (a number or numeric string) as float, else None.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Iterator

from ..config import Config, OpenAIChatMapping
from ..errors import InputError
from ..golden import reference_actions
from ..models import ChatMessage, Session, SessionRef
from ._rows import file_stem, load_rows, looks_like_json, row_at, sanitise, unique_id
from .mapping import agent_session, as_float, as_text, first_user, messages_to_steps
from .mapping import get as dotted
from .harbor import atif_files

NAME = "openai-chat"

SKIP_NAMES = frozenset({"meta.json", "input_log.jsonl", "result.json", "config.json", "trajectory.json", "sft.json"})
SKIP_SUFFIXES = (".events.json", ".trajectory.json", ".traces.json",
                 ".swebench_eval.jsonl")  # OpenHands' SWE-bench verdicts: rows with "history": null


def owned_elsewhere(name: str) -> bool:
    """True for file names another format owns (Clones, Harbor, ATIF, trace rows)."""
    return (
        name in SKIP_NAMES
        or name.endswith(SKIP_SUFFIXES)
        or "race_sessions" in name
        or (name.startswith("default_run_") and name.endswith(".json"))
    )


def clones_desktop_folder(names: list[str]) -> bool:
    """A Clones desktop session folder (meta.json and input_log.jsonl): its other JSON files
    (sft.json exports, ...) are Clones' own, never OpenAI-chat dumps."""
    return "meta.json" in names and "input_log.jsonl" in names


def is_trace_row(row: Any) -> bool:
    """A row of an exported trace dump (trace-rows format): has trial_name and episode."""
    return isinstance(row, dict) and "trial_name" in row and "episode" in row


def _messages_field(row: Any, mapping: OpenAIChatMapping) -> str | None:
    if not isinstance(row, dict):
        return None
    for f in mapping.messages_fields:
        if f in row:
            return f
    return None


class OpenAIChat:
    """The OpenAI-chat dump format (see module docstring)."""

    name = NAME

    mapping: OpenAIChatMapping = OpenAIChatMapping()

    def configure(self, config: Config) -> None:
        """Detect rows with the configured field mapping from now on."""
        self.mapping = config.formats.openai_chat

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per row of each claimed dump file (see module docstring)."""
        return list(self.iter_find(folder, names))

    def iter_find(self, folder: Path, names: list[str]) -> Iterator[SessionRef]:
        """:meth:`find`, one ref at a time: a folder of 1,000 dump files (100,000 rows) is
        never held as one list of refs (the scan streams them)."""
        mapping = self.mapping
        if clones_desktop_folder(names):
            return
        atif: set[str] | None = None
        for n in sorted(names):
            if not n.endswith((".json", ".jsonl")) or owned_elsewhere(n):
                continue
            if atif is None:
                atif = atif_files(folder, names)[1]
            if n in atif:
                continue
            path = str(folder / n)
            if not looks_like_json(path):
                continue
            rows = load_rows(path)
            stem = sanitise(file_stem(n))
            files = (path,)  # one tuple for the file's rows
            if rows.error is not None:
                yield SessionRef(session_id=stem, format=NAME, path=path, files=files, locator="")
                continue
            decoded = [rows.try_row(i) for i in range(len(rows))]
            oversized = any(isinstance(r, InputError) for r in rows.raws)  # fails with the reason, never silently
            if not oversized and not any(_messages_field(r, mapping) and not is_trace_row(r) for r in decoded):
                continue
            seen: set[str] = set()
            for i, row in enumerate(decoded):
                if is_trace_row(row):
                    continue
                sid = f"{stem}.row{i}"
                if isinstance(row, dict):
                    task_id, trial = as_text(dotted(row, mapping.task_id)), as_text(dotted(row, mapping.trial))
                    if task_id is not None and trial is not None:
                        sid = f"{stem}.task{sanitise(task_id)}.trial{sanitise(trial)}"
                sid = unique_id(seen, sid, i)
                yield SessionRef(session_id=sid, format=NAME, path=path, files=files, locator=str(i),
                                 fingerprint=rows.fingerprint(i))

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read row ``int(ref.locator)`` with the configured mapping. Raises InputError naming
        the file and the field (``[17].traj[3].tool_calls[0].function.arguments``; for JSONL
        the line and ``traj[3]...``)."""
        mapping = config.formats.openai_chat
        rows, index, row = row_at(ref.path, ref.locator)
        if not isinstance(row, dict):
            raise rows.fail(index, "", f"expected a row object, got {type(row).__name__}")
        field = _messages_field(row, mapping)
        if field is None:
            raise rows.fail(index, "", f"no messages list: none of the fields {', '.join(mapping.messages_fields)}")
        fail = lambda f, msg: rows.fail(index, f, msg)  # noqa: E731 - errors name this row
        steps = messages_to_steps(row[field], fail, field)
        if not steps:
            raise rows.fail(index, field, "no messages")
        if first_user(steps) is None:
            raise rows.fail(index, field, "no user message: the task is the first user message")
        metrics: dict[str, float] = {}
        user_cost = dotted(row, "info.user_cost")
        if isinstance(user_cost, (int, float)) and not isinstance(user_cost, bool):
            metrics["user_cost"] = float(user_cost)
        session = agent_session(
            ref, steps, fail=fail,
            reward=as_float(dotted(row, mapping.reward)),
            meta={"row": index, "messages_field": field, "n_messages": len(row[field])},
            task_id=as_text(dotted(row, mapping.task_id)),
            trial=as_text(dotted(row, mapping.trial)),
            agent=as_text(dotted(row, mapping.agent)),
            model=as_text(dotted(row, mapping.model)),
            metrics=metrics,
            reference_actions=reference_actions(dotted(row, mapping.reference_actions)),
        )
        session.termination = termination(session.transcript)
        return session


def termination(transcript: list[ChatMessage]) -> str:
    """"stop" (ends with an assistant message without tool calls), "tool_call" (ends with an
    assistant tool call) or "unknown"."""
    last = transcript[-1] if transcript else None
    if last is None or last.role != "assistant":
        return "unknown"
    return "tool_call" if last.tool_calls else "stop"
