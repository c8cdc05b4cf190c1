"""``grade --engine ray``: the local pipeline with its assemble and grade stages on a Ray
Data actor pool.

    scan -> admit (ledger) -> queue ==> read -> GradeActor x N ==> jobs -> write files -> commit
    (driver)                           (Ray: assemble + grade)        (driver)

The driver (this process) keeps everything that touches OUT: the scan, the admission
through the ledger (pending marks), the writing of the per-session files, the JSONL exports
and the ledger commits, through the same actors as the local engine
(:mod:`streamgrade.sinks.writers` and :mod:`streamgrade.sinks.committer`, wired by
:class:`~streamgrade.pipeline.Pipeline`): only the assemble and grade stages
(:mod:`streamgrade.stages`, started by :meth:`~streamgrade.pipeline.Pipeline._start_graders`) are replaced. So OUT lives on the
driver's disk, and the exactly-once rule is the local one: a session is done once its
ledger commit is; a run killed at any moment (kill -9 included) leaves the rest pending,
and the next run grades them.

What Ray runs: a dataset read from a ``ray.util.queue.Queue`` (:class:`.ray_udf.QueueSource`)
the driver feeds with blocks of admitted session refs (``[ray] block_rows`` each), mapped by
:class:`.ray_udf.GradeActor` in an actor pool (``[ray] actors``, autoscaling up to
``max_actors``; ``blocks_per_actor`` blocks at once each); each session comes back as
its record and its outputs already encoded (what the local file writer would build, the
failed record of an input, judge or internal failure included), and streams to the
driver's writers (``iter_batches``), which write those bytes, block by block in any
order. A full queue holds back admission, admission holds back the scan: memory stays
flat.

The provider's limits are shared by the actors: ``rpm``, ``tpm`` and ``max_cost_usd`` of
``[openai]`` and ``[anthropic]`` are divided by the largest pool size
(:func:`split_limits`); ``max_concurrency`` stays per actor.

If the dataset itself fails (Ray lost a node and gave up, a worker cannot import
streamgrade), the sessions in flight and those still to come are counted as failed with
that error and stay pending in the ledger for the next run.
"""

from __future__ import annotations

import itertools
import logging
import os
from pathlib import Path
from typing import Any

import anyio
import msgspec
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from ..config import API_KEY_ENV, Config
from ..job import Job
from ..judges import ANTHROPIC_KEY_ENV, resolve_kind
from ..pipeline import Pipeline
from ..sinks.atomic import write_files_atomic
from .ray_cluster import RayCluster

log = logging.getLogger("streamgrade.ray")

#: Blocks of session refs the queue holds before the driver waits.
QUEUE_BLOCKS = 8
#: Environment variables holding API keys, sent to the actors when set on the driver.
KEY_VARS = (*API_KEY_ENV, ANTHROPIC_KEY_ENV)

__all__ = ["RayPipeline", "split_limits"]


def split_limits(config: Config, actors: int) -> Config:
    """The actors' config: ``config`` with ``rpm``, ``tpm`` and ``max_cost_usd`` of
    ``[openai]`` and ``[anthropic]`` divided among ``actors`` (rpm and tpm rounded down, at
    least 1; 0 stays 0, "unknown"), and ``run.judge`` resolved here (``auto`` must not
    resolve otherwise on a worker whose environment differs); the rest unchanged."""

    def share(c: Any) -> Any:
        return msgspec.structs.replace(
            c, rpm=_share(c.rpm, actors), tpm=_share(c.tpm, actors),
            max_cost_usd=None if c.max_cost_usd is None else c.max_cost_usd / actors)

    return msgspec.structs.replace(config, openai=share(config.openai), anthropic=share(config.anthropic),
                                   run=msgspec.structs.replace(config.run, judge=resolve_kind(config)))


