"""What runs on Ray's workers for ``grade --engine ray``: the read of session refs and the
grading actor (Ray Data "stateful transforms", a callable class in ``map_batches``).

A row is a block of sessions (one binary column): in, ``refs``, the msgpack list of
``[key, SessionRef]`` (``key`` is the driver's handle of the admitted job); out,
``results``, the pickled list of :class:`Graded`. One row per block, because Ray Data cuts
and coalesces blocks by size (``DataContext.target_max_block_size``): with a tiny target
every block is handed on as soon as it is made, and a one-row block cannot be cut. So a
block of ``[ray] block_rows`` sessions is one actor call, and its results travel back
together. :class:`QueueSource` yields the blocks the driver puts on a
``ray.util.queue.Queue`` until it puts ``None``, so the dataset streams: grading starts
with the first admitted sessions, and a full queue holds back the driver's scan.

:class:`GradeActor` is our own async actor UDF (not ``ray.data.llm``, whose
HttpRequestProcessor awaits a batch's requests one by one and fails the whole dataset on one
exhausted retry). One judge per actor, built on its event loop at the first call, so its
HTTP client and rate limiter serve every session the actor grades; the sessions of a block,
and of the blocks the actor holds at once (``[ray] blocks_per_actor``), are graded
concurrently. Each session goes the local pipeline's way, the assemble and grade stages:
:func:`~streamgrade.assemble.prepare` in a worker thread, then the judge; every failure
(input, judge, internal) is kept in the job, as the local stages do, so one bad session
never fails the dataset. The actor also builds what the driver's file writer would: the
session's :class:`~streamgrade.models.ScoreRecord`
(:func:`~streamgrade.sinks.records.build_record`) and its outputs as bytes (its folder's
files or session store documents and its scores.jsonl line,
:func:`~streamgrade.sinks.records.encode_session`), so the driver, which keeps everything
that touches OUT, only writes and commits them, and what travels back is a few byte strings
per session rather than the whole assembled session. Frames taken from a recording are
written to the actor's scratch folder and travel back as bytes. The inputs are read at
the path the driver scanned, so on a cluster they must be visible to every worker at that
same path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import pickle
import shutil
import tempfile
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import anyio
import msgspec
import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from ..assemble import prepare
from ..calibration.model import CalibrationModel
from ..config import Config
from ..errors import BudgetExceeded, InputError, JudgeError
from ..formats import FORMATS, configure_formats
from ..job import Job
from ..models import JudgeInfo, ScoreRecord, SessionRef, Usage
from ..sinks.layout import Layout
from ..sinks.records import EncodedSession, build_record, encode_session

log = logging.getLogger("streamgrade.pipeline")

__all__ = ["GradeActor", "Graded", "QueueSource", "Secrets", "encode_block", "decode_results"]


@dataclass
class Graded:
    """One session, from an actor to the driver: ``record`` its ScoreRecord and
    ``encoded`` its outputs as bytes (:class:`~streamgrade.sinks.records.EncodedSession`),
    or None when the actor could not build them (an internal error: the driver builds the
    failed record); ``error`` and ``error_kind`` as the stages left them (None when
    graded); ``last_write`` the newest mtime of its files (s since the epoch, for the
    latency metric); ``labelled``: its reward came from the labels file; ``frames`` the
    files of its ``frames/`` folder (name -> JPEG bytes). ``budget`` instead: the run
    budget was spent before it was graded (it stays pending)."""

    key: int
    record: ScoreRecord | None = None
    encoded: EncodedSession | None = None
    error: str | None = None
    error_kind: str | None = None
    last_write: float | None = None
    labelled: bool = False
    frames: dict[str, bytes] = field(default_factory=dict)
    budget: str | None = None


_ENCODER = msgspec.msgpack.Encoder()
_BLOCK = msgspec.msgpack.Decoder(list[tuple[int, SessionRef]])


def _internal(key: int, error: str) -> Graded:
    return Graded(key, error=error, error_kind="internal")


def _pickle_block(results: list[Graded]) -> bytes:
    """A block's results, pickled; one that cannot be (an odd object in a verdict) becomes
    its internal failure instead of failing the block."""
    try:
        return pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception:
        safe = []
        for r in results:
            try:
                pickle.dumps(r, protocol=pickle.HIGHEST_PROTOCOL)
                safe.append(r)
            except Exception as exc:
                safe.append(_internal(r.key, f"internal error in the Ray actor: result not picklable: {exc!r}"))
        return pickle.dumps(safe, protocol=pickle.HIGHEST_PROTOCOL)


def encode_block(keys: list[int], refs: list[SessionRef]) -> bytes:
    """A block of sessions, as the driver puts it on the queue (the ``refs`` cell)."""
    return _ENCODER.encode(list(zip(keys, refs)))


def decode_results(data: bytes) -> list[Graded]:
    """The :class:`Graded` list of a ``results`` cell (pickled by our own actors)."""
    return pickle.loads(data)


class Secrets:
    """API keys for the actors (environment variable -> value), sent in the actors'
    constructor arguments (never in a runtime_env, which Ray's dashboard shows). Its repr
    names the variables only."""

    __slots__ = ("_values",)

    def __init__(self, values: dict[str, str]):
        self._values = dict(values)

    def reveal(self) -> dict[str, str]:
        return dict(self._values)

    def __repr__(self) -> str:
        return f"<secrets {', '.join(sorted(self._values)) or 'none'}>"

    __str__ = __repr__


class QueueSource(Datasource):
    """A Ray Data source reading the blocks a driver puts on ``queue`` (a
    ``ray.util.queue.Queue``; :func:`encode_block` bytes each) until it puts None, each as
    a one-row block. One read task: it only relays (give it ``num_cpus=0``)."""

    def __init__(self, queue: Any):
        self.queue = queue

    def estimate_inmemory_data_size(self) -> int | None:
        return None

    def get_read_tasks(self, parallelism: int, **_: Any) -> list[ReadTask]:
        queue = self.queue

        def read() -> Iterator[pa.Table]:
            while True:
                item = queue.get(block=True)
                if item is None:
                    return
                yield pa.table({"refs": pa.array([item], pa.binary())})

        return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None))]


class GradeActor:
    """The grading actor (module docstring). ``config`` is the run's config with the
    provider limits already divided among the actors; ``labels`` the driver's loaded
    labels (or None); ``secrets`` the API keys; ``log_level`` the level of the streamgrade
    loggers on the worker (its stderr reaches the driver's); ``judge_info`` the judge the
    records name (the driver's; default: the actor's own judge's); ``calibration`` the
    driver's calibration model (records get ``p_success``), or None."""

    def __init__(self, config: Config, labels: Any = None, secrets: Secrets | None = None,
                 log_level: str = "WARNING", judge_info: JudgeInfo | None = None,
                 calibration: CalibrationModel | None = None):
        from ..logs import setup_logging

        keys = secrets.reveal() if secrets else {}
        os.environ.update(keys)  # make_judge reads the keys from the environment
        setup_logging(config.run.log_format, log_level, secrets=list(keys.values()))
        configure_formats(config)
        self.config = config
        self.labels = labels
        self.judge_info = judge_info
        self.calibration = calibration
        self.weights = config.rubric.weights()
        self.judge: Any = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self.scratch = Path(tempfile.mkdtemp(prefix="streamgrade-actor-"))
        self.layout = Layout(self.scratch)  # frames land here, then travel back as bytes
        self.readers = anyio.CapacityLimiter(config.pipeline.assemble_workers)

    def __del__(self) -> None:
        """At the actor's graceful exit (Ray Data drops the UDF in ``__ray_shutdown__``):
        close the judge's HTTP client on the loop it runs on (else aiohttp warns of an
        unclosed session in the driver's log), bounded by 5 s; remove the scratch folder."""
        judge, loop = getattr(self, "judge", None), getattr(self, "_loop", None)
        if judge is not None and loop is not None and loop.is_running() \
                and threading.get_ident() != getattr(self, "_loop_thread", None):
            try:
                asyncio.run_coroutine_threadsafe(judge.aclose(), loop).result(timeout=5)
            except Exception as exc:  # exiting anyway
                log.debug("the judge did not close: %r", exc)
        shutil.rmtree(getattr(self, "scratch", ""), ignore_errors=True)

    async def __call__(self, batch: pa.Table) -> AsyncIterator[pa.Table]:
        if self.judge is None:  # no await before this: one judge however many calls start at once
            from ..judges import make_judge

            self.judge = make_judge(self.config)
            self.judge_info = self.judge_info or self.judge.info
        if self._loop is None:  # the loop Ray Data runs this UDF on (its own thread): __del__ closes there
            self._loop, self._loop_thread = asyncio.get_running_loop(), threading.get_ident()
        rows = [_BLOCK.decode(cell) for cell in batch.column("refs").to_pylist()]
        results = await asyncio.gather(*(asyncio.gather(*(self._one(k, r) for k, r in row)) for row in rows))
        yield pa.table({"results": pa.array([_pickle_block(r) for r in results], pa.binary())})

    async def _one(self, key: int, ref: SessionRef) -> Graded:
        """One session through the assemble and grade stages; never raises (a failure is
        kept in the job, as the local stages keep it)."""
        try:
            return await self._stages(key, Job(ref))
        except Exception as exc:  # a bug must not fail the dataset
            log.exception("internal error in the Ray actor on %s", ref.session_id,
                          extra={"session": ref.session_id, "file": ref.path})
            return _internal(key, f"{ref.path}: internal error in the Ray actor: {exc!r}")

    async def _stages(self, key: int, job: Job) -> Graded:
        ref = job.ref
        try:
            try:
                await anyio.to_thread.run_sync(prepare, job, FORMATS[ref.format], self.config, self.layout,
                                               self.labels, limiter=self.readers)
            except InputError as exc:
                job.error, job.error_kind = str(exc), "input"
            except Exception as exc:  # a bug must not fail the dataset
                log.exception("internal error assembling %s", ref.session_id,
                              extra={"session": ref.session_id, "file": ref.path})
                job.error, job.error_kind = f"{ref.path}: internal error: {exc!r}", "internal"
            if job.error is None:
                try:
                    job.verdict = await self.judge.grade(job.session, job.chunks)
                except BudgetExceeded as exc:
                    return Graded(key, budget=str(exc))
                except JudgeError as exc:
                    job.error, job.error_kind = f"{ref.path}: judge: {exc}", "judge"
                    job.usage = exc.usage if isinstance(exc.usage, Usage) else Usage(requests=exc.attempts)
                except Exception as exc:
                    log.exception("internal error grading %s", ref.session_id,
                                  extra={"session": ref.session_id, "file": ref.path})
                    job.error, job.error_kind = f"{ref.path}: internal error in judge: {exc!r}", "internal"
            record = build_record(job, self.judge_info, self.weights, self.calibration)
            return Graded(key, record, encode_session(job, record, self.config), job.error, job.error_kind,
                          job.last_write, job.session is not None and job.session.meta.get("reward_from") == "labels",
                          self._frames(ref.session_id))
        finally:
            shutil.rmtree(self.layout.session_dir(ref.session_id), ignore_errors=True)

    def _frames(self, session_id: str) -> dict[str, bytes]:
        folder = self.layout.frames_dir(session_id)
        if not folder.is_dir():
            return {}
        return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
