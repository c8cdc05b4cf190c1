"""Offline captions: one sentence per action from the action itself, the focused window and
the key names, and offline structured hints per session.

Captions read like "clicks in Word", "types "coucou" in Word", "presses Cmd+S (save) in
Word", "scrolls down 41 ticks in Word", "right-clicks in Finder": no coordinates, which the
action's own line carries (the judge's evidence line, the computer-use row's pyautogui call,
in that row's screen space). The focused window is the text of the latest ``app_focus`` action at or
before the action (Clones, OWA and DuckTrack record focus changes), else the session's
app. Key names are the extractor's (rdev-style, :mod:`streamgrade.extract.actions`);
``Meta`` reads ``Cmd`` on macOS and ``Win`` elsewhere; common shortcuts get their meaning
(:data:`SHORTCUTS`, the platforms' standard editing and window shortcuts).
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from ..models import Action

#: Shortcut meanings by normalised chord; "mod" is Ctrl (Windows, Linux) or Cmd (macOS).
SHORTCUTS = {
    "mod+s": "save", "mod+c": "copy", "mod+v": "paste", "mod+x": "cut", "mod+z": "undo",
    "mod+shift+z": "redo", "mod+y": "redo", "mod+a": "select all", "mod+f": "find", "mod+t": "new tab",
    "mod+w": "close tab", "mod+n": "new window or document", "mod+o": "open", "mod+p": "print",
    "mod+shift+t": "reopen closed tab", "mod+l": "focus the address bar", "mod+r": "reload",
    "mod+q": "quit", "alt+tab": "switch window", "cmd+tab": "switch app", "alt+f4": "close window",
    "cmd+space": "Spotlight search", "win+d": "show desktop", "win+e": "open File Explorer",
}
#: Action kinds with a caption (the input actions; ``app_focus`` is their effect).
CAPTIONED = ("click", "double_click", "press_hold", "drag", "scroll", "type", "key", "hotkey")


def key_name(key: str, platform: str | None) -> str:
    """A key as people write it: Meta is Cmd on macOS, Win elsewhere; single characters
    upper-cased; others as the extractor names them (Return, Tab, ...)."""
    if key == "Meta":
        return "Cmd" if platform == "macos" else "Win"
    return key.upper() if len(key) == 1 else key


def chord(keys: Sequence[str], platform: str | None) -> str:
    """``Cmd+S (save)``: the keys joined with "+", and the shortcut's meaning when known."""
    names = [key_name(k, platform) for k in keys]
    text = "+".join(names)
    norm = "+".join(n.lower() for n in names)
    mod = "cmd" if platform == "macos" else "ctrl"
    meaning = SHORTCUTS.get(norm) or SHORTCUTS.get(norm.replace(mod + "+", "mod+", 1) if norm.startswith(mod + "+") else "")
    return f"{text} ({meaning})" if meaning else text


def focused_windows(actions: Sequence[Action], default: str | None = None) -> list[str | None]:
    """The focused window at each action: the latest ``app_focus`` text at or before it, else
    ``default``."""
    out: list[str | None] = []
    cur = default
    for a in actions:
        if a.kind == "app_focus" and a.text:
            cur = a.text
        out.append(cur)
    return out


def _quote(text: str, limit: int = 60) -> str:
    text = text.replace("\n", "\\n")
    return '"' + (text if len(text) <= limit else text[: limit - 3] + "...") + '"'


def template_caption(a: Action, window: str | None = None, platform: str | None = None) -> str:
    """One action's caption (see the module docstring)."""
    where = f" in {window}" if window else ""
    at = ""  # the action's own line (judge evidence, pyautogui code) carries the coordinates
    match a.kind:
        case "click" | "double_click":
            verb = {"right": "right-clicks", "middle": "middle-clicks"}.get(a.button or "left", "clicks")
            if a.kind == "double_click":
                verb = "double-clicks" if verb == "clicks" else verb.replace("clicks", "double-clicks")
            return f"{verb}{at}{where}"
        case "press_hold":
            held = ((a.end_ms or a.t_ms) - a.t_ms) / 1000
            return f"presses and holds{at} for {held:.1f} s{where}"
        case "drag":
            return f"drags{where}"
        case "scroll":
            dy, dx = a.dy or 0, a.dx or 0
            way = ("up" if dy > 0 else "down") if abs(dy) >= abs(dx) else ("right" if dx > 0 else "left")
            amount = f" {a.ticks} ticks" if a.ticks else ""
            return f"scrolls {way}{amount}{at}{where}"
        case "type":
            return f"types {_quote(a.text or '')}{where}"
        case "key" | "hotkey":
            keys = a.keys or []
            if a.kind == "key" and len(keys) == 1:
                return f"presses {key_name(keys[0], platform)}{where}"
            return f"presses {chord(keys, platform)}{where}"
        case "app_focus":
            return f"switches to {a.text}" if a.text else "switches window"
        case _:
            return f"{a.kind.replace('_', ' ')}{at}{where}"


def template_session_hints(task: str, actions: Sequence[Action], platform: str | None,
                           transitions: dict[int, dict[str, Any]]) -> dict[str, Any]:
    """Offline structured hints of a session: ``{goal, apps, subgoals, shortcuts, issues}``
    (the shape of :data:`.captions.SESSION_HINTS_SCHEMA`): the goal is the task's first
    line; apps the focused windows in order; subgoals the text typed in each window;
    shortcuts the hotkeys used with their meaning; issues clicks that changed nothing on
    screen and the same spot clicked three times or more (``transitions``: action index ->
    its state transition, see :mod:`.transitions`)."""
    wins = focused_windows(actions)
    apps: list[str] = []
    for w in wins:
        if w and w not in apps:
            apps.append(w)
    subgoals = [f"type {_quote(a.text or '', 40)}" + (f" in {w}" if w else "")
                for a, w in zip(actions, wins) if a.kind == "type" and (a.text or "").strip()]
    shortcuts = list(dict.fromkeys(chord(a.keys or [], platform) for a in actions if a.kind == "hotkey"))
    issues = []
    for i, a in enumerate(actions):
        tr = transitions.get(i)
        if a.kind in ("click", "double_click") and tr and tr.get("changed_share") == 0:
            issues.append(f"the {a.kind.replace('_', ' ')} at ({a.x}, {a.y}) changed nothing on screen")
    spots = Counter((a.x, a.y) for a in actions if a.kind == "click" and a.x is not None)
    issues += [f"the same spot ({x}, {y}) was clicked {n} times" for (x, y), n in spots.items() if n >= 3]
    first = (task or "").strip().splitlines()[0] if (task or "").strip() else ""
    return {"goal": first, "apps": apps, "subgoals": subgoals[:12], "shortcuts": shortcuts[:12], "issues": issues[:12]}


__all__ = ["template_caption", "template_session_hints", "focused_windows", "chord", "key_name", "SHORTCUTS",
           "CAPTIONED"]
