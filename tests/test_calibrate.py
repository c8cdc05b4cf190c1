"""Calibration on the user's own labels (streamgrade.calibration, `streamgrade calibrate`,
`grade --calibration`, `export --min-p-success`): metrics on hand cases, cross-validated
gains on a synthetic set, the model file, plain evaluation against scikit-learn, refusals,
and the CLI on a few real tau-bench sessions."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from streamgrade.calibration.features import feature_vector
from streamgrade.calibration.fit import (CalibrationRefused, design, fit, labelled_set, make_estimator,
                                         predict_sklearn)
from streamgrade.calibration.metrics import bin_index, brier, ece
from streamgrade.calibration.model import load_model, save_model
from streamgrade.errors import ConfigError
from streamgrade.exports.filters import ExportFilter
from streamgrade.labels import Labels
from conftest import session_dirs

TAU = Path("/work/shared/corpus/tau-bench/gpt-4o-airline.json")


def record(i: int, *, reward: float, tool_calls: int, score: float, fmt: str = "synthetic",
           termination: str | None = "stop", duration: float | None = None, tokens: float | None = None) -> dict:
    """A graded scores.jsonl record with the fields calibration reads."""
    metrics = {"total_tokens": tokens} if tokens is not None else {}
    return {"session_id": f"s{i}", "source_format": fmt, "status": "graded", "score": score,
            "components": {"outcome": score, "process": 50.0, "efficiency": 50.0}, "confidence": 0.5,
            "reward": reward, "turns": 3 + tool_calls, "tool_calls": tool_calls, "n_actions": 0,
            "duration_s": duration, "termination": termination, "metrics": metrics, "task_id": str(i), "trial": "0"}


def synthetic(n: int = 120, seed: int = 1) -> list[dict]:
    """Records whose tool_calls predict the reward while the judge score is noise."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ok = rng.random() < 0.5
        tc = rng.randint(6, 12) if ok else rng.randint(0, 6)
        out.append(record(i, reward=1.0 if ok else 0.0, tool_calls=tc, score=rng.uniform(20, 90),
                          termination=rng.choice(["stop", "max_steps", "error", None]),
                          duration=rng.choice([None, rng.uniform(5, 500)]),
                          tokens=rng.choice([None, rng.uniform(100, 9000)])))
    return out


# -- metrics ----------------------------------------------------------------------------
def test_ece_on_hand_cases():
    assert ece([0.5] * 4, [True, False, True, False]) == pytest.approx(0.0)
    assert ece([0.9] * 10, [True] * 9 + [False]) == pytest.approx(0.0)
    # two bins of two: |1 - 0.8| and |0.5 - 0.2|, each with weight 1/2
    assert ece([0.8, 0.8, 0.2, 0.2], [True, True, True, False]) == pytest.approx(0.25)
    # one bin holding 0.75 and 0.8 (bin (0.7, 0.8]): mean p 0.775 vs rate 0.5
    assert ece([0.75, 0.8], [True, False]) == pytest.approx(0.275)
    assert ece([1.0, 0.0], [False, True]) == pytest.approx(1.0)
    assert ece([], []) is None
    assert brier([1.0, 0.0, 0.5], [True, False, True]) == pytest.approx(0.25 / 3)
    with pytest.raises(ValueError):
        ece([0.1], [True, False])


def test_bins_are_right_closed_as_in_guo_et_al():
    assert [bin_index(p) for p in (0.0, 0.05, 0.1, 0.1000001, 0.3, 0.7, 0.99, 1.0)] == [0, 0, 0, 1, 2, 6, 9, 9]


# -- fitting ----------------------------------------------------------------------------
def test_cross_validated_auroc_and_ece_improve_when_a_feature_predicts_the_reward():
    model = fit(labelled_set(synthetic()), folds=5)
    t = model.training
    assert t["n"] == 120 and t["folds"] == 5
    assert t["after"]["auroc"] > t["before"]["auroc"] + 0.2
    assert t["after"]["auroc"] > 0.8
    assert t["after"]["ece"] < t["before"]["ece"]
    assert t["by_format"]["synthetic"]["after"]["n"] == 120
    assert "log_tool_calls" in model.features and model.method == "logistic"


def test_pass_mark_per_format_and_labels_replace_rewards():
    recs = [record(i, reward=float(i % 5), tool_calls=i, score=50, fmt="cont") for i in range(10)]
    recs += [record(100 + i, reward=float(i % 2), tool_calls=i, score=50, fmt="bin") for i in range(6)]
    recs.append({**record(200, reward=1.0, tool_calls=1, score=50), "status": "failed", "score": None})
    recs.append(record(201, reward=None, tool_calls=1, score=50))
    data = labelled_set(recs)
    assert data.pass_marks == {"bin": 1.0, "cont": 2.0} and len(data.records) == 16
    assert sum(data.success) == 6 + 3
    lab = Labels(table={"100": 1.0, "201": 0.0}, key="task_id")
    joined = labelled_set(recs, lab)
    assert joined.from_labels == 2 and len(joined.records) == 17


