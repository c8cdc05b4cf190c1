"""The numbers of ``streamgrade compare``: descriptive figures with bootstrap confidence
intervals, effect sizes, Holm's correction, and pass@k / pass^k.

Sources:

- Bootstrap CI: ``scipy.stats.bootstrap`` (BCa, Efron 1987, "Better bootstrap confidence
  intervals", JASA 82:171-185), :data:`N_RESAMPLES` resamples, ``numpy.random.default_rng(SEED)``
  so the same input gives the same interval; the percentile interval (Efron & Tibshirani
  1993) where BCa is undefined; a constant sample's interval is the value itself.
- Cohen's d: the mean difference over the pooled standard deviation (Cohen 1988,
  *Statistical Power Analysis for the Behavioral Sciences*, 2nd ed., eq. 2.5.1); for paired
  data ``d_z``, the mean of the differences over their standard deviation (Cohen 1988,
  eq. 2.3.5; Lakens 2013, Front. Psychol. 4:863). Magnitudes: 0.2 small, 0.5 medium, 0.8
  large (Cohen 1988).
- Cliff's delta: P(B > A) - P(B < A) over all pairs (Cliff 1993, Psychol. Bull.
  114:494-509), from the Mann-Whitney U statistic: ``delta = 2 U_B / (n_A n_B) - 1``.
  Magnitudes: 0.147 small, 0.33 medium, 0.474 large (Romano et al. 2006).
- Holm's step-down correction (Holm 1979, "A simple sequentially rejective multiple test
  procedure", Scand. J. Statist. 6:65-70): with the m p-values in ascending order,
  ``p_adj(i) = max_{j <= i} min(1, (m - j + 1) p(j))``; it controls the family-wise error
  rate without Bonferroni's loss of power.
- pass@k, the unbiased estimator of Chen et al. 2021 ("Evaluating Large Language Models
  Trained on Code", arXiv:2107.03374, eq. 1): for a task with n trials of which c pass,
  ``pass@k = 1 - C(n - c, k) / C(n, k)``, the chance that at least one of k trials drawn
  without replacement passes; averaged over tasks.
- pass^k of tau-bench (Yao et al. 2024, "tau-bench: A Benchmark for Tool-Agent-User
  Interaction in Real-World Domains", arXiv:2406.12045, sec. 5): ``pass^k = C(c, k) / C(n,
  k)``, the chance that all k trials drawn pass (reliability); averaged over tasks.
"""

from __future__ import annotations

import math
import statistics
import warnings
from typing import Any, Sequence

import numpy as np

N_RESAMPLES = 2000
SEED = 0
CONFIDENCE = 0.95


def _r(v: float | None, nd: int = 6) -> float | None:
    """Rounded and JSON-safe (NaN and infinities as None)."""
    if v is None:
        return None
    v = float(v)
    return round(v, nd) if math.isfinite(v) else None


def bootstrap_ci(data: Sequence[float] | tuple[Sequence[float], Sequence[float]], *, paired: bool = False,
                 n_resamples: int = N_RESAMPLES, seed: int = SEED) -> tuple[float, float] | None:
    """95% bootstrap CI of the mean of ``data`` (one sample), or of ``mean(b) - mean(a)`` for
    ``data = (a, b)`` (two independent samples, each resampled on its own; ``paired``: the
    mean of ``b - a``, pairs resampled together). None with fewer than 2 values in a sample."""
    from scipy.stats import bootstrap

    two = isinstance(data, tuple)
    samples = tuple(np.asarray(s, dtype=float) for s in (data if two else (data,)))
    if any(len(s) < 2 for s in samples):
        return None
    if two and paired:
        samples = (samples[1] - samples[0],)
        two = False
    if all(np.all(s == s[0]) for s in samples):
        v = samples[0][0] if not two else samples[1][0] - samples[0][0]
        return (float(v), float(v))

    def stat(*s, axis=-1):
        return np.mean(s[1], axis=axis) - np.mean(s[0], axis=axis) if two else np.mean(s[0], axis=axis)

    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = bootstrap(samples, stat, n_resamples=n_resamples, confidence_level=CONFIDENCE, method=method,
                            vectorized=True, rng=np.random.default_rng(seed))
        lo, hi = res.confidence_interval
        if math.isfinite(lo) and math.isfinite(hi):
            return (float(lo), float(hi))
    return None


