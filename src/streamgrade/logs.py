"""Logging to stderr through the standard logging module, as text or JSON lines.

Every line names the session and file when it concerns one (``extra={"session": ...,
"file": ...}``). JSON lines come from python-json-logger: one object a line with time,
level, logger, message, session, file. Secrets registered with :func:`setup_logging` are
replaced by ``[redacted]`` in every line (message, traceback, session and file), as a last
line of defence; any 8 or more characters of a secret count as the secret
(:mod:`streamgrade.redact`). A record is one line whatever the names in it hold: text
lines escape control characters (a traceback follows on indented lines), JSON lines are
JSON-escaped (ASCII only).
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter

from .redact import Redactor


class _LazyStderr:
    """Writes to whatever sys.stderr is at the time, so rich's progress display (which
    swaps sys.stderr) keeps log lines above the bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _Context(logging.Filter):
    """Gives every record ``session`` and ``file`` (None when not given) and redacts the
    secrets from its message, traceback, stack and context. The traceback is formatted
    here (as :class:`logging.Formatter` would) so that it is redacted once for any
    formatter."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.redact = Redactor(secrets)

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("session", "file"):
            value = getattr(record, name, None)
            if isinstance(value, str) and self.redact:
                value = self.redact(value)
            setattr(record, name, value)
        if self.redact:
            try:
                msg = record.getMessage()
            except Exception:  # bad arguments: the handler reports it when formatting
                return True
            redacted = self.redact(msg)
            if redacted != msg:
                record.msg, record.args = redacted, None
            if record.exc_info and not record.exc_text:
                record.exc_text = logging.Formatter().formatException(record.exc_info)
            if record.exc_text:
                record.exc_info = None  # the formatters use exc_text, redacted here
                record.exc_text = self.redact(record.exc_text)
            if record.stack_info:
                record.stack_info = self.redact(record.stack_info)
        return True


def _escape_table() -> dict[int, str]:
    """Characters that could forge a line or drive the terminal, and their escapes: C0
    controls (``\\n``, ``\\r``, ``\\t``, others ``\\xNN``), DEL and C1 (``\\xNN``), the Unicode
    line and paragraph separators and the bidirectional controls (``\\uNNNN``)."""
    codes = [*range(0x20), *range(0x7F, 0xA0), 0x061C, 0x200E, 0x200F, *range(0x2028, 0x202F),
             *range(0x2066, 0x206A)]
    table = {c: (f"\\x{c:02x}" if c < 0x100 else f"\\u{c:04x}") for c in codes}
    table.update({ord("\n"): "\\n", ord("\r"): "\\r", ord("\t"): "\\t"})
    return table


_ESCAPES = _escape_table()
_BLOCK_ESCAPES = {c: e for c, e in _ESCAPES.items() if c != ord("\n")}
#: Prefix of each line of a traceback or stack under a text log line: a log line starts
#: with its time, so an indented line cannot pass for one.
TRACE_INDENT = "  | "


def escape_controls(text: str) -> str:
    """``text`` on one line: control characters, line separators and bidi controls
    escaped (see :func:`_escape_table`); backslashes are left as they are."""
    return text.translate(_ESCAPES)


class _TextFormatter(logging.Formatter):
    """``time LEVEL message [session=... file=...]`` on one line: the message and context
    have their control characters escaped, so a hostile folder or session name cannot
    forge log lines or drive the terminal. A traceback or stack follows on lines of its
    own, escaped but for its line breaks and indented with :data:`TRACE_INDENT`."""

    def format(self, record: logging.LogRecord) -> str:
        record.message = escape_controls(record.getMessage())
        if self.usesTime():
            record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        ctx = [f"{k}={escape_controls(str(v))}" for k in ("session", "file") if (v := getattr(record, k, None))]
        if ctx:
            line += f" [{' '.join(ctx)}]"
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        for block in (record.exc_text, self.formatStack(record.stack_info) if record.stack_info else None):
            if block:
                line += "".join(f"\n{TRACE_INDENT}{x}" for x in block.translate(_BLOCK_ESCAPES).split("\n"))
        return line


def setup_logging(fmt: str = "text", level: str | int = "INFO", secrets: list[str] | None = None) -> None:
    """Send the ``streamgrade`` loggers to stderr in ``fmt`` (text or json) at ``level``."""
    handler = logging.StreamHandler(_LazyStderr())
    if fmt == "json":
        handler.setFormatter(JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(session)s %(file)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
        ))
    else:
        handler.setFormatter(_TextFormatter("%(asctime)s %(levelname)-7s %(message)s", "%Y-%m-%dT%H:%M:%S"))
    handler.addFilter(_Context(secrets or []))
    root = logging.getLogger("streamgrade")
    root.handlers[:] = [handler]
    root.setLevel(level if isinstance(level, int) else level.upper())
    root.propagate = False
