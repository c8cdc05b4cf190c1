"""The pipeline: actors joined by bounded anyio memory object streams. This module only
wires them; each actor is a plain ``async def`` over its streams, in its own module.

    source -> admit -> assemble (N) -> grade (M) -> write files (K) -> sink
                          \\______________\\________/  failed records go straight to the writers

- source (:mod:`streamgrade.sources.source`): scan or watch; sends :class:`SessionRef` objects.
- admit (:mod:`streamgrade.admission`): skips sessions the ledger has finished with this
  fingerprint, gives an id found at two places one each; marks the rest pending.
- assemble (:mod:`streamgrade.stages`): reads and parses the files in a worker thread
  (format.assemble), formats the SFT messages and cuts chunks; bad input becomes a failed
  record naming file and line or field.
- grade (:mod:`streamgrade.stages`): the judge, ``pipeline.grade_workers`` at once (a judge
  that says how many it wants, ``judge.grade_workers``, gets that: batch mode's
  ``batch.max_sessions_in_flight``); a judge error becomes a failed record. A judge with a
  service (``judge.serve``: batch mode's collector) has it run beside the actors, cancelled
  once they are done.
- write files (:mod:`streamgrade.sinks.writers`, ``pipeline.file_writers`` at once): each
  session's folder (atomic), or its encoded session store row (``[sinks] session_files``).
- sink: one actor, so every commit is serialised (:mod:`streamgrade.sinks.committer`): JSONL
  exports (exactly once), then the ledger commit, which writes the batch's session store
  rows in the same transaction; then the run's counts (:mod:`streamgrade.run_stats`), the
  HTML reports and, when idle, the training files.

Every stream has capacity ``pipeline.stream_capacity``: a slow judge holds back assembly,
which holds back the source, so memory stays flat however many sessions pass. Stopping
(SIGINT/SIGTERM) cancels only the source; what is in flight drains through, within
``pipeline.drain_timeout_s``, and anything left stays pending in the ledger for the next run.
A reader thread stuck in I/O (a hung network mount) is abandoned at the drain timeout.

One process owns the output folder: :meth:`Pipeline.open` takes its lock
(:mod:`streamgrade.sinks.lock`) before it touches anything, and checks that the JSONL
exports agree with the ledger. What a session leaves behind (its record, files and export
lines) is built by :mod:`streamgrade.sinks.records`; the output layout is
:mod:`streamgrade.sinks.layout`.
"""

from __future__ import annotations

import functools
import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Callable

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from .admission import admit
from .calibration.model import CalibrationModel, load_model
from .config import Config
from .formats import configure_formats
from .job import Job
from .labels import Labels
from .memtrim import trim
from .judges.base import Judge
from .models import ScoreRecord, SessionRef
from .run_stats import RunStats
from .sinks.committer import Committer, Written
from .sinks.html import update_reports
from .sinks.jsonl import ExportSet
from .sinks.layout import Layout, migrate_flat_folders
from .sinks.ledger import Ledger
from .sinks.lock import OutputLock
from .sinks.meter import METER, db_size, since
from .sinks.records import rfc3339_now
from .sinks.session_store import StoreEncoder, load_dicts
from .sinks.writers import write_all, write_files
from .sources.source import Source, scan_source
from .stages import assemble, grade, prepare_all
from .streams import waiting

log = logging.getLogger("streamgrade.pipeline")


