"""Frames: plan_frames budgets and priorities; extract_frames against a small PyAV-made video
whose frame n is painted with n (left half: tens, right half: units, as gray levels)."""

from __future__ import annotations

from pathlib import Path

import pytest

av = pytest.importorskip("av")
np = pytest.importorskip("numpy")
Image = pytest.importorskip("PIL.Image")

from streamgrade.errors import InputError  # noqa: E402
from streamgrade.extract.frames import (  # noqa: E402
    FrameError,
    blank_or_unchanged,
    extract_frames,
    image_data_url,
    plan_frames,
    target_size,
)
from streamgrade.models import Action, Chunk  # noqa: E402

FPS = 10
W, H = 320, 240


def _level(d: int, step: int = 22) -> int:
    return 20 + d * step


def make_video(path: Path, n_frames: int, *, gop: int = 10, w: int = W, h: int = H) -> Path:
    """An H.264 (libx264 ultrafast, no B-frames) mp4: frame n at n * 100 ms, painted n."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=FPS)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.codec_context.gop_size = gop
        s.options = {"preset": "ultrafast", "bf": "0", "sc_threshold": "0"}
        for n in range(n_frames):
            arr = np.empty((h, w, 3), np.uint8)
            arr[:, : w // 2] = _level(n // 10, 11)  # tens 0-19
            arr[:, w // 2 :] = _level(n % 10)
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = n
            c.mux(s.encode(f))
        c.mux(s.encode())
    return path


def frame_number(path: Path) -> int:
    """The number painted on the frame in the JPEG at ``path``."""
    with Image.open(path) as im:
        a = np.asarray(im.convert("L"), dtype=float)
    h, w = a.shape
    left = a[h // 4 : 3 * h // 4, w // 8 : 3 * w // 8].mean()
    right = a[h // 4 : 3 * h // 4, 5 * w // 8 : 7 * w // 8].mean()
    return round((left - 20) / 11) * 10 + round((right - 20) / 22)


@pytest.fixture(scope="module")
def short_video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "recording.mp4", 30)  # 3 s


@pytest.fixture(scope="module")
def long_video(tmp_path_factory) -> Path:
    return make_video(tmp_path_factory.mktemp("v") / "long.mp4", 200, w=160, h=120)  # 20 s, keyframe every 1 s


class Spy:
    """Wraps ``av.open``: counts opens, records every demuxed packet's pts and every seek."""

    def __init__(self, monkeypatch):
        self.opens = 0
        self.pts: list[int] = []
        self.seeks: list[int] = []
        real = av.open
        spy = self

        class Proxy:
            def __init__(self, c):
                self._c = c

            def demux(self, *a, **k):
                for p in self._c.demux(*a, **k):
                    if p.pts is not None:
                        spy.pts.append(p.pts)
                    yield p

            def seek(self, offset, **k):
                spy.seeks.append(offset)
                return self._c.seek(offset, **k)

            def __getattr__(self, name):
                return getattr(self._c, name)

        def fake_open(*a, **k):
            self.opens += 1
            return Proxy(real(*a, **k))

        monkeypatch.setattr(av, "open", fake_open)


def test_picks_last_frame_at_or_before_each_time(short_video, tmp_path):
    times = [0, 50, 100, 199, 250, 1000, 2950, 9000]
    frames = extract_frames(short_video, times, tmp_path / "f")
    assert [f.t_ms for f in frames] == times
    got = [frame_number(tmp_path / "f" / f.path) for f in frames]
    assert got == [0, 0, 1, 1, 2, 10, 29, 29]
    assert [f.source_ms for f in frames] == [0, 0, 100, 100, 200, 1000, 2900, 2900]
    for f in frames:
        assert f.path == f"{f.t_ms}.jpg" and (f.width, f.height) == (W, H)
        assert f.bytes == (tmp_path / "f" / f.path).stat().st_size
    assert not list((tmp_path / "f").glob("*.tmp"))


