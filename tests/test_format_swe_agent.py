"""SWE-agent ``.traj`` and mini-swe-agent ``.traj.json`` readers, and SWE-bench labels: the real
corpus (../shared/corpus/swe-agent, ../shared/corpus/mini-swe-agent), handmade files for the
variants the corpus lacks, a fuzz test and the CLI on both folders."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats._rows import clear_cache
from streamgrade.formats.explain import explain, owned
from streamgrade.formats.swebench_labels import clear_cache as clear_labels, load_swebench_labels
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
SWE = CORPUS / "swe-agent"
MINI = CORPUS / "mini-swe-agent"
needs_swe = pytest.mark.skipif(not SWE.is_dir(), reason=f"swe-agent corpus not found at {SWE}")
needs_mini = pytest.mark.skipif(not MINI.is_dir(), reason=f"mini-swe-agent corpus not found at {MINI}")
CFG = load_config(env={})
GEMINI = {"django__django-10999": 0.0, "django__django-11163": 1.0, "django__django-16255": 1.0,
          "django__django-16667": 0.0}
PYDICOM = "gpt4__swe-bench-dev-easy_first_only__default__t-0.00__p-0.95__c-3.00__install-1.pydicom__pydicom-1458"
FC_TEST = "gpt4__swe-agent-test-repo__default_from_url__t-0.00__p-0.95__c-3.00__install-1.6e44b9__sweagenttestrepo-1c2844"
I1 = "gpt4__swe-agent__test-repo__default_from_url__t-0.00__p-0.95__c-3.00__install-1.swe-agent__test-repo-i1"


def sessions(root: Path, fmt: str, report: ScanReport | None = None) -> dict[str, Session]:
    clear_cache()
    clear_labels()
    return {r.session_id: FORMATS[r.format].assemble(r, CFG) for r in scan([root], report=report) if r.format == fmt}


def agent_steps(s: Session):
    return [x for x in s.steps if x.source == "agent"]


def write(path: Path, doc) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc))
    return path


# --------------------------------------------------------------------------- the corpus
@pytest.fixture(scope="module")
def swe() -> dict[str, Session]:
    return sessions(SWE, "swe-agent") if SWE.is_dir() else {}


@pytest.fixture(scope="module")
def mini() -> dict[str, Session]:
    return sessions(MINI, "mini-swe-agent") if MINI.is_dir() else {}


@needs_swe
def test_swe_agent_corpus_every_traj_is_a_session(swe):
    assert len(swe) == 22
    assert all(s.kind == "agent" and s.agent == "swe-agent" and s.reward is None for s in swe.values())
    assert sum(s.termination == "submitted" for s in swe.values()) == 21  # function_calling_simple has no info
    assert sum(s.task_id == "marshmallow-code__marshmallow-1867" for s in swe.values()) == 8
    for s in swe.values():  # the judge's view never holds the run's patch as a field, nor the demonstration
        assert s.task.startswith("We're currently solving the following")
        assert "submission" not in s.meta and "DEMONSTRATION" not in s.task


@needs_swe
def test_swe_agent_0x_history_with_demo_and_args_yaml(swe):
    s = swe[PYDICOM]
    assert Path(s.ref.files[1]).name == "args.yaml" and s.model == "gpt4"  # 0.x: the model from args.yaml
    assert s.task_id == "pydicom__pydicom-1458" and s.termination == "submitted"
    assert s.meta["n_demo_messages"] == 1 and s.meta["source"] == "history"
    assert len(agent_steps(s)) == 12 and s.n_tool_calls == 12 and s.turns == 12
    first = agent_steps(s)[0]
    assert first.tool_calls[0].name == "bash" and first.tool_calls[0].arguments == {"command": "create reproduce_bug.py"}
    assert first.message.startswith("First, I'll create a new Python script")  # the thought, without the command
    assert s.metrics == {"cost_usd": 1.26719, "input_tokens": 122612.0, "output_tokens": 1369.0, "api_calls": 12.0,
                         "steps": 12.0}
    # the history stops at the submit turn: its output is the last trajectory step's observation
    assert agent_steps(s)[-1].observations[0].content.startswith("\ndiff --git a/pydicom/")


@needs_swe
def test_swe_agent_function_calling_and_the_step_missing_from_history(swe):
    s = swe[FC_TEST]
    assert s.model == "gpt-4o" and s.task_id == "SWE-agent__test-repo-i1"  # replay_config
    calls = [c for st in agent_steps(s) for c in st.tool_calls]
    assert [c.name for c in calls] == ["find_file", "open", "edit", "bash", "bash"]
    assert calls[0].arguments == '{"file_name":"missing_colon.py"}' and calls[0].id == "call_fJuazlMUN5fQDQ73G6XSpYpx"
    tools = [m for m in s.transcript if m.role == "tool"]
    assert tools[0].tool_call_id == calls[0].id and tools[0].content.startswith('Found 1 matches for "missing_colon.py"')
    # the file's history ends before the submit step its trajectory holds: it is added
    assert calls[-1].arguments == {"command": "submit"} and tools[-1].content.startswith("\r\ndiff --git")
    assert s.metrics["api_calls"] == 5 and s.metrics["steps"] == 5


@needs_swe
def test_swe_agent_history_only_ctf_and_replays(swe):
    simple = swe["demonstrations.function_calling_simple"]
    assert simple.termination is None and simple.model is None and len(agent_steps(simple)) == 5
    assert [c.name for st in agent_steps(simple) for c in st.tool_calls][-1] == "submit"
    eps = swe["crypto.eps"]
    assert eps.task.startswith("We're currently solving the following CTF challenge") and len(agent_steps(eps)) == 14
    replay = next(s for k, s in swe.items() if k.startswith("replay__marshmallow-code__marshmallow-1867__function_calling_replace_from_source"))
    assert replay.model == "replay" and len(agent_steps(replay)) == 13
    assert swe[I1].metrics["cost_usd"] == 0.53839 and swe[I1].meta["n_demo_messages"] == 1


@needs_mini
def test_mini_corpus_rewards_from_the_swebench_reports(mini):
    gem = {s.task_id: s for k, s in mini.items() if k.startswith("gemini-3-pro-swebench-verified.")}
    assert {k: s.reward for k, s in gem.items()} == GEMINI
    assert all(s.meta["reward_source"] == f"{k}.report.json" for k, s in gem.items())
    assert {k: len(agent_steps(s)) for k, s in gem.items()} == {"django__django-10999": 18, "django__django-11163": 13,
                                                                "django__django-16255": 17, "django__django-16667": 19}
    for s in gem.values():
        assert s.model == "google/gemini-3-pro-preview" and s.termination == "Submitted" and s.agent == "mini-swe-agent"
        blob = json.dumps([s.task, [m.content for m in s.transcript], s.meta])
        assert "FAIL_TO_PASS" not in blob and "tests_status" not in blob and "resolved" not in json.dumps(s.meta)


@needs_mini
def test_mini_v1_turns_become_bash_calls_with_observations(mini):
    s = mini["gemini-3-pro-swebench-verified.django__django-10999"]
    assert s.task.startswith("<pr_description>\nConsider the following PR description:\nFix parse_duration()")
    first = agent_steps(s)[0]
    assert first.tool_calls[0].arguments == {"command": "ls -R django/utils | grep dateparse"}
    assert first.message.startswith("THOUGHT: I need to locate") and "```" not in first.message
    assert first.reasoning.startswith("**Reflecting on the Bug**")  # the response's reasoning
    assert first.observations[0].content == "<returncode>0</returncode>\n<output>\ndateparse.py\n</output>"
    assert first.observations[0].is_error is False and first.metrics["prompt_tokens"] > 0
    last = agent_steps(s)[-1]
    assert last.tool_calls[0].arguments["command"].startswith("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
    assert last.observations[0].content.startswith("diff --git a/django/utils/dateparse.py")
    assert s.metrics["api_calls"] == 18 and s.metrics["cost_usd"] == pytest.approx(0.157567)
    assert s.metrics["input_tokens"] > s.metrics["output_tokens"] > 0 and s.n_tool_calls == 18


@needs_mini
def test_mini_upstream_bare_message_lists(mini):
    local = mini["upstream-tests.local"]
    assert local.task.startswith("Please solve this issue: Blah blah blah") and local.reward is None
    assert [st.tool_calls[0].arguments for st in agent_steps(local)] == [
        {"command": "echo 'hello world'"}, {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}]
    assert local.termination is None and local.model is None
    gh = mini["upstream-tests.github_issue"]
    assert len(agent_steps(gh)) == 10 and agent_steps(gh)[0].observations[0].is_error is True  # returncode 1


@needs_mini
def test_traj_json_is_not_read_as_openai_chat():
    refs = list(scan([MINI]))
    assert sorted(r.format for r in refs) == ["mini-swe-agent"] * 6


# --------------------------------------------------------------------------- handmade variants
SYSTEM = {"role": "system", "content": "You are an autonomous programmer.", "agent": "main", "message_type": "system_prompt"}
ISSUE = {"role": "user", "content": "We're currently solving the following issue: fix the colon.", "agent": "main",
         "message_type": "observation"}


def test_swe_agent_trajectory_only_with_query_and_replay_config_string(tmp_path):
    rc = json.dumps({"agent": {"model": {"name": "claude-x"}}, "problem_statement": {"id": "repo-7", "text": "fix it"}})
    doc = {"environment": "main", "replay_config": rc,
           "trajectory": [{"action": "ls\n", "observation": "a.py", "thought": "look", "response": "look\n```\nls\n```",
                           "execution_time": 0.25, "query": [SYSTEM, ISSUE], "state": {}},
                          {"action": "", "observation": "", "thought": "", "response": "Exit due to cost limit"}],
           "info": {"exit_status": "submitted (exit_cost)", "model_stats": {"instance_cost": 3.1, "api_calls": 9}}}
    s = FORMATS["swe-agent"].assemble(next(iter(scan([write(tmp_path / "run" / "repo-7.traj", doc)]))), CFG)
    assert s.meta["source"] == "trajectory" and [x.source for x in s.steps] == ["system", "user", "agent", "agent"]
    assert s.task == ISSUE["content"] and s.task_id == "repo-7" and s.model == "claude-x"
    assert s.termination == "submitted (exit_cost)" and s.metrics["cost_usd"] == 3.1
    one, two = agent_steps(s)
    assert one.tool_calls[0].arguments == {"command": "ls"} and one.observations[0].content == "a.py"
    assert one.metrics == {"execution_time_s": 0.25} and one.message == "look"
    assert two.tool_calls == [] and two.message == "Exit due to cost limit"
    doc.pop("replay_config")
    doc["trajectory"][0].pop("query")
    with pytest.raises(InputError, match="no task"):  # no user message and no problem statement
        FORMATS["swe-agent"].assemble(next(iter(scan([write(tmp_path / "run2" / "x.traj", doc)]))), CFG)


def test_swe_agent_history_variants_demos_tool_call_ids_and_thinking(tmp_path):
    history = [SYSTEM, {"role": "user", "content": "demo text", "is_demo": True, "agent": "main"},
               {"role": "assistant", "content": "demo act", "is_demo": True, "action": "ls"}, ISSUE,
               {"role": "assistant", "content": [{"type": "text", "text": "Looking."}], "thought": "Looking.",
                "action": "ls", "message_type": "action", "thinking_blocks": [{"type": "thinking", "thinking": "hmm"}],
                "tool_calls": [{"id": "t1", "type": "function", "function": {"name": "bash", "arguments": '{"command":"ls"}'}}]},
               {"role": "tool", "content": [{"type": "text", "text": "a.py"}], "tool_call_ids": ["t1"],
                "message_type": "observation"},
               {"role": "assistant", "content": "Done.\n```\nsubmit\n```", "thought": "Done.\n", "action": "submit\n"},
               {"role": "user", "content": "diff --git a/a.py", "message_type": "observation"}]
    doc = {"history": history, "trajectory": [{"action": "ls"}, {"action": "submit\n"}],
           "info": {"exit_status": "exit_format", "swe_agent_version": "1.1.0", "submission": "diff",
                    "review": {"score": 9}, "edited_files30": "x"}}
    s = FORMATS["swe-agent"].assemble(next(iter(scan([write(tmp_path / "inst" / "inst.traj", doc)]))), CFG)
    assert s.meta["n_demo_messages"] == 2 and s.meta["swe_agent_version"] == "1.1.0" and s.task == ISSUE["content"]
    a, b = agent_steps(s)
    assert a.reasoning == "hmm" and a.observations[0].source_call_id == "t1" and a.observations[0].content == "a.py"
    assert b.message == "Done.\n" and b.tool_calls[0].arguments == {"command": "submit"}
    assert b.observations[0].content == "diff --git a/a.py" and b.observations[0].source_call_id == b.tool_calls[0].id
    assert s.termination == "exit_format" and set(s.meta) == {"source", "swe_agent_version", "n_demo_messages",
                                                              "has_submission"}
    assert s.ref.session_id == f"{tmp_path.name}.inst"  # <run>/<id>/<id>.traj: the run folder names it


def test_swe_agent_retry_attempts_only(tmp_path):
    attempt = {"history": [SYSTEM, ISSUE, {"role": "assistant", "content": "x", "thought": "t", "action": "pwd"}],
               "info": {"exit_status": "submitted"}, "trajectory": []}
    doc = {"attempts": [dict(attempt, info={"exit_status": "exit_cost"}), attempt]}
    s = FORMATS["swe-agent"].assemble(next(iter(scan([write(tmp_path / "r" / "i.traj", doc)]))), CFG)
    assert s.meta["n_attempts"] == 2 and s.termination == "submitted" and len(agent_steps(s)) == 1


def test_swe_agent_1x_run_layout_with_run_report_and_owned_files(tmp_path):
    run = tmp_path / "claude__swe-bench"
    for iid in ("astropy__astropy-1", "astropy__astropy-2"):
        write(run / iid / f"{iid}.traj", {"history": [SYSTEM, ISSUE, {"role": "assistant", "thought": "t", "action": "ls"}],
                                          "info": {"exit_status": "submitted"},
                                          "replay_config": json.dumps({"problem_statement": {"id": iid}})})
        for suffix in (".pred", ".patch", ".config.yaml", ".debug.log"):
            (run / iid / f"{iid}{suffix}").write_text("x")
    write(run / "preds.json", {"astropy__astropy-1": {"model_patch": "diff"}})
    (run / "run_batch.config.yaml").write_text("agent: {}\n")
    write(run / "results.json", {"resolved_ids": ["astropy__astropy-2"], "unresolved_ids": ["astropy__astropy-1"]})
    report = ScanReport()
    got = sessions(run, "swe-agent", report)
    assert {k: s.reward for k, s in got.items()} == {"claude__swe-bench.astropy__astropy-1": 0.0,
                                                     "claude__swe-bench.astropy__astropy-2": 1.0}
    assert report.unrecognised == 0, report.examples
    assert owned(run, sorted(os.listdir(run))) == {"preds.json", "run_batch.config.yaml", "results.json"}


def test_non_json_traj_is_not_claimed(tmp_path):
    (tmp_path / "md.traj").write_bytes(b"\x00\x01ASE-trajectory")
    (tmp_path / "x.traj.json").write_text("not json")
    report = ScanReport()
    assert list(scan([tmp_path], report=report)) == [] and report.unrecognised == 2
    assert explain(tmp_path, "md.traj", ["md.traj"]).startswith("swe-agent: a .traj file that does not start like JSON")
    (tmp_path / "bad.traj").write_text('{"history": [')  # looks like JSON: a session that fails, not dropped
    with pytest.raises(InputError) as exc:
        FORMATS["swe-agent"].assemble(next(r for r in scan([tmp_path]) if r.path.endswith("bad.traj")), CFG)
    assert exc.value.path.endswith("bad.traj") and exc.value.line == 1


def test_mini_v2_toolcalls_exit_message_and_timestamps(tmp_path):
    doc = {"trajectory_format": "mini-swe-agent-1.1", "info": {"model_stats": {"instance_cost": 0.5, "api_calls": 2},
                                                               "config": {"model": {"model_name": "anthropic/claude"}},
                                                               "mini_version": "2.0.0", "exit_status": "", "submission": ""},
           "messages": [{"role": "system", "content": "sys"}, {"role": "user", "content": "Fix the bug"},
                        {"role": "assistant", "content": "Look first.", "reasoning_content": "plan",
                         "tool_calls": [{"id": "c1", "function": {"name": "bash", "arguments": '{"command": "ls"}'}}],
                         "extra": {"cost": 0.2, "timestamp": 1700000000.0, "response": {"usage": {"prompt_tokens": 10, "completion_tokens": 2}}}},
                        {"role": "tool", "tool_call_id": "c1", "content": "a.py", "extra": {"returncode": 2, "timestamp": 1700000001.0}},
                        {"role": "assistant", "content": None, "extra": {"timestamp": 1700000030.0},
                         "tool_calls": [{"id": "c2", "function": {"name": "bash", "arguments": '{"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}'}}]},
                        {"role": "exit", "content": "the patch", "extra": {"exit_status": "Submitted", "submission": "the patch"}}]}
    s = FORMATS["mini-swe-agent"].assemble(next(iter(scan([write(tmp_path / "t1" / "t1.traj.json", doc)]))), CFG)
    a, b = agent_steps(s)
    assert a.reasoning == "plan" and a.observations[0].is_error is True and a.metrics["cost_usd"] == 0.2
    assert b.observations[0].content == "the patch" and b.observations[0].source_call_id == "c2"
    assert s.termination == "Submitted" and s.duration_s == 30.0 and s.model == "anthropic/claude"
    assert s.metrics == {"cost_usd": 0.5, "api_calls": 2.0, "input_tokens": 10.0, "output_tokens": 2.0, "steps": 2.0}
    assert a.timestamp == "2023-11-14T22:13:20+00:00" and s.task == "Fix the bug"


def test_mini_text_based_errors_timeouts_and_rejected_responses(tmp_path):
    msgs = [{"role": "system", "content": "sys"}, {"role": "user", "content": "Task: count files"},
            {"role": "assistant", "content": "Two blocks\n```bash\nls\n```\n```bash\npwd\n```"},
            {"role": "user", "content": "Please always provide EXACTLY ONE action in triple backticks."},
            {"role": "assistant", "content": "THOUGHT: wait\n\n```mswea_bash_command\nsleep 100\n```",
             "extra": {"actions": [{"command": "sleep 100"}]}},
            {"role": "user", "content": "The last command <command>sleep 100</command> timed out and has been killed."},
            {"role": "user", "content": "Every response must include a tool call",
             "extra": {"interrupt_type": "FormatError",
                       "response": {"object": "response", "output": [
                           {"type": "message", "content": [{"type": "output_text", "text": "I think it is 3"}]},
                           {"type": "reasoning", "summary": [{"text": "count"}]}]}}},
            {"object": "response", "output": [{"type": "function_call", "call_id": "r1", "name": "bash",
                                                "arguments": '{"command": "ls | wc -l"}'}], "usage": {"input_tokens": 5}},
            {"type": "function_call_output", "call_id": "r1", "output": "3\n"}]
    doc = {"info": {"exit_status": "LimitsExceeded"}, "messages": msgs, "instance_id": "count-1"}
    s = FORMATS["mini-swe-agent"].assemble(next(iter(scan([write(tmp_path / "count.traj.json", doc)]))), CFG)
    a, b, c, d = agent_steps(s)
    assert a.tool_calls == [] and a.observations[0].content.startswith("Please always") and a.observations[0].source_call_id is None
    assert b.tool_calls[0].arguments == {"command": "sleep 100"} and b.message == "THOUGHT: wait"
    assert b.observations[0].content.startswith("The last command") and b.observations[0].source_call_id == b.tool_calls[0].id
    assert c.message == "I think it is 3" and c.reasoning == "count" and c.tool_calls == []
    assert c.observations[0].content == "Every response must include a tool call"
    assert d.tool_calls[0].id == "r1" and d.observations[0].content == "3\n" and d.metrics == {"prompt_tokens": 5.0}
    assert s.task_id == "count-1" and s.termination == "LimitsExceeded"
    assert [m.role for m in s.transcript][2:] == ["assistant", "user", "assistant", "tool", "assistant", "user",
                                                  "assistant", "tool"]


@pytest.mark.parametrize("doc, field", [
    ({"messages": "nope"}, "messages"),
    ({"info": [], "messages": []}, "info"),
    ({"messages": [{"role": "user", "content": "t"}, {"role": "wizard", "content": "x"}]}, "messages[1].role"),
    ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "t"}, {"role": "assistant", "tool_calls": [{"function": {}}]}]},
     "messages[1].tool_calls[0].function.name"),
    ({"messages": [{"content": "x"}]}, "messages[0].role"),
])
def test_mini_bad_input_names_the_field(tmp_path, doc, field):
    path = write(tmp_path / "bad.traj.json", doc)
    with pytest.raises(InputError) as exc:
        FORMATS["mini-swe-agent"].assemble(next(iter(scan([path]))), CFG)
    assert exc.value.path == str(path) and exc.value.field == field


@pytest.mark.parametrize("doc, field", [
    ([], None), ({"history": {}}, "history"), ({"history": [SYSTEM, 3]}, "history[1]"),
    ({"history": [ISSUE, {"role": "assistant", "action": 7}]}, "history[1].action"),
    ({"history": [ISSUE, {"role": "tool", "tool_call_ids": [1]}]}, "history[1].tool_call_ids"),
    ({"trajectory": [{"action": ["ls"]}]}, "trajectory[0].action"), ({"attempts": {}}, "attempts"),
    ({"history": [SYSTEM], "info": "x"}, "info"),
])
def test_swe_agent_bad_input_names_the_field(tmp_path, doc, field):
    path = write(tmp_path / "bad.traj", doc)
    with pytest.raises(InputError) as exc:
        FORMATS["swe-agent"].assemble(next(iter(scan([path]))), CFG)
    assert exc.value.path == str(path) and exc.value.field == field


# --------------------------------------------------------------------------- labels
def test_load_swebench_labels_every_shape(tmp_path):
    clear_labels()
    cases = {
        "a.report.json": ({"resolved": True, "tests_status": {}}, {"a": 1.0}),
        "keyed.json": ({"x__y-1": {"resolved": False}, "x__y-2": {"resolved": True}}, {"x__y-1": 0.0, "x__y-2": 1.0}),
        "run.json": ({"resolved_ids": ["r"], "unresolved_ids": ["u"], "error_ids": ["e"], "completed_ids": ["r", "c"],
                      "incomplete_ids": ["i"]}, {"r": 1.0, "u": 0.0, "e": 0.0, "c": 0.0}),
        "results.json": ({"resolved": ["r"], "applied": ["r", "a"], "no_generation": ["n"]}, {"r": 1.0, "a": 0.0, "n": 0.0}),
        "results_summary.json": ({"total": 2, "instances": [{"instance_id": "p", "resolved": True},
                                                            {"instance_id": "q", "resolved": False}]}, {"p": 1.0, "q": 0.0}),
        "rows.json": ([{"instance_id": "p", "resolved": "true"}, {"instance_id": "z", "model_patch": "d"}], {"p": 1.0}),
        "preds.json": ({"p": {"instance_id": "p", "model_patch": "diff"}}, {}),
    }
    for name, (doc, want) in cases.items():
        assert load_swebench_labels(write(tmp_path / name, doc)) == want, name
    write(tmp_path / "inst-9" / "report.json", {"resolved": False})
    assert load_swebench_labels(tmp_path / "inst-9" / "report.json") == {"inst-9": 0.0}
    (tmp_path / "labels.jsonl").write_text('{"instance_id": "j", "resolved": true}\n\n{"instance_id": "k", "resolved": 2}\n')
    with pytest.raises(InputError) as exc:
        load_swebench_labels(tmp_path / "labels.jsonl")
    assert exc.value.line == 3 and exc.value.field == "resolved"
    with pytest.raises(InputError) as exc:
        load_swebench_labels(write(tmp_path / "bad.json", {"resolved_ids": ["a", 3]}))
    assert exc.value.field == "resolved_ids[1]"


@needs_mini
def test_mini_corpus_summary_labels():
    labels = load_swebench_labels(MINI / "gemini-3-pro-swebench-verified" / "results_summary.json")
    assert len(labels) == 500 and sum(labels.values()) == 371
    assert {k: labels[k] for k in GEMINI} == GEMINI


def test_broken_label_file_fails_the_session_naming_it(tmp_path):
    write(tmp_path / "t.traj.json", {"messages": [{"role": "user", "content": "go"}, {"role": "assistant", "content": "ok"}]})
    (tmp_path / "t.report.json").write_text("{broken")
    with pytest.raises(InputError) as exc:
        FORMATS["mini-swe-agent"].assemble(next(iter(scan([tmp_path / "t.traj.json"]))), CFG)
    assert exc.value.path == str(tmp_path / "t.report.json")


# --------------------------------------------------------------------------- fuzz
SEED_SWE = {"history": [SYSTEM, ISSUE, {"role": "assistant", "content": "x", "thought": "t", "action": "ls",
                                        "tool_calls": [{"id": "c", "function": {"name": "bash", "arguments": "{}"}}]},
                        {"role": "tool", "content": "out", "tool_call_ids": ["c"]}],
            "trajectory": [{"action": "ls", "observation": "out", "thought": "t", "query": [SYSTEM, ISSUE]}],
            "info": {"exit_status": "submitted", "model_stats": {"instance_cost": 1}},
            "replay_config": json.dumps({"agent": {"model": {"name": "m"}}})}
SEED_MINI = {"info": {"exit_status": "Submitted", "config": {"model": {"model_name": "m"}}},
             "messages": [{"role": "system", "content": "s"}, {"role": "user", "content": "task"},
                          {"role": "assistant", "content": "T\n```bash\nls\n```", "extra": {"response": {"usage": {}}}},
                          {"role": "user", "content": "<returncode>0</returncode>"},
                          {"role": "exit", "content": "p", "extra": {"exit_status": "Submitted"}}]}
JSONS = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                     lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids, max_size=3),
                     max_leaves=6)
FUZZ = settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "40")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


LOCATIONLESS = re.compile(r"^(no messages or steps|no task|file is empty|expected a JSON object)")
SEEDS = [(SEED_SWE, "i.traj", "swe-agent"), (SEED_MINI, "i.traj.json", "mini-swe-agent")]
if SWE.is_dir():
    SEEDS.append((json.loads((SWE / "tests" / "test_data" / "trajectories" / PYDICOM.split(".pydicom")[0]
                              / "pydicom__pydicom-1458.traj").read_bytes()), "p.traj", "swe-agent"))
if MINI.is_dir():
    SEEDS.append((json.loads((MINI / "gemini-3-pro-swebench-verified" / "django__django-10999.traj.json").read_bytes()),
                  "d.traj.json", "mini-swe-agent"))


def _mutate(doc, path: list[int], value):
    """``doc`` with the node reached by following ``path`` (indices into keys/items) replaced."""
    if not path or not isinstance(doc, (dict, list)) or not doc:
        return value
    if isinstance(doc, dict):
        key = list(doc)[path[0] % len(doc)]
        return {**doc, key: _mutate(doc[key], path[1:], value)}
    i = path[0] % len(doc)
    return doc[:i] + [_mutate(doc[i], path[1:], value)] + doc[i + 1:]


def _check(path: Path, fmt: str) -> None:
    clear_cache()
    clear_labels()
    refs = [r for r in scan([path.parent]) if r.path == str(path)]
    if not refs:
        return  # not JSON-looking: not claimed, explained instead
    try:
        s = FORMATS[fmt].assemble(refs[0], CFG)
    except InputError as exc:
        assert exc.path in refs[0].files, exc
        assert str(exc).startswith(exc.path)
        # where it is known: the line of a syntax error, the field of a bad value
        assert exc.line is not None or exc.field is not None or LOCATIONLESS.search(exc.message), exc
    else:
        assert s.steps and s.task and s.transcript


@FUZZ
@given(seed=st.integers(0, len(SEEDS) - 1), path=st.lists(st.integers(0, 50), max_size=6), value=JSONS,
       label=st.one_of(st.none(), JSONS))
def test_fuzz_mutated_trajectories_fail_only_with_input_errors(tmp_path_factory, seed, path, value, label):
    """Handmade and corpus trajectories with one node replaced by random JSON (and a random
    report beside them): a Session, or an InputError naming the trajectory or the report and
    the field."""
    folder = tmp_path_factory.mktemp("fuzz")
    doc, name, fmt = SEEDS[seed]
    write(folder / name, _mutate(doc, path, value))
    if label is not None:
        write(folder / (name.split(".")[0] + ".report.json"), label)
    _check(folder / name, fmt)


@FUZZ
@given(cut=st.integers(0, 400), junk=st.binary(max_size=8))
def test_fuzz_truncated_and_corrupted_files(tmp_path_factory, cut, junk):
    """A trajectory cut short, with junk bytes after: InputError naming the line."""
    for doc, name, fmt in SEEDS[:2]:
        folder = tmp_path_factory.mktemp("cut")
        data = json.dumps(doc).encode()
        (folder / name).write_bytes(data[:cut] + junk)
        _check(folder / name, fmt)


# --------------------------------------------------------------------------- the CLI
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY") and not k.startswith("STREAMGRADE_")}


@pytest.mark.parametrize("folder, fmt, n", [("swe-agent", "swe-agent", 22), ("mini-swe-agent", "mini-swe-agent", 6)])
def test_cli_grades_the_corpus_folder(tmp_path, folder, fmt, n):
    if not (CORPUS / folder).is_dir():
        pytest.skip(f"{folder} corpus not found at {CORPUS / folder}")
    src = str(Path(__file__).resolve().parents[1] / "src")
    env = {**CLEAN_ENV, "PYTHONPATH": src + os.pathsep + CLEAN_ENV.get("PYTHONPATH", "")}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(CORPUS / folder), "-o", str(tmp_path / "out")],
                         capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert f"{n} graded, 0 failed" in res.stderr + res.stdout
    assert "1 file not recognised" in res.stderr and "PROVENANCE.md" in res.stderr
    recs = [json.loads(x) for x in (tmp_path / "out" / "exports" / "scores.jsonl").read_text().splitlines()]
    assert len(recs) == n and {r["source_format"] for r in recs} == {fmt} and all(r["status"] == "graded" for r in recs)
    if fmt == "mini-swe-agent":
        assert {r["task_id"]: r["reward"] for r in recs if r["reward"] is not None} == GEMINI
