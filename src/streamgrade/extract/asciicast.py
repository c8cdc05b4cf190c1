"""Terminal recordings: asciicast files (asciinema) read into timed events, and terminal
output rendered to plain text.

Reading (:func:`read_cast`), after the asciicast specifications (docs.asciinema.org,
``manual/asciicast/v1``, ``v2`` and ``v3``):

* v1 (asciinema 1.x): one JSON object ``{version: 1, width, height, duration?, command?,
  title?, env?, stdout: [[delay, data], ...]}``; ``delay`` is the seconds since the previous
  frame, every frame is output.
* v2 (asciinema 2.x; what Terminal-Bench's ``asciinema rec --stdin`` writes): newline-
  delimited JSON, a header ``{version: 2, width, height, timestamp?, duration?, env?, ...}``
  then one ``[time, code, data]`` event per line, ``time`` in seconds since the start.
* v3 (asciinema 3.x): the same with a header ``{version: 3, term: {cols, rows, type?},
  timestamp?, ...}``, ``time`` the interval since the previous event, and ``#`` comment
  lines.

Event codes: ``o`` output, ``i`` input (keystrokes; recorded with ``--stdin``), ``m`` marker
(a label; Terminal-Bench's Terminus agents put their episode markers there), ``r`` resize
(``COLSxROWS``), ``x`` exit status (v3). Times become seconds since the start for every
version. A last line that is cut short (no newline at its end and not valid JSON: the
recorder was stopped mid-write) is dropped and flagged (:attr:`Cast.truncated`); any other
bad line is an :class:`~streamgrade.errors.InputError` naming the file and line.

Rendering (:class:`TermText`, :func:`render`): the escape sequences are parsed by pyte's
``Stream`` (selectel/pyte, the VT100/xterm control-sequence parser of a maintained terminal
emulator), whose events drive a small transcript model instead of a fixed-size screen:
lines are never lost off the top of a 40-row screen, so the text is the whole output as it
was shown. Carriage returns, backspaces, cursor moves within the visible rows, line and
display erases (a spinner redrawn in place, ``\\r\\x1b[2K``, progress bars) are resolved;
colours, titles and modes are dropped; a cleared screen and the alternate screen (full-
screen programs) start a new page below what was shown before, so earlier output stays in
the text. The text is bounded: lines past ``max_line_chars`` are cut, and past
``head_lines + tail_lines`` lines the middle is replaced by one ``[... N lines omitted ...]``
line; :func:`bounded` bounds a text by characters in the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

import msgspec
import pyte

from ..errors import InputError
from ..inputs import read_regular

#: Event codes of asciicast v2/v3.
OUTPUT, INPUT, MARKER, RESIZE, EXIT = "o", "i", "m", "r", "x"


@dataclass
class CastEvent:
    """One event: ``t`` seconds since the recording started, ``code`` (o, i, m, r, x or a
    code of a later version, kept as given) and ``data`` (text)."""

    t: float
    code: str
    data: str


@dataclass
class Cast:
    """A parsed recording: ``version`` (1, 2 or 3), terminal ``width`` x ``height``
    (columns, rows), ``timestamp`` (Unix seconds of the start, when the header has it),
    the ``header`` object as given (v1: the document less ``stdout``), the ``events`` in file
    order, and ``truncated`` when a cut-off last line was dropped."""

    version: int
    width: int
    height: int
    timestamp: float | None
    header: dict[str, Any]
    events: list[CastEvent] = field(default_factory=list)
    truncated: bool = False


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _size(path: str, header: dict, version: int) -> tuple[int, int]:
    if version == 3:
        term = header.get("term")
        if not isinstance(term, dict):
            raise InputError(path, "missing or not an object", line=1, field="term")
        w, h, where = term.get("cols"), term.get("rows"), "term."
        names = ("cols", "rows")
    else:
        w, h, where = header.get("width"), header.get("height"), ""
        names = ("width", "height")
    for value, name in ((w, names[0]), (h, names[1])):
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise InputError(path, "expected a positive integer", line=1, field=f"{where}{name}")
    return w, h


def read_cast(path: str | Path, max_bytes: int | None = None) -> Cast:
    """The recording in ``path`` (asciicast v1, v2 or v3; see the module docstring), read
    whole (at most ``max_bytes``, default ``[limits] max_session_bytes``). Raises InputError
    naming the file and line of anything malformed: not UTF-8, a header that is not a JSON
    object of a known version, an event that is not ``[time, code, data]`` with a finite
    number, a string and a string."""
    path = str(path)
    raw = read_regular(path, max_bytes)
    if not raw.strip():
        raise InputError(path, "file is empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(path, f"invalid UTF-8 byte 0x{raw[exc.start]:02x} at byte offset {exc.start}",
                         line=raw.count(b"\n", 0, exc.start) + 1) from None
    lines = text.split("\n")
    first = next((i for i, ln in enumerate(lines) if ln.strip()), None)
    if first is None:
        raise InputError(path, "file is empty")
    decoder = msgspec.json.Decoder()
    try:
        header = decoder.decode(lines[first])
    except msgspec.DecodeError:
        header = None
    if header is None:  # v1 is one (usually pretty-printed) JSON document
        try:
            header = decoder.decode(text)
        except msgspec.DecodeError as exc:
            raise InputError(path, f"not an asciicast: the first line is not a JSON header ({exc})", line=first + 1) from None
        except RecursionError:
            raise InputError(path, "not an asciicast: JSON nested too deeply", line=first + 1) from None
    if not isinstance(header, dict):
        raise InputError(path, f"not an asciicast: expected a JSON object header, got {type(header).__name__}", line=first + 1)
    version = header.get("version")
    if version not in (1, 2, 3) or isinstance(version, bool):
        raise InputError(path, f"unsupported asciicast version {version!r} (expected 1, 2 or 3)", line=first + 1, field="version")
    width, height = _size(path, header, version)
    ts = _number(header.get("timestamp"))
    if version == 1:
        return _v1(path, header, width, height, ts)
    cast = Cast(version=version, width=width, height=height, timestamp=ts, header=header)
    clock = 0.0
    last = len(lines) - 1
    for n in range(first + 1, len(lines)):
        line = lines[n]
        if not line.strip() or (version == 3 and line.lstrip().startswith("#")):
            continue
        try:
            ev = decoder.decode(line)
        except (msgspec.DecodeError, RecursionError) as exc:
            if n == last:  # no newline after it: the recorder stopped mid-line
                cast.truncated = True
                break
            raise InputError(path, f"invalid JSON event: {exc}", line=n + 1) from None
        if not isinstance(ev, list) or len(ev) < 3:
            raise InputError(path, "expected an event [time, code, data]", line=n + 1)
        t, code, data = _number(ev[0]), ev[1], ev[2]
        if t is None:
            raise InputError(path, f"expected a finite number of seconds, got {ev[0]!r}"[:200], line=n + 1)
        if not isinstance(code, str) or not isinstance(data, str):
            raise InputError(path, "expected an event [time, code, data] with a string code and string data", line=n + 1)
        clock = clock + t if version == 3 else t
        cast.events.append(CastEvent(clock, code, data))
    return cast


def _v1(path: str, doc: dict, width: int, height: int, ts: float | None) -> Cast:
    frames = doc.get("stdout")
    if not isinstance(frames, list):
        raise InputError(path, "expected a list of [delay, data] frames", field="stdout")
    cast = Cast(version=1, width=width, height=height, timestamp=ts,
                header={k: v for k, v in doc.items() if k != "stdout"})
    clock = 0.0
    for i, fr in enumerate(frames):
        if not isinstance(fr, list) or len(fr) < 2 or _number(fr[0]) is None or not isinstance(fr[1], str):
            raise InputError(path, "expected a frame [delay, data] with a finite number and a string", field=f"stdout[{i}]")
        clock += _number(fr[0]) or 0.0
        cast.events.append(CastEvent(clock, OUTPUT, fr[1]))
    return cast


# --------------------------------------------------------------------------- rendering

_ALT_SCREEN = {47, 1047, 1049}


class TermText:
    """A pyte ``Stream`` listener that keeps terminal output as transcript lines (see the
    module docstring). ``rows`` is the terminal height (cursor moves and absolute positions
    reach only the last ``rows`` lines of the current page); ``head_lines``/``tail_lines``
    and ``max_line_chars`` bound the memory and the text. Feed text with :meth:`feed`, read
    it with :meth:`text`."""

    def __init__(self, rows: int = 40, *, head_lines: int = 400, tail_lines: int = 1600,
                 max_line_chars: int = 4000):
        self.rows = max(1, rows)
        self.head_lines, self.tail_lines = head_lines, tail_lines
        self.max_line_chars = max_line_chars
        self.lines: list[str] = [""]
        self.row = self.col = 0
        self.page = 0  # first line of the current page (after a clear or a switch of screens)
        self.omitted = 0
        self._saved = (1, 0)
        self._stream = pyte.Stream(self, strict=False)

    # -- public
    def feed(self, data: str) -> None:
        """Render ``data`` (terminal output, escape sequences included)."""
        self._stream.feed(data)

    def text(self) -> str:
        """The output so far as plain text: trailing spaces and blank trailing lines
        removed, the omission marker where middle lines were dropped."""
        out = [ln.rstrip() for ln in self.lines]
        if self.omitted:
            out.insert(self.head_lines, f"[... {self.omitted:,} lines omitted ...]")
        while out and not out[-1]:
            out.pop()
        return "\n".join(out)

    # -- cursor helpers
    def _top(self) -> int:
        return max(self.page, len(self.lines) - self.rows)

    def _goto(self, row: int) -> None:
        if row >= len(self.lines):
            self.lines.extend([""] * (row + 1 - len(self.lines)))
            self._bound()
            row = min(row, len(self.lines) - 1)
        self.row = max(0, row)

    def _bound(self) -> None:
        keep = self.head_lines + self.tail_lines + self.rows
        if len(self.lines) <= keep:
            return
        head = self.head_lines
        cut = len(self.lines) - self.tail_lines - self.rows - head
        del self.lines[head:head + cut]
        self.omitted += cut
        shift = lambda i: i - cut if i >= head + cut else min(i, head)  # noqa: E731
        self.row, self.page = shift(self.row), shift(self.page)

    def _new_page(self) -> None:
        if any(self.lines[self._top():]):
            while len(self.lines) > 1 and not self.lines[-1]:
                self.lines.pop()
            self.lines.append("")
            self._bound()
        self.page = len(self.lines) - 1
        self.row, self.col = self.page, 0

    # -- drawing
    def draw(self, data: str) -> None:
        line, c = self.lines[self.row], self.col
        if c >= self.max_line_chars:
            self.col = c + len(data)
            return
        data = data[: self.max_line_chars - c]
        if c > len(line):
            line += " " * (c - len(line))
        self.lines[self.row] = line[:c] + data + line[c + len(data):]
        self.col = c + len(data)

    def carriage_return(self) -> None:
        self.col = 0

    def linefeed(self) -> None:
        self._goto(self.row + 1)
        self.col = 0

    index = linefeed

    def reverse_index(self) -> None:
        self.row = max(self._top(), self.row - 1)

    def backspace(self) -> None:
        self.col = max(0, self.col - 1)

    def tab(self) -> None:
        self.col = (self.col // 8 + 1) * 8

    def cursor_up(self, count: int | None = None, *_: Any, **__: Any) -> None:
        self.row = max(min(self._top(), self.row), self.row - max(1, count or 1))

    def cursor_up1(self, count: int | None = None, *_: Any, **__: Any) -> None:
        self.cursor_up(count)
        self.col = 0

    def cursor_down(self, count: int | None = None, *_: Any, **__: Any) -> None:
        # never past the screen's last row (a terminal does not scroll for it)
        self._goto(min(self.row + max(1, count or 1), max(self.row, self._top() + self.rows - 1)))

    def cursor_down1(self, count: int | None = None, *_: Any, **__: Any) -> None:
        self.cursor_down(count)
        self.col = 0

    def cursor_forward(self, count: int | None = None, *_: Any, **__: Any) -> None:
        self.col += max(1, count or 1)

    def cursor_back(self, count: int | None = None, *_: Any, **__: Any) -> None:
        self.col = max(0, self.col - max(1, count or 1))

    def cursor_to_column(self, column: int | None = None, *_: Any, **__: Any) -> None:
        self.col = max(0, (column or 1) - 1)

    def cursor_to_line(self, line: int | None = None, *_: Any, **__: Any) -> None:
        self._goto(self._top() + min(self.rows, max(1, line or 1)) - 1)

    def cursor_position(self, line: int | None = None, column: int | None = None, *_: Any, **__: Any) -> None:
        self.cursor_to_line(line)
        self.col = max(0, (column or 1) - 1)

    def save_cursor(self, *_: Any, **__: Any) -> None:
        self._saved = (len(self.lines) - self.row, self.col)

    def restore_cursor(self, *_: Any, **__: Any) -> None:
        back, col = self._saved
        self.row = min(len(self.lines) - 1, max(self._top(), len(self.lines) - back))
        self.col = col

    # -- erasing and editing
    def erase_in_line(self, how: int = 0, *_: Any, **__: Any) -> None:
        line, c = self.lines[self.row], self.col
        if how == 0:
            self.lines[self.row] = line[:c]
        elif how == 1:
            self.lines[self.row] = " " * min(c + 1, len(line)) + line[c + 1:]
        elif how == 2:
            self.lines[self.row] = ""

    def erase_in_display(self, how: int = 0, *_: Any, **__: Any) -> None:
        top = self._top()
        if how == 2 or (how == 0 and self.row == top and self.col == 0):
            self._new_page()  # a cleared screen: what was shown stays above
        elif how == 0:
            self.lines[self.row] = self.lines[self.row][: self.col]
            del self.lines[self.row + 1:]
        elif how == 1:
            for r in range(top, self.row):
                self.lines[r] = ""
            self.erase_in_line(1)
        # 3 (erase the scrollback) keeps the transcript

    def delete_characters(self, count: int | None = None, *_: Any, **__: Any) -> None:
        line, c = self.lines[self.row], self.col
        self.lines[self.row] = line[:c] + line[c + max(1, count or 1):]

    def insert_characters(self, count: int | None = None, *_: Any, **__: Any) -> None:
        line, c = self.lines[self.row], self.col
        if c < len(line):
            self.lines[self.row] = (line[:c] + " " * max(1, count or 1) + line[c:])[: self.max_line_chars]

    def erase_characters(self, count: int | None = None, *_: Any, **__: Any) -> None:
        line, c = self.lines[self.row], self.col
        n = max(1, count or 1)
        if c < len(line):
            self.lines[self.row] = line[:c] + " " * min(n, len(line) - c) + line[c + n:]

    def insert_lines(self, count: int | None = None, *_: Any, **__: Any) -> None:
        n = min(max(1, count or 1), self.rows)
        self.lines[self.row:self.row] = [""] * n
        self._bound()

    def delete_lines(self, count: int | None = None, *_: Any, **__: Any) -> None:
        n = max(1, count or 1)
        del self.lines[self.row + 1:self.row + n]
        self.lines[self.row] = ""

    def set_mode(self, *modes: int, private: bool = False, **__: Any) -> None:
        if private and _ALT_SCREEN.intersection(modes):
            self._new_page()

    def reset_mode(self, *modes: int, private: bool = False, **__: Any) -> None:
        if private and _ALT_SCREEN.intersection(modes):
            self._new_page()

    def __getattr__(self, name: str):  # every other event (colours, titles, bells, reports)
        if name.startswith("_"):
            raise AttributeError(name)
        return _ignore


def _ignore(*_: Any, **__: Any) -> None:
    return None


def render(data: str | Iterable[str], rows: int = 40, **limits: int) -> str:
    """Terminal output (one string or pieces in order) as plain text; see
    :class:`TermText` for ``rows`` and the ``limits`` (head_lines, tail_lines,
    max_line_chars)."""
    term = TermText(rows, **limits)
    for piece in [data] if isinstance(data, str) else data:
        term.feed(piece)
    return term.text()


def bounded(text: str, max_chars: int) -> str:
    """``text`` if it has at most ``max_chars`` characters, else its head and tail (half
    each, cut at line ends where one is near) around a ``[... N characters omitted ...]``
    line."""
    if len(text) <= max_chars:
        return text
    half = max(1, max_chars // 2)
    head, tail = text[:half], text[-half:]
    nl = head.rfind("\n")
    if nl > half // 2:
        head = head[:nl]
    nl = tail.find("\n")
    if 0 <= nl < half // 2:
        tail = tail[nl + 1:]
    return f"{head}\n[... {len(text) - len(head) - len(tail):,} characters omitted ...]\n{tail}"


__all__ = ["Cast", "CastEvent", "read_cast", "TermText", "render", "bounded", "OUTPUT", "INPUT", "MARKER",
           "RESIZE", "EXIT"]
