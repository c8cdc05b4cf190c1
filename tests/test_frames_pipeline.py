"""Frames reach the judge: a Clones desktop session with a recording is graded with the
openai judge in chunked mode, and every request body carries its chunk's frames as
image_url parts; the frames are cached under OUT/sessions/<id>/frames/ and referenced from
sft.json (Clones' image entries), results.json and results.html. The real OWA captures
(HEVC video) get frames too."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import respx

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")

from conftest import grade_cli_against_mock, schema_answerer
from streamgrade.config import load_config  # noqa: E402
from streamgrade.judges.openai import OpenAIJudge  # noqa: E402
from streamgrade.pipeline import Pipeline, scan_source  # noqa: E402
from conftest import session_dir, session_dirs
from streamgrade.sinks.report import build_reports

ROOT = Path(__file__).resolve().parents[1]
SESSION = ROOT / "examples" / "clones" / "20251007_131852"  # 10 s, 13 actions
CORPUS = ROOT.parent / "shared" / "corpus"
URL = "http://judge.test/v1/chat/completions"
VERDICT = {"summary": "s", **{k: {"score": 60, "confidence": 0.5, "reason": "r"} for k in ("outcome", "process", "efficiency")}}
CHUNK = {"summary": "so far", "progress": [], "problems": []}


def make_recording(path: Path, seconds: int = 11, fps: int = 5) -> None:
    """A small H.264 screen recording (320x200) whose frame n is painted a level of n."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = 320, 200, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0"}
        for n in range(seconds * fps):
            arr = np.full((200, 320, 3), (n * 4) % 256, np.uint8)
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = n
            c.mux(s.encode(f))
        c.mux(s.encode())


@pytest.mark.asyncio
async def test_frames_reach_the_judge_in_chunked_mode(tmp_path: Path):
    data = tmp_path / "data" / "rec1"
    shutil.copytree(SESSION, data)
    make_recording(data / "recording.mp4")
    out = tmp_path / "out"
    cfg = load_config(env={}, overrides={
        "openai": {"base_url": "http://judge.test/v1", "rpm": 600_000, "http_client": "httpx"},
        "chunking": {"max_tokens": 64, "max_chars": 256},  # several chunks
        "frames": {"per_chunk": 2, "longest_side": 160}})
    bodies = []

    answer = schema_answerer(bodies, VERDICT, CHUNK)

    with respx.mock:
        respx.post(URL).mock(side_effect=answer)
        judge = OpenAIJudge(cfg, api_key="k")
        stats = await Pipeline(cfg, out, judge).run(scan_source([tmp_path / "data"], exclude=[out]))
        await judge.aclose()
    assert stats.graded == 1
    chunk_bodies = [b for b in bodies if b["response_format"]["json_schema"]["name"] == "streamgrade_chunk"]
    assert len(chunk_bodies) >= 2  # chunked mode
    images = 0
    for b in chunk_bodies:
        content = b["messages"][1]["content"]
        assert isinstance(content, list) and content[0]["type"] == "text"
        parts = [p for p in content[1:] if p["type"] == "image_url"]
        assert 1 <= len(parts) <= 2  # the per-chunk budget
        for p in parts:
            assert p["image_url"]["url"].startswith("data:image/jpeg;base64,") and p["image_url"]["detail"] == "low"
        images += len(parts)
    folder = session_dir(out, "rec1")
    results = json.loads((folder / "results.json").read_text())
    # the judge's frames, and the computer-use steps' "before" frames, share the folder
    jpgs = sorted((folder / "frames").glob("*.jpg"), key=lambda p: int(p.stem))
    assert len(results["frames"]) == images
    assert {f["path"] for f in results["frames"] + results["steps"]} == {f"frames/{p.name}" for p in jpgs}
    jpgs = [p for p in jpgs if f"frames/{p.name}" in {f["path"] for f in results["frames"]}]
    assert all(f["width"] == 160 for f in results["frames"])  # longest side
    sft = json.loads((folder / "sft.json").read_text())["messages"]
    entries = [m for m in sft if isinstance(m["content"], dict)]
    assert len(entries) == images and all(m["role"] == "user" and m["content"]["type"] == "image" for m in entries)
    assert [m["timestamp"] for m in sft] == sorted(m["timestamp"] for m in sft)
    build_reports(out)  # the pages: `streamgrade report OUT`
    html = (folder / "results.html").read_text()
    assert f'src="frames/{jpgs[0].name}"' in html


