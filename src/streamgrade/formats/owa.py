"""open-world-agents (OWA) desktop captures: ``<stem>.mcap`` (input and window events) with
``<stem>.mkv`` (the screen video, HEVC) beside it.

Source: the open-world-agents recorder ``ocap`` (github.com/open-world-agents/open-world-agents,
MIT); test fixtures and schema notes in ../shared/corpus/owa/PROVENANCE.md. The ``.mcap``
is an MCAP container (zstd or lz4 chunks, read with the ``mcap`` package's stream reader)
whose messages are JSON-encoded. Topics and message schemas:

- ``mouse`` (MouseEvent): ``{event_type: "move"|"click"|"scroll", x, y, button?, pressed?,
  dx?, dy?}``; x/y are Windows virtual-desktop pixels (not video pixels).
- ``keyboard`` (KeyboardEvent): ``{event_type: "press"|"release", vk}``, ``vk`` a Windows
  virtual-key code. Windows auto-repeat arrives as repeated presses.
- ``window`` (WindowInfo): ``{title, rect: [x0, y0, x1, y1], hWnd}``: the foreground window,
  written about once a second.
- ``screen`` (ScreenCaptured / ScreenEmitted): one message per captured frame, tying it to
  the timeline: ``{utc_ns, source_shape|original_shape, shape, media_ref: {uri, pts_ns}}``
  (0.5+) or ``{path, pts, utc_ns}`` (0.3/0.4; ``pts`` in ns too).
- ``keyboard/state``, ``mouse/state``: periodic snapshots of held keys / buttons; counted
  in ``meta["topics"]`` but not used (the events carry the same information).

Schema names differ by recorder version: ``desktop/MouseEvent`` (0.4+),
``owa.env.desktop.msg.MouseEvent`` and ``owa.env.gst.msg.ScreenEmitted`` (0.3.x),
``owa_env_desktop.msg.MouseEvent`` (early 2025). Messages are dispatched on the last
component of the schema name, falling back to the topic, so all of them are read alike.

Translation to the extractor's vocabulary (:mod:`streamgrade.extract.actions`), times in ms
from the first message's ``log_time``:

- mouse move -> ``mousemove {x, y}``; click -> ``mousemove`` to the click's position, then
  ``mousedown``/``mouseup {button: Left|Right|Middle}`` (``pressed`` true/false); x1/x2 and
  unknown buttons are dropped. scroll -> ``mousemove`` then ``mousewheel {delta: dy,
  delta_x: dx}``: the recorder's notch counts (pynput on Win32: WHEEL_DELTA units / 120),
  kept with their sign, **positive dy = wheel turned away from the user = scroll up**,
  negative = scroll down (positive dx = right). A purely horizontal tick (dy 0) is a
  zero-delta wheel event, which the extractor drops.
- key press/release -> ``keydown``/``keyup {key, actual_char}``: ``key`` an rdev-like name
  (see :data:`VK_NAMES`: VK_SHIFT/VK_LSHIFT -> ShiftLeft, VK_CONTROL/VK_LCONTROL ->
  ControlLeft, VK_MENU/VK_LMENU -> AltLeft, VK_LWIN -> MetaLeft, letters KeyA..KeyZ, digits
  Digit0..Digit9, Return, Backspace, Space, Tab, arrows, OEM punctuation, F-keys, keypad,
  media keys; any other code ``Unknown(<vk>)``); ``actual_char`` the character the key
  types on a **US layout** (lowercase letters unless a Shift key is held, Shift+digit ->
  ``!@#...``, Shift+OEM -> ``:+<_>?~{|}"``; keypad digits assume NumLock on), else "".
  No other layout, CapsLock state or IME composition is known: text typed through a
  Korean/Japanese IME or a non-US layout comes out as the US-layout characters of the keys.
- window -> ``axtree_interaction {focused_app {name: title}}`` whenever the foreground
  window changes (another hWnd) or its title changes other than by an "unsaved" marker
  (Notepad's leading ``*``, VS Code's leading ``●``), so the extractor makes an
  ``app_focus`` action for it; the app name is the window title.

The task: OWA captures carry no task description and no reward, so the task is the neutral
``"Desktop capture: <first window title>"`` (``reward`` None, ``kind`` "demonstration").

``meta``: ``video`` (the .mkv path, or None), ``has_video``, ``video_offset_ns`` (the
``pts_ns`` of the first screen message: the video time of the frame that message refers to),
``first_frame_ms`` (that message's time on the session timeline), ``n_frames`` (screen
messages), ``frame_shape`` ([w, h]), ``topics`` (messages per topic), ``n_messages``,
``start_ns`` (epoch ns of the first message), ``recorder`` (the MCAP header's library),
``window_rect`` (the first window's rect), ``windows`` (distinct titles in order),
``window_rects`` (``[t_ms, hWnd, x0, y0, x1, y1]`` whenever a window's rect changes, at most
:data:`MAX_RECTS`), ``source_shape`` (the captured source's [w, h] in desktop px, 0.4+) and
``display_config`` (ocap's MCAP metadata ``{resolution: "WxH", refresh_rate}``, or None):
what :mod:`streamgrade.extract.screens` places the capture on the desktop with.

Bad input: anything the MCAP reader rejects (bad magic, truncation, CRC mismatch, a broken
chunk, a chunk claiming over :data:`MAX_CHUNK_BYTES` uncompressed) raises
:class:`InputError` naming the file, the byte offset reached and how many
messages were read; a message that is not JSON or has a field of the wrong type raises
InputError naming the message index (0-based, file order) and topic as ``field``.
"""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config
from ..errors import InputError
from ..extract.actions import RawEvent, extract_actions
from ..models import Session, SessionRef
from .base import read_bytes

