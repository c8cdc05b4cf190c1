"""Agreement between judge scores and ground-truth rewards: AUROC, accuracy at the best
threshold, Spearman's rho. Pure Python, O(n log n); ties get average ranks.

Sources: AUROC as the Mann-Whitney U statistic divided by n_pos * n_neg (Hanley & McNeil,
1982); Spearman's rho as Pearson's correlation of average ranks.
"""

from __future__ import annotations

import math
from typing import Sequence


def pass_mark(rewards: Sequence[float], fixed: float | None = None) -> float:
    """The reward at or above which a session counts as passed: ``fixed`` when given, 1.0
    when the rewards are binary 0/1, else their median."""
    if fixed is not None:
        return fixed
    if not rewards or set(rewards) <= {0.0, 1.0}:
        return 1.0
    ordered = sorted(rewards)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def ranks(values: Sequence[float]) -> list[float]:
    """1-based average ranks (ties share the mean of their positions)."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        avg = (i + j) / 2 + 1
        for k in range(i, j + 1):
            out[order[k]] = avg
        i = j + 1
    return out


def auroc(scores: Sequence[float], labels: Sequence[bool]) -> float | None:
    """Probability that a random positive scores above a random negative (ties count half);
    None when either class is empty."""
    pos = sum(1 for x in labels if x)
    neg = len(labels) - pos
    if pos == 0 or neg == 0:
        return None
    r = ranks(scores)
    rank_sum = sum(ri for ri, lab in zip(r, labels) if lab)
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg)


def best_threshold_accuracy(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float | None, float | None]:
    """(accuracy, threshold) of the rule ``score >= threshold`` -> positive, at the threshold
    that maximises accuracy over all observed scores (and +inf: all negative)."""
    if not scores:
        return None, None
    n = len(scores)
    best_acc, best_t = -1.0, math.inf
    for t in sorted(set(scores)) + [math.inf]:
        acc = sum(1 for s, lab in zip(scores, labels) if (s >= t) == bool(lab)) / n
        if acc > best_acc:
            best_acc, best_t = acc, t
    return best_acc, best_t


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation; None with fewer than 3 points or a constant side."""
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    cov = sum((a - mx) * (b - my) for a, b in zip(rx, ry))
    vx = sum((a - mx) ** 2 for a in rx)
    vy = sum((b - my) ** 2 for b in ry)
    if vx == 0 or vy == 0:
        return None
    return cov / math.sqrt(vx * vy)
