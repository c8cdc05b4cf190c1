#!/usr/bin/env python3
"""Leave-one-dataset-out (LODO) evaluation of the offline heuristic judge, and its fit.

Reads every labelled folder of the corpus in process (each session assembled by its format,
as ``streamgrade grade`` does), extracts the structural features of
:mod:`streamgrade.judges.signals`, and for each dataset D fits a sign-constrained logistic
regression on the other datasets and measures the AUROC of its P(success) on D (positive:
reward >= :func:`streamgrade.agreement.pass_mark` of D's rewards). Prints a table of
dataset, n (gradable sessions with a reward), positives, the AUROC of the judge before this
rebuild (measured at commit 9935d9e, kept below as figures) and the held-out AUROC after;
then, for the shipped weights, the AUROC, the judge pass rate (score >= 50), the mean P
(the expected pass rate of a calibrated model) and the true pass rate.
``--write`` refits on every dataset and writes src/streamgrade/judges/heuristic_weights.json.

Fit: minimise the weighted log loss + ``l2`` x |w|^2 with L-BFGS-B (scipy), each weight
bounded to its expected sign (``signals.SIGNS``; sklearn's LogisticRegression has no sign
constraints, and a free fit learned "timeout means success" from 4 Terminal-Bench trials);
every session weighs the same (weighting datasets equally, or by 1/sqrt(n), gave lower
held-out AUROC: a 4-trial dataset then pulls the weights as much as 200 tau-bench runs).

    PYTHONPATH=src python scripts/lodo_heuristic.py [--corpus /work/shared/corpus] [--write]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

import numpy as np
from scipy.optimize import minimize

from streamgrade.agreement import auroc, pass_mark
from streamgrade.chunking import chunk_session
from streamgrade.config import load_config
from streamgrade.formats import configure_formats, get_format
from streamgrade.judges.heuristic import HeuristicJudge, WEIGHTS_PATH
from streamgrade.judges.rubric import final_score
from streamgrade.judges.signals import EXCLUDED, FEATURES, SIGNS, features, ungradable_reason
from streamgrade.sources.scan import scan

DATASETS = ("tau-bench", "harbor", "crafter-balrog", "inspect-ai", "mini-swe-agent", "openhands-output", "terminal-bench")
#: AUROC of score vs pass of the heuristic before this rebuild (commit 9935d9e, every
#: session with a reward, same pass marks), measured with this script's loader.
BEFORE = {"tau-bench": 0.719, "harbor": 0.500, "crafter-balrog": 0.593, "inspect-ai": 0.576,
          "mini-swe-agent": 0.500, "openhands-output": 0.497, "terminal-bench": 0.500}
L2 = 0.001


def load(corpus: Path, cfg) -> dict[str, list]:
    """{dataset: [Session with a reward]} of the labelled folders."""
    out = {}
    for ds in DATASETS:
        out[ds] = [s for ref in scan([corpus / ds]) if (s := get_format(ref.format).assemble(ref, cfg)).reward is not None]
    return out


def fit(X: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[float, np.ndarray]:
    """(intercept, weights) of the sign-constrained, L2-penalised logistic regression."""
    keep = np.array([f not in EXCLUDED for f in FEATURES])
    w = w / w.sum()

    def loss(p):
        c = p[1:] * keep
        z = p[0] + X @ c
        pr = 1 / (1 + np.exp(-z))
        ll = -(w * (y * np.log(pr + 1e-12) + (1 - y) * np.log(1 - pr + 1e-12))).sum() + L2 * (c @ c)
        g = X.T @ (w * (pr - y)) + 2 * L2 * c
        return ll, np.concatenate([[(w * (pr - y)).sum()], g * keep])

    bounds = [(None, None)] + [((0, None) if SIGNS[f] > 0 else (None, 0)) if f not in EXCLUDED else (0, 0) for f in FEATURES]
    r = minimize(loss, np.zeros(len(FEATURES) + 1), jac=True, method="L-BFGS-B", bounds=bounds)
    return float(r.x[0]), r.x[1:]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("/work/shared/corpus"))
    ap.add_argument("--write", action="store_true", help="write the weights fitted on every dataset")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    cfg = load_config(env={})
    configure_formats(cfg)
    data = load(args.corpus, cfg)
    X, Y, ungradable = {}, {}, {}
    for ds, ss in data.items():
        mark = pass_mark([s.reward for s in ss])
        ok = [s for s in ss if ungradable_reason(s) is None]
        ungradable[ds] = len(ss) - len(ok)
        X[ds] = np.array([[features(s)[f] for f in FEATURES] for s in ok])
        Y[ds] = np.array([s.reward >= mark for s in ok], float)

    def weights_of(dss):
        return np.concatenate([np.ones(len(Y[d])) for d in dss])

    print(f"{'dataset':<18}{'n':>5}{'pos':>5}{'ungr':>6}{'before':>8}{'LODO':>8}")
    for ds in DATASETS:
        rest = [d for d in DATASETS if d != ds]
        b, c = fit(np.vstack([X[d] for d in rest]), np.concatenate([Y[d] for d in rest]), weights_of(rest))
        au = auroc(list(X[ds] @ c + b), list(Y[ds].astype(bool)))
        print(f"{ds:<18}{len(Y[ds]):>5}{int(Y[ds].sum()):>5}{ungradable[ds]:>6}{BEFORE[ds]:>8.3f}"
              f"{'-' if au is None else f'{au:.3f}':>8}")
    b, c = fit(np.vstack(list(X.values())), np.concatenate(list(Y.values())), weights_of(DATASETS))
    if args.write:
        doc = {"features": list(FEATURES), "intercept": round(b, 4),
               "weights": {f: round(float(v), 4) for f, v in zip(FEATURES, c)},
               "fitted_on": {d: len(Y[d]) for d in DATASETS},
               "source": "scripts/lodo_heuristic.py --write (sign-constrained logistic regression, L2 %g)" % L2}
        WEIGHTS_PATH.write_text(json.dumps(doc, indent=2) + "\n")
        print(f"wrote {WEIGHTS_PATH}")
    # the shipped judge, end to end: the final score of scores.jsonl
    judge, w = HeuristicJudge(cfg), cfg.rubric.weights()
    print(f"\nshipped weights ({WEIGHTS_PATH.name}), in-sample; ungradable sessions left out")
    print(f"{'dataset':<18}{'AUROC':>8}{'judge pass':>12}{'mean P':>9}{'true pass':>11}")
    all_s, all_y = [], []
    for ds, ss in data.items():
        mark = pass_mark([s.reward for s in ss])
        ok = [s for s in ss if ungradable_reason(s) is None]
        sc = [final_score(judge.grade_sync(s, chunk_session(s, cfg.chunking)).components, w) for s in ok]
        y = [s.reward >= mark for s in ok]
        all_s += sc
        all_y += y
        au = auroc(sc, y)
        print(f"{ds:<18}{'-' if au is None else f'{au:.3f}':>8}{sum(x >= 50 for x in sc) / len(sc):>12.1%}"
              f"{sum(sc) / len(sc) / 100:>9.1%}{sum(y) / len(y):>11.1%}")
    print(f"{'all':<18}{'':>8}{sum(x >= 50 for x in all_s) / len(all_s):>12.1%}"
          f"{sum(all_s) / len(all_s) / 100:>9.1%}{sum(all_y) / len(all_y):>11.1%}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
