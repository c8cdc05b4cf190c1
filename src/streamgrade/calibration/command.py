"""``streamgrade calibrate OUT``: fit a calibration model on OUT's labelled sessions and
write it, or (``--evaluate``) measure the ``p_success`` OUT's records already carry.
Kept out of the cli package, which only parses the options."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

from ..labels import Labels
from .fit import CalibrationRefused, fit, labelled_set
from .model import save_model
from .report import evaluate, table

EXIT_OK, EXIT_USAGE, EXIT_REFUSED = 0, 2, 3


def calibrate_out(out: Path, *, dest: Path | None, method: str, folds: int, labels: Labels | None,
                  reward_pass: float | None, evaluate_only: bool, as_json: bool,
                  echo: Callable[..., None]) -> int:
    """Run the command on the latest record of every session in ``out`` (its
    ``sessions/*/scores.json``, which is its last scores.jsonl line); ``echo(text, err=False)`` prints (figures on stdout, messages on
    stderr). Returns the exit code: 0 done, 3 too few labelled sessions (nothing
    written), 2 the model file cannot be written."""
    from ..exports.store import load_records
    from ..sinks.records import rfc3339_now

    data = labelled_set(load_records(out), labels, reward_pass)
    if evaluate_only:
        res = evaluate(data)
        if res["after"]["n"] == 0:
            echo(f"streamgrade: {out}: no labelled session with p_success ({res['n']} labelled; grade with "
                 "--calibration FILE first)", err=True)
            return EXIT_REFUSED
        if as_json:
            echo(json.dumps(res))
        else:
            echo(f"{out}: p_success of {res['after']['n']} labelled sessions ({res['missing_p_success']} "
                 "without p_success left out)")
            for line in table(res, "p_success"):
                echo(line)
        return EXIT_OK
    try:
        model = fit(data, method=method, folds=folds, created=rfc3339_now())
    except CalibrationRefused as exc:
        echo(f"streamgrade: {out}: {exc}", err=True)
        return EXIT_REFUSED
    path = dest or out / "calibration.json"
    try:
        save_model(model, path)
    except OSError as exc:
        echo(f"streamgrade: cannot write the calibration model {path}: {exc.strerror or exc}", err=True)
        return EXIT_USAGE
    t = model.training
    if as_json:
        echo(json.dumps({"model": str(path), "method": method, "features": model.features, **t}))
    else:
        echo(f"{out}: {method} calibration on {t['n']} labelled sessions ({t['positives']} successes"
             f"{', ' + str(t['from_labels']) + ' rewards from labels' if t['from_labels'] else ''}); "
             f"{t['folds']}-fold cross-validated (out-of-fold p_success)")
        for line in table(t, "p_success (CV)"):
            echo(line)
    b, a = t["before"]["auroc"], t["after"]["auroc"]
    if a is not None and b is not None and a < b:
        echo(f"streamgrade: warning: the cross-validated p_success ranks sessions worse than the score (AUROC "
             f"{a:.3f} < {b:.3f}): too few labels for this method's features; label more sessions"
             f"{' or try --method isotonic' if method == 'logistic' else ''}", err=True)
    echo(f"streamgrade: wrote {path} (features: {', '.join(model.features)}); apply it with "
         f"`streamgrade grade ... --calibration {path}`", err=True)
    return EXIT_OK


__all__ = ["calibrate_out"]
