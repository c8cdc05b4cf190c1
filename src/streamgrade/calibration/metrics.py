"""How good probabilities of success are against binary outcomes: AUROC (ranking), ECE
(calibration) and the Brier score. Pure Python.

ECE, the expected calibration error (Guo et al., "On Calibration of Modern Neural
Networks", ICML 2017, eq. 3; Naeini et al., AAAI 2015): the probabilities are put into
``bins`` equal-width bins over [0, 1], right-closed as in Guo et al. ((m-1)/M, m/M], with
0 in the first bin; ECE = sum over bins of |B_m| / n * |observed success rate(B_m) - mean
probability(B_m)|. For a binary P(success) the bin's success rate takes the place of
Guo et al.'s top-label accuracy (the positive-class reading, as in
``sklearn.calibration.calibration_curve(strategy="uniform")``, whose bin edges these
are). Brier: mean squared difference of probability and outcome (Brier, 1950).
"""

from __future__ import annotations

import math
from typing import Sequence

from ..agreement import auroc


def bin_index(p: float, bins: int = 10) -> int:
    """The 0-based bin of probability ``p`` among ``bins`` equal-width right-closed bins
    ((m-1)/M, m/M]; 0 goes in bin 0. Rounds p*M to 12 decimals first so that an edge such
    as 0.3 lands in its own bin despite float noise (0.3*10 = 3.0000000000000004)."""
    x = round(min(max(p, 0.0), 1.0) * bins, 12)
    return min(max(math.ceil(x) - 1, 0), bins - 1)


def ece(probs: Sequence[float], labels: Sequence[bool], bins: int = 10) -> float | None:
    """Expected calibration error of ``probs`` (0-1) against ``labels`` (see the module
    docstring); None for an empty set. Raises ValueError when the lengths differ."""
    if len(probs) != len(labels):
        raise ValueError(f"{len(probs)} probabilities for {len(labels)} labels")
    if not probs:
        return None
    count = [0] * bins
    psum = [0.0] * bins
    ysum = [0.0] * bins
    for p, y in zip(probs, labels):
        b = bin_index(p, bins)
        count[b] += 1
        psum[b] += p
        ysum[b] += 1.0 if y else 0.0
    n = len(probs)
    return sum(c / n * abs(ys / c - ps / c) for c, ps, ys in zip(count, psum, ysum) if c)


def brier(probs: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Mean of (p - y)^2; None for an empty set."""
    if not probs:
        return None
    return sum((p - (1.0 if y else 0.0)) ** 2 for p, y in zip(probs, labels)) / len(probs)


def figures(probs: Sequence[float], labels: Sequence[bool]) -> dict[str, float | int | None]:
    """{n, positives, auroc, ece, brier} of one set (auroc None with one class)."""
    return {"n": len(labels), "positives": sum(1 for y in labels if y), "auroc": auroc(probs, labels),
            "ece": ece(probs, labels), "brier": brier(probs, labels)}


__all__ = ["bin_index", "ece", "brier", "figures"]
