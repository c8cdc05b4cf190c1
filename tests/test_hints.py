"""``streamgrade hints``: per-task hints from many episodes (src/streamgrade/hints/).

Real data: 12 rows of the corpus' tau-bench file (3 tasks x 4 trials, rewards as
published), each with markers planted in the ground-truth fields a hint must never
carry (``info.task.actions`` kwargs, ``info.task.outputs``, the simulated user's
``info.task.instruction``, ``info.reward_info``), graded offline, then hinted offline and
through an LLM answered by httpx.MockTransport."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import anyio
import httpx
import pytest

from streamgrade.config import load_config
from streamgrade.hints import run_hints
from streamgrade.hints.aggregate import aggregate, dedupe
from streamgrade.hints.episodes import Episode, Task, pick_episodes
from streamgrade.hints.offline import offline_hints
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.pipeline import Pipeline, scan_source
from conftest import session_dir

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
TAU = CORPUS / "tau-bench" / "gpt-4o-airline.json"
MARKERS = ("ZZREFACT", "ZZOUTPUT", "ZZINSTRUCT", "ZZREWARDINFO")
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
SECTIONS = ("# Hints", "## Tools", "## Strategy", "## Pitfalls", "## Success criteria")

pytestmark = pytest.mark.skipif(not TAU.is_file(), reason="the shared corpus is not here")


def grade(data: Path, out: Path) -> None:
    cfg = load_config(env={})
    anyio.run(lambda: Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source([data], exclude=[out])))


def planted_rows() -> list[dict]:
    rows = [r for r in json.loads(TAU.read_text()) if r["task_id"] in (1, 2, 5)]
    for r in rows:
        task = r["info"]["task"]
        for a in task.get("actions") or []:
            a["kwargs"] = {**a.get("kwargs", {}), "zz": "ZZREFACT"}
        task["outputs"] = [*(task.get("outputs") or []), "ZZOUTPUT"]
        task["instruction"] = task["instruction"] + " ZZINSTRUCT"
        r["info"]["reward_info"] = {"note": "ZZREWARDINFO", **(r["info"].get("reward_info") or {})}
    return rows


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hints")
    (root / "data").mkdir()
    rows = planted_rows()
    assert len(rows) == 12 and {r["reward"] for r in rows} == {0.0, 1.0}
    (root / "data" / "airline.json").write_text(json.dumps(rows))
    grade(root / "data", root / "out")
    return root / "out"


def _text_of(path: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in path.rglob("*") if p.is_file() and p.suffix != ".sqlite") \
        if path.is_dir() else path.read_text()


def test_offline_hints_one_augmented_task_per_task(graded: Path, tmp_path: Path):
    cfg = load_config(env={})
    run = anyio.run(lambda: run_hints(graded, cfg, dest=tmp_path / "h.jsonl"))
    rows = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert (run.tasks, run.written, run.episodes, run.extracted, run.cached) == (3, 3, 12, 12, 0)
    assert sorted(r["task_id"] for r in rows) == ["1", "2", "5"]
    for r in rows:
        assert set(r) == {"task_id", "task", "group", "hints", "augmented_task", "episodes"}
        assert r["augmented_task"].startswith(r["task"].rstrip())
        assert all(s in r["augmented_task"] for s in SECTIONS)
        assert len(r["episodes"]) == 4 and all(e["decided_by"] == "reward" for e in r["episodes"])
        wins = [e for e in r["episodes"] if e["success"]]
        if wins:  # the strategy is the shortest successful episode's calls
            shortest = min(wins, key=lambda e: (e["turns"], e["session_id"]))
            msgs = json.loads((session_dir(graded, shortest["session_id"]) / "sft.json").read_text())["messages"]
            first_call = next(tc["function"]["name"] for m in msgs for tc in m.get("tool_calls") or [])
            assert r["hints"]["strategy"][0].startswith(first_call + "(")
            assert r["hints"]["tools"] and all(t["example"].startswith(t["name"] + "(") for t in r["hints"]["tools"])
        losers = {e["session_id"] for e in r["episodes"] if not e["success"]}
        for p in r["hints"]["pitfalls"]:  # attributed to the failed episodes they came from
            assert p["episodes"] and set(p["episodes"]) <= losers
    text = (tmp_path / "h.jsonl").read_text()
    assert not [m for m in MARKERS if m in text]


def test_llm_hints_schema_cache_and_no_ground_truth(graded: Path, tmp_path: Path):
    bodies: list[dict] = []
    answer = {"tools": [{"name": "get_user_details", "purpose": "Look up the user's profile.",
                         "example_call": "get_user_details(user_id='a_1')"}],
              "strategy": ["Ask for the user id, then look up the user.", "Ask for the user ID then look up the user"],
              "pitfalls": ["Booking before confirming the payment total."],
              "success_criteria": ["The reservation is changed as the user asked."]}

    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        bodies.append(body)
        n = len(bodies)
        content = "{not json" if n == 1 else json.dumps(answer)  # the first answer is retried
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}],
                                         "usage": {"prompt_tokens": 100, "completion_tokens": 20}})

    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "rpm": 600_000,
                                                    "backoff_base_s": 0.0, "backoff_max_s": 0.0},
                                         "hints": {"max_episodes": 3}})

    async def go():
        async with OpenAIJudge(cfg, transport=httpx.MockTransport(handler)) as judge:
            return await run_hints(graded, cfg, judge=judge, dest=tmp_path / "h.jsonl")

    run = anyio.run(go)
    assert run.mode == "llm" and run.episodes == 9 and run.extracted == 9 and not run.failed
    assert len(bodies) == 10 and run.usage.requests == 10  # one per episode, plus the retry
    for b in bodies:
        rf = b["response_format"]
        assert rf["type"] == "json_schema" and rf["json_schema"]["name"] == "streamgrade_hints"
        assert rf["json_schema"]["strict"] is True
        assert "<session_data id=" in b["messages"][1]["content"]
    sent = json.dumps(bodies)
    assert not [m for m in MARKERS if m in sent]  # no grader internals reach the LLM
    rows = [json.loads(line) for line in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert len(rows) == 3
    for r in rows:
        assert all(s in r["augmented_task"] for s in SECTIONS)
        if any(e["success"] for e in r["episodes"]):
            assert r["hints"]["strategy"] == ["Ask for the user id, then look up the user."]  # near-duplicate merged
        assert {e["source"] for e in r["episodes"]} <= {"llm", None}
    # a re-run sends no request: every episode is in the cache
    bodies.clear()
    again = anyio.run(go)
    assert bodies == [] and again.cached == 9 and again.extracted == 0 and again.written == 3


def test_budget_leaves_tasks_for_the_next_run(graded: Path, tmp_path: Path):
    from streamgrade.config_judging import Price

    def handler(request: httpx.Request) -> httpx.Response:
        content = json.dumps({"tools": [], "strategy": ["s"], "pitfalls": [], "success_criteria": ["c"]})
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}],
                                         "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0}})

    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "rpm": 600_000,
                                                    "max_cost_usd": 1.0, "model": "m"},
                                         "hints": {"concurrency": 1}})
    cfg.openai.prices = {"m": Price(input=1.0, output=0.0)}  # $1 a request: the budget allows one
    out = tmp_path / "out"
    import shutil

    shutil.copytree(graded, out, ignore=shutil.ignore_patterns("hints"))

    async def go():
        async with OpenAIJudge(cfg, transport=httpx.MockTransport(handler)) as judge:
            return await run_hints(out, cfg, judge=judge)

    run = anyio.run(go)
    assert run.extracted == 1 and run.budget_pending == 11 and run.written == 0
    cfg.openai.max_cost_usd = None
    run = anyio.run(go)
    assert run.cached == 1 and run.extracted == 11 and run.written == 3


def _ep(sid: str, success: bool, turns: int) -> Episode:
    return Episode(session_id=sid, fingerprint="f", folder=Path("."), task="t", task_id="1", trial=None,
                   source_format="x", reward=None, score=80.0 if success else 10.0, turns=turns, termination=None,
                   success=success)


def test_aggregate_union_dedupe_and_attribution():
    a, b, c = _ep("a", True, 9), _ep("b", True, 4), _ep("c", False, 5)
    ha = {"tools": [{"name": "search", "purpose": "find", "example": "search(q='x')"}],
          "strategy": ["open the file", "fix the bug"], "pitfalls": ["p-a"], "success_criteria": ["Tests pass."]}
    hb = {"tools": [{"name": "edit", "purpose": "change", "example": "edit(f='y')"},
                    {"name": "search", "purpose": "", "example": ""}],
          "strategy": ["Open the file.", "run the tests"], "pitfalls": [], "success_criteria": ["tests pass"]}
    hc = {"tools": [{"name": "rm", "purpose": "delete", "example": "rm()"}], "strategy": ["give up"],
          "pitfalls": ["Deleted the test file instead of fixing it.", "deleted the test file instead of fixing it"],
          "success_criteria": []}
    llm = aggregate([(a, ha), (b, hb), (c, hc)], offline=False, threshold=0.85, max_items=10)
    assert [t["name"] for t in llm["tools"]] == ["search", "edit"]  # successes only; "rm" came from a failure
    assert llm["tools"][0] == {"name": "search", "purpose": "find", "example": "search(q='x')", "episodes": 2}
    assert llm["strategy"] == ["Open the file.", "run the tests", "fix the bug"]  # shortest success first, deduped
    assert llm["pitfalls"] == [{"text": "Deleted the test file instead of fixing it.", "episodes": ["c"]}]
    assert llm["success_criteria"] == ["tests pass"]
    off = aggregate([(a, ha), (b, hb), (c, hc)], offline=True, threshold=0.85, max_items=10)
    assert off["strategy"] == ["Open the file.", "run the tests"]  # the shortest successful episode's
    none = aggregate([(c, hc)], offline=True, threshold=0.85, max_items=10)
    assert none["strategy"] == [] and none["success_criteria"] == [] and none["tools"][0]["seen_in_failures_only"]
    assert dedupe([("x y", "1"), ("X, y!", "2"), ("z", "1")], 0.9) == [("x y", ["1", "2"]), ("z", ["1"])]


def test_pick_alternates_and_success_by_reward_else_score():
    eps = [_ep(f"w{i}", True, 10 - i) for i in range(5)] + [_ep(f"l{i}", False, i + 1) for i in range(2)]
    picked = pick_episodes(Task(key=("k",), task_id="1", task="t", episodes=eps), 4)
    assert sorted(e.session_id for e in picked) == ["l0", "l1", "w3", "w4"]


def test_offline_pitfalls_errors_loops_refusals():
    calls = [{"id": f"c{i}", "type": "function", "function": {"name": "book", "arguments": '{"x": 1}'}} for i in range(3)]
    msgs = [{"role": "system", "content": "policy"}, {"role": "user", "content": "book it"}]
    for i, c in enumerate(calls):
        msgs += [{"role": "assistant", "content": None, "tool_calls": [c]},
                 {"role": "tool", "tool_call_id": c["id"], "content": "Error: payment amount does not add up"}]
    msgs.append({"role": "assistant", "content": "I'm sorry, but I cannot book this flight. Please call us."})
    h = offline_hints(msgs, [{"type": "function", "function": {"name": "book", "description": "Book a flight. More."}}],
                      "max_steps")
    assert h["tools"] == [{"name": "book", "purpose": "Book a flight.", "example": "book(x=1)"}]
    assert h["strategy"] == ["book(x=1) x3", "answer: I'm sorry, but I cannot book this flight."]
    assert h["pitfalls"] == ["error from book(x=1): Error: payment amount does not add up",
                             "loop: the same error came back 3 times: Error: payment amount does not add up",
                             "loop: book(x=1) was called 3 times",
                             "refusal: I'm sorry, but I cannot book this flight.",
                             "the run ended by max_steps"]
    assert h["success_criteria"] == ["the run ends with an answer like: I'm sorry, but I cannot book this flight."]


HARBOR_JOB = CORPUS / "harbor" / "jobs" / "2026-04-13__06-09-31"


@pytest.mark.skipif(not HARBOR_JOB.is_dir(), reason="the shared corpus is not here")
def test_harbor_hints_and_task_folders_never_hold_verifier_output(tmp_path: Path):
    import shutil
    import tomllib

    data = tmp_path / "data" / "job"
    shutil.copytree(HARBOR_JOB, data)
    for trial in data.iterdir():
        v = trial / "verifier"
        if v.is_dir():  # the verifier's own output: never read
            (v / "test-stdout.txt").write_text("ZZVERIFIER FAILED test_hidden_case")
            (v / "ctrf.json").write_text(json.dumps({"results": {"tests": [{"name": "ZZVERIFIER"}]}}))
    out = tmp_path / "out"
    grade(tmp_path / "data", out)
    src = tmp_path / "src" / "pyutils__line_profiler.a646bf0f.func_pm_ctrl_shuffle__cp1dr0aq"
    (src / "tests").mkdir(parents=True)
    (src / "tests" / "test.sh").write_text("pytest\n")
    (src / "task.toml").write_text('version = "1.0"\n')
    (src / "instruction.md").write_text("the original instruction")
    cfg = load_config(env={})
    run = anyio.run(lambda: run_hints(out, cfg, harbor_dir=tmp_path / "tasks", harbor_source=tmp_path / "src"))
    assert run.written == 2 and len(run.harbor) == 2
    rows = [json.loads(line) for line in run.path.read_text().splitlines()]
    assert sorted(r["task_id"] for r in rows) == ["mozilla__bleach.73871d76.func_basic__sxigc5v7",
                                                 "pyutils__line_profiler.a646bf0f.func_pm_ctrl_shuffle__cp1dr0aq"]
    for folder in run.harbor:
        instruction = (folder / "instruction.md").read_text()
        assert all(s in instruction for s in SECTIONS)
        assert tomllib.loads((folder / "task.toml").read_text())["version"] == "1.0"
    copied = tmp_path / "tasks" / src.name
    assert (copied / "tests" / "test.sh").read_text() == "pytest\n"
    assert "the original instruction" not in (copied / "instruction.md").read_text()
    assert "ZZVERIFIER" not in _text_of(tmp_path / "tasks") + run.path.read_text()


def test_cli_hints_offline_and_nothing(graded: Path, tmp_path: Path):
    cmd = [sys.executable, "-m", "streamgrade", "hints", str(graded), "--offline", "-o", str(tmp_path / "h.jsonl"),
           "--max-tasks", "2"]
    env = {**ENV, "PYTHONPATH": str(ROOT / "src")}
    p = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 0, p.stderr
    assert "2 augmented tasks of 3" in p.stderr
    assert len((tmp_path / "h.jsonl").read_text().splitlines()) == 2
    (tmp_path / "empty" / "sessions").mkdir(parents=True)
    p = subprocess.run([sys.executable, "-m", "streamgrade", "hints", str(tmp_path / "empty")], capture_output=True,
                       text=True, env=env, timeout=120)
    assert p.returncode == 3 and "no graded agent episode" in p.stderr
