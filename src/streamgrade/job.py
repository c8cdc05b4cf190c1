"""A session on its way through the pipeline, from admission to the sink."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from .models import Chunk, Message, Session, SessionRef, Usage, Verdict


@dataclass
class Job:
    """One session in flight: its ``ref``; once assembled its ``session``, SFT ``messages``
    (Clones shape, or OpenAI chat dicts for agents), ``chunks`` and ``frames``
    (``{t_ms, path (relative to the session folder), width, height}``, px); once graded its
    ``verdict``; or, when it failed, ``error`` (naming the file and line or field),
    ``error_kind`` (input | judge | internal) and the ``usage`` its judge calls spent.
    Recordings also get ``video`` (``{path, offset_ms, width, height}``: the recording, the
    video time of session time 0, its size in px or None) and ``steps`` (one "before"
    frame per action group for the computer-use export: ``{t_ms, path, width, height,
    actions: [indices into session.actions]}``, see :mod:`streamgrade.extract.steps`);
    with ``[augment] enabled``, ``augment``: captions, state transitions and hints
    (:mod:`streamgrade.augment`), written to results.json. ``built``: its record and
    encoded outputs, ``(ScoreRecord, sinks.records.EncodedSession)``, when they were built
    where it was graded (a Ray actor): the file writer then only writes them.
    For the latency metrics: ``admitted_at`` (``time.monotonic()`` s when admitted) and
    ``last_write`` (the newest modification time of its files when assembled, s since the
    epoch; None when unknown)."""

    ref: SessionRef
    session: Session | None = None
    messages: list[Message] | list[dict] = field(default_factory=list)
    chunks: list[Chunk] = field(default_factory=list)
    verdict: Verdict | None = None
    error: str | None = None
    error_kind: str | None = None
    usage: Usage | None = None
    frames: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    video: dict | None = None
    admitted_at: float = field(default_factory=time.monotonic)
    last_write: float | None = None
    augment: dict | None = None
    built: tuple[Any, Any] | None = None


def newest_mtime(files: tuple[str, ...] | list[str]) -> float | None:
    """The newest modification time (s since the epoch) of ``files``; files that cannot be
    stat'ed are left out; None when none can. Blocking (a stat per file)."""
    newest = None
    for f in files:
        try:
            t = os.stat(f).st_mtime
        except OSError:
            continue
        newest = t if newest is None else max(newest, t)
    return newest


__all__ = ["Job", "newest_mtime"]
