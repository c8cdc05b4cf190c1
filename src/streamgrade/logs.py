"""Logging to stderr through the standard logging module, as text or JSON lines.

Every line names the session and file when it concerns one (``extra={"session": ...,
"file": ...}``). JSON lines come from python-json-logger: one object a line with time,
level, logger, message, session, file. Secrets registered with :func:`setup_logging` are
replaced by ``[redacted]`` in every line (message, traceback, session and file), as a last
line of defence; any 8 or more characters of a secret count as the secret
(:mod:`streamgrade.redact`).
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


class _TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ctx = [f"{k}={getattr(record, k)}" for k in ("session", "file") if getattr(record, k, None)]
        return f"{line} [{' '.join(ctx)}]" if ctx else line


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
