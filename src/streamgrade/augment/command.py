"""``streamgrade augment OUT``: augment the recordings an output folder already holds, and
``[augment] enabled`` in a grade run (:func:`augment_job`).

The command reads every graded recording session (Clones desktop and web, OWA, DuckTrack:
:data:`streamgrade.exports.computer_use.CU_FORMATS`) under ``OUT/sessions/`` or in the
session store, augments it (:func:`.session.augment_recording`) and writes results.json
again atomically with its ``augment`` object (a stored session's row is rewritten in one
transaction, :func:`streamgrade.sinks.session_store.replace_results`), holding OUT's lock
(:mod:`streamgrade.sinks.lock`) meanwhile. A session
already augmented in the same mode and version is skipped
(``force`` redoes it), so a re-run sends no request. Sessions run ``concurrency`` at once;
the judge's limits apply across them. Once the run budget is spent, the rest is left as it
is (``budget_pending``).

In a grade run (:func:`augment_job`) the same happens to a job after its frames are taken
and before it is judged: results.json gets the ``augment`` object, and the judge's evidence
gets each caption and transition after its action line (:func:`annotate_chunks`).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anyio
import msgspec

from ..config import Config
from ..errors import BudgetExceeded
from ..exports.computer_use import CU_FORMATS
from ..exports.cu_actions import platform_of
from ..exports.store import Sessions
from ..models import Action, Chunk, Usage
from ..sinks.atomic import write_atomic
from ..sinks.layout import Layout
from ..sinks.ledger import Ledger
from ..sinks.lock import OutputLock
from ..sinks.session_store import replace_results
from .captions import PROMPT_VERSION
from .session import TEMPLATE_VERSION, Recording, augment_recording

log = logging.getLogger("streamgrade.augment")


@dataclass
class AugmentRun:
    """What ``augment`` did: ``sessions`` (recordings considered), ``augmented`` now,
    ``cached`` (already augmented), ``failed`` (session id, reason), ``budget_pending``,
    ``actions`` captioned, ``with_frames`` of them with both frames, ``requests`` sent,
    ``usage``; ``mode`` llm or offline; ``other_formats`` sessions that are not recordings."""

    mode: str = "offline"
    sessions: int = 0
    augmented: int = 0
    cached: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    budget_pending: int = 0
    actions: int = 0
    with_frames: int = 0
    requests: int = 0
    usage: Usage = field(default_factory=Usage)
    other_formats: int = 0


def current(augment: Any, llm: bool) -> bool:
    """Whether a stored ``augment`` object is of this mode's current version."""
    return isinstance(augment, dict) and augment.get("version") == (PROMPT_VERSION if llm else TEMPLATE_VERSION)


def recording_of(results: dict[str, Any], fmt: str, folder: Path, frames_dir: Path) -> Recording:
    """The :class:`Recording` of a results.json. Raises msgspec.ValidationError on bad actions."""
    session = results.get("session") or {}
    meta = session.get("meta") or {}
    return Recording(session_id=str(session.get("session_id") or folder.name), task=str(session.get("task") or ""),
                     app=session.get("app"), platform=platform_of(fmt, meta),
                     actions=msgspec.convert(results.get("actions") or [], list[Action]),
                     steps=[s for s in results.get("steps") or [] if isinstance(s, dict)],
                     video=results.get("video"), folder=folder, frames_dir=frames_dir, format=fmt)


