"""Provider Batch APIs for the mock provider (scripts/mock_provider.py): OpenAI's Files and
Batch APIs and Anthropic's Message Batches API, in their documented shapes, on a clock the
tests can keep short.

Modules: this one (options, the job timeline, outcomes, the log and ``/_mock/stats``
counters, :func:`register`, the log readers), ``mock_batches_openai.py`` (``/v1/files``,
``/v1/batches``) and ``mock_batches_anthropic.py`` (``/v1/messages/batches``).

OpenAI (no API key needed, like the rest of the mock; errors in OpenAI's shape
``{"error": {message, type, param, code}}``)
    ``POST /v1/files`` (multipart ``file`` + ``purpose``) answers a File object ``{id
    "file-...", object "file", bytes, created_at, filename, purpose, status "processed",
    expires_at null, status_details null}``; ``GET /v1/files`` (``purpose``, ``limit``,
    ``after``; newest first), ``GET /v1/files/{id}``, ``GET /v1/files/{id}/content`` (the raw
    bytes), ``DELETE /v1/files/{id}`` (``{id, object "file", deleted true}``).
    ``POST /v1/batches`` ``{input_file_id, endpoint "/v1/chat/completions",
    completion_window "24h", metadata?}`` answers a Batch object with every documented field
    (``id "batch_..."``, ``object "batch"``, ``endpoint``, ``model``, ``errors``,
    ``input_file_id``, ``completion_window``, ``status``, ``output_file_id``,
    ``error_file_id``, ``created_at``, ``in_progress_at``, ``expires_at``, ``finalizing_at``,
    ``completed_at``, ``failed_at``, ``expired_at``, ``cancelling_at``, ``cancelled_at``,
    ``request_counts {total, completed, failed}``, ``metadata``, ``usage`` once ended);
    ``GET /v1/batches/{id}``, ``POST /v1/batches/{id}/cancel``, ``GET /v1/batches``
    (``limit`` 1-100, default 20; ``after``; newest first; ``{object "list", data, first_id,
    last_id, has_more}``). An unknown id is a 404; a bad create body a 400.
    Input-file validation (each line ``{custom_id, method "POST", url == endpoint, body}``,
    one model) makes the batch ``failed`` with ``errors {object "list", data [{code, message,
    param, line}]}``; codes ``invalid_json_line``, ``missing_required_parameter``,
    ``duplicate_custom_id``, ``url_mismatch``, ``model_mismatch``, ``empty_file``,
    ``too_many_tasks`` (over ``--batch-max-requests``) and ``file_too_large`` (over
    ``--batch-max-bytes``; the mock's own code, none is documented). At most 1,000 errors.
    Output file lines (purpose ``batch_output``): ``{id "batch_req_...", custom_id,
    response {status_code 200, request_id, body <chat.completion of mock_provider.answer>},
    error null}``; error file lines: a request error as ``response {status_code 500 (or
    400), request_id, body {error {message, type, param, code}}}, error null``; a body that
    :func:`mock_provider.answer` rejects always as a 400; not run before the window ended:
    ``response null, error {code "batch_expired", message "This request could not be
    executed before the completion window expired."}``; not run before a cancel: ``error
    {code "batch_cancelled", message "This request was not executed because the batch was
    cancelled."}`` (the mock's choice, modelled on batch_expired). Lines come in processing
    order, not input order. A file with no line is not created (its id stays null). ``request_counts.failed`` counts the
    request errors only, so completed + failed < total after an expiry or a cancel.

Anthropic (``x-api-key``, or ``Authorization: Bearer`` as anthropic-sdk-python 2.x sends the
key, required, else 401 ``authentication_error``; ``anthropic-version`` required, else 400;
errors in Anthropic's shape ``{"type": "error", "error": {type, message}}``)
    ``POST /v1/messages/batches`` ``{requests: [{custom_id, params}]}`` answers a
    MessageBatch ``{id "msgbatch_...", type "message_batch", processing_status
    "in_progress"|"canceling"|"ended", request_counts {processing, succeeded, errored,
    canceled, expired}, ended_at, created_at, expires_at, archived_at, cancel_initiated_at,
    results_url}`` (times RFC 3339, ``results_url`` absolute and only once ended;
    ``request_counts`` has everything in ``processing`` until the batch ends, as documented).
    Rejected with 400 ``invalid_request_error``: no requests, more than
    ``--anthropic-batch-max-requests``, a duplicate or malformed ``custom_id`` (documented
    pattern ``^[a-zA-Z0-9_-]{1,64}$``), ``params`` not an object; with 413
    ``request_too_large``: a body over ``--anthropic-batch-max-bytes``. ``params`` are
    checked when processed (as documented): a bad one gives an ``errored`` result.
    ``GET /v1/messages/batches/{id}``, ``POST .../{id}/cancel`` (``canceling``, then ended),
    ``DELETE .../{id}`` (ended batches only; ``{id, type "message_batch_deleted"}``),
    ``GET .../{id}/results`` (JSONL, ``application/x-jsonl``; 400 before the end): ``{custom_id,
    result}`` with result ``{type "succeeded", message <mock_provider.anthropic_answer>}``,
    ``{type "errored", error {type "error", error {type "api_error" (or
    "invalid_request_error"), message}, request_id}}``, ``{type "expired"}`` or ``{type
    "canceled"}``; ``GET /v1/messages/batches`` (``limit`` 1-1000, default 20; ``before_id``,
    ``after_id``; newest first; ``{data, has_more, first_id, last_id}``).

Sources of the shapes: OpenAI's Batch API guide (input/output/error lines, batch_expired,
statuses, limits 50,000 requests and 200 MB) and API reference (Batch, File, list
objects), checked against openai-python's ``openai.types.Batch``, ``BatchError``,
``FileObject``, ``FileDeleted``; Anthropic's "Batch processing" guide (limits 100,000
requests or 256 MB, 24 h expiry, results by ``custom_id``) and API reference (Create,
Retrieve, List, Cancel, Delete, Results of Message Batches), checked against
anthropic-sdk-python's ``anthropic.types.messages.MessageBatch``,
``MessageBatchIndividualResponse`` and ``DeletedMessageBatch``. tests/test_mock_batches.py
validates the mock's JSON with those SDK types and drives it with both SDKs.

Timeline (seconds on :attr:`BatchStore.clock`, ``time.time`` by default; tests may replace
it, e.g. ``url.server.batches.clock = fake``)
    A batch is created at ``t0`` and starts processing at ``t0 + --batch-start-delay-s``
    (OpenAI shows ``validating`` until then; a batch failing validation turns ``failed``
    then). Requests finish one by one in a seeded processing order (not the input order) at
    ``--batch-rate`` requests/s (0: all at once). When all are done the batch is
    ``finalizing`` for ``--batch-finalize-s`` (Anthropic stays ``in_progress``), then
    ``completed``/``ended``. At ``t0 + --batch-expiry-s`` (default 86,400, the documented
    24 h) an unfinished batch ends as ``expired``/``ended``: requests done by then keep their
    result, the rest are expired. A cancel freezes progress; the batch is
    ``cancelling``/``canceling`` for ``--batch-finalize-s`` and then ``cancelled``/``ended``
    with the unfinished requests canceled. State is computed from the clock whenever a batch
    endpoint or ``/_mock/stats`` is asked, so nothing runs in the background.

Outcomes
    A request errors when ``sha256(f"{seed}:{custom_id}:{attempt}")`` read as a fraction is
    below ``--batch-error-rate``; ``attempt`` is 1 + how many earlier batches of the same
    provider held that ``custom_id``, so a resubmitted request draws again (and usually
    succeeds). ``--batch-error-status 500`` (default) makes errors server errors
    (``server_error`` / ``api_error``), ``400`` invalid-request errors.

Log (``--batch-log FILE``, else the request log ``--log``), one JSON object a line, with
``t`` (Unix seconds), ``event``, ``provider`` ("openai"|"anthropic"):
    ``batch_submitted`` ``{batch_id, custom_ids, resubmitted_after_success,
    resubmitted_while_pending}`` (a batch accepted for processing; the last two list its
    custom_ids that had already succeeded in an earlier batch, or that an earlier batch still
    running holds), ``batch_rejected`` ``{batch_id (OpenAI) or null, reason}`` (failed
    validation, logged at creation: nothing runs), ``batch_result`` ``{batch_id, custom_id, type
    "succeeded"|"errored"|"expired"|"canceled", status (HTTP status or null)}`` one per
    request once its batch ends, ``batch_ended`` ``{batch_id, status, counts}``. Request-log
    lines (no ``event``) are skipped by the readers :func:`read_batch_results`,
    :func:`read_batch_submissions` and :func:`resubmitted_after_success`. The request log
    gets a line per batch-endpoint request too, ``kind`` ``files``, ``file_content``,
    ``batches``, ``message_batches`` or ``message_batch_results``.

Stats (``/_mock/stats`` key ``batches``): ``created``, ``rejected``, ``requests_submitted``,
``succeeded``, ``errored``, ``expired``, ``canceled``, ``resubmitted_after_success``,
``resubmitted_while_pending`` (custom_ids, counted per submission as in the log),
``files_uploaded``, and the same per provider under ``openai`` and ``anthropic``.
Latency, rate limits and faults of the chat path (``--latency-ms``, ``--rpm``,
``--fault-*``) do not apply to the batch endpoints.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import random
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "BatchOptions",
    "BatchStore",
    "Job",
    "add_batch_arguments",
    "register",
    "read_batch_results",
    "read_batch_submissions",
    "resubmitted_after_success",
    "draw_error",
]

PROVIDERS = ("openai", "anthropic")
COUNTERS = ("created", "rejected", "requests_submitted", "succeeded", "errored", "expired", "canceled",
            "resubmitted_after_success", "resubmitted_while_pending", "files_uploaded")


@dataclasses.dataclass
class BatchOptions:
    """The batch knobs of :class:`mock_provider.MockOptions` (which inherits them); times in
    seconds (fractions allowed), sizes in bytes (decimal MB: 200 MB = 200,000,000)."""

    batch_start_delay_s: float = 1.0
    batch_rate: float = 1000.0
    batch_finalize_s: float = 0.5
    batch_expiry_s: float = 86_400.0
    batch_error_rate: float = 0.0
    batch_error_status: int = 500
    batch_max_requests: int = 50_000
    batch_max_bytes: int = 200_000_000
    anthropic_batch_max_requests: int = 100_000
    anthropic_batch_max_bytes: int = 256_000_000
    batch_log: str | None = None

    def check_batch_options(self) -> None:
        """Raise ValueError naming the first bad batch option."""
        for name in ("batch_start_delay_s", "batch_rate", "batch_finalize_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        if self.batch_expiry_s <= 0:
            raise ValueError("batch_expiry_s must be > 0")
        if not 0 <= self.batch_error_rate <= 1:
            raise ValueError(f"batch_error_rate must be in [0, 1], not {self.batch_error_rate}")
        if self.batch_error_status not in (400, 500):
            raise ValueError(f"batch_error_status must be 400 or 500, not {self.batch_error_status}")
        for name in ("batch_max_requests", "batch_max_bytes", "anthropic_batch_max_requests",
                     "anthropic_batch_max_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")

    def max_body_bytes(self) -> int:
        """The aiohttp ``client_max_size`` that lets the largest allowed batch (plus slack for
        multipart framing and one oversize probe) reach the mock's own checks."""
        return max(self.batch_max_bytes, self.anthropic_batch_max_bytes) + 16 * 1024 * 1024