@pytest.mark.parametrize("n,positives", [(8, 4), (30, 2), (30, 28)])
def test_refuses_too_few_labelled_sessions(n, positives):
    recs = [record(i, reward=1.0 if i < positives else 0.0, tool_calls=i, score=50) for i in range(n)]
    with pytest.raises(CalibrationRefused, match="at least 10 with 3 of each class"):
        fit(labelled_set(recs))


def test_folds_shrink_to_the_smaller_class():
    recs = [record(i, reward=1.0 if i < 3 else 0.0, tool_calls=i, score=10 * (i % 10)) for i in range(20)]
    assert fit(labelled_set(recs), folds=5).training["folds"] == 3


@pytest.mark.parametrize("method", ["logistic", "isotonic"])
def test_plain_evaluation_equals_sklearn_on_the_training_data(method):
    data = labelled_set(synthetic(80, seed=3))
    model = fit(data, method=method, folds=3)
    X = design(data.records, model.features)
    est = make_estimator(method)
    est.fit(X[:, 0] if method == "isotonic" else X, np.array(data.success, dtype=int))
    want = predict_sklearn(est, method, X)
    got = [model.predict(r) for r in data.records]
    assert np.allclose(got, want, atol=1e-12, rtol=0)
    # and on records outside the training range (clipping, unseen missing values)
    odd = {**data.records[0], "score": 140.0, "tool_calls": None, "termination": None, "metrics": {}}
    x = design([odd], model.features)
    assert model.predict(odd) == pytest.approx(float(predict_sklearn(est, method, x)[0]), abs=1e-12)


# -- the model file ---------------------------------------------------------------------
def test_model_file_round_trip(tmp_path: Path):
    data = labelled_set(synthetic(60, seed=5))
    model = fit(data, folds=3, created="2026-12-04T00:00:00.000Z")
    path = tmp_path / "cal.json"
    save_model(model, path)
    back = load_model(path)
    assert back.to_dict() == model.to_dict()
    assert [back.predict(r) for r in data.records] == [model.predict(r) for r in data.records]
    doc = json.loads(path.read_text())
    assert doc["format"] == "streamgrade-calibration" and doc["version"] == 1 and doc["streamgrade_version"]
    assert doc["training"]["after"]["n"] == 60 and set(doc["params"]) >= {"impute", "mean", "scale", "coef", "intercept"}


@pytest.mark.parametrize("change,field", [
    (lambda d: d.update(version=7), "field version"),
    (lambda d: d.update(method="forest"), "field method"),
    (lambda d: d.update(features=["score", "shoe_size"]), "field features"),
    (lambda d: d["params"]["coef"].pop(), "field params.coef"),
    (lambda d: d["params"].update(intercept="x"), "field params.intercept"),
])
def test_broken_model_files_name_the_file_and_field(tmp_path: Path, change, field):
    doc = fit(labelled_set(synthetic(40, seed=2)), folds=3).to_dict()
    change(doc)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError, match=field) as err:
        load_model(path)
    assert str(path) in str(err.value)


