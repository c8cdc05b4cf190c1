#!/usr/bin/env python3
"""How well each golden-path metric tracks the ground-truth reward, from a graded OUT.

    python scripts/golden_report.py OUT [--pass-mark 0.5] [--json]

Reads OUT/exports/scores.jsonl (``streamgrade grade ... -o OUT``), keeps the graded records
that have both a ``reward`` and a ``golden`` field (a reference action sequence: tau-bench
``info.task.actions``, tau2 ``evaluation_criteria.actions``), and prints for each golden
metric (exact, in_order, any_order, arg_agreement, precision, recall; booleans as 0/1) and,
for comparison, the blind judge's ``score``:

- n: records where the metric is defined (arg_agreement, precision and recall can be None);
- Spearman's rho with the reward (scipy.stats.spearmanr; ties averaged);
- the point-biserial correlation with the binary outcome reward >= pass mark
  (scipy.stats.pointbiserialr, i.e. Pearson's r against a 0/1 variable);
- AUROC of the metric as a predictor of that outcome (sklearn.metrics.roc_auc_score; 0.5 is
  chance; ties count half).

A figure is "nan" when it is undefined (a constant metric, or one outcome class only). The
last line with ``--json`` is one JSON object of the same figures.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np
from scipy.stats import pointbiserialr, spearmanr
from sklearn.metrics import roc_auc_score

METRICS = ("exact", "in_order", "any_order", "arg_agreement", "precision", "recall")


def load(out: Path) -> list[dict]:
    """The graded records of OUT/exports/scores.jsonl with a reward and a golden field."""
    path = out / "exports" / "scores.jsonl"
    if not path.is_file():
        sys.exit(f"golden_report: {path} not found (grade first: streamgrade grade DATA -o OUT)")
    recs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            if r.get("status") == "graded" and isinstance(r.get("reward"), (int, float)) and r.get("golden"):
                recs.append(r)
    return recs


def figures(xs: list[float], rewards: list[float], pass_mark: float) -> dict:
    """n, Spearman's rho, point-biserial r and AUROC of ``xs`` against the rewards."""
    x, y = np.asarray(xs, float), np.asarray(rewards, float)
    won = (y >= pass_mark).astype(int)
    out = {"n": len(x), "mean": float(x.mean()) if len(x) else math.nan,
           "spearman": math.nan, "point_biserial": math.nan, "auroc": math.nan}
    if len(x) > 2 and np.ptp(x) > 0 and np.ptp(y) > 0:
        out["spearman"] = float(spearmanr(x, y).statistic)
        out["point_biserial"] = float(pointbiserialr(won, x).statistic)
    if len(set(won.tolist())) == 2:
        out["auroc"] = float(roc_auc_score(won, x))
    return out


def report(recs: list[dict], pass_mark: float) -> dict:
    """{metric: figures} for every golden metric and the judge's score."""
    table = {}
    for m in METRICS + ("score",):
        pairs = [(r["golden"].get(m) if m != "score" else r.get("score"), r["reward"]) for r in recs]
        pairs = [(float(v), float(w)) for v, w in pairs if isinstance(v, (int, float))]
        table[m] = figures([p[0] for p in pairs], [p[1] for p in pairs], pass_mark)
    return table


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--pass-mark", type=float, default=0.5, help="reward >= this is a success (default 0.5)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    recs = load(args.out)
    if not recs:
        sys.exit("golden_report: no graded record with both a reward and a golden field")
    wins = sum(1 for r in recs if r["reward"] >= args.pass_mark)
    print(f"{len(recs)} sessions with a reference and a reward; {wins} successes (reward >= {args.pass_mark:g})")
    table = report(recs, args.pass_mark)
    print(f"{'metric':<14}{'n':>5}{'mean':>8}{'spearman':>10}{'pt-biserial':>13}{'AUROC':>8}")
    for m, f in table.items():
        print(f"{m:<14}{f['n']:>5}{f['mean']:>8.3f}{f['spearman']:>10.3f}{f['point_biserial']:>13.3f}{f['auroc']:>8.3f}")
    if args.json:
        print(json.dumps({"sessions": len(recs), "successes": wins, "pass_mark": args.pass_mark, "metrics": table}))


if __name__ == "__main__":
    main()