def add_batch_arguments(ap: argparse.ArgumentParser) -> None:
    """Add the ``--batch-*`` flags (dest = the :class:`BatchOptions` field names)."""
    d = BatchOptions()
    g = ap.add_argument_group("batch APIs (see scripts/mock_batches.py)")
    g.add_argument("--batch-start-delay-s", type=float, default=d.batch_start_delay_s,
                   help="seconds from creation to processing (OpenAI: validating)")
    g.add_argument("--batch-rate", type=float, default=d.batch_rate,
                   help="requests finished per second inside a batch (0 = all at once)")
    g.add_argument("--batch-finalize-s", type=float, default=d.batch_finalize_s,
                   help="seconds spent finalizing and cancelling")
    g.add_argument("--batch-expiry-s", type=float, default=d.batch_expiry_s,
                   help="completion window in seconds (documented: 24 h)")
    g.add_argument("--batch-error-rate", type=float, default=d.batch_error_rate, metavar="RATE",
                   help="fraction of batch requests that error (seeded by custom_id and attempt)")
    g.add_argument("--batch-error-status", type=int, choices=(400, 500), default=d.batch_error_status,
                   help="errored requests look like 500 server errors or 400 invalid requests")
    g.add_argument("--batch-max-requests", type=int, default=d.batch_max_requests,
                   help="OpenAI: most requests in one input file")
    g.add_argument("--batch-max-bytes", type=int, default=d.batch_max_bytes,
                   help="OpenAI: largest input file, bytes")
    g.add_argument("--anthropic-batch-max-requests", type=int, default=d.anthropic_batch_max_requests,
                   help="Anthropic: most requests in one Message Batch")
    g.add_argument("--anthropic-batch-max-bytes", type=int, default=d.anthropic_batch_max_bytes,
                   help="Anthropic: largest create body, bytes")
    g.add_argument("--batch-log", default=None,
                   help="append batch submissions and results as JSON lines here (default: --log)")


