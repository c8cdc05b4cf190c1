"""Build the Guacamole recording fixture ``examples/guac/<session>.guac``.

The real recording of the Clones web session 6792a2a124f444f0e39ce887 (a jspaint race) is not
public, but the Clones pipeline's own rendering of what its GuacExtractor parsed from it is:
``data/tests/extraction/guac_test.html`` of clones-ai/clones-quality-agent (copied to
``../shared/corpus/clones``; see its PROVENANCE.md). This script reads that timeline (1 type,
1 "hotkey", 34 mouseclick, 95 mousedrag events with times and positions) and writes a
recording in the Guacamole protocol that reproduces each event at its time, the way guacd's
recorder writes input (``sync`` before each frame, ``mouse x,y,mask,timestamp``,
``key keysym,pressed,timestamp``), with a little screen traffic (``size``, ``name``, ``img``/
``blob``/``end`` of a tiny PNG, a clipboard stream) so the parser sees realistic non-input
instructions. It then adds what the old grader lost: a right click, two scroll bursts,
"Hello World!" typed with Shift, Ctrl+Z, and Unicode/Latin-1 keysyms ("naïve €").

Outputs (in ``--out``, default ``examples/guac``):

* ``<session>.guac``: the recording;
* ``<session>.expected.json``: the timeline it encodes, i.e. the events parsed from the HTML
  (``source: "guac_test.html"``, in time order) and the added ones (``source: "added"``),
  which tests/test_guac.py compares with :func:`streamgrade.extract.guac.events_from_guac`.

Deterministic: the same HTML gives the same bytes. Usage::

    python scripts/make_guac_fixture.py [--html PATH] [--out DIR]
"""

from __future__ import annotations

import argparse
import base64
import html
import json
import re
import struct
import sys
import zlib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from streamgrade.extract.guac import encode_instruction  # noqa: E402

SESSION = "6792a2a124f444f0e39ce887"
DEFAULT_HTML = ROOT.parent / "shared/corpus/clones/data/tests/extraction/guac_test.html"
#: created_at of the race session (viralmind.race_sessions.json): 2025-01-23T20:12:17.306Z
T0 = 1737663137306
WIDTH, HEIGHT = 1024, 768