async def run_augment(out: str | Path, cfg: Config, judge: Any = None, *, force: bool = False,
                      max_sessions: int | None = None, concurrency: int = 8,
                      on_progress: Callable[[AugmentRun], None] | None = None) -> AugmentRun:
    """Augment OUT's recordings (see the module docstring). ``judge`` with ``ask`` captions
    through the LLM, None offline. Holds OUT's lock meanwhile (a grade or watch rewriting
    results.json at the same time would undo the work): raises
    :class:`~streamgrade.sinks.lock.OutputLocked` when another process holds it, OSError
    when OUT has no sessions folder."""
    layout = Layout(out)
    if not layout.sessions.is_dir() and not layout.ledger.is_file():
        raise OSError(f"{layout.sessions}: no sessions folder (grade into {layout.out} first)")
    llm = judge is not None
    run = AugmentRun(mode="llm" if llm else "offline")
    todo: list[tuple[Path, dict[str, Any], bool]] = []
    with Sessions(layout.out) as sessions:  # session folders and the session store
        for folder, rec, stored in sessions.entries():
            if rec.get("source_format") not in CU_FORMATS:
                run.other_formats += 1
                continue
            if rec.get("status") != "graded":
                continue
            run.sessions += 1
            if max_sessions is None or len(todo) < max_sessions:
                todo.append((folder, rec, stored))
    limiter = anyio.CapacityLimiter(concurrency)
    stopped = False
    ledger: Ledger | None = None  # opened under the lock when a stored session is augmented

    async def one(folder: Path, rec: dict[str, Any], stored: bool) -> None:
        async with limiter:
            await _one(folder, rec, stored)
        if on_progress is not None:
            on_progress(run)

    def read_stored(sid: str) -> dict[str, Any]:
        with Sessions(layout.out) as sessions:
            found = sessions.files(sid, None, True, sft=False)
        if found is None:
            raise OSError(f"{layout.ledger}: no results.json of {sid} in the session store")
        return found[0]

    async def _one(folder: Path, rec: dict[str, Any], stored: bool) -> None:
        nonlocal stopped
        sid = str(rec["session_id"])
        path = layout.ledger if stored else folder / "results.json"
        recording = None
        try:
            results = read_stored(sid) if stored \
                else json.loads(await anyio.Path(path).read_text(encoding="utf-8"))
            if not force and current(results.get("augment"), llm):
                run.cached += 1
                return
            if stopped:
                run.budget_pending += 1
                return
            recording = recording_of(results, str(rec.get("source_format")), folder, layout.frames_dir(sid))
            aug = await augment_recording(recording, cfg, judge)
        except BudgetExceeded as exc:
            if not stopped:
                log.warning("%s; no new requests are sent", exc)
            stopped = True
            run.budget_pending += 1
            if recording is not None:
                run.usage.add(recording.usage)
            return
        except (OSError, ValueError, msgspec.ValidationError) as exc:
            run.failed.append((sid, f"{path}: {exc}"))
            return
        results["augment"] = aug
        if stored:
            try:
                assert ledger is not None
                replace_results(ledger.db, ledger.path, sid, results)
            except (sqlite3.Error, ValueError) as exc:
                run.failed.append((sid, f"{path}: {exc}"))
                return
        else:
            data = json.dumps(results, ensure_ascii=False, indent=2).encode("utf-8")
            await anyio.to_thread.run_sync(write_atomic, path, data)
        run.augmented += 1
        run.actions += len(aug["actions"])
        run.with_frames += sum(1 for a in aug["actions"] if a["before"] and a["after"])
        run.requests += aug["requests"]
        run.usage.add(recording.usage)

    with OutputLock(layout.out, "augment"):  # a grade or watch rewriting results.json meanwhile would be undone
        if any(stored for _, _, stored in todo):
            ledger = Ledger(layout.ledger)
        try:
            async with anyio.create_task_group() as tg:
                for folder, rec, stored in todo:
                    tg.start_soon(one, folder, rec, stored)
        finally:
            if ledger is not None:
                ledger.close()
    return run


def annotate_chunks(chunks: list[Chunk], augment: dict[str, Any]) -> int:
    """Append each action's caption and transition to its line in ``chunks``
    (``[2.9s] type("coucou")  # types "coucou" in Word; screen: a small region changed``)
    and add their tokens; returns the lines annotated. Chunks of a condensed session
    (``line_chars`` set) are left as they are: their lines are no longer one per action."""
    if any(c.line_chars for c in chunks):
        return 0
    notes = {e["action"]: e for e in augment.get("actions") or []}
    n, k = 0, 0
    for c in chunks:
        for j, line in enumerate(c.lines):
            e = notes.get(k)
            k += 1
            if e is None:
                continue
            extra = f"  # {e['caption']}" + (f"; screen: {e['transition']}" if e.get("transition") else "")
            c.lines[j] = line + extra
            c.tokens += (len(extra) + 3) // 4
            n += 1
    return n


async def augment_job(job: Any, cfg: Config, judge: Any, layout: Layout) -> None:
    """``[augment] enabled`` in a grade run: augment a recording job before it is judged
    (``job.augment`` goes to results.json; captions join the chunk lines the judge reads).
    The LLM is used when the run's judge is one (``mode`` auto) or always (llm); a job
    without a session or a transcript job is left alone. Raises BudgetExceeded."""
    s = job.session
    if s is None or s.has_transcript or not s.actions:
        return
    mode = cfg.augment.mode
    client = judge if hasattr(judge, "ask") and mode != "offline" else None
    rec = Recording(session_id=job.ref.session_id, task=s.task, app=s.app, platform=platform_of(job.ref.format, s.meta),
                    actions=s.actions, steps=job.steps, video=job.video, folder=layout.session_dir(job.ref.session_id),
                    frames_dir=layout.frames_dir(job.ref.session_id), format=job.ref.format)
    job.augment = await augment_recording(rec, cfg, client)
    annotate_chunks(job.chunks, job.augment)


__all__ = ["AugmentRun", "run_augment", "augment_job", "annotate_chunks", "recording_of", "current"]
