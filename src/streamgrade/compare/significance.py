"""Pairwise tests of ``streamgrade compare``: experiment A (the baseline) against B, one
metric at a time, with scipy.

Design (:func:`design`): the two experiments are **paired by task** when they share at
least :data:`MIN_PAIRED_TASKS` tasks (the same ``source_format`` and ``task_id``; with
fewer, no paired test can reach p < 0.05); a task's value on each side is the mean over
its sessions (trials), so a task with 4 trials weighs as one with 1, and sessions of tasks
only one side ran are left out of the paired test (counted). Otherwise the sessions are
compared as **independent samples**. ``pairing="none"`` forces independent samples.

Tests:

- Paired, a 0/1 metric with exactly one session per task on both sides: **McNemar's exact
  test** (McNemar 1947, Psychometrika 12:153-157): under H0 the discordant pairs split
  evenly, so with b pairs passing only in A and c only in B, p is the two-sided binomial
  test of b successes in b + c trials at 0.5 (``scipy.stats.binomtest``; the "exact
  conditional" McNemar test of Fagerland, Lydersen & Laake 2013, BMC Med. Res. Methodol.
  13:91). No discordant pair: p = 1.
- Paired otherwise: the **Wilcoxon signed-rank test** on the per-task differences
  (``scipy.stats.wilcoxon``, two-sided, zero differences dropped as Wilcoxon 1945 did; all
  differences zero: p = 1).
- Independent samples: **Mann-Whitney U** (``scipy.stats.mannwhitneyu``, two-sided, no
  normality assumed) is the primary test, with **Welch's t** (``scipy.stats.ttest_ind``,
  ``equal_var=False``) beside it. Welch's t is undefined when neither sample varies (p is
  none, or 1 when both hold the same value); Mann-Whitney still ranks them.

Every comparison also gives the mean difference B - A with a 95% bootstrap CI (paired: of
the per-task differences), Cohen's d over the sessions (and ``d_z`` of the per-task
differences when paired) and Cliff's delta over the sessions (:mod:`.stats`).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any, Sequence

from . import stats as st
from .metrics import Metric

#: Fewest shared tasks for a paired design: with 6 pairs the exact two-sided Wilcoxon p can
#: reach 0.031; with 5 its least value is 0.0625.
MIN_PAIRED_TASKS = 6


def task_key(row: dict[str, Any]) -> tuple[str, str] | None:
    """(source_format, task_id) of a row, or None without a task id."""
    t = row.get("task_id")
    return None if t is None else (str(row.get("source_format") or "-"), str(t))


def design(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], pairing: str = "auto") -> dict[str, Any]:
    """``{"paired": bool, "shared_tasks", "tasks_a", "tasks_b", "reason"}`` (see the module
    docstring)."""
    ta = {k for k in map(task_key, rows_a) if k is not None}
    tb = {k for k in map(task_key, rows_b) if k is not None}
    shared = ta & tb
    paired = pairing != "none" and len(shared) >= MIN_PAIRED_TASKS
    if pairing == "none":
        reason = "pairing turned off (--pairing none)"
    elif paired:
        reason = f"{len(shared)} shared tasks: paired by task (per-task means)"
    else:
        reason = (f"{len(shared)} shared task{'s' if len(shared) != 1 else ''} (fewer than {MIN_PAIRED_TASKS}): "
                  "independent samples")
    return {"paired": paired, "shared_tasks": len(shared), "tasks_a": len(ta), "tasks_b": len(tb), "reason": reason}


def _per_task(rows: Sequence[dict[str, Any]], metric: Metric) -> dict[tuple[str, str], list[float]]:
    out: dict[tuple[str, str], list[float]] = defaultdict(list)
    for r in rows:
        k, v = task_key(r), metric.get(r)
        if k is not None and v is not None:
            out[k].append(v)
    return out


def _p(v: Any) -> float | None:
    v = float(v)
    return v if math.isfinite(v) else None


def mcnemar_exact(pairs: Sequence[tuple[float, float]]) -> dict[str, Any]:
    """McNemar's exact test of 0/1 pairs (a, b): ``{"test", "b_only_a", "c_only_b", "p"}``."""
    from scipy.stats import binomtest

    only_a = sum(1 for a, b in pairs if a >= 0.5 > b)
    only_b = sum(1 for a, b in pairs if b >= 0.5 > a)
    p = 1.0 if only_a + only_b == 0 else binomtest(only_a, only_a + only_b, 0.5).pvalue
    return {"test": "McNemar exact", "statistic": float(min(only_a, only_b)), "discordant_a": only_a,
            "discordant_b": only_b, "p": float(p)}


