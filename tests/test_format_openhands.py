"""OpenHands readers on handmade files shaped after the source (All-Hands-AI/OpenHands
``event_to_dict``, ``EvalOutput``, ``llm.py`` completion logs): the variants the corpus lacks,
and fuzzing. The real corpus is in test_format_openhands_corpus.py."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats._rows import clear_cache
from streamgrade.formats.explain import owned
from streamgrade.formats.openhands import OpenHandsOutput
from streamgrade.formats.openhands_completions import OpenHandsCompletions
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CFG = load_config(env={})
OUT = OpenHandsOutput()
COMP = OpenHandsCompletions()


# --- builders shaped like event_to_dict / EvalOutput.model_dump_json ----------------------------

def response(rid: str, content: str | None, calls: list[tuple[str, str, str]], *, prompt: int = 100, model: str = "claude") -> dict:
    """A litellm ModelResponse as tool_call_metadata.model_response holds it."""
    tool_calls = [{"index": i, "function": {"arguments": a, "name": n}, "id": c, "type": "function"}
                  for i, (c, n, a) in enumerate(calls)]
    return {"id": rid, "created": 1, "model": model, "object": "chat.completion",
            "choices": [{"finish_reason": "tool_calls", "index": 0,
                         "message": {"content": content, "role": "assistant", "tool_calls": tool_calls or None}}],
            "usage": {"completion_tokens": 7, "prompt_tokens": prompt, "total_tokens": prompt + 7}}


def tcm(call_id: str, fn: str, resp: dict | None = None, n: int = 1) -> dict:
    out = {"function_name": fn, "tool_call_id": call_id, "total_calls_in_response": n}
    if resp is not None:
        out["model_response"] = resp
    return out


def act(eid: int, kind: str, args: dict, *, source: str = "agent", meta: dict | None = None, message: str = "") -> dict:
    e = {"id": eid, "timestamp": f"2025-04-30T16:32:{eid:02d}.000000", "source": source, "message": message,
         "action": kind, "args": args}
    if meta is not None:
        e["tool_call_metadata"] = meta
    return e


def obs(eid: int, kind: str, content: str, cause: int | None, *, meta: dict | None = None, **extra) -> dict:
    e = {"id": eid, "timestamp": f"2025-04-30T16:32:{eid:02d}.500000", "source": "environment", "message": "",
         "observation": kind, "content": content, "extras": {}, **extra}
    if cause is not None:
        e["cause"] = cause
    if meta is not None:
        e["tool_call_metadata"] = meta
    return e


def row(history: Any, **fields) -> dict:
    base = {"instance_id": "django__django-1", "test_result": {"git_patch": "diff --git a/x b/x"},
            "instruction": "Fix the bug in x.", "metadata": {"agent_class": "CodeActAgent", "llm_config": {"model": "anthropic/claude"},
                                                           "max_iterations": 30, "git_commit": "abc"},
            "history": history, "metrics": None, "error": None, "instance": {"patch": "GOLD PATCH", "FAIL_TO_PASS": ["t1"]}}
    base.update(fields)
    return base


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def sessions(folder: Path, fmt=OUT) -> dict[str, Session]:
    clear_cache()
    return {r.session_id: fmt.assemble(r, CFG) for r in fmt.find(folder, sorted(os.listdir(folder)))}


def one(folder: Path, fmt=OUT) -> Session:
    (s,) = sessions(folder, fmt).values()
    return s


def tool_flow() -> list:
    """A native tool-calling run: system, task, recall, two calls in one response, think, an
    error without cause, finish."""
    r1 = response("r1", "Let me look.", [("c1", "execute_bash", '{"command": "ls"}'),
                                          ("c2", "str_replace_editor", '{"command": "view", "path": "/w/x.py"}')])
    r2 = response("r2", None, [("c3", "think", '{"thought": "x.py has the bug"}')], prompt=300)
    r3 = response("r3", "Done.", [("c4", "finish", '{"message": "fixed", "task_completed": "true"}')], prompt=400)
    return [
        act(0, "system", {"content": "You are OpenHands agent.", "tools": [{"type": "function", "function": {"name": "execute_bash"}}],
                          "openhands_version": "0.40.0", "agent_class": "CodeActAgent"}),
        act(1, "message", {"content": "Fix the bug in x.", "image_urls": None, "wait_for_response": False}, source="user"),
        act(2, "recall", {"recall_type": "workspace_context", "query": "Fix"}, source="user"),
        obs(3, "recall", "Added workspace context", 2),
        act(4, "run", {"command": "ls", "is_input": False, "thought": "Let me look.", "blocking": False, "hidden": False},
            meta=tcm("c1", "execute_bash", r1, 2)),
        obs(5, "run", "x.py", 4, meta=tcm("c1", "execute_bash", r1, 2), success=True),
        act(6, "read", {"path": "/w/x.py", "start": 0, "end": -1, "thought": "", "impl_source": "oh_aci"},
            meta=tcm("c2", "str_replace_editor", r1, 2)),
        obs(7, "read", "1 def f(): return 2", 6, meta=tcm("c2", "str_replace_editor", r1, 2)),
        act(8, "think", {"thought": "x.py has the bug"}, meta=tcm("c3", "think", r2)),
        obs(9, "think", "Your thought has been logged.", 8, meta=tcm("c3", "think", r2)),
        obs(10, "error", "Parameter 'command' is expected to be one of [...]", None),
        act(11, "finish", {"final_thought": "fixed", "task_completed": "true", "outputs": {}, "thought": "Done."},
            meta=tcm("c4", "finish", r3)),
        obs(12, "agent_state_changed", "", None),
    ]


# --- evaluation rows: flat events ----------------------------------------------------------------

def test_native_tool_calls_share_their_response_step(tmp_path):
    write_jsonl(tmp_path / "output.jsonl", [row(tool_flow(), metrics={
        "accumulated_cost": 0.25, "accumulated_token_usage": {"prompt_tokens": 800, "completion_tokens": 21,
                                                              "cache_read_tokens": 5, "cache_write_tokens": 0},
        "costs": [], "response_latencies": [{"latency": 1.5}, {"latency": 2.0}, {"latency": 0.5}]})])
    s = one(tmp_path)
    assert s.ref.session_id == "output.django__django-1" and s.ref.locator == "0" and s.ref.format == "openhands"
    assert [x.source for x in s.steps] == ["system", "user", "agent", "agent", "environment", "agent"]
    first = s.steps[2]
    assert first.message == "Let me look." and first.model == "claude" and first.metrics == {"prompt_tokens": 100.0, "completion_tokens": 7.0}
    assert [(c.id, c.name, c.arguments) for c in first.tool_calls] == [
        ("c1", "execute_bash", '{"command": "ls"}'), ("c2", "str_replace_editor", '{"command": "view", "path": "/w/x.py"}')]
    assert [(o.source_call_id, o.content, o.is_error) for o in first.observations] == [
        ("c1", "x.py", False), ("c2", "1 def f(): return 2", None)]
    assert s.steps[4].message.startswith("Parameter 'command'")  # an error no call caused
    think = s.steps[3]
    assert think.message is None and think.tool_calls[0].arguments == '{"thought": "x.py has the bug"}'
    assert s.steps[5].message == "Done." and s.steps[5].tool_calls[0].name == "finish"
    assert [m.role for m in s.transcript] == ["system", "user", "assistant", "tool", "tool", "assistant", "tool", "user", "assistant"]
    assert s.task == "Fix the bug in x." and s.task_id == "django__django-1"
    assert (s.agent, s.model, s.termination, s.reward) == ("CodeActAgent", "anthropic/claude", "finish", None)
    assert s.tools == [{"type": "function", "function": {"name": "execute_bash"}}]
    assert s.metrics == {"events": 13.0, "cost_usd": 0.25, "prompt_tokens": 800.0, "completion_tokens": 21.0,
                         "cache_read_tokens": 5.0, "cache_write_tokens": 0.0, "llm_calls": 3.0, "llm_latency_s": 4.0}
    assert s.meta["openhands_version"] == "0.40.0" and s.meta["task_completed"] == "true"
    assert s.meta["skipped_events"] == 3 and s.meta["history"] == "events"
    assert s.duration_s == pytest.approx(12.5)


def test_ground_truth_never_reaches_task_steps_or_meta(tmp_path):
    write_jsonl(tmp_path / "output.jsonl", [row(tool_flow(), test_result={"git_patch": "p", "report": {"resolved": True}})])
    s = one(tmp_path)
    assert s.reward == 1.0
    text = json.dumps([msgspec.to_builtins(s.steps), s.task, s.meta])
    for secret in ("GOLD PATCH", "FAIL_TO_PASS", "resolved", "git_patch", "test_result"):
        assert secret not in text


def test_calls_without_metadata_link_by_cause(tmp_path):
    """Pre function-calling CodeAct (late 2024): actions parsed from text, observations with cause."""
    hist = [act(1, "message", {"content": "Count files."}, source="user"),
            act(2, "run", {"command": "ls | wc -l", "thought": "I will count.", "blocking": False, "is_input": False}),
            obs(3, "run", "3", 2, extras={"command": "ls | wc -l", "metadata": {"exit_code": 0}}),
            act(4, "run_ipython", {"code": "print(1)", "thought": "", "include_extra": True, "kernel_init_code": ""}),
            obs(5, "run_ipython", "1", 4),
            act(6, "run", {"command": "make"}, source="user", message="Running command: make"),
            obs(7, "run", "ok", 6),
            act(8, "message", {"content": "There are 3 files.", "wait_for_response": True})]
    write_jsonl(tmp_path / "output.jsonl", [row(hist, instruction=None)])
    s = one(tmp_path)
    a = s.steps[1]
    assert (a.message, a.tool_calls[0].id, a.tool_calls[0].name, a.tool_calls[0].arguments) == (
        "I will count.", "event_2", "run", {"command": "ls | wc -l"})
    assert a.observations[0].source_call_id == "event_2" and a.observations[0].content == "3"
    assert s.steps[2].tool_calls[0].arguments == {"code": "print(1)"} and s.steps[2].message is None
    assert (s.steps[3].source, s.steps[3].message) == ("user", "Running command: make")
    assert (s.steps[4].source, s.steps[4].message) == ("environment", "ok")  # answers the user's command
    assert s.task == "Count files."  # no instruction: the first user message
    assert s.termination == "stop"  # ended on a message to the user


@pytest.mark.parametrize("fields,reward", [
    ({"test_result": {"git_patch": "p", "report": {"resolved": True, "empty_generation": False}}}, 1.0),
    ({"report": {"resolved": False}}, 0.0),
    ({"fine_grained_report": {"resolved": True, "applied": True}}, 1.0),
    ({"test_result": {"resolved": False}}, 0.0),
    ({"test_result": {"text": "answer", "correct": True, "hallucination": False}}, 1.0),
    ({"correct": False, "hallucination": True}, 0.0),
    ({"test_result": {"git_patch": "p", "resolved": "yes"}}, None),  # not a boolean verdict
    ({"test_result": {"success": True, "score": 0.9}}, None),  # benchmark-specific: not read
])
def test_verdict_fields(tmp_path, fields, reward):
    write_jsonl(tmp_path / "output.jsonl", [row(tool_flow(), **fields)])
    assert one(tmp_path).reward == reward


@pytest.mark.parametrize("error,termination", [
    ("RuntimeError: Agent reached maximum iteration in headless mode. Current iteration: 30, max iteration: 30", "max_steps"),
    ("Agent reached maximum budget for conversation.", "budget"),
    ("AgentStuckInLoopError: Agent got stuck in a loop", "stuck"),
    ("Timeout after 3600 seconds", "timeout"),
    ("AgentRuntimeDisconnectedError: runtime went away", "error"),
])
def test_termination_from_error(tmp_path, error, termination):
    write_jsonl(tmp_path / "output.jsonl", [row(tool_flow(), error=error)])
    s = one(tmp_path)
    assert s.termination == termination and s.meta["error"] == error


def test_row_without_history_fails_with_its_error(tmp_path):
    rows = [row(tool_flow()), row(None, instance_id="django__django-2", error="Timeout after 120 seconds", test_result={})]
    write_jsonl(tmp_path / "output.jsonl", rows)
    clear_cache()
    refs = OUT.find(tmp_path, ["output.jsonl"])
    assert [r.session_id for r in refs] == ["output.django__django-1", "output.django__django-2"]
    assert isinstance(OUT.assemble(refs[0], CFG), Session)
    with pytest.raises(InputError) as e:
        OUT.assemble(refs[1], CFG)
    assert (e.value.line, e.value.field) == (2, "history") and "Timeout after 120 seconds" in e.value.message


def test_ids_repeat_and_fingerprints_are_per_row(tmp_path):
    rows = [row(tool_flow()), row(tool_flow(), error="x"), row(tool_flow(), instance_id=None)]
    path = write_jsonl(tmp_path / "out.jsonl", rows)
    clear_cache()
    refs = OUT.find(tmp_path, ["out.jsonl"])
    assert [r.session_id for r in refs] == ["out.django__django-1", "out.django__django-1.row1", "out.row2"]
    before = [r.fingerprint for r in refs]
    write_jsonl(path, rows + [row(tool_flow(), instance_id="new")])
    clear_cache()
    assert [r.fingerprint for r in OUT.find(tmp_path, ["out.jsonl"])][:3] == before


def test_json_list_of_rows(tmp_path):
    (tmp_path / "runs.json").write_text(json.dumps([row(tool_flow()), row(tool_flow(), instance_id="b")]))
    clear_cache()
    refs = OUT.find(tmp_path, ["runs.json"])
    assert [r.session_id for r in refs] == ["runs.django__django-1", "runs.b"]
    with pytest.raises(InputError) as e:
        (tmp_path / "runs.json").write_text(json.dumps([row([act(1, 5, {})])]))
        clear_cache()
        OUT.assemble(OUT.find(tmp_path, ["runs.json"])[0], CFG)
    assert e.value.field == "[0].history[0].action"


# --- evaluation rows: OpenDevin [action, observation] pairs ----------------------------------------

def test_pairs_link_observations_to_their_action(tmp_path):
    """OpenDevin (2024): pairs, observations without cause, null placeholders, a background
    observation paired with a null action."""
    null_obs = {"message": "No observation", "observation": "null", "content": "", "extras": {}}
    hist = [[{"id": 0, "source": "user", "message": "Solve it", "action": "message", "args": {"content": "Solve it"}}, null_obs],
            [{"id": 1, "source": "agent", "message": "Running command: ls", "action": "run",
              "args": {"command": "ls", "background": False, "thought": "Look first."}},
             {"id": 2, "source": "agent", "message": "Command `ls` executed with exit code 0.", "observation": "run",
              "content": "a.py", "extras": {"command_id": -1, "command": "ls", "exit_code": 0}}],
            [{"action": "null", "args": {}, "message": "No action"},
             {"observation": "run", "content": "server started", "extras": {}, "message": ""}],
            [{"id": 5, "source": "agent", "message": "All done!", "action": "finish", "args": {"outputs": {}, "thought": ""}}, null_obs]]
    write_jsonl(tmp_path / "output.jsonl", [{"question_id": 7, "text": "ANSWER", "correct": True, "hallucination": False,
                                             "answer_id": "None", "model_id": "gpt-4o", "history": hist, "error": None,
                                             "metadata": {"agent_class": "CodeActAgent", "model_name": "gpt-4o", "max_iterations": 5}}])
    s = one(tmp_path)
    assert s.ref.session_id == "output.7" and s.task_id == "7" and s.model == "gpt-4o" and s.reward == 1.0
    assert [x.source for x in s.steps] == ["user", "agent", "environment", "agent"]
    run = s.steps[1]
    assert run.tool_calls[0].id == "event_1" and run.message == "Look first."
    assert [(o.source_call_id, o.content) for o in run.observations] == [("event_1", "a.py")]
    assert s.steps[2].message == "server started"  # a background output answers no call
    assert s.steps[3].tool_calls[0].name == "finish" and s.steps[3].tool_calls[0].arguments == {}
    assert s.meta["history"] == "pairs" and s.meta["events"] == 5 and s.termination == "finish"
    assert "ANSWER" not in json.dumps([msgspec.to_builtins(s.steps), s.meta])


@pytest.mark.parametrize("history,field", [
    ([[{"action": "run", "args": {}}]], "history[0]"),
    ([[{"action": "run", "args": []}, {"observation": "null"}]], "history[0][0].args"),
    ([{"observation": "run", "content": 5}], "history[0].content"),
    ([{"id": 1}], "history[0]"),
    ("not a list", "history"),
    ([{"action": "system", "args": {"content": "s", "tools": "x"}}], "history[0].args.tools"),
    ([{"action": "run", "args": {}, "tool_call_metadata": {"tool_call_id": "c", "function_name": "f",
                                                          "model_response": {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {"name": 3}}]}}]}}}],
     "history[0].tool_call_metadata.model_response.choices[0].message.tool_calls[0].function.name"),
])
def test_bad_history_names_line_and_field(tmp_path, history, field):
    write_jsonl(tmp_path / "output.jsonl", [row(tool_flow()), row(history)])
    clear_cache()
    ref = OUT.find(tmp_path, ["output.jsonl"])[1]
    with pytest.raises(InputError) as e:
        OUT.assemble(ref, CFG)
    assert e.value.path == str(tmp_path / "output.jsonl") and e.value.line == 2 and e.value.field == field


# --- finding and owning ---------------------------------------------------------------------------

def test_eval_folder_is_found_and_its_files_owned(tmp_path):
    """An evaluation output folder: sessions from output.jsonl, its side files owned, the
    .swebench_eval.jsonl (rows without history) not a session, logs owned."""
    d = tmp_path / "CodeActAgent" / "claude_maxiter_30_N_v1"
    write_jsonl(d / "output.jsonl", [row(tool_flow())])
    write_jsonl(d / "output.swebench_eval.jsonl", [{"instance_id": "django__django-1", "test_result": {"report": {"resolved": True}},
                                                    "history": None, "metadata": None}])
    (d / "metadata.json").write_text(json.dumps({"agent_class": "CodeActAgent", "max_iterations": 30}))
    (d / "README.md").write_text("# SWE-bench Report\n")
    write_jsonl(d / "infer_logs" / "x.jsonl", [{"a": 1}])
    (d / "infer_logs" / "instance_django__django-1.log").write_text("log\n")
    (d / "eval_outputs" / "django__django-1").mkdir(parents=True)
    (d / "eval_outputs" / "django__django-1" / "report.json").write_text("{}")
    (d / "eval_outputs" / "django__django-1" / "test_output.txt").write_text("ok\n")
    (tmp_path / "notes.txt").write_text("mine\n")
    clear_cache()
    report = ScanReport(keep=20)
    refs = list(scan([tmp_path], report=report))
    assert [(r.format, r.session_id) for r in refs] == [("openhands", "output.django__django-1")]
    assert sorted(Path(p).name for p, _ in report.examples) == ["notes.txt"]
    names = sorted(os.listdir(d))
    assert owned(d, names) >= {"metadata.json", "README.md", "output.swebench_eval.jsonl"}


def test_other_row_dumps_are_left_to_the_generic_readers(tmp_path):
    write_jsonl(tmp_path / "chats.jsonl", [{"history": [{"role": "user", "content": "hi"},
                                                        {"role": "assistant", "content": "yo", "message_type": "action"}]}])
    write_jsonl(tmp_path / "patch.jsonl", [{"org": "o", "repo": "r", "number": "1", "fix_patch": "diff"}])
    clear_cache()
    assert OUT.find(tmp_path, ["chats.jsonl", "patch.jsonl"]) == []
    assert owned(tmp_path, ["chats.jsonl", "patch.jsonl"]) == set()  # no OpenHands output beside them


def test_broken_output_file_is_one_failing_session(tmp_path):
    (tmp_path / "output.jsonl").write_bytes(json.dumps(row(tool_flow())).encode() + b"\n{\"instance_id\": \n")
    clear_cache()
    (ref,) = OUT.find(tmp_path, ["output.jsonl"])
    with pytest.raises(InputError) as e:
        OUT.assemble(ref, CFG)
    assert e.value.line == 2


# --- completion logs ------------------------------------------------------------------------------

def completion(messages: list, resp: dict, **extra) -> dict:
    return {"messages": messages, "response": resp, "args": [], "kwargs": {"tools": [{"type": "function", "function": {"name": "execute_bash"}}],
                                                                       "tool_choice": "auto"}, "timestamp": 0.0, "cost": 0.01, **extra}


def text(t: str) -> list:
    return [{"type": "text", "text": t, "cache_control": {"type": "ephemeral"}}]


def write_calls(folder: Path, model: str = "anthropic__claude") -> Path:
    """Three calls of a run as log_completions writes them: each holds the conversation so far."""
    folder.mkdir(parents=True, exist_ok=True)
    msgs = [{"role": "system", "content": text("You are OpenHands agent.")}, {"role": "user", "content": text("List the files.")}]
    r1 = response("r1", "Listing.", [("c1", "execute_bash", '{"command": "ls"}')], model="claude-x")
    r2 = response("r2", "Finishing.", [("c2", "finish", '{"message": "2 files"}')], prompt=900, model="claude-x")
    (folder / f"{model}-1730000000.5.json").write_text(json.dumps(completion(msgs, r1)))
    msgs2 = msgs + [{"role": "assistant", "content": text("Listing."), "tool_calls": r1["choices"][0]["message"]["tool_calls"]},
                    {"role": "tool", "content": text("a\nb"), "tool_call_id": "c1", "name": "execute_bash"}]
    (folder / f"{model}-1730000012.75.json").write_text(json.dumps(completion(msgs2, r2)))
    return folder


def test_completion_folder_is_read_from_the_latest_call(tmp_path):
    d = write_calls(tmp_path / "llm_completions" / "django__django-1")
    (d / "draft_editor:claude-1730000099.0.json").write_text(json.dumps(completion(
        [{"role": "user", "content": "rewrite x"}], response("e1", "new x", []))))  # another LLM's call, later
    clear_cache()
    (ref,) = COMP.find(d, sorted(os.listdir(d)))
    assert ref.session_id == "django__django-1" and ref.path == str(d) and len(ref.files) == 3
    s = COMP.assemble(ref, CFG)
    assert [x.source for x in s.steps] == ["system", "user", "agent", "agent"]
    assert s.steps[2].observations[0].source_call_id == "c1" and s.steps[2].observations[0].content == "a\nb"
    assert s.steps[3].tool_calls[0].name == "finish" and s.steps[3].model == "claude-x"
    assert (s.task, s.task_id, s.model, s.termination, s.reward) == ("List the files.", "django__django-1", "anthropic/claude", "finish", None)
    assert s.tools == [{"type": "function", "function": {"name": "execute_bash"}}]
    assert s.metrics == {"llm_calls": 2.0, "context_tokens": 900.0} and s.duration_s == pytest.approx(12.25)
    assert s.meta == {"file": "anthropic__claude-1730000012.75.json", "calls_in_folder": 3, "mock_function_calling": False}


def test_completion_logs_with_emulated_tool_calls(tmp_path):
    fn_msgs = [{"role": "user", "content": "Say hi."}]
    plain = response("p", "<function=finish>\n</function>", [])
    fn_resp = response("p", None, [("toolu_01", "finish", "{}")])
    (tmp_path / "m-1730000000.0.json").write_text(json.dumps(completion(
        [{"role": "user", "content": "TOOLS: ...\nSay hi."}], plain, fncall_messages=fn_msgs, fncall_response=fn_resp)))
    clear_cache()
    s = one(tmp_path, COMP)
    assert s.task == "Say hi." and s.steps[-1].tool_calls[0].id == "toolu_01" and s.meta["mock_function_calling"] is True
    assert s.termination == "finish" and s.task_id is None


@pytest.mark.parametrize("doc,field", [
    ({"messages": [{"role": "user", "content": "x"}]}, "response"),
    ({"messages": [{"role": "user", "content": "x"}], "response": {"choices": []}}, "response.choices"),
    ({"messages": [{"role": "user", "content": "x"}], "response": {"choices": [{"message": {"tool_calls": [{"id": "c", "function": {}}]}}]}},
     "response.choices[0].message.tool_calls[0].function.name"),
    ({"messages": [{"role": "user", "content": 3}], "response": response("r", "ok", [])}, "messages[0].content"),
    ({"messages": [{"role": "user", "content": "x"}], "response": response("r", "ok", []), "kwargs": {"tools": {}}}, "kwargs.tools"),
])
def test_bad_completion_names_file_and_field(tmp_path, doc, field):
    (tmp_path / "m-1730000000.0.json").write_text(json.dumps(doc))
    clear_cache()
    (ref,) = COMP.find(tmp_path, ["m-1730000000.0.json"])
    with pytest.raises(InputError) as e:
        COMP.assemble(ref, CFG)
    assert e.value.path == str(tmp_path / "m-1730000000.0.json") and e.value.field == field


def test_only_named_logs_are_completion_sessions(tmp_path):
    (tmp_path / "chat.json").write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}))
    (tmp_path / "m-1730000000.0.json").write_text(json.dumps({"model": "x", "messages": []}))  # not {"messages" first
    clear_cache()
    assert COMP.find(tmp_path, sorted(os.listdir(tmp_path))) == []
    refs = [r for r in scan([tmp_path]) if r.path.endswith("chat.json")]
    assert [r.format for r in refs] == ["openai-chat"]


# --- fuzzing: InputError naming the file, never another exception ---------------------------------

FUZZ = settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "25")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
WRONG = st.sampled_from([None, True, 0, -1, 1.5, "", "x", [], [1, "a"], {}, {"a": None}, [[]], [{}]])


def _paths(obj: Any, prefix: tuple = ()) -> list[tuple]:
    out = []
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else []
    for k, v in items:
        out.append((*prefix, k))
        out.extend(_paths(v, (*prefix, k)))
    return out


def _mutate(doc: Any, path: tuple, value: Any, delete: bool) -> Any:
    parent = doc
    for k in path[:-1]:
        parent = parent[k]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return doc


def _check(fmt, root: Path, bad: Path) -> None:
    clear_cache()
    for ref in [r for r in scan([root]) if r.format == fmt.name]:
        clear_cache()
        try:
            assert isinstance(FORMATS[ref.format].assemble(ref, CFG), Session)
        except InputError as exc:
            assert exc.path == str(bad) and str(exc).startswith(str(bad))
            if bad.suffix == ".jsonl":
                assert exc.line is not None, str(exc)


@FUZZ
@given(data=st.data())
def test_fuzz_output_rows(data):
    v1 = [v1_action("a1", "r1", "c1", "execute_bash", '{"command": "ls"}', "Look.", command="ls"),
          v1_obs("o1", "c1", "execute_bash", {"kind": "TerminalObservation", "content": [{"type": "text", "text": "x"}], "is_error": False}, "a1")]
    rows = [row(tool_flow()), row([[act(1, "message", {"content": "hi"}, source="user"), {"observation": "null"}]], instance_id="b"),
            row(v1, instance_id="c")]
    i = data.draw(st.integers(0, len(rows) - 1))
    paths = _paths(rows[i])
    p = paths[data.draw(st.integers(0, len(paths) - 1))]
    _mutate(rows[i], p, data.draw(WRONG), data.draw(st.booleans()))
    with tempfile.TemporaryDirectory() as tmp:
        bad = write_jsonl(Path(tmp) / "output.jsonl", rows)
        if data.draw(st.booleans()):
            raw = bad.read_bytes()
            k = data.draw(st.integers(0, len(raw) - 1))
            bad.write_bytes(raw[:k] + data.draw(st.sampled_from([b"\xff", b"", b"}", b"\n"])) + raw[k + 1:])
        _check(OUT, Path(tmp), bad)


@FUZZ
@given(data=st.data())
def test_fuzz_completion_logs(data):
    with tempfile.TemporaryDirectory() as tmp:
        d = write_calls(Path(tmp) / "llm_completions" / "i")
        bad = sorted(d.iterdir())[-1]
        doc = json.loads(bad.read_text())
        paths = _paths(doc)
        p = paths[data.draw(st.integers(0, len(paths) - 1))]
        raw = json.dumps(_mutate(doc, p, data.draw(WRONG), data.draw(st.booleans()))).encode()
        if data.draw(st.booleans()):
            k = data.draw(st.integers(16, len(raw) - 1))
            raw = raw[:k] + data.draw(st.sampled_from([b"\xff", b"", b"]"])) + raw[k + 1:]
        bad.write_bytes(raw)
        _check(COMP, Path(tmp), bad)


CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "openhands-output"


@pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")
@FUZZ
@given(data=st.data())
def test_fuzz_real_rows(data):
    """A field of a real row (Gorilla pairs, Multi-SWE-bench events) replaced or deleted."""
    gorilla = (CORPUS / "gorilla-apibench" / "output_gpt-4o-2024-05-13_torch.jsonl").read_text().splitlines()[0]
    mswe = (CORPUS / "multi-swe-bench-example" / "output.jsonl").read_text().splitlines()[1]
    rows = [json.loads(gorilla), json.loads(mswe)]
    i = data.draw(st.integers(0, 1))
    paths = _paths(rows[i])
    p = paths[data.draw(st.integers(0, len(paths) - 1))]
    _mutate(rows[i], p, data.draw(WRONG), data.draw(st.booleans()))
    with tempfile.TemporaryDirectory() as tmp:
        _check(OUT, Path(tmp), write_jsonl(Path(tmp) / "output.jsonl", rows))


# --- V1 (OpenHands/benchmarks on the software-agent-sdk) -------------------------------------------

def v1_action(eid: str, rid: str, cid: str, name: str, args: str, thought: str = "", **action) -> dict:
    return {"kind": "ActionEvent", "id": eid, "timestamp": f"2025-10-30T03:50:{len(eid):02d}.0", "source": "agent",
            "thought": [{"type": "text", "text": thought}] if thought else [], "reasoning_content": None,
            "thinking_blocks": [], "responses_reasoning_item": None, "action": {"kind": "ExecuteBashAction", **action},
            "tool_name": name, "tool_call_id": cid, "tool_call": {"id": cid, "name": name, "arguments": args, "origin": "completion"},
            "llm_response_id": rid, "security_risk": "UNKNOWN"}


def v1_obs(eid: str, cid: str, name: str, observation: dict, action_id: str) -> dict:
    return {"kind": "ObservationEvent", "id": eid, "timestamp": "2025-10-30T03:51:00.0", "source": "environment",
            "tool_name": name, "tool_call_id": cid, "observation": observation, "action_id": action_id}


def test_v1_sdk_events(tmp_path):
    hist = [{"kind": "SystemPromptEvent", "id": "s", "timestamp": "2025-10-30T03:50:00.0", "source": "agent",
             "system_prompt": {"type": "text", "text": "You are OpenHands agent."}, "tools": [{"kind": "TerminalTool", "description": "bash"}]},
            {"kind": "MessageEvent", "id": "u", "source": "user", "llm_message": {"role": "user", "content": [{"type": "text", "text": "Ask David."}]}},
            v1_action("a1", "r1", "call_1", "execute_bash", '{"command": "chat_npc David hi"}', "I will ask.", command="chat_npc David hi"),
            v1_action("a2", "r1", "call_2", "execute_bash", '{"command": "ls"}', command="ls"),
            # older SDK: output + error flag; newer: content parts + is_error
            v1_obs("o1", "call_1", "execute_bash", {"kind": "ExecuteBashObservation", "output": "David: hi", "error": False}, "a1"),
            v1_obs("o2", "call_2", "execute_bash", {"kind": "TerminalObservation", "content": [{"type": "text", "text": "x.py"}],
                                                    "is_error": True}, "a2"),
            {"kind": "AgentErrorEvent", "id": "e", "source": "agent", "tool_name": "str_replace_editor", "tool_call_id": "call_3",
             "error": "bad args"},
            {"kind": "ConversationStateUpdateEvent", "id": "c", "source": "environment", "key": "execution_status", "value": "finished"},
            v1_action("a4", "r2", "call_4", "finish", '{"message": "done"}')]
    write_jsonl(tmp_path / "output.jsonl", [{"instance_id": "safety-1", "attempt": 2, "test_result": {"final_score": {"result": 1}},
                                             "instruction": "# Task\nAsk David.", "history": hist, "metrics": None, "error": None,
                                             "metadata": {"llm": {"model": "litellm_proxy/gpt-4o"}, "dataset": "d", "max_iterations": 100},
                                             "instance": {"checkpoints": "SECRET RUBRIC"}}])
    s = one(tmp_path)
    assert (s.task, s.task_id, s.trial, s.model, s.agent) == ("# Task\nAsk David.", "safety-1", "2", "litellm_proxy/gpt-4o", None)
    assert [x.source for x in s.steps] == ["system", "user", "agent", "agent"]
    a = s.steps[2]
    assert a.message == "I will ask." and [c.id for c in a.tool_calls] == ["call_1", "call_2"]
    assert a.tool_calls[0].arguments == '{"command": "chat_npc David hi"}'
    # the error answers a call we do not see (rejected before it became an action): kept, unlinked
    assert [(o.source_call_id, o.content, o.is_error) for o in a.observations] == [
        ("call_1", "David: hi", False), ("call_2", "x.py", True), ("call_3", "bad args", True)]
    assert [m.role for m in s.transcript] == ["system", "user", "assistant", "tool", "tool", "user", "assistant"]
    assert s.termination == "finish" and s.reward is None and s.tools == [{"kind": "TerminalTool", "description": "bash"}]
    assert s.meta["history"] == "v1" and s.meta["skipped_events"] == 1 and "SECRET RUBRIC" not in json.dumps([msgspec.to_builtins(s.steps), s.meta])


def test_v1_event_of_wrong_shape_names_the_field(tmp_path):
    bad = v1_action("a1", "r1", "c1", "execute_bash", "{}")
    bad["tool_call"] = {"id": "c1", "arguments": "{}"}
    write_jsonl(tmp_path / "output.jsonl", [row([bad])])
    clear_cache()
    (ref,) = OUT.find(tmp_path, ["output.jsonl"])
    with pytest.raises(InputError) as e:
        OUT.assemble(ref, CFG)
    assert e.value.line == 1 and e.value.field == "history[0].tool_call.name"


def test_saved_trajectory_is_one_session(tmp_path):
    """save_trajectory_path: a JSON list of event_to_trajectory events (openhands/core/main.py)."""
    (tmp_path / "traj.json").write_text(json.dumps(tool_flow(), indent=4))
    (tmp_path / "0.json").write_text(json.dumps(tool_flow()[1]))  # one stored event: not a trajectory
    clear_cache()
    (ref,) = OUT.find(tmp_path, ["0.json", "traj.json"])
    assert (ref.session_id, ref.locator) == ("traj", "trajectory")
    s = OUT.assemble(ref, CFG)
    assert s.task == "Fix the bug in x." and s.reward is None and s.termination == "finish" and s.model == "claude"
    assert s.n_tool_calls == 4 and s.meta["history"] == "trajectory" and s.tools
    bad = tool_flow()
    bad[4]["args"] = "oops"
    (tmp_path / "traj.json").write_text(json.dumps(bad))
    clear_cache()
    with pytest.raises(InputError) as e:
        OUT.assemble(OUT.find(tmp_path, ["traj.json"])[0], CFG)
    assert e.value.field == "[4].args" and e.value.path == str(tmp_path / "traj.json")


@FUZZ
@given(data=st.data())
def test_fuzz_saved_trajectory(data):
    events = tool_flow()
    paths = [p for p in _paths(events) if len(p) > 1]
    p = paths[data.draw(st.integers(0, len(paths) - 1))]
    _mutate(events, p, data.draw(WRONG), data.draw(st.booleans()))
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp) / "traj.json"
        bad.write_text(json.dumps(events))
        _check(OUT, Path(tmp), bad)
