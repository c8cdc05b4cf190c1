"""Every reader pairs each action with what the agent saw before it (issue 11, item 2).

One test per format names a concrete step of a corpus session (or a handmade one where the
corpus has none) and asserts that the message before the agent's action holds what the
action relies on (the agent saw it), and that the action's result follows the action, linked
to its call. The off-by-one this guards against is BALROG Crafter's (row N's observation is
the state after action N: tests/test_format_crafter.py). For desktop recordings the
observation is the screen: a frame taken at or before an action's time comes before it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from streamgrade.assemble import with_frames
from streamgrade.config import load_config
from streamgrade.formats import FORMATS
from streamgrade.models import Session
from streamgrade.sft import to_messages
from streamgrade.sources.scan import scan

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
CFG = load_config(env={})


def session(path: Path, sid: str | None = None) -> Session:
    """The session at ``path`` (the one whose id ends with ``sid`` when the file holds
    several); skips when the corpus is absent."""
    if not path.exists():
        pytest.skip(f"corpus sample not present: {path}")
    refs = [r for r in scan([path]) if sid is None or r.session_id.endswith(sid)]
    assert len(refs) == 1, [r.session_id for r in refs]
    return FORMATS[refs[0].format].assemble(refs[0], CFG)


def call_at(s: Session, name: str, needle: str = "") -> int:
    """The transcript index of the first assistant message calling ``name`` with
    ``needle`` in its arguments."""
    return next(i for i, m in enumerate(s.transcript) if m.role == "assistant"
                for c in m.tool_calls or [] if c.function.name == name and needle in c.function.arguments)


def result_of(s: Session, i: int) -> str:
    """The content of the tool message right after assistant message ``i``, which must
    answer its (first) call."""
    m, nxt = s.transcript[i], s.transcript[i + 1]
    assert nxt.role == "tool" and nxt.tool_call_id == m.tool_calls[0].id
    return nxt.content or ""


# -- agent transcripts ----------------------------------------------------------------------
def test_openai_chat_tau_bench():
    """tau-bench task0 trial0: get_user_details(mia_li_3668) comes after the user message
    that gives the id, and its result (the user's record) follows it."""
    s = session(CORPUS / "tau-bench" / "gpt-4o-airline.json", "task0.trial0")
    i = call_at(s, "get_user_details")
    assert '"mia_li_3668"' in s.transcript[i].tool_calls[0].function.arguments
    assert s.transcript[i - 1].role == "user" and "mia_li_3668" in s.transcript[3].content
    assert all("mia_li_3668" not in (m.content or "") for m in s.transcript[:3])  # not known before
    assert '"first_name": "Mia"' in result_of(s, i)
    j = call_at(s, "search_direct_flight")  # after the user's trip details
    assert j > i and '"JFK"' in s.transcript[j].tool_calls[0].function.arguments


def test_tau2():
    """tau2 airline task0: get_user_details follows the user message with the id;
    get_reservation_details(EHGLP3) follows the result listing EHGLP3."""
    s = session(ROOT / "tests" / "data" / "tau2" / "airline_gpt-4.1.json", "task0.trial0")
    i = call_at(s, "get_user_details", "emma_kim_9957")
    assert s.transcript[i - 1].role == "user" and "emma_kim_9957" in s.transcript[i - 1].content
    assert '"EHGLP3"' in result_of(s, i)
    j = call_at(s, "get_reservation_details", "EHGLP3")
    assert j == i + 2 and '"basic_economy"' in result_of(s, j)


def test_harbor_trial():
    """Harbor trial pdfminer __icWVexc (Claude Code in ATIF): the Read of pdfdocument.py at
    line 1049 comes after the subagent's result that names that file, and the file's lines
    from 1049 follow it."""
    s = session(CORPUS / "harbor" / "jobs" / "2026-04-13__04-01-12" / "pdfminer__pdfminer.six.1a8bd2f7.__icWVexc")
    i = call_at(s, "Read", "pdfdocument.py")
    before = s.transcript[i - 3]  # Agent's result, then an empty and a text assistant step
    assert before.role == "tool" and "/testbed/pdfminer/pdfdocument.py" in before.content
    assert all(m.role == "assistant" and not m.tool_calls for m in s.transcript[i - 2:i])
    assert result_of(s, i).startswith("1049\t")


def test_atif_file():
    """Harbor's golden OpenHands ATIF: the create call follows the user's request, its result
    ("File created successfully") follows it, and finish comes last."""
    s = session(CORPUS / "harbor" / "golden" / "openhands" / "hello-world.trajectory.json")
    i = call_at(s, "str_replace_editor", "create")
    assert any(m.role == "user" and "hello.txt" in m.content for m in s.transcript[:i])
    assert result_of(s, i) == "File created successfully at: /app/hello.txt"
    assert call_at(s, "finish") == i + 2


def test_trace_rows():
    """Harbor's golden OpenHands trace row (no function calling): the heredoc command is an
    assistant turn and the terminal's exit status the user turn after it."""
    s = session(CORPUS / "harbor" / "golden" / "openhands" / "hello-world-no_function_calling.traces.json")
    i = next(k for k, m in enumerate(s.transcript) if m.role == "assistant" and "cat > /app/hello.txt" in m.content)
    assert s.transcript[i - 1].role == "user" and "Hello, world!" in s.transcript[0].content + s.transcript[i - 1].content
    assert s.transcript[i + 1].role == "user" and "exit code 0" in s.transcript[i + 1].content


def test_swe_agent():
    """SWE-agent test fixture 6e44b9: open(missing_colon.py) uses the path found by the
    find_file result right before it."""
    s = session(CORPUS / "swe-agent" / "tests" / "test_data" / "trajectories"
                / "gpt4__swe-agent-test-repo__default_from_url__t-0.00__p-0.95__c-3.00__install-1"
                / "6e44b9__sweagenttestrepo-1c2844.traj")
    i = call_at(s, "find_file", "missing_colon.py")
    found = result_of(s, i)
    assert "/SWE-agent__test-repo/tests/missing_colon.py" in found
    j = call_at(s, "open")
    assert j == i + 2 and "/SWE-agent__test-repo/tests/missing_colon.py" in s.transcript[j].tool_calls[0].function.arguments
    assert "def division(a: float, b: float) -> float" in result_of(s, j)  # the file, colon still missing


def test_mini_swe_agent():
    """gemini-3-pro django__django-10999: ``cat django/utils/dateparse.py`` follows the
    listing that found dateparse.py, and the file's text follows it."""
    s = session(CORPUS / "mini-swe-agent" / "gemini-3-pro-swebench-verified" / "django__django-10999.traj.json")
    i = call_at(s, "bash", "grep dateparse")
    assert "dateparse.py" in result_of(s, i)
    j = call_at(s, "bash", "cat django/utils/dateparse.py")
    assert j == i + 2 and "standard_duration_re" in result_of(s, j)


def test_openhands():
    """OpenHands Multi-SWE-bench ponyc-4595: each ``ls`` goes into a folder the previous
    listing showed (src, then libponyc)."""
    s = session(CORPUS / "openhands-output" / "multi-swe-bench-example" / "output.jsonl", "ponyc-4595")
    i = call_at(s, "execute_bash", "ls -l /workspace/ponylang__ponyc__0.1/src\"")
    assert result_of(s, i - 2).split().count("src") == 1  # the repo listing shows src
    assert " libponyc\n" in result_of(s, i)
    assert "src/libponyc\"" in s.transcript[i + 2].tool_calls[0].function.arguments


def test_terminal_bench():
    """Terminal-Bench new-encrypt-command (mini-swe-agent, 2025-08-07): ``ls -la data/``
    follows the listing that shows data/, and ``rencrypt --help`` follows the result that
    found rencrypt."""
    s = session(CORPUS / "terminal-bench" / "2025-08-07__20-46-16" / "new-encrypt-command"
                / "new-encrypt-command.1-of-1.2025-08-07__20-46-16")
    i = call_at(s, "bash", "ls -la data/")
    assert s.transcript[i - 1].role == "tool" and " data\n" in s.transcript[i - 1].content
    assert "/usr/local/bin/rencrypt" in result_of(s, i) and "sample1.txt" in result_of(s, i)
    assert call_at(s, "bash", "rencrypt --help") == i + 2


def test_inspect_ai():
    """Inspect AI browser eval: the click on element 151 follows the page (accessibility
    tree) that lists element [151]."""
    s = session(CORPUS / "inspect-ai" / "2025-05-12T20-27-36-04-00_browser.json")
    i = call_at(s, "web_browser_click", "151")
    assert s.transcript[i - 1].role == "tool" and "[151]" in s.transcript[i - 1].content
    assert s.transcript[i - 2].tool_calls[0].function.name == "web_browser_go"


def test_claude_code():
    """Claude Code spotter tool_heavy: ``tail`` of the background task's output file
    follows the result that named that file."""
    s = session(CORPUS / "claude-code" / "spotter" / "tool_heavy.jsonl")
    i = call_at(s, "Bash", "tail -5 /tmp/claude-1000/-home-marco-projects-spotter/tasks/bae407b.output")
    assert s.transcript[i - 1].role == "tool" and "bae407b.output" in s.transcript[i - 1].content
    assert "Phoenix" in result_of(s, i)


def test_codex_cli():
    """Codex CLI rollout 019e1625: write_stdin(session_id=48230) follows the exec result
    that started session 48230, and the output of that session follows it."""
    s = session(next((CORPUS / "codex-cli").glob("rollout-*.jsonl"), CORPUS / "codex-cli" / "rollout-missing.jsonl"))
    i = call_at(s, "write_stdin", "48230")
    assert s.transcript[i - 1].role == "tool" and "session ID 48230" in s.transcript[i - 1].content
    assert "Process exited with code 0" in result_of(s, i)


def test_adp():
    """ADP android_in_the_wild 12172380859428428757: screenshot 0 comes before the first
    touch, screenshot 1 (its result) after it; nebius SWE-agent: open(image.py) follows the
    find_file result that found it."""
    s = session(CORPUS / "adp" / "datasets" / "android_in_the_wild" / "sample_std.json")
    i = call_at(s, "touch_and_lift")
    assert s.transcript[i - 1].role == "user" and "12172380859428428757-0.png" in s.transcript[i - 1].content
    assert "12172380859428428757-1.png" in result_of(s, i)
    s = session(CORPUS / "adp" / "datasets" / "nebius_SWE-agent-trajectories" / "sample_std.json", "plumbum-366_17")
    i = call_at(s, "find_file", "image.py")
    assert "/plumbum/plumbum/cli/image.py" in result_of(s, i)
    assert call_at(s, "open", "image.py") == i + 2


def test_react_text(tmp_path: Path):
    """A FireAct-style ReAct transcript (handmade): Lookup comes after the Search
    observation it uses, and each observation answers its own action."""
    traj = ("Question: Which year was the Eiffel Tower finished?\n"
            "Thought 1: I should search the Eiffel Tower.\nAction 1: search[Eiffel Tower]\n"
            "Observation 1: The Eiffel Tower is a wrought-iron tower in Paris. It was completed in 1889.\n"
            "Thought 2: It says completed; look up the year.\nAction 2: lookup[completed]\n"
            "Observation 2: (Result 1 / 1) It was completed in 1889.\n"
            "Thought 3: 1889.\nAction 3: finish[1889]\nObservation 3: Episode finished, reward = 1\n")
    (tmp_path / "trajs.json").write_text(json.dumps({"q1": {"traj": traj, "reward": 1}}))
    s = session(tmp_path / "trajs.json")
    i = call_at(s, "search", "Eiffel Tower")
    assert "completed in 1889" in result_of(s, i)
    j = call_at(s, "lookup", "completed")
    assert j == i + 2 and result_of(s, j).startswith("(Result 1 / 1)")
    assert call_at(s, "finish", "1889") == j + 2


# -- desktop recordings: the observation is the screen --------------------------------------
def _frames_precede(messages: list) -> None:
    """Every action is preceded by the frames taken at or before its time and followed by
    the later ones (frames are the image entries)."""
    for k, m in enumerate(messages):
        if m.role == "assistant":
            before = [x for x in messages[:k] if isinstance(x.content, dict)]
            after = [x for x in messages[k + 1:] if isinstance(x.content, dict)]
            assert all(f.timestamp <= m.timestamp for f in before) and all(f.timestamp > m.timestamp for f in after)


def test_frame_at_an_actions_start_comes_before_it():
    """OWA docs example: a frame taken at the very ms the typing of "tenstoremisled"
    starts (5446, the start candidate of a typing group) shows the screen before the keys:
    it precedes the typing (it used to follow it: a stable sort put messages first)."""
    s = session(next((CORPUS / "owa" / "docs").rglob("*.mcap"), CORPUS / "owa" / "docs" / "missing.mcap"))
    msgs = to_messages(s)
    typing = next(m for m in msgs if m.role == "assistant" and 'type("tenstoremisled")' in m.content)
    out = with_frames(msgs, [{"t_ms": typing.timestamp, "path": "frames/a.jpg"}, {"t_ms": 0, "path": "frames/0.jpg"}])
    k = out.index(typing)
    assert out[k - 1].content == {"type": "image", "data": "frames/a.jpg"}
    assert out[0].content == msgs[0].content and out[1].content == {"type": "image", "data": "frames/0.jpg"}
    _frames_precede(out)


def test_owa_frames_precede_their_clicks(tmp_path: Path):
    """OWA owa-cli 0.4.2 capture, graded: the click at 1912 ms is preceded by its "before"
    frame (1712 ms) and every frame sits at its time among the actions."""
    src = CORPUS / "owa" / "projects"
    mcap = next(src.rglob("0.4.2*.mcap"), None) if src.exists() else None
    if mcap is None:
        pytest.skip("OWA corpus capture owa-cli 0.4.2 not present")
    data = tmp_path / "data"
    data.mkdir()
    for f in mcap.parent.glob(mcap.stem + ".*"):
        shutil.copy(f, data / f.name)
    msgs = _grade_messages(data, tmp_path / "out")
    k = next(i for i, m in enumerate(msgs) if m["role"] == "assistant" and "click(751, 636)" in m["content"])
    assert isinstance(msgs[k - 1]["content"], dict) and msgs[k - 1]["timestamp"] == msgs[k]["timestamp"] - 200
    _frames_precede([_Msg(**m) for m in msgs])


class _Msg:
    def __init__(self, role: str, content, timestamp: int = 0):
        self.role, self.content, self.timestamp = role, content, timestamp


def _grade_messages(data: Path, out: Path) -> list[dict]:
    import subprocess
    import sys

    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--judge",
                          "heuristic", "--no-progress"], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    (sft,) = list((out / "sessions").glob("*/*/sft.json"))
    return json.loads(sft.read_text())["messages"]


