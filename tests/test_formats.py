"""Clones formats on the real files, SFT messages, chunking, and bad input (InputError naming
the file and the line or field)."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime
from pathlib import Path

import msgspec
import pytest

from streamgrade.chunking import action_lines, chunk_session, estimate_tokens
from streamgrade.config import ChunkingConfig
from streamgrade.errors import InputError
from streamgrade.models import Action, Message, Session, SessionRef
from streamgrade.sft import render_action, to_messages

DESKTOP_KEYS = "20251007_131852"
DESKTOP_CLICKS = "20250817_232256"
WEB_ID = "6792a2a124f444f0e39ce887"
WEB_EVENTS = f"web/{WEB_ID}.events.json"
WEB_RACES = "web/viralmind.race_sessions.json"
CODE_BLOCK = re.compile(r"\A```python\n(.+)\n```\Z", re.S)


# -- Clones desktop -------------------------------------------------------------------------

def test_desktop_session_fields(assemble, examples_dir):
    s = assemble(examples_dir / DESKTOP_KEYS)
    assert s.ref.format == "clones-desktop"
    assert s.ref.session_id == DESKTOP_KEYS
    assert s.task.startswith("Implement shopping cart\nHi! I'm working on a Flutter e-commerce app")
    assert s.objectives == [
        "Open Flutter E-Commerce project in your IDE",
        "Implement state management for shopping cart",
        "Ensure smooth transition between selection and checkout",
        "Test functionality thoroughly",
    ]
    assert s.app == "Flutter E-Commerce"
    assert s.duration_s == 10.0
    assert s.reward is None
    assert s.events == []
    assert s.meta["start_ms"] == 1759835933573
    assert s.meta["n_events"] == 1168
    assert s.meta["platform"] == "macos"
    assert s.meta["monitor"] == {"width": 2880, "height": 1800}
    assert s.meta["task_id"] == "task_2"
    assert s.meta["completed"] is True
    assert s.meta["has_video"] is False


def test_desktop_second_session(assemble, examples_dir):
    s = assemble(examples_dir / DESKTOP_CLICKS)
    assert s.task.splitlines()[0] == "Configure Docker container resources"
    assert len(s.objectives) == 4 and s.objectives[0] == "Open Docker Desktop on your machine"
    assert s.app == "Docker Desktop"
    assert s.duration_s == 52.065
    assert s.reward is None
    assert s.meta["n_events"] == 3642
    assert len(s.actions) == 34


def test_desktop_session_found_from_a_file_inside_it(assemble, examples_dir):
    s = assemble(examples_dir / DESKTOP_KEYS / "input_log.jsonl")
    assert s.ref.session_id == DESKTOP_KEYS
    assert s.ref.path == str(examples_dir / DESKTOP_KEYS)


def test_desktop_times_relative_to_first_event_even_out_of_order(assemble, examples_dir, tmp_path):
    # move the first line to the end: the time base is still the earliest event
    sess = copy_desktop(examples_dir, tmp_path)
    lines = (sess / "input_log.jsonl").read_bytes().splitlines(keepends=True)
    (sess / "input_log.jsonl").write_bytes(b"".join(lines[1:] + lines[:1]))
    s = assemble(sess)
    ref = assemble(examples_dir / DESKTOP_KEYS)
    assert s.meta["start_ms"] == ref.meta["start_ms"]
    assert s.duration_s == ref.duration_s
    assert [msgspec.to_builtins(a) for a in s.actions] == [msgspec.to_builtins(a) for a in ref.actions]


# -- Clones web -----------------------------------------------------------------------------

def test_web_session_fields(assemble, examples_dir):
    s = assemble(examples_dir / WEB_EVENTS)
    assert s.ref.format == "clones-web"
    assert s.ref.session_id == WEB_ID
    assert s.task == "Draw a cartoon character using jspaint.app"  # the race prompt, not the first quest
    assert len(s.objectives) == 7
    assert s.objectives[0] == "Open the XFCE Activities overview and launch a relevant application"
    assert s.app == "paint"
    assert s.actions == []
    assert s.reward == 0.5393
    assert len(s.events) == 31
    assert s.duration_s == 415.521
    created = int(datetime.fromisoformat("2025-01-23T20:12:17.306+00:00").timestamp() * 1000)
    assert s.meta["start_ms"] == created
    assert s.meta["race_status"] == "expired"
    assert s.meta["n_events"] == 60


def test_web_reward_is_mean_score_and_context_excludes_judge_events(assemble, examples_dir):
    doc = json.loads((examples_dir / WEB_EVENTS).read_text(encoding="utf-8"))
    scores = [e["metadata"]["scoreValue"] for e in doc["events"] if e["type"] == "reward"]
    assert len(scores) == 6
    s = assemble(examples_dir / WEB_EVENTS)
    assert s.reward == pytest.approx(sum(scores) / len(scores), abs=1e-4)
    quests = [m for m in s.events if m.content.startswith("Quest: ")]
    hints = [m for m in s.events if m.content.startswith("Hint: ")]
    assert (len(quests), len(hints)) == (7, 24)
    assert all(m.role == "user" for m in s.events)
    hidden = {e["message"] for e in doc["events"] if e["type"] in ("reasoning", "reward") and e["message"]}
    shown = {m.content.split(": ", 1)[1] for m in s.events}
    assert not hidden & shown
    stamps = [m.timestamp for m in s.events]
    assert stamps == sorted(stamps) and stamps[0] >= 0


def test_web_without_race_record_uses_first_quest(assemble, examples_dir, tmp_path):
    shutil.copy(examples_dir / WEB_EVENTS, tmp_path)
    s = assemble(tmp_path / f"{WEB_ID}.events.json")
    assert s.task == "Open the XFCE Activities overview and launch a relevant application"
    doc = json.loads((examples_dir / WEB_EVENTS).read_text(encoding="utf-8"))
    assert s.meta["start_ms"] == min(e["timestamp"] for e in doc["events"])
    assert s.meta["race_status"] is None
    assert s.reward == 0.5393


# -- SFT messages ---------------------------------------------------------------------------

def test_sft_messages_desktop(assemble, examples_dir):
    s = assemble(examples_dir / DESKTOP_KEYS)
    msgs = to_messages(s)
    first = msgs[0]
    assert (first.role, first.timestamp) == ("user", 0)
    assert first.content.startswith("Implement shopping cart")
    assert "Objectives:\n- Open Flutter E-Commerce project in your IDE\n" in first.content
    rest = msgs[1:]
    assert all(m.role == "assistant" for m in rest)
    assert len(rest) == len(s.actions) == 13
    calls = []
    for m in rest:
        match = CODE_BLOCK.match(m.content)
        assert match, m.content
        calls.append((m.timestamp, match.group(1)))
    stamps = [t for t, _ in calls]
    assert stamps == sorted(stamps)
    assert (1615, "click(1098, 854)") in calls
    assert (3116, 'type("coucou")') in calls
    assert (4797, 'press("Return")') in calls
    assert (8284, 'hotkey("Meta", "Tab")') in calls
    assert (2649, 'app_focus("Word")') in calls
    assert (7439, "scroll(1132, -153, dy=-1441)") in calls
    # the old grader's doubled output must not come back
    assert not any("ccoouu" in c or "scroll(-2)" in c for _, c in calls)


def test_sft_messages_web_context_in_time_order(assemble, examples_dir):
    s = assemble(examples_dir / WEB_EVENTS)
    msgs = to_messages(s)
    assert len(msgs) == 32
    assert msgs[0].content.startswith("Draw a cartoon character using jspaint.app\n\nObjectives:\n- Open the XFCE")
    assert msgs[1].content == "Quest: Open the XFCE Activities overview and launch a relevant application"
    assert all(m.role == "user" for m in msgs)
    stamps = [m.timestamp for m in msgs]
    assert stamps == sorted(stamps)


def _session(actions: list[Action], duration_s: float = 10.0) -> Session:
    return Session(ref=SessionRef("s", "clones-desktop", "/x", ("/x/a",)), task="Do it", actions=actions, duration_s=duration_s)


def test_sft_interleaves_context_and_actions():
    s = _session([Action(kind="click", t_ms=500, x=1, y=2), Action(kind="type", t_ms=1500, text='say "hi"')])
    s.events = [Message(role="user", content="Hint: go", timestamp=1000)]
    msgs = to_messages(s)
    assert [(m.role, m.timestamp) for m in msgs] == [("user", 0), ("assistant", 500), ("user", 1000), ("assistant", 1500)]
    assert msgs[3].content == '```python\ntype("say \\"hi\\"")\n```'


@pytest.mark.parametrize("action, text", [
    (Action(kind="click", t_ms=0, x=10, y=20, button="right"), 'click(10, 20, button="right")'),
    (Action(kind="double_click", t_ms=0, x=1, y=2, button="left"), "double_click(1, 2)"),
    (Action(kind="press_hold", t_ms=100, end_ms=1000, x=3, y=4, button="left"), "press_hold(3, 4, duration_ms=900)"),
    (Action(kind="drag", t_ms=0, x=0, y=0, button="left", path=[(0, 0), (5, 6)]), "drag([(0, 0), (5, 6)])"),
    (Action(kind="scroll", t_ms=0, x=7, y=8, dy=-12.5, ticks=3), "scroll(7, 8, dy=-12.5)"),
    (Action(kind="key", t_ms=0, keys=["Escape"]), 'press("Escape")'),
    (Action(kind="hotkey", t_ms=0, keys=["Ctrl", "c"]), 'hotkey("Ctrl", "c")'),
])
def test_render_action(action, text):
    assert render_action(action) == text


# -- chunking -------------------------------------------------------------------------------

def test_chunking_default_budget_is_one_chunk(assemble, examples_dir, config):
    s = assemble(examples_dir / DESKTOP_KEYS)
    chunks = chunk_session(s, config.chunking)
    assert len(chunks) == 1
    c = chunks[0]
    assert (c.index, c.total, c.start_ms, c.end_ms) == (0, 1, 1615, 9916)
    assert c.lines[0] == "[1.6s] click(1098, 854)"
    assert c.lines == [line for _, line in action_lines(s)]
    assert c.tokens == estimate_tokens("\n".join(c.lines))


def test_chunking_small_budget_covers_every_line_once_in_order(assemble, examples_dir):
    s = assemble(examples_dir / DESKTOP_CLICKS)
    cfg = ChunkingConfig(max_tokens=50, max_chars=12000)
    chunks = chunk_session(s, cfg)
    assert len(chunks) >= 3
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(c.total == len(chunks) for c in chunks)
    flat = [line for c in chunks for line in c.lines]
    assert flat == [line for _, line in action_lines(s)]
    assert len(flat) == 34
    for c in chunks:
        assert c.lines
        assert c.tokens == estimate_tokens("\n".join(c.lines)) <= cfg.max_tokens
        assert c.start_ms <= c.end_ms
    for a, b in zip(chunks, chunks[1:]):
        assert a.end_ms <= b.start_ms


def test_chunking_max_chars_also_limits():
    s = _session([Action(kind="click", t_ms=i * 100, x=i, y=i) for i in range(20)])
    chunks = chunk_session(s, ChunkingConfig(max_tokens=10_000, max_chars=60))
    assert len(chunks) > 1
    assert all(len("\n".join(c.lines)) <= 60 for c in chunks)
    assert sum(len(c.lines) for c in chunks) == 20


def test_chunking_cuts_an_overlong_line():
    s = _session([Action(kind="type", t_ms=0, text="x" * 1000), Action(kind="click", t_ms=100, x=1, y=1)])
    chunks = chunk_session(s, ChunkingConfig(max_tokens=25, max_chars=12000))
    flat = [line for c in chunks for line in c.lines]
    assert len(flat) == 2
    assert flat[0].startswith('[0.0s] type("xxx') and flat[0].endswith("…[line cut]")
    assert all(c.tokens <= 25 for c in chunks)


def test_chunking_tiny_budget_still_respected():
    s = _session([Action(kind="type", t_ms=0, text="x" * 100)])
    chunks = chunk_session(s, ChunkingConfig(max_tokens=4, max_chars=12000))
    assert all(c.tokens <= 4 for c in chunks)


def test_chunking_no_actions_gives_one_empty_chunk(assemble, examples_dir, config):
    s = assemble(examples_dir / WEB_EVENTS)
    chunks = chunk_session(s, config.chunking)
    assert len(chunks) == 1
    c = chunks[0]
    assert (c.index, c.total, c.lines, c.tokens, c.start_ms) == (0, 1, [], 0, 0)
    assert c.end_ms == 415521


# -- bad input ------------------------------------------------------------------------------

def copy_desktop(examples_dir: Path, tmp_path: Path, sid: str = DESKTOP_KEYS) -> Path:
    dest = tmp_path / sid
    shutil.copytree(examples_dir / sid, dest)
    return dest


def replace_line(path: Path, n: int, new: bytes) -> None:
    lines = path.read_bytes().split(b"\n")
    lines[n - 1] = new
    path.write_bytes(b"\n".join(lines))


def assert_input_error(exc: pytest.ExceptionInfo, path: Path, *, line: int | None = None, field: str | None = None) -> InputError:
    err = exc.value
    assert isinstance(err, InputError)
    assert err.path == str(path)
    assert err.line == line
    assert err.field == field
    where = f"{path}:{line}" if line is not None else str(path)
    assert str(err).startswith(f"{where}: " + (f"{field}: " if field else ""))
    return err


def test_truncated_last_line(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    data = log.read_bytes()
    assert data.endswith(b"}\n")
    cut = data[: len(data) - 20]  # mid-way through line 1168, no final newline
    assert cut.count(b"\n") == 1167
    log.write_bytes(cut)
    with pytest.raises(InputError) as exc:
        assemble(sess)
    err = assert_input_error(exc, log, line=1168)
    assert "truncated" in err.message


def test_invalid_json_line_in_the_middle(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    replace_line(log, 42, b'{"event": "mousemove", "data": {"x": 1,')
    with pytest.raises(InputError) as exc:
        assemble(sess)
    err = assert_input_error(exc, log, line=42)
    assert "invalid JSON" in err.message


def test_missing_meta_json(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    (sess / "meta.json").unlink()
    with pytest.raises(InputError) as exc:
        assemble(sess)
    err = assert_input_error(exc, sess / "meta.json")
    assert "missing" in err.message


def test_missing_input_log(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    (sess / "input_log.jsonl").unlink()
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert "missing" in assert_input_error(exc, sess / "input_log.jsonl").message


def test_non_utf8_bytes_in_input_log(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    data = log.read_bytes()
    line_start = sum(len(line) + 1 for line in data.split(b"\n")[:9])  # start of line 10
    offset = line_start + 12
    log.write_bytes(data[:offset] + b"\xff" + data[offset:])
    with pytest.raises(InputError) as exc:
        assemble(sess)
    err = assert_input_error(exc, log, line=10)
    assert f"byte offset {offset}" in err.message
    assert "0xff" in err.message


@pytest.mark.parametrize("content", [b"", b"\n\n  \n"])
def test_empty_input_log(assemble, examples_dir, tmp_path, content):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    log.write_bytes(content)
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert "empty" in assert_input_error(exc, log).message


def test_meta_without_quest_title(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    meta_path = sess / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["quest"]["title"]
    del meta["title"]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert_input_error(exc, meta_path, field="quest.title")


def test_meta_title_falls_back_to_top_level(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    meta_path = sess / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    del meta["quest"]["title"]
    meta["title"] = "Top-level title"
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    assert assemble(sess).task.startswith("Top-level title\n")


def test_meta_objectives_not_strings(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    meta_path = sess / "meta.json"
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    meta["quest"]["objectives"] = ["ok", 3]
    meta_path.write_text(json.dumps(meta), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert_input_error(exc, meta_path, field="quest.objectives")


def test_jsonl_line_that_is_a_list(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    replace_line(log, 5, b'["mousemove", {"x": 1, "y": 2}, 1759835933600]')
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert "object" in assert_input_error(exc, log, line=5).message


def test_jsonl_line_missing_time(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    replace_line(log, 7, b'{"event": "mousemove", "data": {"x": 1.0, "y": 2.0}}')
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert "missing" in assert_input_error(exc, log, line=7, field="time").message


def test_jsonl_line_with_string_time(assemble, examples_dir, tmp_path):
    sess = copy_desktop(examples_dir, tmp_path)
    log = sess / "input_log.jsonl"
    replace_line(log, 3, b'{"event": "mousemove", "data": {"x": 1.0, "y": 2.0}, "time": "soon"}')
    with pytest.raises(InputError) as exc:
        assemble(sess)
    assert "str" in assert_input_error(exc, log, line=3, field="time").message


def web_copy(examples_dir: Path, tmp_path: Path) -> tuple[Path, dict]:
    events = tmp_path / f"{WEB_ID}.events.json"
    shutil.copy(examples_dir / WEB_RACES, tmp_path)
    doc = json.loads((examples_dir / WEB_EVENTS).read_text(encoding="utf-8"))
    return events, doc


def test_web_event_missing_timestamp(assemble, examples_dir, tmp_path):
    events, doc = web_copy(examples_dir, tmp_path)
    del doc["events"][3]["timestamp"]
    events.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        assemble(events)
    assert_input_error(exc, events, field="events[3].timestamp")


def test_web_events_not_a_list(assemble, examples_dir, tmp_path):
    events, doc = web_copy(examples_dir, tmp_path)
    doc["events"] = {"0": doc["events"][0]}
    events.write_text(json.dumps(doc), encoding="utf-8")
    with pytest.raises(InputError) as exc:
        assemble(events)
    assert "list" in assert_input_error(exc, events, field="events").message


def test_web_events_file_not_json(assemble, tmp_path):
    events = tmp_path / f"{WEB_ID}.events.json"
    events.write_text('{\n  "session_id": "x",\n  "events": [\n    oops\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(InputError) as exc:
        assemble(events)
    err = exc.value
    assert err.path == str(events)
    assert str(err).startswith(str(events))
    assert "invalid JSON" in err.message


def test_web_events_file_not_json_names_the_line(assemble, tmp_path):
    events = tmp_path / f"{WEB_ID}.events.json"
    events.write_text('{\n  "session_id": "x",\n  "events": [\n    oops\n  ]\n}\n', encoding="utf-8")
    with pytest.raises(InputError) as exc:
        assemble(events)
    assert exc.value.line == 4
    assert str(exc.value).startswith(f"{events}:4: ")


def test_web_events_file_truncated(assemble, examples_dir, tmp_path):
    events, _ = web_copy(examples_dir, tmp_path)
    data = (examples_dir / WEB_EVENTS).read_bytes()
    events.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError) as exc:
        assemble(events)
    assert exc.value.path == str(events)
    assert "invalid JSON" in exc.value.message
