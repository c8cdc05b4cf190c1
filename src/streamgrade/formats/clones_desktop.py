"""Clones desktop recordings: a folder ``<id>/`` with ``input_log.jsonl`` and ``meta.json``
(and ``recording.mp4``, used for frames in a later stage).

Source: the Clones desktop recorder (clones-ai/clones-quality-agent, data/tests/grader/);
schema in ../shared/corpus/clones/PROVENANCE.md. ``input_log.jsonl`` holds one
``{"event", "data", "time"}`` object a line, ``time`` in epoch ms; ``meta.json`` holds the
quest (title, app, objectives, content) the person was given.
"""

from __future__ import annotations

from pathlib import Path

from ..config import Config
from ..errors import InputError
from ..extract.actions import RawEvent, extract_actions
from ..models import Session, SessionRef
from .base import iter_jsonl, load_json, require

NAME = "clones-desktop"
LOG, META, VIDEO = "input_log.jsonl", "meta.json", "recording.mp4"


class ClonesDesktop:
    """The Clones desktop format (see module docstring)."""

    name = NAME

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """A folder holding input_log.jsonl or meta.json is one session named after it."""
        if LOG not in names and META not in names:
            return []
        files = tuple(str(folder / n) for n in (LOG, META, VIDEO))
        return [SessionRef(session_id=folder.name, format=NAME, path=str(folder), files=files)]

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read meta.json and input_log.jsonl and extract the actions.

        Raises InputError when a file is missing, empty, not UTF-8 or not JSON (naming the
        line), or when a field is missing or of the wrong type (naming the field)."""
        folder = Path(ref.path)
        meta_path, log_path = folder / META, folder / LOG
        if not meta_path.exists():
            raise InputError(str(meta_path), "file is missing (a Clones desktop session needs meta.json)")
        meta = load_json(meta_path)
        if not isinstance(meta, dict):
            raise InputError(str(meta_path), "expected a JSON object")
        quest = meta.get("quest") if isinstance(meta.get("quest"), dict) else {}
        title = quest.get("title") or meta.get("title")
        if not isinstance(title, str) or not title.strip():
            raise InputError(str(meta_path), "missing task title", field="quest.title")
        objectives = quest.get("objectives") or []
        if not isinstance(objectives, list) or not all(isinstance(o, str) for o in objectives):
            raise InputError(str(meta_path), "expected a list of strings", field="quest.objectives")
        content = quest.get("content")
        task = title.strip() + (f"\n{content.strip()}" if isinstance(content, str) and content.strip() else "")

        events: list[RawEvent] = []
        t0: int | None = None
        for n, obj in iter_jsonl(log_path):
            if not isinstance(obj, dict):
                raise InputError(str(log_path), "expected a JSON object", line=n)
            kind = require(obj, "event", str, str(log_path), line=n)
            t = require(obj, "time", (int, float), str(log_path), line=n)
            data = obj.get("data", {})
            if not isinstance(data, dict):
                raise InputError(str(log_path), "expected an object", line=n, field="data")
            t = int(t)
            t0 = t if t0 is None else min(t0, t)
            events.append(RawEvent(t_ms=t, kind=kind, data=data, line=n))
        assert t0 is not None  # iter_jsonl rejects empty files
        last = max(e.t_ms for e in events)
        for e in events:
            e.t_ms -= t0
        actions = extract_actions(events, config.extract)
        monitor = meta.get("primary_monitor") if isinstance(meta.get("primary_monitor"), dict) else {}
        return Session(
            ref=ref,
            task=task,
            objectives=list(objectives),
            app=quest.get("app") if isinstance(quest.get("app"), str) else None,
            actions=actions,
            duration_s=round((last - t0) / 1000, 3),
            reward=None,  # Clones desktop meta carries a payout, not a graded outcome
            video=str(folder / VIDEO) if (folder / VIDEO).exists() else None,  # frame 0 = first event
            meta={
                "start_ms": t0,
                "platform": meta.get("platform"),
                "locale": meta.get("locale"),
                "monitor": {"width": monitor.get("width"), "height": monitor.get("height"),
                            # newer recorders may add it; it places input points on the video
                            **({"scale_factor": monitor["scale_factor"]} if "scale_factor" in monitor else {})},
                "task_id": quest.get("task_id"),
                "n_events": len(events),
                "completed": meta.get("status") == "completed",
                "has_video": (folder / VIDEO).exists(),
            },
        )
