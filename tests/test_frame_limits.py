"""``[frames] max_pixels``: a video whose frames are larger than the limit is refused before
it is decoded (or, when its container declares a smaller size than it decodes to, at the
first large frame), and its session becomes a failed record naming the file, the size and
the setting. The default admits ordinary screen recordings. (Peak memory before and after:
scripts/bench_frame_bomb.py.)"""

from __future__ import annotations

import json
import shutil
from fractions import Fraction
from pathlib import Path

import anyio
import pytest

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")

from streamgrade.config import FramesConfig, load_config  # noqa: E402
from streamgrade.errors import ConfigError, InputError  # noqa: E402
from streamgrade.extract.frames import DEFAULT_MAX_PIXELS, FrameError, FrameTooLarge, extract_frames  # noqa: E402
from streamgrade.judges.heuristic import HeuristicJudge  # noqa: E402
from streamgrade.pipeline import Pipeline, scan_source  # noqa: E402
from streamgrade.sinks.ledger import Ledger  # noqa: E402
from conftest import session_dir

SESSION = Path(__file__).resolve().parents[1] / "examples" / "clones" / "20251007_131852"  # 10 s, 13 actions


def make_video(path: Path, w: int, h: int, seconds: int = 11, fps: int = 2) -> Path:
    """An H.264 mp4 of ``w`` x ``h`` px, flat grey levels changing each frame."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0"}
        for n in range(seconds * fps):
            f = av.VideoFrame.from_ndarray(np.full((h, w, 3), (n * 20) % 256, np.uint8), format="rgb24")
            f.pts = n
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def _h264_packets(w: int, h: int, n: int, start: int, fps: int) -> list:
    """``n`` frames of ``w`` x ``h`` px as Annex B H.264 packets (SPS/PPS in band)."""
    cc = av.CodecContext.create("libx264", "w")
    cc.width, cc.height, cc.pix_fmt, cc.time_base = w, h, "yuv420p", Fraction(1, fps)
    cc.options = {"preset": "ultrafast", "bf": "0"}
    out = []
    for i in range(n):
        f = av.VideoFrame.from_ndarray(np.full((h, w, 3), (i * 30) % 256, np.uint8), format="rgb24")
        f.pts, f.time_base = start + i, Fraction(1, fps)
        out += cc.encode(f)
    return out + cc.encode(None)


def make_lying_video(path: Path, small=(64, 48), large=(640, 480), fps: int = 5) -> Path:
    """An MPEG-TS whose stream starts at ``small`` px (what the demuxer declares after
    probing) and switches to ``large`` px frames after 3 s (new SPS in band)."""
    with av.open(str(path), "w", format="mpegts") as c:
        s = c.add_stream("h264", rate=fps)
        s.width, s.height, s.pix_fmt = small[0], small[1], "yuv420p"
        for p in _h264_packets(*small, 3 * fps, 0, fps) + _h264_packets(*large, 2 * fps, 3 * fps, fps):
            p.stream, p.time_base = s, Fraction(1, fps)
            c.mux(p)
    return path


def test_default_admits_4k_screens_and_is_documented():
    cfg = load_config(env={})
    assert cfg.frames.max_pixels == FramesConfig().max_pixels == DEFAULT_MAX_PIXELS == 4096 * 4096
    assert 3840 * 2160 <= cfg.frames.max_pixels and 5120 * 2880 <= cfg.frames.max_pixels
    shipped = (Path(__file__).resolve().parents[1] / "configs" / "streamgrade.toml").read_text()
    assert "max_pixels = 16777216" in shipped
    with pytest.raises(ConfigError, match="frames.max_pixels"):
        load_config(env={}, overrides={"frames": {"max_pixels": 0}})


def test_default_admits_a_1080p_recording(tmp_path: Path):
    video = make_video(tmp_path / "hd.mp4", 1920, 1080, seconds=2, fps=2)
    frames = extract_frames(video, [0, 1500], tmp_path / "f")  # default max_pixels
    assert [(f.width, f.height) for f in frames] == [(1280, 720)] * 2


def test_too_large_is_refused_before_decoding(tmp_path: Path):
    video = make_video(tmp_path / "big.mp4", 320, 240, seconds=1)
    stats: dict[str, int] = {}
    with pytest.raises(FrameTooLarge) as info:
        extract_frames(video, [0, 500], tmp_path / "f", max_pixels=160 * 120, stats=stats)
    err = info.value
    assert isinstance(err, InputError) and not isinstance(err, FrameError)  # a failed session, not "no frames"
    assert (err.width, err.height, err.max_pixels) == (320, 240, 160 * 120)
    msg = str(err)
    assert msg.startswith(str(video)) and "320x240 px" in msg and "frames.max_pixels" in msg
    assert stats["opened"] == 1 and stats["decoded"] == 0 and stats["packets"] == 0
    assert not list((tmp_path / "f").glob("*.jpg"))
    # at the limit: admitted
    assert len(extract_frames(video, [0], tmp_path / "g", max_pixels=320 * 240)) == 1


@pytest.mark.parametrize("large", [(640, 480), (320, 288)])  # refused by FFmpeg / by the check of each frame
def test_container_declaring_a_small_size_is_stopped_at_the_first_large_frame(tmp_path: Path, large):
    video = make_lying_video(tmp_path / "lie.ts", large=large)
    with av.open(str(video)) as c:  # what a probe sees: the small size
        cc = c.streams.video[0].codec_context
        assert (cc.width, cc.height) == (64, 48)
    # only the small part wanted: nothing large is decoded, nothing refused
    assert len(extract_frames(video, [0, 1000], tmp_path / "ok", max_pixels=320 * 240)) == 2
    stats: dict[str, int] = {}
    w, h = large
    with pytest.raises(FrameTooLarge, match=rf"lie.ts: .*{w}x{h} px.*64x48.*frames.max_pixels") as info:
        # decode straight through (seeks in MPEG-TS, which has no index, may land off a keyframe)
        extract_frames(video, [0, 1000, 3500], tmp_path / "f", max_pixels=320 * 240, seek_gap_ms=60_000, stats=stats)
    assert (info.value.width, info.value.height) == large
    assert stats["decoded"] <= 3 * 5 + 1  # the small frames, then at most the first large one: stop


def test_session_with_too_large_video_is_a_failed_input_record(tmp_path: Path):
    data = tmp_path / "data" / "rec1"
    shutil.copytree(SESSION, data)
    make_video(data / "recording.mp4", 320, 240)
    out = tmp_path / "out"
    cfg = load_config(env={}, overrides={"frames": {"max_pixels": 160 * 120}})
    stats = anyio.run(lambda: Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source([tmp_path / "data"], exclude=[out])))
    assert stats.failed == 1 and stats.graded == 0
    scores = json.loads((session_dir(out, "rec1") / "scores.json").read_text())
    assert scores["status"] == "failed"
    assert str(data / "recording.mp4") in scores["error"] and "320x240 px" in scores["error"]
    assert "frames.max_pixels" in scores["error"]
    assert not list((out / "sessions").rglob("*.jpg"))
    ledger = Ledger(out / "state.sqlite")
    row = ledger.get("rec1")
    ledger.close()
    assert row.status == "failed" and row.error_kind == "input"
    # the default admits the same recording
    out2 = tmp_path / "out2"
    cfg2 = load_config(env={})
    stats2 = anyio.run(lambda: Pipeline(cfg2, out2, HeuristicJudge(cfg2)).run(scan_source([tmp_path / "data"], exclude=[out2])))
    assert stats2.graded == 1
    assert json.loads((session_dir(out2, "rec1") / "results.json").read_text())["frames"]
