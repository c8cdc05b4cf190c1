#!/usr/bin/env python3
"""Peak memory of grading a "frame bomb": a tiny video file whose frames are huge.

1. Makes ``--sessions`` (1) copies of the Clones desktop example
   (examples/clones/20251007_131852, 10 s, 13 actions) each with a ``recording.mp4`` of
   ``--size`` x ``--size`` px (8192), H.264 (libx264 ultrafast, no B-frames), 1 frame/s
   over 12 s, one flat picture: about 200 KB on disk, 64 Mpx (96 MiB in YUV 4:2:0, 192 MiB
   in RGB) per decoded frame.
2. Grades them with ``streamgrade grade --judge heuristic`` in a fresh interpreter, twice:
   ``unlimited`` with ``STREAMGRADE_FRAMES__MAX_PIXELS`` set above the frame size (what
   streamgrade did before ``[frames] max_pixels`` existed: decode every frame wanted) and
   ``default`` with the default ``max_pixels`` (the session becomes a failed record before
   any frame is decoded). On a checkout without the setting only ``unlimited`` runs, with
   no variable set.
3. Peak RSS is the kernel's accounting of the child (``getrusage(RUSAGE_CHILDREN)``
   ``ru_maxrss``, KiB on Linux) of a wrapper interpreter that runs only that child.

    python scripts/bench_frame_bomb.py [--size 8192] [--sessions 1]

Prints one line per run and, as the last line, one JSON object: ``size_px``,
``video_bytes``, ``sessions``, ``unlimited`` and ``default`` (each ``{rss_mb, seconds,
graded, failed, error}``; ``default`` null without the setting).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:  # a fresh clone without the editable install
    sys.path.append(str(ROOT / "src"))

import av  # noqa: E402
import numpy as np  # noqa: E402

SESSION = ROOT / "examples" / "clones" / "20251007_131852"


def make_bomb(path: Path, size: int, seconds: int = 12) -> int:
    """Write a ``size`` x ``size`` H.264 mp4 of one flat grey picture at 1 frame/s; its bytes."""
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=1)
        s.width, s.height, s.pix_fmt = size, size, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0"}
        frame = av.VideoFrame(size, size, "yuv420p")  # filled plane by plane: no RGB copy
        for plane in frame.planes:
            plane.update(np.full(plane.buffer_size, 128, np.uint8).tobytes())
        for n in range(seconds):
            frame.pts = n
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return path.stat().st_size


def has_max_pixels() -> bool:
    from streamgrade.config import FramesConfig

    return "max_pixels" in FramesConfig.__struct_fields__


def grade(data: Path, out: Path, max_pixels: int | None) -> dict:
    """Grade ``data`` in a fresh interpreter; peak RSS (MB) of that child, counts, first error."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    env["STREAMGRADE_REPORTS__HTML"] = "false"
    if max_pixels is not None:
        env["STREAMGRADE_FRAMES__MAX_PIXELS"] = str(max_pixels)
    code = ("import resource, subprocess, sys;"
            "p = subprocess.run([sys.executable, '-m', 'streamgrade', 'grade', sys.argv[1], '-o', sys.argv[2],"
            " '--judge', 'heuristic', '--no-progress'], stderr=subprocess.DEVNULL, stdout=subprocess.DEVNULL);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)")
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-c", code, str(data), str(out)], capture_output=True, text=True, env=env,
                         check=True)
    seconds = time.monotonic() - t0
    rss_kb, rc = map(int, res.stdout.split())
    rows = [json.loads(line) for line in (out / "exports" / "scores.jsonl").read_text().splitlines() if line]
    errors = [r.get("error") for r in rows if r.get("status") == "failed"]
    return {"rss_mb": round(rss_kb / 1024, 1), "seconds": round(seconds, 1), "exit": rc,
            "graded": sum(r.get("status") == "graded" for r in rows), "failed": len(errors),
            "error": errors[0] if errors else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", type=int, default=8192, help="width and height of the video, px")
    ap.add_argument("--sessions", type=int, default=1, help="sessions graded at once, each with the video")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        work = Path(tmp)
        video = work / "bomb.mp4"
        nbytes = make_bomb(video, args.size)
        data = work / "data"
        for i in range(args.sessions):
            shutil.copytree(SESSION, data / f"bomb{i}")
            shutil.copy(video, data / f"bomb{i}" / "recording.mp4")
        runs: dict[str, dict | None] = {"unlimited": None, "default": None}
        limited = has_max_pixels()
        runs["unlimited"] = grade(data, work / "out-unlimited", args.size * args.size + 1 if limited else None)
        if limited:
            runs["default"] = grade(data, work / "out-default", None)
    print(f"video {args.size}x{args.size} px, {nbytes} bytes, {args.sessions} session(s)")
    for name, r in runs.items():
        if r is not None:
            print(f"{name:>9}: peak RSS {r['rss_mb']:>8} MB  {r['seconds']:>5} s  graded {r['graded']}  "
                  f"failed {r['failed']}  {r['error'] or ''}")
    print(json.dumps({"size_px": args.size, "video_bytes": nbytes, "sessions": args.sessions, **runs}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
