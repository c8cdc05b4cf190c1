"""``streamgrade agreement``: the statistics on hand-computable cases, the dataset rule, and
the command on small graded folders (heuristic judge, labels, the mock LLM judge)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sklearn.metrics import roc_auc_score

from click.testing import CliRunner

from streamgrade import agreement, agreement_stats as st
from streamgrade.agreement_report import datasets
from streamgrade.cli import main
from streamgrade.sinks.html import render_index

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from mock_provider import serve_in_thread  # noqa: E402

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def run(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``streamgrade ARGS`` as a user runs it (a subprocess, for grade)."""
    return subprocess.run([sys.executable, "-m", "streamgrade", *args], capture_output=True, text=True,
                          env={**CLEAN_ENV, **(env or {})}, timeout=120)


def agree(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``streamgrade agreement ARGS`` in this process (click's runner: the scientific
    imports are paid once), as a CompletedProcess."""
    unset = {k: None for k in os.environ if k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = CliRunner().invoke(main, ["agreement", *args], env={**unset, **(env or {})})
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


# -- statistics ------------------------------------------------------------------------------
def test_ece_of_a_perfectly_calibrated_set_is_zero():
    scores = [30.0] * 10 + [80.0] * 5
    labels = [True] * 3 + [False] * 7 + [True] * 4 + [False]
    assert st.ece(scores, labels) == pytest.approx(0.0, abs=1e-12)


def test_ece_and_brier_by_hand():
    # bin 0.9: confidence .9, accuracy .5 (weight .5); bin 0.1: confidence .1, accuracy 0 (weight .5)
    assert st.ece([90, 90, 10, 10], [True, False, False, False]) == pytest.approx(0.5 * 0.4 + 0.5 * 0.1)
    assert st.ece([100, 0], [False, True]) == pytest.approx(1.0)  # 100 falls in the last bin
    assert st.brier([100, 0], [True, False]) == pytest.approx(0.0)
    assert st.brier([50] * 4, [True, False, True, True]) == pytest.approx(0.25)
    assert st.ece([], []) is None and st.brier([], []) is None
    bins = st.reliability_bins([90, 90, 10, 10], [True, False, False, False])
    assert [(b["n"], b["accuracy"]) for b in bins] == [(2, 0.0), (2, 0.5)]


def test_kappa_precision_recall_at_the_threshold():
    # predicted [T, T, F, F] vs truth [T, T, T, F]: p_o = .75, p_e = .75*.5 + .25*.5 = .5 -> kappa .5
    f = st.threshold_figures([90, 80, 10, 20], [True, True, True, False], 50)
    assert f["kappa"] == pytest.approx(0.5)
    assert f["precision"] == pytest.approx(1.0) and f["recall"] == pytest.approx(2 / 3)
    f = st.threshold_figures([60, 40, 60, 40], [True, True, False, False], 50)
    assert f["kappa"] == pytest.approx(0.0)
    none = st.threshold_figures([10, 20], [False, False], 50)  # no positive, none predicted
    assert none == {"kappa": None, "precision": None, "recall": None}


def test_auroc_matches_the_pure_function_and_the_bootstrap_is_deterministic():
    rng = np.random.default_rng(7)
    labels = rng.random(80) < 0.4
    scores = np.round(rng.normal(50, 20, 80) + 15 * labels)  # rounded: ties
    point = st.auroc_point(scores, labels)
    assert point == pytest.approx(agreement.auroc(list(scores), list(labels)))
    # the vectorised rows of the bootstrap agree with scikit-learn on resamples
    idx = rng.integers(0, 80, size=(5, 80))
    rows = st._auroc_rows(scores[idx], labels[idx])
    assert rows == pytest.approx([roc_auc_score(labels[i], scores[i]) for i in idx])
    ci = st.auroc_ci(scores, labels)
    assert ci is not None and ci[0] <= point <= ci[1] and ci[1] - ci[0] < 0.5
    assert st.auroc_ci(scores, labels) == ci  # fixed seed
    assert st.auroc_ci(scores, labels, seed=1) != ci
    assert st.auroc_ci([1, 2, 3], [True, True, True]) is None and st.auroc_point([1, 2], [False, False]) is None


def test_dataset_rule():
    root, names = datasets(["/c/tau/a.json", "/c/crafter/s/L/1.json", "/c/crafter/s/V/2.json", "/c/x.jsonl"])
    assert root == "/c"
    assert names == {"/c/tau/a.json": "tau", "/c/crafter/s/L/1.json": "crafter", "/c/crafter/s/V/2.json": "crafter",
                     "/c/x.jsonl": "x.jsonl"}
    assert datasets(["/c/tau/a.json"])[1] == {"/c/tau/a.json": "tau"}  # one file: its folder
    assert datasets(["/c/cr/s/L/1.json", "/c/cr/s/V/1.json"])[1] == {"/c/cr/s/L/1.json": "L", "/c/cr/s/V/1.json": "V"}
    assert set(datasets(["/c/cr/s/L/1.json", "/c/cr/s/V/1.json"], "/c")[1].values()) == {"cr"}


# -- the command -----------------------------------------------------------------------------
def _row(task: int, trial: int, reward: float | None, good: bool) -> dict:
    answer = "Done: the order #W1 is cancelled and refunded." if good else "I cannot help with that."
    msgs = [{"role": "system", "content": "You are a retail agent."},
            {"role": "user", "content": f"Please cancel my order #{task}."}]
    if good:
        msgs += [{"role": "assistant", "content": None, "tool_calls": [
                    {"id": f"c{task}", "type": "function",
                     "function": {"name": "cancel_order", "arguments": json.dumps({"order_id": f"#{task}"})}}]},
                 {"role": "tool", "tool_call_id": f"c{task}", "content": '{"status": "cancelled"}'}]
    msgs.append({"role": "assistant", "content": answer})
    row = {"task_id": task, "trial": trial, "traj": msgs}
    if reward is not None:
        row["reward"] = reward
    return row


def make_corpus(root: Path, *, rewards: bool = True) -> Path:
    """Two datasets of openai-chat rows (alpha, beta), half of them passing."""
    for k, name in enumerate(("alpha", "beta")):
        (root / name).mkdir(parents=True)
        rows = [_row(i, k, (1.0 if i % 2 == 0 else 0.0) if rewards else None, good=i % 2 == 0 or i == 3)
                for i in range(6)]
        (root / name / "runs.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return root


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("agr")
    corpus = make_corpus(tmp / "corpus")
    out = tmp / "out"
    res = run("grade", str(corpus), "-o", str(out), "--judge", "heuristic", "--no-progress")
    assert res.returncode == 0, res.stderr
    return out


def test_table_plots_and_index(graded: Path):
    res = agree(str(graded))
    assert res.returncode == 0, res.stderr
    for needle in ("alpha", "beta", "openai-chat", "AUROC", "ECE", "Brier", "kappa", "precision", "recall", "all"):
        assert needle in res.stdout
    for name in ("roc.png", "reliability.png"):
        with Image.open(graded / "agreement" / name) as im:
            im.verify()
            assert im.format == "PNG"
    html = (graded / "index.html").read_text()
    assert 'id="agreement"' in html and 'src="agreement/roc.png"' in html and 'src="agreement/reliability.png"' in html
    doc = json.loads((graded / "agreement" / "agreement.json").read_text())
    assert {r["dataset"] for r in doc["rows"]} == {"alpha", "beta"}
    # a later index render (a grade run) keeps the section
    render_index(graded)
    assert 'src="agreement/roc.png"' in (graded / "index.html").read_text()


def test_json_shape(graded: Path):
    res = agree(str(graded), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["all"]["n"] == 12 and doc["all"]["positives"] == 6
    assert [(r["dataset"], r["format"], r["n"], r["positives"]) for r in doc["rows"]] == \
        [("alpha", "openai-chat", 6, 3), ("beta", "openai-chat", 6, 3)]
    for r in [*doc["rows"], doc["all"], *doc["by_dataset"], *doc["by_format"]]:
        assert set(r) >= {"n", "positives", "auroc", "auroc_ci", "ece", "brier", "kappa", "precision", "recall"}
        assert 0 <= r["auroc"] <= 1 and 0 <= r["ece"] <= 1 and 0 <= r["brier"] <= 1
    assert doc["pass_score"] == 50.0 and doc["bootstrap"]["resamples"] == 1000 and doc["judges"] == {"heuristic": 12}


def test_no_ground_truth_exit_3_labels_join_and_missing_out(tmp_path: Path):
    corpus = make_corpus(tmp_path / "corpus", rewards=False)
    out = tmp_path / "out"
    assert run("grade", str(corpus), "-o", str(out), "--judge", "heuristic", "--no-progress").returncode == 0
    res = agree(str(out))
    assert res.returncode == 3 and "no graded session has a ground-truth reward" in res.stderr
    assert not (out / "agreement").exists() and 'id="agreement"' not in (out / "index.html").read_text()
    sids = [json.loads(x)["session_id"] for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    labels = tmp_path / "labels.csv"
    labels.write_text("session_id,passed\n" + "".join(f"{s},{'true' if i % 3 == 0 else 'false'}\n"
                                                      for i, s in enumerate(sorted(sids))))
    res = agree(str(out), "--labels", str(labels), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["all"]["n"] == len(sids) and doc["all"]["positives"] == len(range(0, len(sids), 3))
    assert agree(str(tmp_path / "nope")).returncode == 2


def test_index_section_absent_broken_and_escaped(tmp_path: Path):
    out = tmp_path / "out"
    (out / "agreement").mkdir(parents=True)
    (out / "agreement" / "agreement.json").write_text("{not json")
    render_index(out)
    html = (out / "index.html").read_text()
    assert 'id="agreement"' not in html and "</html>" in html
    row = {"dataset": "<script>alert(1)</script>", "format": "x", "n": 2, "positives": 1, "auroc": 0.5,
           "auroc_ci": [0.1, 0.9]}
    (out / "agreement" / "agreement.json").write_text(json.dumps({"rows": [row], "all": row, "pass_score": 50}))
    render_index(out)
    html = (out / "index.html").read_text()
    assert 'id="agreement"' in html and "<script>alert" not in html and "&lt;script&gt;alert(1)" in html
    assert "0.500 [0.10, 0.90]" in html and "<img" not in html  # no PNG: no image


def test_judge_regrades_the_labelled_sessions_with_the_mock_llm(graded: Path):
    with serve_in_thread() as url:
        res = run("agreement", str(graded), "--judge", "openai", "--json",  # a subprocess: it sets up logging
                  env={"STREAMGRADE_BASE_URL": url, "STREAMGRADE_OPENAI__RPM": "600000"})
        # 12 sessions, 6 distinct prompts (a task's two trials read alike): two identical
        # requests in flight at once share one answer (the judge's in-flight dedupe)
        assert 6 <= url.chat_requests <= 12
    assert res.returncode == 0, res.stderr
    assert "12 graded, 0 failed" in res.stderr
    doc = json.loads(res.stdout)
    assert list(doc["judges"]) and all(k.startswith("openai") for k in doc["judges"])
    assert doc["all"]["n"] == 12 and doc["all"]["auroc"] is not None
    assert {r["dataset"] for r in doc["rows"]} == {"alpha", "beta"}  # the root of OUT's sources
    dest = graded / "agreement" / "judge-openai"
    assert (dest / "agreement" / "roc.png").is_file() and (dest / "exports" / "scores.jsonl").is_file()
    assert agree(str(graded), "--judge", "nonsense").returncode == 2
    assert agree(str(graded), "-o", str(dest)).returncode == 2  # -o only with --judge
