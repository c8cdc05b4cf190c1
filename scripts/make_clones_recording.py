#!/usr/bin/env python3
"""Paint a stand-in ``recording.mp4`` for a Clones desktop session that has none.

The public Clones fixtures (examples/clones/) ship their input logs but not their screen
recordings. This script reads the session's own actions (streamgrade's extraction of its
``input_log.jsonl``) and paints an H.264 video of the primary screen, scaled, in which
every action leaves a mark from its time on: a filled square where a click lands, a bar
for a scroll, a line of text for typing and key presses, a title bar naming the focused
app. It is a stand-in, not the user's screen: it lets the frame pipeline, augment and the
computer-use export run end to end on real action timelines.

    python scripts/make_clones_recording.py examples/clones/20251007_131852 /tmp/rec/recording.mp4

Writes the video (``--fps``, default 5; ``--width``, default 480 px) and prints its size and
length. Needs PyAV, NumPy and Pillow (streamgrade's own dependencies).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("session", type=Path, help="a Clones desktop session folder (input_log.jsonl + meta.json)")
    ap.add_argument("video", type=Path, help="the .mp4 to write")
    ap.add_argument("--fps", type=int, default=5)
    ap.add_argument("--width", type=int, default=480)
    args = ap.parse_args(argv)

    import av
    import numpy as np
    from PIL import Image, ImageDraw

    from streamgrade.config import load_config
    from streamgrade.formats import FORMATS
    from streamgrade.models import SessionRef

    cfg = load_config(env={})
    files = tuple(str(p) for p in sorted(args.session.iterdir()) if p.is_file())
    ref = SessionRef(session_id=args.session.name, format="clones-desktop", path=str(args.session), files=files)
    session = FORMATS["clones-desktop"].assemble(ref, cfg)
    meta = json.loads((args.session / "meta.json").read_text())
    mon = meta.get("primary_monitor") or {"width": 2880, "height": 1800}
    # the logical screen (points) is half the primary monitor's pixels on a Retina Mac
    sw, sh = mon["width"] / 2, mon["height"] / 2
    w = args.width - args.width % 2
    h = round(w * sh / sw)
    h -= h % 2
    sx, sy = w / sw, h / sh
    duration_ms = int((session.duration_s or 0) * 1000) + 1000
    n_frames = duration_ms * args.fps // 1000 + 1
    acts = sorted(session.actions, key=lambda a: a.t_ms)
    args.video.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(args.video), "w") as c:
        s = c.add_stream("libx264", rate=args.fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"preset": "ultrafast", "bf": "0"}
        for n in range(n_frames):
            t = n * 1000 // args.fps
            img = Image.new("RGB", (w, h), (236, 236, 236))
            d = ImageDraw.Draw(img)
            app, typed = session.app or "", ""
            for a in acts:
                if a.t_ms > t:
                    break
                if a.kind == "app_focus":
                    app = a.text or app
                elif a.kind in ("click", "double_click", "press_hold") and a.x is not None:
                    x, y = a.x * sx, a.y * sy
                    d.rectangle([x - 6, y - 6, x + 6, y + 6], fill=(40, 90, 200))
                elif a.kind == "scroll" and a.x is not None:
                    x = a.x * sx
                    d.rectangle([x - 2, 20, x + 2, h - 4], fill=(200, 120, 40))
                elif a.kind == "type":
                    typed += a.text or ""
                elif a.kind in ("key", "hotkey"):
                    typed += "[" + "+".join(a.keys or []) + "]"
            d.rectangle([0, 0, w, 16], fill=(60, 60, 60))
            d.text((4, 3), app[:60], fill=(255, 255, 255))
            d.text((8, h - 24), typed[-70:], fill=(0, 0, 0))
            frame = av.VideoFrame.from_ndarray(np.asarray(img), format="rgb24")
            frame.pts = n
            c.mux(s.encode(frame))
        c.mux(s.encode())
    print(f"{args.video}: {w}x{h} px, {n_frames} frames at {args.fps} fps ({n_frames / args.fps:.1f} s), "
          f"{len(acts)} actions painted")
    return 0


if __name__ == "__main__":
    sys.exit(main())
