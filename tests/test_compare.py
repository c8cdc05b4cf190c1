"""``streamgrade compare``: the statistics against hand computations and scipy, the
experiments file, the exit codes, the report (in Chromium), and the corpus runs the issue
names (BALROG Crafter submissions per model; tau-bench copied, one copy perturbed)."""

from __future__ import annotations

import itertools
import json
import math
import random
import re
import shutil
import statistics
import subprocess
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from streamgrade.compare import stats as st
from streamgrade.compare.load import ExperimentError, load_experiments_file

from test_query import cli, grade  # one in-process runner and grader for both test files

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CRAFTER = CORPUS / "crafter-balrog" / "submissions" / "LLM"
CHROMIUM = Path("/usr/bin/chromium")
FAST = ("--resamples", "500")


def compare_json(*args: str) -> tuple[dict, subprocess.CompletedProcess]:
    res = cli("compare", *args, "--json", *FAST)
    assert res.returncode in (0, 1), res.stderr
    return json.loads(res.stdout), res


def row(result: dict, metric: str, b: str | None = None) -> dict:
    comp = next(c for c in result["comparisons"] if b is None or c["b"] == b)
    return next(r for r in comp["rows"] if r["metric"] == metric)


def experiments(path: Path, entries: list[dict]) -> Path:
    path.write_text(json.dumps({"experiments": entries}))
    return path


# -- statistics by hand -------------------------------------------------------------------------
def test_pass_at_k_and_pass_hat_k_by_hand_and_by_enumeration():
    # n = 4 trials, c = 2 passed, k = 2: C(2,2)/C(4,2) = 1/6
    assert st.pass_at_k(4, 2, 2) == pytest.approx(1 - 1 / 6)
    assert st.pass_hat_k(4, 2, 2) == pytest.approx(1 / 6)
    assert st.pass_at_k(4, 0, 3) == 0.0 and st.pass_at_k(4, 2, 3) == 1.0 and st.pass_hat_k(4, 4, 4) == 1.0
    # the estimators are the exact chance over every k-subset of the n trials
    for n, c in [(5, 2), (6, 3), (7, 1)]:
        outcomes = [True] * c + [False] * (n - c)
        for k in range(1, n + 1):
            subsets = list(itertools.combinations(outcomes, k))
            assert st.pass_at_k(n, c, k) == pytest.approx(sum(any(s) for s in subsets) / len(subsets))
            assert st.pass_hat_k(n, c, k) == pytest.approx(sum(all(s) for s in subsets) / len(subsets))
    table = st.pass_k_table({"t1": [True, False, False, True], "t2": [False, False], "t3": [True]})
    assert [r["tasks"] for r in table] == [3, 2, 1, 1]
    assert table[0]["pass_at_k"] == pytest.approx((0.5 + 0 + 1) / 3, abs=1e-6)  # 6 decimals
    assert table[1]["pass_hat_k"] == pytest.approx((1 / 6 + 0) / 2, abs=1e-6)
    assert st.pass_k_table({"a": [True], "b": [False]}) == []  # no task with two trials
    with pytest.raises(ValueError):
        st.pass_at_k(3, 1, 4)


def test_holm_cohen_cliff_by_hand():
    # Holm: sorted p .01, .02, .04 -> 3*.01, max(.03, 2*.02), max(.04, 1*.04); order kept, None skipped
    assert st.holm([0.04, None, 0.01, 0.02]) == [pytest.approx(0.04), None, pytest.approx(0.03), pytest.approx(0.04)]
    assert st.holm([0.5, 0.6]) == [pytest.approx(1.0), pytest.approx(1.0)]
    a, b = [1.0, 2.0, 3.0, 4.0], [3.0, 4.0, 5.0, 6.0, 7.0]
    pooled = math.sqrt((3 * statistics.variance(a) + 4 * statistics.variance(b)) / 7)
    assert st.cohens_d(a, b) == pytest.approx((5.0 - 2.5) / pooled)
    brute = (sum(y > x for x in a for y in b) - sum(y < x for x in a for y in b)) / (len(a) * len(b))
    assert st.cliffs_delta(a, b) == pytest.approx(brute)
    assert st.cliffs_delta(b, a) == pytest.approx(-brute)
    assert st.cohens_dz([1.0, 2.0, 3.0]) == pytest.approx(2.0 / 1.0)
    assert st.cohens_d([1.0, 1.0], [1.0, 1.0]) == 0.0 and st.cohens_d([1.0, 1.0], [2.0, 2.0]) is None
    assert st.magnitude_d(0.5) == "medium" and st.magnitude_delta(-0.2) == "small"


