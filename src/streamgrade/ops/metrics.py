"""Prometheus metrics of a running pipeline (``streamgrade watch --metrics-port N``).

Naming follows the Prometheus guide "Metric and label naming" (base units in the name:
seconds, USD; ``_total`` for counters). Every family lives in a registry of its own (a
``CollectorRegistry`` per :class:`PipelineMetrics`, never the process-global one), so
tests and several pipelines in one process do not clash.

Read when scraped, from what the pipeline counts anyway (no Prometheus call in the actors):

================================================  =========  ====================================
``streamgrade_sessions_total{status,format}``     counter    sessions by outcome: graded, failed,
                                                             ungradable, skipped (unchanged
                                                             since graded), failed_earlier
                                                             (skipped: failed before on the same
                                                             input) (:class:`RunStats.by_format`)
``streamgrade_sessions_found_total``              counter    sessions seen by the source
``streamgrade_sessions_in_flight``                gauge      admitted, not yet committed
``streamgrade_stream_queue_depth{stream}``        gauge      items buffered in each bounded stream
                                                             (refs, jobs, grade, done, written):
                                                             anyio ``statistics()
                                                             .current_buffer_used``
``streamgrade_stream_capacity{stream}``           gauge      each stream's ``max_buffer_size``
``streamgrade_stream_waiting_senders{stream}``    gauge      tasks blocked sending (backpressure)
``streamgrade_judge_http_429_total``              counter    429 answers (``LimiterStats``)
``streamgrade_judge_rate_limit_paused_seconds_    counter    seconds requests waited at the pause
total``                                                      gate after a 429 or an exhausted
                                                             budget
``streamgrade_judge_tokens_total{kind}``          counter    prompt, completion, cached (cached is
                                                             part of prompt), from the committed
                                                             records
``streamgrade_judge_cost_usd_total``              counter    USD of the committed records
``streamgrade_last_progress_age_seconds``         gauge      seconds since the last progress as
                                                             the watchdog sees it (a session
                                                             found or finished; 0 while idle)
``streamgrade_stuck_after_seconds``               gauge      the bound past which it is stuck
``streamgrade_healthy``                           gauge      1, or 0 when ``/healthz`` says 503
================================================  =========  ====================================

Observed as they happen (histograms, thread-safe):

- ``streamgrade_judge_request_seconds{outcome}``: one LLM judge HTTP attempt, from sending
  to the answer or the failure (``outcome``: ok, rate_limited (429), client_error (other
  4xx), server_error (5xx), no_response (timeout, transport error, cancelled)), through the
  judge's ``on_attempt`` hook; ``streamgrade_judge_retries_total`` counts the attempts
  after a request's first. The heuristic judge sends no request: both stay empty.
- ``streamgrade_session_latency_seconds``: end to end, from the session's last write (the
  newest modification time of its files when it was assembled) to its committed ledger
  line, for the sessions written while this pipeline runs (a backlog found at start-up
  would measure the age of old files instead); includes the settle time.
- ``streamgrade_session_pipeline_seconds``: from admission (after the settle time) to the
  committed ledger line, for every session committed.

Plus ``streamgrade_build_info{version,python}`` and the standard ``process_*``,
``python_gc_*`` and ``python_info`` families of prometheus-client.
"""

from __future__ import annotations

import logging
import platform
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, Info
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

from .. import __version__
from ..daemon import Health, ProgressWatch

log = logging.getLogger("streamgrade.metrics")

#: Buckets (s) of one judge HTTP attempt: a fast local model to a slow reasoning call.
JUDGE_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0)
#: Buckets (s) of a session's end-to-end latency (settle time included; default settle 5 s).
LATENCY_BUCKETS = (0.5, 1.0, 2.0, 5.0, 7.5, 10.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
#: Buckets (s) of a session's time from admission to commit.
PIPELINE_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0)
#: The streams of :meth:`Pipeline.run`, in pipeline order.
STREAMS = ("refs", "jobs", "grade", "done", "written")