class Pipeline:
    """Wire the actors for one run writing under ``out_dir`` with ``judge``.

    ``run(source)`` returns the :class:`RunStats` once the source is exhausted (grade) or
    stopped (watch) and everything in flight drained. ``stop()`` asks for that stop.
    ``on_record`` is called with every ScoreRecord written (progress display);
    ``on_commit`` with (job, record) once a session's ledger line is committed (metrics).
    ``streams`` names the send sides of the bounded streams of the current run (refs, jobs,
    grade, done, written) for their ``statistics()``. The training
    files (``[exports] training``) are rebuilt at the end of a run that graded something and,
    with ``rebuild_when_idle`` (watch), whenever nothing is in flight, at most every
    ``exports.dpo_rebuild_s``."""

    def __init__(self, config: Config, out_dir: str | Path, judge: Judge,
                 on_record: Callable[[ScoreRecord], None] | None = None, rebuild_when_idle: bool = False,
                 on_commit: Callable[[Job, ScoreRecord], None] | None = None):
        self.config = config
        self.out = Path(out_dir)
        self.layout = Layout(self.out)
        self.judge = judge
        self.on_record = on_record
        self.on_commit = on_commit
        self.streams: dict[str, ObjectSendStream] = {}
        self.rebuild_when_idle = rebuild_when_idle
        self._graded_since_build = 0
        self._last_build = time.monotonic()
        self.stats = RunStats()
        self._source_scope: anyio.CancelScope | None = None
        self._stopping = False
        self._ledger: Ledger | None = None
        self._lock: OutputLock | None = None
        self.labels: Labels | None = None
        self.calibration: CalibrationModel | None = None
        self._committer: Committer | None = None  # the group commit (sinks/committer.py), once open
        self._tg: TaskGroup | None = None
        self._drained = anyio.Event()
        # session id -> fingerprint of the version in flight (newest admitted wins)
        self._current: dict[str, str] = {}
        self._reports_called = -1e9  # monotonic time of the last update_reports call
        self._end_pages: list[str] | None = []  # report mode: pages the run's end builds (None: too many)
        self._meter0: dict[str, int] = {}
        self._db0 = 0
        self._encoder: StoreEncoder | None = None  # the session store's rows (sinks/session_store.py)

    # -- lifecycle --------------------------------------------------------------------
    def stop(self) -> None:
        """Stop taking new sessions; in-flight ones drain (safe to call from a signal task)."""
        self._stopping = True
        if self._source_scope is not None:
            self._source_scope.cancel()

    def open(self, command: str = "grade") -> None:
        """Take the output folder's lock, open the ledger and recover the JSONL exports (cut
        the uncommitted bytes a crash left). Raises
        :class:`~streamgrade.sinks.lock.OutputLocked` when another process writes the folder,
        :class:`~streamgrade.sinks.jsonl.ExportMismatch` when an export disagrees with the
        ledger (nothing is changed; ``streamgrade repair OUT`` fixes it), ConfigError when a
        labels file or the calibration model cannot be read, OSError naming the
        output folder or ledger when they cannot be created, opened or written (read-only
        filesystem, disk full)."""
        configure_formats(self.config)
        lc = self.config.labels
        self.labels = Labels.load(lc.files, key=lc.key, id_field=lc.id_field, value_field=lc.value_field) \
            if lc.files else None
        cal = self.config.calibration.file
        self.calibration = load_model(cal) if cal else None
        self.layout.exports.mkdir(parents=True, exist_ok=True)
        self._meter0, self._db0 = METER.snapshot(), db_size(self.layout.ledger)
        probe = self.out / f".write-test.{os.getpid()}"
        probe.write_bytes(b"")  # fails early and plainly (EROFS, ENOSPC, EACCES)
        probe.unlink()
        lock = OutputLock(self.out, command)
        lock.acquire()
        self._lock = lock
        try:
            migrate_flat_folders(self.layout)  # an older output: its session folders into shards
            folders = next(self.layout.session_dirs(), None) is not None
            self._ledger = Ledger(self.layout.ledger)
            store_rows = self._ledger.has_stored()
            self._encoder = StoreEncoder(load_dicts(self._ledger.db))
            exports = ExportSet(self.layout, self._ledger)
            exports.recover()
            self._committer = Committer(self.layout, self._ledger, exports, self.judge.info.kind, self._count,
                                        encoder=self._encoder, store_rows=store_rows, folders=folders)
        except sqlite3.Error as exc:
            self.close()
            raise OSError(f"cannot use the ledger {self.layout.ledger}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close the ledger and give up the output folder's lock."""
        if self._ledger is not None:
            self._ledger.close()
            self._ledger = None
        self._committer = None
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    @property
    def ledger(self) -> Ledger:
        assert self._ledger is not None, "Pipeline.open() first"
        return self._ledger

    async def run(self, source: Source) -> RunStats:
        if self._ledger is None:
            self.open()
        # A judge with a service (batch mode: its collector) runs it beside the actors, and
        # grades as many sessions at once as it says (``grade_workers``).
        service = getattr(self.judge, "serve", None)
        workers = getattr(self.judge, "grade_workers", None) or self.config.pipeline.grade_workers
        try:
            async with anyio.create_task_group() as services:
                if service is not None:
                    services.start_soon(service)
                await self._run_actors(source, workers)
                services.cancel_scope.cancel()
            trim()  # before the end-of-run passes over every session, whose peaks add to what is held
            if self._graded_since_build and not self._interrupted():
                await self._rebuild_training()
            if not self._interrupted():
                trim()
                # report mode: a small run's own pages now, so that its index links work
                await self._update_reports(self._end_pages or [], final=True)
            self.stats.stopped_early = self._stopping
            self.stats.labelled = self.labels.used if self.labels else 0
            self.stats.pending = self.ledger.counts().get("pending", 0)
        finally:
            self.close()
            self.stats.bytes_written = since(self._meter0)
            grown = db_size(self.layout.ledger) - self._db0  # after close: its WAL checkpointed into it
            if grown > 0:
                self.stats.bytes_written["ledger"] = grown
        return self.stats

    async def _run_actors(self, source: Source, workers: int) -> None:
        cap = self.config.pipeline.stream_capacity
        refs_tx, refs_rx = anyio.create_memory_object_stream[SessionRef](cap)
        jobs_tx, jobs_rx = anyio.create_memory_object_stream[Job](cap)
        grade_tx, grade_rx = anyio.create_memory_object_stream[Job](cap)
        done_tx, done_rx = anyio.create_memory_object_stream[Job](cap)
        written_tx, written_rx = anyio.create_memory_object_stream[Written](cap * 4)
        self.streams = {"refs": refs_tx, "jobs": jobs_tx, "grade": grade_tx, "done": done_tx, "written": written_tx}
        async with anyio.create_task_group() as tg:
            self._tg = tg
            tg.start_soon(self._run_source, source, refs_tx)
            tg.start_soon(functools.partial(admit, ledger=self.ledger, stats=self.stats, current=self._current,
                                            batch=self.config.pipeline.sink_batch), refs_rx, jobs_tx)
            async with grade_tx, grade_rx, done_tx, jobs_rx:
                self._start_graders(tg, jobs_rx, grade_tx, grade_rx, done_tx, workers)
            write = functools.partial(write_all, layout=self.layout, config=self.config, judge=self.judge.info,
                                      calibration=self.calibration, encoder=self._encoder)
            writer = functools.partial(write_files, write=write, current=self._current, stats=self.stats)
            async with done_rx, written_tx:
                for _ in range(self.config.pipeline.file_writers):
                    tg.start_soon(writer, done_rx.clone(), written_tx.clone())
            tg.start_soon(self._sink, written_rx)

    def _start_graders(self, tg: TaskGroup, jobs: ObjectReceiveStream[Job], grade_tx: ObjectSendStream[Job],
                       grade_rx: ObjectReceiveStream[Job], done: ObjectSendStream[Job], workers: int) -> None:
        """Start the actors between admission and the file writers, each on clones of the
        streams (the caller closes the originals): ``pipeline.assemble_workers`` assemblers
        (``jobs`` -> ``grade_tx``, failures to ``done``) and ``workers`` graders (``grade_rx``
        -> ``done``; ``pipeline.grade_workers``, or the batch judge's ``grade_workers``);
        see :mod:`streamgrade.stages`. Another engine replaces them by overriding this
        (:class:`streamgrade.engines.ray_engine.RayPipeline`)."""
        assembler = functools.partial(assemble, prepare=functools.partial(
            prepare_all, config=self.config, layout=self.layout, labels=self.labels))
        grader = functools.partial(grade, judge=self.judge, config=self.config, layout=self.layout, stats=self.stats,
                                   stopping=lambda: self._stopping, stop=self.stop)
        for _ in range(self.config.pipeline.assemble_workers):
            tg.start_soon(assembler, jobs.clone(), grade_tx.clone(), done.clone())
        for _ in range(workers):
            tg.start_soon(grader, grade_rx.clone(), done.clone())

    async def _update_reports(self, session_ids: list[str], final: bool = False) -> None:
        """HTML reports (sinks/html.py): the sessions' pages now, index.html at most every
        30 s and at the end of a run. Derived data: a failure is logged, never stops grading."""
        if not self.config.reports.html:
            return
        now = time.monotonic()
        if not session_ids and not final and now - self._reports_called < 1.0:
            return  # nothing to render now: the index throttle needs a call a second at most
        self._reports_called = now
        try:
            await anyio.to_thread.run_sync(functools.partial(
                update_reports, self.out, session_ids, final=final, min_interval_s=self.config.reports.index_interval_s))
        except Exception as exc:
            log.warning("HTML reports not written: %s", exc, extra={"file": str(self.out)})

    def _interrupted(self) -> bool:
        return self._tg is not None and self._tg.cancel_scope.cancel_called

    async def _rebuild_training(self) -> None:
        """Rebuild the training files (``[exports] training``) from the session folders; a
        failure is logged, never stops grading (they are derived data)."""
        from .exports.build import ExportOptions, rebuild_training

        ex = self.config.exports
        self._graded_since_build = 0
        self._last_build = time.monotonic()
        try:
            res = await anyio.to_thread.run_sync(rebuild_training, self.out, list(ex.training),
                                                 ExportOptions.from_config(ex))
        except Exception as exc:
            log.warning("training files not rebuilt: %s", exc, extra={"file": str(self.layout.exports)})
            return
        self.stats.training = res
        self.stats.dpo_pairs = res["dpo"].rows if "dpo" in res else None

    async def _run_source(self, source: Source, send: ObjectSendStream[SessionRef]) -> None:
        with anyio.CancelScope() as scope:
            self._source_scope = scope
            if self._stopping:
                scope.cancel()
            await source(send)
        await send.aclose()
        if scope.cancel_called:
            self._arm_drain_timeout()

    def _arm_drain_timeout(self) -> None:
        timeout = self.config.pipeline.drain_timeout_s
        log.info("stopping: no new sessions; draining %d in flight (timeout %.0f s)", self.stats.in_flight, timeout)

        async def guard() -> None:
            with anyio.move_on_after(timeout):
                await self._drained.wait()
                return
            log.warning("drain timeout: %d sessions left pending for the next run", self.stats.in_flight)
            self.stats.drain_timed_out = True
            assert self._tg is not None
            self._tg.cancel_scope.cancel()

        assert self._tg is not None
        self._tg.start_soon(guard)

    # -- the sink -----------------------------------------------------------------------
    async def _sink(self, recv: ObjectReceiveStream[Written]) -> None:
        try:
            async with recv:
                await self._sink_loop(recv)
        finally:
            self._drained.set()

    async def _sink_loop(self, recv: ObjectReceiveStream[Written]) -> None:
        async for item in recv:
            # Group commit: take what else is already waiting (up to sink_batch), append it
            # with one fsync per export, and commit the ledger once.
            batch = [item, *waiting(recv, self.config.pipeline.sink_batch - 1)]
            await self._commit(batch)
            trim(every_s=10.0)  # the C allocator's free pages back to the OS: flat RSS on long runs
            pages = [w.job.ref.session_id for w in batch if w.error is None and w.stored is None]
            if self.config.reports.session_pages == "live":
                await self._update_reports(pages)
            else:
                self._note_end_pages(pages)
                await self._update_reports([])
            if (self.rebuild_when_idle and self._graded_since_build and self.stats.in_flight == 0
                    and time.monotonic() - self._last_build >= self.config.exports.dpo_rebuild_s):
                await self._rebuild_training()

    def _note_end_pages(self, session_ids: list[str]) -> None:
        """Report mode: remember the sessions whose pages the run's end builds, until there
        are more than ``[reports] end_pages_max`` (then none: ``streamgrade report`` does)."""
        if self._end_pages is None:
            return
        self._end_pages.extend(session_ids)
        if len(self._end_pages) > self.config.reports.end_pages_max:
            self._end_pages = None

    async def _commit(self, batch: list[Written]) -> None:
        """One group commit (:meth:`.sinks.committer.Committer.commit`), then each committed
        session leaves the in-flight map and is counted (``on_record``, ``on_commit``)."""
        assert self._committer is not None, "Pipeline.open() first"
        self.stats.in_flight -= len(batch)
        for w in await self._committer.commit(batch):
            if self._current.get(w.job.ref.session_id) == w.job.ref.fingerprint:
                del self._current[w.job.ref.session_id]
            self._count(w.record)
            self._graded_since_build += w.record.status == "graded"
            if self.on_commit:
                self.on_commit(w.job, w.record)

    def _count(self, record: ScoreRecord) -> None:
        """Count a finished session (:meth:`RunStats.count`) and show it (``on_record``)."""
        self.stats.count(record)
        if self.on_record:
            self.on_record(record)


__all__ = ["Pipeline", "RunStats", "Job", "scan_source", "rfc3339_now", "Source"]
