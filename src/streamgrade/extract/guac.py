"""Guacamole session recordings (``<id>.guac``) to raw input events.

Clones web sessions come with a recording written by guacd in the Apache Guacamole protocol
("Guacamole protocol reference", Apache Guacamole Manual, https://guacamole.apache.org/doc/gug/protocol-reference.html;
wire format in "The Guacamole protocol", https://guacamole.apache.org/doc/gug/guacamole-protocol.html).

Wire format: a recording is a stream of instructions. Each instruction is a comma-separated
list of elements terminated by ``;``; each element is ``LENGTH.VALUE`` where LENGTH is the
decimal number of Unicode characters (code points, not bytes, not UTF-16 units) in VALUE,
so VALUE may itself contain ``,``, ``.`` and ``;``. The first element is the opcode::

    4.sync,13.1737650400123;5.mouse,3.120,2.45,1.1,13.1737650400140;

The input instructions used here (protocol reference, "Event instructions"):

* ``mouse x, y, mask[, timestamp]``: pointer position and the button mask, one bit per
  button: 1 left, 2 middle, 4 right, 8 scroll up, 16 scroll down. A button is down while its
  bit is set; a wheel tick is a press (and release) of bit 8 or 16.
* ``key keysym, pressed[, timestamp]``: an X11 keysym and 1 (pressed) or 0 (released).
  Shifted characters come as their own keysym ('A' is 0x41, '!' is 0x21) while the Shift
  keysym is held.
* ``sync timestamp``: the end of a frame; the timestamp is in milliseconds.

The optional trailing timestamp of ``mouse``/``key`` is written by guacd's recorder (same
clock as ``sync``); when absent, the time of an event is the last ``sync`` seen. Times are
ms from the first ``sync`` (events before it are at 0).

Translation to :class:`~streamgrade.extract.actions.RawEvent` (the Clones desktop recorder
vocabulary, see ``actions.py``), after which :func:`extract_actions` does the rest:

* pointer position changes -> ``mousemove {x, y}`` (emitted before the button changes of
  the same instruction, so a press is placed where the pointer is);
* mask bits 1/2/4 set -> ``mousedown {button: Left|Middle|Right}``, cleared -> ``mouseup``;
* bit 8 (scroll up) newly set -> ``mousewheel {delta: +1}``, bit 16 (scroll down) newly
  set -> ``mousewheel {delta: -1}`` (positive = up/away from the user, as rdev's
  ``delta_y``);
* ``key`` -> ``keydown``/``keyup {key, actual_char}``: ``key`` is an rdev-style name
  (``KeyA`` for a/A, ``Digit1``, ``Space``, ``Return``, ``Backspace``, ``ShiftLeft``,
  ``ControlLeft``, ``AltLeft``, ``MetaLeft``, ``LeftArrow``, ``F5``...; other printable
  characters are named by the character itself, unknown keysyms ``Keysym0x....``) and
  ``actual_char`` the character the keysym stands for ("" for non-printable keys):
  keysyms 0x20-0x7e and 0xa0-0xff are the Latin-1 code point itself, 0x01000000 + cp is
  Unicode code point cp, keypad digits are their digit.
"""

from __future__ import annotations

import codecs
import os
from dataclasses import dataclass
from typing import Iterable, Iterator, NamedTuple

from ..config import ExtractConfig
from ..models import Action
from .actions import RawEvent, extract_actions

__all__ = ["GuacError", "Instruction", "parse_instructions", "instruction_events",
           "events_from_guac", "actions_from_guac", "first_sync_ms", "keysym_name", "keysym_char",
           "encode_instruction"]

#: Longest accepted length prefix (digits). 10 digits is well above any real element.
MAX_LENGTH_DIGITS = 10
_READ_SIZE = 1 << 16


class GuacError(ValueError):
    """A malformed recording: ``offset`` is the byte offset (in the UTF-8 input) of the
    offending character, or of the start of a truncated instruction at the end of input."""

    def __init__(self, offset: int, message: str):
        super().__init__(f"byte {offset}: {message}")
        self.offset = offset
        self.message = message


class Instruction(NamedTuple):
    """One Guacamole instruction: ``opcode``, ``args`` (strings, as on the wire) and
    ``offset``, the byte offset of its first character in the input."""

    opcode: str
    args: tuple[str, ...]
    offset: int


