"""DuckTrack desktop recordings (formats/ducktrack.py) on handmade recordings written as
TheDuckAI/DuckTrack's recorder writes them (ducktrack/recorder.py, metadata.py, app.py,
example/): there is no corpus sample."""

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
from streamgrade.formats.ducktrack import DuckTrack, key_of
from streamgrade.models import Session
from streamgrade.sources.scan import ScanReport, scan

CFG = load_config(env={})
FMT = DuckTrack()
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
T = 150160.965463208  # time.perf_counter() seconds, as in DuckTrack's example recording
META = {"system": "Darwin", "node": "lawn-143-215-60-123.example.edu", "release": "23.0.0",
        "version": "Darwin Kernel Version 23.0.0", "machine": "arm64", "processor": "arm", "id": 13939574105829,
        "screen_width": 1512, "screen_height": 982, "model": "Mac14,9", "scroll_direction": -1,
        "start_time": "2023-10-20 17:19:53", "stop_time": "2023-10-20 17:20:26",
        "obs_record_state_timings": {"OBS_WEBSOCKET_OUTPUT_STARTING": [T - 0.2], "OBS_WEBSOCKET_OUTPUT_STARTED": [T - 0.1],
                                     "OBS_WEBSOCKET_OUTPUT_STOPPING": [T + 16.0]}}


def events() -> list[dict]:
    """A recording: click the address bar, type "Hi duck" + Enter, Cmd+C, pause 10 s,
    scroll down 3 steps and right 1, right-click."""
    ev: list[dict] = []

    def e(dt: float, action: str, **kw) -> None:
        ev.append({"time_stamp": T + dt, "action": action, **kw})

    for i in range(5):
        e(0.01 * i, "move", x=1175.421875 + 10 * i, y=50.421875 - i)
    e(0.10, "click", x=1215.4, y=46.4, button="left", pressed=True)
    e(0.18, "click", x=1215.4, y=46.4, button="left", pressed=False)
    e(0.50, "press", name="shift")
    e(0.52, "press", name="H")
    e(0.58, "release", name="h")  # Shift let go first: the release names the lower case
    e(0.60, "release", name="shift")
    for k, ch in enumerate("i duck"):
        name = "space" if ch == " " else ch
        e(0.70 + 0.1 * k, "press", name=name)
        e(0.74 + 0.1 * k, "release", name=name)
    e(1.50, "press", name="enter")
    e(1.55, "release", name="enter")
    e(2.00, "press", name="cmd")
    e(2.05, "press", name="c")
    e(2.10, "release", name="c")
    e(2.15, "release", name="cmd")
    e(2.50, "pause")
    e(12.50, "resume")
    for k in range(3):
        e(13.00 + 0.05 * k, "scroll", x=700.0, y=500.0, dx=0, dy=-1)
    e(14.00, "scroll", x=700.0, y=500.0, dx=1, dy=0)
    e(15.00, "click", x=300.5, y=200.25, button="right", pressed=True)
    e(15.05, "click", x=300.5, y=200.25, button="right", pressed=False)
    return ev


def recording(folder: Path, evs: list[dict] | None = None, meta: dict | None = META, readme: str | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "events.jsonl").write_text("".join(json.dumps(x) + "\n" for x in (events() if evs is None else evs)))
    if meta is not None:
        (folder / "metadata.json").write_text(json.dumps(meta, indent=4))
    if readme is not None:
        (folder / "README.md").write_text(readme)
    return folder


def make_video(path: Path, seconds: int = 6, fps: int = 5) -> Path:
    av = pytest.importorskip("av")
    np = pytest.importorskip("numpy")
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 320, 208, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0"}
        for n in range(seconds * fps):
            f = av.VideoFrame.from_ndarray(np.full((208, 320, 3), (n * 8) % 256, np.uint8), format="rgb24")
            f.pts = n
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def read(folder: Path) -> Session:
    (ref,) = FMT.find(folder, sorted(os.listdir(folder)))
    return FMT.assemble(ref, CFG)