def test_downscales_to_longest_side_and_writes_jpeg(short_video, tmp_path):
    [f] = extract_frames(short_video, [1500], tmp_path, longest_side=160, quality=70)
    assert (f.width, f.height) == (160, 120)
    with Image.open(tmp_path / f.path) as im:
        assert im.format == "JPEG" and im.size == (160, 120)
    assert frame_number(tmp_path / f.path) == 15
    assert target_size(1920, 1080, 1280) == (1280, 720)
    assert target_size(1080, 1920, 1280) == (720, 1280)
    assert target_size(800, 600, 1280) == (800, 600)  # never upscaled


def test_decodes_once_in_one_forward_pass(short_video, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    stats: dict[str, int] = {}
    extract_frames(short_video, [2900, 0, 1200, 1300, 2000], tmp_path, stats=stats)
    assert spy.opens == 1 and stats["opened"] == 1
    # every packet read once, in order: no packet (hence no frame) decoded twice
    assert spy.pts == sorted(set(spy.pts)) and len(spy.pts) <= 30
    assert stats["decoded"] <= 30 and stats["written"] == 5


def test_seeks_forward_over_large_gaps(long_video, tmp_path, monkeypatch):
    spy = Spy(monkeypatch)
    stats: dict[str, int] = {}
    times = [500, 9050, 19990]
    frames = extract_frames(long_video, times, tmp_path, stats=stats, seek_gap_ms=1000)
    assert [frame_number(tmp_path / f.path) for f in frames] == [5, 90, 199]
    assert spy.opens == 1 and stats["seeks"] >= 1 and stats["backward_seeks"] == 0
    assert spy.pts == sorted(set(spy.pts))  # seeks only forward, nothing read twice
    assert stats["decoded"] < 100  # far fewer than the 200 frames of the file


def test_cache_skips_existing_files(short_video, tmp_path, monkeypatch):
    first = extract_frames(short_video, [300, 600], tmp_path)
    spy = Spy(monkeypatch)
    stats: dict[str, int] = {}
    again = extract_frames(short_video, [300, 600], tmp_path, stats=stats)
    assert spy.opens == 0 and stats["cached"] == 2
    assert [(f.t_ms, f.width, f.height, f.bytes) for f in again] == [(f.t_ms, f.width, f.height, f.bytes) for f in first]
    assert all(f.cached for f in again)
    (tmp_path / "600.jpg").unlink()
    stats = {}
    mixed = extract_frames(short_video, [300, 600, 900], tmp_path, stats=stats)
    assert spy.opens == 1 and stats["cached"] == 1 and stats["written"] == 2
    assert [frame_number(tmp_path / f.path) for f in mixed] == [3, 6, 9]


def test_errors_name_the_file(tmp_path, short_video, monkeypatch):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(FrameError, match="nope.mp4.*no such video file"):
        extract_frames(missing, [0], tmp_path / "o")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 100)
    with pytest.raises(InputError, match="junk.mp4"):
        extract_frames(junk, [0], tmp_path / "o")
    real_codec = av.Codec

    def no_h264(name, mode="r"):
        if name == "h264" and mode == "r":
            raise av.codec.codec.UnknownCodecError(name) if hasattr(av.codec.codec, "UnknownCodecError") else ValueError(name)
        return real_codec(name, mode)

    monkeypatch.setattr(av, "Codec", no_h264)
    with pytest.raises(FrameError, match=r"recording.mp4.*cannot decode codec 'h264'"):
        extract_frames(short_video, [0], tmp_path / "o2")
    with pytest.raises(ValueError):
        extract_frames(short_video, [-1], tmp_path / "o3")


