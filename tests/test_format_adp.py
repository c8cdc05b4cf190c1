"""Agent Data Protocol standardized trajectories (formats/adp.py): the corpus samples
(../shared/corpus/adp), handmade files for the schema variants the samples lack, a fuzz
test, and the whole folder through the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats._rows import clear_cache
from streamgrade.formats.adp import ADPTrajectories
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "adp"
DATASETS = CORPUS / "datasets"
needs_corpus = pytest.mark.skipif(not (DATASETS / "codeactinstruct" / "sample_std.json").is_file(),
                                  reason=f"ADP corpus not present at {CORPUS}")
CFG = load_config(env={})
FMT = ADPTrajectories()
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def sessions(folder: Path) -> dict[str, Session]:
    return {r.session_id: FMT.assemble(r, CFG) for r in FMT.find(folder, sorted(os.listdir(folder)))}


def calls(s: Session) -> list[str]:
    return [c.name for st_ in s.steps for c in st_.tool_calls]


def write(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    return path


# -- the corpus ------------------------------------------------------------------------------
@needs_corpus
def test_scan_finds_the_18_std_trajectories_and_withholds_raw_files():
    report = ScanReport(keep=100)
    refs = list(scan([CORPUS], report=report))
    assert len(refs) == 18 and {r.format for r in refs} == {"adp"}
    assert all(r.path.endswith("sample_std.json") for r in refs)
    reasons = dict(report.examples)
    raws = {p: why for p, why in reasons.items() if p.endswith("sample_raw.json")}
    assert len(raws) == 5 and all(why.startswith("adp: the dataset's raw source data") for why in raws.values())
    assert {Path(p).suffix for p in reasons if p not in raws} == {".md"}


@needs_corpus
def test_nebius_swe_agent_trajectory():
    s = sessions(DATASETS / "nebius_SWE-agent-trajectories")["nebius_SWE-agent-trajectories.tomerfiliba__plumbum-366_17"]
    assert s.kind == "agent" and s.ref.format == "adp" and s.ref.locator == "0"
    assert s.task.startswith("We're currently solving the following issue within our repository.")
    assert s.model == "swe-agent-llama-70b" and s.termination == "submitted" and s.reward is None
    assert calls(s) == ["execute_bash", "find_file", "open", "edit", "execute_bash", "submit"]
    assert s.steps[1].tool_calls[0].arguments == {"command": "ls -F"}
    assert s.steps[2].tool_calls[0].arguments == {"file_name": '"image.py"', "dir": '"plumbum"'}
    # every call has its result (source "user" in the sample: linked by adjacency)
    assert all(len(st_.observations) == 1 and st_.observations[0].source_call_id == st_.tool_calls[0].id
               for st_ in s.steps if st_.tool_calls)
    assert s.steps[-1].message == "<finish> I did it! The task is now complete. </finish>"
    assert s.turns == 7 and s.n_tool_calls == 6
    # eval logs and the patch (details values) are never shown or kept
    blob = json.dumps([m.content for m in s.transcript]) + json.dumps(s.meta) + s.task
    assert "Will execute following command for apply_patch" not in blob and "diff --git" not in blob
    assert s.meta["details_keys"] == ["eval_logs", "exit_status", "generated_patch", "model_name"]


@needs_corpus
def test_all_corpus_datasets():
    code = sessions(DATASETS / "codeactinstruct")
    assert len(code) == 5
    alg = code["codeactinstruct.oct28_full6728_reasoning_intermediate_algebra_3078_gpt-3.5-turbo-0613_max5_p2_tool_cd"]
    assert alg.task.startswith("Let $a,$ $b,$ and $c$ be the roots of $x^3 - 7x^2 + 5x + 2 = 0.$")
    assert calls(alg) == ["execute_ipython_cell"] * 3 and alg.termination == "stop"
    assert alg.steps[-1].message == "The answer is\n\n<finish> <solution> 15/2 </solution> </finish>"
    assert alg.task_id == "oct28_full6728/reasoning/intermediate_algebra/3078/gpt-3.5-turbo-0613/max5_p2+tool+cd"

    toucan = sessions(DATASETS / "toucan_1_5m")["toucan_1_5m.toucan_sample_0"]
    assert [st_.source for st_ in toucan.steps] == ["system", "user", "agent", "agent"]
    assert toucan.task.startswith('I\'m considering joining a Series B fintech startup called "StellarPay"')
    turn = toucan.steps[2]  # the message and the call that follows it: one turn
    assert turn.message.startswith("I'll help you conduct comprehensive research") and calls(toucan) == ["web_search_exa"]
    assert turn.observations[0].content.startswith('{"success": true') and toucan.termination == "stop"

    aitw = sessions(DATASETS / "android_in_the_wild")["android_in_the_wild.12172380859428428757"]
    assert aitw.task == "Open a new Chrome private window"  # a message_action: no user observation
    assert calls(aitw) == ["touch_and_lift"] * 3 and aitw.termination == "unknown"
    assert aitw.steps[1].source == "environment" and aitw.steps[1].message.startswith("[image: /Users/")
    assert "Elements detected: Oct7 (TEXT)" in aitw.steps[1].message

    web = sessions(DATASETS / "webarena_successful")
    assert sorted(web) == ["webarena_successful.0", *[f"webarena_successful.0.row{i}" for i in range(1, 6)]]
    w0 = web["webarena_successful.0"]
    assert w0.task == "What is the top-1 best-selling product in 2022" and w0.task_id == "0"
    assert w0.steps[1].message.startswith("URL: http://luma.com/admin/admin/admin/dashboard/\n\nTab 0 (current)")
    assert w0.steps[2].tool_calls[0].arguments == {"answer": "Quest Lumaflex™ Band"} and w0.termination == "stop"
    assert {len(s.steps) for s in web.values()} == {3, 4}  # the second page answers the click


# -- handmade variants ------------------------------------------------------------------------
V15 = {
    "schema_version": "1.5.0", "id": "t-1",
    "content": [
        {"class_": "text_observation", "content": "You are a helper.", "source": "system"},
        {"class_": "text_observation", "content": "Find the weather in Paris and Rome.", "source": "user", "name": None},
        {"tool_call_id": "c1", "class_": "api_action", "function": "weather", "kwargs": {"city": "Paris"},
         "description": "I will look both up.", "reasoning_content": "two calls in parallel", "reward": 0.5},
        {"tool_call_id": "c2", "class_": "api_action", "function": "weather", "kwargs": {"city": "Rome"}, "description": None},
        {"tool_call_id": "c2", "class_": "text_observation", "content": "Rome: 21C", "source": "environment"},
        {"tool_call_id": "c1", "class_": "text_observation", "content": "Paris: 15C", "source": "environment", "reward": 0.25},
        {"class_": "code_action", "language": "javascript", "content": "1+1", "description": "check", "tool_call_id": "c3"},
        {"class_": "json_observation", "content": {"result": 2}, "source": "environment", "tool_call_id": "c3"},
        {"class_": "message_action", "content": "<finish> Paris 15C, Rome 21C </finish>", "description": None},
    ],
    "details": {"reward": 1.0, "gold_answer": "SECRET-GOLD", "model": "m-1", "instance_id": "weather-7"},
    "available_custom_tools": ["weather"],
}


def test_schema_1_5_tool_call_ids_parallel_calls_and_rewards(tmp_path: Path):
    path = write(tmp_path / "runs.json", [V15])
    (s,) = sessions(tmp_path).values()
    assert s.ref.session_id == "runs.t-1" and s.task == "Find the weather in Paris and Rome."
    assert [st_.source for st_ in s.steps] == ["system", "user", "agent", "agent", "agent"]
    par = s.steps[2]
    assert [c.id for c in par.tool_calls] == ["c1", "c2"] and par.reasoning == "two calls in parallel"
    assert {o.source_call_id: o.content for o in par.observations} == {"c2": "Rome: 21C", "c1": "Paris: 15C"}
    view = [(m.role, m.tool_call_id) for m in s.transcript]
    assert view[2:5] == [("assistant", None), ("tool", "c1"), ("tool", "c2")]  # results in call order
    js = s.steps[3]
    assert (js.tool_calls[0].name, js.tool_calls[0].arguments) == ("execute_code", {"language": "javascript", "content": "1+1"})
    assert js.observations[0].content == '{"result": 2}'
    assert s.reward == 1.0 and s.model == "m-1" and s.task_id == "weather-7" and s.termination == "stop"
    assert s.metrics == {"steps": 5.0, "step_reward_sum": 0.75, "step_rewards": 2.0}
    assert s.meta["schema_version"] == "1.5.0" and s.meta["available_tools"] == ["weather"]
    assert "SECRET-GOLD" not in json.dumps(s.meta) + json.dumps([m.content for m in s.transcript])
    assert path.exists()


def test_jsonl_single_object_and_old_spellings(tmp_path: Path):
    rows = [dict(V15, id="a"), dict(V15, id="a"), {"id": "b", "content": [
        {"class_": "TextObservation", "text": "Say hi", "source": "user_msg"},
        {"class_": "MessageAction", "message": "hi", "thoughts": "easy"},
        {"class_": "CodeAction", "language": "bash", "content": "echo hi", "description": ""},
        {"class_": "TextObservation", "text": "hi", "source": "user"},
        {"class_": "TextObservation", "text": "thanks!", "source": "user"},
    ], "details": {"exit_status": "exit_cost", "resolved": False}}]
    write(tmp_path / "full_std.jsonl", "\n".join(json.dumps(r) for r in rows) + "\n")
    got = sessions(tmp_path)
    assert sorted(got) == [f"{tmp_path.name}.a", f"{tmp_path.name}.a.row1", f"{tmp_path.name}.b"]
    b = got[f"{tmp_path.name}.b"]
    assert b.task == "Say hi" and b.termination == "exit_cost" and b.reward == 0.0
    assert b.steps[1].message == "easy\n\nhi" and b.steps[1].tool_calls[0].arguments == {"command": "echo hi"}
    assert b.steps[1].observations[0].content == "hi" and b.steps[2].source == "user"
    single = tmp_path / "one"
    write(single / "traj.json", V15)
    (s,) = sessions(single).values()
    assert s.ref.session_id == "traj.t-1" and s.ref.locator == "0"


def test_errors_name_the_file_line_and_field(tmp_path: Path):
    bad = dict(V15, content=[*V15["content"][:2], {"class_": "api_action", "kwargs": {}}])
    write(tmp_path / "a.jsonl", json.dumps(V15) + "\n" + json.dumps(bad) + "\n")
    refs = FMT.find(tmp_path, ["a.jsonl"])
    assert len(refs) == 2 and refs[0].fingerprint != refs[1].fingerprint
    FMT.assemble(refs[0], CFG)
    with pytest.raises(InputError) as e:
        FMT.assemble(refs[1], CFG)
    assert str(e.value) == f"{tmp_path / 'a.jsonl'}:2: content[2].function: missing field"
    write(tmp_path / "b.json", [V15, dict(V15, content=[{"class_": "warp_action"}])])
    with pytest.raises(InputError, match=r"\[1\]\.content\[0\]\.class_: unknown ADP class 'warp_action'"):
        FMT.assemble(FMT.find(tmp_path, ["b.json"])[1], CFG)
    # broken JSON that peeks like ADP: one session that fails naming the line
    write(tmp_path / "c.json", '[{"id": "x", "content": [{"class_": "api_action",\n "function": }]}]')
    (ref,) = FMT.find(tmp_path, ["c.json"])
    with pytest.raises(InputError, match=r"c\.json:2: invalid JSON"):
        FMT.assemble(ref, CFG)


def test_detection_is_specific(tmp_path: Path):
    write(tmp_path / "x.json", [{"id": 1, "content": [{"class_": "MyWidget"}]}])  # class_ but not ADP
    write(tmp_path / "y.json", [{"messages": [{"role": "user", "content": "text_observation"}]}])
    write(tmp_path / "z.json", {"class_": "api_action"})  # peeks like ADP, parses, holds no trajectory
    assert FMT.find(tmp_path, ["x.json", "y.json", "z.json"]) == []


def test_raw_and_sft_files_beside_std_are_withheld_and_explained(tmp_path: Path):
    ds = tmp_path / "datasets" / "toy"
    write(ds / "sample_std.json", [V15])
    raw = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}], "target": True}]
    write(ds / "sample_raw.json", raw)
    write(ds / "sample_sft.json", raw)
    write(ds / "sample_sft" / "openhands.json", raw)
    write(ds / "metadata.json", {"custom_tools": []})
    write(tmp_path / "elsewhere" / "sample_raw.json", raw)  # no std beside: the generic reader's
    report = ScanReport(keep=100)
    refs = list(scan([tmp_path], report=report))
    assert sorted((r.format, Path(r.path).relative_to(tmp_path).as_posix()) for r in refs) == [
        ("adp", "datasets/toy/sample_std.json"), ("openai-chat", "elsewhere/sample_raw.json")]
    why = {Path(p).relative_to(tmp_path).as_posix(): w for p, w in report.examples}
    assert set(why) == {"datasets/toy/sample_raw.json", "datasets/toy/sample_sft.json",
                        "datasets/toy/sample_sft/openhands.json"}
    assert all(w.startswith("adp: ") and "not read" in w for w in why.values())


# -- fuzz ---------------------------------------------------------------------------------------
JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3), max_leaves=8)
FIELDS = ["class_", "content", "function", "kwargs", "language", "description", "source", "tool_call_id",
          "annotations", "html", "url", "axtree", "reasoning_content", "reward", "name", "message"]


@settings(max_examples=60, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(item=st.integers(0, len(V15["content"]) - 1), field=st.sampled_from(FIELDS), value=JSON,
       top=st.sampled_from(["", "content", "details", "id"]), top_value=JSON)
def test_fuzz_mutated_trajectory_gives_session_or_input_error(tmp_path_factory, item, field, value, top, top_value):
    folder = tmp_path_factory.mktemp("fuzz")
    doc = json.loads(json.dumps(V15))
    doc["content"][item][field] = value
    if top:
        doc[top] = top_value
    path = write(folder / "runs.jsonl", json.dumps(V15) + "\n" + json.dumps(doc) + "\n")
    clear_cache()
    refs = FMT.find(folder, ["runs.jsonl"])
    assert len(refs) == 2
    for ref in refs:
        try:
            s = FMT.assemble(ref, CFG)
        except InputError as exc:
            assert str(exc).startswith(f"{path}:2: ")
        else:
            assert isinstance(s, Session) and s.task and s.transcript


# -- the CLI ------------------------------------------------------------------------------------
@needs_corpus
def test_grade_adp_corpus_with_the_cli(tmp_path: Path):
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(CORPUS), "-o", str(out), "-v"],
                         capture_output=True, text=True, env=CLEAN_ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "18 graded, 0 failed" in res.stderr and "judge: heuristic" in res.stderr
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    assert len(recs) == 18 and {r["source_format"] for r in recs} == {"adp"}
    neb = next(r for r in recs if r["session_id"] == "nebius_SWE-agent-trajectories.tomerfiliba__plumbum-366_17")
    assert (neb["model"], neb["termination"], neb["tool_calls"], neb["turns"]) == ("swe-agent-llama-70b", "submitted", 6, 7)
    unrecognised = [ln for ln in res.stderr.splitlines() if "not recognised: " in ln]
    assert len(unrecognised) == 11
    assert all(".md]" in ln or ("sample_raw.json]" in ln and "adp: the dataset's raw source data" in ln)
               for ln in unrecognised)