def wilcoxon_signed_rank(diffs: Sequence[float]) -> dict[str, Any]:
    """Two-sided Wilcoxon signed-rank test of paired differences ``b - a``."""
    from scipy.stats import wilcoxon

    if all(d == 0 for d in diffs):
        return {"test": "Wilcoxon signed-rank", "statistic": 0.0, "p": 1.0, "note": "all differences are zero"}
    res = wilcoxon(diffs, alternative="two-sided")
    return {"test": "Wilcoxon signed-rank", "statistic": float(res.statistic), "p": _p(res.pvalue)}


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Two-sided Mann-Whitney U test; the statistic is U of B (pairs where B > A, ties half)."""
    from scipy.stats import mannwhitneyu

    if len(set(a) | set(b)) == 1:
        return {"test": "Mann-Whitney U", "statistic": len(a) * len(b) / 2, "p": 1.0, "note": "all values are equal"}
    res = mannwhitneyu(b, a, alternative="two-sided")
    return {"test": "Mann-Whitney U", "statistic": float(res.statistic), "p": _p(res.pvalue)}


def welch_t(a: Sequence[float], b: Sequence[float]) -> dict[str, Any]:
    """Welch's unequal-variances t test, two-sided (t of B - A)."""
    from scipy.stats import ttest_ind

    if statistics.pvariance(a) == 0 and statistics.pvariance(b) == 0:
        same = statistics.fmean(a) == statistics.fmean(b)
        return {"test": "Welch t", "statistic": 0.0 if same else None, "p": 1.0 if same else None,
                "note": "no variance on either side"}
    res = ttest_ind(b, a, equal_var=False)
    return {"test": "Welch t", "statistic": _p(res.statistic), "p": _p(res.pvalue), "df": _p(res.df)}


def compare_metric(rows_a: Sequence[dict[str, Any]], rows_b: Sequence[dict[str, Any]], metric: Metric,
                   des: dict[str, Any], *, n_resamples: int = st.N_RESAMPLES, seed: int = st.SEED) -> dict[str, Any]:
    """One metric, A against B, in design ``des`` (:func:`design`): ``{"metric", "n_a",
    "n_b", "mean_a", "mean_b", "diff", "diff_ci", "test" {test, statistic, p, ...},
    "secondary" (Welch t, independent samples), "cohens_d", "cohens_dz", "cliffs_delta", the
    magnitudes, "pairs", "left_out"}``; ``test`` is None when a side has fewer than 2 values
    (2 pairs)."""
    a = [v for v in map(metric.get, rows_a) if v is not None]
    b = [v for v in map(metric.get, rows_b) if v is not None]
    out: dict[str, Any] = {"metric": metric.name, "n_a": len(a), "n_b": len(b),
                           "mean_a": st._r(statistics.fmean(a)) if a else None,
                           "mean_b": st._r(statistics.fmean(b)) if b else None,
                           "diff": None, "diff_ci": None, "test": None, "secondary": None,
                           "cohens_d": None, "cohens_dz": None, "cliffs_delta": None, "pairs": None, "left_out": 0}
    if a and b:
        out["diff"] = st._r(statistics.fmean(b) - statistics.fmean(a))
        d = st.cohens_d(a, b)
        delta = st.cliffs_delta(a, b)
        out.update(cohens_d=st._r(d), cohens_d_magnitude=st.magnitude_d(d), cliffs_delta=st._r(delta),
                   cliffs_delta_magnitude=st.magnitude_delta(delta))
    if des["paired"]:
        pa, pb = _per_task(rows_a, metric), _per_task(rows_b, metric)
        keys = sorted(set(pa) & set(pb))
        out["pairs"] = len(keys)
        out["left_out"] = (sum(len(v) for k, v in pa.items() if k not in pb)
                           + sum(len(v) for k, v in pb.items() if k not in pa))
        if len(keys) < 2:
            return out
        ma = [statistics.fmean(pa[k]) for k in keys]
        mb = [statistics.fmean(pb[k]) for k in keys]
        diffs = [y - x for x, y in zip(ma, mb)]
        single = all(len(pa[k]) == 1 and len(pb[k]) == 1 for k in keys)
        out["test"] = (mcnemar_exact(list(zip(ma, mb))) if metric.binary and single
                       else wilcoxon_signed_rank(diffs))
        out["diff"] = st._r(statistics.fmean(diffs))
        ci = st.bootstrap_ci((ma, mb), paired=True, n_resamples=n_resamples, seed=seed)
        dz = st.cohens_dz(diffs)
        out.update(diff_ci=[st._r(ci[0]), st._r(ci[1])] if ci else None, cohens_dz=st._r(dz),
                   cohens_dz_magnitude=st.magnitude_d(dz))
        return out
    if len(a) < 2 or len(b) < 2:
        return out
    out["test"] = mann_whitney(a, b)
    out["secondary"] = welch_t(a, b)
    ci = st.bootstrap_ci((a, b), n_resamples=n_resamples, seed=seed)
    out["diff_ci"] = [st._r(ci[0]), st._r(ci[1])] if ci else None
    return out


def verdict(row: dict[str, Any], metric: Metric, alpha: float) -> str:
    """"better", "worse" (B against A, significant after Holm), "different" (significant,
    a metric where neither way is better), or "no significant difference"."""
    p = row.get("p_holm")
    if p is None:
        return "not tested"
    if p >= alpha or not row.get("diff"):
        return "no significant difference"
    if metric.better is None:
        return "different"
    up = row["diff"] > 0
    return "better" if up == (metric.better == "higher") else "worse"


__all__ = ["MIN_PAIRED_TASKS", "task_key", "design", "mcnemar_exact", "wilcoxon_signed_rank", "mann_whitney",
           "welch_t", "compare_metric", "verdict"]