def encode_instruction(opcode: str, *args: object) -> str:
    """The wire form of an instruction (lengths in code points, as the protocol requires)."""
    return ",".join(f"{len(s)}.{s}" for s in (str(opcode), *map(str, args))) + ";"


def _utf8_len(s: str) -> int:
    return len(s.encode("utf-8", "surrogatepass"))


def parse_instructions(chunks: Iterable[str | bytes]) -> Iterator[Instruction]:
    """Parse Guacamole instructions from ``chunks`` (``bytes`` are UTF-8, ``str`` text), in
    order, yielding each instruction as soon as its terminating ``;`` has been read.

    Chunks may be split anywhere: inside a length prefix, an element, or a UTF-8 sequence.
    Strict where the reference JavaScript parser (``Guacamole.Parser``) is lenient: a length
    prefix must be one or more ASCII digits followed by ``.`` (no sign, no whitespace, so
    newlines between instructions are errors), an element must be followed by ``,`` or
    ``;``, bytes must be valid UTF-8, and input must not end inside an instruction. Each
    violation raises :class:`GuacError` with the byte offset of the offending character.
    """
    decoder = codecs.getincrementaldecoder("utf-8")("strict")
    fed = 0           # bytes given to the decoder so far
    buf = ""          # decoded, not yet consumed text
    pos = 0           # parse position in buf
    base = 0          # byte offset of buf[0]
    pos_bytes = 0     # byte offset of buf[pos] relative to base
    # parser state
    inst_start = 0    # byte offset of the current instruction's first char
    elements: list[str] = []
    length: int | None = None   # declared length of the element being read, None while reading the prefix
    digits = ""

    def feed(chunk: str | bytes) -> str:
        nonlocal fed
        if isinstance(chunk, str):
            if decoder.getstate()[0]:
                raise GuacError(fed - len(decoder.getstate()[0]), "text chunk after an incomplete UTF-8 sequence")
            fed += _utf8_len(chunk)
            return chunk
        pending = len(decoder.getstate()[0])
        try:
            text = decoder.decode(bytes(chunk))
        except UnicodeDecodeError as e:
            raise GuacError(fed - pending + e.start, f"invalid UTF-8 ({e.reason})") from None
        fed += len(chunk)
        return text

    for chunk in chunks:
        text = feed(chunk)
        if not text:
            continue
        if pos:
            base += pos_bytes
            buf, pos, pos_bytes = buf[pos:], 0, 0
        buf += text
        n = len(buf)
        while pos < n:
            if length is None:
                # reading a length prefix: digits up to '.'
                if not digits and not elements:
                    inst_start = base + pos_bytes
                dot = buf.find(".", pos)
                end = dot if dot >= 0 else n
                seg = buf[pos:end]
                if seg and not (seg.isascii() and seg.isdigit()):
                    bad = next(i for i, c in enumerate(seg) if not ("0" <= c <= "9"))
                    raise GuacError(base + pos_bytes + _utf8_len(seg[:bad]),
                                    f"expected a digit or '.' in an element length, got {seg[bad]!r}")
                digits += seg
                if len(digits) > MAX_LENGTH_DIGITS:
                    raise GuacError(base + pos_bytes + len(seg), f"element length longer than {MAX_LENGTH_DIGITS} digits")
                pos_bytes += len(seg)  # ASCII
                pos = end
                if dot < 0:
                    break
                if not digits:
                    raise GuacError(base + pos_bytes, "empty element length before '.'")
                length = int(digits)
                digits = ""
                pos += 1
                pos_bytes += 1
            else:
                # reading VALUE (length code points) and its terminator
                if n - pos < length + 1:
                    break
                value = buf[pos:pos + length]
                term = buf[pos + length]
                pos_bytes += _utf8_len(value)
                if term == ",":
                    elements.append(value)
                elif term == ";":
                    elements.append(value)
                    yield Instruction(elements[0], tuple(elements[1:]), inst_start)
                    elements = []
                else:
                    raise GuacError(base + pos_bytes, f"expected ',' or ';' after a {length}-character element, got {term!r}")
                pos += length + 1
                pos_bytes += 1
                length = None
    # end of input
    rest = decoder.getstate()[0]
    if rest:
        raise GuacError(fed - len(rest), "input ends inside a UTF-8 sequence")
    if elements or digits or length is not None:
        raise GuacError(inst_start, "input ends inside an instruction")