def outcome(status: int) -> str:
    """The ``outcome`` label of an HTTP attempt's status (0: no response)."""
    if status == 0:
        return "no_response"
    if 200 <= status < 300:
        return "ok"
    if status == 429:
        return "rate_limited"
    return "server_error" if status >= 500 else "client_error"


class PipelineMetrics:
    """The metrics of one pipeline and its judge, in :attr:`registry` (see the module
    docstring for the families).

    ``pipeline``: a :class:`~streamgrade.pipeline.Pipeline` (its ``stats``, ``streams`` and
    ``on_commit`` hook are used; an ``on_commit`` already set is still called). ``judge``:
    its ``on_attempt`` hook (OpenAI-compatible and Anthropic judges) and ``limits.stats``
    are used when it has them. ``progress``: the :class:`~streamgrade.daemon.ProgressWatch`
    shared with the watchdog, for the progress age and :meth:`health`. ``wall`` and
    ``clock`` (seconds) are injectable for tests. The hooks never raise into the pipeline:
    an error is logged once and the observation dropped."""

    def __init__(self, pipeline: Any, judge: Any, progress: ProgressWatch, *,
                 wall: Callable[[], float] = time.time, clock: Callable[[], float] = time.monotonic):
        self.pipeline = pipeline
        self.judge = judge
        self.progress = progress
        self._wall = wall
        self._clock = clock
        self.started_wall = wall()
        self._warned = False
        reg = self.registry = CollectorRegistry()
        self.judge_request = Histogram(
            "streamgrade_judge_request_seconds", "One LLM judge HTTP attempt, from sending to the answer or failure.",
            ["outcome"], buckets=JUDGE_BUCKETS, registry=reg)
        self.judge_retries = Counter(
            "streamgrade_judge_retries", "Judge HTTP attempts after a request's first (retries).", registry=reg)
        self.session_latency = Histogram(
            "streamgrade_session_latency_seconds",
            "From a session's last file write (newest mtime) to its committed ledger line; sessions written "
            "while the daemon runs.", buckets=LATENCY_BUCKETS, registry=reg)
        self.session_pipeline = Histogram(
            "streamgrade_session_pipeline_seconds", "From a session's admission to its committed ledger line.",
            buckets=PIPELINE_BUCKETS, registry=reg)
        Info("streamgrade_build", "streamgrade version and Python.", registry=reg).info(
            {"version": __version__, "python": platform.python_version()})
        reg.register(_StatsCollector(self))
        ProcessCollector(registry=reg)
        PlatformCollector(registry=reg)
        GCCollector(registry=reg)
        previous = pipeline.on_commit

        def on_commit(job: Any, record: Any) -> None:
            if previous is not None:
                previous(job, record)
            self.observe_commit(job, record)

        pipeline.on_commit = on_commit
        if hasattr(judge, "on_attempt"):
            judge.on_attempt = self.observe_attempt

    # -- hooks -------------------------------------------------------------------------
    def observe_attempt(self, seconds: float, status: int, number: int) -> None:
        """The judge's ``on_attempt`` hook: one HTTP attempt took ``seconds``."""
        try:
            self.judge_request.labels(outcome(status)).observe(max(0.0, seconds))
            if number > 1:
                self.judge_retries.inc()
        except Exception as exc:  # never into the judge
            self._warn(exc)

    def observe_commit(self, job: Any, record: Any) -> None:
        """The pipeline's ``on_commit`` hook: ``job``'s ledger line was just committed."""
        try:
            self.session_pipeline.observe(max(0.0, self._clock() - job.admitted_at))
            last = job.last_write
            if last is not None and last >= self.started_wall:
                self.session_latency.observe(max(0.0, self._wall() - last))
        except Exception as exc:  # never into the sink
            self._warn(exc)

    def _warn(self, exc: Exception) -> None:
        if not self._warned:
            self._warned = True
            log.warning("metrics: observation dropped: %r (further ones silently)", exc)

    # -- health ------------------------------------------------------------------------
    def health(self) -> Health:
        """The watchdog's verdict now (:meth:`ProgressWatch.check`), for ``/healthz``."""
        return self.progress.check()