def _web_session(tmp_path: Path, shift_ms: int) -> Session:
    """The Clones web example with its Guacamole recording, the events and the race moved
    ``shift_ms`` earlier (as if the recording had started ``shift_ms`` after the race)."""
    web, guac = ROOT / "examples" / "clones" / "web", ROOT / "examples" / "guac"
    doc = json.loads((web / "6792a2a124f444f0e39ce887.events.json").read_text())
    for e in doc["events"]:
        e["timestamp"] -= shift_ms
    (tmp_path / "6792a2a124f444f0e39ce887.events.json").write_text(json.dumps(doc))
    races = json.loads((web / "viralmind.race_sessions.json").read_text())
    for r in races if isinstance(races, list) else [races]:
        if isinstance(r.get("created_at"), dict):
            r["created_at"] = {"$date": _iso(_epoch(r["created_at"]["$date"]) - shift_ms)}
    (tmp_path / "viralmind.race_sessions.json").write_text(json.dumps(races))
    for f in guac.glob("6792a2a124f444f0e39ce887.guac*"):
        shutil.copy(f, tmp_path / f.name)
    return session(tmp_path / "6792a2a124f444f0e39ce887.events.json")


def _epoch(iso: str) -> int:
    from datetime import datetime

    return int(datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() * 1000)