NAME = "owa"
MCAP_EXT, VIDEO_EXT = ".mcap", ".mkv"
# ancestors too generic to tell captures apart in a session id
MAX_CHUNK_BYTES = 1 << 30  # an OWA chunk is ~1 MiB uncompressed
MAX_RECTS = 10_000  # window rect changes kept in meta["window_rects"]
_GENERIC_DIRS = {"data", "tests", "test", "examples", "example", "fixtures", "recordings", "captures", "mcap", ""}

# --------------------------------------------------------------------------- keys

#: Windows virtual-key code -> rdev-like key name (the vocabulary of extract/actions.py).
VK_NAMES: dict[int, str] = {
    0x08: "Backspace", 0x09: "Tab", 0x0C: "Clear", 0x0D: "Return", 0x13: "Pause",
    0x14: "CapsLock", 0x15: "KanaMode", 0x19: "HanjaMode", 0x1B: "Escape", 0x20: "Space",
    0x21: "PageUp", 0x22: "PageDown", 0x23: "End", 0x24: "Home",
    0x25: "LeftArrow", 0x26: "UpArrow", 0x27: "RightArrow", 0x28: "DownArrow",
    0x2C: "PrintScreen", 0x2D: "Insert", 0x2E: "Delete",
    0x10: "ShiftLeft", 0xA0: "ShiftLeft", 0xA1: "ShiftRight",
    0x11: "ControlLeft", 0xA2: "ControlLeft", 0xA3: "ControlRight",
    0x12: "AltLeft", 0xA4: "AltLeft", 0xA5: "AltRight",
    0x5B: "MetaLeft", 0x5C: "MetaRight", 0x5D: "ContextMenu", 0x5F: "Sleep",
    0x6A: "KpMultiply", 0x6B: "KpPlus", 0x6C: "KpSeparator", 0x6D: "KpMinus",
    0x6E: "KpDelete", 0x6F: "KpDivide", 0x90: "NumLock", 0x91: "ScrollLock",
    0xAD: "VolumeMute", 0xAE: "VolumeDown", 0xAF: "VolumeUp", 0xB0: "MediaNextTrack",
    0xB1: "MediaPrevTrack", 0xB2: "MediaStop", 0xB3: "MediaPlayPause",
    0xBA: "SemiColon", 0xBB: "Equal", 0xBC: "Comma", 0xBD: "Minus", 0xBE: "Dot",
    0xBF: "Slash", 0xC0: "BackQuote", 0xDB: "LeftBracket", 0xDC: "BackSlash",
    0xDD: "RightBracket", 0xDE: "Quote", 0xE2: "IntlBackslash", 0xE5: "ImeProcess",
}
VK_NAMES.update({0x41 + i: f"Key{chr(0x41 + i)}" for i in range(26)})
VK_NAMES.update({0x30 + i: f"Digit{i}" for i in range(10)})
VK_NAMES.update({0x60 + i: f"Kp{i}" for i in range(10)})
VK_NAMES.update({0x70 + i: f"F{i + 1}" for i in range(24)})

