"""Small, pure retry helpers for the HTTP judge: Retry-After parsing, backoff, status policy.

Sources:

- RFC 9110 (HTTP Semantics) §10.2.3 "Retry-After": the value is either ``delay-seconds``
  (a non-negative decimal integer of seconds) or an ``HTTP-date`` (§5.6.7, IMF-fixdate such
  as ``Wed, 21 Oct 2015 07:28:00 GMT``), after which the client may retry.
- RFC 9110 §15.5.9 (408 Request Timeout), §15.5.10 (409 Conflict), §15.6 (5xx), and
  RFC 6585 §4 (429 Too Many Requests): the statuses worth retrying.
- Marc Brooker, "Exponential Backoff And Jitter", AWS Architecture Blog (2015): capped
  exponential backoff with *full jitter*, ``sleep = random_between(0, min(cap, base * 2**attempt))``.
"""

from __future__ import annotations

import math
import random
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime

__all__ = ["parse_retry_after", "backoff_delay", "is_retryable_status", "RETRYABLE_STATUSES"]

#: Non-5xx statuses that are retried: 408 Request Timeout, 409 Conflict (OpenAI documents
#: it as a transient lock conflict), 429 Too Many Requests.
RETRYABLE_STATUSES = frozenset({408, 409, 429})

# 2.0 ** 62 is far beyond any sane cap; clamping the exponent keeps the float finite.
_MAX_EXPONENT = 62


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait according to a ``Retry-After`` header value (RFC 9110 §10.2.3).

    ``value`` is either delay-seconds (``"120"``; a decimal such as ``"1.5"`` is accepted
    too, as some servers send it) or an HTTP-date (``"Wed, 21 Oct 2015 07:28:00 GMT"``,
    parsed with :func:`email.utils.parsedate_to_datetime`, which also reads the obsolete
    RFC 850 and asctime forms). For a date the delay is ``date - now``; ``now`` defaults to
    the current UTC time and a naive ``now`` or date is taken as UTC.

    Returns the delay in seconds (a negative delay or a date in the past gives ``0.0``), or
    ``None`` when ``value`` is ``None``, empty, or not parseable (including NaN/infinity).
    Never raises.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(seconds):
            return None
        return max(0.0, seconds)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:  # pragma: no cover - very old Pythons returned None on bad input
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    if now is None:
        now = datetime.now(timezone.utc)
    elif now.tzinfo is None:
        now = now.replace(tzinfo=timezone.utc)
    return max(0.0, (when - now).total_seconds())


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random) -> float:
    """Capped exponential backoff with full jitter, in seconds.

    ``attempt`` counts failed attempts from 0 (the delay before the first retry uses 0);
    ``base_s`` is the first ceiling and ``cap_s`` the largest ceiling, both in seconds. The
    result is ``rng.uniform(0, min(cap_s, base_s * 2**attempt))`` (AWS Architecture Blog,
    "Exponential Backoff And Jitter": full jitter spreads synchronised clients best). The
    exponent is clamped so a huge ``attempt`` cannot overflow; negative inputs count as 0.
    """
    exponent = min(max(attempt, 0), _MAX_EXPONENT)
    ceiling = min(max(cap_s, 0.0), max(base_s, 0.0) * (2.0**exponent))
    return rng.uniform(0.0, ceiling)


def is_retryable_status(code: int) -> bool:
    """Whether an HTTP status is worth retrying: 408, 409, 429 and every 5xx (500-599).

    Other 4xx (400 bad request, 401/403 auth, 404 unknown model or path, 422 ...) will fail
    the same way again and must not be retried."""
    return code in RETRYABLE_STATUSES or 500 <= code <= 599
