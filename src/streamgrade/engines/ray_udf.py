"""What runs on Ray's workers for ``grade --engine ray``: the read of session refs and the
grading actor (Ray Data "stateful transforms", a callable class in ``map_batches``).

Rows in: ``key`` (int64, the driver's handle of the admitted job) and ``ref`` (the
:class:`~streamgrade.models.SessionRef`, msgpack). Rows out: ``key`` and ``result`` (a
:class:`RowResult`, msgpack). :class:`QueueSource` yields the blocks the driver puts on a
``ray.util.queue.Queue`` until it puts ``None``, so the dataset streams: grading starts
with the first admitted sessions, and a full queue holds back the driver's scan.

:class:`GradeActor` is our own async actor UDF (not ``ray.data.llm``, whose
HttpRequestProcessor awaits a batch's requests one by one and fails the whole dataset on one
exhausted retry). One judge per actor, built on its event loop at the first call, so its
HTTP client and rate limiter serve every session the actor grades. Each session goes the
local pipeline's way: :func:`~streamgrade.assemble.prepare` in a worker thread, the judge,
:func:`~streamgrade.sinks.records.build_record` and the per-session files' bytes
(:func:`~streamgrade.sinks.records.session_files`); every failure becomes the session's
failed record (input, judge, internal), so one bad session never fails the dataset.
Frames taken from a recording are written to the actor's scratch folder and travel back as
bytes: the driver writes everything under OUT. The inputs are read at the path the driver
scanned, so on a cluster they must be visible to every worker at that same path.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, AsyncIterator, Iterator

import anyio
import msgspec
import pyarrow as pa
from ray.data import Datasource, ReadTask
from ray.data.block import BlockMetadata

from ..assemble import prepare
from ..config import Config
from ..errors import BudgetExceeded, InputError, JudgeError
from ..formats import FORMATS, configure_formats
from ..job import Job
from ..models import ScoreRecord, SessionRef, Usage
from ..sinks.layout import SCORES_JSONL, Layout
from ..sinks.records import build_record, session_files

log = logging.getLogger("streamgrade.pipeline")

__all__ = ["GradeActor", "QueueSource", "RowResult", "Secrets", "encode_refs", "decode_result"]


class RowResult(msgspec.Struct, omit_defaults=True):
    """One graded (or failed) session, from an actor to the driver: its ``record``, the
    per-session ``files`` (name -> bytes, see :mod:`streamgrade.sinks.records`), the
    export ``lines`` ((export, line) pairs), its ``frames`` (file name under the session's
    ``frames/`` -> JPEG bytes), ``error_kind`` (input | judge | internal) and whether a
    label set its reward (``label_used``). ``budget`` instead: the run budget was spent
    before it was graded (it stays pending)."""

    key: int
    record: ScoreRecord | None = None
    files: dict[str, bytes] = {}
    lines: list[tuple[str, bytes]] = []
    frames: dict[str, bytes] = {}
    error_kind: str | None = None
    label_used: bool = False
    budget: str | None = None


_ENCODER = msgspec.msgpack.Encoder()
_REF = msgspec.msgpack.Decoder(SessionRef)
_RESULT = msgspec.msgpack.Decoder(RowResult)


def encode_refs(keys: list[int], refs: list[SessionRef]) -> dict[str, list]:
    """A block's columns for ``refs`` (what the driver puts on the queue)."""
    return {"key": keys, "ref": [_ENCODER.encode(r) for r in refs]}


