"""Aggregate an ensemble of judge answers into one judgement, with their agreement.

An ensemble is ``judge.samples`` answers per member times the members of
``judge.ensemble`` (different prompts and/or models). Aggregation
(``judge.aggregate``):

- ``mean``: success when the mean ``success_probability`` is at least 0.5; ``p_success``
  that mean; agreement ``1 - 2 * std`` of the probabilities (population std; a 0-1
  variable's std is at most 0.5, so agreement is 0-1).
- ``majority``: success when more than half the members say success (a tie fails);
  ``p_success`` the share saying success; agreement the share of the larger side.
- ``unanimous``: success only when every member says success (CUARewardBench's Unanimous
  Prompt Ensemble, arXiv:2510.18596: strict unanimous voting over prompt templates trades
  recall for precision); ``p_success`` the smallest member probability; agreement as for
  majority.

Component scores are the mean over members, evidence steps their union, and each
component's confidence the members' mean confidence times the agreement, so a split
ensemble lowers the record's confidence. ``failure_cause`` is "none" on success, else the
most common cause among the members that said failure (ties: "unclear").
"""

from __future__ import annotations

import statistics
from collections import Counter
from typing import Literal

from ..models import Component
from .judgement import COMPONENTS, Judgement

Aggregate = Literal["mean", "majority", "unanimous"]


def aggregate(members: list[Judgement], how: Aggregate = "mean") -> tuple[Judgement, float]:
    """(aggregated judgement, agreement 0-1) of ``members`` (at least one).

    A single member is returned as it is with agreement 1.0. Members without an explicit
    verdict (legacy answers, ``success`` None) count as ``success_probability`` = outcome
    score / 100 and success when that is at least 0.5. Raises ValueError for no members or
    an unknown ``how``."""
    if not members:
        raise ValueError("an ensemble needs at least one judgement")
    if how not in ("mean", "majority", "unanimous"):
        raise ValueError(f"judge.aggregate must be mean, majority or unanimous, not {how!r}")
    if len(members) == 1:
        return members[0], 1.0
    probs = [m.p_success if m.p_success is not None else m.components["outcome"].score / 100 for m in members]
    votes = [m.success if m.success is not None else p >= 0.5 for m, p in zip(members, probs)]
    yes = sum(votes) / len(votes)
    if how == "mean":
        p = statistics.fmean(probs)
        success = p >= 0.5
        agreement = max(0.0, 1.0 - 2.0 * statistics.pstdev(probs))
    else:
        success = yes > 0.5 if how == "majority" else all(votes)
        p = yes if how == "majority" else min(probs)
        agreement = max(yes, 1.0 - yes)
    comps: dict[str, Component] = {}
    for name in COMPONENTS:
        cs = [m.components[name] for m in members]
        reason = next((m.components[name].reason for m, v in zip(members, votes) if v == success), cs[0].reason)
        comps[name] = Component(score=round(statistics.fmean(c.score for c in cs), 2),
                                confidence=round(statistics.fmean(c.confidence for c in cs) * agreement, 4),
                                reason=reason)
    evidence = {name: sorted({i for m in members for i in m.evidence.get(name, [])}) for name in COMPONENTS}
    if success:
        cause = "none"
    else:
        counts = Counter(m.failure_cause or "unclear" for m, v in zip(members, votes) if not v).most_common()
        cause = counts[0][0] if counts and (len(counts) == 1 or counts[0][1] > counts[1][1]) else "unclear"
    first = next((m for m, v in zip(members, votes) if v == success), members[0])
    key_points = list(dict.fromkeys(k for m in members for k in m.key_points))
    return Judgement(summary=first.summary, components=comps, evidence=evidence, key_points=key_points,
                     failure_cause=cause, success=success, p_success=round(p, 4)), round(agreement, 4)
