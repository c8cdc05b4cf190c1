"""Graded sessions read back from an output folder, for exports and stats (no regrading):
from the session folders and the session store, each session once in its latest version
(:mod:`streamgrade.sinks.reader`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from ..models import Message
from ..sinks.reader import SessionsReader
from .chatml import to_chatml


@dataclass
class GradedSession:
    """One session's latest result: ``record`` is its scores.json (the scores.jsonl fields),
    ``messages`` the trajectory as OpenAI chat messages (system first), ``tools`` the tool
    definitions (agents), ``task`` the task text; ``folder`` its folder (where its files,
    or at least its frames, are), ``stored`` whether its files are in the session store."""

    session_id: str
    record: dict[str, Any]
    messages: list[dict[str, Any]] = field(default_factory=list)
    tools: list[dict[str, Any]] = field(default_factory=list)
    task: str = ""
    folder: Path | None = None  # where its files are (default: the layout's folder of its id)
    stored: bool = False

    @property
    def score(self) -> float:
        return float(self.record.get("score") or 0.0)


class Sessions(SessionsReader):
    """The sessions of the output folder ``out`` (:class:`~streamgrade.sinks.reader.SessionsReader`:
    folders and the session store), with the graded sessions as :class:`GradedSession`
    (:meth:`graded`, :meth:`fill`)."""

    def graded(self, *, with_messages: bool = True, with_task: bool = False) -> Iterator[GradedSession]:
        """Graded sessions, one at a time: with their messages (see :class:`GradedSession`),
        or only their records (and task text with ``with_task``), so that a pass over 100K
        sessions holds one session's messages at a time."""
        for folder, rec, stored in self.entries():
            if rec.get("status") != "graded":
                continue
            gs = GradedSession(session_id=rec["session_id"], record=rec, folder=folder, stored=stored)
            if (with_messages or with_task) and not self.fill(gs, messages=with_messages):
                continue
            yield gs

    def fill(self, gs: GradedSession, *, messages: bool = True) -> bool:
        """Read the task (and with ``messages`` the messages and tools) of ``gs``; False
        when its files are missing or broken."""
        found = self.files(gs.session_id, None if gs.stored else gs.folder, gs.stored, sft=messages)
        if found is None:
            return False
        results, sft = found
        if messages and sft is None:
            return False
        session = results.get("session", {})
        gs.task = session.get("task") or ""
        if messages:
            assert sft is not None
            if session.get("kind") in ("agent", "episode"):
                gs.messages = sft.get("messages", [])
                gs.tools = sft.get("tools", [])
            else:
                row = to_chatml([Message(**m) for m in sft.get("messages", [])])
                gs.messages = row["messages"] if row else []
        return True


def _sessions(out: "str | Path | Sessions") -> tuple[Sessions, bool]:
    """``out`` as a :class:`Sessions` (and whether it was opened here, to close)."""
    return (out, False) if isinstance(out, Sessions) else (Sessions(out), True)


def session_folders(out: "str | Path | Sessions") -> Iterator[tuple[Path, dict[str, Any]]]:
    """(folder, scores.json) of every session with a folder under ``out`` (graded or
    failed), in directory order (stored sessions: :meth:`Sessions.entries`)."""
    s, own = _sessions(out)
    try:
        for folder, rec, stored in s.entries():
            if not stored:
                yield folder, rec
    finally:
        if own:
            s.close()


def load_records(out: "str | Path | Sessions") -> Iterator[dict[str, Any]]:
    """Every session's scores.json under ``out`` (graded or failed): folders, then the store."""
    s, own = _sessions(out)
    try:
        yield from s.records()
    finally:
        if own:
            s.close()


def load_graded(out: "str | Path | Sessions", *, with_messages: bool = True,
                with_task: bool = False) -> Iterator[GradedSession]:
    """Graded sessions under ``out``, one at a time (see :meth:`Sessions.graded`)."""
    s, own = _sessions(out)
    try:
        yield from s.graded(with_messages=with_messages, with_task=with_task)
    finally:
        if own:
            s.close()


def fill(out: "str | Path | Sessions", gs: GradedSession, *, messages: bool = True) -> bool:
    """Read the task (and with ``messages`` the messages and tools) of ``gs`` (see
    :meth:`Sessions.fill`); False when its files are missing or broken."""
    s, own = _sessions(out)
    try:
        return s.fill(gs, messages=messages)
    finally:
        if own:
            s.close()


__all__ = ["GradedSession", "Sessions", "session_folders", "load_records", "load_graded", "fill"]
