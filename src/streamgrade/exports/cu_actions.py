"""Actions as pyautogui calls and structured actions, in the recorded screen's coordinates.

The action space follows the open computer-use datasets:

- OpenCUA's AgentNet (xlang-ai/OpenCUA, README.md and ``evaluation/agentnetbench/README.md``;
  dataset card huggingface.co/datasets/xlangai/AgentNet): each step's action is PyAutoGUI
  code (``click``, ``doubleClick``, ``rightClick``, ``moveTo``, ``dragTo``, ``write``,
  ``press``, ``hotkey``, ``scroll``) answering the screenshot taken before it; AgentNetBench
  compares positions as relative (0-1) coordinates.
- UI-TARS (bytedance/UI-TARS, ``README_deploy.md`` computer prompt and
  ``codes/ui_tars/action_parser.py``): ``click(start_box='(x1,y1)')``, ``left_double``,
  ``right_single``, ``drag(start_box, end_box)``, ``hotkey(key='ctrl c')``,
  ``type(content='')``, ``scroll(start_box, direction)``; UI-TARS (Qwen2-VL) emits
  coordinates relative to the screenshot in 0-1000 (``float(num) / factor``, factor 1000),
  UI-TARS-1.5 absolute pixels of the resized screenshot; its parser turns them back into
  pyautogui code for the screen's size.

Here the pyautogui call carries **absolute coordinates in the recorded screen's space**
(what pyautogui itself takes on that machine: points on macOS, px elsewhere) and the row
states the screen's size; the structured action adds ``x_rel``/``y_rel`` (0-1, 4
decimals), from which UI-TARS' 0-1000 or any image's pixels follow by one multiplication.

Mapping from :class:`~streamgrade.models.Action` (results.json ``actions``):

=============  ==============================================================================
click          ``pyautogui.click(x=, y=)``; right / middle: ``rightClick`` / ``middleClick``
double_click   ``pyautogui.doubleClick(x=, y=)`` (``button=`` unless left)
press_hold     ``pyautogui.mouseDown(x=, y=, button=)`` then ``pyautogui.mouseUp(button=)``
drag           ``pyautogui.moveTo(x=, y=)`` then ``pyautogui.dragTo(x=, y=, button=)`` (first and
               last points of the path) when the path is straight (every point within 5
               units or 5% of the length of the line); a curved stroke (drawing) is
               ``moveTo``, ``mouseDown``, a ``moveTo`` per recorded point, ``mouseUp``. Every
               point must be on the screen
scroll         ``pyautogui.scroll(clicks, x=, y=)`` (and ``hscroll`` for a horizontal part);
               positive = up / right, the recorded sign; ``clicks`` is the summed delta when
               the recorder counts notches (at most 1.5 a tick: OWA, DuckTrack, Guacamole),
               else the tick count with the delta's sign (Clones macOS pixel deltas)
type           ``pyautogui.write('text')``
key            ``pyautogui.press('enter')``; with a modifier ``pyautogui.hotkey('shift', 'tab')``
hotkey         ``pyautogui.hotkey('ctrl', 'c')``; Meta is ``command`` on macOS, ``win`` elsewhere
=============  ==============================================================================

Key names are pyautogui's (``KEYBOARD_KEYS``): the extractor's rdev-style names map through
:data:`KEYS`; single characters stay (lower case); anything else is lower-cased as is.
"""

from __future__ import annotations

import math
from typing import Any

from ..extract.screens import ScreenLayout

