"""``streamgrade stats``: what an output folder holds, by format, model and task.

For each group: sessions, graded, failed, ungradable (records with nothing to judge, status
``ungradable``: no score; left out of every score figure); score mean, median, p10, p90; reward mean and
pass rate (reward >= the pass mark: ``exports.reward_pass`` when set, else 1.0 for binary
rewards and the group's median otherwise); judge pass rate (score >= the quality
threshold ``exports.min_score``, or 50 when unset); and, where rewards exist, agreement of
score with reward: AUROC (positive = passed) and Spearman's rho.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any, Iterable

from .agreement import auroc, pass_mark, spearman
from .exports.store import load_records


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def is_ungradable(record: dict[str, Any]) -> bool:
    """A record of a session the judge found nothing to judge in (status ``ungradable``)."""
    return record.get("status") == "ungradable"


def summarise(records: Iterable[dict[str, Any]], *, reward_pass: float | None = None, score_pass: float = 50.0) -> dict[str, Any]:
    """Figures of a group of scores.jsonl records (see module docstring)."""
    recs = list(records)
    ungradable = [r for r in recs if is_ungradable(r)]
    graded = [r for r in recs if r.get("status") == "graded" and not is_ungradable(r)]
    scores = [float(r["score"]) for r in graded if r.get("score") is not None]
    with_reward = [r for r in graded if r.get("reward") is not None]
    rewards = [float(r["reward"]) for r in with_reward]
    mark = pass_mark(rewards, reward_pass)
    out: dict[str, Any] = {
        "sessions": len(recs), "graded": len(graded), "failed": len(recs) - len(graded) - len(ungradable),
        "ungradable": len(ungradable),
        "score_mean": round(statistics.fmean(scores), 2) if scores else None,
        "score_median": statistics.median(scores) if scores else None,
        "score_p10": _pct(scores, 0.1), "score_p90": _pct(scores, 0.9),
        "judge_pass_rate": round(sum(s >= score_pass for s in scores) / len(scores), 4) if scores else None,
        "with_reward": len(with_reward),
        "reward_mean": round(statistics.fmean(rewards), 4) if rewards else None,
        "reward_pass_mark": mark if rewards else None,
        "reward_pass_rate": round(sum(w >= mark for w in rewards) / len(rewards), 4) if rewards else None,
        "auroc": None, "spearman": None,
    }
    if with_reward:
        sc = [float(r["score"]) for r in with_reward]
        au = auroc(sc, [w >= mark for w in rewards])
        rho = spearman(sc, rewards)
        out["auroc"] = None if au is None else round(au, 4)
        out["spearman"] = None if rho is None else round(rho, 4)
    return out


def stats(out: str | Path, *, reward_pass: float | None = None, score_pass: float = 50.0) -> dict[str, Any]:
    """{"total": figures, "by_format": {fmt: figures}, "by_model": {...}, "by_task":
    {"format/task_id": figures}} for the latest record of every session under ``out``."""
    recs = list(load_records(out))
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {"by_format": defaultdict(list), "by_model": defaultdict(list),
                                                          "by_task": defaultdict(list)}
    for r in recs:
        groups["by_format"][r.get("source_format") or "-"].append(r)
        groups["by_model"][r.get("model") or "-"].append(r)
        if r.get("task_id") is not None:
            groups["by_task"][f"{r.get('source_format')}/{r['task_id']}"].append(r)
    kw = {"reward_pass": reward_pass, "score_pass": score_pass}
    return {"total": summarise(recs, **kw),
            **{name: {k: summarise(v, **kw) for k, v in sorted(g.items())} for name, g in groups.items()}}