def draw_error(seed: int, custom_id: str, attempt: int, rate: float) -> bool:
    """Whether attempt ``attempt`` (1-based) of ``custom_id`` errors at ``rate``: a pure
    function of its arguments (sha256 of ``seed:custom_id:attempt`` as a fraction)."""
    if rate <= 0:
        return False
    digest = hashlib.sha256(f"{seed}:{custom_id}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def new_id(prefix: str, n: int = 24) -> str:
    return prefix + uuid.uuid4().hex[:n]


# --- the job timeline ------------------------------------------------------------------

TERMINAL = ("failed", "completed", "expired", "cancelled")


@dataclasses.dataclass
class Job:
    """One batch of either provider. ``requests`` are ``(custom_id, body)`` in input order;
    ``errored[i]`` is request i's draw; ``order`` the processing order (input indices).
    ``failure`` (OpenAI validation errors) makes the batch fail at ``start``. ``final``:
    ``[(index, type, status)]`` in processing order once ended; ``extra`` belongs to the
    provider module. ``errored[i]`` is 0 (succeeds), or the HTTP status of its error."""

    provider: str
    id: str
    seq: int
    created: float
    start: float
    expires: float
    requests: list[tuple[str, Any]]
    errored: list[int]
    order: list[int]
    failure: list[dict[str, Any]] | None = None
    cancel_at: float | None = None
    ended: float | None = None
    final: list[tuple[int, str, int | None]] | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)

    def done_at(self, t: float, rate: float) -> int:
        """How many requests (in processing order) are done at time ``t``."""
        n = len(self.requests)
        if self.failure is not None or t < self.start:
            return 0
        if rate <= 0:
            return n
        return min(n, math.floor((t - self.start) * rate + 1e-9))

    def phase(self, now: float, rate: float, finalize_s: float) -> tuple[str, int, float | None]:
        """``(status, done, since)`` at ``now`` in OpenAI's vocabulary (validating,
        in_progress, finalizing, cancelling, failed, completed, expired, cancelled); ``since``
        is when a terminal, finalizing or cancelling status began (else None)."""
        n = len(self.requests)
        if self.failure is not None:
            return ("failed", 0, self.start) if now >= self.start else ("validating", 0, None)
        if self.cancel_at is not None:
            done = self.done_at(self.cancel_at, rate)
            end = self.cancel_at + finalize_s
            return ("cancelled", done, end) if now >= end else ("cancelling", done, self.cancel_at)
        all_done = self.start + (n / rate if rate > 0 else 0.0)
        if all_done > self.expires and now >= self.expires:
            return "expired", self.done_at(self.expires, rate), self.expires
        if now < self.start:
            return "validating", 0, None
        if now < all_done:
            return "in_progress", self.done_at(now, rate), None
        if now < all_done + finalize_s:
            return "finalizing", n, all_done
        return "completed", n, all_done + finalize_s

    def counts(self, done: int) -> tuple[int, int]:
        """``(succeeded, errored)`` among the first ``done`` requests in processing order."""
        errored = sum(1 for i in self.order[:done] if self.errored[i])
        return done - errored, errored