KEYS = {
    "Ctrl": "ctrl", "Alt": "alt", "Shift": "shift",
    "Return": "enter", "Escape": "esc", "Backspace": "backspace", "Tab": "tab", "Delete": "delete",
    "Space": "space", " ": "space", "Insert": "insert", "Home": "home", "End": "end",
    "PageUp": "pageup", "PageDown": "pagedown", "UpArrow": "up", "DownArrow": "down",
    "LeftArrow": "left", "RightArrow": "right", "CapsLock": "capslock", "NumLock": "numlock",
    "ScrollLock": "scrolllock", "PrintScreen": "printscreen", "Pause": "pause", "Clear": "clear",
    "ContextMenu": "apps", "Menu": "apps", "VolumeMute": "volumemute", "VolumeUp": "volumeup",
    "VolumeDown": "volumedown", "MediaNextTrack": "nexttrack", "MediaPrevTrack": "prevtrack",
    "MediaPlayPause": "playpause", "MediaStop": "stop", "KpPlus": "add", "KpMinus": "subtract",
    "KpMultiply": "multiply", "KpDivide": "divide", "KpDelete": "decimal", "KpReturn": "enter",
    **{f"Kp{i}": f"num{i}" for i in range(10)}, **{f"F{i}": f"f{i}" for i in range(1, 25)},
}
_BUTTON_CALL = {"left": "click", "right": "rightClick", "middle": "middleClick"}


class Offscreen(ValueError):
    """An action's position is outside the recorded screen (the message gives it)."""


def platform_of(source_format: str, meta: dict[str, Any]) -> str | None:
    """"macos", "windows", "linux" or None: Clones desktop ``platform``, DuckTrack
    ``system``, OWA (Windows only), Clones web (the remote display: unknown)."""
    if source_format == "owa":
        return "windows"
    raw = str(meta.get("platform") or meta.get("system") or "").lower()
    return {"macos": "macos", "darwin": "macos", "windows": "windows", "linux": "linux"}.get(raw)


def key_name(key: str, platform: str | None) -> str:
    """pyautogui's name of an extractor key name (see the module docstring)."""
    if key == "Meta":
        return "command" if platform == "macos" else "win"
    if key in KEYS:
        return KEYS[key]
    return key.lower()


def _clicks(delta: float, ticks: int) -> int:
    ticks = max(1, ticks)
    if abs(delta) / ticks <= 1.5:
        return round(delta)
    return int(math.copysign(ticks, delta)) if delta else 0


def _straight(a: tuple[int, int], b: tuple[int, int], mids: list[tuple[int, int]]) -> bool:
    """True when every point of ``mids`` lies within max(5, 5% of the length) units of the
    segment ``a``-``b``: the drag is a plain drag, else a stroke whose shape matters."""
    length = math.dist(a, b)
    tol = max(5.0, 0.05 * length)
    for p in mids:
        if length == 0:
            d = math.dist(a, p)
        else:
            d = abs((b[0] - a[0]) * (a[1] - p[1]) - (a[0] - p[0]) * (b[1] - a[1])) / length
        if d > tol:
            return False
    return True


