"""The command line as a user runs it: subprocesses, exit codes, the mock provider, SIGTERM."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "clones"
sys.path.insert(0, str(ROOT / "scripts"))
from mock_provider import serve_in_thread  # noqa: E402

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamgrade", *args], capture_output=True, text=True,
                          env={**CLEAN_ENV, **(env or {})}, timeout=timeout)


def lines(out: Path) -> list[dict]:
    return [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("cmd", [[], ["grade"], ["watch"]])
def test_help(cmd):
    res = run(*cmd, "--help")
    assert res.returncode == 0
    assert "Usage: " in res.stdout and "--help" in res.stdout


def test_grade_bundled_then_rerun_adds_nothing(tmp_path: Path):
    out = tmp_path / "out"
    res = run("grade", str(EXAMPLES), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "judge: heuristic" in res.stderr and "2 graded, 0 failed, 1 ungradable" in res.stderr
    assert len(lines(out)) == 3
    res = run("grade", str(EXAMPLES), "-o", str(out))
    assert res.returncode == 0 and "3 unchanged" in res.stderr
    assert len(lines(out)) == 3


def test_failed_session_exit_1_with_summary(tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(EXAMPLES, data)
    (data / "20251007_131852" / "input_log.jsonl").write_bytes(b"")
    res = run("grade", str(data), "-o", str(tmp_path / "out"), "--log-format", "json")
    assert res.returncode == 1
    assert "1 failed" in res.stderr
    assert "20251007_131852: " in res.stderr and "input_log.jsonl: file is empty" in res.stderr
    logged = [json.loads(x) for x in res.stderr.splitlines() if x.startswith("{")]
    failed = [x for x in logged if x.get("session") == "20251007_131852"]
    assert failed and failed[0]["level"] == "WARNING" and failed[0]["file"].endswith("20251007_131852")


@pytest.mark.parametrize("args,env,needle", [
    (["grade", "/nonexistent/path"], {}, "no such file or folder"),
    (["grade", str(EXAMPLES), "--judge", "openai"], {}, "needs STREAMGRADE_API_KEY"),
    (["grade", str(EXAMPLES)], {"STREAMGRADE_OPENAI__RPM": "lots"}, "configuration error"),
    (["grade", str(EXAMPLES), "--config", "/nonexistent.toml"], {}, "config file not found"),
    (["grade", str(EXAMPLES), "--judge", "magic"], {}, "Invalid value"),
])
def test_usage_and_config_errors_exit_2(tmp_path: Path, args, env, needle):
    res = run(*args, "-o", str(tmp_path / "out"), env=env)
    assert res.returncode == 2, res.stderr
    assert needle in res.stderr


def test_openai_judge_against_mock(tmp_path: Path):
    out = tmp_path / "out"
    with serve_in_thread() as url:
        res = run("grade", str(EXAMPLES), "-o", str(out), env={"STREAMGRADE_BASE_URL": url})
        assert res.returncode == 0, res.stderr
        assert url.chat_requests >= 3
    assert "judge: openai" in res.stderr
    recs = lines(out)
    assert len(recs) == 3
    for r in recs:
        assert r["judge"]["kind"] == "openai" and r["usage"]["prompt_tokens"] > 0


def test_watch_picks_up_session_and_stops_on_sigterm(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamgrade", "watch", str(data), "-o", str(out), "--settle", "0.5"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=CLEAN_ENV)
    try:
        scores = out / "exports" / "scores.jsonl"
        deadline = time.monotonic() + 15
        while not scores.exists() and time.monotonic() < deadline:
            time.sleep(0.05)  # the daemon is up once it has opened its exports
        time.sleep(0.3)
        shutil.copytree(EXAMPLES / "20251007_131852", data / "dropped")
        written = time.monotonic()
        while time.monotonic() < written + 10 and not scores.read_text():
            time.sleep(0.05)
        latency = time.monotonic() - written
        assert scores.read_text(), "the dropped session was not graded"
        assert latency <= 0.5 + 1.0 + 0.5  # settle + 1 s (+ polling slack of this test)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "graded dropped" in err and "SIGTERM" in err
    assert [r["session_id"] for r in lines(out)] == ["dropped"]


KEY_CORE = "sk-Zq8Wx3Vt9Lm2Np5R"


@pytest.mark.parametrize("var", ["STREAMGRADE_API_KEY", "OPENAI_API_KEY"])
@pytest.mark.parametrize("key,problem", [
    (KEY_CORE + "\n", "ends with a line break"),
    (f"  {KEY_CORE} ", "whitespace"),
    (KEY_CORE[:9] + "\x07" + KEY_CORE[9:], "control character"),
    (KEY_CORE[:9] + "é" + KEY_CORE[9:], "non-ASCII"),
], ids=["newline", "spaces", "control", "non-ascii"])
def test_bad_api_key_is_one_config_error(tmp_path: Path, var, key, problem):
    """A key httpx cannot send: one configuration error at start (exit 2) naming the
    variable and what is wrong, and no part of the key anywhere."""
    res = run("grade", str(EXAMPLES), "-o", str(tmp_path / "out"), "--judge", "openai",
              env={"STREAMGRADE_BASE_URL": "http://127.0.0.1:9/v1", var: key}, timeout=30)
    assert res.returncode == 2, res.stderr
    lines_ = res.stderr.strip().splitlines()
    assert len(lines_) == 1, res.stderr
    assert lines_[0].startswith("streamgrade: configuration error:") and var in lines_[0] and problem in lines_[0]
    out = res.stdout + res.stderr
    assert not [KEY_CORE[i : i + 4] for i in range(len(KEY_CORE) - 3) if KEY_CORE[i : i + 4] in out]
    assert not (tmp_path / "out" / "exports" / "scores.jsonl").exists()  # nothing was graded


def test_anthropic_judge_against_mock(tmp_path: Path):
    out = tmp_path / "out"
    with serve_in_thread() as url:
        env = {"ANTHROPIC_API_KEY": "sk-ant-mock-key-123", "STREAMGRADE_ANTHROPIC__BASE_URL": url.removesuffix("/v1"),
               "STREAMGRADE_ANTHROPIC__HTTP_CLIENT": "httpx"}
        res = run("grade", str(EXAMPLES), "-o", str(out), "--judge", "anthropic", "--no-progress", env=env)
        assert res.returncode == 0, res.stderr
        assert url.chat_requests >= 2
    assert "judge: anthropic" in res.stderr and "sk-ant-mock-key-123" not in res.stderr
    recs = lines(out)
    graded = [r for r in recs if r.get("score") is not None]
    assert graded and all(r["judge"]["kind"] == "anthropic" and r["usage"]["prompt_tokens"] > 0 for r in graded)
    # the mock reports the shared system prompt as a cache read after its first sight
    assert sum(r["usage"]["cached_tokens"] for r in graded) > 0


def test_anthropic_judge_without_key_exits_2(tmp_path: Path):
    res = run("grade", str(EXAMPLES), "-o", str(tmp_path / "out"), "--judge", "anthropic")
    assert res.returncode == 2 and "ANTHROPIC_API_KEY" in res.stderr
