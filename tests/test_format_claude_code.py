"""The claude-code format: the real transcripts of the shared corpus, handmade files for the
variants the corpus lacks (forks, compaction, sidechains, commands), malformed input, and the
corpus folder through the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as hst

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats.claude_code import ClaudeCode
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CC = CORPUS / "claude-code"
SUBAGENTS = CC / "spotter" / "ae4a77f8-aedd-4bc1-888f-c94edc91af04" / "subagents"
needs_corpus = pytest.mark.skipif(not CC.is_dir(), reason=f"shared corpus not found at {CC}")

CFG = load_config(env={})
FMT = ClaudeCode()


def sessions(root: Path) -> dict[str, Session]:
    return {r.session_id: FORMATS[r.format].assemble(r, CFG) for r in scan([root]) if r.format == "claude-code"}


def rec(kind: str, uuid: str | None, parent: str | None, content=None, **extra) -> dict:
    """A transcript line: a user/assistant message (``content``) or another type."""
    out = {"parentUuid": parent, "isSidechain": False, "userType": "external", "cwd": "/p", "sessionId": "S",
           "version": "2.1.40", "gitBranch": "main", "type": kind, "uuid": uuid, "timestamp": f"2026-02-01T10:00:{len(str(uuid)) % 60:02d}Z"}
    if kind in ("user", "assistant"):
        out["message"] = {"role": kind, "content": content}
        if kind == "assistant":
            out["message"].update(model="claude-opus-4-6", id=extra.pop("mid", f"msg_{uuid}"), type="message",
                                  stop_reason=extra.pop("stop", None), usage={"input_tokens": 10, "output_tokens": 5})
    out.update(extra)
    return out


def text(t: str) -> list[dict]:
    return [{"type": "text", "text": t}]


def use(tid: str, name: str = "Bash", **inp) -> list[dict]:
    return [{"type": "tool_use", "id": tid, "name": name, "input": inp or {"command": "ls"}}]


def result(tid: str, out: str = "ok", err: bool | None = None) -> list[dict]:
    r = {"type": "tool_result", "tool_use_id": tid, "content": out}
    if err is not None:
        r["is_error"] = err
    return [r]


def write(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


# --- the real corpus ---------------------------------------------------------------------------


@needs_corpus
def test_corpus_sessions_and_no_subagent_session():
    report = ScanReport()
    refs = [r for r in scan([CC], report=report) if r.format == "claude-code"]
    assert sorted(r.session_id for r in refs) == ["sample_session", "short", "tool_heavy"]
    # the subagent files (their parent session is not in the corpus) are owned, not sessions nor unrecognised
    assert [Path(p).name for p, _ in report.examples] == ["PROVENANCE.md", "README.md"]
    assert report.unrecognised == 2


@needs_corpus
def test_short_session():
    s = sessions(CC / "spotter")["short"]
    assert s.task == "mix phx.server doesnt seem to start"
    assert (s.agent, s.model, s.termination, s.reward) == ("claude-code", "claude-opus-4-6", "interrupted", None)
    agent = [st for st in s.steps if st.source == "agent"]
    assert len(agent) == 1  # one API response written as 5 lines (text, thinking, text, tool_use, tool_use)
    assert [c.name for c in agent[0].tool_calls] == ["Bash", "Glob"]
    assert agent[0].reasoning and agent[0].reasoning.startswith("The user is having trouble")
    assert [(o.source_call_id, o.is_error) for o in agent[0].observations] == [
        ("toolu_0116Hyi5v8ut7Ffb7d8qV1Sc", True), ("toolu_01FdQ8qTyVyZjE3Kw4dguQGx", True)]
    assert [st.message for st in s.steps if st.source == "user"] == [
        "mix phx.server doesnt seem to start", "[Request interrupted by user for tool use]"]
    # the /model command (system local_command lines), ANSI codes removed
    assert [st.message for st in s.steps if st.source == "system"] == ["/model", "Kept model as Default (recommended)"]
    assert s.metrics["tool_errors"] == 2 and s.metrics["turns"] == 1 and s.metrics["cache_read_tokens"] == 11515
    assert s.meta["session_id"] == "55604662-cf2a-4331-851a-ec234028f8ca" and s.meta["version"] == "2.1.38"
    assert s.duration_s == pytest.approx(259.943)  # to the /model command
    assert [m.role for m in s.transcript] == ["user", "assistant", "tool", "tool", "user", "system", "system"]


@needs_corpus
def test_tool_heavy_session():
    s = sessions(CC / "spotter")["tool_heavy"]
    assert s.task == "start phoenix in background"
    names = [c.name for st in s.steps for c in st.tool_calls]
    assert sorted(names) == ["Bash", "Bash", "Glob", "Read", "WebFetch", "WebSearch"]
    assert s.n_tool_calls == 6 and all(len(st.observations) == len(st.tool_calls) for st in s.steps)
    system = [st.message for st in s.steps if st.source == "system"]
    assert system == ["/mcp", "Reconnected to tidewave.", "/mcp", "MCP dialog dismissed"]  # caveat dropped
    assert not any("local-command-caveat" in (st.message or "") for st in s.steps)
    users = [st.message for st in s.steps if st.source == "user"]
    assert users[2].startswith("scrolling back in xterm.js") and s.metrics["turns"] == 2
    assert s.termination == "interrupted" and s.meta["slug"] == "dazzling-imagining-barto"


@needs_corpus
def test_synthetic_sample_without_parent_links():
    s = sessions(CC / "claude-code-transcripts")["sample_session"]
    assert s.task == "Create a hello world function"
    assert [c.name for st in s.steps for c in st.tool_calls] == ["Write", "Bash"]
    assert s.steps[1].observations[0].content == "File written successfully"
    assert (s.model, s.termination, s.turns) == (None, "stop", 3)
    assert "title" not in s.meta  # its summary's leafUuid names no line of the file
    assert "input_tokens" not in s.metrics  # no usage recorded


@needs_corpus
def test_subagent_files_fold_into_their_parent(tmp_path):
    sid = "ae4a77f8-aedd-4bc1-888f-c94edc91af04"
    shutil.copytree(SUBAGENTS, tmp_path / sid / "subagents")
    write(tmp_path / f"{sid}.jsonl", [
        rec("user", "u1", None, "look up the hex packages"),
        rec("assistant", "a1", "u1", use("toolu_task", "Task", subagent_type="general-purpose", prompt="Search hex.pm")),
        {**rec("progress", "p1", "a1"), "data": {"type": "agent_progress", "agentId": "acompact-946d2b"},
         "parentToolUseID": "toolu_other"},
        rec("user", "r1", "a1", result("toolu_task", "phoenix 1.8.3"), toolUseResult={"agentId": "aac57f5", "status": "completed"}),
        rec("assistant", "a2", "r1", text("Done."), stop="end_turn"),
    ])
    report = ScanReport()
    refs = [r for r in scan([tmp_path], report=report)]
    assert [r.session_id for r in refs] == [sid] and report.unrecognised == 0
    assert sorted(Path(f).name for f in refs[0].files[1:]) == ["agent-aac57f5.jsonl", "agent-acompact-946d2b.jsonl"]
    s = FMT.assemble(refs[0], CFG)
    assert s.n_tool_calls == 1 and s.termination == "stop"  # the subagents' 12 calls are not the parent's steps
    subs = {x["agent_id"]: x for x in s.meta["subagents"]}
    assert subs["aac57f5"]["call_id"] == "toolu_task"
    assert subs["aac57f5"]["tools"] == {"WebSearch": 6, "WebFetch": 6} and subs["aac57f5"]["tool_calls"] == 12
    assert subs["aac57f5"]["model"] == "claude-sonnet-4-5-20250929"
    assert subs["aac57f5"]["task"].startswith("Search hex.pm for the latest versions")
    assert subs["acompact-946d2b"]["call_id"] == "toolu_other" and subs["acompact-946d2b"]["steps"] == 2
    assert s.metrics["subagents"] == 2 and s.metrics["subagent_tool_calls"] == 12
    assert s.metrics["subagent_cache_read_tokens"] > 0


# --- handmade variants -------------------------------------------------------------------------


def test_retry_and_edited_prompt_take_the_last_branch(tmp_path):
    write(tmp_path / "s.jsonl", [
        rec("user", "u1", None, "first version of the prompt"),
        rec("assistant", "a1", "u1", text("answer to the first version")),
        rec("user", "u1b", None, "edited prompt"),  # an edit: a new branch from the same parent
        rec("assistant", "a2", "u1b", text("a response that was retried")),
        rec("assistant", "a2b", "u1b", text("the retried response")),
        rec("user", "u2", "a2b", "thanks, now exit"),
        rec("assistant", "a3", "u2", text("bye"), stop="end_turn"),
    ])
    s = sessions(tmp_path)["s"]
    assert [st.message for st in s.steps] == ["edited prompt", "the retried response", "thanks, now exit", "bye"]
    assert s.task == "edited prompt" and s.meta["abandoned"] == 3


def test_split_response_and_parallel_results_stay_one_step(tmp_path):
    write(tmp_path / "s.jsonl", [
        rec("user", "u1", None, "list and read"),
        rec("assistant", "a1", "u1", [{"type": "thinking", "thinking": "two calls", "signature": "x"}], mid="m1"),
        rec("assistant", "a2", "a1", use("t1"), mid="m1"),
        rec("assistant", "a3", "a2", use("t2", "Read", file_path="/p/x"), mid="m1", stop="tool_use"),
        rec("user", "r2", "a3", result("t2", "content")),
        rec("user", "r1", "a2", result("t1", "boom", err=True)),  # on a branch off the chain
        rec("assistant", "a4", "r2", text("read it"), stop="end_turn"),
    ])
    s = sessions(tmp_path)["s"]
    step = s.steps[1]
    assert [c.id for c in step.tool_calls] == ["t1", "t2"] and step.reasoning == "two calls"
    assert {o.source_call_id: o.is_error for o in step.observations} == {"t1": True, "t2": None}
    assert s.meta.get("abandoned") is None and s.metrics["tool_errors"] == 1
    assert s.metrics["input_tokens"] == 20  # one usage per API response (m1, a4), not per line


def test_compaction_keeps_the_history_before_it(tmp_path):
    write(tmp_path / "s.jsonl", [
        rec("user", "u1", None, "refactor the parser"),
        rec("assistant", "a1", "u1", text("working on it")),
        {"type": "summary", "summary": "Parser refactor", "leafUuid": "a1"},
        rec("system", "b1", None, subtype="compact_boundary", logicalParentUuid="a1", content="Conversation compacted",
            compactMetadata={"trigger": "auto", "preTokens": 160000}),
        rec("user", "c1", "b1", "This session is being continued from a previous conversation...", isCompactSummary=True),
        rec("user", "u2", "c1", "continue"),
        rec("assistant", "a2", "u2", text("finished"), stop="end_turn"),
    ])
    s = sessions(tmp_path)["s"]
    assert [st.source for st in s.steps] == ["user", "agent", "system", "system", "user", "agent"]
    assert s.task == "refactor the parser" and s.metrics["compactions"] == 1
    assert s.steps[3].message.startswith("This session is being continued")
    assert s.meta["title"] == "Parser refactor" and s.termination == "stop"


def test_commands_meta_and_command_as_task(tmp_path):
    write(tmp_path / "s.jsonl", [
        rec("user", "m0", None, "<local-command-caveat>Caveat: ...</local-command-caveat>", isMeta=True),
        rec("user", "c1", "m0", "<command-message>review</command-message>\n<command-name>/review</command-name>\n"
                                "<command-args>PR 12</command-args>"),
        rec("user", "m1", "c1", text("Review the pull request given as argument."), isMeta=True),
        rec("user", "b1", "m1", "<bash-input>git status</bash-input>"),
        rec("assistant", "a1", "b1", text("Looks fine.") + [{"type": "text", "text": "max"}], stop="max_tokens"),
    ])
    s = sessions(tmp_path)["s"]
    assert s.task == "/review PR 12"  # no prompt typed: the command is the task
    assert [st.message for st in s.steps if st.source == "system"] == [
        "/review PR 12", "Review the pull request given as argument.", "! git status"]
    assert s.termination == "max_tokens"


def test_api_error_and_unanswered_call_terminations(tmp_path):
    write(tmp_path / "e.jsonl", [
        rec("user", "u1", None, text("do it") + [{"type": "text", "text": "<system-reminder>x</system-reminder>"}]),
        rec("assistant", "a1", "u1", text("API Error: 529 overloaded"), isApiErrorMessage=True),
    ])
    write(tmp_path / "t.jsonl", [rec("user", "u1", None, "go"), rec("assistant", "a1", "u1", use("t1"), stop="tool_use")])
    found = sessions(tmp_path)
    assert found["e"].termination == "error" and found["e"].task == "do it"
    assert found["e"].steps[-1].source == "system" and found["e"].model is None
    assert found["t"].termination == "tool_call"


def test_inline_sidechain_and_legacy_agent_files(tmp_path):
    side = {"isSidechain": True}
    write(tmp_path / "S.jsonl", [
        rec("user", "u1", None, "plan the work"),
        rec("assistant", "a1", "u1", use("toolu_t", "Task", prompt="explore")),
        rec("user", "x1", None, "explore", **side),
        rec("assistant", "x2", "x1", use("tx", "Grep", pattern="def"), **side),
        rec("user", "x3", "x2", result("tx"), **side),
        rec("assistant", "x4", "x3", text("found 3"), **side),
        rec("user", "r1", "a1", result("toolu_t", "found 3")),
        rec("assistant", "a2", "r1", text("planned"), stop="end_turn"),
    ])
    write(tmp_path / "agent-1234abcd.jsonl", [rec("user", "y1", None, "check tests", agentId="1234abcd", **side),
                                              rec("assistant", "y2", "y1", text("ok"), agentId="1234abcd", **side)])
    orphan = [rec("user", "z1", None, "other", **side)]
    orphan[0]["sessionId"] = "OTHER"
    write(tmp_path / "agent-99.jsonl", orphan)
    write(tmp_path / "summaries.jsonl", [{"type": "summary", "summary": "old", "leafUuid": "q"}])
    report = ScanReport()
    refs = list(scan([tmp_path], report=report))
    assert [(r.session_id, [Path(f).name for f in r.files]) for r in refs] == [("S", ["S.jsonl", "agent-1234abcd.jsonl"])]
    assert report.unrecognised == 0  # the orphan agent file and the summary-only file are owned
    s = FMT.assemble(refs[0], CFG)
    assert [c.name for st in s.steps for c in st.tool_calls] == ["Task"]
    subs = sorted((x["agent_id"], x["tool_calls"], x["steps"]) for x in s.meta["subagents"])
    assert subs[0] == ("1234abcd", 0, 2) and subs[1][0].startswith("sidechain-") and subs[1][1:] == (1, 3)


def test_subagent_link_out_of_the_project_is_not_read(tmp_path):
    outside = write(tmp_path / "elsewhere" / "secret.jsonl", [rec("user", "s1", None, "SECRET", isSidechain=True)])
    proj = tmp_path / "proj"
    write(proj / "S.jsonl", [rec("user", "u1", None, "hi"), rec("assistant", "a1", "u1", text("hello"))])
    (proj / "S" / "subagents").mkdir(parents=True)
    (proj / "S" / "subagents" / "agent-x.jsonl").symlink_to(outside)
    ref = FMT.find(proj, ["S.jsonl"])[0]
    assert ref.files == (str(proj / "S.jsonl"),)
    assert "SECRET" not in json.dumps(FMT.assemble(ref, CFG).meta)


def test_long_first_line_and_tool_results_folder(tmp_path):
    write(tmp_path / "big.jsonl", [rec("user", "u1", None, "x" * 100_000), rec("assistant", "a1", "u1", text("ok"))])
    (tmp_path / "0c1d2e3f-0000-4000-8000-000000000000" / "tool-results").mkdir(parents=True)
    (tmp_path / "0c1d2e3f-0000-4000-8000-000000000000" / "tool-results" / "abc.txt").write_text("out")
    report = ScanReport()
    refs = list(scan([tmp_path], report=report))
    assert [r.session_id for r in refs] == ["big"] and report.unrecognised == 0


def test_other_jsonl_is_not_claimed(tmp_path):
    write(tmp_path / "rows.jsonl", [{"type": "user", "text": "hi"}, {"a": 1}])
    write(tmp_path / "rollout.jsonl", [{"timestamp": "t", "type": "session_meta", "payload": {"id": "x"}}])
    assert FMT.find(tmp_path, ["rows.jsonl", "rollout.jsonl"]) == []


# --- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize("records,line,field,msg", [
    ([rec("user", "u1", None, "hi"), {**rec("assistant", "a1", "u1", text("x")), "message": "oops"}], 2, "message",
     "expected an object"),
    ([rec("user", "u1", None, "hi"), rec("assistant", "a1", "u1", [{"type": "tool_use", "id": "t", "input": {}}])], 2,
     "message.content[0].name", "missing tool name"),
    ([rec("user", "u1", None, 7)], 1, "message.content", "expected a string"),
    ([rec("assistant", "a1", None, text("no prompt"))], 1, None, "no task"),
])
def test_errors_name_line_and_field(tmp_path, records, line, field, msg):
    path = write(tmp_path / "s.jsonl", records)
    ref = FMT.find(tmp_path, ["s.jsonl"])[0]
    with pytest.raises(InputError) as exc:
        FMT.assemble(ref, CFG)
    assert (exc.value.path, exc.value.line, exc.value.field) == (str(path), line, field)
    assert msg in exc.value.message


def test_truncated_line_is_reported(tmp_path):
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(rec("user", "u1", None, "hi")) + "\n" + '{"type":"assistant","uuid":"a', encoding="utf-8")
    ref = FMT.find(tmp_path, ["s.jsonl"])[0]
    with pytest.raises(InputError) as exc:
        FMT.assemble(ref, CFG)
    assert exc.value.line == 2 and "truncated" in exc.value.message


def _seed(root: Path) -> list[Path]:
    """A parent session with both corpus subagent files, and the corpus's own transcripts."""
    sid = "ae4a77f8-aedd-4bc1-888f-c94edc91af04"
    shutil.copytree(SUBAGENTS, root / sid / "subagents")
    for f in (root / sid / "subagents").iterdir():
        f.chmod(0o644)
    write(root / f"{sid}.jsonl", [rec("user", "u1", None, "go"), rec("assistant", "a1", "u1", use("t", "Task")),
                                  rec("user", "r1", "a1", result("t"), toolUseResult={"agentId": "aac57f5"})])
    for name in ("short.jsonl", "tool_heavy.jsonl"):
        shutil.copyfile(CC / "spotter" / name, root / name)
    return [root / "short.jsonl", root / "tool_heavy.jsonl", root / sid / "subagents" / "agent-aac57f5.jsonl"]