def test_image_data_url_and_blank_signal(short_video, tmp_path):
    frames = extract_frames(short_video, [1200, 1250, 2500], tmp_path)
    url = image_data_url(tmp_path / frames[0].path)
    assert url.startswith("data:image/jpeg;base64,/9j/")  # JPEG SOI marker, base64
    Image.new("RGB", (64, 48), (0, 0, 0)).save(tmp_path / "black.jpg")
    sig = blank_or_unchanged(frames, tmp_path)
    assert sig["unchanged"] == [[1200, 1250]] and sig["blank"] == []  # the same frame twice
    sig2 = blank_or_unchanged([tmp_path / "black.jpg", tmp_path / frames[2].path])
    assert sig2["blank"] == [0] and sig2["unchanged"] == [] and sig2["blank_fraction"] == 0.5
    with pytest.raises(FrameError, match="gone.jpg"):
        image_data_url(tmp_path / "gone.jpg")


# ---------------------------------------------------------------------------------------
# plan_frames


def click(t: int) -> Action:
    return Action(kind="click", t_ms=t, end_ms=t + 80, x=1, y=1, button="left")


def test_plan_takes_the_moments_that_matter():
    acts = [
        click(1000),
        Action(kind="type", t_ms=3000, end_ms=5000, text="hello"),
        Action(kind="scroll", t_ms=8000, end_ms=9000, dy=-3.0, ticks=3),
        Action(kind="hotkey", t_ms=12000, keys=["cmd", "s"]),
    ]
    got = plan_frames(acts, per_session=60)
    # before the click, after it, after typing and its start, after the scroll and its start, after the hotkey
    assert got == [800, 1380, 3000, 5300, 8000, 9300, 12300]


def test_plan_merges_close_candidates_and_prefers_clicks():
    acts = [Action(kind="move", t_ms=900), click(1000), Action(kind="move", t_ms=1200)]
    assert plan_frames(acts, per_session=60, merge_ms=500) == [800, 1380]
    assert plan_frames(acts, per_session=1) == [800]


def test_plan_budgets_per_chunk_and_per_session():
    acts = [click(t) for t in range(500, 60_000, 1000)]  # 60 clicks, one a second
    chunks = [Chunk(index=i, total=6, start_ms=i * 10_000, end_ms=i * 10_000 + 9000, lines=[], tokens=0) for i in range(6)]
    got = plan_frames(acts, chunks=chunks, per_chunk=3, per_session=60)
    assert len(got) == 18
    for i in range(6):
        assert sum(1 for t in got if i * 10_000 <= t < (i + 1) * 10_000) == 3
    got = plan_frames(acts, chunks=chunks, per_chunk=3, per_session=8)
    assert len(got) == 8
    # every chunk got its first frame before any got a second
    assert all(any(i * 10_000 <= t < (i + 1) * 10_000 for t in got) for i in range(6))
    assert len(plan_frames(acts, per_session=60, merge_ms=500)) == 60  # no chunks: session budget only
    assert plan_frames([], per_session=10) == []
    assert max(plan_frames([Action(kind="type", t_ms=0, end_ms=900)], duration_ms=1000)) == 1000


def test_long_keyframe_interval_seeks_back_at_most_once(tmp_path):
    video = make_video(tmp_path / "longgop.mp4", 150, gop=100, w=160, h=120)  # keyframes at 0 and 10 s
    stats: dict[str, int] = {}
    frames = extract_frames(video, [500, 5000, 6000, 9000, 14000], tmp_path / "o", stats=stats, seek_gap_ms=1000)
    assert [frame_number(tmp_path / "o" / f.path) for f in frames] == [5, 50, 60, 90, 140]
    assert stats["backward_seeks"] == 1 and stats["seeks"] == 1  # then seeking is off
    assert stats["decoded"] <= 150 + 10


def test_single_keyframe_video_with_far_times_terminates(tmp_path: Path):
    """A seek that does not move forward (one keyframe, a decoder still filling up) must not
    loop: decoding goes straight through instead."""
    video = make_video(tmp_path / "one_gop.mp4", 60, gop=1000)  # 6 s, a single keyframe
    stats: dict[str, int] = {}
    frames = extract_frames(video, [1500, 4000, 5500], tmp_path / "f", stats=stats)
    assert [frame_number(tmp_path / "f" / f.path) for f in frames] == [15, 40, 55]
    assert stats["seeks"] <= 1 and stats["packets"] <= 61