def test_unreadable_model_files(tmp_path: Path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(ConfigError, match="invalid JSON"):
        load_model(tmp_path / "x.json")
    with pytest.raises(ConfigError, match="cannot read"):
        load_model(tmp_path / "missing.json")


def test_features_are_generic_and_missing_is_none():
    r = record(1, reward=1.0, tool_calls=3, score=80, termination="token_limit", tokens=None)
    r["metrics"] = {"input_tokens": 10, "output_tokens": 5, "tool_errors": 2}
    names = ["score", "log_tool_calls", "log_tokens", "log_errors", "log_duration_s", "term_limit", "term_finished"]
    v = feature_vector(r, names)
    assert v[0] == 0.8 and v[2] == pytest.approx(np.log1p(15)) and v[3] == pytest.approx(np.log1p(2))
    assert v[4] is None and v[5:] == [1.0, 0.0]
    assert feature_vector({**r, "termination": None}, ["term_limit"]) == [None]


def test_config_keys(tmp_path: Path):
    from streamgrade.config import load_config

    f = tmp_path / "c.toml"
    f.write_text('[calibration]\nfile = "m.json"\n[exports]\nmin_p_success = 0.7\n')
    cfg = load_config(f, env={})
    assert cfg.calibration.file == "m.json" and cfg.exports.filter().min_p_success == 0.7
    assert load_config(env={"STREAMGRADE_CALIBRATION__FILE": "x.json"}).calibration.file == "x.json"
    assert load_config(env={}).calibration.file is None


def test_export_filter_min_p_success():
    f = ExportFilter(min_p_success=0.6)
    assert f.reject_reason({"p_success": 0.7}) is None
    assert "below 0.6" in f.reject_reason({"p_success": 0.5})
    assert "no p_success" in f.reject_reason({"score": 90})
    assert ExportFilter().reject_reason({"score": 90}) is None


# -- the CLI on real sessions -----------------------------------------------------------
def _cli(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    return subprocess.run([sys.executable, "-m", "streamgrade", *args], capture_output=True, text=True, env=env,
                          timeout=120)


def _inproc(*args: str):
    """calibrate and export in this process (scikit-learn is imported once): (exit code,
    stdout, stderr)."""
    from click.testing import CliRunner

    from streamgrade.cli import main

    res = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return res.exit_code, res.stdout, res.stderr


def _records(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]


@pytest.mark.skipif(not TAU.exists(), reason="the shared corpus is not here")
def test_calibrate_then_grade_with_calibration_then_export_on_real_sessions(tmp_path: Path):
    rows = json.loads(TAU.read_text())
    data = tmp_path / "tau"
    data.mkdir()
    (data / "train.json").write_text(json.dumps(rows[:40]))
    new = tmp_path / "new"
    new.mkdir()
    (new / "more.json").write_text(json.dumps(rows[40:52]))
    train, graded, bad = tmp_path / "train", tmp_path / "graded", tmp_path / "bad"

    res = _cli("grade", str(data), "-o", str(train), "--judge", "heuristic", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert all("p_success" not in r for r in _records(train))  # no model: no key
    code, stdout, stderr = _inproc("calibrate", str(train), "--folds", "3", "--json")
    assert code == 0, stderr
    figures = json.loads(stdout)
    assert figures["n"] == 40 and figures["folds"] == 3 and figures["before"]["ece"] is not None
    model = train / "calibration.json"
    assert load_model(model).training["n"] == 40

    res = _cli("grade", str(new), "-o", str(graded), "--judge", "heuristic", "--no-progress",
               "--calibration", str(model))
    assert res.returncode == 0, res.stderr
    recs = _records(graded)
    assert len(recs) == 12 and all(0.0 <= r["p_success"] <= 1.0 and round(r["p_success"], 4) == r["p_success"]
                                   for r in recs)
    folder = session_dirs(graded)[0]
    assert "p_success" in json.loads((folder / "scores.json").read_text())
    code, stdout, stderr = _inproc("calibrate", str(graded), "--evaluate", "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["after"]["n"] == 12

    ps = sorted(r["p_success"] for r in recs)
    cut = ps[len(ps) // 2]
    dest = tmp_path / "sft.jsonl"
    code, _, stderr = _inproc("export", str(graded), "--format", "sft", "--all", "--min-p-success", str(cut),
                              "-o", str(dest))
    assert code == 0, stderr
    assert len(dest.read_text().splitlines()) == sum(p >= cut for p in ps) < 12
    code, _, stderr = _inproc("export", str(train), "--format", "sft", "--all", "--min-p-success", "0.1",
                              "-o", str(dest))
    assert code == 3 and "no p_success" in stderr

    (tmp_path / "broken.json").write_text(json.dumps({**json.loads(model.read_text()), "version": 99}))
    res = _cli("grade", str(new), "-o", str(bad), "--judge", "heuristic", "--no-progress",
               "--calibration", str(tmp_path / "broken.json"))
    assert res.returncode == 2 and "broken.json" in res.stderr and "field version" in res.stderr
    assert not bad.exists()

    labels = tmp_path / "labels.csv"  # rewards joined by session id: 6 successes, 6 failures
    labels.write_text("session_id,reward\n" + "".join(f"{r['session_id']},{i % 2}\n" for i, r in enumerate(recs)))
    code, stdout, stderr = _inproc("calibrate", str(graded), "--labels", str(labels), "-o", str(tmp_path / "m.json"),
                                   "--json")
    assert code == 0, stderr
    assert json.loads(stdout)["from_labels"] == 12 and json.loads(stdout)["positives"] == 6


def test_calibrate_refuses_a_folder_with_too_few_labels(tmp_path: Path):
    out = tmp_path / "out"
    sess = out / "sessions" / "s1"
    sess.mkdir(parents=True)
    (sess / "scores.json").write_text(json.dumps(record(1, reward=1.0, tool_calls=1, score=50)))
    code, _, stderr = _inproc("calibrate", str(out))
    assert code == 3 and "1 labelled sessions" in stderr
    assert not (out / "calibration.json").exists()
