#!/usr/bin/env python3
"""How well do judge scores agree with ground-truth rewards?

Grades PATH... (with the configured judge; the offline heuristic by default) into OUT (a
temporary folder unless -o is given), then prints per source format: n (sessions with a
reward), AUROC of score vs reward (positive = reward >= the format's pass mark: 1.0 for
binary rewards, else the median reward), accuracy of ``score >= t`` at the best threshold t,
and Spearman's rho of score vs reward. The last line is one JSON object of the figures.

    python scripts/judge_quality.py ../shared/corpus/tau-bench
    python scripts/judge_quality.py ../shared/corpus/tau-bench ../shared/corpus/harbor \\
        ../shared/corpus/crafter-balrog --judge heuristic -o /tmp/jq
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from collections import defaultdict
from pathlib import Path

import anyio

import logging

from streamgrade.agreement import auroc, best_threshold_accuracy, pass_mark, spearman
from streamgrade.config import load_config
from streamgrade.exports.store import load_records
from streamgrade.judges import make_judge
from streamgrade.pipeline import Pipeline, scan_source


def figures(records: list[dict]) -> dict[str, dict]:
    by_fmt: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for r in records:
        if r.get("status") == "graded" and r.get("reward") is not None:
            by_fmt[r["source_format"]].append((float(r["score"]), float(r["reward"])))
    out = {}
    for fmt, pairs in sorted(by_fmt.items()):
        scores = [s for s, _ in pairs]
        rewards = [w for _, w in pairs]
        mark = pass_mark(rewards)
        labels = [w >= mark for w in rewards]
        acc, thr = best_threshold_accuracy(scores, labels)
        au, rho = auroc(scores, labels), spearman(scores, rewards)
        out[fmt] = {"n": len(pairs), "positives": sum(labels), "pass_mark": mark,
                    "auroc": None if au is None else round(au, 4),
                    "accuracy_best": None if acc is None else round(acc, 4),
                    "threshold": None if thr is None or thr == float("inf") else thr,
                    "spearman": None if rho is None else round(rho, 4)}
    return out


async def grade(paths: list[Path], out: Path, judge_kind: str) -> None:
    cfg = load_config(overrides={"run": {"judge": judge_kind}})
    judge = make_judge(cfg)
    try:
        await Pipeline(cfg, out, judge).run(scan_source(paths, exclude=[out]))
    finally:
        await judge.aclose()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("paths", nargs="+", type=Path)
    ap.add_argument("-o", "--output", type=Path, help="output folder (default: a temporary one)")
    ap.add_argument("--judge", default="heuristic", choices=["heuristic", "openai", "auto"])
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # per-session warnings are not the point here
    with tempfile.TemporaryDirectory() as tmp:
        out = args.output or Path(tmp) / "out"
        anyio.run(grade, args.paths, out, args.judge)
        result = figures(list(load_records(out)))
    print(f"{'format':<16}{'n':>5}{'pos':>5}{'AUROC':>8}{'acc@best':>10}{'rho':>8}")
    for fmt, f in result.items():
        fmtd = lambda v: "-" if v is None else f"{v:.3f}"  # noqa: E731
        print(f"{fmt:<16}{f['n']:>5}{f['positives']:>5}{fmtd(f['auroc']):>8}{fmtd(f['accuracy_best']):>10}{fmtd(f['spearman']):>8}")
    print(json.dumps({"judge": args.judge, "formats": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
