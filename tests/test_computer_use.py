"""Computer-use SFT with screenshots (exports/computer_use.py): steps with a "before"
frame each (extract/steps.py), actions placed on the recorded screen (extract/screens.py)
and written as pyautogui calls (exports/cu_actions.py), in OpenAI's vision shape and
LLaMA-Factory's multimodal ShareGPT shape, beside the images they reference.

End to end: a Clones desktop session with a recording (the real input log of
examples/clones/20251007_131852, its click at (2075, -448) on a monitor above the primary
one, a painted stand-in video), the same kind of session without a recording, a Clones web
session with its Guacamole recording and video (examples/guac), a handmade DuckTrack
recording with an OBS-like video, and the real OWA captures of the shared corpus."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import anyio
import pytest

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")
from PIL import Image  # noqa: E402

from streamgrade.config import load_config  # noqa: E402
from streamgrade.exports.build import NothingToExport  # noqa: E402
from streamgrade.exports.computer_use import build_computer_use  # noqa: E402
from streamgrade.judges.heuristic import HeuristicJudge  # noqa: E402
from streamgrade.pipeline import Pipeline, scan_source  # noqa: E402
from test_format_ducktrack import recording as duck_recording  # noqa: E402
from test_frames_pipeline import make_recording  # noqa: E402
from conftest import session_dir, session_dirs

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
OWA = CORPUS / "owa" / "projects" / "owa-cli" / "tests" / "data"
ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def paint_video(path: Path, w: int, h: int, seconds: int = 20, fps: int = 5) -> None:
    """A small H.264 video of ``w`` x ``h`` px, frame n a grey level of n."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0"}
        for n in range(seconds * fps):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), (n * 4) % 256, np.uint8), format="rgb24")
            f.pts = n
            c.mux(s.encode(f))
        c.mux(s.encode())


def make_data(root: Path) -> Path:
    data = root / "data"
    shutil.copytree(ROOT / "examples" / "clones" / "20251007_131852", data / "rec1")
    make_recording(data / "rec1" / "recording.mp4")  # 320x200: the 1440x900 pt screen's aspect
    shutil.copytree(ROOT / "examples" / "clones" / "20250817_232256", data / "norec")
    shutil.copytree(ROOT / "examples" / "clones" / "web", data / "web")
    for name in ("6792a2a124f444f0e39ce887.guac", "6792a2a124f444f0e39ce887.guac.m4v"):
        shutil.copy(ROOT / "examples" / "guac" / name, data / "web" / name)
    duck = duck_recording(data / "duck" / "Search duck", readme="Type hi duck into the address bar")
    paint_video(duck / "obs.mp4", 302, 196)  # the 1512x982 pt screen, scaled
    if OWA.is_dir():
        (data / "owa").mkdir()
        for v in ("0.3.2", "0.4.2", "0.5.1"):
            for ext in ("mcap", "mkv"):
                shutil.copy(OWA / f"{v}.{ext}", data / "owa" / f"{v}.{ext}")
    return data


def grade(data: Path, out: Path, **frames) -> None:
    cfg = load_config(env={}, overrides={"frames": frames} if frames else None)
    anyio.run(lambda: Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source([data], exclude=[out])))


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("cu")
    data = make_data(root)
    grade(data, root / "out")
    return data, root / "out"


@pytest.fixture(scope="module")
def exported(graded, tmp_path_factory):
    _, out = graded
    dest = tmp_path_factory.mktemp("cu_export")
    old = os.umask(0o022)
    try:
        res = build_computer_use(out, dest)
    finally:
        os.umask(old)
    rows = {json.loads(line)["metadata"]["session_id"]: json.loads(line)
            for line in (dest / "computer_use.sharegpt.jsonl").read_text().splitlines()}
    oa = {json.loads(line)["metadata"]["session_id"]: json.loads(line)
          for line in (dest / "computer_use.openai.jsonl").read_text().splitlines()}
    return res, dest, rows, oa


def test_every_recording_is_a_row_and_the_one_without_is_left_out_with_its_reason(exported):
    res, dest, rows, oa = exported
    expected = {"rec1", "Search duck", "6792a2a124f444f0e39ce887"} | (
        {"owa.0.3.2", "owa.0.4.2", "owa.0.5.1"} if OWA.is_dir() else set())
    assert set(rows) == set(oa) == expected
    assert res.rows == res.openai_rows == len(expected) and res.considered == len(expected) + 1
    assert res.rejected == [("norec", "no screen recording: nothing to show before each action")]
    assert res.images == sum(len(r["images"]) for r in rows.values())
    assert {r["metadata"]["source_format"] for r in rows.values()} >= {"clones-desktop", "clones-web", "ducktrack"}