_SHIFT_VKS = {0x10, 0xA0, 0xA1}
# US layout: vk -> (plain, shifted)
_US_CHARS: dict[int, tuple[str, str]] = {
    0x20: (" ", " "),
    0xBA: (";", ":"), 0xBB: ("=", "+"), 0xBC: (",", "<"), 0xBD: ("-", "_"), 0xBE: (".", ">"),
    0xBF: ("/", "?"), 0xC0: ("`", "~"), 0xDB: ("[", "{"), 0xDC: ("\\", "|"), 0xDD: ("]", "}"),
    0xDE: ("'", '"'), 0xE2: ("\\", "|"),
    0x6A: ("*", "*"), 0x6B: ("+", "+"), 0x6D: ("-", "-"), 0x6E: (".", "."), 0x6F: ("/", "/"),
}
_US_CHARS.update({0x41 + i: (chr(0x61 + i), chr(0x41 + i)) for i in range(26)})
_US_CHARS.update({0x30 + i: (str(i), ")!@#$%^&*("[i]) for i in range(10)})
_US_CHARS.update({0x60 + i: (str(i), str(i)) for i in range(10)})

_BUTTONS = {"left": "Left", "right": "Right", "middle": "Middle"}


def key_name(vk: int) -> str:
    """The rdev-like name of a Windows virtual-key code (``Unknown(<vk>)`` if unmapped)."""
    return VK_NAMES.get(vk, f"Unknown({vk})")


def us_char(vk: int, shift: bool) -> str:
    """The character ``vk`` types on a US layout (shifted when ``shift``), or ""."""
    pair = _US_CHARS.get(vk)
    return "" if pair is None else pair[1 if shift else 0]


# --------------------------------------------------------------------------- reading


def _schema_kind(schema_name: str, topic: str) -> str:
    """``mouse``, ``keyboard``, ``window``, ``screen``, ``keyboard/state``,
    ``mouse/state`` or the topic itself: from the schema name's last component (any
    recorder version), else the topic."""
    last = schema_name.replace("/", ".").rsplit(".", 1)[-1]
    return {
        "MouseEvent": "mouse", "KeyboardEvent": "keyboard", "WindowInfo": "window",
        "ScreenCaptured": "screen", "ScreenEmitted": "screen",
        "KeyboardState": "keyboard/state", "MouseState": "mouse/state",
    }.get(last, topic)


