"""Features of a scores.jsonl record for calibration, generic across formats.

Every feature is computed from record fields only (never from a judge's internals), so a
model fitted on one judge's or benchmark's records applies to any other's. A feature that
a record lacks is None (imputed by the model, with a missing-indicator where training saw
it missing). Counts are log1p-transformed (heavy-tailed); component scores are 0-1.

Names and meaning (the model file lists the names it uses):

- ``score``, ``outcome``, ``process``, ``efficiency``: the final score and the rubric
  components, / 100; ``confidence``: the judge's confidence 0-1;
- ``log_turns``, ``log_tool_calls``, ``log_actions``: log1p of ``turns``, ``tool_calls``,
  ``n_actions``; ``log_duration_s``: log1p of ``duration_s``;
- ``log_tokens``: log1p of ``metrics.total_tokens`` (else input + output tokens);
- ``log_errors``: log1p of the sum of numeric metrics whose name holds "error"
  (``tool_errors``, ...);
- ``term_finished``, ``term_limit``, ``term_error``: one-hot of the termination reason,
  grouped by words (finished: stop, completed, done, submitted, success, finish; limit:
  limit, max_, timeout, budget, length; error: error, exception, fail, crash); all 0 for
  other or unknown reasons, None without one.
"""

from __future__ import annotations

import math
from typing import Any, Callable, Mapping

_FINISHED = ("stop", "complete", "done", "submit", "success", "finish")
_LIMIT = ("limit", "max_", "timeout", "budget", "length")
_ERROR = ("error", "exception", "fail", "crash")


def _num(v: Any) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def _log1p(v: Any) -> float | None:
    f = _num(v)
    return math.log1p(max(f, 0.0)) if f is not None else None


def _unit(v: Any) -> float | None:
    f = _num(v)
    return f / 100.0 if f is not None else None


def _component(name: str) -> Callable[[Mapping[str, Any]], float | None]:
    return lambda r: _unit((r.get("components") or {}).get(name))


def _tokens(r: Mapping[str, Any]) -> float | None:
    m = r.get("metrics") or {}
    total = _num(m.get("total_tokens"))
    if total is None:
        parts = [_num(m.get("input_tokens")), _num(m.get("output_tokens"))]
        total = sum(p for p in parts if p is not None) if any(p is not None for p in parts) else None
    return _log1p(total)


def _errors(r: Mapping[str, Any]) -> float | None:
    vals = [_num(v) for k, v in (r.get("metrics") or {}).items() if "error" in str(k).lower()]
    vals = [v for v in vals if v is not None]
    return _log1p(sum(vals)) if vals else None


def _term(words: tuple[str, ...]) -> Callable[[Mapping[str, Any]], float | None]:
    def f(r: Mapping[str, Any]) -> float | None:
        t = r.get("termination")
        if not isinstance(t, str) or not t:
            return None
        group = _group(t.lower())
        return 1.0 if group is not None and group == words else 0.0
    return f


def _group(t: str) -> tuple[str, ...] | None:
    """The first group whose words occur in ``t`` (error before limit before finished:
    "max_steps_error" is an error)."""
    for words in (_ERROR, _LIMIT, _FINISHED):
        if any(w in t for w in words):
            return words
    return None


#: name -> function of a record (a scores.jsonl dict) giving the value or None.
FEATURES: dict[str, Callable[[Mapping[str, Any]], float | None]] = {
    "score": lambda r: _unit(r.get("score")),
    "outcome": _component("outcome"),
    "process": _component("process"),
    "efficiency": _component("efficiency"),
    "confidence": lambda r: _num(r.get("confidence")),
    "log_turns": lambda r: _log1p(r.get("turns")),
    "log_tool_calls": lambda r: _log1p(r.get("tool_calls")),
    "log_actions": lambda r: _log1p(r.get("n_actions")),
    "log_duration_s": lambda r: _log1p(r.get("duration_s")),
    "log_tokens": _tokens,
    "log_errors": _errors,
    "term_finished": _term(_FINISHED),
    "term_limit": _term(_LIMIT),
    "term_error": _term(_ERROR),
}


def feature_vector(record: Mapping[str, Any], names: list[str]) -> list[float | None]:
    """The values of the features ``names`` (keys of :data:`FEATURES`) for ``record``;
    None where the record lacks it. Raises KeyError for an unknown name."""
    return [FEATURES[n](record) for n in names]


__all__ = ["FEATURES", "feature_vector"]