def test_every_referenced_image_exists_opens_with_pillow_and_has_one_image_tag(exported):
    res, dest, rows, oa = exported
    for sid, row in rows.items():
        tags = [c["value"].count("<image>") for c in row["conversations"]]
        assert sum(tags) == len(row["images"]) and all(t == 1 for t in tags[::2]) and not any(tags[1::2])
        for rel in row["images"]:
            assert not Path(rel).is_absolute() and rel.startswith("images/")
            with Image.open(dest / rel) as im:  # LLaMA-Factory joins media_dir (the dataset folder)
                im.verify()
            assert (dest / rel).stat().st_mode & 0o777 == 0o644
        urls = [p["image_url"]["url"] for m in oa[sid]["messages"] if isinstance(m["content"], list)
                for p in m["content"] if p["type"] == "image_url"]
        assert urls == row["images"]
    for name in ("computer_use.openai.jsonl", "computer_use.sharegpt.jsonl", "dataset_info.json"):
        assert (dest / name).stat().st_mode & 0o777 == 0o644
    info = json.loads((dest / "dataset_info.json").read_text())
    assert info["streamgrade_computer_use"]["file_name"] == "computer_use.sharegpt.jsonl"
    assert info["streamgrade_computer_use"]["columns"]["images"] == "images"