def read_mcap(path: str | Path, metadata: dict[str, dict[str, str]] | None = None,
              ) -> tuple[list[tuple[int, int, str, str, bytes]], str | None]:
    """All messages of an MCAP file in file order as ``(index, log_time_ns, topic, kind,
    data)`` and the header's library string; ``metadata``, when given, gets the file's
    MCAP Metadata records by name (ocap writes ``display_config`` {resolution, refresh_rate}
    and ``os_version``). Raises InputError (naming the byte offset and the messages read
    so far) for anything the reader rejects."""
    path = str(path)
    try:
        from mcap.records import Channel, Chunk, Header, Message, Metadata, Schema
        from mcap.stream_reader import StreamReader, breakup_chunk
    except ImportError:
        raise InputError(path, "reading .mcap files needs the mcap package (pip install mcap)") from None
    data = read_bytes(path)
    stream = io.BytesIO(data)
    schemas: dict[int, str] = {}
    channels: dict[int, tuple[str, str]] = {}
    out: list[tuple[int, int, str, str, bytes]] = []
    library = None
    try:
        reader = StreamReader(stream, emit_chunks=True, validate_crcs=True, record_size_limit=len(data))
        for rec in _unchunked(reader.records, path, stream, Chunk, breakup_chunk):
            if isinstance(rec, Header):
                library = rec.library
            elif isinstance(rec, Schema):
                schemas[rec.id] = rec.name
            elif isinstance(rec, Channel):
                if rec.message_encoding.lower() != "json":
                    raise InputError(path, f"channel {rec.topic!r} uses message encoding {rec.message_encoding!r}; only JSON is supported")
                channels[rec.id] = (rec.topic, _schema_kind(schemas.get(rec.schema_id, ""), rec.topic))
            elif isinstance(rec, Metadata) and metadata is not None:
                metadata[rec.name] = {str(k): str(v) for k, v in rec.metadata.items()}
            elif isinstance(rec, Message):
                if rec.channel_id not in channels:
                    raise InputError(path, f"message {len(out)} refers to unknown channel {rec.channel_id} (byte offset {stream.tell()})")
                topic, kind = channels[rec.channel_id]
                out.append((len(out), rec.log_time, topic, kind, rec.data))
    except InputError:
        raise
    except Exception as exc:  # noqa: BLE001 - the mcap reader raises many kinds (EndOfFile, struct.error, zstd errors, CRC, ...)
        what = {"EndOfFile": "truncated MCAP file",
                # the limit is the file's size: the record runs past the end of the file
                "RecordLengthLimitExceeded": "truncated or corrupted MCAP file"}.get(type(exc).__name__, "corrupted MCAP file")
        detail = f": {exc}" if str(exc) else f" ({type(exc).__name__})"
        raise InputError(path, f"{what} at byte offset {stream.tell()} of {len(data)} after {len(out)} messages{detail}") from None
    return out, library


def _unchunked(records, path: str, stream: io.BytesIO, chunk_type, breakup):
    """``records`` with each chunk replaced by the records inside it, refusing a chunk that
    claims to decompress to more than :data:`MAX_CHUNK_BYTES` (a corrupted size field would
    otherwise make the decompressor allocate it)."""
    for rec in records:
        if isinstance(rec, chunk_type):
            if rec.uncompressed_size > MAX_CHUNK_BYTES:
                raise InputError(path, f"corrupted MCAP file: chunk before byte offset {stream.tell()} claims "
                                       f"{rec.uncompressed_size} uncompressed bytes (limit {MAX_CHUNK_BYTES})")
            yield from breakup(rec, validate_crc=True)
        else:
            yield rec


def _num(obj: dict[str, Any], key: str, path: str, where: str, *, optional: bool = False) -> float | None:
    value = obj.get(key)
    if value is None and optional:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise InputError(path, f"expected a number for {key!r}, got {type(value).__name__}", field=where)
    return value