def render(a: dict[str, Any], layout: ScreenLayout, platform: str | None, *,
           keep_offscreen: bool = False) -> tuple[str, dict[str, Any]]:
    """(pyautogui code, structured action) of results.json action ``a``. Positions go
    through ``layout.locate`` at the action's time; one outside the screen raises
    :class:`Offscreen`, or with ``keep_offscreen`` stays (unclamped screen coordinates, so
    outside ``[0, width) x [0, height)``) with ``"offscreen": true``. Raises ValueError for
    an action with nothing to do (a zero scroll, empty text, no keys) or an unknown kind."""
    kind, t = a.get("kind"), int(a.get("t_ms") or 0)
    out: dict[str, Any] = {"action": kind, "t_ms": t}
    w, h = max(1.0, layout.width), max(1.0, layout.height)

    def place(x: Any, y: Any, key: str | None = "") -> tuple[int, int]:
        p = layout.locate(x, y, t)
        if p is None:
            if not keep_offscreen:
                raise Offscreen(f"{kind} at ({x}, {y}) is outside the recorded screen")
            p = layout.locate(x, y, t, clamp=False)
            out["offscreen"] = True
        assert p is not None
        if key is not None:  # None: a drag's inner point, checked but not a field
            out[f"{key}x"], out[f"{key}y"] = p
            out[f"{key}x_rel"], out[f"{key}y_rel"] = round(p[0] / w, 4), round(p[1] / h, 4)
        return p

    button = a.get("button") or "left"
    if kind in ("click", "double_click", "press_hold"):
        x, y = place(a.get("x"), a.get("y"))
        out["button"] = button
        if kind == "click":
            return f"pyautogui.{_BUTTON_CALL.get(button, 'click')}(x={x}, y={y})", out
        if kind == "double_click":
            extra = "" if button == "left" else f", button={button!r}"
            return f"pyautogui.doubleClick(x={x}, y={y}{extra})", out
        out["duration_ms"] = int(a.get("end_ms") or t) - t
        return f"pyautogui.mouseDown(x={x}, y={y}, button={button!r})\npyautogui.mouseUp(button={button!r})", out
    if kind == "drag":
        path = a.get("path") or []
        if len(path) < 2:
            path = [[a.get("x"), a.get("y")]] * 2
        x0, y0 = place(path[0][0], path[0][1])
        x1, y1 = place(path[-1][0], path[-1][1], "to_")
        out["button"] = button
        mids = [place(p[0], p[1], None) for p in path[1:-1]]
        if _straight((x0, y0), (x1, y1), mids):
            return f"pyautogui.moveTo(x={x0}, y={y0})\npyautogui.dragTo(x={x1}, y={y1}, button={button!r})", out
        pts = [(x0, y0), *mids, (x1, y1)]  # a curved stroke (drawing): its shape is kept
        out["path"] = [list(q) for q in pts]
        moves = "\n".join(f"pyautogui.moveTo(x={x}, y={y})" for x, y in pts[1:])
        return (f"pyautogui.moveTo(x={x0}, y={y0})\npyautogui.mouseDown(button={button!r})\n{moves}\n"
                f"pyautogui.mouseUp(button={button!r})"), out
    if kind == "scroll":
        ticks = int(a.get("ticks") or 1)
        dy, dx = float(a.get("dy") or 0), float(a.get("dx") or 0)
        cy, cx = _clicks(dy, ticks), _clicks(dx, ticks)
        if not cy and not cx:
            raise ValueError("a scroll of 0 clicks")
        at = ""
        if a.get("x") is not None and a.get("y") is not None:
            x, y = place(a["x"], a["y"])
            at = f", x={x}, y={y}"
        out.update(clicks=cy, hclicks=cx, dy=dy, dx=dx, ticks=ticks)
        calls = ([f"pyautogui.scroll({cy}{at})"] if cy else []) + ([f"pyautogui.hscroll({cx}{at})"] if cx else [])
        return "\n".join(calls), out
    if kind == "type":
        text = a.get("text") or ""
        if not text:
            raise ValueError("a type action without text")
        out["text"] = text
        return f"pyautogui.write({text!r})", out
    if kind in ("key", "hotkey"):
        keys = [key_name(str(k), platform) for k in a.get("keys") or []]
        if not keys:
            raise ValueError(f"a {kind} action without keys")
        out["keys"] = keys
        if len(keys) == 1:
            return f"pyautogui.press({keys[0]!r})", out
        return f"pyautogui.hotkey({', '.join(repr(k) for k in keys)})", out
    raise ValueError(f"no pyautogui call for action kind {kind!r}")


ACTION_SPACE = (
    "pyautogui.click(x=, y=), pyautogui.doubleClick(x=, y=), pyautogui.rightClick(x=, y=), "
    "pyautogui.middleClick(x=, y=), pyautogui.mouseDown(x=, y=, button=) + pyautogui.mouseUp(button=), "
    "pyautogui.moveTo(x=, y=) + pyautogui.dragTo(x=, y=, button=), pyautogui.moveTo(x=, y=) (while a button "
    "is down: a stroke), pyautogui.scroll(clicks, x=, y=) "
    "(positive scrolls up), pyautogui.hscroll(clicks, x=, y=) (positive scrolls right), "
    "pyautogui.write(text), pyautogui.press(key), pyautogui.hotkey(key, ...)")

__all__ = ["render", "key_name", "platform_of", "Offscreen", "KEYS", "ACTION_SPACE"]
