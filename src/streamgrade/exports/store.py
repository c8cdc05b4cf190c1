"""Graded sessions read back from an output folder, for exports and stats (no regrading)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..models import Message
from ..sinks.layout import Layout
from .chatml import to_chatml


@dataclass
class GradedSession:
    """One session's latest result in OUT/sessions/<id>/: ``record`` is its scores.json
    (the scores.jsonl fields), ``messages`` the trajectory as OpenAI chat messages (system
    first), ``tools`` the tool definitions (agents), ``task`` the task text."""

    session_id: str
    record: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    task: str = ""
    folder: Path | None = None  # where its files are (default: the layout's folder of its id)

    @property
    def score(self) -> float:
        return float(self.record.get("score") or 0.0)


def session_folders(out: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(folder, its scores.json) of every session under ``out`` (graded or failed), in
    directory order."""
    root = Layout(out).sessions
    try:
        entries = os.scandir(root)  # streamed in directory order: no list of 100K names
    except FileNotFoundError:
        return
    with entries:
        for entry in entries:
            if not entry.is_dir(follow_symlinks=False):
                continue
            try:
                rec = json.loads((root / entry.name / "scores.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue  # written atomically, so only a foreign file can be broken or missing
            if isinstance(rec, dict) and isinstance(rec.get("session_id"), str):
                yield root / entry.name, rec


def load_records(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every session's scores.json under ``out`` (graded or failed), in directory order."""
    for _, rec in session_folders(out):
        yield rec


def load_graded(out: str | Path, *, with_messages: bool = True, with_task: bool = False) -> Iterator[GradedSession]:
    """Graded sessions under ``out``, one at a time: with their messages (see
    :class:`GradedSession`), or only their records (and task text with ``with_task``), so
    that a pass over 100K sessions holds one session's messages at a time."""
    for folder, rec in session_folders(out):
        if rec.get("status") != "graded":
            continue
        gs = GradedSession(session_id=rec["session_id"], record=rec, folder=folder)
        if (with_messages or with_task) and not fill(out, gs, messages=with_messages):
            continue
        yield gs


def fill(out: str | Path, gs: GradedSession, *, messages: bool = True) -> bool:
    """Read the task (and with ``messages`` the messages and tools) of ``gs`` from its
    folder; False when its files are missing or broken."""
    folder = gs.folder or Layout(out).session_dir(gs.session_id)
    try:
        results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
        sft = json.loads((folder / "sft.json").read_text(encoding="utf-8")) if messages else {}
    except (OSError, json.JSONDecodeError):
        return False
    session = results.get("session", {})
    gs.task = session.get("task") or ""
    if messages:
        if session.get("kind") in ("agent", "episode"):
            gs.messages = sft.get("messages", [])
            gs.tools = sft.get("tools", [])
        else:
            row = to_chatml([Message(**m) for m in sft.get("messages", [])])
            gs.messages = row["messages"] if row else []
    return True
