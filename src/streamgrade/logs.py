"""Logging to stderr through the standard logging module, as text or JSON lines.

Every line names the session and file when it concerns one (``extra={"session": ...,
"file": ...}``). JSON lines come from python-json-logger: one object a line with time,
level, logger, message, session, file. Secrets registered with :func:`setup_logging` are
replaced by ``[redacted]`` in every line, as a last line of defence.
"""

from __future__ import annotations

import logging
import sys

from pythonjsonlogger.json import JsonFormatter


class _LazyStderr:
    """Writes to whatever sys.stderr is at the time, so rich's progress display (which
    swaps sys.stderr) keeps log lines above the bar."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


class _Context(logging.Filter):
    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = [s for s in secrets if s]

    def filter(self, record: logging.LogRecord) -> bool:
        for name in ("session", "file"):
            if not hasattr(record, name):
                setattr(record, name, None)
        if self.secrets:
            msg = record.getMessage()
            if any(s in msg for s in self.secrets):
                for s in self.secrets:
                    msg = msg.replace(s, "[redacted]")
                record.msg, record.args = msg, None
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
