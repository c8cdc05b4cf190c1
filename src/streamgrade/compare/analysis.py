"""``streamgrade compare``: the analysis of several experiments as one JSON-ready dict.

For each metric present (:mod:`.metrics`): per experiment n, mean, median, sd and a
bootstrap 95% CI (:func:`.stats.describe`); for each comparison (the first experiment, the
baseline, against each other one; every pair with ``all_pairs``) the design, test, effect
sizes (:mod:`.significance`) and Holm-adjusted p-values across the metrics of that
comparison, with a verdict (better / worse / no significant difference at ``alpha``);
pass@k and pass^k per experiment where tasks have several trials; a breakdown by task and
by grouping fields; tool-call frequency per experiment.

Metrics whose every value is 0 or 1 are treated as binary (McNemar where paired). ``pass``
is left out when it repeats ``reward`` (0/1 rewards with pass mark 1); a metric with the
same value in every session of every experiment is left out (both with the reason), unless
asked for by name.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from . import stats as st
from .load import Experiment, ExperimentError, NoSessions, lookup
from .metrics import BY_NAME, METRICS, Metric, pass_marks, set_pass, values
from .significance import compare_metric, design, mann_whitney, task_key, verdict

#: Grouping fields tried when none is given, where present with 2 or more values.
AUTO_GROUPS = ("task", "model", "agent", "difficulty", "instance", "category", "domain", "level")
#: Metrics shown in the breakdowns (the first present ones).
HEADLINE = ("score", "reward", "progression")
TOP_TOOLS = 15


@dataclass
class Options:
    """``metrics`` names (None: every metric present), ``group_by`` fields (None: the
    present ones of :data:`AUTO_GROUPS`), ``pairing`` auto or none, ``all_pairs``, ``alpha``,
    ``reward_pass`` / ``pass_score`` (pass marks), bootstrap ``n_resamples`` and ``seed``,
    ``max_groups`` per breakdown (the largest groups)."""

    metrics: list[str] | None = None
    group_by: list[str] | None = None
    pairing: str = "auto"
    all_pairs: bool = False
    alpha: float = 0.05
    reward_pass: float | None = None
    pass_score: float = 50.0
    n_resamples: int = st.N_RESAMPLES
    seed: int = st.SEED
    max_groups: int = 40


def choose_metrics(experiments: list[Experiment], opts: Options) -> tuple[list[Metric], list[dict[str, str]]]:
    """(metrics to compare, [{name, reason}] left out); see the module docstring. Raises
    ExperimentError for a requested metric that is unknown or has no value."""
    rows = [r for e in experiments for r in e.rows]
    asked = opts.metrics or []
    for name in asked:
        if name not in BY_NAME:
            raise ExperimentError(f"unknown metric {name!r}; choose from {', '.join(BY_NAME)}")
    chosen, dropped = [], []
    for m in METRICS:
        if asked and m.name not in asked:
            continue
        vals = values(rows, m)
        if not vals:
            if m.name in asked:
                raise ExperimentError(f"metric {m.name!r} has no value in any experiment")
            continue
        if set(vals) <= {0.0, 1.0} and not m.binary:
            m = dataclasses.replace(m, binary=True)
        if m.name == "pass" and "pass" not in asked and all(r.get("_pass") == BY_NAME["reward"].get(r)
                                                             for r in rows if r.get("_pass") is not None):
            dropped.append({"name": "pass", "reason": "the same as reward (0/1 rewards, pass mark 1)"})
            continue
        if len(set(vals)) == 1 and m.name not in asked:
            dropped.append({"name": m.name, "reason": f"{vals[0]:g} in every session"})
            continue
        chosen.append(m)
    if not chosen:
        raise ExperimentError("no metric to compare: " + ("; ".join(f"{d['name']}: {d['reason']}" for d in dropped)
                                                          or "no session has a score, reward or other metric"))
    return chosen, dropped


def _pairs(n: int, all_pairs: bool) -> list[tuple[int, int]]:
    return [(i, j) for i in range(n) for j in range(i + 1, n)] if all_pairs else [(0, j) for j in range(1, n)]


def _comparison(a: Experiment, b: Experiment, metrics: list[Metric], opts: Options) -> dict[str, Any]:
    des = design(a.rows, b.rows, opts.pairing)
    rows = [compare_metric(a.rows, b.rows, m, des, n_resamples=opts.n_resamples, seed=opts.seed) for m in metrics]
    adjusted = st.holm([r["test"]["p"] if r["test"] else None for r in rows])
    for r, m, p in zip(rows, metrics, adjusted):
        r["p"] = r["test"]["p"] if r["test"] else None
        r["p_holm"] = p
        r["verdict"] = verdict(r, m, opts.alpha)
        r["better"] = m.better
    return {"a": a.name, "b": b.name, "design": des, "rows": rows}


def _outcome(row: dict[str, Any], pass_score: float) -> bool | None:
    if row.get("_pass") is not None:
        return bool(row["_pass"])
    s = BY_NAME["score"].get(row)
    return None if s is None else s >= pass_score


def pass_k(exp: Experiment, pass_score: float) -> dict[str, Any]:
    """pass@k / pass^k of one experiment over its tasks (:func:`.stats.pass_k_table`); the
    outcome of a session is its ``pass`` where it has a reward, else judge score >=
    ``pass_score``."""
    trials: dict[Any, list[bool]] = {}
    by_reward = by_judge = 0
    for r in exp.rows:
        k, o = task_key(r), _outcome(r, pass_score)
        if k is None or o is None:
            continue
        trials.setdefault(k, []).append(o)
        by_reward += r.get("_pass") is not None
        by_judge += r.get("_pass") is None
    return {"rows": st.pass_k_table(trials), "tasks": len(trials), "outcome_from_reward": by_reward,
            "outcome_from_judge": by_judge}


def _group_fields(experiments: list[Experiment], opts: Options) -> list[str]:
    if opts.group_by is not None:
        return list(opts.group_by)
    out = []
    for f in AUTO_GROUPS:
        seen: dict[str, set[str]] = {}  # value -> experiments that have it
        for e in experiments:
            for r in e.rows:
                v = lookup(r, f)
                if v is not None:
                    seen.setdefault(str(v), set()).add(e.name)
        # a field that only restates the experiments (each value in one of them) says nothing more
        if len(seen) >= 2 and any(len(exps) >= 2 for exps in seen.values()):
            out.append(f)
    return out


def _natural(s: str) -> list[Any]:
    """Sort key: digit runs as numbers ("task2" before "task10")."""
    return [(0, int(t), "") if t.isdigit() else (1, 0, t) for t in re.split(r"(\d+)", s) if t]


def breakdown(experiments: list[Experiment], field: str, metric: Metric, opts: Options) -> dict[str, Any]:
    """Per value of ``field``: each experiment's n, mean and CI of ``metric``, and the
    Mann-Whitney p of each comparison inside the group (unadjusted: exploratory). The
    ``max_groups`` largest groups, in order of size; ``omitted`` says how many more."""
    by: dict[str, dict[str, list[float]]] = {}
    for e in experiments:
        for r in e.rows:
            g, v = lookup(r, field), metric.get(r)
            if g is not None and v is not None:
                by.setdefault(str(g), {}).setdefault(e.name, []).append(v)
    order = sorted(by, key=lambda g: (-sum(map(len, by[g].values())), _natural(g)))
    groups = []
    for g in order[: opts.max_groups]:
        cells = {e.name: st.describe(by[g].get(e.name, []), n_resamples=opts.n_resamples, seed=opts.seed)
                 for e in experiments}
        tests = []
        for i, j in _pairs(len(experiments), opts.all_pairs):
            a, b = by[g].get(experiments[i].name, []), by[g].get(experiments[j].name, [])
            p = mann_whitney(a, b)["p"] if len(a) >= 2 and len(b) >= 2 else None
            tests.append({"a": experiments[i].name, "b": experiments[j].name, "p": p})
        groups.append({"value": g, "cells": {k: {x: c[x] for x in ("n", "mean", "ci", "median")} for k, c in cells.items()},
                       "tests": tests})
    return {"field": field, "metric": metric.name, "groups": groups, "omitted": max(0, len(order) - opts.max_groups)}


def tool_frequency(experiments: list[Experiment]) -> dict[str, Any]:
    """Calls per session of the most called tools (game actions for episodes), per experiment:
    ``{"tools": [names], "per_session": {experiment: {tool: calls per session}}, "sessions":
    {experiment: sessions with tool information}}``."""
    totals: dict[str, Counter] = {}
    sessions: dict[str, int] = {}
    for e in experiments:
        c: Counter = Counter()
        n = 0
        for r in e.rows:
            if isinstance(r.get("_tools"), Counter):
                c.update(r["_tools"])
                n += 1
        totals[e.name], sessions[e.name] = c, n
    rate = {e: {t: c[t] / sessions[e] for t in c} if sessions[e] else {} for e, c in totals.items()}
    overall: Counter = Counter()
    for r in rate.values():
        overall.update(r)
    top = [t for t, _ in overall.most_common(TOP_TOOLS)]
    return {"tools": top, "per_session": {e: {t: round(r.get(t, 0.0), 4) for t in top} for e, r in rate.items()},
            "sessions": sessions}


def analyse(experiments: list[Experiment], opts: Options | None = None) -> dict[str, Any]:
    """The comparison of ``experiments`` (at least two, the first is the baseline) as a
    JSON-ready dict (see the module docstring and docs of each part). Raises ExperimentError
    (fewer than two experiments, an empty one, no metric)."""
    opts = opts or Options()
    if len(experiments) < 2:
        raise ExperimentError(f"compare needs at least two experiments ({len(experiments)} given)")
    for e in experiments:
        if not e.rows:
            raise NoSessions(f"experiment {e.name!r} has no session to compare"
                                  + (f" ({', '.join(f'{v} {k}' for k, v in e.excluded.items())})" if e.excluded else ""))
    marks = pass_marks((r for e in experiments for r in e.rows), opts.reward_pass)
    for e in experiments:
        set_pass(e.rows, marks)
    metrics, dropped = choose_metrics(experiments, opts)
    summary = {m.name: {e.name: st.describe(values(e.rows, m), n_resamples=opts.n_resamples, seed=opts.seed)
                        for e in experiments} for m in metrics}
    comparisons = [_comparison(experiments[i], experiments[j], metrics, opts)
                   for i, j in _pairs(len(experiments), opts.all_pairs)]
    fields = _group_fields(experiments, opts)
    headline = [m for m in metrics if m.name in HEADLINE][:2] or metrics[:1]
    return {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "experiments": [{"name": e.name, "source": e.source, "attrs": e.attrs, "sessions": len(e.rows),
                         "excluded": e.excluded, "models": dict(Counter(str(r.get("model")) for r in e.rows
                                                                        if r.get("model")).most_common(5))}
                        for e in experiments],
        "baseline": experiments[0].name, "alpha": opts.alpha, "pairing": opts.pairing,
        "bootstrap": {"resamples": opts.n_resamples, "seed": opts.seed, "confidence": st.CONFIDENCE,
                      "method": "BCa (percentile where BCa is undefined)"},
        "pass_marks": marks, "pass_score": opts.pass_score,
        "metrics": [{"name": m.name, "label": m.label, "better": m.better, "binary": m.binary} for m in metrics],
        "dropped_metrics": dropped,
        "summary": summary,
        "comparisons": comparisons,
        "pass_k": {e.name: pass_k(e, opts.pass_score) for e in experiments},
        "breakdowns": [breakdown(experiments, f, m, opts) for f in fields for m in headline],
        "tools": tool_frequency(experiments),
    }


def worse(result: dict[str, Any], metric: str) -> list[dict[str, Any]]:
    """The comparisons of the baseline where B is significantly worse on ``metric`` (after
    Holm): ``[{"a", "b", "diff", "p_holm"}]``."""
    base = result["baseline"]
    out = []
    for c in result["comparisons"]:
        if c["a"] != base:
            continue
        for r in c["rows"]:
            if r["metric"] == metric and r["verdict"] == "worse":
                out.append({"a": c["a"], "b": c["b"], "diff": r["diff"], "p_holm": r["p_holm"]})
    return out


__all__ = ["Options", "AUTO_GROUPS", "analyse", "choose_metrics", "pass_k", "breakdown", "tool_frequency", "worse"]
