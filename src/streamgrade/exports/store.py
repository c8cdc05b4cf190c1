"""Graded sessions read back from an output folder, for exports and stats (no regrading)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from .chatml import to_chatml
from ..models import Message


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

    @property
    def score(self) -> float:
        return float(self.record.get("score") or 0.0)


def load_records(out: str | Path) -> Iterator[dict[str, Any]]:
    """Every session's scores.json under ``out`` (graded or failed), in session-id order."""
    for path in sorted(Path(out, "sessions").glob("*/scores.json")):
        try:
            yield json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue  # written atomically, so only a foreign file can be broken


def load_graded(out: str | Path, *, with_messages: bool = True) -> Iterator[GradedSession]:
    """Graded sessions under ``out`` with their messages (see :class:`GradedSession`)."""
    for rec in load_records(out):
        if rec.get("status") != "graded":
            continue
        folder = Path(out, "sessions", _folder(rec["session_id"]))
        gs = GradedSession(session_id=rec["session_id"], record=rec)
        if with_messages:
            try:
                sft = json.loads((folder / "sft.json").read_text(encoding="utf-8"))
                results = json.loads((folder / "results.json").read_text(encoding="utf-8"))
            except (OSError, json.JSONDecodeError):
                continue
            session = results.get("session", {})
            gs.task = session.get("task") or ""
            if session.get("kind") in ("agent", "episode"):
                gs.messages = sft.get("messages", [])
                gs.tools = sft.get("tools", [])
            else:
                row = to_chatml([Message(**m) for m in sft.get("messages", [])])
                gs.messages = row["messages"] if row else []
        yield gs


def _folder(session_id: str) -> str:
    from ..pipeline import safe_name

    return safe_name(session_id)