def _share(limit: int, actors: int) -> int:
    return 0 if limit <= 0 else max(1, limit // actors)


class RayPipeline(Pipeline):
    """The pipeline with the Ray engine (module docstring). Same constructor and use as
    :class:`~streamgrade.pipeline.Pipeline`; ``open()`` also starts or joins Ray (raises
    ConfigError when Ray is missing or unreachable) and ``close()`` lets go of it."""

    def __init__(self, config: Config, out_dir: str | Path, judge: Any, **kwargs: Any):
        super().__init__(config, out_dir, judge, **kwargs)
        self.cluster = RayCluster(config.ray, log_level=_log_level())
        self._sent: dict[int, Job] = {}
        self._keys = itertools.count()

    # -- lifecycle ----------------------------------------------------------------------
    def open(self, command: str = "grade") -> None:
        super().open(command)
        try:
            self.cluster.start()
        except BaseException:
            super().close()
            raise
        log.info("%s", self.describe())

    def describe(self) -> str:
        """One line: the Ray used, the actor pool, and how the provider limits are shared."""
        rc, n = self.config.ray, self.config.ray.pool_size()
        pool = f"{rc.actors} actors" if n == rc.actors else f"{rc.actors} to {n} actors"
        return (f"engine: ray, {self.cluster.describe()}; {pool}, {rc.cpus_per_actor:g} CPU each"
                f"{_limits_note(self.config, n)}")

    def close(self) -> None:
        super().close()
        self.cluster.shutdown()

    # -- the stages Ray replaces --------------------------------------------------------
    def _start_graders(self, tg: TaskGroup, jobs: ObjectReceiveStream[Job], grade_tx: ObjectSendStream[Job],
                       grade_rx: ObjectReceiveStream[Job], done: ObjectSendStream[Job], workers: int) -> None:
        tg.start_soon(self._dispatch, jobs.clone(), done.clone())

    async def _dispatch(self, jobs: ObjectReceiveStream[Job], done: ObjectSendStream[Any]) -> None:
        async with jobs, done:
            try:
                queue, dataset = await anyio.to_thread.run_sync(self._dataset)
            except Exception as exc:
                await self._dataset_failed(f"the dataset cannot be made: {type(exc).__name__}: {exc}", jobs)
                return
            failure: str | None = None
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._feed, jobs, queue)
                failure = await anyio.to_thread.run_sync(self._read_results, dataset, done, abandon_on_cancel=True)
                if failure is not None:
                    tg.cancel_scope.cancel()
            if failure is not None or self._sent:
                await self._dataset_failed(failure or "no result came back", jobs)
        # Ray is done with: it stops while the writers, the committer and the end-of-run
        # rebuilds finish (close() waits for it)
        self.cluster.shutdown_soon()

    def _dataset(self) -> tuple[Any, Any]:
        """The queue the driver feeds and the dataset that grades what it holds (blocking)."""
        import ray.data
        from ray.util.queue import Queue

        from .ray_udf import GradeActor, QueueSource, Secrets

        rc = self.config.ray
        ctx = ray.data.DataContext.get_current()
        ctx.target_max_block_size = 1  # every block moves on as soon as it is made (one row each)
        ctx.memory_usage_poll_interval_s = None  # no USS-polling thread in every map task
        queue = Queue(maxsize=QUEUE_BLOCKS, actor_options={"num_cpus": 0})
        pool = {"min_size": rc.actors, "max_size": rc.pool_size()} if rc.pool_size() > rc.actors else {"size": rc.actors}
        compute = ray.data.ActorPoolStrategy(**pool, max_concurrent_calls_per_actor=rc.blocks_per_actor)
        keys = Secrets({k: v for k in KEY_VARS if (v := os.environ.get(k))})
        dataset = ray.data.read_datasource(QueueSource(queue), override_num_blocks=1, num_cpus=0).map_batches(
            GradeActor, batch_size=1, batch_format="pyarrow", compute=compute, num_cpus=rc.cpus_per_actor,
            fn_constructor_kwargs={"config": split_limits(self.config, rc.pool_size()),
                                   "labels": self.labels, "secrets": keys,
                                   "log_level": _log_level(), "judge_info": self.judge.info,
                                   "calibration": self.calibration})
        return queue, dataset

    async def _feed(self, jobs: ObjectReceiveStream[Job], queue: Any) -> None:
        """Admitted jobs to the queue, ``[ray] block_rows`` at most per block (what is
        waiting goes at once); None at the end."""
        from .ray_udf import encode_block

        rows = self.config.ray.block_rows
        async for job in jobs:
            block = [job]
            while len(block) < rows:
                try:
                    block.append(jobs.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            keys = [next(self._keys) for _ in block]
            self._sent.update(zip(keys, block))
            await anyio.to_thread.run_sync(queue.put, encode_block(keys, [j.ref for j in block]),
                                           abandon_on_cancel=True)
        await anyio.to_thread.run_sync(queue.put, None, abandon_on_cancel=True)

    def _read_results(self, dataset: Any, done: ObjectSendStream[Job]) -> str | None:
        """Iterate the dataset (a worker thread), handing each block's results to the loop;
        returns None at its end, or the error that failed it. (A block whose results do not
        unpickle leaves its sessions in ``_sent``: they are failed at the end.)"""
        from .ray_udf import decode_results

        try:
            for batch in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
                for cell in batch.column("results").to_pylist():
                    try:
                        results = decode_results(cell)
                    except Exception as exc:
                        log.error("ray: a block of results cannot be read: %r", exc)
                        continue
                    anyio.from_thread.run(self._deliver, results, done)
        except Exception as exc:
            return f"{type(exc).__name__}: {exc}"
        return None

    async def _deliver(self, results: list[Any], done: ObjectSendStream[Job]) -> None:
        """One block's results (on the loop): each job, as the local stages leave it, to
        the file writers; or the budget's way."""
        for res in results:
            job = self._sent.pop(res.key, None)
            if job is None:
                log.debug("ray: session %d came back twice (a retried task); the second is dropped", res.key)
                continue
            if res.budget is not None:  # as the local grader: pending for a later run
                if not self._stopping:
                    log.warning("%s; no new sessions are sent", res.budget, extra={"session": job.ref.session_id})
                    self.stop()
                self.stats.in_flight -= 1
                self.stats.budget_pending += 1
                continue
            job.error, job.error_kind, job.last_write = res.error, res.error_kind, res.last_write
            if res.record is not None:
                job.built = (res.record, res.encoded)  # the file writer only writes them
            if res.labelled and self.labels is not None:
                self.labels.used += 1
            if res.frames:
                try:
                    await anyio.to_thread.run_sync(self._write_frames, job.ref.session_id, res.frames)
                except OSError as exc:  # the actor's record no longer holds: a failed one is built here
                    where = getattr(exc, "filename", None) or str(self.layout.frames_dir(job.ref.session_id))
                    job.error, job.error_kind = f"{where}: cannot write frames: {exc.strerror or exc}", "internal"
                    job.built = None
            await done.send(job)

    def _write_frames(self, session_id: str, frames: dict[str, bytes]) -> None:
        """Blocking: a session's frames into its ``frames/`` folder (atomically, not fsynced:
        the committer's syncfs makes them durable before the ledger names the session done)."""
        write_files_atomic(self.layout.frames_dir(session_id), frames, fsync=False)

    async def _dataset_failed(self, failure: str, jobs: ObjectReceiveStream[Job]) -> None:
        """Count what was sent and never came back, and what is still to come, as failed;
        they stay pending in the ledger. No new sessions are taken."""
        log.error("ray: the dataset failed: %s; sessions in flight stay pending for the next run", failure)
        self.stop()
        lost = list(self._sent.values())
        self._sent.clear()
        async for job in jobs:
            lost.append(job)
        for job in lost:
            self.stats.in_flight -= 1
            self.stats.failed += 1
            if len(self.stats.failures) < 1000:
                self.stats.failures.append((job.ref.session_id, f"{job.ref.path}: not graded: Ray: {failure}"))
            if self._current.get(job.ref.session_id) == job.ref.fingerprint:
                del self._current[job.ref.session_id]


def _log_level() -> str:
    """The level the streamgrade loggers have on the driver (the actors use the same)."""
    return logging.getLevelName(logging.getLogger("streamgrade").getEffectiveLevel())


def _limits_note(config: Config, actors: int) -> str:
    """How the judge's provider limits are shared, for the start line ("" when none is set)."""
    kind = resolve_kind(config)
    if kind not in ("openai", "anthropic"):
        return ""
    c = getattr(config, kind)
    parts = [f"{kind}.{key} {getattr(c, key)} -> {_share(getattr(c, key), actors)}"
             for key in ("rpm", "tpm") if getattr(c, key)]
    if c.max_cost_usd is not None:
        parts.append(f"{kind}.max_cost_usd {c.max_cost_usd:g} -> {c.max_cost_usd / actors:g}")
    return f"; provider limits shared by {actors} actors, each: {', '.join(parts)}" if parts else ""