def _read_chunks(path: str | os.PathLike[str], size: int = _READ_SIZE) -> Iterator[bytes]:
    """The file in blocks of ``size`` bytes (a regular file only: InputError for a FIFO or
    device, see :func:`streamgrade.inputs.open_regular`)."""
    from ..inputs import open_regular

    with open_regular(path) as f:
        while block := f.read(size):
            yield block


# -- keysyms ---------------------------------------------------------------------------------

_KEYSYM_NAMES = {
    0xFF08: "Backspace", 0xFF09: "Tab", 0xFF0D: "Return", 0xFF13: "Pause", 0xFF14: "ScrollLock",
    0xFF1B: "Escape", 0xFFFF: "Delete", 0xFF50: "Home", 0xFF51: "LeftArrow", 0xFF52: "UpArrow",
    0xFF53: "RightArrow", 0xFF54: "DownArrow", 0xFF55: "PageUp", 0xFF56: "PageDown", 0xFF57: "End",
    0xFF61: "PrintScreen", 0xFF63: "Insert", 0xFF67: "Menu", 0xFF7F: "NumLock", 0xFF8D: "Return",
    0xFFE1: "ShiftLeft", 0xFFE2: "ShiftRight", 0xFFE3: "ControlLeft", 0xFFE4: "ControlRight",
    0xFFE5: "CapsLock", 0xFFE7: "MetaLeft", 0xFFE8: "MetaRight", 0xFFE9: "AltLeft", 0xFFEA: "AltRight",
    0xFFEB: "MetaLeft", 0xFFEC: "MetaRight",  # Super_L/R: the Windows/Command key
    0xFE03: "AltGr",  # ISO_Level3_Shift
    0x20: "Space",
}
_KEYSYM_NAMES.update({0xFFBE + i: f"F{i + 1}" for i in range(24)})
_KEYPAD_CHARS = {0xFFAA: "*", 0xFFAB: "+", 0xFFAD: "-", 0xFFAE: ".", 0xFFAF: "/"}


def keysym_char(keysym: int) -> str:
    """The printable character a keysym stands for, or "" (see module docstring)."""
    if 0x20 <= keysym <= 0x7E or 0xA0 <= keysym <= 0xFF:
        return chr(keysym)
    if 0x01000000 <= keysym <= 0x0110FFFF:
        cp = keysym - 0x01000000
        if 0xD800 <= cp <= 0xDFFF:
            return ""
        ch = chr(cp)
        return ch if ch.isprintable() else ""
    if 0xFFB0 <= keysym <= 0xFFB9:
        return str(keysym - 0xFFB0)
    return _KEYPAD_CHARS.get(keysym, "")


def keysym_name(keysym: int) -> str:
    """An rdev-style key name for an X11 keysym (``KeyA``, ``Digit1``, ``Return``,
    ``ShiftLeft``...), the character itself for other printable keysyms, else
    ``Keysym0x...``."""
    if keysym in _KEYSYM_NAMES:
        return _KEYSYM_NAMES[keysym]
    ch = keysym_char(keysym)
    if 0xFFB0 <= keysym <= 0xFFB9:
        return f"Num{ch}"
    if ch.isascii() and ch.isalpha():
        return f"Key{ch.upper()}"
    if ch.isascii() and ch.isdigit():
        return f"Digit{ch}"
    return ch or f"Keysym0x{keysym:04x}"


# -- instructions to events --------------------------------------------------------------------

_BUTTONS = ((1, "Left"), (2, "Middle"), (4, "Right"))
_WHEEL = ((8, 1), (16, -1))


def _int(s: str, offset: int, what: str) -> int:
    try:
        return int(s)
    except ValueError:
        raise GuacError(offset, f"{what} is not an integer: {s[:40]!r}") from None


@dataclass
class _State:
    t0: int | None = None
    now: int = 0
    mask: int = 0
    pos: tuple[int, int] | None = None


