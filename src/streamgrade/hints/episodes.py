"""Episodes read back from an output folder and grouped into tasks, for hint extraction.

An **episode** is one graded agent run (``kind`` agent or episode: a transcript) under
``OUT/sessions/`` or in the session store (:mod:`streamgrade.sinks.reader`). What a hint may be built from is decided here, once: the task text
(results.json ``session.task``, the first user message unless the format states the task),
the transcript as the agent saw and wrote it (sft.json ``messages``: system, user,
assistant with its tool calls, tool results) and the tool definitions (sft.json
``tools``), plus the outcome (reward, else the judge's score). Nothing else of a session
is read: not ``meta`` and not the record's ``golden`` metrics, so the ground-truth grader's
internals never reach a hint. (The readers already keep them out of these files: tau-bench's
reference actions ``info.task.actions``, required ``outputs``, the simulated user's
``instruction`` and ``reward_info``; Harbor's ``verifier/`` output, ``tests/`` and
``solution/``; see :mod:`streamgrade.golden` and :mod:`streamgrade.formats.harbor`.)

**Tasks** are groups of episodes keyed by ``[hints] group_by`` (default
``["source_format", "task_id"]``; a session without a task id falls back on its task
text; ``trial`` groups by trial name; ``meta.<path>`` by a field of the session's meta).
**Success** is decided by the reward where the episode has one (at or above the pass mark
of its source format: ``[exports] reward_pass``, else 1.0 for binary rewards, else the
median, :func:`streamgrade.agreement.pass_mark`), else by the judge's score (at least
``[exports] pass_score``, 50).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..agreement import pass_mark
from ..exports.store import Sessions
from ..sinks.layout import Layout
from ..sinks.session_store import open_reader

#: Session kinds that have a transcript to learn from.
TRANSCRIPT_KINDS = ("agent", "episode")


@dataclass
class Episode:
    """One graded run of a task: ``session_id``, ``fingerprint`` (of its input: a new one
    means a new version), ``folder`` (its session folder), ``task`` (text), ``task_id``,
    ``trial``, ``source_format``, ``reward`` (ground truth or None), ``score`` (0-100 or
    None), ``success`` (see the module docstring), ``decided_by`` ("reward" or "score"),
    ``turns`` (assistant turns), ``termination``. Its transcript is read on demand
    (:meth:`load`) so that thousands of episodes do not sit in memory."""

    session_id: str
    fingerprint: str
    folder: Path
    task: str
    task_id: str | None
    trial: str | None
    source_format: str
    reward: float | None
    score: float | None
    turns: int
    termination: str | None
    success: bool = False
    decided_by: str = "score"
    key: tuple[str, ...] = ()
    store: Path | None = None  # the ledger holding its files, for a session of the session store

    def load(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """(messages, tools) of the episode: its sft.json ``messages`` (OpenAI chat) and
        ``tools``, from its folder or the session store. Raises OSError or ValueError
        (broken JSON, a damaged store row) naming the file."""
        if self.store is not None:
            reader = open_reader(self.store)
            if reader is None:
                raise OSError(f"{self.store}: no session store")
            with reader:
                found = reader.files(self.session_id)
            if found is None or found[1] is None:
                raise OSError(f"{self.store}: no sft.json of {self.session_id} in the session store")
            doc: Any = found[1]
        else:
            path = self.folder / "sft.json"
            try:
                doc = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not JSON: {exc}") from None
        msgs = doc.get("messages") if isinstance(doc, dict) else None
        tools = doc.get("tools") if isinstance(doc, dict) else None
        return ([m for m in msgs if isinstance(m, dict)] if isinstance(msgs, list) else [],
                [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else [])

    def outcome(self) -> str:
        """One line for prompts and rows: success or failure and what decided it."""
        what = "succeeded" if self.success else "failed"
        if self.decided_by == "reward":
            return f"{what} (ground-truth reward {self.reward:g})"
        return f"{what} (judge score {self.score:g} of 100)" if self.score is not None else what


@dataclass
class Task:
    """A group of episodes: ``key`` (the ``group_by`` values), ``task_id`` (the episodes'
    task id, or None), ``task`` (the task text of the first episode, by session id) and
    ``episodes`` (all of them, sorted by session id)."""

    key: tuple[str, ...]
    task_id: str | None
    task: str
    episodes: list[Episode] = field(default_factory=list)

    @property
    def name(self) -> str:
        """A printable id: the task id, else the key joined by ``/``."""
        return self.task_id or "/".join(k for k in self.key if k)


@dataclass
class LoadReport:
    """What :func:`load_tasks` saw: ``episodes`` kept, ``not_graded`` (failed or ungradable
    sessions), ``recordings`` (sessions without a transcript: see ``streamgrade augment``),
    ``broken`` (session folder, reason) of unreadable ones."""

    episodes: int = 0
    not_graded: int = 0
    recordings: int = 0
    broken: list[tuple[str, str]] = field(default_factory=list)


def _dig(obj: Any, path: str) -> Any:
    for part in path.split("."):
        if not isinstance(obj, dict):
            return None
        obj = obj.get(part)
    return obj


def task_digest(task: str) -> str:
    """16 hex digits of the SHA-256 of the task text with whitespace collapsed."""
    return hashlib.sha256(" ".join(task.split()).encode("utf-8", "surrogatepass")).hexdigest()[:16]


def group_key(rec: dict[str, Any], session: dict[str, Any], fields: list[str]) -> tuple[str, ...]:
    """The task of an episode: its ``fields`` (see :data:`~streamgrade.config.HINT_GROUP_FIELDS`)
    from the record (scores.json) and results.json ``session``; ``task_id`` falls back on
    the task text's digest (``task:<16 hex>``), ``task`` is that digest too (a long text
    makes a poor key), ``meta.<path>`` a field of the session's meta (read for grouping
    only, never shown)."""
    path = str(rec.get("source_path") or "")
    task = str(session.get("task") or "")
    out = []
    for f in fields:
        if f.startswith("meta."):
            v = _dig(session.get("meta") or {}, f[5:])
            out.append("" if v is None else json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else str(v))
            continue
        values = {"source_format": rec.get("source_format"), "source_dir": os.path.dirname(path),
                  "source_file": path, "task_id": rec.get("task_id") or f"task:{task_digest(task)}",
                  "trial": rec.get("trial") or session.get("trial"), "task": f"task:{task_digest(task)}",
                  "model": rec.get("model"), "agent": rec.get("agent")}
        out.append(str(values[f] or ""))
    return tuple(out)


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _scan(out: Path, fields: list[str], report: LoadReport) -> Iterator[Episode]:
    with Sessions(out) as sessions:  # session folders and the session store
        for folder, rec, stored in sessions.entries():
            if rec.get("status") != "graded":
                report.not_graded += 1
                continue
            found = sessions.files(str(rec["session_id"]), None if stored else folder, stored, sft=False)
            session = found[0].get("session") if found is not None else None
            if not isinstance(session, dict):
                where = sessions.layout.ledger if stored else folder / "results.json"
                report.broken.append((str(folder), f"results.json unreadable ({where})"))
                continue
            ep = _episode(folder, rec, session, fields, report)
            if ep is not None:
                ep.store = sessions.layout.ledger if stored else None
                yield ep


def _episode(folder: Path, rec: dict[str, Any], session: dict[str, Any], fields: list[str],
             report: LoadReport) -> Episode | None:
    """The episode of a graded session, or None (counted) when it is a recording."""
    if session.get("kind") not in TRANSCRIPT_KINDS:
        report.recordings += 1
        return None
    report.episodes += 1
    return Episode(session_id=str(rec["session_id"]), fingerprint=str(rec.get("fingerprint") or ""),
                   folder=folder, task=str(session.get("task") or ""),
                   task_id=str(rec["task_id"]) if rec.get("task_id") is not None else None,
                   trial=str(rec["trial"]) if rec.get("trial") is not None else None,
                   source_format=str(rec.get("source_format") or ""), reward=_num(rec.get("reward")),
                   score=_num(rec.get("score")), turns=int(rec.get("turns") or 0),
                   termination=rec.get("termination"), key=group_key(rec, session, fields))


def load_tasks(out: str | Path, fields: list[str], *, reward_pass: float | None = None,
               pass_score: float = 50.0) -> tuple[list[Task], LoadReport]:
    """The tasks of OUT's graded agent episodes, sorted by key, each episode's success
    decided (see the module docstring). Only scores.json and results.json are read here
    (the transcripts later, per episode). Returns (tasks, what was seen)."""
    report = LoadReport()
    layout = Layout(out)
    groups: dict[tuple[str, ...], list[Episode]] = defaultdict(list)
    rewards: dict[str, list[float]] = defaultdict(list)
    for ep in _scan(layout.out, fields, report):
        groups[ep.key].append(ep)
        if ep.reward is not None:
            rewards[ep.source_format].append(ep.reward)
    marks = {fmt: pass_mark(rs, reward_pass) for fmt, rs in rewards.items()}
    tasks = []
    for key in sorted(groups):
        eps = sorted(groups[key], key=lambda e: e.session_id)
        for ep in eps:
            if ep.reward is not None:
                ep.success, ep.decided_by = ep.reward >= marks[ep.source_format], "reward"
            else:
                ep.success, ep.decided_by = ep.score is not None and ep.score >= pass_score, "score"
        ids = {e.task_id for e in eps}
        tasks.append(Task(key=key, task_id=next(iter(ids)) if len(ids) == 1 else None, task=eps[0].task,
                          episodes=eps))
    return tasks, report


def pick_episodes(task: Task, limit: int) -> list[Episode]:
    """At most ``limit`` episodes of ``task`` to learn from: successes and failures
    alternated (a success first), each side shortest first (fewest turns, then session id),
    so that both kinds of evidence are there and the cheapest are read first."""
    wins = sorted((e for e in task.episodes if e.success), key=lambda e: (e.turns, e.session_id))
    losses = sorted((e for e in task.episodes if not e.success), key=lambda e: (e.turns, e.session_id))
    out: list[Episode] = []
    while len(out) < limit and (wins or losses):
        for side in (wins, losses):
            if side and len(out) < limit:
                out.append(side.pop(0))
    return sorted(out, key=lambda e: e.session_id)


__all__ = ["Episode", "LoadReport", "Task", "TRANSCRIPT_KINDS", "group_key", "load_tasks", "pick_episodes",
           "task_digest"]
