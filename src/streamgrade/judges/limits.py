"""Client-side rate limiting for one provider: pace requests and tokens under its limits,
stop together when it says to wait, and find the limit when nobody says what it is.

One :class:`RateLimiter` is shared by every request of a judge. Before each HTTP attempt,
``await limiter.acquire(tokens)``:

1. the **pause gate**: after a 429 (or ``x-ratelimit-remaining-* = 0``) nobody sends until
   the server's ``Retry-After`` / ``x-ratelimit-reset-*`` time has passed, so one 429 does
   not become fifty;
2. the **request pacer** (requests per second): the configured RPM, or the limit the server
   announces in ``x-ratelimit-limit-requests`` (the lower wins), paced evenly with at most
   one second of burst (aiolimiter's leaky bucket); when no limit is known it adapts, as TCP
   congestion control does: slow start from ``adaptive_start_rps`` doubling each second while
   demand saturates it; after a 429 the rate drops to at most half, down to what the
   server's Retry-After implies (one request per Retry-After interval) but not below an
   eighth, and then grows by ``adaptive_increase`` per saturated second;
3. the **token bucket** (tokens per minute): the configured TPM or ``x-ratelimit-limit-tokens``;
   a request takes its estimated prompt tokens plus ``max_tokens`` (OpenAI counts the
   completion budget against TPM when the request arrives); ``settle()`` reconciles the
   prompt estimate with the tokens the server reported.

Headers: OpenAI's ``x-ratelimit-{limit,remaining,reset}-{requests,tokens}``, with reset
durations like ``1s``, ``6m0s``, ``120ms`` (OpenAI rate-limits guide); ``Retry-After``
(RFC 9110 §10.2.3) and ``retry-after-ms``.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone

import anyio
from aiolimiter import AsyncLimiter

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")


def parse_reset(value: str | None) -> float | None:
    """Seconds of an OpenAI reset duration (``1s``, ``6m0s``, ``1h2m3.5s``, ``120ms``), a
    plain number of seconds, or the seconds until an RFC 3339 time (Anthropic's
    ``anthropic-ratelimit-*-reset``, docs.anthropic.com "Rate limits"); None when it does
    not parse."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    if "T" in value:  # Anthropic: an RFC 3339 time ("2025-01-01T00:00:30Z"), seconds from now
        try:
            at = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if at.tzinfo is None:
            at = at.replace(tzinfo=timezone.utc)
        return max(0.0, (at - datetime.now(timezone.utc)).total_seconds())
    parts = _DURATION.findall(value)
    if not parts or "".join(n + u for n, u in parts) != value:
        return None
    scale = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
    return sum(float(n) * scale[u] for n, u in parts)


def _header(headers: Mapping[str, str], field: str, kind: str) -> str | None:
    """A rate-limit header: OpenAI's ``x-ratelimit-{field}-{kind}`` or Anthropic's
    ``anthropic-ratelimit-{kind}-{field}`` (field: limit|remaining|reset; kind:
    requests|tokens)."""
    value = headers.get(f"x-ratelimit-{field}-{kind}")
    return value if value is not None else headers.get(f"anthropic-ratelimit-{kind}-{field}")