def describe(values: Sequence[float], *, n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """``{n, mean, median, sd, ci: [lo, hi] | None, min, max}`` of ``values`` (sd: the sample
    standard deviation, n - 1; None below 2 values)."""
    v = [float(x) for x in values]
    if not v:
        return {"n": 0, "mean": None, "median": None, "sd": None, "ci": None, "min": None, "max": None}
    ci = bootstrap_ci(v, n_resamples=n_resamples, seed=seed)
    return {"n": len(v), "mean": _r(statistics.fmean(v)), "median": _r(statistics.median(v)),
            "sd": _r(statistics.stdev(v)) if len(v) > 1 else None,
            "ci": [_r(ci[0]), _r(ci[1])] if ci else None, "min": _r(min(v)), "max": _r(max(v))}


def cohens_d(a: Sequence[float], b: Sequence[float]) -> float | None:
    """(mean(b) - mean(a)) / pooled sd (see the module docstring); None when undefined (fewer
    than 2 values a side, or no spread while the means differ), 0 when nothing differs."""
    na, nb = len(a), len(b)
    if na < 2 or nb < 2:
        return None
    diff = statistics.fmean(b) - statistics.fmean(a)
    pooled = math.sqrt(((na - 1) * statistics.variance(a) + (nb - 1) * statistics.variance(b)) / (na + nb - 2))
    if pooled == 0:
        return 0.0 if diff == 0 else None
    return diff / pooled


def cohens_dz(diffs: Sequence[float]) -> float | None:
    """mean / sd of the paired differences ``b - a``; None when undefined (see cohens_d)."""
    if len(diffs) < 2:
        return None
    m, s = statistics.fmean(diffs), statistics.stdev(diffs)
    if s == 0:
        return 0.0 if m == 0 else None
    return m / s


def cliffs_delta(a: Sequence[float], b: Sequence[float]) -> float | None:
    """P(B > A) - P(B < A), in [-1, 1] (positive: B tends to be larger); None when a side is
    empty. Computed from the Mann-Whitney U of b against a (ties count half)."""
    if not len(a) or not len(b):
        return None
    from scipy.stats import mannwhitneyu

    if len(set(a) | set(b)) == 1:
        return 0.0
    u_b = mannwhitneyu(b, a, alternative="two-sided").statistic
    return float(2 * u_b / (len(a) * len(b)) - 1)


def magnitude_d(d: float | None) -> str | None:
    """Cohen's thresholds: negligible < 0.2 <= small < 0.5 <= medium < 0.8 <= large."""
    if d is None:
        return None
    x = abs(d)
    return "negligible" if x < 0.2 else "small" if x < 0.5 else "medium" if x < 0.8 else "large"


def magnitude_delta(delta: float | None) -> str | None:
    """Romano et al. (2006): negligible < 0.147 <= small < 0.33 <= medium < 0.474 <= large."""
    if delta is None:
        return None
    x = abs(delta)
    return "negligible" if x < 0.147 else "small" if x < 0.33 else "medium" if x < 0.474 else "large"


def holm(pvalues: Sequence[float | None]) -> list[float | None]:
    """Holm-adjusted p-values (see the module docstring), in the input order; None stays None
    and is not counted in m."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    m = len(idx)
    out: list[float | None] = [None] * len(pvalues)
    running = 0.0
    for rank, i in enumerate(sorted(idx, key=lambda i: pvalues[i])):  # type: ignore[arg-type, return-value]
        running = max(running, min(1.0, (m - rank) * float(pvalues[i])))  # type: ignore[arg-type]
        out[i] = running
    return out


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chen et al. 2021's unbiased pass@k for one task: 1 - C(n - c, k) / C(n, k)."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass@k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    if n - c < k:
        return 1.0
    return 1.0 - math.comb(n - c, k) / math.comb(n, k)


def pass_hat_k(n: int, c: int, k: int) -> float:
    """tau-bench's pass^k for one task: C(c, k) / C(n, k)."""
    if not 0 < k <= n or not 0 <= c <= n:
        raise ValueError(f"pass^k needs 0 < k <= n and 0 <= c <= n (n={n}, c={c}, k={k})")
    return math.comb(c, k) / math.comb(n, k)


def pass_k_table(trials: dict[Any, list[bool]]) -> list[dict[str, Any]]:
    """pass@k and pass^k for k = 1 .. the most trials of a task, each averaged over the tasks
    with at least k trials: ``[{k, tasks, pass_at_k, pass_hat_k}]``; [] when no task has 2
    trials."""
    counts = [(len(v), sum(map(bool, v))) for v in trials.values() if v]
    if not counts or max(n for n, _ in counts) < 2:
        return []
    rows = []
    for k in range(1, max(n for n, _ in counts) + 1):
        tasks = [(n, c) for n, c in counts if n >= k]
        rows.append({"k": k, "tasks": len(tasks),
                     "pass_at_k": _r(statistics.fmean(pass_at_k(n, c, k) for n, c in tasks)),
                     "pass_hat_k": _r(statistics.fmean(pass_hat_k(n, c, k) for n, c in tasks))})
    return rows


__all__ = ["N_RESAMPLES", "SEED", "CONFIDENCE", "bootstrap_ci", "describe", "cohens_d", "cohens_dz", "cliffs_delta",
           "magnitude_d", "magnitude_delta", "holm", "pass_at_k", "pass_hat_k", "pass_k_table"]