def test_titled_recording_actions_through_the_shared_extractor(tmp_path: Path):
    s = read(recording(tmp_path / "Say hi to the duck", readme="Type a greeting in the address bar, then copy it.\n"))
    assert s.kind == "demonstration" and s.ref.format == "ducktrack" and s.ref.session_id == "Say hi to the duck"
    assert s.task == "Say hi to the duck\nType a greeting in the address bar, then copy it."
    got = [(a.kind, a.t_ms, a.x, a.y, a.button, a.text, a.keys, a.dx, a.dy, a.ticks) for a in s.actions]
    assert got == [
        ("click", 100, 1215, 46, "left", None, None, None, None, None),
        ("type", 520, None, None, None, "Hi duck", None, None, None, None),
        ("key", 1500, None, None, None, None, ["Return"], None, None, None),
        ("hotkey", 2050, None, None, None, None, ["Meta", "c"], None, None, None),
        ("scroll", 3000, 700, 500, None, None, None, None, -3.0, 3),  # the 10 s pause is cut out
        ("scroll", 4000, 700, 500, None, None, None, 1.0, 0.0, 1),
        ("click", 5000, 300, 200, "right", None, None, None, None, None),
    ]
    assert s.duration_s == 5.05 and s.reward is None and s.video is None and s.video_offset_ms == 0.0
    assert s.meta["paused_s"] == 10.0 and s.meta["monitor"] == {"width": 1512, "height": 982}
    assert s.meta["device_model"] == "Mac14,9" and s.meta["scroll_direction"] == -1 and s.meta["untitled"] is False
    blob = json.dumps(s.meta)
    assert "13939574105829" not in blob and "example.edu" not in blob  # MAC address and host name


def test_task_sources(tmp_path: Path):
    untitled = read(recording(tmp_path / "recording-2023-10-20_17-19-53"))
    assert untitled.task == "recording-2023-10-20_17-19-53" and untitled.meta["untitled"] is True
    described = read(recording(tmp_path / "recording-2023-10-21_09-00-00", readme="Book a table for two."))
    assert described.task == "Book a table for two." and described.meta["untitled"] is False
    annotated = read(recording(tmp_path / "rec3", meta={**META, "task": "Rename the file to notes.txt"}, readme="x"))
    assert annotated.task == "Rename the file to notes.txt"
    bare = read(recording(tmp_path / "Open settings", meta=None))
    assert bare.task == "Open settings" and bare.meta["has_metadata"] is False and len(bare.actions) == 7


def test_pynput_key_names():
    assert key_of("cmd") == ("MetaLeft", "") and key_of("Key.shift_r") == ("ShiftRight", "")
    assert key_of("'a'") == ("KeyA", "a") and key_of("A") == ("KeyA", "A") and key_of("7") == ("Digit7", "7")
    assert key_of("!") == ("Digit1", "!") and key_of("?") == ("Slash", "?") and key_of("é") == ("é", "é")
    assert key_of("\x03") == ("KeyC", "") and key_of("\t") == ("Tab", "") and key_of("<65>") == ("VK65", "")
    assert key_of("f12") == ("F12", "") and key_of("up") == ("UpArrow", "") and key_of("enter") == ("Return", "")
    assert key_of(None) is None and key_of("media_play_pause") == ("media_play_pause", "")


def test_windows_control_characters_and_unnamed_keys(tmp_path: Path):
    evs = [{"time_stamp": 10.0, "action": "press", "name": "ctrl_l"}, {"time_stamp": 10.1, "action": "press", "name": "\x03"},
           {"time_stamp": 10.2, "action": "release", "name": "\x03"}, {"time_stamp": 10.3, "action": "release", "name": "ctrl_l"},
           {"time_stamp": 10.4, "action": "press", "name": None}, {"time_stamp": 10.5, "action": "release", "name": None},
           {"time_stamp": 10.6, "action": "hover"}]
    s = read(recording(tmp_path / "copy", evs, meta={**META, "system": "Windows"}))
    assert [(a.kind, a.keys) for a in s.actions] == [("hotkey", ["Ctrl", "c"])]
    assert s.meta["skipped_events"] == {"unnamed_key": 2, "hover": 1}


def test_video_and_its_offset(tmp_path: Path):
    folder = recording(tmp_path / "Say hi")
    make_video(folder / "2023-10-20 17-19-53.mp4")
    s = read(folder)
    assert s.video == str(folder / "2023-10-20 17-19-53.mp4") and s.meta["has_video"] is True
    assert s.video_offset_ms == pytest.approx(100.0)  # the first event came 0.1 s after OBS started
    assert str(folder / "2023-10-20 17-19-53.mp4") in s.ref.files