class OWACapture:
    """The open-world-agents capture format (see module docstring)."""

    name = NAME

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """Each ``<stem>.mcap`` is one session; its files are the mcap and ``<stem>.mkv``
        (which may be absent). The id is ``<label>.<stem>``, ``label`` the nearest ancestor
        folder whose name is not generic (data, tests, examples, ...): projects/owa-cli/
        tests/data/0.4.2.mcap -> ``owa-cli.0.4.2``. Reads no file."""
        folder = Path(folder)
        out = []
        label = None
        for n in sorted(names):
            if not n.lower().endswith(MCAP_EXT) or n.startswith("."):
                continue
            stem = n[: -len(MCAP_EXT)]
            if label is None:
                label = _label(folder)
            files = (str(folder / n), str(folder / f"{stem}{VIDEO_EXT}"))
            sid = f"{label}.{stem}" if label else stem
            out.append(SessionRef(session_id=sid, format=NAME, path=str(folder / n), files=files))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the mcap, translate its messages to raw events and extract the actions.

        Raises InputError naming the file (and byte offset, or message index and topic)."""
        path = ref.path
        mcap_meta: dict[str, dict[str, str]] = {}
        messages, library = read_mcap(path, mcap_meta)
        if not messages:
            raise InputError(path, "no messages in the MCAP file")
        t0 = min(m[1] for m in messages)
        t_last = max(m[1] for m in messages)
        decoder = msgspec.json.Decoder()
        events: list[RawEvent] = []
        topics: Counter[str] = Counter()
        held: set[int] = set()
        windows: list[str] = []
        first_title: str | None = None
        window_rect = None
        focus_key: tuple[Any, str] | None = None
        first_screen: dict[str, Any] | None = None
        first_screen_ms: int | None = None
        n_frames = 0
        video_uri = None
        frame_shape = None
        source_shape = None
        rects: list[list[Any]] = []  # [t_ms, hWnd, x0, y0, x1, y1] when a window's rect changes
        last_rect: dict[Any, list[Any]] = {}

        for idx, log_time, topic, kind, raw in sorted(messages, key=lambda m: (m[1], m[0])):
            topics[topic] += 1
            t = (log_time - t0) // 1_000_000
            where = f"message[{idx}] ({topic})"
            if kind not in ("mouse", "keyboard", "window", "screen"):
                continue  # state snapshots and unknown topics: counted only
            try:
                msg = decoder.decode(raw)
            except (msgspec.DecodeError, RecursionError) as exc:
                raise InputError(path, f"invalid JSON: {exc}", field=where) from None
            if not isinstance(msg, dict):
                raise InputError(path, f"expected a JSON object, got {type(msg).__name__}", field=where)
            if kind == "mouse":
                self._mouse(msg, t, idx, path, where, events)
            elif kind == "keyboard":
                etype = msg.get("event_type")
                vk = msg.get("vk")
                if not isinstance(vk, int) or isinstance(vk, bool):
                    raise InputError(path, f"expected an integer 'vk', got {type(vk).__name__}", field=where)
                name = key_name(vk)
                if etype == "press":
                    ch = us_char(vk, shift=bool(held & _SHIFT_VKS))
                    held.add(vk)
                    events.append(RawEvent(t, "keydown", {"key": name, "actual_char": ch}, idx))
                elif etype == "release":
                    held.discard(vk)
                    events.append(RawEvent(t, "keyup", {"key": name, "actual_char": ""}, idx))
                else:
                    raise InputError(path, f"unknown keyboard event_type {etype!r}", field=where)
            elif kind == "window":
                title = msg.get("title")
                if not isinstance(title, str):
                    raise InputError(path, f"expected a string 'title', got {type(title).__name__}", field=where)
                if first_title is None:
                    first_title = title
                    window_rect = msg.get("rect") if isinstance(msg.get("rect"), list) else None
                if title and title not in windows:
                    windows.append(title)
                rect = msg.get("rect")
                if (isinstance(rect, list) and len(rect) == 4 and len(rects) < MAX_RECTS
                        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in rect)
                        and last_rect.get(msg.get("hWnd")) != rect):
                    last_rect[msg.get("hWnd")] = rect
                    rects.append([t, msg.get("hWnd"), *rect])
                key = (msg.get("hWnd"), _clean_title(title))
                if title and key != focus_key:
                    focus_key = key
                    events.append(RawEvent(t, "axtree_interaction", {"focused_app": {"name": title}}, idx))
            else:  # screen
                n_frames += 1
                if first_screen is None:
                    first_screen, first_screen_ms = msg, t
                    ref_ = msg.get("media_ref")
                    if isinstance(ref_, dict):
                        video_uri = ref_.get("uri") if isinstance(ref_.get("uri"), str) else None
                    elif isinstance(msg.get("path"), str):
                        video_uri = msg["path"]
                    shape = msg.get("shape")
                    frame_shape = shape if isinstance(shape, list) else None
                    src = msg.get("source_shape", msg.get("original_shape"))
                    source_shape = src if isinstance(src, list) else None

        video_offset_ns = None
        if first_screen is not None:
            ref_ = first_screen.get("media_ref")
            pts = ref_.get("pts_ns") if isinstance(ref_, dict) else first_screen.get("pts")
            if isinstance(pts, int) and not isinstance(pts, bool):
                video_offset_ns = pts
        video = Path(ref.files[1]) if len(ref.files) > 1 else Path(path).with_suffix(VIDEO_EXT)
        if not video.exists() and video_uri:
            cand = Path(path).parent / video_uri
            video = cand if cand.exists() else video
        has_video = video.exists()

        actions = extract_actions(events, config.extract)
        title = (first_title or "").strip()
        task = f"Desktop capture: {title}" if title else "Desktop capture"
        return Session(
            ref=ref,
            task=task,
            objectives=[],
            app=title or None,
            actions=actions,
            duration_s=round((t_last - t0) / 1e9, 3),
            reward=None,  # OWA captures carry no reward
            kind="demonstration",
            # the frame shown at session time first_screen_ms has video time video_offset_ns
            video=str(video) if has_video else None,
            video_offset_ms=((video_offset_ns or 0) / 1e6 - (first_screen_ms or 0)) if has_video else 0.0,
            meta={
                "start_ns": t0,
                "recorder": library,
                "n_messages": len(messages),
                "topics": dict(sorted(topics.items())),
                "n_events": len(events),
                "video": str(video) if has_video else None,
                "has_video": has_video,
                "video_uri": video_uri,
                "video_offset_ns": video_offset_ns,
                "first_frame_ms": first_screen_ms,
                "n_frames": n_frames,
                "frame_shape": frame_shape,
                "window_rect": window_rect,
                "window_rects": rects,
                "source_shape": source_shape,
                "display_config": mcap_meta.get("display_config"),
                "windows": windows,
                "no_task_description": True,
            },
        )

    @staticmethod
    def _mouse(msg: dict[str, Any], t: int, idx: int, path: str, where: str, events: list[RawEvent]) -> None:
        etype = msg.get("event_type")
        if etype not in ("move", "click", "scroll"):
            raise InputError(path, f"unknown mouse event_type {etype!r}", field=where)
        x = _num(msg, "x", path, where, optional=etype != "move")
        y = _num(msg, "y", path, where, optional=etype != "move")
        if x is not None and y is not None:
            events.append(RawEvent(t, "mousemove", {"x": x, "y": y}, idx))
        if etype == "click":
            button = _BUTTONS.get(str(msg.get("button", "")).lower())
            pressed = msg.get("pressed")
            if not isinstance(pressed, bool):
                raise InputError(path, f"expected a boolean 'pressed', got {type(pressed).__name__}", field=where)
            if button is not None:  # x1, x2, unknown: not part of the extractor's vocabulary
                events.append(RawEvent(t, "mousedown" if pressed else "mouseup", {"button": button}, idx))
        elif etype == "scroll":
            dy = _num(msg, "dy", path, where, optional=True) or 0
            dx = _num(msg, "dx", path, where, optional=True) or 0
            if dy or dx:
                events.append(RawEvent(t, "mousewheel", {"delta": dy, "delta_x": dx}, idx))


def _clean_title(title: str) -> str:
    """The title without an "unsaved changes" marker (Notepad ``*``, VS Code ``●``)."""
    t = title.strip()
    while t[:1] in ("*", "●"):
        t = t[1:].lstrip()
    return t


def _label(folder: Path) -> str:
    """The nearest ancestor (``folder`` included) whose name is not generic, else the
    folder's own name."""
    for p in (folder, *folder.parents):
        if p.name.lower() not in _GENERIC_DIRS:
            return p.name
    return folder.name