class _StatsCollector:
    """Builds the read-at-scrape families (module docstring) from the pipeline's counters.
    Runs in the metrics server's thread: it only copies ints and dicts (atomic in CPython)."""

    def __init__(self, metrics: PipelineMetrics):
        self.m = metrics

    def describe(self) -> list[Metric]:
        return list(self.collect())

    def collect(self) -> Iterator[Metric]:
        m = self.m
        st = m.pipeline.stats
        sessions = CounterMetricFamily("streamgrade_sessions", "Sessions by outcome and input format.",
                                       labels=["status", "format"])
        for (status, fmt), n in sorted(dict(st.by_format).items()):
            sessions.add_metric([status, fmt], n)
        yield sessions
        yield CounterMetricFamily("streamgrade_sessions_found", "Sessions seen by the source (scan or watch).",
                                  value=st.found)
        yield GaugeMetricFamily("streamgrade_sessions_in_flight", "Sessions admitted and not yet committed.",
                                value=st.in_flight)
        depth = GaugeMetricFamily("streamgrade_stream_queue_depth", "Items buffered in a bounded stream.",
                                  labels=["stream"])
        capacity = GaugeMetricFamily("streamgrade_stream_capacity", "A bounded stream's capacity (items).",
                                     labels=["stream"])
        waiting = GaugeMetricFamily("streamgrade_stream_waiting_senders",
                                    "Tasks blocked sending into a full stream (backpressure).", labels=["stream"])
        streams = dict(m.pipeline.streams)
        for name in STREAMS:
            if name in streams:
                s = streams[name].statistics()
                depth.add_metric([name], s.current_buffer_used)
                capacity.add_metric([name], s.max_buffer_size)
                waiting.add_metric([name], s.tasks_waiting_send)
        yield depth
        yield capacity
        yield waiting
        limits = getattr(getattr(m.judge, "limits", None), "stats", None)
        yield CounterMetricFamily("streamgrade_judge_http_429", "HTTP 429 answers of the judge's provider.",
                                  value=getattr(limits, "rate_limited", 0))
        yield CounterMetricFamily("streamgrade_judge_rate_limit_paused_seconds",
                                  "Seconds requests waited at the rate limiter's pause gate (Retry-After, reset).",
                                  value=getattr(limits, "paused_s", 0.0))
        tokens = CounterMetricFamily("streamgrade_judge_tokens", "Judge tokens of the committed sessions "
                                     "(cached: prompt tokens read from the provider's cache, part of prompt).",
                                     labels=["kind"])
        tokens.add_metric(["prompt"], st.prompt_tokens)
        tokens.add_metric(["completion"], st.completion_tokens)
        tokens.add_metric(["cached"], st.cached_tokens)
        yield tokens
        yield CounterMetricFamily("streamgrade_judge_cost_usd", "Judge cost (USD) of the committed sessions, "
                                  "at the configured prices.", value=st.cost_usd)
        h = m.health()
        yield GaugeMetricFamily("streamgrade_last_progress_age_seconds",
                                "Seconds since a session was last found or finished (0 while nothing is in flight).",
                                value=h.idle_for)
        yield GaugeMetricFamily("streamgrade_stuck_after_seconds",
                                "With sessions in flight and no progress for this long the daemon is stuck.",
                                value=h.stuck_after)
        yield GaugeMetricFamily("streamgrade_healthy", "1 when healthy, 0 when stuck (/healthz answers 503).",
                                value=1 if h.healthy else 0)


__all__ = ["PipelineMetrics", "outcome", "STREAMS"]