def test_bootstrap_ci_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(3)
    x = list(rng.normal(10, 2, 40))
    ci = st.bootstrap_ci(x)
    assert ci[0] < statistics.fmean(x) < ci[1] and ci == st.bootstrap_ci(x) and ci != st.bootstrap_ci(x, seed=1)
    assert st.bootstrap_ci([3.0, 3.0, 3.0]) == (3.0, 3.0) and st.bootstrap_ci([1.0]) is None
    y = [v + 1 for v in x]
    lo, hi = st.bootstrap_ci((x, y), paired=True)
    assert lo == pytest.approx(1.0) and hi == pytest.approx(1.0)  # every difference is exactly 1
    lo, hi = st.bootstrap_ci((x, y))
    assert lo < 1.0 < hi


# -- the tests against scipy, on inline experiments ------------------------------------------------
def test_paired_wilcoxon_and_mcnemar_p_values_equal_scipy_by_hand(tmp_path: Path):
    rng = random.Random(5)
    tasks = [str(t) for t in range(12)]
    base = {t: 50 + rng.uniform(-10, 10) for t in tasks}
    a = [{"task_id": t, "score": base[t], "reward": float(i % 2)} for i, t in enumerate(tasks)]
    b = [{"task_id": t, "score": base[t] + 3 + rng.uniform(-2, 2), "reward": float(i % 3 != 0)}
         for i, t in enumerate(tasks)]
    res, _ = compare_json("--experiments", str(experiments(tmp_path / "e.json", [
        {"name": "A", "values": a}, {"name": "B", "values": b}])), "-o", str(tmp_path / "r"))
    assert res["comparisons"][0]["design"]["paired"] is True
    score = row(res, "score")
    diffs = [y["score"] - x["score"] for x, y in zip(a, b)]
    assert score["test"]["test"] == "Wilcoxon signed-rank"
    assert score["p"] == pytest.approx(sps.wilcoxon(diffs).pvalue)
    assert score["cohens_dz"] == pytest.approx(statistics.fmean(diffs) / statistics.stdev(diffs), abs=1e-6)
    reward = row(res, "reward")  # 0/1, one session per task: McNemar's exact test
    only_a = sum(1 for x, y in zip(a, b) if x["reward"] == 1 and y["reward"] == 0)
    only_b = sum(1 for x, y in zip(a, b) if x["reward"] == 0 and y["reward"] == 1)
    assert reward["test"]["test"] == "McNemar exact"
    assert reward["p"] == pytest.approx(sps.binomtest(only_a, only_a + only_b, 0.5).pvalue)
    # Holm over the metrics compared (score, reward)
    ps = sorted([score["p"], reward["p"]])
    assert min(score["p_holm"], reward["p_holm"]) == pytest.approx(min(1, 2 * ps[0]))


def test_independent_samples_use_mann_whitney_and_welch(tmp_path: Path):
    a, b = [61.0, 55.5, 70.2, 53.0, 66.1, 59.9], [40.3, 52.0, 45.5, 38.8, 50.1]
    res, proc = compare_json("--experiments", str(experiments(tmp_path / "e.json", [
        {"name": "base", "values": a, "model": "m1"}, {"name": "new", "values": b, "model": "m2"}])),
        "-o", str(tmp_path / "r"), "--fail-if-worse", "score")
    r = row(res, "score")
    assert res["comparisons"][0]["design"]["paired"] is False
    assert r["test"]["test"] == "Mann-Whitney U"
    assert r["p"] == pytest.approx(sps.mannwhitneyu(b, a).pvalue)
    assert r["secondary"]["p"] == pytest.approx(sps.ttest_ind(b, a, equal_var=False).pvalue)
    assert r["cliffs_delta"] == pytest.approx(-1.0)  # every new value is below every base value
    assert r["verdict"] == "worse" and proc.returncode == 1 and "significantly worse" in proc.stderr
    assert res["experiments"][1]["attrs"] == {"model": "m2"}
    assert res["summary"]["score"]["base"]["mean"] == pytest.approx(statistics.fmean(a))


