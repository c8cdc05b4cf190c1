"""DuckTrack desktop recordings: a folder with ``events.jsonl`` (every input event),
``metadata.json`` (the machine and screen), ``README.md`` (the description the person
typed) and the OBS screen video (``.mp4``) beside them; one session per folder.

Source: TheDuckAI/DuckTrack: ``ducktrack/recorder.py`` (the events), ``metadata.py``
(metadata.json), ``app.py`` (on stop, the folder ``recording-<YYYY-MM-DD_HH-MM-SS>`` is
renamed to the title the person gives, and the description is written to README.md),
``obs_client.py`` (OBS records an mp4 into the folder) and ``playback.py`` (how events
replay); the repo's ``example/`` recording. Each line of ``events.jsonl`` is
``{"time_stamp": <seconds, time.perf_counter()>, "action": ...}`` with, by action:
``move {x, y}``, ``click {x, y, button: left|right|middle, pressed: bool}``,
``scroll {x, y, dx, dy}`` (wheel steps), ``press``/``release {name}`` (pynput: a
character for a character key, else the ``Key`` name such as ``cmd``, ``shift_r``,
``enter``; ``Key.cmd`` and ``'a'`` spellings are accepted too) and ``pause``/``resume``.
metadata.json holds ``system``, ``release``, ``machine``, ``model`` (the hardware),
``screen_width``/``screen_height``, ``scroll_direction`` (-1 natural scrolling),
``start_time``/``stop_time`` and ``obs_record_state_timings`` (perf_counter seconds of
OBS's record states); its ``id`` (the MAC address) and ``node`` (the host name) are never
read into the session.

Actions: the events are translated to the Clones vocabulary of
:mod:`streamgrade.extract.actions` and extracted by the same rules: a click or scroll is
a ``mousemove`` to its position then ``mousedown``/``mouseup {button}`` or
``mousewheel {delta: dy, delta_x: dx}`` (sign as recorded); keys map to the extractor's
rdev names (``a`` -> ``KeyA``, ``1``/``!`` -> ``Digit1``, ``cmd`` -> ``MetaLeft``,
``ctrl_r`` -> ``ControlRight``, ``enter`` -> ``Return``, ``up`` -> ``UpArrow``, ...), the
typed character kept as ``actual_char`` (a control character, Ctrl held on Windows, is its
letter). Times are ms from the first event with paused intervals (``pause`` to ``resume``)
cut out, so they stay aligned with the video, which OBS pauses too.

Task (in order): a ``task``/``title``/``instruction``/``description`` string in
metadata.json (annotated datasets); else the folder name unless it is DuckTrack's default
``recording-<time>`` name, followed by README.md's description; else (an untitled
recording with no description) the folder name, with ``meta["untitled"]``. ``kind`` is
"demonstration", ``reward`` None (DuckTrack records no outcome). Video: the folder's
first ``.mp4`` (or ``.mkv``/``.mov``); ``video_offset_ms`` puts session time 0 (the first
event) at its video time, from OBS's ``OBS_WEBSOCKET_OUTPUT_STARTED`` timing (0 when
absent).

Finding: a folder with ``events.jsonl`` whose first line has ``time_stamp`` and
``action``, or with a DuckTrack ``metadata.json`` (``screen_width``,
``scroll_direction``, ``obs_record_state_timings``); such a metadata.json without
events.jsonl is still a session, which fails naming the missing file.
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..extract.actions import RawEvent, extract_actions
from ..models import Session, SessionRef
from ._rows import peek
from .base import iter_jsonl, load_json, read_bytes, require

NAME = "ducktrack"
EVENTS, META, README = "events.jsonl", "metadata.json", "README.md"
VIDEO_EXTS = (".mp4", ".mkv", ".mov")
DEFAULT_NAME = re.compile(r"^recording-\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}$")
_META_PEEK = re.compile(rb'"(?:screen_width|scroll_direction|obs_record_state_timings)"\s*:')
_EVENT_PEEK = re.compile(rb'^\s*\{[^\n]*"time_stamp"\s*:[^\n]*"action"\s*:|^\s*\{[^\n]*"action"\s*:[^\n]*"time_stamp"\s*:')

#: pynput ``Key`` names -> the extractor's rdev key names.
PYNPUT_KEYS = {
    "alt": "Alt", "alt_l": "Alt", "alt_r": "AltGr", "alt_gr": "AltGr",
    "cmd": "MetaLeft", "cmd_l": "MetaLeft", "cmd_r": "MetaRight",
    "ctrl": "ControlLeft", "ctrl_l": "ControlLeft", "ctrl_r": "ControlRight",
    "shift": "ShiftLeft", "shift_l": "ShiftLeft", "shift_r": "ShiftRight",
    "backspace": "Backspace", "caps_lock": "CapsLock", "delete": "Delete", "end": "End", "enter": "Return",
    "esc": "Escape", "home": "Home", "insert": "Insert", "menu": "Menu", "num_lock": "NumLock",
    "page_down": "PageDown", "page_up": "PageUp", "pause": "Pause", "print_screen": "PrintScreen",
    "scroll_lock": "ScrollLock", "space": "Space", "tab": "Tab",
    "up": "UpArrow", "down": "DownArrow", "left": "LeftArrow", "right": "RightArrow",
}
#: characters -> the rdev name of their key on a US layout (so press and release match
#: whatever Shift did in between).
CHAR_KEYS = {
    **{c: f"Digit{d}" for c, d in zip("!@#$%^&*()", "1234567890")},
    "-": "Minus", "_": "Minus", "=": "Equal", "+": "Equal", "[": "LeftBracket", "{": "LeftBracket",
    "]": "RightBracket", "}": "RightBracket", "\\": "BackSlash", "|": "BackSlash", ";": "SemiColon",
    ":": "SemiColon", "'": "Quote", '"': "Quote", ",": "Comma", "<": "Comma", ".": "Dot", ">": "Dot",
    "/": "Slash", "?": "Slash", "`": "BackQuote", "~": "BackQuote", " ": "Space",
}


def key_of(name: Any) -> tuple[str, str] | None:
    """(rdev key name, typed character or "") of a pynput key name; None for a key pynput
    could not name (a KeyCode without a character is recorded as null)."""
    if not isinstance(name, str) or not name:
        return None
    if name.startswith("Key.") and len(name) > 4:
        name = name[4:]
    if len(name) >= 3 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1]  # str(KeyCode): 'a'
    if len(name) == 1:
        c = name
        if c in "\t\r\n":
            return ("Tab" if c == "\t" else "Return"), ""
        if 1 <= ord(c) <= 26:  # Ctrl+letter on Windows arrives as a control character
            return f"Key{chr(ord(c) + 64)}", ""
        if c.isascii() and c.isalpha():
            return f"Key{c.upper()}", c
        if c.isascii() and c.isdigit():
            return f"Digit{c}", c
        return CHAR_KEYS.get(c, c), c if c.isprintable() else ""
    if name in PYNPUT_KEYS:
        return PYNPUT_KEYS[name], ""
    if re.fullmatch(r"f\d{1,2}", name):
        return name.upper(), ""
    if name.startswith("<") and name.endswith(">") and name[1:-1].isdigit():
        return f"VK{name[1:-1]}", ""  # str(KeyCode) of a key known by virtual key code only
    return name, ""


def _is_ducktrack_meta(path: Path) -> bool:
    return bool(_META_PEEK.search(peek(path, 16384)))


class DuckTrack:
    """The DuckTrack recording format (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """A folder holding a DuckTrack events.jsonl or metadata.json is one session named after it."""
        if EVENTS in names:
            if not _EVENT_PEEK.search(peek(folder / EVENTS, 4096)) and not (META in names and _is_ducktrack_meta(folder / META)):
                return []
        elif META not in names or not _is_ducktrack_meta(folder / META):
            return []
        videos = sorted(n for n in names if n.lower().endswith(VIDEO_EXTS))
        files = tuple(str(folder / n) for n in (EVENTS, META, README, *videos))
        return [SessionRef(session_id=folder.name, format=NAME, path=str(folder), files=files)]

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read metadata.json, README.md and events.jsonl and extract the actions. Raises
        InputError when events.jsonl is missing, empty or not JSONL (naming the line), or
        when a field is missing or of the wrong type (naming the line and field)."""
        folder = Path(ref.path)
        events_path, meta_path = folder / EVENTS, folder / META
        if not events_path.exists():
            raise InputError(str(events_path), "file is missing (a DuckTrack recording needs events.jsonl)")
        meta: dict[str, Any] = {}
        if meta_path.exists():
            doc = load_json(meta_path)
            if not isinstance(doc, dict):
                raise InputError(str(meta_path), f"expected a JSON object, got {type(doc).__name__}")
            meta = doc
        events, paused, skipped, first, last = _events(events_path)
        actions = extract_actions(events, config.extract)
        task, untitled = _task(folder, meta)
        video = next((folder / n for n in sorted(p.name for p in folder.iterdir() if p.name.lower().endswith(VIDEO_EXTS))
                      if (folder / n).is_file()), None) if folder.is_dir() else None
        started = _first_number(meta.get("obs_record_state_timings"), "OBS_WEBSOCKET_OUTPUT_STARTED")
        return Session(
            ref=ref,
            task=task,
            actions=actions,
            duration_s=round(last / 1000, 3),
            reward=None,
            kind="demonstration",
            video=str(video) if video else None,
            video_offset_ms=round((first - started) * 1000, 3) if video and started is not None else 0.0,
            meta={
                "system": _str(meta.get("system")), "release": _str(meta.get("release")),
                "machine": _str(meta.get("machine")), "device_model": _str(meta.get("model")),
                "monitor": {"width": _num(meta.get("screen_width")), "height": _num(meta.get("screen_height"))},
                "scroll_direction": _num(meta.get("scroll_direction")),
                "start_time": _str(meta.get("start_time")), "stop_time": _str(meta.get("stop_time")),
                "n_events": len(events), "paused_s": round(paused, 3), "skipped_events": skipped,
                "untitled": untitled, "has_video": video is not None, "has_metadata": bool(meta),
            },
        )


def _str(v: Any) -> str | None:
    return v if isinstance(v, str) else None


def _num(v: Any) -> float | None:
    return v if isinstance(v, (int, float)) and not isinstance(v, bool) else None


def _first_number(timings: Any, state: str) -> float | None:
    values = timings.get(state) if isinstance(timings, dict) else None
    value = values[0] if isinstance(values, list) and values else values
    return float(value) if _num(value) is not None else None


def _task(folder: Path, meta: dict[str, Any]) -> tuple[str, bool]:
    for k in ("task", "title", "instruction", "description"):
        v = meta.get(k)
        if isinstance(v, str) and v.strip():
            return v.strip(), False
    title = None if DEFAULT_NAME.match(folder.name) else folder.name
    description = None
    readme = folder / README
    if readme.is_file():
        try:
            description = read_bytes(readme, 1 << 20).decode("utf-8", "replace").strip() or None
        except InputError:
            description = None  # empty, or not a readable regular file: no description
    parts = [p for p in (title, description) if p]
    return ("\n".join(parts), False) if parts else (folder.name, True)


def _xy(obj: dict, path: str, n: int) -> dict[str, float]:
    return {"x": require(obj, "x", (int, float), path, line=n), "y": require(obj, "y", (int, float), path, line=n)}


def _events(path: Path) -> tuple[list[RawEvent], float, dict[str, int], float, int]:
    """(raw events in the Clones vocabulary, seconds paused, counts of events not used by
    kind, the first event's time_stamp (s), the last event's session time (ms))."""
    p = str(path)
    out: list[RawEvent] = []
    skipped: dict[str, int] = {}
    first: float | None = None
    removed = 0.0  # seconds of paused intervals so far
    paused_at: float | None = None
    last = 0
    for n, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError(p, f"expected a JSON object, got {type(obj).__name__}", line=n)
        ts = float(require(obj, "time_stamp", (int, float), p, line=n))
        action = require(obj, "action", str, p, line=n)
        first = ts if first is None else first
        if action == "pause":
            paused_at = ts if paused_at is None else paused_at
            continue
        if action == "resume":
            if paused_at is not None:
                removed += max(0.0, ts - paused_at)
                paused_at = None
            continue
        ms = (ts - first - removed) * 1000
        if not math.isfinite(ms) or abs(ms) > 1e15:
            raise InputError(p, f"time_stamp {ts!r} is out of range (first event at {first!r})", line=n, field="time_stamp")
        t = max(0, round(ms))
        last = max(last, t)
        if action == "move":
            out.append(RawEvent(t, "mousemove", _xy(obj, p, n), n))
        elif action == "click":
            pos = _xy(obj, p, n)
            button = require(obj, "button", str, p, line=n)
            pressed = require(obj, "pressed", bool, p, line=n)
            out.append(RawEvent(t, "mousemove", pos, n))
            out.append(RawEvent(t, "mousedown" if pressed else "mouseup", {"button": button}, n))
        elif action == "scroll":
            pos = _xy(obj, p, n)
            dx, dy = require(obj, "dx", (int, float), p, line=n), require(obj, "dy", (int, float), p, line=n)
            out.append(RawEvent(t, "mousemove", pos, n))
            out.append(RawEvent(t, "mousewheel", {"delta": dy, "delta_x": dx}, n))
        elif action in ("press", "release"):
            if "name" not in obj:
                raise InputError(p, "missing field", line=n, field="name")
            key = key_of(obj["name"])
            if key is None:
                skipped["unnamed_key"] = skipped.get("unnamed_key", 0) + 1
                continue
            out.append(RawEvent(t, "keydown" if action == "press" else "keyup",
                                {"key": key[0], "actual_char": key[1]}, n))
        else:
            skipped[action] = skipped.get(action, 0) + 1
    assert first is not None  # iter_jsonl rejects empty files
    return out, removed, skipped, first, last
