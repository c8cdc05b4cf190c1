"""Fitting P(success) on the user's labelled sessions (``streamgrade calibrate``), with
scikit-learn, and its k-fold cross-validated figures.

The labelled set: the graded records of an output folder that carry a reward (their own,
or one joined from ``--labels`` files, :mod:`streamgrade.labels`). A session is a success
when its reward is at least the pass mark of its ``source_format``
(:func:`streamgrade.agreement.pass_mark`: 1.0 for binary rewards, else the format's
median, or ``[exports] reward_pass`` when set).

Methods: ``logistic`` (default), a Pipeline of SimpleImputer(median, add_indicator) ->
StandardScaler -> LogisticRegression (L2, C=1) over the generic features of
:mod:`.features`; ``isotonic``, IsotonicRegression of success on score / 100 (monotone,
clipped; Zadrozny & Elkan, KDD 2002). Cross-validation: StratifiedKFold(shuffle, seed 0)
with ``folds`` folds, fewer when the smaller class has fewer sessions; the figures
"before" take score / 100 as the probability, "after" the out-of-fold predictions. The
model written is refitted on every labelled session.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .. import __version__
from ..agreement import pass_mark
from ..labels import Labels
from .features import FEATURES, feature_vector
from .metrics import figures
from .model import CalibrationModel

MIN_SESSIONS = 10
MIN_PER_CLASS = 3


class CalibrationRefused(Exception):
    """Too few labelled sessions (or of one class) to fit and cross-validate."""


@dataclass
class LabelledSet:
    """The records used (graded, with a reward), their outcomes, the pass mark by
    source_format, and how many rewards came from labels files."""

    records: list[dict[str, Any]]
    success: list[bool]
    pass_marks: dict[str, float]
    from_labels: int = 0


def labelled_set(records: Iterable[Mapping[str, Any]], labels: Labels | None = None,
                 reward_pass: float | None = None) -> LabelledSet:
    """Graded records with a reward (a label from ``labels`` replaces the record's own),
    and success = reward >= the pass mark of the record's source_format."""
    kept: list[dict[str, Any]] = []
    joined = 0
    for r in records:
        if r.get("status") != "graded" or r.get("score") is None:
            continue
        r = dict(r)
        if labels is not None:
            lab = labels.reward_for(str(r.get("session_id")), r.get("trial"), r.get("task_id"))
            if lab is not None:
                r["reward"], joined = lab, joined + 1
        if isinstance(r.get("reward"), (int, float)) and not isinstance(r.get("reward"), bool) \
                and math.isfinite(r["reward"]):
            kept.append(r)
    by_fmt: dict[str, list[float]] = defaultdict(list)
    for r in kept:
        by_fmt[str(r.get("source_format"))].append(float(r["reward"]))
    marks = {f: pass_mark(v, reward_pass) for f, v in sorted(by_fmt.items())}
    success = [float(r["reward"]) >= marks[str(r.get("source_format"))] for r in kept]
    return LabelledSet(kept, success, marks, joined)


def check_enough(data: LabelledSet) -> None:
    """Raise CalibrationRefused (with what is missing) below MIN_SESSIONS labelled sessions
    or MIN_PER_CLASS successes or failures."""
    n, pos = len(data.success), sum(data.success)
    if n < MIN_SESSIONS or min(pos, n - pos) < MIN_PER_CLASS:
        raise CalibrationRefused(
            f"{n} labelled sessions ({pos} successes, {n - pos} failures): calibration needs at least "
            f"{MIN_SESSIONS} with {MIN_PER_CLASS} of each class (grade more sessions with rewards, or join "
            "ground truth with --labels)")


def design(records: list[dict[str, Any]], names: list[str]):
    """The feature matrix (numpy, NaN where missing) of ``records``."""
    import numpy as np

    return np.array([[math.nan if v is None else v for v in feature_vector(r, names)] for r in records], dtype=float)


def usable_features(records: list[dict[str, Any]]) -> list[str]:
    """Feature names with at least one value among ``records`` (a column missing
    everywhere carries nothing and would be dropped by the imputer)."""
    X = design(records, list(FEATURES))
    import numpy as np

    return [n for j, n in enumerate(FEATURES) if not np.isnan(X[:, j]).all()]


def make_estimator(method: str):
    """The unfitted scikit-learn estimator of ``method``. The imputer keeps a column that
    a cross-validation fold lacks entirely (as 0, silently); the final fit has none, since
    only :func:`usable_features` are used."""
    if method == "isotonic":
        from sklearn.isotonic import IsotonicRegression

        return IsotonicRegression(y_min=0.0, y_max=1.0, out_of_bounds="clip")
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    return Pipeline([("impute", SimpleImputer(strategy="median", add_indicator=True,
                                               keep_empty_features=True)),
                     ("scale", StandardScaler()),
                     ("logistic", LogisticRegression(C=1.0, max_iter=1000))])


def predict_sklearn(est, method: str, X):
    """P(success) of rows X by a fitted estimator (numpy array)."""
    return est.predict(X[:, 0]) if method == "isotonic" else est.predict_proba(X)[:, 1]


def params_of(est, method: str) -> dict[str, Any]:
    """The fitted parameters in the model file's shape (see :mod:`.model`)."""
    if method == "isotonic":
        return {"x": [float(v) for v in est.X_thresholds_], "y": [float(v) for v in est.y_thresholds_]}
    imp, sc, lr = est.named_steps["impute"], est.named_steps["scale"], est.named_steps["logistic"]
    ind = [int(i) for i in imp.indicator_.features_] if imp.indicator_ is not None else []
    return {"impute": [float(v) for v in imp.statistics_], "indicators": ind,
            "mean": [float(v) for v in sc.mean_], "scale": [float(v) for v in sc.scale_],
            "coef": [float(v) for v in lr.coef_[0]], "intercept": float(lr.intercept_[0])}


def _figures_by_format(data: LabelledSet, probs: list[float]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(data.records):
        groups[str(r.get("source_format"))].append(i)
    out = {}
    for fmt, idx in sorted(groups.items()):
        out[fmt] = {"pass_mark": data.pass_marks[fmt],
                    "before": figures([data.records[i]["score"] / 100.0 for i in idx], [data.success[i] for i in idx]),
                    "after": figures([probs[i] for i in idx], [data.success[i] for i in idx])}
    return out


def fit(data: LabelledSet, *, method: str = "logistic", folds: int = 5, seed: int = 0,
        created: str = "") -> CalibrationModel:
    """Cross-validate and fit ``method`` on ``data``; the model's ``training`` holds the
    figures {n, positives, folds, pass_marks, from_labels, before, after, by_format}.
    Raises CalibrationRefused (see :func:`check_enough`), ValueError for an unknown method
    or fewer than 2 folds."""
    if method not in ("logistic", "isotonic"):
        raise ValueError(f"unknown calibration method {method!r}")
    if folds < 2:
        raise ValueError(f"--folds must be at least 2, got {folds}")
    check_enough(data)
    from sklearn.model_selection import StratifiedKFold

    import numpy as np

    names = ["score"] if method == "isotonic" else usable_features(data.records)
    X = design(data.records, names)
    y = np.array(data.success, dtype=int)
    k = min(folds, int(y.sum()), int(len(y) - y.sum()))
    oof = np.zeros(len(y))
    for train, test in StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(X, y):
        est = make_estimator(method)
        est.fit(X[train, 0] if method == "isotonic" else X[train], y[train])
        oof[test] = predict_sklearn(est, method, X[test])
    final = make_estimator(method)
    final.fit(X[:, 0] if method == "isotonic" else X, y)
    probs = [float(p) for p in oof]
    before = [r["score"] / 100.0 for r in data.records]
    training = {"n": len(y), "positives": int(y.sum()), "folds": k, "seed": seed, "pass_marks": data.pass_marks,
                "from_labels": data.from_labels, "before": figures(before, data.success),
                "after": figures(probs, data.success), "by_format": _figures_by_format(data, probs)}
    return CalibrationModel(method=method, features=names, params=params_of(final, method), training=training,
                            created=created, streamgrade_version=__version__)


__all__ = ["CalibrationRefused", "LabelledSet", "labelled_set", "check_enough", "fit", "make_estimator",
           "design", "params_of", "predict_sklearn", "MIN_SESSIONS", "MIN_PER_CLASS"]
