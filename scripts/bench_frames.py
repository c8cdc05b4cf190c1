#!/usr/bin/env python3
"""Benchmark: streamgrade's one-pass frame extraction vs one ffmpeg process per frame.

1. Makes (once; reused from ``--workdir`` when present) a test recording with PyAV:
   ``--minutes`` (10) of 1280x720 at ``--fps`` (10), H.264 via libx264 ``preset=ultrafast``,
   no B-frames, a keyframe every ``--gop-s`` (2 s; a short keyframe interval favours the
   per-frame ffmpeg way, whose input seek lands on the keyframe before each time, so the
   comparison is conservative). The picture looks like a desktop: a static window with
   text-like stripes, a moving cursor-sized block and a counter bar that changes each frame.
2. Wants ``--frames`` (300) timestamps evenly spread over the recording (on frame times).
3. streamgrade: :func:`streamgrade.extract.frames.extract_frames` (one open, one forward
   decode with forward seeks, Pillow JPEG on worker threads).
4. Clones' way: one ``ffmpeg -ss T -i video -frames:v 1 -vf scale=W:H -q:v 3 out.jpg``
   process per frame, sequentially, with Debian's ``/usr/bin/ffmpeg`` (or ``--ffmpeg``).
5. Checks that both took the same pictures (mean absolute difference of 32x32 grayscale
   thumbnails, 0-255 levels) and prints a table; the last line is one JSON object
   ``{frames, streamgrade_s, ffmpeg_per_frame_s, ratio}`` (ratio = ffmpeg / streamgrade).

If ffmpeg is missing the script says so, prints the JSON with nulls and exits with 2.

    /work/venv/bin/python scripts/bench_frames.py [--workdir /tmp/sg-bench-frames]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # a fresh clone without the editable install
    sys.path.append(str(ROOT / "src"))

import av  # noqa: E402
import numpy as np  # noqa: E402
from PIL import Image, ImageChops, ImageStat  # noqa: E402

from streamgrade.extract.frames import extract_frames, target_size  # noqa: E402


def make_recording(path: Path, *, minutes: float, fps: int, width: int, height: int, gop_s: float) -> float:
    """Write the test recording; seconds taken."""
    t0 = time.perf_counter()
    n_frames = int(minutes * 60 * fps)
    base = np.full((height, width, 3), 236, np.uint8)  # desktop
    base[40 : height - 40, 60 : width - 60] = 252  # window
    base[40:72, 60 : width - 60] = (200, 205, 215)  # title bar
    for y in range(100, height - 60, 22):  # text-like lines
        base[y : y + 9, 90 : 90 + ((y * 7919) % (width - 300)) + 100] = 60
    tmp = path.with_suffix(".part.mp4")
    with av.open(str(tmp), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = width, height, "yuv420p"
        s.codec_context.gop_size = max(1, round(gop_s * fps))
        s.options = {"preset": "ultrafast", "bf": "0", "sc_threshold": "0", "crf": "23"}
        for n in range(n_frames):
            arr = base.copy()
            x = 80 + (n * 13) % (width - 200)
            y = 90 + (n * 7) % (height - 200)
            arr[y : y + 24, x : x + 16] = (20, 20, 20)  # cursor-ish block
            bar = (n % 1000) * (width - 200) // 1000
            arr[height - 30 : height - 14, 100 : 100 + bar] = (40, 120, 220)  # counter bar
            f = av.VideoFrame.from_ndarray(arr, format="rgb24")
            f.pts = n
            c.mux(s.encode(f))
        c.mux(s.encode())
    os.replace(tmp, path)
    return time.perf_counter() - t0


def thumb(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.draft("L", (64, 64))
        return im.convert("L").resize((32, 32))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", default="/tmp/sg-bench-frames")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--fps", type=int, default=10)
    ap.add_argument("--gop-s", type=float, default=2.0)
    ap.add_argument("--frames", type=int, default=300)
    ap.add_argument("--longest-side", type=int, default=1280)
    ap.add_argument("--ffmpeg", default=shutil.which("ffmpeg") or "/usr/bin/ffmpeg")
    args = ap.parse_args()

    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    width, height = 1280, 720
    video = work / f"recording-{args.minutes:g}min-{args.fps}fps-gop{args.gop_s:g}s.mp4"
    if video.exists():
        print(f"recording: {video} (reused, {video.stat().st_size / 1e6:.1f} MB)")
    else:
        took = make_recording(video, minutes=args.minutes, fps=args.fps, width=width, height=height, gop_s=args.gop_s)
        print(f"recording: {video} ({video.stat().st_size / 1e6:.1f} MB, made in {took:.1f} s: "
              f"libx264 ultrafast, {args.fps} fps, keyframe every {args.gop_s:g} s, no B-frames)")

    dur_ms = int(args.minutes * 60_000)
    step = dur_ms / args.frames
    frame_ms = 1000 / args.fps
    times = sorted({int(round((i + 0.5) * step / frame_ms) * frame_ms) for i in range(args.frames)})
    w, h = target_size(width, height, args.longest_side)

    sg_dir = work / "streamgrade"
    shutil.rmtree(sg_dir, ignore_errors=True)
    stats: dict[str, int] = {}
    t0 = time.perf_counter()
    frames = extract_frames(video, times, sg_dir, longest_side=args.longest_side, quality=80, stats=stats)
    sg_s = time.perf_counter() - t0
    sg_bytes = sum(f.bytes for f in frames)

    rows = [("streamgrade extract_frames (PyAV, 1 open)", len(frames), sg_s, sg_bytes)]
    ff_s = None
    diffs: list[float] = []
    ffmpeg = args.ffmpeg if args.ffmpeg and Path(args.ffmpeg).exists() else None
    if ffmpeg is None:
        print(f"ffmpeg NOT FOUND ({args.ffmpeg}): install Debian's ffmpeg (apt-get install -y ffmpeg) "
              "to run the per-frame comparison; only streamgrade was timed.")
    else:
        ver = subprocess.run([ffmpeg, "-version"], capture_output=True, text=True).stdout.splitlines()[0]
        print(f"ffmpeg: {ffmpeg} ({ver})")
        ff_dir = work / "ffmpeg"
        shutil.rmtree(ff_dir, ignore_errors=True)
        ff_dir.mkdir()
        t0 = time.perf_counter()
        for t in times:
            subprocess.run(
                [ffmpeg, "-hide_banner", "-loglevel", "error", "-nostdin", "-ss", f"{t / 1000:.3f}", "-i", str(video),
                 "-frames:v", "1", "-vf", f"scale={w}:{h}", "-q:v", "3", "-y", str(ff_dir / f"{t}.jpg")],
                check=True,
            )
        ff_s = time.perf_counter() - t0
        ff_bytes = sum((ff_dir / f"{t}.jpg").stat().st_size for t in times)
        rows.append(("ffmpeg, one process per frame (Debian)", len(times), ff_s, ff_bytes))
        for t in times:
            diffs.append(ImageStat.Stat(ImageChops.difference(thumb(sg_dir / f"{t}.jpg"), thumb(ff_dir / f"{t}.jpg"))).mean[0])

    print()
    print(f"{'method':<44} {'frames':>6} {'seconds':>8} {'ms/frame':>9} {'frames/s':>9} {'avg KB':>7}")
    for name, n, secs, nbytes in rows:
        print(f"{name:<44} {n:>6} {secs:>8.2f} {1000 * secs / n:>9.1f} {n / secs:>9.1f} {nbytes / n / 1024:>7.1f}")
    print(f"\nstreamgrade: {stats['packets']} packets read, {stats['decoded']} frames decoded of "
          f"{int(args.minutes * 60 * args.fps)}, {stats['seeks']} forward seeks, {stats['backward_seeks']} backward; "
          f"{w}x{h} JPEG q80")
    if diffs:
        print(f"same pictures: mean |streamgrade - ffmpeg| of 32x32 gray thumbnails: "
              f"max {max(diffs):.2f}, mean {sum(diffs) / len(diffs):.2f} levels (0-255)")
    ratio = round(ff_s / sg_s, 1) if ff_s else None
    print(json.dumps({"frames": len(times), "streamgrade_s": round(sg_s, 3),
                      "ffmpeg_per_frame_s": round(ff_s, 3) if ff_s else None, "ratio": ratio}))
    return 0 if ffmpeg else 2


if __name__ == "__main__":
    sys.exit(main())