@needs_corpus
@settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "12")), deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=hst.data())
def test_fuzz_mutated_files_fail_only_with_input_error(tmp_path_factory, data):
    root = tmp_path_factory.mktemp("cc")
    target = data.draw(hst.sampled_from(_seed(root)))
    raw = target.read_bytes()
    lines = raw.split(b"\n")
    how = data.draw(hst.sampled_from(["truncate", "flip", "line", "field"]))
    if how == "truncate":
        raw = raw[: data.draw(hst.integers(0, len(raw) - 1))]
    elif how == "flip":
        i = data.draw(hst.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([raw[i] ^ data.draw(hst.integers(1, 255))]) + raw[i + 1:]
    elif how == "line":
        lines[data.draw(hst.integers(0, len(lines) - 1))] = data.draw(hst.sampled_from([b"[]", b"7", b"{}", b"null", b'{"type":"user"}']))
        raw = b"\n".join(lines)
    else:
        i = data.draw(hst.sampled_from([k for k, ln in enumerate(lines) if ln.strip()]))
        doc = json.loads(lines[i])
        key = data.draw(hst.sampled_from(sorted(doc)))
        doc[key] = data.draw(hst.sampled_from([None, 1, "x", [], {}, [1, {"type": "tool_use"}], {"content": 5}]))
        lines[i] = json.dumps(doc).encode()
        raw = b"\n".join(lines)
    target.write_bytes(raw)
    for ref in scan([root]):  # never raises
        try:
            FORMATS[ref.format].assemble(ref, CFG)
        except InputError as exc:
            assert str(exc).startswith(exc.path) and exc.path in (*ref.files, ref.path)
            if exc.path.endswith(".jsonl") and "file is empty" not in exc.message:
                assert exc.line is not None, str(exc)


# --- the whole folder through the CLI ----------------------------------------------------------


@needs_corpus
def test_cli_grades_the_corpus_folder(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.endswith("API_KEY") and not k.startswith("STREAMGRADE_")}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(CC), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    assert sorted((r["session_id"], r["status"], r["source_format"]) for r in recs) == [
        ("sample_session", "graded", "claude-code"), ("short", "graded", "claude-code"),
        ("tool_heavy", "graded", "claude-code")]
    short = next(r for r in recs if r["session_id"] == "short")
    assert (short["model"], short["termination"], short["tool_calls"]) == ("claude-opus-4-6", "interrupted", 2)
    unrecognised = proc.stderr.split("not recognised")[1].split("\nstreamgrade:")[0]  # the block's lines
    assert "2 files not recognised" in proc.stderr and ".jsonl" not in unrecognised
