"""The file writer actor: each session's record and files, on their way to the committer.

A writer takes the sessions waiting (up to :data:`~streamgrade.streams.HANDOFF`) and, in
one worker thread, builds each one's :class:`~streamgrade.models.ScoreRecord`
(:func:`.records.build_record`) and writes its folder atomically or encodes its session
store row (:func:`.records.write_session`, as ``[sinks] session_files`` says). A session
whose files changed while it was graded (a newer version was admitted: ``current`` has
another fingerprint) is dropped here, logged as superseded.
"""

from __future__ import annotations

import logging
from typing import Callable

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..calibration.model import CalibrationModel
from ..config import Config
from ..job import Job
from ..models import JudgeInfo
from ..run_stats import RunStats
from ..streams import HANDOFF, waiting
from .committer import Written
from .layout import Layout
from .records import build_record, write_session
from .session_store import StoreEncoder

log = logging.getLogger("streamgrade.pipeline")


def write_all(jobs: list[Job], *, layout: Layout, config: Config, judge: JudgeInfo,
              calibration: CalibrationModel | None, encoder: StoreEncoder | None) -> list[Written]:
    """Blocking: each job's record and files (:func:`.records.write_session`), one
    :class:`Written` per job in order; a job whose record and outputs were built where it
    was graded (``job.built``, a Ray actor) has them written as they are. A write that fails
    (disk full, read-only) gives its Written an ``error`` (OSError) instead of raising."""
    out = []
    weights = config.rubric.weights()
    for job in jobs:
        if job.built is not None:
            record, encoded = job.built
        else:
            record, encoded = build_record(job, judge, weights, calibration), None
        try:
            res = write_session(layout, job, record, config, encoder, encoded)
        except OSError as exc:
            out.append(Written(job, record, [], exc))
        else:
            out.append(Written(job, record, res.lines, None, res.stored))
    return out


async def write_files(recv: ObjectReceiveStream[Job], send: ObjectSendStream[Written], *,
                      write: Callable[[list[Job]], list[Written]], current: dict[str, str], stats: RunStats) -> None:
    """A file writer (the pipeline runs ``pipeline.file_writers`` of them): jobs from
    ``recv``, what is waiting at once, through ``write`` (blocking, e.g. :func:`write_all`
    with its collaborators bound) in one worker thread, each result to ``send``. A job
    whose fingerprint is no longer ``current``'s for its session is dropped (superseded)
    and leaves ``stats.in_flight``. Closes both streams when ``recv`` ends."""
    async with recv, send:
        async for first in recv:
            jobs = []
            for job in (first, *waiting(recv, HANDOFF - 1)):  # one thread hand-off for what is waiting
                if current.get(job.ref.session_id) != job.ref.fingerprint:
                    stats.in_flight -= 1
                    log.info("superseded %s: its files changed while it was graded", job.ref.session_id,
                             extra={"session": job.ref.session_id, "file": job.ref.path})
                    continue
                jobs.append(job)
            if jobs:
                for written in await anyio.to_thread.run_sync(write, jobs):
                    await send.send(written)


__all__ = ["write_all", "write_files"]
