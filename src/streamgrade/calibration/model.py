"""The calibration model file and its evaluation without scikit-learn.

The file (``OUT/calibration.json`` by default, written by ``streamgrade calibrate``) is one
JSON object::

    {"format": "streamgrade-calibration", "version": 1,
     "method": "logistic" | "isotonic",
     "features": [names, see streamgrade.calibration.features],
     "params": logistic: {"impute": [one per feature], "indicators": [feature indices
                          that get a missing-indicator column], "mean": [...], "scale":
                          [...] (one per column: features, then indicators),
                          "coef": [...], "intercept": float}
               isotonic: {"x": [increasing scores / 100], "y": [P(success)]},
     "training": {n, positives, folds, pass_marks, before, after, by_format, ...},
     "created": RFC 3339 UTC time, "streamgrade_version": "..."}

Logistic evaluation repeats scikit-learn's Pipeline(SimpleImputer(add_indicator=True),
StandardScaler, LogisticRegression): fill a missing value with its ``impute`` value, append
1/0 missing-indicators, standardise with ``(x - mean) / scale``, then
``1 / (1 + exp(-(coef . z + intercept)))``. Isotonic evaluation is
``IsotonicRegression(out_of_bounds="clip").predict``: linear interpolation between the
breakpoints, clipped at both ends.
"""

from __future__ import annotations

import bisect
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from ..errors import ConfigError
from .features import FEATURES, feature_vector

FORMAT = "streamgrade-calibration"
VERSION = 1
METHODS = ("logistic", "isotonic")


@dataclass
class CalibrationModel:
    """A fitted calibration: ``method``, ``features`` (names), ``params`` (see the module
    docstring), ``training`` figures, ``created`` time, ``streamgrade_version``."""

    method: str
    features: list[str]
    params: dict[str, Any]
    training: dict[str, Any] = field(default_factory=dict)
    created: str = ""
    streamgrade_version: str = ""
    path: str = ""  # where it was read from (for messages); not written

    def predict(self, record: Mapping[str, Any]) -> float | None:
        """P(success) 0-1 of a scores.jsonl record (a dict); None when it cannot be
        computed (isotonic: no score)."""
        x = feature_vector(record, self.features)
        if self.method == "isotonic":
            return None if x[0] is None else _interp(x[0], self.params["x"], self.params["y"])
        p = self.params
        filled = [p["impute"][i] if v is None else v for i, v in enumerate(x)]
        cols = filled + [1.0 if x[i] is None else 0.0 for i in p["indicators"]]
        z = sum(c * (v - m) / s for c, v, m, s in zip(p["coef"], cols, p["mean"], p["scale"])) + p["intercept"]
        return _sigmoid(z)

    def to_dict(self) -> dict[str, Any]:
        """The file's JSON object."""
        return {"format": FORMAT, "version": VERSION, "method": self.method, "features": self.features,
                "params": self.params, "training": self.training, "created": self.created,
                "streamgrade_version": self.streamgrade_version}

    @classmethod
    def from_dict(cls, doc: Any, path: str = "<model>") -> "CalibrationModel":
        """Validate a model file's object. Raises ConfigError naming ``path`` and the field."""
        def bad(fld: str, msg: str) -> ConfigError:
            return ConfigError(f"calibration model {path}: field {fld}: {msg}")

        if not isinstance(doc, dict):
            raise bad("(top)", "expected a JSON object")
        if doc.get("format") != FORMAT:
            raise bad("format", f"expected {FORMAT!r}, got {doc.get('format')!r} (not a streamgrade calibration file)")
        if doc.get("version") != VERSION:
            raise bad("version", f"unknown version {doc.get('version')!r}; this streamgrade reads version {VERSION} "
                                 "(refit with `streamgrade calibrate`)")
        method = doc.get("method")
        if method not in METHODS:
            raise bad("method", f"expected one of {', '.join(METHODS)}, got {method!r}")
        feats = doc.get("features")
        if not isinstance(feats, list) or not feats or not all(isinstance(f, str) for f in feats):
            raise bad("features", "expected a non-empty list of feature names")
        unknown = [f for f in feats if f not in FEATURES]
        if unknown:
            raise bad("features", f"unknown feature {unknown[0]!r} (known: {', '.join(FEATURES)})")
        params = doc.get("params")
        if not isinstance(params, dict):
            raise bad("params", "expected an object")
        if method == "isotonic":
            if feats != ["score"]:
                raise bad("features", "an isotonic model takes the one feature 'score'")
            xs, ys = _floats(params, "x", bad), _floats(params, "y", bad)
            if not xs or len(xs) != len(ys):
                raise bad("params.y", f"expected as many values as params.x ({len(xs)}), got {len(ys)}")
            if any(b < a for a, b in zip(xs, xs[1:])):
                raise bad("params.x", "breakpoints must be increasing")
        else:
            impute = _floats(params, "impute", bad)
            if len(impute) != len(feats):
                raise bad("params.impute", f"expected {len(feats)} values (one per feature), got {len(impute)}")
            ind = params.get("indicators")
            if not isinstance(ind, list) or not all(isinstance(i, int) and 0 <= i < len(feats) for i in ind):
                raise bad("params.indicators", "expected a list of feature indices")
            ncols = len(feats) + len(ind)
            for name in ("mean", "scale", "coef"):
                vals = _floats(params, name, bad)
                if len(vals) != ncols:
                    raise bad(f"params.{name}", f"expected {ncols} values (features, then indicators), got {len(vals)}")
            if any(s == 0 for s in params["scale"]):
                raise bad("params.scale", "a scale of 0")
            if isinstance(params.get("intercept"), bool) or not isinstance(params.get("intercept"), (int, float)) \
                    or not math.isfinite(params["intercept"]):
                raise bad("params.intercept", "expected a finite number")
        training = doc.get("training") if isinstance(doc.get("training"), dict) else {}
        return cls(method=method, features=list(feats), params=params, training=training,
                   created=str(doc.get("created") or ""), streamgrade_version=str(doc.get("streamgrade_version") or ""),
                   path=path)