# --- the store -------------------------------------------------------------------------


class BatchStore:
    """Jobs, files, attempts and successes of both providers, the batch log and counters.
    ``answer``/``anthropic_answer`` are mock_provider's answer functions (passed in, so this
    module does not import mock_provider); ``clock`` returns Unix seconds."""

    def __init__(self, options: Any, answer: Callable[[dict[str, Any]], dict[str, Any]],
                 anthropic_answer: Callable[[dict[str, Any]], dict[str, Any]],
                 clock: Callable[[], float] = time.time):
        self.options = options
        self.answer = answer
        self.anthropic_answer = anthropic_answer
        self.clock = clock
        self.jobs: dict[str, Job] = {}
        self.files: dict[str, dict[str, Any]] = {}  # OpenAI files: {"meta": FileObject, "data": bytes}
        self.attempts: dict[tuple[str, str], int] = {}
        self.succeeded_ids: set[tuple[str, str]] = set()
        self.pending: dict[tuple[str, str], int] = {}  # custom_id -> unended batches holding it
        self.counts = {p: dict.fromkeys(COUNTERS, 0) for p in PROVIDERS}
        self._seq = 0
        path = getattr(options, "batch_log", None)
        self._own_log: IO[str] | None = open(path, "a", encoding="utf-8") if path else None  # noqa: SIM115
        self.shared_log: Callable[[], IO[str] | None] = lambda: None
        self.renderers: dict[str, Callable[[BatchStore, Job], None]] = {}

    # -- bookkeeping

    def stats(self) -> dict[str, Any]:
        self.advance_all()
        out: dict[str, Any] = {k: sum(self.counts[p][k] for p in PROVIDERS) for k in COUNTERS}
        for p in PROVIDERS:
            out[p] = dict(self.counts[p])
        return out

    def close(self) -> None:
        if self._own_log is not None:
            self._own_log.close()
            self._own_log = None

    def log(self, records: Iterable[dict[str, Any]]) -> None:
        """Append ``records`` (each gets ``t``) to the batch log, then flush."""
        out = self._own_log or self.shared_log()
        if out is None:
            return
        t = round(self.clock(), 3)
        for rec in records:
            out.write(json.dumps({"t": t, **rec}) + "\n")
        out.flush()

    # -- jobs

    def submit(self, provider: str, requests: list[tuple[str, Any]], failure: list[dict[str, Any]] | None = None,
               invalid: list[bool] | None = None) -> Job:
        """Create a job (``failure``: OpenAI validation errors; the job then fails at its
        start and no request runs). ``invalid[i]``: request i's body would be refused, so it
        errors with 400 whatever the draw. Logs ``batch_submitted`` or ``batch_rejected``."""
        o = self.options
        now = self.clock()
        self._seq += 1
        job_id = new_id("batch_" if provider == "openai" else "msgbatch_")
        n = len(requests)
        order = list(range(n))
        random.Random(f"{o.seed}:order:{self._seq}").shuffle(order)
        job = Job(provider=provider, id=job_id, seq=self._seq, created=now, start=now + o.batch_start_delay_s,
                  expires=now + o.batch_expiry_s, requests=requests, errored=[0] * n, order=order,
                  failure=failure)
        self.jobs[job_id] = job
        c = self.counts[provider]
        if failure is not None:
            c["rejected"] += 1
            self.log([{"event": "batch_rejected", "provider": provider, "batch_id": job_id,
                       "reason": failure[:10]}])
            return job
        c["created"] += 1
        c["requests_submitted"] += n
        again: list[str] = []
        pending: list[str] = []
        for i, (custom_id, _) in enumerate(requests):
            key = (provider, custom_id)
            if self.pending.get(key):
                pending.append(custom_id)
            self.pending[key] = self.pending.get(key, 0) + 1
            attempt = self.attempts.get(key, 0) + 1
            self.attempts[key] = attempt
            if invalid is not None and invalid[i]:
                job.errored[i] = 400
            elif draw_error(o.seed, custom_id, attempt, o.batch_error_rate):
                job.errored[i] = o.batch_error_status
            if key in self.succeeded_ids:
                again.append(custom_id)
        c["resubmitted_after_success"] += len(again)
        c["resubmitted_while_pending"] += len(pending)
        self.log([{"event": "batch_submitted", "provider": provider, "batch_id": job_id,
                   "custom_ids": [cid for cid, _ in requests], "resubmitted_after_success": again,
                   "resubmitted_while_pending": pending}])
        return job

    def rejected(self, provider: str, reason: str) -> None:
        """Count and log a create request refused outright (no batch id)."""
        self.counts[provider]["rejected"] += 1
        self.log([{"event": "batch_rejected", "provider": provider, "batch_id": None, "reason": reason}])

    def phase(self, job: Job) -> tuple[str, int, float | None]:
        """The job's status now (see :meth:`Job.phase`), after materialising its results
        when it has just ended."""
        o = self.options
        status, done, since = job.phase(self.clock(), o.batch_rate, o.batch_finalize_s)
        if status in TERMINAL and job.ended is None:
            self._finish(job, status, done, since)
        return status, done, since

    def advance_all(self) -> None:
        for job in list(self.jobs.values()):
            if job.ended is None:
                self.phase(job)

    def _finish(self, job: Job, status: str, done: int, since: float | None) -> None:
        job.ended = since if since is not None else self.clock()
        if status == "failed":
            self.log([{"event": "batch_ended", "provider": job.provider, "batch_id": job.id, "status": status,
                       "counts": {}}])
            return
        rest = "expired" if status == "expired" else "canceled"
        final: list[tuple[int, str, int | None]] = []
        for k, i in enumerate(job.order):
            if k >= done:
                final.append((i, rest, None))
            elif job.errored[i]:
                final.append((i, "errored", job.errored[i]))
            else:
                final.append((i, "succeeded", 200))
        job.final = final
        self.renderers[job.provider](self, job)
        c = self.counts[job.provider]
        tally = dict.fromkeys(("succeeded", "errored", "expired", "canceled"), 0)
        records = []
        for i, kind, code in job.final:
            tally[kind] += 1
            custom_id = job.requests[i][0]
            self.pending[(job.provider, custom_id)] -= 1
            if kind == "succeeded":
                self.succeeded_ids.add((job.provider, custom_id))
            records.append({"event": "batch_result", "provider": job.provider, "batch_id": job.id,
                            "custom_id": custom_id, "type": kind, "status": code})
        for kind, k in tally.items():
            c[kind] += k
        records.append({"event": "batch_ended", "provider": job.provider, "batch_id": job.id, "status": status,
                        "counts": tally})
        self.log(records)

    def listing(self, provider: str) -> list[Job]:
        """The provider's jobs, newest first (both APIs list that way)."""
        return [j for j in reversed(self.jobs.values()) if j.provider == provider]


