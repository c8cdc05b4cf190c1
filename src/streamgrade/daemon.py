"""The systemd supervision actor of ``streamgrade watch``: watchdog pings and status lines.

:func:`supervise` runs next to the pipeline. Every ``interval`` seconds it reads the
pipeline's :class:`~streamgrade.run_stats.RunStats` and

* sends ``WATCHDOG=1`` only while the daemon is healthy: something advanced since the last
  check (``stats.done``, graded + failed, or ``stats.found``), or nothing is in flight
  (healthily idle), or the last progress (or idle moment) is less than ``stuck_after``
  seconds old. When sessions are in flight and nothing advanced for ``stuck_after``
  seconds, the pings stop, so systemd's watchdog (``WatchdogSec=``) kills and, with
  ``Restart=on-failure``, restarts the wedged daemon; the sessions in flight were not
  committed and are graded again by the next run.
* sends ``STATUS=`` with the counts (``graded 12, failed 1, in flight 3, skipped 40``)
  whenever the line changes, for ``systemctl status``.

The notion of "stuck" lives in :class:`ProgressWatch`, which ``/healthz`` of the metrics
server (:mod:`streamgrade.ops`) shares, so the endpoint answers 503 exactly when the pings
stop. ``clock`` and ``sleep`` are injectable so tests drive it with a fake clock.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Awaitable, Callable, NamedTuple, Protocol

import anyio

from .sdnotify import Notifier

log = logging.getLogger("streamgrade.daemon")

#: Least ``stuck_after`` (s): a session is never declared stuck sooner.
MIN_STUCK_AFTER_S = 300.0


class Stats(Protocol):
    found: int
    skipped: int
    graded: int
    failed: int
    in_flight: int

    @property
    def done(self) -> int: ...


def stuck_after_for(cfg) -> float:
    """How long sessions may be in flight with nothing completing before the daemon counts
    as wedged: the worst case of one judge call with all its retries (timeout per attempt
    plus the longest wait between attempts) of either LLM judge's section ([openai],
    [anthropic]), and at least :data:`MIN_STUCK_AFTER_S`."""
    worst = max((o.max_retries + 1) * o.timeout_s + o.max_retries * max(o.backoff_max_s, o.max_retry_after_s)
                for o in (cfg.openai, cfg.anthropic))
    return max(MIN_STUCK_AFTER_S, worst)


def status_line(stats: Stats) -> str:
    """``graded 12, failed 1, in flight 3, skipped 40``."""
    return f"graded {stats.graded}, failed {stats.failed}, in flight {stats.in_flight}, skipped {stats.skipped}"


class Health(NamedTuple):
    """One look at the pipeline: ``healthy``; ``idle_for`` (s) since the last progress (0
    while nothing is in flight); ``in_flight`` sessions; ``stuck_after`` (s) the bound;
    ``reason`` a short text for ``/healthz`` and the logs."""

    healthy: bool
    idle_for: float
    in_flight: int
    stuck_after: float
    reason: str


class ProgressWatch:
    """The daemon's one notion of "wedged", shared by the systemd watchdog
    (:class:`Supervisor`) and ``/healthz`` (:mod:`streamgrade.ops.server`).

    Each :meth:`check` samples ``stats``: progress is ``stats.done`` or ``stats.found``
    having changed since the previous check, or nothing being in flight (healthily idle).
    Both counts only grow, so sampling now and then misses no change; the time of progress
    is the time of the check that saw it. Healthy: nothing in flight, or the last progress
    less than ``stuck_after`` seconds ago. Safe to call from several threads (the metrics
    server answers in its own)."""

    def __init__(self, stats: Stats, *, stuck_after: float, clock: Callable[[], float] = time.monotonic):
        self.stats = stats
        self.stuck_after = stuck_after
        self.clock = clock
        self._last: tuple[int, int] | None = None
        self._last_progress = clock()
        self._lock = threading.Lock()

    def check(self) -> Health:
        with self._lock:
            st, now = self.stats, self.clock()
            seen, in_flight = (st.done, st.found), st.in_flight
            if self._last is None or seen != self._last or in_flight == 0:
                self._last_progress = now
            self._last = seen
            idle_for = now - self._last_progress
        healthy = in_flight == 0 or idle_for < self.stuck_after
        if in_flight == 0:
            reason = "idle"
        elif healthy:
            reason = f"progressing: {in_flight} in flight, last progress {idle_for:.0f} s ago"
        else:
            reason = (f"{in_flight} in flight and nothing completed for {idle_for:.0f} s "
                      f"(limit {self.stuck_after:g} s)")
        return Health(healthy, idle_for, in_flight, self.stuck_after, reason)


class Supervisor:
    """One check at a time (:meth:`check`); :func:`supervise` loops it. Kept separate so
    tests can step it without an event loop. ``progress`` shares a :class:`ProgressWatch`
    with ``/healthz`` (default: one of its own over ``stats``)."""

    def __init__(self, stats: Stats, notifier: Notifier, *, stuck_after: float, watchdog: bool = True,
                 clock: Callable[[], float] = time.monotonic, stopping: Callable[[], bool] | None = None,
                 progress: ProgressWatch | None = None):
        self.stats = stats
        self.notifier = notifier
        self.progress = progress or ProgressWatch(stats, stuck_after=stuck_after, clock=clock)
        self.stuck_after = self.progress.stuck_after
        self.watchdog = watchdog
        self.stopping = stopping
        self._last_status: str | None = None
        self.stuck = False

    def check(self) -> bool:
        """Send the ping (if healthy and ``watchdog``) and the status (if changed); returns
        whether the daemon counted as healthy."""
        st = self.stats
        health = self.progress.check()
        healthy, idle_for = health.healthy, health.idle_for
        if not healthy and not self.stuck:
            log.error("no session completed for %.0f s with %d in flight: stopping watchdog pings so systemd "
                      "restarts the daemon", idle_for, health.in_flight)
        elif healthy and self.stuck:
            log.warning("progress again after being stuck; watchdog pings resume")
        self.stuck = not healthy
        if healthy and self.watchdog:
            self.notifier.watchdog()
        text = status_line(st)
        if self.stuck:
            text += f"; stuck: nothing completed for {idle_for:.0f} s"
        if self.stopping is not None and self.stopping():
            text = f"stopping, draining: {text}"
        if text != self._last_status:
            self._last_status = text
            self.notifier.status(text)
        return healthy


async def supervise(stats: Stats, notifier: Notifier, *, interval: float, stuck_after: float,
                    watchdog: bool = True, clock: Callable[[], float] = time.monotonic,
                    sleep: Callable[[float], Awaitable[object]] = anyio.sleep,
                    stopping: Callable[[], bool] | None = None, progress: ProgressWatch | None = None) -> None:
    """Check every ``interval`` seconds until cancelled (see the module docstring).
    ``watchdog=False`` sends only the status lines (no ``WatchdogSec=`` configured);
    ``progress``: a :class:`ProgressWatch` shared with ``/healthz``."""
    sup = Supervisor(stats, notifier, stuck_after=stuck_after, watchdog=watchdog, clock=clock, stopping=stopping,
                     progress=progress)
    while True:
        sup.check()
        await sleep(interval)
