"""The codex-cli format: the rollouts of the shared corpus, handmade files for the variants
the corpus lacks (the older JSONL and TypeScript formats, local_shell, rollback, compaction,
aborted turns), malformed input, and the corpus folder through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats.codex_cli import CodexCLI
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CX = CORPUS / "codex-cli"
REAL = "rollout-2026-05-11T11-26-55-019e1625-789d-76c0-80ab-3724b5ddb799"
needs_corpus = pytest.mark.skipif(not CX.is_dir(), reason=f"shared corpus not found at {CX}")

CFG = load_config(env={})
FMT = CodexCLI()


def sessions(root: Path) -> dict[str, Session]:
    return {r.session_id: FORMATS[r.format].assemble(r, CFG) for r in scan([root]) if r.format == "codex-cli"}


def line(kind: str, payload: dict, ts: str = "2026-05-12T10:00:00.000Z") -> dict:
    return {"timestamp": ts, "type": kind, "payload": payload}


def item(**payload) -> dict:
    return line("response_item", payload)


def event(**payload) -> dict:
    return line("event_msg", payload)


def msg(role: str, text: str) -> dict:
    return item(type="message", role=role, content=[{"type": "output_text" if role == "assistant" else "input_text",
                                                      "text": text}])


META = line("session_meta", {"id": "sess-1", "timestamp": "2026-05-12T10:00:00Z", "cwd": "/r", "originator": "codex_exec",
                             "cli_version": "0.130.0", "source": "exec", "base_instructions": {"text": "You are Codex."}})
CONTEXT = line("turn_context", {"turn_id": "t1", "cwd": "/r", "model": "gpt-5.4", "approval_policy": "never",
                                "sandbox_policy": {"type": "read-only"}})


def write(path: Path, lines: list) -> Path:
    path.write_text("".join(json.dumps(x) + "\n" for x in lines), encoding="utf-8")
    return path


# --- the real corpus ---------------------------------------------------------------------------


@needs_corpus
def test_corpus_finds_the_three_rollouts():
    report = ScanReport()
    refs = [r for r in scan([CX], report=report)]
    assert sorted((r.session_id, r.format) for r in refs) == [
        (REAL, "codex-cli"), ("turn-1", "codex-cli"), ("turn-spawn-skill", "codex-cli")]
    assert [Path(p).name for p, _ in report.examples] == ["PROVENANCE.md"]


@needs_corpus
def test_real_tui_session():
    s = sessions(CX)[REAL]
    assert s.task == "show tools"
    assert (s.agent, s.model, s.termination, s.reward) == ("codex-cli", "gpt-5.5", "stop", None)
    names = Counter(c.name for st in s.steps for c in st.tool_calls)
    assert names == {"write_stdin": 54, "exec_command": 43, "apply_patch": 3, "web_search": 3, "update_plan": 2}
    # the developer message and the AGENTS.md + environment_context message are context, not the task
    assert [st.source for st in s.steps[:3]] == ["system", "system", "user"]
    assert s.steps[0].message.startswith("<permissions instructions>")
    assert "# AGENTS.md instructions for" in s.steps[1].message and "<environment_context>" in s.steps[1].message
    users = [st.message for st in s.steps if st.source == "user"]
    assert users == ["show tools", "let's update the defailt context compart to 90 in env var"]
    assert s.metrics["turns"] == 2 and s.metrics["tool_calls"] == 105
    assert (s.metrics["input_tokens"], s.metrics["cache_read_tokens"], s.metrics["output_tokens"]) == (6055836, 4929536, 9118)
    assert s.meta["session_id"] == "019e1625-789d-76c0-80ab-3724b5ddb799" and s.meta["cli_version"] == "0.125.0"
    assert s.meta["originator"] == "codex-tui" and s.meta["base_instructions_chars"] > 20000
    assert all(st.model == "gpt-5.5" for st in s.steps if st.source == "agent")
    # every function/custom call has its output; patches applied without error
    for step in s.steps:
        ids = {o.source_call_id for o in step.observations}
        assert all(c.id in ids for c in step.tool_calls if c.name != "web_search")
    patches = [o for step in s.steps for c, o in zip(step.tool_calls, step.observations) if c.name == "apply_patch"]
    assert [o.is_error for o in patches] == [False, False, False]
    searches = [c for st in s.steps for c in st.tool_calls if c.name == "web_search"]
    assert all(c.id.startswith("ws_") and c.arguments["type"] == "search" for c in searches)
    first = next(st for st in s.steps if st.source == "agent")
    assert first.metrics == {"prompt_tokens": 18703, "completion_tokens": 167, "cached_tokens": 0, "reasoning_tokens": 62}
    assert s.steps[-1].message.startswith("Implemented the default context compaction setting")
    assert s.duration_s == pytest.approx(1061.054)


@needs_corpus
def test_exec_fixture_and_spawn_fixture():
    found = sessions(CX)
    t1 = found["turn-1"]
    assert t1.task == "Hello, Codex! Please explain what you do."
    assert (t1.model, t1.termination) == ("o4-mini", "stop")
    # the agent_message event duplicates the response item: one agent step
    assert [st.source for st in t1.steps] == ["system", "system", "user", "agent"]
    assert t1.steps[-1].message == "I am Codex, an AI coding assistant by OpenAI."
    assert t1.metrics["total_tokens"] == 1036 and t1.meta["source"] == "exec"
    sp = found["turn-spawn-skill"]
    assert sp.task == "run a review"  # only an event_msg user_message holds it
    assert [c.name for st in sp.steps for c in st.tool_calls] == ["exec_command", "spawn_agent", "wait_agent"]
    spawn = next(st for st in sp.steps if st.tool_calls and st.tool_calls[0].name == "spawn_agent")
    out = json.loads(spawn.observations[0].content)  # from collab_agent_spawn_end: no output item
    assert out["new_thread_id"] == "child-thread-uuid" and spawn.observations[0].source_call_id == "call_spawn1"
    assert sp.model == "gpt-5.4" and sp.termination == "stop"


# --- handmade variants -------------------------------------------------------------------------


def test_legacy_jsonl_and_typescript_json(tmp_path):
    write(tmp_path / "rollout-2025-05-07T17-24-21-5973b6c0.jsonl", [
        {"id": "5973b6c0", "timestamp": "2025-05-07T17:24:21.000Z", "instructions": "Use pnpm."},
        {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "run the tests"}]},
        {"type": "local_shell_call", "call_id": "c1", "status": "completed",
         "action": {"type": "exec", "command": ["pnpm", "test"], "timeout_ms": 10000}},
        {"record_type": "state", "previous_response_id": "resp_1"},
        {"type": "function_call_output", "call_id": "c1",
         "output": json.dumps({"output": "1 failed", "metadata": {"exit_code": 1, "duration_seconds": 2.0}})},
        {"type": "message", "role": "assistant", "content": [{"type": "output_text", "text": "One test fails."}]},
    ])
    (tmp_path / "rollout-2025-04-01-abcd.json").write_text(json.dumps({
        "session": {"timestamp": "2025-04-01T10:00:00Z", "id": "abcd", "instructions": ""},
        "items": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]},
                  {"type": "reasoning", "summary": [{"type": "summary_text", "text": "greet"}]},
                  {"type": "function_call", "id": "fc_1", "call_id": "call_1", "name": "shell",
                   "arguments": "{\"command\":[\"echo\",\"hi\"]}"},
                  {"type": "function_call_output", "call_id": "call_1", "output": "hi"}]}), encoding="utf-8")
    found = sessions(tmp_path)
    old = found["rollout-2025-05-07T17-24-21-5973b6c0"]
    assert [st.source for st in old.steps] == ["system", "user", "agent", "agent"]  # instructions, prompt, call, answer
    call = old.steps[2].tool_calls[0]
    assert (call.name, call.arguments["command"]) == ("local_shell", ["pnpm", "test"])
    assert old.steps[2].observations[0].is_error is True  # metadata.exit_code 1
    assert (old.task, old.model, old.termination) == ("run the tests", None, "stop")
    ts = found["rollout-2025-04-01-abcd"]
    assert ts.steps[1].reasoning == "greet" and ts.steps[1].observations[0].source_call_id == "call_1"
    assert ts.termination == "tool_call" and ts.meta["session_id"] == "abcd"


def test_rollback_compaction_abort_and_event_gaps(tmp_path):
    write(tmp_path / "r.jsonl", [
        META, CONTEXT,
        msg("user", "<environment_context>\n  <cwd>/r</cwd>\n</environment_context>"),
        event(type="user_message", message="<environment_context>x</environment_context>", kind="environment_context"),
        event(type="task_started", turn_id="t1"),
        msg("user", "rename foo to bar"),
        event(type="user_message", message="rename foo to bar"),
        item(type="function_call", name="exec_command", arguments='{"cmd":"rg foo"}', call_id="c1"),
        event(type="token_count", info={"total_token_usage": {"input_tokens": 100, "output_tokens": 10, "total_tokens": 110},
                                        "last_token_usage": {"input_tokens": 100, "output_tokens": 10}}),
        event(type="exec_command_end", call_id="c1", exit_code=2, aggregated_output="rg: error"),
        item(type="function_call_output", call_id="c1", output="Chunk ID: 1\nOutput:\nrg: error"),
        event(type="task_complete", turn_id="t1"),
        event(type="task_started", turn_id="t2"),
        msg("user", "actually undo that"),
        msg("assistant", "Undoing."),
        event(type="thread_rolled_back", num_turns=1),
        line("compacted", {"message": "Summary: renamed foo.", "replacement_history": []}),
        event(type="task_started", turn_id="t3"),
        msg("user", "now add tests"),
        item(type="function_call", name="mcp_call_tool", namespace="github", arguments="{}", call_id="c2"),
        event(type="mcp_tool_call_end", call_id="c2", result={"Err": "timeout"}),
        event(type="turn_aborted", turn_id="t3", reason="interrupted"),
    ])
    s = sessions(tmp_path)["r"]
    assert s.task == "rename foo to bar"
    assert [st.source for st in s.steps] == ["system", "user", "agent", "system", "user", "agent"]
    assert "actually undo that" not in [st.message for st in s.steps]  # rolled back
    assert s.steps[2].observations[0].is_error is True  # exec_command_end exit 2
    assert s.steps[2].metrics == {"prompt_tokens": 100, "completion_tokens": 10}
    assert s.steps[3].message == "[context compacted]\nSummary: renamed foo."
    mcp = s.steps[5]
    assert mcp.tool_calls[0].name == "github__mcp_call_tool"
    assert (mcp.observations[0].content, mcp.observations[0].is_error) == ('{"Err": "timeout"}', True)
    assert s.termination == "interrupted" and s.metrics["rolled_back_turns"] == 1 and s.metrics["compactions"] == 1
    assert s.metrics["turns"] == 2 and s.metrics["input_tokens"] == 100 and s.model == "gpt-5.4"


def test_subagent_rollout_and_unfinished_turn(tmp_path):
    meta = json.loads(json.dumps(META))
    meta["payload"]["source"] = {"subagent": {"thread_spawn": {"parent_thread_id": "parent-1", "depth": 1}}}
    meta["payload"]["agent_role"] = "explorer"
    write(tmp_path / "child.jsonl", [meta, CONTEXT, event(type="task_started", turn_id="t1"), msg("user", "review code"),
                                     item(type="reasoning", summary=[], encrypted_content="gAAA")])
    s = sessions(tmp_path)["child"]
    assert s.meta["parent_thread_id"] == "parent-1" and s.meta["agent_role"] == "explorer"
    assert s.termination == "incomplete" and s.steps[-1].reasoning is None


def test_other_jsonl_is_not_claimed_but_a_named_rollout_is(tmp_path):
    write(tmp_path / "rows.jsonl", [{"id": "x", "timestamp": "t"}, {"a": 1}])
    write(tmp_path / "cc.jsonl", [{"type": "user", "sessionId": "s", "uuid": "u", "message": {"role": "user", "content": "x"}}])
    (tmp_path / "rollout-broken.jsonl").write_text("not json\n", encoding="utf-8")
    refs = FMT.find(tmp_path, ["rows.jsonl", "cc.jsonl", "rollout-broken.jsonl"])
    assert [r.session_id for r in refs] == ["rollout-broken"]
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs[0], CFG)
    assert exc.value.line == 1 and "invalid JSON" in exc.value.message


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize("lines,at,field,text", [
    ([META, {"timestamp": "t", "type": "response_item", "payload": "oops"}], 2, "payload", "expected an object"),
    ([META, msg("user", "hi"), item(type="function_call", arguments="{}", call_id="c")], 3, "payload.name", "missing tool name"),
    ([META, item(type="message", role="user", content=5)], 2, "payload.content", "expected a string"),
    ([META, {"timestamp": "t", "type": 7, "payload": {}}], 2, "type", "expected a string"),
    ([META, CONTEXT, msg("user", "<environment_context>x</environment_context>")], 1, None, "no user message"),
    ([META, [1]], 2, None, "expected a JSON object"),
])
def test_errors_name_line_and_field(tmp_path, lines, at, field, text):
    path = write(tmp_path / "r.jsonl", lines)
    ref = FMT.find(tmp_path, ["r.jsonl"])[0]
    with pytest.raises(InputError) as exc:
        FMT.assemble(ref, CFG)
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(path), at, field)
    assert text in exc.value.message


@needs_corpus
@settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "12")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=hst.data())
def test_fuzz_mutated_rollouts_fail_only_with_input_error(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("cx")
    name = data.draw(hst.sampled_from(["turn-1.jsonl", "turn-spawn-skill.jsonl", f"{REAL}.jsonl"]))
    target = root / name
    shutil.copyfile(CX / name, target)
    raw = target.read_bytes()
    lines = raw.split(b"\n")
    how = data.draw(hst.sampled_from(["truncate", "flip", "line", "field", "payload"]))
    if how == "truncate":
        raw = raw[: data.draw(hst.integers(0, len(raw) - 1))]
    elif how == "flip":
        i = data.draw(hst.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ data.draw(hst.integers(1, 255))]) + raw[i + 1:]
    elif how == "line":
        lines[data.draw(hst.integers(0, len(lines) - 1))] = data.draw(hst.sampled_from([b"[]", b"7", b"{}", b"null"]))
        raw = b"\n".join(lines)
    else:
        i = data.draw(hst.sampled_from([k for k, ln in enumerate(lines) if ln.strip()]))
        doc = json.loads(lines[i])
        obj = doc["payload"] if how == "payload" and isinstance(doc.get("payload"), dict) and doc["payload"] else doc
        key = data.draw(hst.sampled_from(sorted(obj)))
        obj[key] = data.draw(hst.sampled_from([None, 1, "x", [], {}, [1, {"type": "input_text"}], {"type": []}]))
        lines[i] = json.dumps(doc).encode()
        raw = b"\n".join(lines)
    target.write_bytes(raw)
    for ref in scan([root]):  # never raises
        try:
            FORMATS[ref.format].assemble(ref, CFG)
        except InputError as exc:
            assert str(exc).startswith(exc.path) and exc.path == str(target)
            if "file is empty" not in exc.message:
                assert exc.line is not None, str(exc)


# --- the whole folder through the CLI ----------------------------------------------------------


@needs_corpus
def test_cli_grades_the_corpus_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY") and not k.startswith("STREAMGRADE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(CX), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    recs = {r["session_id"]: r for r in map(json.loads, (out / "exports" / "scores.jsonl").read_text().splitlines())}
    assert sorted(recs) == sorted([REAL, "turn-1", "turn-spawn-skill"])
    assert {(r["status"], r["source_format"]) for r in recs.values()} == {("graded", "codex-cli")}
    assert (recs[REAL]["model"], recs[REAL]["tool_calls"], recs[REAL]["termination"]) == ("gpt-5.5", 105, "stop")
    assert "1 file not recognised" in proc.stderr and "PROVENANCE.md" in proc.stderr
