"""From raw input events to actions.

Input: :class:`RawEvent` objects in the Clones desktop recorder's vocabulary (the Clones
project, clones-ai/clones-quality-agent, ``input_log.jsonl``; see the corpus PROVENANCE.md):
``mousemove {x, y}``, ``mousedown``/``mouseup {button}`` (no position: the last mousemove
gives it), ``mousewheel {delta}`` (one event per wheel tick), ``keydown``/``keyup {key,
actual_char}`` (rdev key names such as ``KeyC``, ``ShiftLeft``, ``MetaLeft``) and
``axtree_interaction {focused_app {name}}``. Other formats translate their input to this
vocabulary first.

Rules (thresholds from config ``[extract]``; each fixes a bug of the Clones grader, which
emitted one item per raw event and so doubled every duplicated event and every scroll tick):

1. Duplicates: the recorder writes many events twice, 0-1 ms apart. An event equal in kind
   and data to one seen within ``dedupe_ms`` (default 5 ms) is dropped. Zero-delta wheel
   ticks are dropped.
2. Key repeat: a keydown for a key that is already down (no keyup since) is an OS auto-repeat
   or a duplicate and is dropped.
3. Click: a press and release of the same button (left, right or middle) within
   ``click_max_px`` (5 px) and ``click_max_ms`` (500 ms) is a click at the press position.
   Two left clicks within ``double_click_ms`` (400 ms) and 5 px are one double_click.
   A press that moves further is a drag whose path is downsampled (points at least
   ``drag_min_step_px`` apart, at most ``drag_max_points``, end points always kept);
   a press held longer without moving is a press_hold.
4. Typing: printable characters typed with no modifier other than Shift are grouped into
   one ``type`` action until a gap over ``typing_gap_ms`` (1 s) or another action; Backspace
   inside a group deletes the last character.
5. Keys: a non-printable key alone (Return, Tab, Escape, arrows) is a ``key`` action; any
   key pressed while Ctrl, Alt/Option or Meta/Cmd is held is a ``hotkey`` with the
   modifiers first (``hotkey("Meta", "Tab")``). A modifier pressed and released alone is
   not an action.
6. Scroll: wheel ticks less than ``scroll_gap_ms`` (500 ms) apart form one burst, one
   ``scroll`` action with the summed deltas (``delta`` vertical, ``delta_x`` horizontal;
   sign as recorded) and the tick count, at the pointer position where it began. A tick
   with neither delta is dropped (a horizontal-only tick is kept).
7. App focus: a change of the focused application's name is an ``app_focus`` action.

Times are integer ms from the session start (the first event's time, which is also the
first video frame's time in Clones recordings). Positions are rounded to integer points.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any, Iterable

from ..config import ExtractConfig
from ..models import Action

MODIFIERS = {
    "ShiftLeft": "Shift", "ShiftRight": "Shift",
    "ControlLeft": "Ctrl", "ControlRight": "Ctrl",
    "Alt": "Alt", "AltGr": "Alt", "AltLeft": "Alt", "AltRight": "Alt", "Option": "Alt",
    "MetaLeft": "Meta", "MetaRight": "Meta",
}
_NAMED_CHARS = {"Space": " ", "Minus": "-", "Equal": "=", "Comma": ",", "Dot": ".", "Slash": "/",
                "SemiColon": ";", "Quote": "'", "BackSlash": "\\", "LeftBracket": "[",
                "RightBracket": "]", "BackQuote": "`", "IntlBackslash": "\\"}
_UNICODE_RE = re.compile(r"unicode:\s*\[([0-9,\s]*)\]")


@dataclass(slots=True)
class RawEvent:
    """One raw input event: ``t_ms`` from session start, ``kind`` (mousemove, mousedown, …),
    ``data`` as recorded, ``line`` its 1-based line in the source file (for errors)."""

    t_ms: int
    kind: str
    data: dict[str, Any]
    line: int = 0


def char_of(key: str, actual_char: Any, shift: bool) -> str | None:
    """The printable character a keydown produced, or None for a non-printable key.

    ``actual_char`` is the recorder's Rust debug string, e.g.
    ``UnicodeInfo { name: Some("c"), unicode: [99], is_dead: false }`` (code points in
    ``unicode``); when it is empty the rdev key name is mapped (KeyC -> c, Digit1 -> 1).
    """
    if isinstance(actual_char, str) and actual_char:
        m = _UNICODE_RE.search(actual_char)
        if m and m.group(1).strip():
            try:
                text = "".join(chr(int(c)) for c in m.group(1).split(",") if c.strip())
            except (ValueError, OverflowError):
                text = ""
            if text and text.isprintable():
                return text
            if text:
                return None
        elif len(actual_char) == 1 and actual_char.isprintable():
            return actual_char
    if key.startswith("Key") and len(key) == 4:
        return key[3].upper() if shift else key[3].lower()
    if key.startswith("Digit") and len(key) == 6 and not shift:
        return key[5]
    if key.startswith("Num") and len(key) == 4 and key[3].isdigit():
        return key[3]
    if key in _NAMED_CHARS and not shift:
        return _NAMED_CHARS[key]
    return None


@dataclass
class _Extractor:
    cfg: ExtractConfig
    actions: list[Action] = field(default_factory=list)
    pos: tuple[float, float] | None = None
    pressed: dict[str, tuple[int, tuple[float, float] | None, list[tuple[float, float]]]] = field(default_factory=dict)
    keys_down: set[str] = field(default_factory=set)
    typing: Action | None = None
    typing_last: int = 0
    scroll: Action | None = None
    scroll_last: int = 0
    app: str | None = None

    # -- flushing of open groups ------------------------------------------------------
    def flush_typing(self) -> None:
        if self.typing is not None and self.typing.text:
            self.typing.end_ms = self.typing_last
            self.actions.append(self.typing)
        self.typing = None

    def flush_scroll(self) -> None:
        if self.scroll is not None:
            self.scroll.end_ms = self.scroll_last
            self.scroll.dy = round(self.scroll.dy or 0.0, 2)
            self.actions.append(self.scroll)
        self.scroll = None

    def flush(self) -> None:
        self.flush_typing()
        self.flush_scroll()

    def emit(self, action: Action) -> None:
        self.flush()
        self.actions.append(action)

    # -- events -----------------------------------------------------------------------
    def on_move(self, t: int, data: dict[str, Any]) -> None:
        x, y = data.get("x"), data.get("y")
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            self.pos = (float(x), float(y))
            for _, _, path in self.pressed.values():
                path.append(self.pos)

    def on_down(self, t: int, data: dict[str, Any]) -> None:
        button = str(data.get("button", "Left")).lower()
        if button in self.pressed:
            return  # duplicate press
        self.pressed[button] = (t, self.pos, [self.pos] if self.pos else [])

    def on_up(self, t: int, data: dict[str, Any]) -> None:
        button = str(data.get("button", "Left")).lower()
        if button not in self.pressed:
            return
        t0, start, path = self.pressed.pop(button)
        end = self.pos or start
        if start is None or end is None:
            return  # no pointer position recorded yet: nothing to place the click at
        moved = max((math.dist(start, p) for p in path), default=0.0)
        x, y = round(start[0]), round(start[1])
        if moved <= self.cfg.click_max_px and t - t0 <= self.cfg.click_max_ms:
            prev = self.actions[-1] if self.actions else None
            if (button == "left" and self.typing is None and self.scroll is None and prev is not None
                    and prev.kind == "click" and prev.button == "left"
                    and t0 - prev.t_ms <= self.cfg.double_click_ms
                    and math.dist((prev.x, prev.y), (x, y)) <= self.cfg.click_max_px):
                prev.kind, prev.end_ms = "double_click", t
                return
            self.emit(Action(kind="click", t_ms=t0, end_ms=t, x=x, y=y, button=button))
        elif moved <= self.cfg.click_max_px:
            self.emit(Action(kind="press_hold", t_ms=t0, end_ms=t, x=x, y=y, button=button))
        else:
            self.emit(Action(kind="drag", t_ms=t0, end_ms=t, x=x, y=y, button=button,
                             path=downsample(path if path and path[-1] == end else path + [end],
                                                  self.cfg.drag_min_step_px, self.cfg.drag_max_points)))

    def on_wheel(self, t: int, data: dict[str, Any]) -> None:
        delta, dx = _number(data.get("delta")), _number(data.get("delta_x"))
        if delta == 0 and dx == 0:
            return
        if self.scroll is not None and t - self.scroll_last < self.cfg.scroll_gap_ms:
            self.scroll.dy = (self.scroll.dy or 0.0) + float(delta)
            self.scroll.ticks = (self.scroll.ticks or 0) + 1
            if dx:
                self.scroll.dx = round((self.scroll.dx or 0.0) + float(dx), 2)
        else:
            self.flush()
            x, y = (round(self.pos[0]), round(self.pos[1])) if self.pos else (None, None)
            self.scroll = Action(kind="scroll", t_ms=t, x=x, y=y, dy=float(delta), ticks=1)
            if dx:
                self.scroll.dx = float(dx)
        self.scroll_last = t

    def on_keydown(self, t: int, data: dict[str, Any]) -> None:
        key = str(data.get("key", ""))
        if not key or key in self.keys_down:
            return  # auto-repeat or duplicate
        self.keys_down.add(key)
        if key in MODIFIERS:
            return
        mods = sorted({MODIFIERS[k] for k in self.keys_down if k in MODIFIERS}, key=_mod_order)
        chord = [m for m in mods if m != "Shift"]
        if chord:
            self.emit(Action(kind="hotkey", t_ms=t, keys=[*mods, _key_name(key)]))
            return
        ch = char_of(key, data.get("actual_char"), shift="Shift" in mods)
        if key == "Backspace" and self.typing is not None and self.typing.text and t - self.typing_last <= self.cfg.typing_gap_ms:
            self.typing.text = self.typing.text[:-1]
            self.typing_last = t
            return
        if ch is None:
            self.emit(Action(kind="key", t_ms=t, keys=[*mods, _key_name(key)]))
            return
        if self.typing is not None and t - self.typing_last > self.cfg.typing_gap_ms:
            self.flush_typing()
        if self.typing is None:
            self.flush_scroll()
            self.typing = Action(kind="type", t_ms=t, text="")
        self.typing.text = (self.typing.text or "") + ch
        self.typing_last = t

    def on_keyup(self, t: int, data: dict[str, Any]) -> None:
        self.keys_down.discard(str(data.get("key", "")))

    def on_focus(self, t: int, data: dict[str, Any]) -> None:
        app = data.get("focused_app")
        name = app.get("name") if isinstance(app, dict) else None
        if isinstance(name, str) and name and name != self.app:
            self.app = name
            self.emit(Action(kind="app_focus", t_ms=t, text=name))


def _number(value: Any) -> float:
    """A wheel delta as a number (0 when missing or not a number)."""
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else 0.0


def _mod_order(name: str) -> int:
    return ["Ctrl", "Alt", "Shift", "Meta"].index(name)


def _key_name(key: str) -> str:
    if key.startswith("Key") and len(key) == 4:
        return key[3].lower()
    if key.startswith("Digit") and len(key) == 6:
        return key[5]
    return _NAMED_CHARS.get(key, key)


def downsample(path: list[tuple[float, float]], min_step: float, max_points: int) -> list[tuple[int, int]]:
    """Keep points at least ``min_step`` px from the last kept one, then thin evenly to at
    most ``max_points`` (>= 2); the first and last points are always kept."""
    if not path:
        return []
    kept = [path[0]]
    for p in path[1:-1]:
        if math.dist(kept[-1], p) >= min_step:
            kept.append(p)
    if len(path) > 1:
        kept.append(path[-1])
    if len(kept) > max_points >= 2:
        step = (len(kept) - 1) / (max_points - 1)
        kept = [kept[round(i * step)] for i in range(max_points)]
    return [(round(x), round(y)) for x, y in kept]


_HANDLERS = {
    "mousemove": _Extractor.on_move,
    "mousedown": _Extractor.on_down,
    "mouseup": _Extractor.on_up,
    "mousewheel": _Extractor.on_wheel,
    "keydown": _Extractor.on_keydown,
    "keyup": _Extractor.on_keyup,
    "axtree_interaction": _Extractor.on_focus,
}


def dedupe(events: Iterable[RawEvent], window_ms: int) -> list[RawEvent]:
    """Events sorted by time (stable), without exact repeats (same kind and data) within
    ``window_ms`` of the previous occurrence, and without zero-delta wheel ticks."""
    out: list[RawEvent] = []
    last_seen: dict[tuple[str, str], int] = {}
    for ev in sorted(events, key=lambda e: e.t_ms):
        if ev.kind not in _HANDLERS:
            continue
        if ev.kind == "mousewheel" and not _number(ev.data.get("delta")) and not _number(ev.data.get("delta_x")):
            continue
        key = (ev.kind, _canonical(ev.data))
        prev = last_seen.get(key)
        last_seen[key] = ev.t_ms
        if prev is not None and ev.t_ms - prev <= window_ms:
            continue
        out.append(ev)
    return out


def _canonical(data: dict[str, Any]) -> str:
    if "tree" in data:  # accessibility trees are large: the app is what matters here
        app = data.get("focused_app")
        return repr(app.get("name") if isinstance(app, dict) else None)
    return repr(sorted(data.items()))


def extract_actions(events: Iterable[RawEvent], cfg: ExtractConfig) -> list[Action]:
    """Apply the rules of this module to ``events`` (any order; times in ms from session
    start) and return the actions in time order."""
    ex = _Extractor(cfg)
    for ev in dedupe(events, cfg.dedupe_ms):
        t = ev.t_ms
        if ex.typing is not None and ev.kind in ("mousedown", "mousewheel"):
            ex.flush_typing()
        _HANDLERS[ev.kind](ex, t, ev.data)
    ex.flush()
    ex.actions.sort(key=lambda a: a.t_ms)
    return ex.actions