def _int(value: str | None) -> int | None:
    try:
        return int(float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass
class LimiterStats:
    """What the limiter did: requests admitted, 429s seen, seconds spent paused by the gate,
    the current request rate (req/s, None = unlimited) and whether the limit was learned
    from headers."""

    admitted: int = 0
    rate_limited: int = 0
    paused_s: float = 0.0
    rate_rps: float | None = None
    limits_from_headers: bool = False


class _TokenBucket:
    """Tokens per minute with a 10-second burst (at least one whole request)."""

    def __init__(self, tpm: int, clock: Callable[[], float]):
        self.clock = clock
        self.set_tpm(tpm)
        self.level = self.capacity
        self.stamp = clock()

    def set_tpm(self, tpm: int) -> None:
        self.tpm = tpm
        self.rate = tpm / 60.0
        self.capacity = max(self.rate * 10, 1.0)

    def _refill(self) -> None:
        now = self.clock()
        self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
        self.stamp = now

    def wait_time(self, tokens: float) -> float:
        self._refill()
        need = min(tokens, self.capacity) - self.level
        return 0.0 if need <= 0 else need / self.rate

    def take(self, tokens: float) -> None:
        self._refill()
        self.level -= tokens

    def give_back(self, tokens: float) -> None:
        self._refill()
        self.level = min(self.capacity, self.level + tokens)


class RateLimiter:
    """Shared admission control for one provider (see module docstring).

    ``rpm``/``tpm``: configured limits (0 = unknown). ``adaptive_start_rps`` and
    ``adaptive_increase`` (fraction per saturated second) steer the search when no limit is
    known. ``clock`` and ``sleep`` are injectable for tests."""

    def __init__(self, rpm: int = 0, tpm: int = 0, *, adaptive_start_rps: float = 5.0,
                 adaptive_increase: float = 0.02, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], object] = anyio.sleep):
        self.clock = clock
        self.sleep = sleep
        self.stats = LimiterStats()
        self._configured_rpm = rpm
        self._resume_at = 0.0
        self._pacer: AsyncLimiter | None = None
        self._adaptive = rpm <= 0
        self._slow_start = self._adaptive
        self._increase = adaptive_increase
        self._window_start = clock()
        self._window_admitted = 0
        self._generation = 0
        self._next_slot = clock()
        self._set_rate(rpm / 60.0 if rpm > 0 else adaptive_start_rps)
        self._tokens = _TokenBucket(tpm, clock) if tpm > 0 else None

    # -- admission --------------------------------------------------------------------
    async def acquire(self, tokens: float = 0.0) -> None:
        """Wait until a request of ``tokens`` estimated tokens may be sent."""
        while True:
            now = self.clock()
            if now < self._resume_at:
                pause = self._resume_at - now
                self.stats.paused_s += pause
                await self.sleep(pause)
                continue
            if self._tokens is not None:
                wait = self._tokens.wait_time(tokens)
                if wait > 0:
                    await self.sleep(wait)
                    continue
            break
        if not await self._pace():
            return await self.acquire(tokens)  # the rate or the gate changed while we waited
        if self._tokens is not None:
            self._tokens.take(tokens)
        self.stats.admitted += 1
        self._adapt_up()

    def settle(self, estimated_prompt: float, reported_prompt: int | None) -> None:
        """Reconcile a request's prompt-token estimate with the server's count."""
        if self._tokens is not None and reported_prompt is not None:
            self._tokens.give_back(estimated_prompt - reported_prompt)

    # -- feedback from responses ------------------------------------------------------
    def observe(self, status: int, headers: Mapping[str, str], retry_after: float | None) -> None:
        """Learn from a response: limits and remaining budget from the x-ratelimit headers,
        and, on 429, pause everyone and cut the rate."""
        now = self.clock()
        limit_req = _int(_header(headers, "limit", "requests"))
        limit_tok = _int(_header(headers, "limit", "tokens"))
        if limit_req:
            self.stats.limits_from_headers = True
            rpm = min(limit_req, self._configured_rpm) if self._configured_rpm > 0 else limit_req
            if self._adaptive or abs(rpm / 60.0 - (self.stats.rate_rps or 0)) > 1e-9:
                self._adaptive = self._slow_start = False
                self._set_rate(rpm / 60.0)
        if limit_tok:
            if self._tokens is None:
                self._tokens = _TokenBucket(limit_tok, self.clock)
            elif limit_tok < self._tokens.tpm:
                self._tokens.set_tpm(limit_tok)
        for kind in ("requests", "tokens"):
            if _int(_header(headers, "remaining", kind)) == 0:
                reset = parse_reset(_header(headers, "reset", kind))
                if reset:
                    self._resume_at = max(self._resume_at, now + reset)
        if retry_after is not None:  # 429, or 503 with Retry-After: everyone waits
            self._resume_at = max(self._resume_at, now + retry_after)
        if status == 429:
            self.stats.rate_limited += 1
            wait = retry_after if retry_after is not None else 1.0
            self._resume_at = max(self._resume_at, now + wait)
            if self._adaptive:
                # Halve at least; go down to what Retry-After implies (a token bucket answers
                # with the time until its next token), but not below an eighth per 429.
                rate = self.stats.rate_rps or 1.0
                implied = 1.0 / wait if wait > 0 else 0.0
                self._slow_start = False
                self._set_rate(max(0.05, min(rate / 2, max(implied, rate / 8))))

    # -- internals --------------------------------------------------------------------
    async def _pace(self) -> bool:
        """Wait for this request's slot; False when the rate or the gate changed meanwhile
        (the caller asks again, so a cut applies to requests already queued)."""
        if not self._adaptive and self._pacer is not None:
            await self._pacer.acquire()  # a known limit: aiolimiter's leaky bucket
            return self.clock() >= self._resume_at
        # Searching: an even schedule (GCRA) that follows every change of the rate at once.
        generation = self._generation
        now = self.clock()
        slot = max(now, self._next_slot)
        self._next_slot = slot + 1.0 / (self.stats.rate_rps or 1.0)
        if slot > now:
            await self.sleep(slot - now)
        return generation == self._generation and self.clock() >= self._resume_at

    def _set_rate(self, rps: float) -> None:
        self.stats.rate_rps = rps
        self._generation += 1
        self._next_slot = min(self._next_slot, self.clock() + 1.0 / rps)
        if not self._adaptive:
            # A known limit: at most one second of burst, so a limit enforced over any
            # window is never exceeded by more than that, and the pace is even.
            per = 1.0 if rps >= 1 else 1.0 / rps
            self._pacer = AsyncLimiter(max(1.0, rps * per), per)
        self._window_start, self._window_admitted = self.clock(), 0

    def _adapt_up(self) -> None:
        """Each second in which the pacer was saturated (admitted about its rate), grow:
        double in slow start, else by ``adaptive_increase``."""
        if not self._adaptive:
            return
        self._window_admitted += 1
        now = self.clock()
        span = now - self._window_start
        if span < 1.0:
            return
        rate = self.stats.rate_rps or 1.0
        saturated = self._window_admitted >= 0.9 * rate * span
        if saturated:
            self._set_rate(rate * 2 if self._slow_start else rate * (1 + self._increase))
        else:
            self._window_start, self._window_admitted = now, 0