def test_experiments_file_errors_name_the_entry(tmp_path: Path):
    cases = [
        ({"experiments": [{"name": "a", "values": [1]}, {"values": [2]}]}, "experiments[1].name"),
        ({"experiments": [{"name": "a", "values": [1]}, {"name": "a", "values": [2]}]}, "used twice"),
        ({"experiments": [{"name": "a"}]}, "one of output"),
        ({"experiments": [{"name": "a", "output": "nowhere"}]}, "experiments[0].output"),
        ({"experiments": [{"name": "a", "values": ["x"]}]}, "experiments[0].values[0]"),
        ({"runs": []}, "expected"),
    ]
    for doc, needle in cases:
        p = tmp_path / "e.json"
        p.write_text(json.dumps(doc))
        with pytest.raises(ExperimentError, match=re.escape(needle)):
            load_experiments_file(p)
        res = cli("compare", "--experiments", str(p), "-o", str(tmp_path / "r"))
        assert res.returncode == 2 and needle in res.stderr
    p = experiments(tmp_path / "e.json", [{"name": "a", "values": [1, 2]}, {"name": "b", "values": [1, 3]}])
    assert cli("compare", "--experiments", str(p), "--metric", "nope").returncode == 2
    assert cli("compare", "--experiments", str(p), "--fail-if-worse", "turns").returncode == 2  # no direction
    assert cli("compare", "--experiments", str(p), "--fail-if-worse", "reward", "-o",
               str(tmp_path / "r")).returncode == 2  # not compared
    one = experiments(tmp_path / "one.json", [{"name": "a", "values": [1, 2]}])
    assert cli("compare", "--experiments", str(one)).returncode == 2
    # a scores.jsonl whose every session failed: nothing to compare, exit 3
    failed = tmp_path / "failed.jsonl"
    failed.write_text(json.dumps({"session_id": "s1", "status": "failed", "score": None}) + "\n")
    empty = experiments(tmp_path / "empty.json", [{"name": "a", "values": [1, 2]}, {"name": "b", "output": str(failed)}])
    res = cli("compare", "--experiments", str(empty), "-o", str(tmp_path / "r"))
    assert res.returncode == 3 and "'b' has no session" in res.stderr


# -- output folders ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def crafter_outs(tmp_path_factory) -> dict[str, Path]:
    if not CRAFTER.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    tmp = tmp_path_factory.mktemp("crafter")
    subs = {"llama-3.2-3b": "20241030_naive-Llama-3.2-3B-Instruct", "claude-3.5-sonnet": "20241103_Claude-3.5-Sonnet"}
    return {name: grade(CRAFTER / sub, tmp / name) for name, sub in subs.items()}