def test_detection(tmp_path: Path):
    other = tmp_path / "other"
    other.mkdir()
    (other / "events.jsonl").write_text('{"type": "page_view", "ts": 1}\n')
    (other / "metadata.json").write_text('{"custom_tools": []}')
    assert FMT.find(other, ["events.jsonl", "metadata.json"]) == []
    lone = tmp_path / "lone"
    lone.mkdir()
    (lone / "metadata.json").write_text(json.dumps(META))
    (ref,) = FMT.find(lone, ["metadata.json"])
    with pytest.raises(InputError, match=r"lone/events\.jsonl: file is missing"):
        FMT.assemble(ref, CFG)
    report = ScanReport(keep=20)
    refs = list(scan([tmp_path], report=report))
    assert [(r.format, r.session_id) for r in refs] == [("ducktrack", "lone")]
    assert any(p.endswith("other/events.jsonl") and "ducktrack: the first line has no time_stamp" in why
               for p, why in report.examples)


def test_errors_name_the_line_and_field(tmp_path: Path):
    evs = events()
    evs[5] = {"time_stamp": T + 0.1, "action": "click", "x": 1, "y": 2, "button": "left"}
    folder = recording(tmp_path / "bad", evs)
    with pytest.raises(InputError) as e:
        read(folder)
    assert str(e.value) == f"{folder / 'events.jsonl'}:6: pressed: missing field"
    (folder / "events.jsonl").write_text('{"time_stamp": 1, "action": "move", "x": 1, "y": 2}\n{"time_stamp": ')
    with pytest.raises(InputError, match=r"events\.jsonl:2: truncated or invalid JSON"):
        read(folder)
    (folder / "events.jsonl").write_text('{"time_stamp": 1, "action": "move", "x": 1, "y": 2}\n')
    (folder / "metadata.json").write_text("[1, 2]")
    with pytest.raises(InputError, match=r"metadata\.json: expected a JSON object, got list"):
        read(folder)


JSON = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4) | \
    st.lists(st.integers(), max_size=2)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(line=st.integers(0, 40), field=st.sampled_from(["time_stamp", "action", "x", "y", "button", "pressed", "dx", "dy", "name"]),
       value=JSON, meta_field=st.sampled_from(["obs_record_state_timings", "screen_width", "task", "system", "model"]),
       meta_value=JSON)
def test_fuzz_mutated_recording_gives_session_or_input_error(tmp_path_factory, line, field, value, meta_field, meta_value):
    folder = tmp_path_factory.mktemp("fuzz") / "rec"
    evs = events()
    evs[line % len(evs)][field] = value
    recording(folder, evs, meta={**META, meta_field: meta_value})
    try:
        s = read(folder)
    except InputError as exc:  # a bad time_stamp can make a later line's time out of range
        at = r"\d+" if field == "time_stamp" else str(line % len(evs) + 1)
        assert re.match(rf"{re.escape(str(folder / 'events.jsonl'))}:{at}: ", str(exc)), str(exc)
    else:
        assert s.task and all(a.t_ms >= 0 for a in s.actions)


def test_grade_recordings_with_the_cli_and_frames(tmp_path: Path):
    data = tmp_path / "DuckTrack_Recordings"
    recording(data / "Say hi to the duck", readme="Type a greeting in the address bar, then copy it.")
    make_video(data / "Say hi to the duck" / "2023-10-20 17-19-53.mp4")
    recording(data / "recording-2023-10-20_17-19-53")
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out)],
                         capture_output=True, text=True, env=CLEAN_ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "2 graded, 0 failed" in res.stderr and "not recognised" not in res.stderr
    recs = {r["session_id"]: r for r in map(json.loads, (out / "exports" / "scores.jsonl").read_text().splitlines())}
    assert {r["source_format"] for r in recs.values()} == {"ducktrack"}
    assert recs["Say hi to the duck"]["n_actions"] == 7 and recs["Say hi to the duck"]["duration_s"] == 5.05
    assert list((out / "sessions").glob("*/*/frames/*.jpg")), "frames were taken from the video"
