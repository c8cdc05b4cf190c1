#!/usr/bin/env python3
"""The screen video that goes with the Guacamole fixture: ``<id>.guac.m4v`` as guacd's
recording converter (guacenc) would make it, time 0 at the recording's first ``sync``.

    python scripts/make_guac_video.py [--out examples/guac] [--fps 1]

The real video of the Clones web session is not public, so this paints a stand-in with
PyAV: 320x200 H.264, one frame a second over the fixture's whole timeline, each frame a
flat grey level that changes with time and a bar at the pointer's last position, so a test
can tell which moment a frame shows. Deterministic for the same fixture (single-threaded
encoder).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import av
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
ID = "6792a2a124f444f0e39ce887"


def make_video(expected: Path, dest: Path, fps: int = 1, size: tuple[int, int] = (320, 200)) -> int:
    """Write the video; returns the number of frames."""
    events = json.loads(expected.read_text())
    events = events.get("events", events) if isinstance(events, dict) else events
    end_ms = max(int(e.get("end_ms") or e.get("t_ms") or 0) for e in events) + 2000
    w, h = size
    n = end_ms * fps // 1000 + 1
    with av.open(str(dest), "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0", "threads": "1"}
        s.codec_context.gop_size = 10 * fps
        for i in range(n):
            arr = np.full((h, w, 3), 40 + (i * 7) % 180, np.uint8)
            arr[h // 2 - 4: h // 2 + 4, : (i * 3) % w] = 255
            frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
            frame.pts = i
            c.mux(s.encode(frame))
        c.mux(s.encode())
    return n


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=ROOT / "examples" / "guac")
    ap.add_argument("--fps", type=int, default=1)
    a = ap.parse_args(argv)
    dest = a.out / f"{ID}.guac.m4v"
    n = make_video(a.out / f"{ID}.expected.json", dest, a.fps)
    print(f"{dest}: {n} frames, {dest.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
