"""The local assemble and grade actors (the stages between admission and the file
writers; the Ray engine replaces them, :mod:`streamgrade.engines.ray_engine`).

- :func:`assemble`: takes the jobs waiting (up to :data:`~streamgrade.streams.HANDOFF`)
  and prepares them in one worker thread (:func:`prepare_all`: read and parse the files,
  format the SFT messages, cut the chunks); a job with an error goes straight to ``done``
  (the file writers), the others to the graders.
- :func:`grade`: the judge grades each job (with ``[augment] enabled``, captions join the
  evidence first); a judge error or a bug becomes the job's error (a failed record); a
  spent budget leaves the session pending for a later run and stops the source.
"""

from __future__ import annotations

import logging
from typing import Callable

import anyio
import msgspec
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from .assemble import prepare
from .augment import augment_job
from .config import Config
from .errors import BudgetExceeded, InputError, JudgeError
from .formats import FORMATS
from .job import Job
from .judges.base import Judge
from .labels import Labels
from .models import Usage
from .run_stats import RunStats
from .sinks.layout import Layout
from .streams import HANDOFF, waiting

log = logging.getLogger("streamgrade.pipeline")


def prepare_all(jobs: list[Job], config: Config, layout: Layout, labels: Labels | None) -> None:
    """Blocking: assemble each job (:func:`.assemble.prepare`); bad input or a bug
    becomes the job's error (a failed record), never an exception."""
    for job in jobs:
        try:
            prepare(job, FORMATS[job.ref.format], config, layout, labels)
        except InputError as exc:
            job.error, job.error_kind = str(exc), "input"
        except Exception as exc:  # a bug must not stop the daemon
            log.exception("internal error assembling %s", job.ref.session_id,
                          extra={"session": job.ref.session_id, "file": job.ref.path})
            job.error, job.error_kind = f"{job.ref.path}: internal error: {exc!r}", "internal"


async def assemble(recv: ObjectReceiveStream[Job], grade: ObjectSendStream[Job], done: ObjectSendStream[Job], *,
                   prepare: Callable[[list[Job]], None]) -> None:
    """An assembler: jobs from ``recv``, what is waiting at once, through ``prepare``
    (blocking, e.g. :func:`prepare_all` with its collaborators bound) in one worker thread
    (abandoned on cancel: a read stuck in I/O must not hold up a stop); then each to
    ``done`` when it has an error, else to ``grade``. Closes the streams when ``recv`` ends."""
    async with recv, grade, done:
        async for job in recv:
            jobs = [job, *waiting(recv, HANDOFF - 1)]  # one thread hand-off for what is waiting
            # abandon_on_cancel: a read stuck in I/O must not hold up a stop
            await anyio.to_thread.run_sync(prepare, jobs, abandon_on_cancel=True)
            for job in jobs:
                await (done if job.error else grade).send(job)


async def grade(recv: ObjectReceiveStream[Job], done: ObjectSendStream[Job], *, judge: Judge, config: Config,
                layout: Layout, stats: RunStats, stopping: Callable[[], bool], stop: Callable[[], None]) -> None:
    """A grader: each job from ``recv`` graded by ``judge`` (its ``verdict`` set; with
    ``[augment] enabled`` the captions' usage is added to it), then to ``done``. A
    JudgeError or a bug becomes the job's error (``error_kind`` judge or internal); a
    BudgetExceeded drops the job (it stays pending: ``stats.budget_pending``), and, unless
    ``stopping()`` already, logs it once and calls ``stop()``. Closes both streams when
    ``recv`` ends."""
    async with recv, done:
        async for job in recv:
            assert job.session is not None
            try:
                if config.augment.enabled:  # captions join the evidence (streamgrade.augment)
                    await augment_job(job, config, judge, layout)
                job.verdict = await judge.grade(job.session, job.chunks)
                if job.augment:  # the augment requests are this session's too
                    job.verdict.usage.add(msgspec.convert(job.augment["usage"], Usage))
            except BudgetExceeded as exc:
                # Not a failure of the session: it stays pending for a later run.
                if not stopping():
                    log.warning("%s; no new sessions are sent", exc, extra={"session": job.ref.session_id})
                    stop()
                stats.in_flight -= 1
                stats.budget_pending += 1
                continue
            except JudgeError as exc:
                job.error, job.error_kind = f"{job.ref.path}: judge: {exc}", "judge"
                job.usage = exc.usage if isinstance(exc.usage, Usage) else Usage(requests=exc.attempts)
            except Exception as exc:
                log.exception("internal error grading %s", job.ref.session_id,
                              extra={"session": job.ref.session_id, "file": job.ref.path})
                job.error, job.error_kind = f"{job.ref.path}: internal error in judge: {exc!r}", "internal"
            await done.send(job)


__all__ = ["assemble", "grade", "prepare_all"]