def instruction_events(instructions: Iterable[Instruction],
                       sizes: list[tuple[int, int, int]] | None = None) -> Iterator[RawEvent]:
    """Translate ``sync``/``mouse``/``key`` instructions to :class:`RawEvent` objects (see
    the module docstring); other instructions (drawing, ``img``, ``blob``...) are skipped.
    ``RawEvent.line`` holds the byte offset of the source instruction. Non-integer
    arguments of these three instructions raise :class:`GuacError`. ``sizes``, when given,
    gets ``(t_ms, width, height)`` for each ``size`` of layer 0 (the remote display, in px;
    protocol reference, "size": layer, width, height) whose integers parse."""
    st = _State()

    def at(args: tuple[str, ...], i: int, off: int) -> int:
        if len(args) > i and args[i] != "" and st.t0 is not None:
            return max(0, _int(args[i], off, "timestamp") - st.t0)
        return st.now

    for ins in instructions:
        op, args, off = ins
        if op == "size" and sizes is not None and len(args) >= 3 and args[0] == "0":
            if args[1].isdigit() and args[2].isdigit():
                sizes.append((st.now, int(args[1]), int(args[2])))
        elif op == "sync":
            if not args:
                raise GuacError(off, "sync without a timestamp")
            ts = _int(args[0], off, "sync timestamp")
            if st.t0 is None:
                st.t0 = ts
            st.now = max(st.now, ts - st.t0)
        elif op == "mouse":
            if len(args) < 3:
                raise GuacError(off, f"mouse needs x, y and mask, got {len(args)} arguments")
            x, y = _int(args[0], off, "mouse x"), _int(args[1], off, "mouse y")
            mask = _int(args[2], off, "mouse mask")
            t = at(args, 3, off)
            if (x, y) != st.pos:
                st.pos = (x, y)
                yield RawEvent(t, "mousemove", {"x": x, "y": y}, off)
            for bit, name in _BUTTONS:
                if mask & bit and not st.mask & bit:
                    yield RawEvent(t, "mousedown", {"button": name}, off)
                elif st.mask & bit and not mask & bit:
                    yield RawEvent(t, "mouseup", {"button": name}, off)
            for bit, delta in _WHEEL:
                if mask & bit and not st.mask & bit:
                    yield RawEvent(t, "mousewheel", {"delta": delta}, off)
            st.mask = mask
        elif op == "key":
            if len(args) < 2:
                raise GuacError(off, f"key needs keysym and pressed, got {len(args)} arguments")
            keysym = _int(args[0], off, "keysym")
            pressed = _int(args[1], off, "key pressed flag")
            t = at(args, 2, off)
            yield RawEvent(t, "keydown" if pressed else "keyup",
                           {"key": keysym_name(keysym), "actual_char": keysym_char(keysym)}, off)


def events_from_guac(path: str | os.PathLike[str],
                     sizes: list[tuple[int, int, int]] | None = None) -> list[RawEvent]:
    """Raw input events of a Guacamole recording file (streamed in 64 KiB blocks), in
    recording order (``sizes`` as in :func:`instruction_events`). Raises
    :class:`GuacError` for a malformed recording."""
    return list(instruction_events(parse_instructions(_read_chunks(path)), sizes))


def first_sync_ms(path: str | os.PathLike[str]) -> int | None:
    """The timestamp (ms) of the recording's first ``sync``: the time 0 of its actions and
    of its video. guacd takes it from ``guac_timestamp_current()``, which is
    ``clock_gettime(CLOCK_REALTIME)`` in ms, i.e. Unix epoch ms (apache/guacamole-server
    ``src/libguac/timestamp.c``; the header only promises differences in ms). None without
    a ``sync`` or with a non-integer one; reads only up to the first ``sync``."""
    for op, args, _ in parse_instructions(_read_chunks(path)):
        if op == "sync":
            try:
                return int(args[0]) if args else None
            except ValueError:
                return None
    return None


def actions_from_guac(path: str | os.PathLike[str], cfg: ExtractConfig | None = None,
                      sizes: list[tuple[int, int, int]] | None = None) -> list[Action]:
    """Actions of a Guacamole recording: :func:`events_from_guac` then
    :func:`~streamgrade.extract.actions.extract_actions`."""
    return extract_actions(events_from_guac(path, sizes), cfg or ExtractConfig())
