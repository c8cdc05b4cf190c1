"""The pipeline: actors joined by bounded anyio memory object streams.

    source -> admit -> assemble (N) -> grade (M) -> sink
                          \\______________\\________/  failed records go straight to the sink

- source: scan or watch; sends :class:`SessionRef` objects.
- admit: skips sessions the ledger has finished with this fingerprint; marks the rest pending.
- assemble: reads and parses the files in a worker thread (format.assemble), formats the SFT
  messages and cuts chunks; bad input becomes a failed record naming file and line or field.
- grade: the judge, ``pipeline.grade_workers`` at once (a judge that says how many it
  wants, ``judge.grade_workers``, gets that: batch mode's ``batch.max_sessions_in_flight``);
  a judge error becomes a failed record. A judge with a service (``judge.serve``: batch
  mode's collector) has it run beside the actors, cancelled once they are done.
- write files (``pipeline.file_writers``): each session's folder (atomic), or its encoded
  session store row (``[sinks] session_files``).
- sink: one actor, so every commit is serialised: JSONL exports (exactly once), then the
  ledger commit, which writes the batch's session store rows in the same transaction.

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
from collections import Counter
import os
import sqlite3
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Awaitable, Callable

import anyio
import msgspec
from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskGroup

from .assemble import prepare
from .augment import augment_job
from .calibration.model import CalibrationModel, load_model
from .config import Config
from .errors import BudgetExceeded, InputError, JudgeError
from .formats import FORMATS, configure_formats, fingerprint
from .job import Job
from .labels import Labels
from .memtrim import trim
from .judges.base import Judge
from .models import ScoreRecord, SessionRef, Usage
from .sinks.html import update_reports
from .sinks.jsonl import ExportSet
from .sinks.layout import Layout, migrate_flat_folders
from .sinks.ledger import Ledger
from .sinks.lock import OutputLock
from .sinks.meter import METER, db_size, since
from .sinks.records import build_record, drop_stale_files, rfc3339_now, write_session
from .sinks.session_store import StoredEntry, StoreEncoder, load_dicts
from .sources.scan import ScanReport

log = logging.getLogger("streamgrade.pipeline")

Source = Callable[[ObjectSendStream[SessionRef]], Awaitable[None]]


@dataclass
class Written:
    """A session whose files are written (or failed to be: ``error``), with its record and
    the export lines it adds, on its way to the committer."""

    job: Job
    record: ScoreRecord
    lines: list[tuple[str, bytes]]
    error: OSError | None = None
    stored: StoredEntry | None = None  # its session store row, when it got no folder


@dataclass
class RunStats:
    """Counts of a run, updated by the actors; read it for progress. ``failures`` holds
    (session_id, error) of failed sessions (the first 1,000); ``failed_earlier`` counts
    sessions skipped because an earlier run failed them on their (unchanged) input, with
    the first 1,000 in ``earlier_failures``; ``stopped_early`` says the source was stopped
    before it ended (a signal or the budget); ``pending`` is the ledger's count of sessions
    left pending when the run ended; ``scan`` what the scan did not recognise;
    ``by_format`` counts sessions by (status, format), status being graded, failed,
    ungradable, skipped (unchanged since graded) or failed_earlier (for the metrics)."""

    found: int = 0
    skipped: int = 0
    graded: int = 0
    failed: int = 0
    ungradable: int = 0
    failed_earlier: int = 0
    earlier_failures: list[tuple[str, str]] = field(default_factory=list)
    stopped_early: bool = False
    drain_timed_out: bool = False
    pending: int = 0
    labelled: int = 0
    scan: ScanReport = field(default_factory=ScanReport)
    in_flight: int = 0
    requests: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache
    cost_usd: float = 0.0
    started: float = field(default_factory=time.monotonic)
    failures: list[tuple[str, str]] = field(default_factory=list)
    dpo_pairs: int | None = None  # pairs in dpo.jsonl after the last rebuild of this run
    training: dict = field(default_factory=dict)  # format -> ExportResult of the last rebuild
    budget_pending: int = 0  # sessions left pending because the run budget was spent
    by_format: Counter = field(default_factory=Counter)  # (status, format) -> sessions
    batch: dict | None = None  # batch mode: the judge's last snapshot (batches, requests), set by the CLI
    bytes_written: dict[str, int] = field(default_factory=dict)  # kind -> bytes (sinks/meter.py), "ledger" its growth

    @property
    def done(self) -> int:
        return self.graded + self.failed + self.ungradable

    @property
    def bytes_total(self) -> int:
        """Bytes this run wrote under the output folder (see :mod:`.sinks.meter`)."""
        return sum(self.bytes_written.values())

    def requests_per_s(self) -> float:
        return self.requests / max(1e-9, time.monotonic() - self.started)


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
        self._exports: ExportSet | None = None
        self._tg: TaskGroup | None = None
        self._drained = anyio.Event()
        # session id -> fingerprint of the version in flight (newest admitted wins)
        self._current: dict[str, str] = {}
        self._reports_called = -1e9  # monotonic time of the last update_reports call
        self._meter0: dict[str, int] = {}
        self._db0 = 0
        self._encoder: StoreEncoder | None = None  # the session store's rows (sinks/session_store.py)
        self._store_rows = False  # the session store may hold rows (then a folder write removes its row)
        self._folders = False  # session folders may exist (then a stored session's old folder is cleaned)

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
            self._folders = next(self.layout.session_dirs(), None) is not None
            self._ledger = Ledger(self.layout.ledger)
            self._store_rows = self._ledger.has_stored()
            self._encoder = StoreEncoder(load_dicts(self._ledger.db))
            self._exports = ExportSet(self.layout, self._ledger)
            self._exports.recover()
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
        self._exports = None
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
                await self._update_reports([], final=True)
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
            tg.start_soon(self._admit, refs_rx, jobs_tx)
            async with grade_tx, grade_rx, done_tx, jobs_rx:
                self._start_graders(tg, jobs_rx, grade_tx, grade_rx, done_tx, workers)
            async with done_rx, written_tx:
                for _ in range(self.config.pipeline.file_writers):
                    tg.start_soon(self._write_files, done_rx.clone(), written_tx.clone())
            tg.start_soon(self._sink, written_rx)

    def _start_graders(self, tg: TaskGroup, jobs: ObjectReceiveStream[Job], grade_tx: ObjectSendStream[Job],
                       grade_rx: ObjectReceiveStream[Job], done: ObjectSendStream[Job], workers: int) -> None:
        """Start the actors between admission and the file writers, each on clones of the
        streams (the caller closes the originals): ``pipeline.assemble_workers`` assemblers
        (``jobs`` -> ``grade_tx``, failures to ``done``) and ``workers`` graders (``grade_rx``
        -> ``done``; ``pipeline.grade_workers``, or the batch judge's ``grade_workers``).
        Another engine replaces them by overriding this
        (:class:`streamgrade.engines.ray_engine.RayPipeline`)."""
        for _ in range(self.config.pipeline.assemble_workers):
            tg.start_soon(self._assemble, jobs.clone(), grade_tx.clone(), done.clone())
        for _ in range(workers):
            tg.start_soon(self._grade, grade_rx.clone(), done.clone())

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

    # -- actors -----------------------------------------------------------------------
    async def _admit(self, recv: ObjectReceiveStream[SessionRef], send: ObjectSendStream[Job]) -> None:
        async with recv, send:
            async for ref in recv:
                # Take what else is waiting, so that the pending marks commit together.
                refs = [ref]
                while len(refs) < self.config.pipeline.sink_batch:
                    try:
                        refs.append(recv.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                admitted = []
                owners: dict[str, str] = {}  # ids taken within this batch (not yet in the ledger)
                known = self.ledger.get_many([r.session_id for r in refs])  # one query for the batch
                for ref in refs:
                    # One id, one place: a second session with the same id elsewhere (two
                    # folders named alike) gets "-<8 hex of its path>"; the ledger remembers.
                    row = known.get(ref.session_id)
                    owner = row.path if row is not None else owners.get(ref.session_id)
                    if owner is not None and owner != _where(ref):
                        ref = _disambiguate(ref)
                        row = self.ledger.get(ref.session_id)
                    if self._current.get(ref.session_id) == ref.fingerprint or any(
                            a.session_id == ref.session_id and a.fingerprint == ref.fingerprint for a in admitted):
                        continue  # this very version is in flight already (watch sees it again)
                    self.stats.found += 1
                    owners[ref.session_id] = _where(ref)
                    if (row is not None and ref.locator and row.fingerprint != ref.fingerprint
                            and row.fingerprint == fingerprint(ref.files)):
                        # graded by a streamgrade before row fingerprints (it took the whole
                        # file's): the file is unchanged since, so this row is too
                        row = row._replace(fingerprint=ref.fingerprint)
                    if row is not None and row.fingerprint == ref.fingerprint:
                        ctx = {"session": ref.session_id, "file": ref.path}
                        if row.status in ("graded", "ungradable"):
                            self.stats.skipped += 1
                            self.stats.by_format["skipped", ref.format] += 1
                            log.debug("skip %s: unchanged since graded", ref.session_id, extra=ctx)
                            continue
                        if row.status == "failed" and row.error_kind == "input":
                            self.stats.failed_earlier += 1
                            self.stats.by_format["failed_earlier", ref.format] += 1
                            if len(self.stats.earlier_failures) < 1000:
                                self.stats.earlier_failures.append((ref.session_id, row.error or ""))
                            log.debug("skip %s: failed earlier on its unchanged input", ref.session_id, extra=ctx)
                            continue
                    admitted.append(ref)
                try:
                    self.ledger.mark_pending_many([(r.session_id, r.format, _where(r), r.fingerprint) for r in admitted])
                except sqlite3.Error as exc:  # the ledger cannot be written: these are not taken in
                    for ref in admitted:
                        self.stats.failed += 1
                        self.stats.by_format["failed", ref.format] += 1
                        if len(self.stats.failures) < 1000:
                            self.stats.failures.append((ref.session_id, f"{self.ledger.path}: ledger not written: {exc}"))
                        log.error("cannot record %s in the ledger %s: %s", ref.session_id, self.ledger.path, exc,
                                  extra={"session": ref.session_id, "file": str(self.ledger.path)})
                    continue
                for ref in admitted:
                    self._current[ref.session_id] = ref.fingerprint
                    self.stats.in_flight += 1
                    await send.send(Job(ref))

    async def _assemble(self, recv: ObjectReceiveStream[Job], grade: ObjectSendStream[Job], done: ObjectSendStream[Job]) -> None:
        async with recv, grade, done:
            async for job in recv:
                jobs = [job, *_waiting(recv, HANDOFF - 1)]  # one thread hand-off for what is waiting
                # abandon_on_cancel: a read stuck in I/O must not hold up a stop
                await anyio.to_thread.run_sync(self._prepare_all, jobs, abandon_on_cancel=True)
                for job in jobs:
                    await (done if job.error else grade).send(job)

    def _prepare_all(self, jobs: list[Job]) -> None:
        """Blocking: assemble each job (:func:`.assemble.prepare`); bad input or a bug
        becomes the job's error (a failed record), never an exception."""
        for job in jobs:
            try:
                prepare(job, FORMATS[job.ref.format], self.config, self.layout, self.labels)
            except InputError as exc:
                job.error, job.error_kind = str(exc), "input"
            except Exception as exc:  # a bug must not stop the daemon
                log.exception("internal error assembling %s", job.ref.session_id,
                              extra={"session": job.ref.session_id, "file": job.ref.path})
                job.error, job.error_kind = f"{job.ref.path}: internal error: {exc!r}", "internal"

    async def _grade(self, recv: ObjectReceiveStream[Job], done: ObjectSendStream[Job]) -> None:
        async with recv, done:
            async for job in recv:
                assert job.session is not None
                try:
                    if self.config.augment.enabled:  # captions join the evidence (streamgrade.augment)
                        await augment_job(job, self.config, self.judge, self.layout)
                    job.verdict = await self.judge.grade(job.session, job.chunks)
                    if job.augment:  # the augment requests are this session's too
                        job.verdict.usage.add(msgspec.convert(job.augment["usage"], Usage))
                except BudgetExceeded as exc:
                    # Not a failure of the session: it stays pending for a later run.
                    if not self._stopping:
                        log.warning("%s; no new sessions are sent", exc, extra={"session": job.ref.session_id})
                        self.stop()
                    self.stats.in_flight -= 1
                    self.stats.budget_pending += 1
                    continue
                except JudgeError as exc:
                    job.error, job.error_kind = f"{job.ref.path}: judge: {exc}", "judge"
                    job.usage = exc.usage if isinstance(exc.usage, Usage) else Usage(requests=exc.attempts)
                except Exception as exc:
                    log.exception("internal error grading %s", job.ref.session_id,
                                  extra={"session": job.ref.session_id, "file": job.ref.path})
                    job.error, job.error_kind = f"{job.ref.path}: internal error in judge: {exc!r}", "internal"
                await done.send(job)

    async def _write_files(self, recv: ObjectReceiveStream[Job], send: ObjectSendStream[Written]) -> None:
        """File writers (``pipeline.file_writers`` at once): each takes the sessions waiting
        (up to :data:`HANDOFF`) and writes their files (atomically) or encodes their store
        rows in one worker thread; their export lines go on to the committer."""
        async with recv, send:
            async for first in recv:
                jobs = []
                for job in (first, *_waiting(recv, HANDOFF - 1)):  # one thread hand-off for what is waiting
                    if self._current.get(job.ref.session_id) != job.ref.fingerprint:
                        self.stats.in_flight -= 1
                        log.info("superseded %s: its files changed while it was graded", job.ref.session_id,
                                 extra={"session": job.ref.session_id, "file": job.ref.path})
                        continue
                    jobs.append(job)
                if jobs:
                    for written in await anyio.to_thread.run_sync(self._write_all, jobs):
                        await send.send(written)

    def _write_all(self, jobs: list[Job]) -> list[Written]:
        """Blocking: each job's record and files (:func:`.sinks.records.write_session`); a
        write that fails (disk full, read-only) gives its Written an ``error``."""
        out = []
        weights = self.config.rubric.weights()
        for job in jobs:
            record = build_record(job, self.judge.info, weights, self.calibration)
            try:
                res = write_session(self.layout, job, record, self.config, self._encoder)
            except OSError as exc:
                out.append(Written(job, record, [], exc))
            else:
                out.append(Written(job, record, res.lines, None, res.stored))
        return out

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
            batch = [item]
            while len(batch) < self.config.pipeline.sink_batch:
                try:
                    batch.append(recv.receive_nowait())
                except (anyio.WouldBlock, anyio.EndOfStream):
                    break
            await self._commit(batch)
            trim(every_s=10.0)  # the C allocator's free pages back to the OS: flat RSS on long runs
            live = self.config.reports.session_pages == "live"
            await self._update_reports([w.job.ref.session_id for w in batch
                                        if live and w.error is None and w.stored is None])
            if (self.rebuild_when_idle and self._graded_since_build and self.stats.in_flight == 0
                    and time.monotonic() - self._last_build >= self.config.exports.dpo_rebuild_s):
                await self._rebuild_training()

    async def _commit(self, batch: list[Written]) -> None:
        self.stats.in_flight -= len(batch)
        ok: list[Written] = []
        for w in batch:
            if w.error is None:
                ok.append(w)
            else:
                self._write_failed(w, w.error)
        done_before = self.ledger.appended_many([(w.job.ref.session_id, w.job.ref.fingerprint) for w in ok])
        todo = [{name for name in self._exports
                 if (w.job.ref.session_id, w.job.ref.fingerprint, name, w.record.status) not in done_before}
                for w in ok]
        lines = [[(n, line) for n, line in w.lines if n in t] for w, t in zip(ok, todo)]
        before = self._exports.sizes()
        try:
            committed = await anyio.to_thread.run_sync(self._exports.append_batch, lines) if ok else {}
        except OSError as exc:
            for w in ok:  # appends rolled back: these sessions stay pending for the next run
                self._write_failed(w, exc)
            return
        stored = [w.stored for w in ok if w.stored is not None]
        new_dicts = self._encoder.pending_dicts() if self._encoder is not None else []
        try:
            self.ledger.commit_results(
                [(w.job.ref.session_id, w.job.ref.fingerprint, w.record.status, w.record.error, w.job.error_kind,
                  self.judge.info.kind, w.record.score, [n for n, _ in item_lines])
                 for w, item_lines in zip(ok, lines)],
                committed,
                stored=stored,
                unstored=[w.job.ref.session_id for w in ok if w.stored is None] if self._store_rows else (),
                dicts=new_dicts,
            )
        except sqlite3.Error as exc:  # the ledger cannot be written (disk full): undo the appends
            self._exports.rollback(before)
            err = OSError(f"ledger not written: {exc}")
            err.filename = str(self.ledger.path)
            for w in ok:
                self._write_failed(w, err)
            return
        if new_dicts:
            self._encoder.dicts_committed([i for i, _ in new_dicts])  # type: ignore[union-attr]
        self._store_rows = self._store_rows or bool(stored)
        if stored and self._folders:  # an older version's folder must not shadow the stored one
            try:
                await anyio.to_thread.run_sync(drop_stale_files, self.layout, [e.session_id for e in stored])
            except OSError as exc:
                log.warning("old session files not removed: %s", exc, extra={"file": str(self.layout.sessions)})
        self._folders = self._folders or len(stored) < len(ok)
        for w in ok:
            if self._current.get(w.job.ref.session_id) == w.job.ref.fingerprint:
                del self._current[w.job.ref.session_id]
            self._count(w.record)
            self._graded_since_build += w.record.status == "graded"
            if self.on_commit:
                self.on_commit(w.job, w.record)

    def _write_failed(self, w: Written, exc: OSError) -> None:
        """Disk full, read-only output: nothing half-written stays; the session stays pending
        in the ledger and is graded again by the next run."""
        where = getattr(exc, "filename", None) or str(self.out)
        log.error("cannot write results of %s: %s", w.job.ref.session_id, exc,
                  extra={"session": w.job.ref.session_id, "file": where})
        w.record.status, w.record.error = "failed", f"{where}: cannot write output: {exc.strerror or exc}"
        self._count(w.record)

    def _count(self, record: ScoreRecord) -> None:
        st = self.stats
        st.by_format[record.status, record.source_format] += 1
        if record.status == "graded":
            st.graded += 1
            log.info("graded %s score=%.1f judge=%s", record.session_id, record.score or 0, record.judge.kind if record.judge else "-",
                     extra={"session": record.session_id, "file": record.source_path, "score": record.score})
        elif record.status == "ungradable":
            st.ungradable += 1
            log.info("ungradable %s: %s", record.session_id, record.error,
                     extra={"session": record.session_id, "file": record.source_path})
        else:
            st.failed += 1
            if len(st.failures) < 1000:
                st.failures.append((record.session_id, record.error or ""))
            log.warning("failed %s: %s", record.session_id, record.error,
                        extra={"session": record.session_id, "file": record.source_path})
        st.requests += int(record.usage.get("requests", 0))
        st.prompt_tokens += int(record.usage.get("prompt_tokens", 0))
        st.completion_tokens += int(record.usage.get("completion_tokens", 0))
        st.cached_tokens += int(record.usage.get("cached_tokens", 0))
        st.cost_usd += float(record.usage.get("cost_usd", 0.0))
        if self.on_record:
            self.on_record(record)


#: Most items one thread hand-off carries (assembly, file writes, scanned refs): a hand-off
#: costs a wake-up and GIL exchanges on the event loop's thread, worth more than the work
#: of a small session.
HANDOFF = 8


def _waiting(recv: ObjectReceiveStream, n: int) -> list:
    """Up to ``n`` items already waiting in ``recv`` (never waits)."""
    out = []
    while len(out) < n:
        try:
            out.append(recv.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return out


def _where(ref: SessionRef) -> str:
    """The ledger's path of a session: its file, plus ``#locator`` inside multi-session files."""
    return f"{ref.path}#{ref.locator}" if ref.locator else ref.path


def _disambiguate(ref: SessionRef) -> SessionRef:
    import hashlib

    sid = f"{ref.session_id}-{hashlib.sha256(f'{ref.path}#{ref.locator}'.encode()).hexdigest()[:8]}"
    return msgspec.structs.replace(ref, session_id=sid)


def scan_source(paths: list[Path], *, exclude: list[str | Path] = (), report: ScanReport | None = None) -> Source:
    """A source that scans ``paths`` once (in a worker thread, one ref at a time, so that
    backpressure reaches the directory walk) and ends; files no format took go into
    ``report``."""
    from .sources.scan import scan

    async def source(send: ObjectSendStream[SessionRef]) -> None:
        async with send:
            async def send_all(refs: list[SessionRef]) -> None:
                for ref in refs:
                    await send.send(ref)

            def walk() -> None:
                batch: list[SessionRef] = []
                for ref in scan(paths, exclude=exclude, report=report):
                    batch.append(ref)
                    if len(batch) >= HANDOFF:  # one hand-off to the event loop a few refs
                        anyio.from_thread.run(send_all, batch)
                        batch = []
                if batch:
                    anyio.from_thread.run(send_all, batch)

            await anyio.to_thread.run_sync(walk, abandon_on_cancel=True)

    return source


__all__ = ["Pipeline", "RunStats", "Job", "scan_source", "rfc3339_now"]