def decode_result(data: bytes) -> RowResult:
    """A :class:`RowResult` from its msgpack bytes (raises msgspec.DecodeError)."""
    return _RESULT.decode(data)


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
    ``ray.util.queue.Queue``; ``{"key": [...], "ref": [...]}`` each) until it puts None.
    One read task: it only relays (give it ``num_cpus=0``)."""

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
                yield pa.table({"key": pa.array(item["key"], pa.int64()), "ref": pa.array(item["ref"], pa.binary())})

        return [ReadTask(read, BlockMetadata(num_rows=None, size_bytes=None, input_files=None, exec_stats=None))]


class GradeActor:
    """The grading actor (module docstring). ``config`` is the run's config with the
    provider limits already divided among the actors; ``calibration`` and ``labels`` the
    driver's loaded objects (or None); ``secrets`` the API keys; ``log_level`` the level
    of the streamgrade loggers on the worker (its stderr reaches the driver's)."""

    def __init__(self, config: Config, calibration: Any = None, labels: Any = None,
                 secrets: Secrets | None = None, log_level: str = "WARNING"):
        from ..logs import setup_logging

        keys = secrets.reveal() if secrets else {}
        os.environ.update(keys)  # make_judge reads the keys from the environment
        setup_logging(config.run.log_format, log_level, secrets=list(keys.values()))
        configure_formats(config)
        self.config = config
        self.calibration = calibration
        self.labels = labels
        self.weights = config.rubric.weights()
        self.judge: Any = None
        self.scratch = Path(tempfile.mkdtemp(prefix="streamgrade-actor-"))
        self.layout = Layout(self.scratch)  # frames land here, then travel back as bytes
        self.readers = anyio.CapacityLimiter(config.pipeline.assemble_workers)
        self.encoder = msgspec.json.Encoder()

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "scratch", ""), ignore_errors=True)

    async def __call__(self, batch: pa.Table) -> AsyncIterator[pa.Table]:
        if self.judge is None:  # no await before this: one judge however many calls start at once
            from ..judges import make_judge

            self.judge = make_judge(self.config)
        keys = batch.column("key").to_pylist()
        refs = batch.column("ref").to_pylist()
        results = await asyncio.gather(*(self._one(k, r) for k, r in zip(keys, refs)))
        yield pa.table({"key": pa.array(keys, pa.int64()), "result": pa.array(results, pa.binary())})

    async def _one(self, key: int, raw: bytes) -> bytes:
        """One session, start to finish; never raises (a failure is the session's record)."""
        job: Job | None = None
        try:
            job = Job(_REF.decode(raw))
            return _ENCODER.encode(await self._grade(key, job))
        except Exception as exc:  # a bug must not fail the dataset
            ref = job.ref if job else SessionRef(session_id=f"<row {key}>", format="?", path="?", files=())
            log.exception("internal error in the Ray actor on %s", ref.session_id,
                          extra={"session": ref.session_id, "file": ref.path})
            failed = Job(ref, error=f"{ref.path}: internal error: {exc!r}", error_kind="internal")
            return _ENCODER.encode(self._result(key, failed))

    async def _grade(self, key: int, job: Job) -> RowResult:
        ref = job.ref
        try:
            try:
                await anyio.to_thread.run_sync(prepare, job, FORMATS[ref.format], self.config, self.layout,
                                               self.labels, limiter=self.readers)
            except InputError as exc:
                job.error, job.error_kind = str(exc), "input"
            except Exception as exc:
                log.exception("internal error assembling %s", ref.session_id,
                              extra={"session": ref.session_id, "file": ref.path})
                job.error, job.error_kind = f"{ref.path}: internal error: {exc!r}", "internal"
            if job.error is None:
                assert job.session is not None
                try:
                    job.verdict = await self.judge.grade(job.session, job.chunks)
                except BudgetExceeded as exc:
                    return RowResult(key, budget=str(exc))
                except JudgeError as exc:
                    job.error, job.error_kind = f"{ref.path}: judge: {exc}", "judge"
                    job.usage = exc.usage if isinstance(exc.usage, Usage) else Usage(requests=exc.attempts)
                except Exception as exc:
                    log.exception("internal error grading %s", ref.session_id,
                                  extra={"session": ref.session_id, "file": ref.path})
                    job.error, job.error_kind = f"{ref.path}: internal error in judge: {exc!r}", "internal"
            return self._result(key, job)
        finally:
            shutil.rmtree(self.layout.session_dir(ref.session_id), ignore_errors=True)

    def _result(self, key: int, job: Job) -> RowResult:
        """The record, files, export line and frames of a finished ``job``."""
        record = build_record(job, self.judge.info, self.weights, self.calibration)
        files = session_files(job, record, self.config, self.encoder)
        frames = {}
        folder = self.layout.frames_dir(job.ref.session_id)
        if folder.is_dir():
            frames = {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
        s = job.session
        return RowResult(key, record=record, files=files, lines=[(SCORES_JSONL, self.encoder.encode(record))],
                         frames=frames, error_kind=job.error_kind,
                         label_used=bool(s is not None and s.meta.get("reward_from") == "labels"))