def _iso(ms: int) -> str:
    from datetime import datetime, timezone

    return datetime.fromtimestamp(ms / 1000, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def test_clones_web_hints_and_actions_share_one_clock(tmp_path: Path):
    """Clones web 6792a2a1 (paint race): the hint "Navigate the XFCE menu ..." (20.1 s)
    comes before the click at (209, 291) (23.3 s). When the recording starts 5 s after the
    race (its first sync is epoch ms, guacd's clock), the click moves with it, to 28.3 s,
    and still follows the hint (it came 1.8 s before it when the recording's time 0 was
    taken as the race's); the video offset maps the click back to its video time."""
    (tmp_path / "a").mkdir()
    same = _web_session(tmp_path / "a", 0)
    msgs = to_messages(same)
    hint = next(m for m in msgs if m.content.startswith("Hint: Navigate the XFCE menu"))
    click = next(m for m in msgs if m.role == "assistant" and "click(209, 291)" in m.content)
    assert msgs.index(hint) < msgs.index(click) and (hint.timestamp, click.timestamp) == (20114, 23311)
    assert same.video_offset_ms == 0 and same.meta["guac_start_ms"] == 0 and same.meta["guac_clock"] == "events"
    (tmp_path / "b").mkdir()
    late = _web_session(tmp_path / "b", 5000)
    msgs = to_messages(late)
    hint = next(m for m in msgs if m.content.startswith("Hint: Navigate the XFCE menu"))
    click = next(m for m in msgs if m.role == "assistant" and "click(209, 291)" in m.content)
    assert (hint.timestamp, click.timestamp) == (20114, 28311) and msgs.index(hint) < msgs.index(click)
    assert late.video_offset_ms == -5000 and late.meta["guac_start_ms"] == 5000
    assert click.timestamp + late.video_offset_ms == 23311  # the click's time in the recording's video


def test_clones_web_recording_on_another_clock(tmp_path: Path):
    """A first sync far from the events (not epoch ms on their clock) is not used: the
    recording starts with the session, as before."""
    s = _web_session(tmp_path, -30 * 24 * 3600 * 1000)  # the events 30 days after the recording
    assert s.meta["guac_clock"] == "other" and s.meta["guac_start_ms"] == 0 and s.video_offset_ms == 0
    assert s.actions[0].t_ms == 11542


def test_clones_desktop_frames_precede_their_actions(tmp_path: Path):
    """Clones desktop 20251007_131852 with a synthetic recording (frame n painted level n),
    graded: each click is preceded by the frame taken 200 ms before it, and frames sit at
    their times among the actions."""
    pytest.importorskip("av")
    from test_frames_pipeline import make_recording

    data = tmp_path / "data" / "20251007_131852"
    shutil.copytree(ROOT / "examples" / "clones" / "20251007_131852", data)
    make_recording(data / "recording.mp4")
    msgs = _grade_messages(tmp_path / "data", tmp_path / "out")
    clicks = [i for i, m in enumerate(msgs) if m["role"] == "assistant" and "click(" in m["content"]]
    assert clicks and any(isinstance(msgs[i - 1]["content"], dict) and msgs[i - 1]["timestamp"] == msgs[i]["timestamp"] - 200
                          for i in clicks)
    _frames_precede([_Msg(**m) for m in msgs])


def test_ducktrack_frames_precede_their_actions(tmp_path: Path):
    """A DuckTrack recording (handmade, as tests/test_format_ducktrack.py builds it) with an
    OBS video, graded: the right-click after the 10 s pause (5000 ms once the pause is cut)
    is preceded by the frame taken 200 ms before it."""
    pytest.importorskip("av")
    from test_format_ducktrack import make_video, recording

    folder = recording(tmp_path / "data" / "Say hi to the duck", readme="Type a greeting, then copy it.")
    make_video(folder / "2023-10-20 17-19-53.mp4")
    msgs = _grade_messages(tmp_path / "data", tmp_path / "out")
    k = next(i for i, m in enumerate(msgs) if m["role"] == "assistant" and 'button="right"' in m["content"])
    assert msgs[k]["timestamp"] == 5000
    assert any(isinstance(m["content"], dict) and m["timestamp"] <= 5000 for m in msgs[:k])
    _frames_precede([_Msg(**m) for m in msgs])
