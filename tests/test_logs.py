"""Log lines on stderr: secrets redacted (any 8+ characters of the key), one line per record."""

from __future__ import annotations

import json
import logging

import pytest

from streamgrade.logs import setup_logging

KEY = "sk-proj-Q7f3ZpL9xR2mW8vN4bK6tY1hJ5cD0sAeGuIoPl"
log = logging.getLogger("streamgrade.test")


def key_parts(text: str) -> list[str]:
    return [KEY[i : i + 8] for i in range(len(KEY) - 7) if KEY[i : i + 8] in text]


@pytest.fixture
def logs(capsys):
    """``logs(fmt)`` sets up streamgrade's logging in ``fmt`` with KEY as the secret and
    returns a function giving what was written to stderr since; the logger's handlers,
    level and propagation are restored afterwards (other tests use caplog)."""
    root = logging.getLogger("streamgrade")
    saved = root.handlers[:], root.level, root.propagate

    def start(fmt: str = "text"):
        setup_logging(fmt, "DEBUG", secrets=[KEY])
        capsys.readouterr()
        return lambda: capsys.readouterr().err

    yield start
    root.handlers[:], root.level, root.propagate = saved


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_part_of_the_key_is_redacted(logs, fmt):
    read = logs(fmt)
    log.warning("server said: bad key %s", KEY[2:25])
    log.warning("cut: ...%s", KEY[-9:])
    log.warning("whole: %s!", KEY)
    out = read()
    assert len(out.splitlines()) == 3
    assert key_parts(out) == []
    assert out.count("[redacted]") == 3


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_key_in_a_traceback_or_context_is_redacted(logs, fmt):
    read = logs(fmt)
    try:
        raise ValueError(f"Illegal header value b'Bearer {KEY}\\n'")
    except ValueError:
        log.exception("internal error", extra={"session": f"s-{KEY[:10]}", "file": f"/x/{KEY[8:20]}"})
    out = read()
    assert "Traceback" in out and "ValueError" in out
    assert key_parts(out) == []


def test_short_secret_is_replaced_only_whole(logs, capsys):
    root = logging.getLogger("streamgrade")
    setup_logging("text", "DEBUG", secrets=["EMPTY"])
    capsys.readouterr()
    log.warning("key EMPTY; EMPTINESS and EMPT stay")
    out = capsys.readouterr().err
    assert "key [redacted];" in out and "EMPTINESS" in out and "EMPT stay" in out
    assert root.handlers
