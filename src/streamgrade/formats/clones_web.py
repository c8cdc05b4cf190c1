"""Clones web recordings: ``<id>.events.json`` (quest, hint, reasoning and reward events),
with the race record from a ``*race_sessions*.json`` export beside it when present.

Source: the Viralmind/Clones web gym (clones-ai/clones-quality-agent,
data/tests/extraction/); schema in ../shared/corpus/clones/PROVENANCE.md. The events file is
``{session_id, challenge, category, events: [{type, message, timestamp (epoch ms),
metadata?}]}``; the race record (a Mongo export list) gives ``prompt`` (the task) and
``created_at`` (the time base). When ``<id>.guac`` (the Guacamole recording of input and
screen) lies beside it, its mouse and key instructions give the session's actions, and its
video ``<id>.guac.m4v`` (guacenc's output, time 0 at the first ``sync``) gives the frames.

One timeline: the events' times are epoch ms, and so is the recording's first ``sync``
(guacd's clock, see :func:`~streamgrade.extract.guac.first_sync_ms`). The session starts at
the earliest of the race's ``created_at``, the first event and the first ``sync``; the
actions (ms from the first ``sync``) are moved by the recording's start on that timeline and
``video_offset_ms`` is minus that start, so that a hint given before an action comes before
it. A first ``sync`` more than :data:`MAX_CLOCK_GAP_MS` from the events is taken as another
clock: the recording then starts with the session (``meta["guac_start_ms"]``, and
``meta["guac_clock"]`` "events" or "other").

What the judge sees: the task, the quests and the hints given during the session. It does not
see ``reasoning`` and ``reward`` events: they are the live Clones judge's own assessment.
The record's ``reward`` is the mean of the reward events' ``scoreValue`` (0-1).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..models import Message, Session, SessionRef
from ..inputs import max_file_bytes
from .base import load_json, require

NAME = "clones-web"
SUFFIX = ".events.json"
MAX_CLOCK_GAP_MS = 6 * 3600 * 1000
"""A recording whose first ``sync`` is further than this (ms) from the session's events is
not on their clock (guacd's clock is epoch ms; any other is treated as unrelated)."""


def _race_files(folder: Path, names: list[str]) -> list[str]:
    return sorted(str(folder / n) for n in names if "race_sessions" in n and n.endswith(".json"))


class ClonesWeb:
    """The Clones web format (see module docstring)."""

    name = NAME

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """Each ``<id>.events.json`` is one session; race-session exports and the .guac
        recordings beside it are part of its files."""
        out = []
        races = _race_files(folder, names)
        for n in sorted(names):
            if n.endswith(SUFFIX):
                sid = n[: -len(SUFFIX)]
                files = (str(folder / n), *races, str(folder / f"{sid}.guac"), str(folder / f"{sid}.guac.m4v"))
                out.append(SessionRef(session_id=sid, format=NAME, path=str(folder / n), files=files))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the events file and the race record. Raises InputError naming the file and
        the field (``events[3].timestamp``) of bad input."""
        path = ref.path
        doc = load_json(path)
        if not isinstance(doc, dict):
            raise InputError(path, "expected a JSON object")
        events = require(doc, "events", list, path)
        if not events:
            raise InputError(path, "no events", field="events")
        parsed: list[tuple[int, str, str, dict[str, Any]]] = []
        for i, ev in enumerate(events):
            where = f"events[{i}]"
            if not isinstance(ev, dict):
                raise InputError(path, "expected an object", field=where)
            kind = require(ev, "type", str, path, where=where)
            ts = require(ev, "timestamp", (int, float), path, where=where)
            msg = ev.get("message") if isinstance(ev.get("message"), str) else ""
            meta = ev.get("metadata") if isinstance(ev.get("metadata"), dict) else {}
            parsed.append((int(ts), kind, msg, meta))
        parsed.sort(key=lambda p: p[0])

        race = self._race(ref, doc.get("session_id") or ref.session_id)
        t0 = parsed[0][0]
        created = _mongo_date(race.get("created_at")) if race else None
        if created is not None and created <= t0:
            t0 = created
        sizes: list[tuple[int, int, int]] = []
        actions, sync0 = self._guac_actions(path, config, sizes)
        on_clock = sync0 is not None and t0 - MAX_CLOCK_GAP_MS <= sync0 <= parsed[-1][0] + MAX_CLOCK_GAP_MS
        if on_clock:
            t0 = min(t0, sync0)
        shift = sync0 - t0 if on_clock else 0  # session time of the recording's time 0
        for a in actions:
            a.t_ms += shift
            if a.end_ms is not None:
                a.end_ms += shift
        quests = [m for _, k, m, _ in parsed if k == "quest" and m]
        prompt = race.get("prompt") if race and isinstance(race.get("prompt"), str) else None
        task = prompt or (quests[0] if quests else None)
        if not task:
            raise InputError(path, "no task: neither a race prompt nor a quest event", field="events[].type=quest")
        context = [
            Message(role="user", content=("Quest: " if k == "quest" else "Hint: ") + m, timestamp=t - t0)
            for t, k, m, _ in parsed
            if k in ("quest", "hint") and m
        ]
        scores = [m.get("scoreValue") for _, k, _, m in parsed if k == "reward"]
        scores = [float(s) for s in scores if isinstance(s, (int, float)) and not isinstance(s, bool)]
        return Session(
            ref=ref,
            task=task,
            objectives=quests,
            app=doc.get("challenge") if isinstance(doc.get("challenge"), str) else None,
            actions=actions,
            # the screen video of the Guacamole recording: time 0 at its first sync
            video=path[: -len(SUFFIX)] + ".guac.m4v" if Path(path[: -len(SUFFIX)] + ".guac.m4v").exists() else None,
            video_offset_ms=float(-shift),
            events=context,
            duration_s=round(max(parsed[-1][0] - t0, max((a.end_ms or a.t_ms for a in actions), default=0)) / 1000, 3),
            reward=round(sum(scores) / len(scores), 4) if scores else None,
            meta={
                "start_ms": t0,
                "category": doc.get("category"),
                "n_events": len(parsed),
                "has_guac": Path(path[: -len(SUFFIX)] + ".guac").exists(),
                # where the recording starts (ms into the session), and whether its clock was the events'
                "guac_start_ms": shift if sync0 is not None else None,
                "guac_clock": None if sync0 is None else ("events" if on_clock else "other"),
                "race_status": race.get("status") if race else None,
                # the remote display (px): the Guacamole recording's first layer-0 size
                "display": {"width": sizes[0][1], "height": sizes[0][2]} if sizes else None,
                "display_resized": len({s[1:] for s in sizes}) > 1,
            },
        )

    def _guac_actions(self, events_path: str, config: Config,
                      sizes: list | None = None) -> tuple[list, int | None]:
        """(actions, first sync in ms) of ``<id>.guac`` beside the events file, when there
        is one (else ([], None)): the Guacamole recording's mouse and key instructions (see
        extract/guac.py), times in ms from its first ``sync``; ``sizes`` gets the display
        sizes it records. InputError names the file and
        byte offset of a malformed recording."""
        guac = events_path[: -len(SUFFIX)] + ".guac"
        if not Path(guac).exists():
            return [], None
        from ..extract.guac import GuacError, actions_from_guac, first_sync_ms

        try:
            return actions_from_guac(guac, config.extract, sizes), first_sync_ms(guac)
        except GuacError as exc:
            raise InputError(guac, str(exc)) from None
        except OSError as exc:
            raise InputError(guac, f"cannot read: {exc.strerror}") from None

    def _race(self, ref: SessionRef, session_id: str) -> dict[str, Any] | None:
        for f in ref.files:
            if "race_sessions" not in Path(f).name or not Path(f).exists():
                continue
            records = load_json(f, max_file_bytes())  # one export for many sessions
            if isinstance(records, dict):
                records = [records]
            if not isinstance(records, list):
                raise InputError(f, "expected a list of race records")
            for rec in records:
                if isinstance(rec, dict) and _mongo_id(rec.get("_id")) == session_id:
                    return rec
        return None


def _mongo_id(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("$oid")
    return value if isinstance(value, str) else None


def _mongo_date(value: Any) -> int | None:
    """Epoch ms of a Mongo extended-JSON date ({"$date": "2025-01-23T20:12:17.306Z"})."""
    if isinstance(value, dict):
        value = value.get("$date")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, str):
        try:
            return int(datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp() * 1000)
        except ValueError:
            return None
    return None