def _png_1x1() -> bytes:
    """A valid 1x1 transparent RGBA PNG."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", 1, 1, 8, 6, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(b"\x00\x00\x00\x00\x00")) + chunk(b"IEND", b""))


PNG = base64.b64encode(_png_1x1()).decode()

_EVENT_RE = re.compile(
    r'<span class="timestamp">([^<]*)</span>\s*<span class="role ([^"]*)">[^<]*</span>\s*'
    r'<pre class="content">(.*?)</pre>', re.S)
_POINT_RE = re.compile(r"\[(\d+)ms: \((-?\d+), (-?\d+)\)\]")


def _ms(stamp: str) -> int:
    h, m, s = stamp.split(":")
    return round((int(h) * 3600 + int(m) * 60 + float(s)) * 1000)


def parse_timeline(text: str) -> list[dict]:
    """The events of a Clones ``visualizeEvents()`` page, in time order (the page lists
    them grouped by kind, not by time)."""
    out = []
    for stamp, role, content in _EVENT_RE.findall(text):
        content = html.unescape(content)
        t = _ms(stamp)
        if role == "mousedrag":
            pts = [(int(dt), int(x), int(y)) for dt, x, y in _POINT_RE.findall(content)]
            out.append({"kind": "mousedrag", "t_ms": t, "points": pts})
        else:
            out.append({"kind": role, "t_ms": t, **json.loads(content)})
    out.sort(key=lambda e: e["t_ms"])
    return out


def added_events(after_ms: int) -> list[dict]:
    t = (after_ms // 1000 + 2) * 1000
    return [
        {"kind": "mouseclick", "button": "right", "t_ms": t, "x": 300, "y": 300, "source": "added"},
        {"kind": "scroll", "t_ms": t + 2000, "x": 400, "y": 350, "ticks": [-1, -1, -1], "source": "added"},
        {"kind": "scroll", "t_ms": t + 3500, "x": 400, "y": 350, "ticks": [1, 1], "source": "added"},
        {"kind": "mouseclick", "t_ms": t + 5000, "x": 120, "y": 60, "source": "added"},
        {"kind": "type", "t_ms": t + 6000, "text": "Hello World!", "source": "added"},
        {"kind": "hotkey", "t_ms": t + 10000, "keys": ["Ctrl", "z"], "source": "added"},
        {"kind": "type", "t_ms": t + 12000, "text": "naïve €", "source": "added"},
        {"kind": "mouseclick", "button": "middle", "t_ms": t + 16000, "x": 500, "y": 400, "source": "added"},
    ]


_BUTTON_MASK = {"left": 1, "middle": 2, "right": 4}
_SHIFT, _CTRL, _RETURN = 0xFFE1, 0xFFE3, 0xFF0D
_KEY_GAP, _KEY_HOLD = 120, 40


def keysym_of(ch: str) -> int:
    cp = ord(ch)
    return cp if 0x20 <= cp <= 0x7E or 0xA0 <= cp <= 0xFF else 0x01000000 + cp


class Recording:
    def __init__(self) -> None:
        self.items: list[tuple[int, int, str]] = []  # (t, seq, instruction)
        self.pos = (WIDTH // 2, HEIGHT // 2)

    def add(self, t: int, opcode: str, *args: object) -> None:
        self.items.append((t, len(self.items), encode_instruction(opcode, *args)))

    def mouse(self, t: int, x: int, y: int, mask: int) -> None:
        self.add(t, "mouse", x, y, mask, T0 + t)
        self.pos = (x, y)

    def key(self, t: int, keysym: int, pressed: bool) -> None:
        self.add(t, "key", keysym, int(pressed), T0 + t)

    def click(self, t: int, x: int, y: int, mask: int = 1, hold: int = 80) -> None:
        self.mouse(t - 100, (self.pos[0] + x) // 2, (self.pos[1] + y) // 2, 0)  # approach
        self.mouse(t, x, y, mask)
        self.mouse(t + hold, x, y, 0)

    def type_text(self, t: int, text: str) -> int:
        for ch in text:
            shifted = ch.isupper() or ch in '!@#$%^&*()_+{}|:"<>?~'
            if shifted:
                self.key(t - 30, _SHIFT, True)
            self.key(t, keysym_of(ch), True)
            self.key(t + _KEY_HOLD, keysym_of(ch), False)
            if shifted:
                self.key(t + _KEY_HOLD + 10, _SHIFT, False)
            t += _KEY_GAP
        return t

    def build(self) -> str:
        """Instructions in time order, a ``sync`` (frame boundary) before each new time and
        at least once a second; a tiny image update every 10 s."""
        end = max(t for t, _, _ in self.items)
        for s in range(0, end + 1000, 1000):
            self.add(s, "cfill", 14, 0, 255, 255, 255, 255)  # idle frame traffic
            if s % 10000 == 0:
                self.add(s, "img", 1, 14, 0, "image/png", s % WIDTH, 0)
                self.add(s, "blob", 1, PNG)
                self.add(s, "end", 1)
        head = [encode_instruction("size", 0, WIDTH, HEIGHT),
                encode_instruction("name", "jspaint.app — Paint; v1,2.0 ✓")]
        out, last = [], None
        for t, _, ins in sorted(self.items):
            if t != last:
                out.append(encode_instruction("sync", T0 + t))
                last = t
            out.append(ins)
        return "".join(head + out)


def build(timeline: list[dict]) -> tuple[str, list[dict]]:
    rec = Recording()
    for ev in timeline:
        t, kind = ev["t_ms"], ev["kind"]
        if kind == "mouseclick":
            rec.click(t, ev["x"], ev["y"], _BUTTON_MASK[ev.get("button", "left")])
        elif kind == "mousedrag":
            _, x0, y0 = ev["points"][0]
            rec.mouse(t - 100, x0, y0, 0)
            for dt, x, y in ev["points"]:
                rec.mouse(t + dt, x, y, 1)
            dt, x, y = ev["points"][-1]
            rec.mouse(t + dt, x, y, 0)
        elif kind == "type":
            rec.type_text(t, ev["text"])
        elif kind == "hotkey" and ev.get("text") == "enter":
            rec.key(t, _RETURN, True)
            rec.key(t + 60, _RETURN, False)
        elif kind == "hotkey" and ev.get("keys") == ["Ctrl", "z"]:
            rec.key(t - 50, _CTRL, True)
            rec.key(t, ord("z"), True)
            rec.key(t + _KEY_HOLD, ord("z"), False)
            rec.key(t + 100, _CTRL, False)
        elif kind == "scroll":
            rec.mouse(t - 100, ev["x"], ev["y"], 0)
            for i, d in enumerate(ev["ticks"]):
                rec.mouse(t + 60 * i, ev["x"], ev["y"], 8 if d > 0 else 16)
                rec.mouse(t + 60 * i + 20, ev["x"], ev["y"], 0)
        else:
            raise ValueError(f"unsupported event {ev}")
    # a clipboard stream (text with separators and multi-byte characters)
    clip = base64.b64encode("Hello World! ; 1,2.3 — ✓".encode()).decode()
    t_clip = timeline[-1]["t_ms"] + 3000
    rec.add(t_clip, "clipboard", 2, "text/plain")
    rec.add(t_clip, "blob", 2, clip)
    rec.add(t_clip, "end", 2)
    return rec.build(), timeline


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--html", type=Path, default=DEFAULT_HTML)
    ap.add_argument("--out", type=Path, default=ROOT / "examples/guac")
    args = ap.parse_args(argv)
    timeline = [dict(e, source="guac_test.html") for e in parse_timeline(args.html.read_text("utf-8"))]
    last = timeline[-1]
    last_end = last["t_ms"] + (last["points"][-1][0] if last["kind"] == "mousedrag" else 0)
    timeline += added_events(last_end)
    text, timeline = build(timeline)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{SESSION}.guac").write_bytes(text.encode("utf-8"))
    (args.out / f"{SESSION}.expected.json").write_text(
        json.dumps({"session": SESSION, "t0_unix_ms": T0, "events": timeline}, ensure_ascii=False, indent=0) + "\n",
        "utf-8")
    print(f"wrote {args.out / (SESSION + '.guac')} ({len(text.encode())} bytes, {len(timeline)} events)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