def estimate_tokens(body: bytes | str) -> int:
    """Prompt tokens of a request body, estimated as characters / 4 (OpenAI's rule of thumb
    for English; JSON punctuation makes it a slight over-estimate)."""
    return math.ceil(len(body) / 4)


class AdaptiveConcurrency:
    """A semaphore whose size adapts (AIMD): it starts at ``maximum``; each 429 halves it
    (never below 1) when ``adaptive`` is true (the provider's limits are unknown), and every
    ``limit`` successes add one back, up to ``maximum``. Create it inside the event loop."""

    def __init__(self, maximum: int, adaptive: bool = True):
        self.maximum = self.limit = max(1, maximum)
        self.adaptive = adaptive
        self.active = 0
        self._successes = 0
        self._cond = anyio.Condition()

    async def acquire(self) -> None:
        async with self._cond:
            while self.active >= self.limit:
                await self._cond.wait()
            self.active += 1

    async def release(self, *, ok: bool, rate_limited: bool) -> None:
        async with self._cond:
            self.active -= 1
            if rate_limited and self.adaptive:
                self.limit = max(1, self.limit // 2)
                self._successes = 0
            elif ok and self.limit < self.maximum:
                self._successes += 1
                if self._successes >= self.limit:
                    self.limit += 1
                    self._successes = 0
                    self._cond.notify()  # one more slot than before
            self._cond.notify()  # the slot just freed: wake one waiter, not all
