"""OpenHands readers on the real corpus (../shared/corpus/openhands-output): OpenDevin's
Gorilla APIBench rows (pairs, ``correct`` labels) and the Multi-SWE-bench example (flat
events with native tool calls), completion logs rebuilt from a real run, and the folder
through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from streamgrade.config import load_config
from streamgrade.formats._rows import clear_cache
from streamgrade.formats.openhands import OpenHandsOutput
from streamgrade.formats.openhands_completions import OpenHandsCompletions
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "openhands-output"
if not CORPUS.is_dir():
    pytest.skip(f"shared corpus not found: {CORPUS} (expected beside the repository)", allow_module_level=True)

GORILLA = CORPUS / "gorilla-apibench"
MSWE = CORPUS / "multi-swe-bench-example"
CFG = load_config(env={})
OUT = OpenHandsOutput()


def sessions(folder: Path) -> dict[str, Session]:
    clear_cache()
    return {r.session_id: OUT.assemble(r, CFG) for r in OUT.find(folder, sorted(os.listdir(folder)))}


@pytest.fixture(scope="module")
def gorilla() -> dict[str, Session]:
    return sessions(GORILLA)


@pytest.fixture(scope="module")
def mswe() -> dict[str, Session]:
    return sessions(MSWE)


def raw_rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def test_gorilla_rows_with_their_labels(gorilla):
    assert len(gorilla) == 269
    labels = {}
    for hub in ("hf", "tf", "torch"):
        for r in raw_rows(GORILLA / f"output_gpt-4o-2024-05-13_{hub}.jsonl"):
            labels[f"output_gpt-4o-2024-05-13_{hub}.{r['question_id']}"] = 1.0 if r["correct"] else 0.0
    assert {sid: s.reward for sid, s in gorilla.items()} == labels
    assert Counter(s.reward for s in gorilla.values()) == {1.0: 124, 0.0: 145}
    assert {(s.termination, len(s.steps), s.n_tool_calls, s.turns) for s in gorilla.values()} == {("finish", 4, 1, 2)}


def test_gorilla_named_row(gorilla):
    s = gorilla["output_gpt-4o-2024-05-13_hf.1"]
    (raw,) = [r for r in raw_rows(GORILLA / "output_gpt-4o-2024-05-13_hf.jsonl") if r["question_id"] == 1]
    assert (s.ref.locator, s.ref.format, s.task_id, s.agent, s.model) == ("0", "openhands", "1", "CodeActAgent", "gpt-4o-2024-05-13")
    assert s.reward == 0.0 and raw["correct"] is False and raw["hallucination"] is True
    assert s.task.startswith("You are a helpful API writer who can write APIs based on requirements.\n Design a feature")
    assert [x.source for x in s.steps] == ["user", "agent", "user", "agent"]
    assert s.steps[1].message.startswith("<<<domain>>> Natural Language Processing Sentence Similarity")
    assert s.steps[2].message.startswith("If you are done with the task")
    assert [(c.id, c.name, c.arguments) for c in s.steps[3].tool_calls] == [("event_11", "finish", {})]
    assert s.meta == {"row": 0, "history": "pairs", "events": 4, "skipped_events": 0, "agent_class": "CodeActAgent",
                      "max_iterations": 30, "git_commit": "e731048ccff698e723e48ad43f6a7d1868daf4b4"}
    assert s.metrics == {"events": 4.0} and s.duration_s == pytest.approx(6.078699)
    # the labels and the scorer's copy of the answer stay out of what the judge reads
    assert not {"correct", "hallucination", "text"} & set(s.meta)


def test_multi_swe_bench_runs(mswe):
    assert sorted(mswe) == ["output.ponylang__ponyc-4588", "output.ponylang__ponyc-4593", "output.ponylang__ponyc-4595"]
    facts = {sid: (s.termination, s.reward, len(s.steps), s.n_tool_calls, s.meta.get("task_completed")) for sid, s in mswe.items()}
    assert facts == {"output.ponylang__ponyc-4595": ("finish", None, 25, 23, "partial"),
                     "output.ponylang__ponyc-4593": ("finish", None, 36, 33, "false"),
                     "output.ponylang__ponyc-4588": ("max_steps", None, 52, 49, None)}
    assert mswe["output.ponylang__ponyc-4588"].meta["error"].startswith("RuntimeError: Agent reached maximum iteration")


def test_multi_swe_bench_named_run(mswe):
    s = mswe["output.ponylang__ponyc-4595"]
    raw = raw_rows(MSWE / "output.jsonl")[0]
    assert s.task == raw["instruction"] and s.task.startswith("<uploaded_files>\n/workspace/ponylang__ponyc__0.1\n")
    assert (s.task_id, s.agent, s.model) == ("ponylang__ponyc-4595", "CodeActAgent", "openai/openrouter-llama-4-maverick")
    assert [x.source for x in s.steps[:3]] == ["system", "user", "agent"]
    assert s.steps[0].message.startswith("You are OpenHands agent")
    first = s.steps[2]
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("toolu_01", "execute_bash", '{"command": "ls -l /workspace/ponylang__ponyc__0.1"}')]
    assert first.observations[0].source_call_id == "toolu_01" and first.observations[0].content.startswith("total 300")
    assert first.observations[0].is_error is False
    assert first.message.startswith("The task involves fixing an issue") and first.model == "meta-llama/llama-4-maverick"
    assert first.metrics == {"prompt_tokens": 5920.0, "completion_tokens": 128.0}
    assert Counter(c.name for x in s.steps for c in x.tool_calls) == {"execute_bash": 13, "str_replace_editor": 8, "think": 1, "finish": 1}
    assert sorted(t["function"]["name"] for t in s.tools) == ["execute_bash", "finish", "str_replace_editor", "think"]
    assert s.meta["openhands_version"] == "0.35.0" and s.meta["skipped_events"] == 2
    assert s.metrics["prompt_tokens"] == 565158.0 and s.metrics["llm_calls"] == 23.0 and s.metrics["cost_usd"] == 0.0
    # every call of the run is answered except the finish
    unanswered = [c.id for x in s.steps for c in x.tool_calls if c.id not in {o.source_call_id for o in x.observations}]
    assert unanswered == ["toolu_23"]
    # no gold data: the instance's tests and the harness patch never reach the judge
    seen = json.dumps([msgspec.to_builtins(s.transcript), s.meta])
    assert raw["instance"]["FAIL_TO_PASS"] and "FAIL_TO_PASS" not in seen and raw["test_result"]["git_patch"] not in seen


def test_error_without_cause_is_environment_feedback(mswe):
    s = mswe["output.ponylang__ponyc-4593"]
    (err,) = [x for x in s.steps if x.source == "environment"]
    assert err.message.startswith("Parameter 'command' is expected to be one of")


def test_folder_scan_owns_the_side_files():
    clear_cache()
    report = ScanReport(keep=20)
    refs = list(scan([CORPUS], report=report))
    assert Counter(r.format for r in refs) == {"openhands": 272}
    assert [Path(p).name for p, _ in report.examples] == ["PROVENANCE.md"]


def log_completions(row: dict, folder: Path) -> Path:
    """The completion logs OpenHands would have written for ``row`` (llm.py: one file per
    call, ``<model with / as __>-<time>.json`` holding the request messages and the
    response), rebuilt from its events' ``tool_call_metadata.model_response``."""
    out = folder / "llm_completions" / row["instance_id"]
    out.mkdir(parents=True)
    model = row["metadata"]["llm_config"]["model"].replace("/", "__")
    system = row["history"][0]["args"]
    msgs: list[dict] = [{"role": "system", "content": [{"type": "text", "text": system["content"]}]}]
    t, done = 1746001970.0, set()
    for e in row["history"][1:]:
        meta = e.get("tool_call_metadata")
        if e.get("action") == "message" and e["source"] == "user":
            msgs.append({"role": "user", "content": [{"type": "text", "text": e["args"]["content"]}]})
        elif "action" in e and meta and meta["model_response"]["id"] not in done:
            resp = meta["model_response"]
            done.add(resp["id"])
            t += 3.25
            doc = {"messages": msgs, "response": resp, "args": [], "kwargs": {"tools": system["tools"]}, "timestamp": t, "cost": 0.0}
            (out / f"{model}-{t}.json").write_text(json.dumps(doc), encoding="utf-8")
            m = resp["choices"][0]["message"]
            msgs = [*msgs, {"role": "assistant", "content": [{"type": "text", "text": m["content"] or ""}], "tool_calls": m["tool_calls"]}]
        elif "observation" in e and meta:
            msgs = [*msgs, {"role": "tool", "content": [{"type": "text", "text": e["content"]}],
                            "tool_call_id": meta["tool_call_id"], "name": meta["function_name"]}]
    return out