def test_sharegpt_rows_keep_llamafactory_turn_rules(exported):
    """LLaMA-Factory's SharegptDatasetConverter (src/llamafactory/data/converter.py): human
    (or observation) at even positions, gpt at odd ones, an even count; mm_plugin: as many
    <image> tags as images."""
    _, _, rows, _ = exported
    for row in rows.values():
        conv = row["conversations"]
        assert len(conv) % 2 == 0 and len(conv) >= 2
        assert [c["from"] for c in conv] == ["human", "gpt"] * (len(conv) // 2)
        assert row["system"].startswith("You are a computer-use agent")
        assert all(c["value"].startswith("pyautogui.") for c in conv[1::2])


def test_openai_rows_pass_the_sdk_types_and_the_vision_fine_tuning_rules(exported):
    pydantic = pytest.importorskip("pydantic")
    types = pytest.importorskip("openai.types.chat")
    messages = pydantic.TypeAdapter(list[types.ChatCompletionMessageParam])
    part = pydantic.TypeAdapter(types.ChatCompletionContentPartParam)
    _, _, _, oa = exported
    for row in oa.values():
        msgs = row["messages"]
        messages.validate_python(msgs, strict=True)
        assert msgs[0]["role"] == "system" and msgs[-1]["role"] == "assistant"
        images = 0
        for m in msgs:
            if isinstance(m["content"], list):
                assert m["role"] == "user"  # images only in user messages
                for p in m["content"]:
                    part.validate_python(p, strict=True)  # (Iterable content is not checked above)
                    images += p["type"] == "image_url"
        assert 1 <= images <= 64


def test_clones_click_on_the_monitor_above_is_dropped_and_coordinates_are_screen_points(exported):
    _, dest, rows, oa = exported
    md = rows["rec1"]["metadata"]
    assert md["screen"]["width"] == 1440 and md["screen"]["height"] == 900 and md["screen"]["units"] == "pt"
    assert md["screen"]["approximate"] and "scale 2" in md["screen"]["source"]
    assert (md["screen"]["image_width"], md["screen"]["image_height"]) == (320, 200)
    assert {"action": 6, "reason": "click at (2075, -448) is outside the recorded screen"} in md["dropped"]
    assert len(md["dropped"]) == 3  # two clicks and a scroll above the primary display
    assert "1440x900 points" in rows["rec1"]["system"] and oa["rec1"]["messages"][0]["content"] == rows["rec1"]["system"]
    placed = [a for step in md["actions"] for a in step if "x" in a]
    assert placed and all(0 <= a["x"] < 1440 and 0 <= a["y"] < 900 for a in placed)
    assert all(0 <= a["x_rel"] < 1 and 0 <= a["y_rel"] < 1 for a in placed)
    first_user = oa["rec1"]["messages"][1]["content"]
    assert first_user[0]["type"] == "image_url" and first_user[1]["text"].startswith("Task: Implement shopping cart")
    assert rows["rec1"]["conversations"][1]["value"] == "pyautogui.click(x=1098, y=854)"
    assert "pyautogui.hotkey('command', 'tab')" in [c["value"] for c in rows["rec1"]["conversations"]]


def test_each_observation_is_taken_before_its_step(exported, graded):
    _, dest, rows, _ = exported
    _, out = graded
    for sid in ("rec1", "Search duck", "6792a2a124f444f0e39ce887"):
        row = rows[sid]
        folder = dest / row["images"][0].rsplit("/", 2)[1]
        results = json.loads((next(p for p in session_dirs(out) if p.name == folder.name) / "results.json").read_text())
        offset = results["video"]["offset_ms"]
        for rel, step in zip(row["images"], row["metadata"]["actions"]):
            video_ms = int(Path(rel).stem)  # frames are named by video time
            assert video_ms - offset <= step[0]["t_ms"], (sid, rel, step[0])


def test_owa_window_capture_places_clicks_in_the_window_and_drops_the_rest(exported):
    if not OWA.is_dir():
        pytest.skip(f"shared corpus not found at {CORPUS}")
    _, _, rows, _ = exported
    md = rows["owa.0.4.2"]["metadata"]
    assert md["screen"]["origin"] == [366, 307] and md["screen"]["approximate"]  # rect (360, 307) + 6 px border
    assert "window capture" in md["screen"]["source"]
    assert "pyautogui.click(x=385, y=329)" in [c["value"] for c in rows["owa.0.4.2"]["conversations"]]  # (751, 636)
    assert md["dropped"] == [{"action": 4, "reason": "click at (1987, 1294) is outside the recorded screen"}]
    assert rows["owa.0.5.1"]["metadata"]["screen"]["width"] == 1025  # source_shape, not the 1026 px video


def test_ducktrack_row_is_in_points_with_its_typing_keys_and_scrolls(exported):
    _, _, rows, _ = exported
    row = rows["Search duck"]
    assert row["metadata"]["screen"]["units"] == "pt" and row["metadata"]["screen"]["width"] == 1512
    assert [c["value"] for c in row["conversations"][1::2]] == [
        "pyautogui.click(x=1215, y=46)", "pyautogui.write('Hi duck')", "pyautogui.press('enter')",
        "pyautogui.hotkey('command', 'c')", "pyautogui.scroll(-3, x=700, y=500)", "pyautogui.hscroll(1, x=700, y=500)",
        "pyautogui.rightClick(x=300, y=200)"]
    assert "Type hi duck into the address bar" in row["conversations"][0]["value"]


def test_web_row_interleaves_quests_and_hints_and_keeps_strokes(exported):
    _, _, rows, _ = exported
    row = rows["6792a2a124f444f0e39ce887"]
    assert row["metadata"]["screen"]["width"] == 1024 and "Guacamole" in row["metadata"]["screen"]["source"]
    assert len(row["images"]) == 50  # [frames] max_steps: 139 actions grouped
    humans = [c["value"] for c in row["conversations"][::2]]
    assert "Hint: Click the Applications Menu" in humans[0] and any(h.startswith("<image>\nQuest:") for h in humans[1:])
    assert any("pyautogui.mouseDown(button='left')" in c["value"] for c in row["conversations"][1::2])


def test_inline_images_are_data_urls_for_openai_and_paths_for_sharegpt(graded, tmp_path):
    _, out = graded
    res = build_computer_use(out, tmp_path / "x", inline_images=True)
    first = json.loads((tmp_path / "x" / "computer_use.openai.jsonl").read_text().splitlines()[0])
    # the upload-ready file keeps OpenAI's keys only; metadata stays in the ShareGPT file
    assert "metadata" not in first and set(first) == {"messages"}
    url = first["messages"][1]["content"][0]["image_url"]["url"]
    assert url.startswith("data:image/jpeg;base64,")
    share = json.loads((tmp_path / "x" / "computer_use.sharegpt.jsonl").read_text().splitlines()[0])
    assert share["images"][0].startswith("images/") and res.rows >= 3
    assert share["metadata"]["session_id"]


def test_hf_datasets_loads_both_files(exported, tmp_path):
    datasets = pytest.importorskip("datasets")
    _, dest, rows, _ = exported
    for name in ("computer_use.openai.jsonl", "computer_use.sharegpt.jsonl"):
        ds = datasets.load_dataset("json", data_files=str(dest / name), split="train", cache_dir=str(tmp_path))
        assert ds.num_rows == len(rows)


def test_steps_taken_at_export_when_graded_without_them_and_reason_when_the_video_is_gone(tmp_path):
    data = tmp_path / "data"
    shutil.copytree(ROOT / "examples" / "clones" / "20251007_131852", data / "rec1")
    make_recording(data / "rec1" / "recording.mp4")
    grade(data, tmp_path / "out", steps=False)
    assert json.loads((session_dir(tmp_path / "out", "rec1") / "results.json").read_text())["steps"] == []
    res = build_computer_use(tmp_path / "out", tmp_path / "e1")
    assert res.rows == 1 and res.images == 9  # 12 steps, 3 of them above the primary display
    (data / "rec1" / "recording.mp4").unlink()
    with pytest.raises(NothingToExport) as err:
        build_computer_use(tmp_path / "out", tmp_path / "e2")
    assert "is gone" in err.value.result.rejected[0][1] and not (tmp_path / "e2" / "computer_use.openai.jsonl").exists()


def test_a_new_export_prunes_images_no_row_references(graded, tmp_path):
    _, out = graded
    build_computer_use(out, tmp_path)
    stale = tmp_path / "images" / "gone-session"
    stale.mkdir()
    (stale / "1.jpg").write_bytes(b"x")
    (tmp_path / "images" / "rec1" / "999999.jpg").write_bytes(b"x")
    build_computer_use(out, tmp_path)
    assert not stale.exists() and not (tmp_path / "images" / "rec1" / "999999.jpg").exists()
    assert (tmp_path / "images" / "rec1").is_dir()


def test_cli_export_format_computer_use(graded, tmp_path):
    _, out = graded
    cmd = [sys.executable, "-m", "streamgrade", "export", str(out), "--format", "computer-use"]
    res = subprocess.run([*cmd, "-o", str(tmp_path / "cu")], capture_output=True, text=True, env=ENV)
    assert res.returncode == 0, res.stderr
    assert "computer-use rows" in res.stderr and "left out norec: no screen recording" in res.stderr
    assert (tmp_path / "cu" / "computer_use.sharegpt.jsonl").is_file()
    res = subprocess.run([*cmd, "-o", str(tmp_path / "none"), "--source-format", "tau-bench"],
                         capture_output=True, text=True, env=ENV)
    assert res.returncode == 3 and not (tmp_path / "none" / "computer_use.openai.jsonl").exists()


def test_broken_results_or_frames_are_left_out_with_the_file_named_never_a_crash(graded, tmp_path):
    _, out = graded
    copy = tmp_path / "out"
    shutil.copytree(out / "sessions", copy / "sessions")
    results = session_dir(copy, "rec1") / "results.json"
    doc = json.loads(results.read_text())
    doc["steps"], doc["video"] = [], "not an object"
    results.write_text(json.dumps(doc))
    duck = next(p for p in session_dirs(copy) if p.name.startswith("Search_duck"))
    frame = json.loads((duck / "results.json").read_text())["steps"][0]["path"]
    (duck / frame).write_bytes(b"not a jpeg")
    res = build_computer_use(copy, tmp_path / "e")
    reasons = dict(res.rejected)
    assert reasons["rec1"].startswith(f"{results}: unexpected content (AttributeError")
    assert reasons["Search duck"].startswith(f"image {Path(frame).name} does not open")
    rows = [json.loads(x)["metadata"]["session_id"] for x in (tmp_path / "e" / "computer_use.sharegpt.jsonl").read_text().splitlines()]
    assert "Search duck" not in rows and not (tmp_path / "e" / "images" / duck.name).exists()


def test_a_literal_image_tag_in_typed_text_keeps_the_row_out_of_sharegpt_only(tmp_path):
    data = tmp_path / "data"
    events = [{"time_stamp": 10.0 + 0.1 * i, "action": "press" if i % 2 == 0 else "release", "name": ch}
              for i, ch in enumerate(c for c in "<image>" for _ in (0, 1))]
    duck = duck_recording(data / "tagged", evs=[{"time_stamp": 9.9, "action": "move", "x": 5, "y": 5}, *events])
    paint_video(duck / "obs.mp4", 302, 196, seconds=4)
    grade(data, tmp_path / "out")
    res = build_computer_use(tmp_path / "out", tmp_path / "e")
    assert (res.rows, res.openai_rows) == (0, 1)
    assert "literal <image>" in dict(res.rejected)["tagged"]
    assert "pyautogui.write('<image>')" in (tmp_path / "e" / "computer_use.openai.jsonl").read_text()


def test_results_from_before_steps_existed_are_left_out_with_what_to_do(graded, tmp_path):
    _, out = graded
    shutil.copytree(session_dir(out, "rec1"), session_dir(tmp_path / "out", "rec1"))
    results = session_dir(tmp_path / "out", "rec1") / "results.json"
    doc = json.loads(results.read_text())
    del doc["video"], doc["steps"]
    results.write_text(json.dumps(doc))
    with pytest.raises(NothingToExport) as err:
        build_computer_use(tmp_path / "out", tmp_path / "e")
    assert err.value.result.rejected == [("rec1", "no step frames: graded before computer-use steps existed "
                                                  "(results.json has no video); grade it again into a new output folder")]