def _floats(params: dict, name: str, bad) -> list[float]:
    vals = params.get(name)
    if not isinstance(vals, list) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in vals):
        raise bad(f"params.{name}", "expected a list of finite numbers")
    return vals


def _sigmoid(z: float) -> float:
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def _interp(v: float, xs: list[float], ys: list[float]) -> float:
    """numpy.interp / scipy interp1d(kind="linear") with clipping at both ends."""
    if v <= xs[0]:
        return float(ys[0])
    if v >= xs[-1]:
        return float(ys[-1])
    j = bisect.bisect_right(xs, v)
    x0, x1, y0, y1 = xs[j - 1], xs[j], ys[j - 1], ys[j]
    return float(y0 if x1 == x0 else y0 + (y1 - y0) * (v - x0) / (x1 - x0))


def load_model(path: str | Path) -> CalibrationModel:
    """Read and validate a model file. Raises ConfigError naming the file (and the field)
    when it is missing, not JSON, of another version or inconsistent."""
    p = str(path)
    try:
        text = Path(p).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"calibration model {p}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"calibration model {p}: not UTF-8 text") from None
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"calibration model {p}: invalid JSON: {exc}") from None
    return CalibrationModel.from_dict(doc, p)


def save_model(model: CalibrationModel, path: str | Path) -> None:
    """Write the model file atomically (indented JSON). Raises OSError."""
    from ..sinks.atomic import write_atomic

    write_atomic(path, (json.dumps(model.to_dict(), indent=2) + "\n").encode("utf-8"))


__all__ = ["CalibrationModel", "load_model", "save_model", "FORMAT", "VERSION", "METHODS"]
