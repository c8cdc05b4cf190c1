"""Errors that name where bad input is: the file, and the line or field."""

from __future__ import annotations


class StreamgradeError(Exception):
    """Base of streamgrade's own errors."""


class ConfigError(StreamgradeError):
    """A configuration file, environment variable or CLI option is invalid (exit code 2)."""


class InputError(StreamgradeError):
    """A session's input is bad.

    ``path`` is the file, ``line`` the 1-based line (JSONL) and ``field`` the JSON path of
    the offending field, when known. ``str()`` gives "path:line: field: message", which is
    what a failed record's ``error`` holds.
    """

    def __init__(self, path: str, message: str, *, line: int | None = None, field: str | None = None):
        self.path = str(path)
        self.line = line
        self.field = field
        self.message = message
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class JudgeError(StreamgradeError):
    """The judge could not produce a verdict (retries exhausted, budget spent, bad answer).
    ``attempts`` counts the HTTP requests made for the failing call; ``usage`` (a
    :class:`streamgrade.models.Usage`, set by the judge) what the session spent before
    failing, so wasted spend shows in its failed record."""

    def __init__(self, message: str, *, attempts: int = 0):
        self.attempts = attempts
        self.usage = None
        super().__init__(message)


class BudgetExceeded(JudgeError):
    """The run budget (``openai.max_cost_usd``) is spent: the session was not sent and stays
    pending; the pipeline stops taking new sessions."""