def test_completion_logs_of_a_real_run_match_its_output_row(tmp_path, mswe):
    folder = log_completions(raw_rows(MSWE / "output.jsonl")[0], tmp_path)
    clear_cache()
    refs = [r for r in scan([tmp_path]) if r.format == "openhands-completions"]
    assert [(r.session_id, r.path, len(r.files)) for r in refs] == [("ponylang__ponyc-4595", str(folder), 23)]
    s = OpenHandsCompletions().assemble(refs[0], CFG)
    row = mswe["output.ponylang__ponyc-4595"]
    calls = lambda sess: [(c.id, c.name, c.arguments) for x in sess.steps for c in x.tool_calls]  # noqa: E731
    assert calls(s) == calls(row) and len(calls(s)) == 23
    assert (s.task, s.task_id, s.model, s.termination) == (row.task, "ponylang__ponyc-4595", "openai/openrouter-llama-4-maverick", "finish")
    assert s.tools == row.tools and s.metrics == {"llm_calls": 23.0, "context_tokens": 33459.0}


def test_cli_grades_the_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    src = str(Path(__file__).resolve().parents[1] / "src")
    env["PYTHONPATH"] = src + os.pathsep + env.get("PYTHONPATH", "")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(CORPUS), "-o", str(out), "--no-progress"],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "272 graded, 0 failed" in res.stderr
    assert "1 file not recognised" in res.stderr and "PROVENANCE.md" in res.stderr
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    assert Counter((r["source_format"], r["status"]) for r in recs) == {("openhands", "graded"): 272}
    gorilla = [r for r in recs if "gorilla" in r["source_path"]]
    assert Counter(r["reward"] for r in gorilla) == {1.0: 124, 0.0: 145}
    r4588 = next(r for r in recs if r["session_id"] == "output.ponylang__ponyc-4588")
    assert (r4588["termination"], r4588["reward"], r4588["tool_calls"], r4588["turns"]) == ("max_steps", None, 49, 49)