# --- registration ----------------------------------------------------------------------


def register(provider: Any, answer: Callable[[dict[str, Any]], dict[str, Any]],
             anthropic_answer: Callable[[dict[str, Any]], dict[str, Any]]) -> BatchStore:
    """Create the :class:`BatchStore` of a ``mock_provider.MockProvider`` (``answer`` and
    ``anthropic_answer`` are its answer functions) and add the batch routes to its ``app``
    (call before the catch-all route). Each handler counts in ``provider.requests`` and
    writes a request-log line through ``provider._record``."""
    import mock_batches_anthropic
    import mock_batches_openai

    store = BatchStore(provider.options, answer, anthropic_answer)
    store.shared_log = lambda: provider._log
    router = provider.app.router

    def wrap(kind: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        async def handler(request: Any) -> Any:
            t0 = time.monotonic()
            provider.requests += 1
            store.advance_all()
            response = await fn(store, request)
            provider._record(request, response.status, kind, None, t0)
            return response
        return handler

    for module in (mock_batches_openai, mock_batches_anthropic):
        store.renderers[module.PROVIDER] = module.render
        for method, path, kind, fn in module.ROUTES:
            router.add_route(method, path, wrap(kind, fn))
    return store


# --- reading the log -------------------------------------------------------------------


def _events(path: str | Path, provider: str | None) -> Iterable[dict[str, Any]]:
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                rec = json.loads(line)
            except ValueError as exc:
                raise ValueError(f"{path}:{number}: not JSON: {exc}") from None
            if not isinstance(rec, dict) or "event" not in rec:
                continue  # a request-log line
            if provider is None or rec.get("provider") == provider:
                yield rec


def read_batch_results(path: str | Path, provider: str | None = None) -> dict[str, list[tuple[str, str]]]:
    """``{custom_id: [(batch_id, result_type), ...]}`` in log order from the batch log at
    ``path`` (result types: succeeded, errored, expired, canceled); ``provider`` filters.
    Raises OSError if unreadable, ValueError naming the line if a line is not JSON."""
    out: dict[str, list[tuple[str, str]]] = {}
    for rec in _events(path, provider):
        if rec["event"] == "batch_result":
            out.setdefault(rec["custom_id"], []).append((rec["batch_id"], rec["type"]))
    return out


def read_batch_submissions(path: str | Path, provider: str | None = None) -> dict[str, list[str]]:
    """``{custom_id: [batch_id, ...]}``: every accepted batch that held the custom_id."""
    out: dict[str, list[str]] = {}
    for rec in _events(path, provider):
        if rec["event"] == "batch_submitted":
            for cid in rec["custom_ids"]:
                out.setdefault(cid, []).append(rec["batch_id"])
    return out


def resubmitted_after_success(path: str | Path, provider: str | None = None) -> dict[str, list[str]]:
    """``{custom_id: [batch_id, ...]}``: batches that resubmitted a custom_id after it had
    succeeded in an earlier batch (empty when the client never did)."""
    out: dict[str, list[str]] = {}
    for rec in _events(path, provider):
        if rec["event"] == "batch_submitted":
            for cid in rec.get("resubmitted_after_success", []):
                out.setdefault(cid, []).append(rec["batch_id"])
    return out
