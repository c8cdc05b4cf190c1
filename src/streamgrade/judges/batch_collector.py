"""The batch collector: gathers the judge's requests into provider batches, submits, polls,
downloads, and hands each waiting request its result, with every step recorded in the
ledger (:mod:`.batch_store`) so that a kill -9 at any moment followed by a restart resumes
polling and never resubmits what succeeded.

Life of a request (:meth:`BatchCollector.request`, awaited by the judge's ``_send``):

1. Its ledger row decides: ``succeeded`` -> answered from the stored body at once, no HTTP;
   ``submitted`` -> it waits for that submission, which this process polls (it resumed
   every open submission at start); anything else (new, errored, expired, canceled) -> it
   joins the queue.
2. The queue is flushed into one batch when no new request arrived for ``batch.quiet_s``
   seconds, when ``batch.max_wait_s`` passed since its oldest request, or at once when it
   reaches the batch limits (``batch.max_requests`` / ``batch.max_bytes``; 0 = the
   provider's documented limit less a margin: OpenAI 49,000 requests / 180 MB, Anthropic
   98,000 / 230 MB). Bigger queues become several batches.
3. Submit: the intent (a submission row with a fresh token and its custom_ids) commits,
   then the create call(s) run; the provider's id commits when known. A create that fails
   retryably is retried with backoff after looking for the batch it may have created
   (:meth:`BatchAPI.find`); one that fails for good errors its requests.
4. Poll ``GET`` the batch from ``batch.poll_min_s``, growing 1.5x while nothing changes, to
   ``batch.poll_max_s`` (a 429/5xx answer's Retry-After is honoured; failures are retried
   forever: a batch is never given up while it may still finish).
5. Download the results (all of them, then one transaction stores them) and wake the
   waiting requests.

A kill between 3's intent and its id: the next start looks the batch up (OpenAI: the
metadata token; Anthropic: created after the intent with as many requests) and polls it,
or, when none is found, marks the intent abandoned so that its requests are resubmitted.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from .batch_api import BatchAPI, BatchHTTPError, new_token
from .batch_store import RESUBMIT, BatchStore, Outcome, Submission

log = logging.getLogger("streamgrade.judge.batch")

#: Share of the documented limits a batch may fill by default.
REQUEST_MARGIN, BYTES_MARGIN = 0.98, 0.9


@dataclass
class _Waiting:
    """A request waiting for its result (one per custom_id, shared by every caller)."""

    custom_id: str
    line: bytes | None = None  # the provider's request line, while queued
    event: anyio.Event = field(default_factory=anyio.Event)
    outcome: Outcome | None = None
    submission: int | None = None


@dataclass
class _Open:
    """A submission this process polls: counts from its last poll, ``phase``."""

    sub: Submission
    phase: str = "submitting"
    total: int = 0
    done: int = 0


@dataclass
class BatchSettings:
    """What the collector needs of ``[batch]`` and the judge's section (seconds, counts,
    bytes); see :class:`streamgrade.config_judging.BatchConfig`."""

    quiet_s: float = 2.0
    max_wait_s: float = 60.0
    poll_min_s: float = 5.0
    poll_max_s: float = 60.0
    max_requests: int = 0
    max_bytes: int = 0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    keep_days: float = 30.0


class BatchCollector:
    """Collects requests into batches of ``api``'s provider, with its state in the ledger
    at ``store_path`` (opened by :meth:`serve`). Run :meth:`serve` in a task group for as
    long as requests may come; :meth:`request` waits until it is ready."""

    def __init__(self, api: BatchAPI, store_path: str | Path, settings: BatchSettings):
        self.api = api
        self.store_path = Path(store_path)
        self.s = settings
        self.max_requests = settings.max_requests or int(api.MAX_REQUESTS * REQUEST_MARGIN)
        self.max_bytes = settings.max_bytes or int(api.MAX_BYTES * BYTES_MARGIN)
        self.store: BatchStore | None = None
        self._ready = anyio.Event()
        self._kick = anyio.Event()
        self._queue: dict[str, _Waiting] = {}
        self._queued_bytes = 0
        self._first = self._last = 0.0
        self._waiting: dict[str, _Waiting] = {}
        self._open: dict[int, _Open] = {}
        self._tg: Any = None
        # figures for progress and the summary
        self.batch_ids: list[str] = []
        self.submitted_requests = 0
        self.from_ledger = 0
        self.resumed = 0
        self.recovered = 0

    # -- the judge's side ------------------------------------------------------------------
    async def request(self, custom_id: str, body: bytes) -> Outcome:
        """The result of the request ``body`` (the endpoint's JSON) named ``custom_id``:
        an :class:`Outcome` (``succeeded`` with ``result``, or errored/expired/canceled,
        with ``retryable``). A request alone over the batch byte limit is errored, not
        retryable, and never sent. Waits for :meth:`serve` to be ready."""
        await self._ready.wait()
        assert self.store is not None
        w = self._waiting.get(custom_id)
        if w is None:
            row = self.store.request(custom_id)
            if row is not None and row.state == "succeeded" and row.result is not None:
                self.from_ledger += 1
                return Outcome(custom_id, "succeeded", result=row.result)
            w = _Waiting(custom_id)
            self._waiting[custom_id] = w
            if row is not None and row.state == "submitted" and row.submission in self._open:
                w.submission = row.submission  # resumed: its poller resolves it
            else:
                if row is not None and row.state not in RESUBMIT:
                    log.debug("request %s: ledger state %s without an open batch; submitting", custom_id, row.state)
                self._enqueue(w, self.api.line(custom_id, body))
        await w.event.wait()
        assert w.outcome is not None
        return w.outcome

    def _enqueue(self, w: _Waiting, line: bytes) -> None:
        if len(line) > self.max_bytes:
            self._resolve(w, Outcome(w.custom_id, "errored", error=f"request of {len(line):,} bytes is over the "
                                     f"batch limit of {self.max_bytes:,} bytes", retryable=False))
            return
        now = time.monotonic()
        if not self._queue:
            self._first = now
        self._last = now
        w.line = line
        self._queue[w.custom_id] = w
        self._queued_bytes += len(line)
        self._kick.set()

    def _resolve(self, w: _Waiting, outcome: Outcome) -> None:
        w.outcome = outcome
        self._waiting.pop(w.custom_id, None)
        w.event.set()

    # -- the service -------------------------------------------------------------------------
    async def serve(self) -> None:
        """Open the store, resume the open submissions, then flush the queue into batches
        until cancelled."""
        self.store = BatchStore(self.store_path)
        try:
            pruned = self.store.prune(self.s.keep_days)
            if pruned:
                log.info("batch: pruned %d request rows older than %g days", pruned, self.s.keep_days)
            async with anyio.create_task_group() as tg:
                self._tg = tg
                pending = self.store.open_submissions(self.api.provider)
                for sub in pending:
                    self._open[sub.id] = _Open(sub, phase="in progress" if sub.batch_id else "recovering")
                self.resumed = len(pending)
                if pending:
                    log.info("batch: resuming %d open %s batches", len(pending), self.api.provider)
                tg.start_soon(self._resume, pending)
                self._ready.set()
                await self._flush_loop()
        finally:
            self.store.close()

    async def _resume(self, pending: list[Submission]) -> None:
        """Recover the intents without an id one after the other (so that two cannot take
        the same batch), then poll every submission with an id."""
        for sub in pending:
            if sub.batch_id is None:
                try:
                    batch_id = await self._retrying(f"find the batch of submission {sub.id}", lambda s=sub: self.api.find(
                        s.token, s.created, self.store.waiting_ids(s.id), self.store.known_batch_ids(self.api.provider)))
                except BatchHTTPError as exc:
                    log.warning("batch: cannot list batches to find submission %d: %s", sub.id, exc)
                    batch_id = None
                if batch_id is None:
                    log.warning("batch: submission %d was not created before the stop; resubmitting its requests",
                                sub.id)
                    self._finish(sub.id, [], status="abandoned", error="batch creation was not confirmed")
                    continue
                self.store.set_batch(sub.id, batch_id)
                self.recovered += 1
                sub = sub._replace(batch_id=batch_id, status="submitted")
                self._open[sub.id].sub = sub
            self._tg.start_soon(self._poll, self._open[sub.id])

    async def _flush_loop(self) -> None:
        while True:
            if not self._queue:
                await self._kick.wait()
                self._kick = anyio.Event()
                continue
            now = time.monotonic()
            due = min(self._last + self.s.quiet_s, self._first + self.s.max_wait_s)
            if len(self._queue) >= self.max_requests or self._queued_bytes >= self.max_bytes or now >= due:
                self._flush_one()
                continue
            with anyio.move_on_after(due - now):
                await self._kick.wait()
            self._kick = anyio.Event()

    def _flush_one(self) -> None:
        """Take the oldest requests that fit one batch and submit them."""
        items: list[_Waiting] = []
        size = 0
        for w in list(self._queue.values()):
            assert w.line is not None
            if items and (len(items) >= self.max_requests or size + len(w.line) > self.max_bytes):
                break
            items.append(w)
            size += len(w.line)
            del self._queue[w.custom_id]
        self._queued_bytes -= size
        if self._queue:
            self._first = time.monotonic()
        assert self.store is not None
        token = new_token()
        sub_id = self.store.begin(self.api.provider, token, [w.custom_id for w in items])
        sub = self.store.submission(sub_id)
        assert sub is not None
        for w in items:
            w.submission = sub_id
        self.submitted_requests += len(items)
        lines = [w.line for w in items]
        for w in items:
            w.line = None
        op = self._open[sub_id] = _Open(sub, total=len(items))
        log.info("batch: submitting %d requests (%s bytes) as submission %d", len(items), f"{size:,}", sub_id)
        self._tg.start_soon(self._submit, op, lines)

    async def _submit(self, op: _Open, lines: list[bytes]) -> None:
        store, sub = self.store, op.sub
        assert store is not None
        file_id: list[str | None] = [None]

        def on_file(fid: str) -> None:
            file_id[0] = fid
            store.set_file(sub.id, fid)

        for attempt in range(self.s.max_retries + 1):
            try:
                batch_id = await self.api.create(sub.token, lines, file_id=file_id[0], on_file=on_file)
                break
            except BatchHTTPError as exc:
                if not exc.retryable or attempt >= self.s.max_retries:
                    log.warning("batch: submission %d not created: %s", sub.id, exc)
                    self._finish(sub.id, [], status="abandoned", error=f"batch not created: {exc}",
                                 retryable=exc.retryable)
                    return
                # the create may have happened (a timeout or a 5xx after the server took it): look first
                found = None
                if exc.status == 0 or exc.status >= 500:
                    try:
                        found = await self.api.find(sub.token, sub.created, store.waiting_ids(sub.id),
                                                    store.known_batch_ids(self.api.provider))
                    except BatchHTTPError:
                        found = None
                if found is not None:
                    batch_id = found
                    break
                delay = self._delay(attempt, exc.retry_after)
                log.warning("batch: creating submission %d failed: %s; retrying in %.1f s", sub.id, exc, delay)
                await anyio.sleep(delay)
        store.set_batch(sub.id, batch_id)
        op.sub = sub._replace(batch_id=batch_id, status="submitted")
        self.batch_ids.append(batch_id)
        log.info("batch: submission %d is %s batch %s (%d requests)", sub.id, self.api.provider, batch_id, op.total)
        await self._poll(op)

    async def _poll(self, op: _Open) -> None:
        try:
            await self._poll_once(op)
        except BatchHTTPError as exc:  # a final error reading the results
            self._finish(op.sub.id, [], status="ended", error=f"results of batch {op.sub.batch_id} not read: {exc}")
        except Exception as exc:  # a bug must not stop the run: these requests are resubmitted
            log.exception("batch: internal error on submission %d", op.sub.id)
            self._finish(op.sub.id, [], status="ended", error=f"internal error: {exc!r}")

    async def _poll_once(self, op: _Open) -> None:
        sub = op.sub
        assert sub.batch_id is not None
        op.phase = "in progress"
        if sub.batch_id not in self.batch_ids:
            self.batch_ids.append(sub.batch_id)
        delay = self.s.poll_min_s
        seen: tuple[int, int] | None = None
        while True:
            try:
                st = await self.api.status(sub.batch_id)
            except BatchHTTPError as exc:
                if not exc.retryable:  # gone (404/410): resubmit; refused (401/403): fail
                    self._finish(sub.id, [], status="ended", error=f"batch {sub.batch_id} cannot be polled: {exc}",
                                 retryable=exc.status in (404, 410))
                    return
                delay = min(self.s.poll_max_s, max(delay * 1.5, exc.retry_after or 0.0))
                log.warning("batch: polling %s failed: %s; again in %.1f s", sub.batch_id, exc, delay)
                await anyio.sleep(delay)
                continue
            op.total, op.done = st.total or op.total, st.done
            if st.ended:
                break
            if seen == (st.done, st.total):
                delay = min(self.s.poll_max_s, delay * 1.5)
            seen = (st.done, st.total)
            await anyio.sleep(delay)
        op.phase = "downloading"
        outcomes = await self._retrying(f"download the results of {sub.batch_id}", lambda: self.api.results(st))
        error = f"batch {sub.batch_id} ended {st.state} without a result for this request"
        if st.state == "failed":
            errs = st.raw.get("errors")
            data = errs.get("data") if isinstance(errs, dict) else None
            if isinstance(data, list) and data and isinstance(data[0], dict):
                error = f"batch {sub.batch_id} failed: {data[0].get('code')}: {data[0].get('message')}"
        self._finish(sub.id, outcomes, status="ended", error=error)
        log.info("batch: %s %s: %d results", sub.batch_id, st.state, len(outcomes))

    def _finish(self, sub_id: int, outcomes: list[Outcome], *, status: str, error: str,
                retryable: bool = True) -> None:
        """Store the outcomes (one transaction), then wake the requests waiting on this
        submission; those without an outcome get ``error``."""
        assert self.store is not None
        self.store.finish(sub_id, outcomes, status=status, missing_error=error, missing_retryable=retryable)
        by_id = {o.custom_id: o for o in outcomes}
        for w in [w for w in self._waiting.values() if w.submission == sub_id]:
            self._resolve(w, by_id.get(w.custom_id) or Outcome(w.custom_id, "errored", error=error,
                                                               retryable=retryable))
        self._open.pop(sub_id, None)

    async def _retrying(self, what: str, call: Any) -> Any:
        """``await call()`` until it does not raise a retryable BatchHTTPError (a poll-like
        step: never given up); a final error is raised."""
        attempt = 0
        while True:
            try:
                return await call()
            except BatchHTTPError as exc:
                if not exc.retryable:
                    raise
                delay = self._delay(attempt, exc.retry_after)
                log.warning("batch: cannot %s: %s; again in %.1f s", what, exc, delay)
                attempt += 1
                await anyio.sleep(delay)

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        base = min(self.s.backoff_max_s, self.s.backoff_base_s * 2 ** attempt)
        return max(base, retry_after or 0.0)

    # -- progress ---------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        """The collector now: ``queued`` requests, ``open`` batches by phase, ``done`` and
        ``total`` requests of the open batches, ``batches`` created or resumed this run,
        ``submitted`` requests this run, ``from_ledger`` answered from stored results."""
        phases: dict[str, int] = {}
        for op in self._open.values():
            phases[op.phase] = phases.get(op.phase, 0) + 1
        return {"provider": self.api.provider, "queued": len(self._queue), "open": phases,
                "done": sum(op.done for op in self._open.values()),
                "total": sum(op.total for op in self._open.values()),
                "batches": list(self.batch_ids), "submitted": self.submitted_requests,
                "from_ledger": self.from_ledger, "resumed": self.resumed, "recovered": self.recovered}


def describe(snap: dict[str, Any]) -> str:
    """One line of a :meth:`BatchCollector.snapshot` for the progress display: the phase
    (collecting, submitted N requests in K batches, in progress n of m done, downloading)."""
    parts = []
    if snap.get("queued"):
        parts.append(f"collecting {snap['queued']} requests")
    phases = snap.get("open") or {}
    if phases.get("submitting") or phases.get("recovering"):
        parts.append(f"submitting {phases.get('submitting', 0) + phases.get('recovering', 0)} batches")
    if phases.get("in progress"):
        parts.append(f"in progress: {snap['done']:,} of {snap['total']:,} done in {phases['in progress']} batches")
    if phases.get("downloading"):
        parts.append(f"downloading {phases['downloading']} batches")
    if not parts:
        parts.append("waiting for requests" if not snap.get("batches") else "idle")
    return f"batch {snap.get('provider', '')}: " + "; ".join(parts) + \
        f" | {snap.get('submitted', 0):,} requests submitted in {len(snap.get('batches') or [])} batches"


__all__ = ["BatchCollector", "BatchSettings", "describe", "REQUEST_MARGIN", "BYTES_MARGIN"]
