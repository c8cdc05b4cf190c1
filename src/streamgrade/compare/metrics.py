"""What ``streamgrade compare`` measures per session, read from its record (the scores.jsonl
fields; see :mod:`streamgrade.sinks.records`).

| metric | value | better | sessions |
|---|---|---|---|
| score | the judge's score, 0-100 | higher | graded |
| reward | the ground-truth reward (benchmark outcome, episode return) | higher | graded and ungradable |
| pass | 1 when reward >= the pass mark, else 0 (binary) | higher | with a reward |
| p_success | calibrated P(success), 0-1 (``grade --calibration``) | higher | graded |
| achievements | Crafter achievements unlocked (``metrics.achievements``) | higher | game episodes |
| progression | Crafter progression, 0-1 (``metrics.progression``) | higher | game episodes |
| turns | assistant turns | neither | agents |
| tool_calls | tool calls | neither | agents |
| cost_usd | the agent's own cost in USD where the format records it (``metrics.cost_usd``) | lower | agents |
| judge_cost_usd | what grading the session cost, USD (``usage.cost_usd``) | lower | graded |

Failed records (the session could not be read or judged) are left out of every metric and
counted. Ungradable records (nothing to judge) have no score, but their ground truth
(reward, achievements, ...) counts: a BALROG episode without a per-step log still has its
return.

Pass mark (:func:`pass_marks`): per source format, ``[exports] reward_pass`` when set, else
1.0 when the format's rewards (pooled over every experiment, so all sides use one mark) are
0/1, else their median (:func:`streamgrade.agreement.pass_mark`, as ``stats`` and the SFT
filter use).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable

from ..agreement import pass_mark


def _num(v: Any) -> float | None:
    if isinstance(v, bool):
        return float(v)
    if isinstance(v, (int, float)):
        return float(v) if v == v and abs(v) != float("inf") else None
    return None


def _metric(name: str) -> Callable[[dict[str, Any]], float | None]:
    def get(row: dict[str, Any]) -> float | None:
        m = row.get("metrics")
        v = _num(m.get(name)) if isinstance(m, dict) else None
        return v if v is not None else _num(row.get(name))
    return get


def _graded(key: str) -> Callable[[dict[str, Any]], float | None]:
    return lambda row: _num(row.get(key)) if row.get("status", "graded") == "graded" else None


def _judge_cost(row: dict[str, Any]) -> float | None:
    u = row.get("usage")
    return _num(u.get("cost_usd")) if isinstance(u, dict) and row.get("status", "graded") == "graded" else None


@dataclass(frozen=True)
class Metric:
    """One metric: ``name``, a ``label`` for reports, ``better`` ("higher", "lower" or None:
    neither way is better), ``binary`` (0/1 values: McNemar where paired), and ``get`` (a
    row -> value or None)."""

    name: str
    label: str
    better: str | None
    binary: bool
    get: Callable[[dict[str, Any]], float | None]


METRICS: tuple[Metric, ...] = (
    Metric("score", "judge score (0-100)", "higher", False, _graded("score")),
    Metric("reward", "reward", "higher", False, lambda r: _num(r.get("reward"))),
    Metric("pass", "pass rate (reward >= pass mark)", "higher", True, lambda r: _num(r.get("_pass"))),
    Metric("p_success", "P(success), calibrated", "higher", False, _graded("p_success")),
    Metric("achievements", "achievements unlocked", "higher", False, _metric("achievements")),
    Metric("progression", "progression (0-1)", "higher", False, _metric("progression")),
    Metric("turns", "assistant turns", None, False, lambda r: _num(r.get("turns"))),
    Metric("tool_calls", "tool calls", None, False, lambda r: _num(r.get("tool_calls"))),
    Metric("cost_usd", "agent cost (USD)", "lower", False, _metric("cost_usd")),
    Metric("judge_cost_usd", "judge cost (USD)", "lower", False, _judge_cost),
)
BY_NAME = {m.name: m for m in METRICS}


def pass_marks(rows: Iterable[dict[str, Any]], reward_pass: float | None = None) -> dict[str, float]:
    """{source_format: the pass mark} over ``rows`` pooled (see the module docstring)."""
    rewards: dict[str, list[float]] = {}
    for r in rows:
        v = _num(r.get("reward"))
        if v is not None:
            rewards.setdefault(str(r.get("source_format") or "-"), []).append(v)
    return {fmt: pass_mark(v, reward_pass) for fmt, v in rewards.items()}


def set_pass(rows: Iterable[dict[str, Any]], marks: dict[str, float]) -> None:
    """Set each row's ``_pass`` (1.0, 0.0, or None without a reward) from ``marks``."""
    for r in rows:
        v = _num(r.get("reward"))
        mark = marks.get(str(r.get("source_format") or "-"))
        r["_pass"] = None if v is None or mark is None else float(v >= mark)


def values(rows: Iterable[dict[str, Any]], metric: Metric) -> list[float]:
    """The non-missing values of ``metric`` over ``rows``."""
    return [v for v in (metric.get(r) for r in rows) if v is not None]


__all__ = ["Metric", "METRICS", "BY_NAME", "pass_marks", "set_pass", "values"]
