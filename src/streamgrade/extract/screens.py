"""Where the recorded screen sits in a recorder's input coordinates, so that actions can be
given in the screen's own space (what the screenshot shows, ``(0, 0)`` its top-left).

Recorders log pointer positions in a desktop-wide space that spans every monitor; the
video shows one screen (or one window). A click at ``(2075, -448)`` is on a monitor above
and to the right of the primary one, which the video does not show. :func:`resolve_layout`
finds the recorded screen's size and origin from what each recorder writes (the session's
``meta`` as its reader keeps it, and the video's size from results.json ``video``);
:meth:`ScreenLayout.locate` turns a desktop position into screen coordinates, or None when
it lies outside the recorded screen (the export drops or flags such actions).

Rules, by recorder (sources read for each):

- **Clones desktop** (clones-sol/desktop, ``src-tauri/src/core/record.rs``: ``meta.json``
  ``primary_monitor`` = the primary display of the ``display-info`` crate, recorded as
  *physical* pixels (the newer ``native/`` recorder writes ``logical * scale_factor``); the
  ffmpeg capture is that display at that size; ``core/input.rs``: positions are rdev
  ``MouseMove {x, y}``, on macOS Quartz global coordinates in *points* with the primary
  display's top-left at (0, 0)). The screen is the primary display: origin (0, 0), size
  ``primary_monitor / scale``. ``scale`` is ``primary_monitor.scale_factor`` when present;
  else on macOS 2 for a display 2560 px wide or more (every built-in Retina panel; the
  recorder keeps no scale factor, so this is an assumption and the layout says so) and 1
  below; on Windows and Linux 1 (input in px). Evidence in the two corpus sessions
  (2880x1800 px primary, 4,397 pointer moves): while 0 <= y < 900 the pointer never goes
  past x = 1438.6, while 0 <= x < 1440 never past y = 898.1, and every position with
  x >= 1440 has y < 0: a 1440x900 pt primary display with a monitor above it.
- **Clones web** (Guacamole, ``<id>.guac``): the remote display is layer 0 of the
  recording's first ``size`` instruction (px, origin (0, 0)); guacenc's video shows it
  (scaled). A resized display is flagged approximate.
- **OWA** (open-world-agents ``ocap``, ``projects/ocap/owa/ocap/recorder.py``): mouse
  positions are Windows virtual-desktop px (primary monitor's top-left at (0, 0)); the
  ``screen`` topic gives the captured source's size (``source_shape``, 0.5+;
  ``original_shape``, 0.4; the video's size before that). ocap captures a monitor or, with
  ``--window-name``, one window, and records neither which nor where: when a ``window``
  rect's size matches the source size (the rect is larger by the window's invisible
  resize borders, at most :data:`OWA_BORDER_PX`: equal left and right, none on top, as on
  Windows 10/11), the capture is that window, placed at the rect's origin plus the left
  border and following the window when it moves; ocap itself warns that window-capture
  coordinates "cannot be accurately aligned", so such a layout is approximate. Else, when
  ocap's ``display_config`` metadata names the same resolution, the primary monitor at
  (0, 0); else the primary monitor at (0, 0) with the source's size, approximate.
- **DuckTrack** (TheDuckAI/DuckTrack ``ducktrack/metadata.py``: ``screen_width`` /
  ``screen_height`` of ``screeninfo.get_monitors()[0]``; positions from pynput): that
  monitor at (0, 0), in points on macOS (``system`` Darwin; screeninfo reports NSScreen
  frames) and px elsewhere. OBS's video is assumed to show that monitor.

Every layout also checks the video's aspect ratio against the screen's: more than
:data:`ASPECT_TOLERANCE` apart makes it approximate with a note (the video may not show
exactly this screen). Sizes are in the recorder's input units (``units`` "pt" or "px");
times in ms from the session start.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from dataclasses import dataclass, field
from typing import Any

OWA_BORDER_PX = 20
ASPECT_TOLERANCE = 0.02
RETINA_MIN_WIDTH = 2560


class LayoutError(ValueError):
    """No screen size can be found for a session; the message says what is missing."""


@dataclass
class ScreenLayout:
    """The recorded screen: ``width`` x ``height`` in input ``units`` ("pt" or "px");
    ``origins`` its top-left in the recorder's desktop space as ``(from_t_ms, x, y)``, sorted
    (one entry unless a captured window moves); ``source`` how it was found;
    ``approximate`` when a part of it is assumed or inferred; ``notes`` why."""

    width: float
    height: float
    units: str
    origins: list[tuple[int, float, float]]
    source: str
    approximate: bool = False
    notes: list[str] = field(default_factory=list)

    def origin_at(self, t_ms: int) -> tuple[float, float]:
        """The screen's top-left at session time ``t_ms`` (the latest origin at or before
        it; the first one before any)."""
        i = max(0, bisect_right([o[0] for o in self.origins], t_ms) - 1)
        return self.origins[i][1], self.origins[i][2]

    def locate(self, x: float, y: float, t_ms: int = 0, *, clamp: bool = True) -> tuple[int, int] | None:
        """Desktop position ``(x, y)`` at ``t_ms`` in screen coordinates (rounded), or None
        when it lies outside the screen by more than 1 unit (positions on the edge are
        clamped in); with ``clamp=False`` the unclamped coordinates, wherever they are."""
        ox, oy = self.origin_at(t_ms)
        lx, ly = x - ox, y - oy
        if not clamp:
            return round(lx), round(ly)
        if not (-1 < lx < self.width + 1 and -1 < ly < self.height + 1):
            return None
        w, h = max(1, round(self.width)), max(1, round(self.height))
        return min(max(round(lx), 0), w - 1), min(max(round(ly), 0), h - 1)

    def to_dict(self) -> dict[str, Any]:
        """The layout as it goes into a training row's metadata: ``{width, height, units,
        origin: [x, y], moves, source, approximate, notes}`` (sizes rounded to integers)."""
        return {"width": round(self.width), "height": round(self.height), "units": self.units,
                "origin": [round(self.origins[0][1]), round(self.origins[0][2])],
                "moves": len(self.origins) - 1, "source": self.source, "approximate": self.approximate,
                "notes": list(self.notes)}


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 else None


def _pair(v: Any) -> tuple[float, float] | None:
    if isinstance(v, (list, tuple)) and len(v) == 2:
        a, b = _num(v[0]), _num(v[1])
        if a and b:
            return a, b
    return None


def _video(video: dict[str, Any] | None) -> tuple[float, float] | None:
    if not isinstance(video, dict):
        return None
    return _pair([video.get("width"), video.get("height")])


def _clones_desktop(meta: dict[str, Any], video: tuple[float, float] | None) -> ScreenLayout:
    mon = meta.get("monitor") if isinstance(meta.get("monitor"), dict) else {}
    size = _pair([mon.get("width"), mon.get("height")])
    platform = str(meta.get("platform") or "").lower()
    notes: list[str] = []
    if size is None:
        if video is None:
            raise LayoutError("no screen size: meta.json has no primary_monitor and the recording's size is unknown")
        size, approx = video, True
        notes.append("meta.json has no primary_monitor: the video's size is taken for it")
    else:
        approx = False
    sf = _num(mon.get("scale_factor"))
    if sf:
        scale, why = sf, "meta.json scale_factor"
    elif platform == "macos":
        scale = 2.0 if size[0] >= RETINA_MIN_WIDTH else 1.0
        why = "assumed (macOS, no scale_factor recorded: 2 for a display >= 2560 px wide)"
        approx = True
        notes.append(f"scale {scale:g} assumed: meta.json records the primary display in px and input in points")
    else:
        scale, why = 1.0, f"input in px ({platform or 'unknown platform'})"
    return ScreenLayout(width=size[0] / scale, height=size[1] / scale, units="pt" if platform == "macos" else "px",
                        origins=[(0, 0.0, 0.0)], approximate=approx, notes=notes,
                        source=f"Clones meta.json primary_monitor {size[0]:g}x{size[1]:g} px, scale {scale:g} ({why})")


def _clones_web(meta: dict[str, Any], video: tuple[float, float] | None) -> ScreenLayout:
    disp = meta.get("display") if isinstance(meta.get("display"), dict) else {}
    size = _pair([disp.get("width"), disp.get("height")])
    if size is not None:
        lay = ScreenLayout(width=size[0], height=size[1], units="px", origins=[(0, 0.0, 0.0)],
                           source=f"Guacamole display (layer 0 size {size[0]:g}x{size[1]:g} px)")
        if meta.get("display_resized"):
            lay.approximate = True
            lay.notes.append("the remote display was resized during the session: its first size is used")
        return lay
    if video is None:
        raise LayoutError("no screen size: no Guacamole size instruction and the video's size is unknown")
    return ScreenLayout(width=video[0], height=video[1], units="px", origins=[(0, 0.0, 0.0)], approximate=True,
                        source=f"the video's size {video[0]:g}x{video[1]:g} px (no Guacamole size instruction)",
                        notes=["no display size recorded: the video's size is taken for it"])


def _owa(meta: dict[str, Any], video: tuple[float, float] | None) -> ScreenLayout:
    src = _pair(meta.get("source_shape")) or video or _pair(meta.get("frame_shape"))
    if src is None:
        raise LayoutError("no screen size: no source_shape in the screen topic and the video's size is unknown")
    w, h = src
    rects = [r for r in meta.get("window_rects") or []
             if isinstance(r, list) and len(r) == 6
             and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (r[0], *r[2:]))]
    best: tuple[float, Any] | None = None
    for r in rects:
        bw, bh = (r[4] - r[2]) - w, (r[5] - r[3]) - h
        if 0 <= bw <= OWA_BORDER_PX and 0 <= bh <= OWA_BORDER_PX and (best is None or bw + bh < best[0]):
            best = (bw + bh, r[1])
    if best is not None:
        hwnd = best[1]
        mine = [r for r in rects if r[1] == hwnd]
        origins = [(0 if k == 0 else int(r[0]), r[2] + ((r[4] - r[2]) - w) / 2, float(r[3])) for k, r in enumerate(mine)]
        lay = ScreenLayout(width=w, height=h, units="px", origins=origins, approximate=True,
                           source=f"OWA window capture: window {hwnd} (rect {mine[0][2:]} matches the "
                                  f"{w:g}x{h:g} px source but for its invisible borders)",
                           notes=["ocap: window-capture mouse coordinates cannot be aligned exactly (WGC)"])
        if any(not (0 <= (r[4] - r[2]) - w <= OWA_BORDER_PX and 0 <= (r[5] - r[3]) - h <= OWA_BORDER_PX) for r in mine):
            lay.notes.append("the captured window was resized during the session")
        return lay
    res = (meta.get("display_config") or {}).get("resolution") if isinstance(meta.get("display_config"), dict) else None
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", res) if isinstance(res, str) else None
    if m and (float(m.group(1)), float(m.group(2))) == (w, h):
        return ScreenLayout(width=w, height=h, units="px", origins=[(0, 0.0, 0.0)],
                            source=f"OWA monitor capture: the primary monitor ({res}, ocap display_config) at (0, 0)")
    return ScreenLayout(width=w, height=h, units="px", origins=[(0, 0.0, 0.0)], approximate=True,
                        source=f"OWA capture of {w:g}x{h:g} px assumed to be the primary monitor at (0, 0)",
                        notes=["no window rect and no display_config match the captured size"])


def _ducktrack(meta: dict[str, Any], video: tuple[float, float] | None) -> ScreenLayout:
    mon = meta.get("monitor") if isinstance(meta.get("monitor"), dict) else {}
    size = _pair([mon.get("width"), mon.get("height")])
    units = "pt" if str(meta.get("system") or "") == "Darwin" else "px"
    if size is not None:
        return ScreenLayout(width=size[0], height=size[1], units=units, origins=[(0, 0.0, 0.0)],
                            source=f"DuckTrack metadata.json screen_width/height {size[0]:g}x{size[1]:g} "
                                   f"(screeninfo monitor 0) at (0, 0)")
    if video is None:
        raise LayoutError("no screen size: metadata.json has no screen_width/screen_height and the video's size is unknown")
    return ScreenLayout(width=video[0], height=video[1], units=units, origins=[(0, 0.0, 0.0)], approximate=True,
                        source=f"the video's size {video[0]:g}x{video[1]:g} (no screen size in metadata.json)",
                        notes=["no screen size recorded: the video's size is taken for it"])


RULES = {"clones-desktop": _clones_desktop, "clones-web": _clones_web, "owa": _owa, "ducktrack": _ducktrack}


def resolve_layout(source_format: str, meta: dict[str, Any], video: dict[str, Any] | None) -> ScreenLayout:
    """The recorded screen of a session of ``source_format`` from its reader's ``meta`` and
    results.json ``video`` (``{width, height}`` px, may be None), by the rules of the module
    docstring. Raises :class:`LayoutError` with the reason when the format has no rule or
    no size can be found."""
    rule = RULES.get(source_format)
    if rule is None:
        raise LayoutError(f"no screen layout rule for format {source_format!r}")
    vid = _video(video)
    lay = rule(meta if isinstance(meta, dict) else {}, vid)
    if vid is not None and lay.width > 0 and lay.height > 0:
        want, got = lay.width / lay.height, vid[0] / vid[1]
        if abs(got - want) / want > ASPECT_TOLERANCE:
            lay.approximate = True
            lay.notes.append(f"the video ({vid[0]:g}x{vid[1]:g} px) does not have the screen's aspect ratio: "
                             f"it may not show exactly this screen")
    return lay


__all__ = ["ScreenLayout", "LayoutError", "resolve_layout", "RULES", "OWA_BORDER_PX", "ASPECT_TOLERANCE"]
