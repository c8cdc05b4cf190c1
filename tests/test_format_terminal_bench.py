"""Terminal-Bench 1.0 trials (terminal-bench format) and the asciicast reader/renderer, on
the real corpus (../shared/corpus/terminal-bench) and on handmade trials for what it lacks
(Terminus episode logs, plain terminal sessions, tests run in the agent's shell, agent.log
only, asciicast v1 and v3)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.extract.asciicast import TermText, bounded, read_cast, render
from streamgrade.formats.terminal_bench import MAX_OBSERVATION_CHARS, TerminalBenchTrial
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TB = CORPUS / "terminal-bench"
needs_corpus = pytest.mark.skipif(not TB.is_dir(), reason=f"Terminal-Bench corpus not present at {TB}")
CFG = load_config(env={})
FMT = TerminalBenchTrial()
TRIAL = "new-encrypt-command.1-of-1.{}"
RUNS = {  # run -> (reward, termination, agent steps, model)
    "2025-08-07__20-46-16": (1.0, "timeout", 9, "anthropic/claude-sonnet-4-20250514"),
    "2025-08-13__19-44-27": (0.0, "completed", 12, "anthropic/claude-sonnet-4-0"),
    "2025-08-14__19-39-35": (1.0, "timeout", 14, "anthropic/claude-sonnet-4-0"),
    "2025-08-15__16-23-45": (0.0, "completed", 12, "anthropic/claude-sonnet-4-0"),
}


def _transcript_text(s: Session) -> str:
    return s.task + "\n".join((m.content or "") + json.dumps([c.function.arguments for c in m.tool_calls or []])
                              for m in s.transcript) + json.dumps(s.meta)


# --------------------------------------------------------------------------- corpus


@pytest.fixture(scope="module")
def corpus() -> dict[str, Session]:
    refs = list(scan([TB])) if TB.is_dir() else []
    return {r.session_id: FMT.assemble(r, CFG) for r in refs}


@needs_corpus
def test_corpus_trials_found_with_rewards_and_terminations(corpus):
    assert sorted(corpus) == sorted(TRIAL.format(r) for r in RUNS)
    for run, (reward, term, n_steps, model) in RUNS.items():
        s = corpus[TRIAL.format(run)]
        assert s.ref.format == "terminal-bench" and s.kind == "agent"
        assert (s.reward, s.termination, s.model) == (reward, term, model), run
        assert s.metrics["steps"] == n_steps == s.turns == s.n_tool_calls, run
        assert s.task.startswith("Please help me encrypt all the files I have in the data/ folder using rencrypt")
        assert s.task_id == "new-encrypt-command" and s.trial == TRIAL.format(run)
        assert s.agent.startswith("mini-swe-agent ")
        assert s.meta["run_id"] == run and s.meta["dataset_version"] == "0.1.1"


@needs_corpus
def test_corpus_trial_steps(corpus):
    s = corpus[TRIAL.format("2025-08-13__19-44-27")]
    roles = [m.role for m in s.transcript]
    assert roles[:4] == ["system", "user", "assistant", "tool"]
    assert s.transcript[0].content.startswith("You are a helpful assistant that can interact with a computer.")
    assert s.transcript[1].content.startswith("Please solve this issue: Please help me encrypt")
    first = s.transcript[2]
    assert first.content.startswith("THOUGHT: I need to start by understanding the current directory structure")
    # the console's wrap at 160 columns is undone
    assert "Let me first explore what's in the current directory" in first.content
    call = first.tool_calls[0]
    assert call.function.name == "bash" and json.loads(call.function.arguments) == {"command": "ls -la"}
    result = s.transcript[3]
    assert result.tool_call_id == call.id
    assert result.content.startswith("<returncode>0</returncode>\n<output>\ntotal 12")
    assert result.content.endswith("</output>")
    # no spinner, colour or cursor control left
    text = "\n".join(m.content or "" for m in s.transcript)
    assert "Waiting for the LM" not in text and "\x1b" not in text and "\r" not in text
    third = next(m for m in s.transcript if m.content and "rencrypt` is available" in m.content)
    assert "understand its usage" in third.content  # a word that fitted the line exactly
    last_call = [m for m in s.transcript if m.tool_calls][-1]
    assert json.loads(last_call.tool_calls[0].function.arguments) == {"command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"}
    assert s.transcript[-1].content.startswith("Saved trajectory to '/root/.config/mini-swe-agent/")
    assert s.metrics["cost_usd"] == 0.04
    assert s.duration_s == pytest.approx(247.618, abs=0.01)
    assert s.meta["detected_agent"] == "mini-swe-agent 1.8.1"


@needs_corpus
def test_corpus_stderr_noise_between_turns_is_counted_not_kept(corpus):
    s = corpus[TRIAL.format("2025-08-07__20-46-16")]
    assert s.meta["terminal_noise_lines"] > 100
    inner = "\n".join(m.content or "" for m in s.transcript[:-1])
    assert "LiteLLM:ERROR" not in inner
    tool = [m for m in s.transcript if m.role == "tool"]
    assert any("noitamrofni terces emos osla si siht</output>" in m.content for m in tool)


@needs_corpus
def test_corpus_never_shows_the_tests(corpus):
    for s in corpus.values():
        text = _transcript_text(s)
        for leak in ("run-tests.sh", "test_outputs", "test_success", "passed", "short test summary", "parser_results"):
            assert leak not in text, (s.ref.session_id, leak)
        assert not any("tests" in f or "post-test" in f for f in s.ref.files)
        assert "exit" not in s.transcript[-1].content.split("\n")  # the harness's C-d is cut


@needs_corpus
def test_corpus_run_files_are_owned_not_unrecognised():
    report = ScanReport(keep=50)
    refs = list(scan([TB], report=report))
    assert len(refs) == 4
    assert [p for p, _ in report.examples] == [str(TB / "PROVENANCE.md")]
    ref = next(r for r in refs if "08-13" in r.session_id)
    rel = {os.path.relpath(f, ref.path) for f in ref.files}
    assert rel == {"results.json", os.path.join("sessions", "agent.cast")}


@needs_corpus
def test_corpus_graded_through_the_cli(tmp_path):
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI", "STREAMGRADE"))}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parents[1] / "src")
    proc = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(TB), "-o", str(out)],
                          capture_output=True, text=True, env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "4 graded, 0 failed" in proc.stderr
    assert "1 file not recognised" in proc.stderr and "PROVENANCE.md" in proc.stderr
    recs = {json.loads(x)["session_id"]: json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()}
    assert {k: r["reward"] for k, r in recs.items()} == {TRIAL.format(run): v[0] for run, v in RUNS.items()}
    assert all(r["status"] == "graded" and r["source_format"] == "terminal-bench" for r in recs.values())


# --------------------------------------------------------------------------- handmade trials


def _results(**over) -> dict:
    doc = {"id": "0b1c", "trial_name": "hello.1-of-1.run1", "task_id": "hello", "instruction": "Create hello.txt.",
           "is_resolved": True, "failure_mode": "unset", "parser_results": {"test_hello": "passed"},
           "recording_path": "run1/hello/hello.1-of-1.run1/sessions/agent.cast",
           "total_input_tokens": 1200, "total_output_tokens": 300,
           "trial_started_at": "2025-01-01T00:00:00+00:00", "agent_started_at": "2025-01-01T00:00:05+00:00",
           "agent_ended_at": "2025-01-01T00:01:05+00:00", "test_started_at": "2025-01-01T00:01:10+00:00",
           "test_ended_at": "2025-01-01T00:01:20+00:00", "trial_ended_at": "2025-01-01T00:01:21+00:00"}
    doc.update(over)
    return doc


T0 = 1735689600  # 2025-01-01T00:00:00Z


def _trial(root: Path, *, results: dict | None = None, events: list | None = None, header: dict | None = None,
           episodes: list[tuple[str | None, str | None, str]] | None = None, log: str | None = None) -> Path:
    """A trial folder ``root/run1/hello/hello.1-of-1.run1``; ``episodes`` are (prompt,
    response, response file name)."""
    trial = root / "run1" / "hello" / "hello.1-of-1.run1"
    (trial / "sessions").mkdir(parents=True)
    (trial / "panes").mkdir()
    (trial / "results.json").write_text(json.dumps(results or _results()))
    (root / "run1" / "run_metadata.json").write_text(json.dumps(
        {"run_id": "run1", "agent_name": "terminus", "model_name": "openai/gpt-4o", "dataset_name": "terminal-bench-core",
         "dataset_version": "0.1.1", "accuracy": 1.0}))
    (root / "run1" / "results.json").write_text(json.dumps({"id": "x", "results": [results or _results()], "accuracy": 1.0}))
    if events is not None:
        head = header or {"version": 2, "width": 160, "height": 40, "timestamp": T0}
        (trial / "sessions" / "agent.cast").write_text("\n".join(json.dumps(x) for x in [head, *events]) + "\n")
    if log is not None:
        (trial / "sessions" / "agent.log").write_text(log)
    (trial / "sessions" / "tests.cast").write_text('{"version": 2, "width": 160, "height": 40}\n[0.1, "o", "1 passed"]\n')
    (trial / "panes" / "post-test.txt").write_text("=== 1 passed in 0.01s ===")
    for n, (prompt, resp, name) in enumerate(episodes or []):
        d = trial / "agent-logs" / f"episode-{n}"
        d.mkdir(parents=True)
        if prompt is not None:
            (d / "prompt.txt").write_text(prompt)
        if resp is not None:
            (d / name).write_text(resp)
        (d / "debug.json").write_text(json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": prompt or ""}]}))
    return trial


def _one(root: Path) -> Session:
    refs = list(scan([root]))
    assert [r.format for r in refs] == ["terminal-bench"], refs
    return FMT.assemble(refs[0], CFG)


PROMPT = "\x1b[?2004hroot@c0ffee:/app# "
PLAIN_EVENTS = [
    [0.0, "o", PROMPT],
    [0.5, "i", "clear\r"], [0.6, "o", "clear\r\n\x1b[H\x1b[J\x1b[3J" + PROMPT],
    [6.0, "i", "ls -la; tmux wait -S done\r"],
    [6.1, "o", "ls -la; tmux wait -S done\r\n\x1b[?2004l\rtotal 0\r\n\x1b[01;34mdata\x1b[0m\r\n" + PROMPT],
    [7.0, "i", "python3 -c 'print(1)'"], [7.1, "o", "python3 -c 'print(1)'"],
    [7.2, "i", "\r"], [7.3, "o", "\r\n1\r\n" + PROMPT],
    [8.0, "i", "\x03"], [8.1, "o", "^C\r\n" + PROMPT],
    [9.0, "m", "Episode 2: 1 commands"],
    [9.5, "i", "echo hi > hello.txt\r"], [9.6, "o", "echo hi > hello.txt\r\n" + PROMPT],
    [66.5, "i", "bash /tests/run-tests.sh; tmux wait -S done\r"],
    [66.6, "o", "===== 1 passed in 0.01s =====\r\n"],
]


def test_plain_terminal_session_is_keystroke_steps(tmp_path):
    s = _one(_trial(tmp_path, events=PLAIN_EVENTS).parents[2])
    calls = [m.tool_calls[0] for m in s.transcript if m.tool_calls]
    keys = [json.loads(c.function.arguments)["keystrokes"] for c in calls]
    assert keys == ["ls -la\r", "python3 -c 'print(1)'\r", "\x03", "echo hi > hello.txt\r"]
    assert all(c.function.name == "bash_command" for c in calls)
    assert s.transcript[0].role == "user" and s.transcript[0].content == "Create hello.txt."
    ls = s.transcript[s.transcript.index(next(m for m in s.transcript if m.tool_calls)) + 1]
    assert ls.role == "tool" and ls.content == "ls -la; tmux wait -S done\ntotal 0\ndata\nroot@c0ffee:/app#"
    text = _transcript_text(s)
    assert "passed" not in text and "run-tests" not in text and "clear" not in text
    assert (s.reward, s.termination, s.model, s.agent) == (1.0, "completed", "openai/gpt-4o", "terminus")
    assert s.metrics == {"input_tokens": 1200.0, "output_tokens": 300.0, "steps": 4.0}
    assert s.duration_s == 60.0 and s.meta["failure_mode"] == "unset"


def test_inputs_after_the_agent_ended_are_the_harness(tmp_path):
    events = PLAIN_EVENTS[:4] + [[70.0, "i", "\x04"], [70.1, "o", "exit\r\n"]]
    s = _one(_trial(tmp_path, events=events).parents[2])
    assert [json.loads(m.tool_calls[0].function.arguments)["keystrokes"] for m in s.transcript if m.tool_calls] == ["ls -la\r"]
    assert "exit" not in _transcript_text(s)


@pytest.mark.parametrize("resolved,mode,reward,term", [
    (None, "test_timeout", None, "completed"), (False, "agent_timeout", 0.0, "timeout"),
    (None, "unknown_agent_error", None, "error"), (False, "context_length_exceeded", 0.0, "context_length"),
    (None, "unknown", None, None), (False, "docker_daemon_unresponsive", 0.0, "error"),
])
def test_reward_and_termination(tmp_path, resolved, mode, reward, term):
    s = _one(_trial(tmp_path, results=_results(is_resolved=resolved, failure_mode=mode), events=PLAIN_EVENTS).parents[2])
    assert (s.reward, s.termination) == (reward, term)
    assert ("failure_mode" in s.meta) == (mode != "test_timeout")  # a test failure is the judge's blind spot


def test_terminus_1_episodes(tmp_path):
    r0 = {"state_analysis": "Empty prompt.", "explanation": "List files, then write.", "is_task_complete": False,
          "commands": [{"keystrokes": "ls\n", "is_blocking": True, "timeout_sec": 5},
                       {"keystrokes": "echo hi > hello.txt\n", "is_blocking": True, "timeout_sec": 5}]}
    r1 = {"state_analysis": "Written.", "explanation": "Done.", "is_task_complete": True, "commands": []}
    trial = _trial(tmp_path, events=PLAIN_EVENTS, episodes=[
        ("Task: Create hello.txt.\n\nCurrent terminal state:\nroot@c0ffee:/app#", json.dumps(r0), "response.json"),
        ("Current terminal state:\nroot@c0ffee:/app# ls\nroot@c0ffee:/app#", json.dumps(r1), "response.json")])
    refs = list(scan([tmp_path]))
    assert [r.session_id for r in refs] == ["hello.1-of-1.run1"]  # debug.json is no openai-chat session
    s = FMT.assemble(refs[0], CFG)
    assert [m.role for m in s.transcript] == ["user", "assistant", "tool", "assistant"]
    assert s.transcript[0].content.startswith("Task: Create hello.txt.")
    a = s.transcript[1]
    assert a.content == "State analysis: Empty prompt.\nExplanation: List files, then write."
    assert [json.loads(c.function.arguments) for c in a.tool_calls] == r0["commands"]
    assert s.transcript[2].tool_call_id == a.tool_calls[-1].id and "root@c0ffee:/app# ls" in s.transcript[2].content
    assert s.transcript[3].content.endswith("Task complete: true") and s.metrics["steps"] == 2
    assert str(trial / "agent-logs" / "episode-1" / "response.json") in refs[0].files


def test_terminus_2_json_xml_and_unparseable_replies(tmp_path):
    j = 'Sure:\n{"analysis": "Nothing yet.", "plan": "Write it.", "commands": [{"keystrokes": "echo hi > hello.txt\\n", "duration": 0.1}], "task_complete": false}'
    x = ("<response><analysis>Written &amp; checked.</analysis><plan>Finish.</plan><commands>"
         '<keystrokes duration="1.5">cat hello.txt &gt; /dev/null\n</keystrokes></commands>'
         "<task_complete>true</task_complete></response>")
    s = _one(_trial(tmp_path, events=PLAIN_EVENTS, episodes=[
        ("You are an AI assistant... Task: Create hello.txt.", j, "response.txt"),
        ("New Terminal Output:\nroot@c0ffee:/app# echo hi > hello.txt", "I am not sure what to do", "response.txt"),
        ("Previous response had parsing errors:\nERROR: No valid JSON found", x, "response.txt"),
    ]).parents[2])
    roles = [m.role for m in s.transcript]
    assert roles == ["user", "assistant", "tool", "assistant", "user", "assistant"]
    assert s.transcript[1].content == "Analysis: Nothing yet.\nPlan: Write it."
    assert json.loads(s.transcript[1].tool_calls[0].function.arguments) == {"keystrokes": "echo hi > hello.txt\n", "duration": 0.1}
    assert s.transcript[3].content == "I am not sure what to do" and not s.transcript[3].tool_calls
    assert s.transcript[4].content.startswith("Previous response had parsing errors")
    last = s.transcript[5]
    assert last.content == "Analysis: Written & checked.\nPlan: Finish.\nTask complete: true"
    assert json.loads(last.tool_calls[0].function.arguments) == {"keystrokes": "cat hello.txt > /dev/null\n", "duration": 1.5}


def test_agent_log_only_cut_before_tests_in_the_same_shell(tmp_path):
    log = (PROMPT + "ls\r\n\x1b[?2004lhello.txt\r\n" + PROMPT + "bash /tests/run-tests.sh; tmux wait -S done\r\n"
           "===== 1 passed =====\r\n")
    s = _one(_trial(tmp_path, log=log).parents[2])
    assert [m.role for m in s.transcript] == ["user", "user"]
    assert s.transcript[1].content == "root@c0ffee:/app# ls\nhello.txt"
    assert s.meta["recording"] == os.path.join("sessions", "agent.log") and "passed" not in _transcript_text(s)


def test_broken_results_json_is_a_failing_session(tmp_path):
    trial = _trial(tmp_path, events=PLAIN_EVENTS)
    (trial / "results.json").write_text('{"trial_name": "hello.1-of-1.run1", "instruction": ')
    refs = list(scan([tmp_path]))
    assert len(refs) == 1
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs[0], CFG)
    assert str(exc.value).startswith(str(trial / "results.json")) and exc.value.line == 1


@pytest.mark.parametrize("field,value,msg", [("instruction", None, "missing"), ("instruction", 3, "expected a string"),
                                             ("is_resolved", "yes", "expected true, false or null"),
                                             ("total_input_tokens", "many", "expected an integer")])
def test_bad_results_fields_are_named(tmp_path, field, value, msg):
    trial = _trial(tmp_path, results=_results(**{field: value}), events=PLAIN_EVENTS)
    with pytest.raises(InputError) as exc:
        FMT.assemble(list(scan([tmp_path]))[0], CFG)
    assert exc.value.path == str(trial / "results.json") and exc.value.field == field and msg in exc.value.message


def test_bad_cast_line_is_named(tmp_path):
    trial = _trial(tmp_path, events=PLAIN_EVENTS)
    cast = trial / "sessions" / "agent.cast"
    lines = cast.read_text().split("\n")
    lines[3] = '[1.0, "o"]'
    cast.write_text("\n".join(lines))
    with pytest.raises(InputError) as exc:
        FMT.assemble(list(scan([tmp_path]))[0], CFG)
    assert exc.value.path == str(cast) and exc.value.line == 4


def test_results_json_alone_is_not_a_trial(tmp_path):
    (tmp_path / "results.json").write_text(json.dumps(_results()))
    report = ScanReport()
    assert list(scan([tmp_path], report=report)) == []
    assert "terminal-bench: results.json without sessions/" in report.examples[0][1]


# --------------------------------------------------------------------------- asciicast


def test_cast_v1_v3_and_a_truncated_last_line(tmp_path):
    v1 = tmp_path / "v1.cast"
    v1.write_text(json.dumps({"version": 1, "width": 80, "height": 24, "duration": 1.5,
                              "stdout": [[0.25, "a"], [1.0, "b\r\n"]]}, indent=2))
    c = read_cast(v1)
    assert (c.version, c.width, [(e.t, e.code, e.data) for e in c.events]) == (1, 80, [(0.25, "o", "a"), (1.25, "o", "b\r\n")])
    v3 = tmp_path / "v3.cast"
    v3.write_text('{"version": 3, "term": {"cols": 90, "rows": 30}, "timestamp": 1}\n# a comment\n'
                  '[0.5, "o", "x"]\n[0.25, "i", "ls\\r"]\n[1.0, "x", "0"]\n[0.1, "o", "trunc')
    c = read_cast(v3)
    assert (c.version, c.width, c.height, c.truncated) == (3, 90, 30, True)
    assert [(e.t, e.code) for e in c.events] == [(0.5, "o"), (0.75, "i"), (1.75, "x")]


@pytest.mark.parametrize("text,line,what", [
    ('{"version": 5, "width": 1, "height": 1}\n', 1, "unsupported asciicast version"),
    ('{"version": 2, "width": 0, "height": 1}\n', 1, "positive integer"),
    ('{"version": 2, "width": 80, "height": 24}\n[1, "o", "a"]\n[1, "o", "a"\n[2, "o", "b"]\n', 3, "invalid JSON"),
    ('{"version": 2, "width": 80, "height": 24}\n["x", "o", "a"]\n', 2, "finite number"),
    ('{"version": 2, "width": 80, "height": 24}\n[1, "o", 5]\n', 2, "string data"),
    ('[1, 2]\n', 1, "expected a JSON object header"),
])
def test_bad_casts_name_the_line(tmp_path, text, line, what):
    p = tmp_path / "bad.cast"
    p.write_text(text)
    with pytest.raises(InputError) as exc:
        read_cast(p)
    assert exc.value.line == line and what in exc.value.message and exc.value.path == str(p)


def test_render_resolves_overwrites_erases_and_clears():
    assert render("50%\r100%\r\ndone\r\n") == "100%\ndone"
    spinner = "\x1b[32m⠋\x1b[0m Waiting...\r\x1b[2K\x1b[32m⠙\x1b[0m Waiting...\r\x1b[2KTHOUGHT: ok\r\n"
    assert render(spinner) == "THOUGHT: ok"
    assert render("a\r\nspin\r\n\x1b[?25h\r\x1b[1A\x1b[2K\r\nb") == "a\n\nb"
    assert render("abc\b\bX\r\n") == "aXc"
    assert render("old screen\r\n\x1b[H\x1b[2Jnew\r\n") == "old screen\nnew"  # history kept
    assert render("shell$ vim\r\n\x1b[?1049h\x1b[H\x1b[2J~\r\n~ file\x1b[?1049l$ ") == "shell$ vim\n~\n~ file\n$"
    assert render("\x1b]0;title\x07text\x1b[K\r\n\tx") == "text\n        x"
    assert render("a\r\n" + "\x1b[9999B" * 50 + "b", rows=5) == "a\n\n\n\nb"  # no scrolling past the screen


def test_render_is_bounded():
    term = TermText(10, head_lines=3, tail_lines=4, max_line_chars=50)
    term.feed("".join(f"line {i}\r\n" for i in range(1000)) + "y" * 200)
    lines = term.text().split("\n")
    assert lines[:3] == ["line 0", "line 1", "line 2"] and lines[3].startswith("[... ") and "lines omitted" in lines[3]
    assert lines[-2] == "line 999" and lines[-1] == "y" * 50 and len(lines) <= 3 + 1 + 4 + 10
    text = "\n".join(f"row {i}" for i in range(10_000))
    short = bounded(text, 1000)
    assert len(short) < 1100 and short.startswith("row 0\n") and short.endswith("row 9999") and "characters omitted" in short


def test_long_observations_are_bounded(tmp_path):
    events = [[1.0, "i", "yes\r"], [1.1, "o", "y\r\n" * 100_000]]
    s = _one(_trial(tmp_path, events=events).parents[2])
    tool = next(m for m in s.transcript if m.role == "tool")
    assert len(tool.content) <= MAX_OBSERVATION_CHARS + 200 and "omitted" in tool.content


# --------------------------------------------------------------------------- fuzz

FUZZ = settings(max_examples=int(os.environ.get("STREAMGRADE_FUZZ_EXAMPLES", "25")), deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

def _fresh(tmp: Path) -> Path:
    if tmp.exists():
        shutil.rmtree(tmp)
    return _trial(tmp, events=PLAIN_EVENTS, episodes=[
        ("Task: Create hello.txt.", json.dumps({"state_analysis": "a", "explanation": "b", "is_task_complete": True,
                                                 "commands": [{"keystrokes": "ls\n", "is_blocking": True, "timeout_sec": 1}]}),
         "response.json")])


@FUZZ
@given(target=st.sampled_from(["results.json", "sessions/agent.cast", "agent-logs/episode-0/response.json",
                               "agent-logs/episode-0/prompt.txt"]),
       data=st.data())
def test_fuzzed_trial_files_fail_with_input_error(tmp_path_factory, target, data):
    root = tmp_path_factory.mktemp("fuzz")
    trial = _fresh(root)
    path = trial / target
    raw = path.read_bytes()
    how = data.draw(st.sampled_from(["truncate", "flip", "insert", "random"]))
    if how == "truncate":
        raw = raw[: data.draw(st.integers(0, len(raw)))]
    elif how == "flip" and raw:
        i = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:i] + bytes([data.draw(st.integers(0, 255))]) + raw[i + 1:]
    elif how == "insert":
        i = data.draw(st.integers(0, len(raw)))
        raw = raw[:i] + data.draw(st.binary(min_size=1, max_size=20)) + raw[i:]
    else:
        raw = data.draw(st.binary(max_size=300))
    path.write_bytes(raw)
    refs = list(scan([root]))  # find never raises
    for ref in refs:
        try:
            s = FMT.assemble(ref, CFG) if ref.format == "terminal-bench" else None
        except InputError as exc:
            assert str(exc).startswith(str(trial)), str(exc)
            continue
        assert s is None or isinstance(s, Session)


def test_files_under_a_trial_are_never_sessions_of_their_own(tmp_path):
    from streamgrade.sources.watch import refs_for_change

    trial = _trial(tmp_path, events=PLAIN_EVENTS, episodes=[("Task: x", '{"commands": []}', "response.txt")])
    debug = trial / "agent-logs" / "episode-0" / "debug.json"
    assert list(scan([debug])) == []  # a single file given on the command line
    report = ScanReport()
    assert refs_for_change(debug, report=report) == [] and report.unrecognised == 0  # a watch event
    assert [r.session_id for r in refs_for_change(trial / "results.json")] == ["hello.1-of-1.run1"]