@pytest.mark.skipif(not (CORPUS / "owa").is_dir(), reason=f"shared corpus not found at {CORPUS}")
def test_owa_captures_get_frames_from_their_hevc_video_that_reach_the_judge(tmp_path: Path):
    data = tmp_path / "owa"
    src = CORPUS / "owa" / "projects" / "owa-cli" / "tests" / "data"
    data.mkdir()
    for v in ("0.3.2", "0.4.2", "0.5.1"):
        for ext in ("mcap", "mkv"):
            shutil.copy(src / f"{v}.{ext}", data / f"{v}.{ext}")
    out = tmp_path / "out"
    res, stats = grade_cli_against_mock(data, out)
    assert res.returncode == 0, res.stderr
    total = 0
    for folder in session_dirs(out):
        results = json.loads((folder / "results.json").read_text())
        assert results["frames"] and results["steps"]
        assert len(list((folder / "frames").glob("*.jpg"))) == len({f["path"] for f in results["frames"] + results["steps"]})
        assert max(f["width"] for f in results["frames"]) <= 1280
        total += len(results["frames"])
    assert stats["requests_with_images"] == 3 and stats["image_parts"] == total


def test_mock_provider_log_shows_frames_arriving(tmp_path: Path):
    """The same session through the CLI against the mock: its request log counts the images."""
    data = tmp_path / "data" / "rec1"
    shutil.copytree(SESSION, data)
    make_recording(data / "recording.mp4")
    res, stats = grade_cli_against_mock(tmp_path / "data", tmp_path / "out")
    assert res.returncode == 0, res.stderr
    frames = json.loads((session_dir(tmp_path / "out", "rec1") / "results.json").read_text())["frames"]
    assert frames and stats["requests_with_images"] >= 1
    assert stats["image_parts"] == min(len(frames), 3)  # one chunk: its budget of frames


def test_heuristic_uses_blank_and_unchanged_screens(tmp_path: Path):
    """A recording of one flat, unchanging screen lowers process and efficiency."""
    import anyio

    from streamgrade.judges.heuristic import HeuristicJudge
    from streamgrade.pipeline import Pipeline, scan_source

    def grade(video_levels):
        data = tmp_path / f"d{len(video_levels)}" / "rec"
        shutil.copytree(SESSION, data)
        with av.open(str(data / "recording.mp4"), "w") as c:
            s = c.add_stream("libx264", rate=5)
            s.width, s.height, s.pix_fmt = 160, 100, "yuv420p"
            s.options = {"preset": "ultrafast", "bf": "0"}
            for n in range(55):
                arr = (np.random.default_rng(n).integers(0, 255, (100, 160, 3)) if video_levels == "busy"
                       else np.zeros((100, 160, 3))).astype(np.uint8)
                f = av.VideoFrame.from_ndarray(arr, format="rgb24")
                f.pts = n
                c.mux(s.encode(f))
            c.mux(s.encode())
        out = data.parent / "out"
        cfg = load_config(env={})
        anyio.run(lambda: Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source([data.parent], exclude=[out])))
        return json.loads((session_dir(out, "rec") / "scores.json").read_text())

    busy, blank = grade("busy"), grade("blank!")
    assert blank["components"]["process"] < busy["components"]["process"]
    assert blank["components"]["efficiency"] < busy["components"]["efficiency"]
    assert "frames blank" in blank["reasons"]["process"]["reason"]
