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


# A folder or session name that tries to forge log lines or drive the terminal.
HOSTILE = "evil\n2026-01-01T00:00:00 INFO    graded everything\r\x1b[2K\x1b[31mred\x07\x00\x7f\x85\u2028\u2029\x0b\x0c\x1c\t\u202eend"
LINE_BREAKS = "\n\r\x0b\x0c\x1c\x1d\x1e\x85\u2028\u2029"


def test_text_log_line_with_hostile_names_is_one_line(logs):
    read = logs("text")
    log.warning("failed %s: %s", HOSTILE, "bad\nthing", extra={"session": HOSTILE, "file": f"/data/{HOSTILE}/x.json"})
    out = read()
    assert out.endswith("\n") and len(out.splitlines()) == 1, out
    body = out[:-1]
    assert not any(c in body for c in LINE_BREAKS)
    assert not any(ord(c) < 0x20 or 0x7f <= ord(c) <= 0x9f for c in body)  # no C0, DEL or C1 left
    assert "\u202e" not in body  # nor a bidi override that reorders what follows
    assert "evil\\n2026-01-01T00:00:00 INFO" in body and "\\x1b[31mred" in body and "\\r" in body
    assert "\\u2028" in body and "\\t" in body and "\\u202e" in body
    assert body.count("session=evil\\n") == 1 and "file=/data/evil\\n" in body


def test_text_traceback_cannot_pass_for_log_lines(logs):
    read = logs("text")
    try:
        raise RuntimeError(f"boom\n2026-01-01T00:00:00 WARNING forged line\r\x1b[2K{HOSTILE}")
    except RuntimeError:
        log.exception("internal error grading %s", HOSTILE, extra={"session": HOSTILE})
    first, *rest = read().splitlines()
    assert first.startswith("20") and "internal error grading evil\\n" in first
    assert rest and "Traceback (most recent call last):" in rest[0]
    assert all(line.startswith(" ") for line in rest), rest  # indented: never a new log line
    assert any("RuntimeError: boom" in line for line in rest)  # still readable
    assert not any(c in line for line in rest for c in "\r\x1b\x00\x85\u2028")


def test_json_log_line_with_hostile_names_is_one_line(logs):
    read = logs("json")
    log.warning("failed %s", HOSTILE, extra={"session": HOSTILE, "file": HOSTILE})
    out = read()
    assert out.endswith("\n") and len(out.splitlines()) == 1
    assert out.isascii()  # every control and non-ASCII character is escaped
    rec = json.loads(out)
    assert rec["session"] == HOSTILE and rec["message"] == f"failed {HOSTILE}"