def test_crafter_models_compare_with_tests_effect_sizes_and_plots(crafter_outs: dict[str, Path], tmp_path: Path):
    a, b = crafter_outs["llama-3.2-3b"], crafter_outs["claude-3.5-sonnet"]
    dest = tmp_path / "report"
    res, proc = compare_json(str(a), str(b), "-o", str(dest))
    assert proc.returncode == 0
    names = {m["name"] for m in res["metrics"]}
    assert {"score", "reward", "achievements", "progression", "turns"} <= names
    # one p-value by hand: Mann-Whitney U of the episode returns, read from BALROG's own files
    returns = {}
    for name, sub in (("a", "20241030_naive-Llama-3.2-3B-Instruct"), ("b", "20241103_Claude-3.5-Sonnet")):
        files = sorted((CRAFTER / sub / "crafter" / "default").glob("default_run_*.json"))
        # rounded to 9 decimals as records are (sinks/records.py): 5.099999999999999 and 5.1 are one
        # return (float noise of summed step rewards), a tie for the rank test
        returns[name] = [round(json.loads(f.read_text())["episode_return"], 9) for f in files]
    r = row(res, "reward")
    assert r["n_a"] == len(returns["a"]) == 10 and r["n_b"] == len(returns["b"]) == 10
    assert r["p"] == pytest.approx(sps.mannwhitneyu(returns["b"], returns["a"], alternative="two-sided").pvalue)
    assert r["diff"] == pytest.approx(statistics.fmean(returns["b"]) - statistics.fmean(returns["a"]), abs=1e-6)
    assert r["verdict"] == "better"  # Claude 3.5 Sonnet's returns are higher, p (Holm) < .05
    html = (dest / "report.html").read_text()
    for needle in ("Mann-Whitney U", "Cohen", "Cliff", "p (Holm)", "pass@k", f"{r['p']:.4f}"):
        assert needle in html, needle
    imgs = re.findall(r'<img src="([^"]+)"', html)
    assert {"hist_score.png", "hist_reward.png", "boxes.png", "tools.png"} <= set(imgs)
    for name in imgs:
        assert (dest / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "| reward |" in (dest / "summary.md").read_text()
    # the game actions stand in for tool calls; the fail gate goes off the other way round
    assert "Noop" in res["tools"]["tools"]
    back = cli("compare", str(b), str(a), "-o", str(tmp_path / "r2"), "--no-plots", "--fail-if-worse", "progression",
               *FAST)
    assert back.returncode == 1 and "significantly worse" in back.stderr


def test_one_folder_split_by_model_with_where(crafter_outs: dict[str, Path], tmp_path: Path):
    both = grade(CRAFTER, tmp_path / "all")  # every submission in one folder
    res, _ = compare_json(str(both), "--where", "model like '%Llama-3.2%'", "--split-by", "model",
                          "-o", str(tmp_path / "r"), "--no-plots")
    assert sorted(e["name"] for e in res["experiments"]) == ["meta-llama/Llama-3.2-1B-Instruct",
                                                            "meta-llama/Llama-3.2-3B-Instruct"]
    assert all(e["sessions"] == 10 for e in res["experiments"])
    assert res["experiments"][0]["excluded"] == {}  # split experiments count only their own sessions


@pytest.fixture(scope="module")
def tau_out(tmp_path_factory) -> Path:
    if not (CORPUS / "tau-bench").is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    return grade(CORPUS / "tau-bench", tmp_path_factory.mktemp("tau") / "tau")


def test_tau_bench_perturbed_copy_differs_identical_copy_does_not(tau_out: Path, tmp_path: Path):
    same, perturbed = tmp_path / "same", tmp_path / "perturbed"
    shutil.copytree(tau_out, same)
    shutil.copytree(tau_out, perturbed)
    rng = random.Random(11)
    for p in (perturbed / "sessions").glob("*/*/scores.json"):
        rec = json.loads(p.read_text())
        rec["score"] = round(min(100.0, max(0.0, rec["score"] - 4 + rng.gauss(0, 3))), 1)
        p.write_text(json.dumps(rec))
    res, proc = compare_json(str(tau_out), str(perturbed), "-o", str(tmp_path / "r1"), "--no-plots",
                             "--fail-if-worse", "score")
    r = row(res, "score")
    assert res["comparisons"][0]["design"]["paired"] and r["pairs"] == 50
    assert r["test"]["test"] == "Wilcoxon signed-rank" and r["p_holm"] < 0.001 and r["verdict"] == "worse"
    assert proc.returncode == 1
    assert row(res, "reward")["verdict"] == "no significant difference"
    res, proc = compare_json(str(tau_out), str(same), "-o", str(tmp_path / "r2"), "--no-plots",
                             "--fail-if-worse", "score", "--fail-if-worse", "reward")
    assert proc.returncode == 0
    assert all(r["verdict"] == "no significant difference" and r["p"] == 1.0 for r in res["comparisons"][0]["rows"])
    # pass@k / pass^k over the 4 trials of each of the 50 tasks
    pk = res["pass_k"][res["baseline"]]["rows"]
    assert [x["k"] for x in pk] == [1, 2, 3, 4] and pk[0]["pass_at_k"] == pytest.approx(84 / 200)
    assert pk[3]["pass_hat_k"] <= pk[0]["pass_hat_k"] <= pk[3]["pass_at_k"]


# -- the report in a browser ------------------------------------------------------------------------
PAYLOAD = "<img src=x id=pwned onerror=\"document.title='PWNED'\"><script>document.title='PWNED'</script>"


@pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium")
def test_report_in_chromium_escapes_names_and_shows_the_figures(tmp_path: Path):
    rng = random.Random(2)
    a = [{"task_id": f"t{i}", "score": rng.uniform(40, 60), "difficulty": PAYLOAD} for i in range(10)]
    b = [{"task_id": f"t{i}", "score": rng.uniform(50, 70), "difficulty": "easy"} for i in range(10)]
    exp = experiments(tmp_path / "e.json", [{"name": "base " + PAYLOAD, "values": a, "model": PAYLOAD},
                                            {"name": "tuned", "values": b}])
    dest = tmp_path / "report"
    res = cli("compare", "--experiments", str(exp), "-o", str(dest), "--group-by", "difficulty", *FAST)
    assert res.returncode == 0, res.stderr
    proc = subprocess.run([str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                           "--disable-background-networking", "--disable-component-update", "--disable-sync",
                           "--enable-logging=stderr", "--v=0", f"--user-data-dir={tmp_path / 'profile'}",
                           "--dump-dom", (dest / "report.html").as_uri()],
                          capture_output=True, text=True, timeout=60)
    dom = proc.stdout
    assert "<html" in dom, proc.stderr[-2000:]
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("streamgrade compare") and title != "PWNED"  # the name is in it, as text
    assert not re.search(r"<\w+[^<>]*\sid=\"?pwned", dom)
    assert "&lt;script&gt;document.title='PWNED'&lt;/script&gt;" in dom  # shown as text
    assert not [line for line in proc.stderr.splitlines() if ":CONSOLE" in line]  # nothing blocked or failing
    for needle in ("Wilcoxon signed-rank", "Cohen", "Cliff", "score by difficulty", "by_difficulty_score.png"):
        assert needle in dom, needle
    assert len(re.findall(r"<img src=\"[a-z_]+\.png\"", dom)) >= 3
