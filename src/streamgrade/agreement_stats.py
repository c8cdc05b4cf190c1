"""Statistics of a judge against binary ground truth: AUROC with a bootstrap confidence
interval, expected calibration error (ECE), Brier score, Cohen's kappa, precision and recall
at a score threshold.

Scores are judge scores 0-100, read as the probability of success ``score / 100`` where a
probability is needed (ECE, Brier, the reliability diagram). Labels are booleans (the
session passed: reward at its pass mark, :func:`streamgrade.agreement.pass_mark`).

Sources: AUROC, Brier, kappa, precision and recall are scikit-learn's (``roc_auc_score``,
``brier_score_loss``, ``cohen_kappa_score``, ``precision_score``, ``recall_score``); ECE as
in Naeini, Cooper & Hauskrecht (2015), "Obtaining well calibrated probabilities using
Bayesian binning", and Guo, Pleiss, Sun & Weinberger (2017), "On calibration of modern
neural networks" (eq. 3: ``sum_b |B_b| / n * |acc(B_b) - conf(B_b)|`` over M equal-width
bins); the percentile bootstrap of Efron & Tibshirani (1993), resampling sessions with
replacement.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import brier_score_loss, cohen_kappa_score, precision_score, recall_score, roc_auc_score

N_BINS = 10
N_RESAMPLES = 1000
SEED = 0


def _arrays(scores: Sequence[float], labels: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores and labels must be two 1-D sequences of one length, got {s.shape} and {y.shape}")
    return s, y


def probabilities(scores: Sequence[float]) -> np.ndarray:
    """Scores 0-100 as probabilities 0-1 (clipped)."""
    return np.clip(np.asarray(scores, dtype=float) / 100.0, 0.0, 1.0)


def reliability_bins(scores: Sequence[float], labels: Sequence[bool], n_bins: int = N_BINS) -> list[dict[str, float]]:
    """The non-empty bins of a reliability diagram: ``n_bins`` equal-width bins of ``score /
    100`` over [0, 1] (the last one closed, so 1.0 falls in it); each ``{"lo", "hi", "n",
    "confidence" (mean predicted probability), "accuracy" (fraction of positives)}``."""
    s, y = _arrays(scores, labels)
    p = probabilities(s)
    idx = np.minimum((p * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        m = idx == b
        if m.any():
            out.append({"lo": b / n_bins, "hi": (b + 1) / n_bins, "n": int(m.sum()),
                        "confidence": float(p[m].mean()), "accuracy": float(y[m].mean())})
    return out


def ece(scores: Sequence[float], labels: Sequence[bool], n_bins: int = N_BINS) -> float | None:
    """Expected calibration error of ``score / 100`` as P(success), ``n_bins`` equal-width
    bins (Guo et al. 2017, eq. 3): 0 is perfectly calibrated, 1 the worst. None when empty."""
    if len(scores) == 0:
        return None
    n = len(scores)
    return float(sum(b["n"] / n * abs(b["accuracy"] - b["confidence"]) for b in reliability_bins(scores, labels, n_bins)))


def brier(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Brier score: mean squared error of ``score / 100`` against the 0/1 label (0 is best)."""
    if len(scores) == 0:
        return None
    s, y = _arrays(scores, labels)
    return float(brier_score_loss(y.astype(int), probabilities(s), pos_label=1))


def auroc_point(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """AUROC of scores against labels (scikit-learn); None when a class is empty."""
    s, y = _arrays(scores, labels)
    if y.all() or not y.any():
        return None
    return float(roc_auc_score(y, s))


def _auroc_rows(s: np.ndarray, y: np.ndarray) -> np.ndarray:
    """AUROC of every row of the 2-D arrays (Mann-Whitney U / (n_pos * n_neg), average ranks
    for ties, as scikit-learn's); NaN for a row with one class."""
    r = rankdata(s, axis=1)  # average ranks
    pos = y.sum(axis=1)
    neg = y.shape[1] - pos
    u = (r * y).sum(axis=1) - pos * (pos + 1) / 2
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((pos > 0) & (neg > 0), u / (pos * neg), np.nan)


def auroc_ci(scores: Sequence[float], labels: Sequence[bool], *, n_resamples: int = N_RESAMPLES,
             confidence: float = 0.95, seed: int = SEED) -> tuple[float, float] | None:
    """Percentile bootstrap confidence interval of the AUROC: ``n_resamples`` resamples of the
    sessions with replacement (numpy ``default_rng(seed)``, so the same input gives the same
    interval); resamples with one class only are skipped. None when the AUROC is undefined
    or fewer than half the resamples have both classes. (Vectorised rank formula rather than
    ``scipy.stats.bootstrap``, which fails on those one-class resamples.)"""
    s, y = _arrays(scores, labels)
    if y.all() or not y.any():
        return None
    rng = np.random.default_rng(seed)
    values: list[np.ndarray] = []
    for start in range(0, n_resamples, 250):  # bounded memory: 250 x n at a time
        idx = rng.integers(0, len(s), size=(min(250, n_resamples - start), len(s)))
        values.append(_auroc_rows(s[idx], y[idx]))
    v = np.concatenate(values)
    v = v[~np.isnan(v)]
    if len(v) < n_resamples / 2:
        return None
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(v, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _defined(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and math.isnan(x)) else float(x)


def threshold_figures(scores: Sequence[float], labels: Sequence[bool], threshold: float) -> dict[str, float | None]:
    """Cohen's kappa between the label and ``score >= threshold``, and the precision and
    recall of that prediction (scikit-learn); each None where undefined (kappa when both
    sides are constant and equal; precision with no predicted positive; recall with no
    positive)."""
    s, y = _arrays(scores, labels)
    if len(s) == 0:
        return {"kappa": None, "precision": None, "recall": None}
    pred = s >= threshold
    kappa = None
    if len(set(y.tolist()) | set(pred.tolist())) > 1:
        with np.errstate(invalid="ignore", divide="ignore"):
            kappa = _defined(float(cohen_kappa_score(y, pred)))
    return {"kappa": kappa,
            "precision": _defined(float(precision_score(y, pred, zero_division=np.nan))),
            "recall": _defined(float(recall_score(y, pred, zero_division=np.nan)))}


def figures(scores: Sequence[float], labels: Sequence[bool], *, threshold: float = 50.0,
            n_resamples: int = N_RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """All figures of one group: ``{"n", "positives", "auroc", "auroc_ci" ([lo, hi] or
    None), "ece", "brier", "kappa", "precision", "recall", "threshold"}``."""
    s, y = _arrays(scores, labels)
    ci = auroc_ci(s, y, n_resamples=n_resamples, seed=seed)
    return {"n": int(len(s)), "positives": int(y.sum()), "auroc": auroc_point(s, y),
            "auroc_ci": None if ci is None else [ci[0], ci[1]], "ece": ece(s, y), "brier": brier(s, y),
            **threshold_figures(s, y, threshold), "threshold": threshold}


__all__ = ["reliability_bins", "ece", "brier", "auroc_point", "auroc_ci", "threshold_figures", "figures",
           "probabilities", "N_BINS", "N_RESAMPLES", "SEED"]
