"""Provider faults survived, SIGTERM drains, and the API key never leaks: real runs against
the mock provider (its own thread, 127.0.0.1), with every fault kind injected."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.logs import setup_logging
from streamgrade.pipeline import Pipeline, scan_source

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
from mock_provider import serve_in_thread  # noqa: E402
from synth import make_sessions  # noqa: E402

KEY = "sk-test-RECOGNISABLE-7f3a9c"
FAULTS = {"fault_500": 0.1, "fault_503": 0.1, "fault_stall": 0.1, "fault_truncate": 0.1,
          "fault_invalid_json": 0.1, "fault_schema": 0.1}


def _lines(out: Path) -> list[dict]:
    raw = (out / "exports" / "scores.jsonl").read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(x) for x in raw.splitlines()]


@pytest.mark.asyncio
async def test_every_fault_kind_survived_and_the_key_never_leaks(tmp_path: Path, capsys):
    data, out = tmp_path / "data", tmp_path / "out"
    make_sessions(data, 60, per_file=30, seed=3)
    setup_logging("json", "INFO", secrets=[])  # no redaction in the handler: the judge itself must not leak
    with serve_in_thread(stall_s=2.0, seed=5, **FAULTS) as url:
        cfg = load_config(env={}, overrides={"openai": {
            "base_url": url, "timeout_s": 0.5, "max_retries": 4, "backoff_base_s": 0.01, "backoff_max_s": 0.05,
            "rpm": 600_000, "max_concurrency": 16}, "pipeline": {"grade_workers": 16}})
        judge = OpenAIJudge(cfg, api_key=KEY)
        stats = await Pipeline(cfg, out, judge).run(scan_source([data], exclude=[out]))
        await judge.aclose()
        mock = url.stats()
    logged = capsys.readouterr().err
    recs = _lines(out)
    assert len(recs) == 60 and stats.graded + stats.failed == 60  # every session graded or failed
    for r in recs:
        assert r["status"] == "graded" or ("judge:" in r["error"] and "attempts" in r["error"])
    faults = mock["faults"]
    assert all(faults.get(k.removeprefix("fault_"), 0) > 0 for k in FAULTS), faults  # each fault happened
    # retries are bounded: never more than max_retries + 1 attempts per request
    assert mock["chat_requests"] <= 60 * 5
    graded = [r for r in recs if r["status"] == "graded"]
    assert len(graded) >= 50  # at 60% faults, 5 attempts give each request ~92% odds
    per_graded = sum(r["usage"]["requests"] for r in recs) / len(graded)
    assert 1.0 <= per_graded < 5.0
    # the key: never in a log line, an output file or an error message
    assert logged and KEY not in logged
    for f in out.rglob("*"):
        if f.is_file():
            assert KEY.encode() not in f.read_bytes(), f
    assert all(KEY not in (r["error"] or "") for r in recs)
    assert KEY not in repr(judge)


def test_sigterm_drains_grade_and_leaves_the_rest_pending(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    make_sessions(data, 400, per_file=100, seed=4)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    with serve_in_thread(latency_ms=100) as url:
        env.update(STREAMGRADE_BASE_URL=url, STREAMGRADE_OPENAI__RPM="600000",
                   STREAMGRADE_OPENAI__MAX_CONCURRENCY="4", STREAMGRADE_PIPELINE__GRADE_WORKERS="4")
        proc = subprocess.Popen([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress"],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        scores = out / "exports" / "scores.jsonl"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (not scores.exists() or scores.read_bytes().count(b"\n") < 8):
            time.sleep(0.05)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
        drained_in = time.monotonic() - t0
    assert proc.returncode == 130, err  # interrupted: not everything under DATA was graded
    assert "interrupted by SIGTERM" in err and "Run the same command again" in err and drained_in < 10
    done = _lines(out)
    assert 8 <= len(done) < 400 and all(r["status"] == "graded" for r in done)
    import sqlite3

    db = sqlite3.connect(out / "state.sqlite")
    counts = dict(db.execute("SELECT status, count(*) FROM sessions GROUP BY status").fetchall())
    db.close()
    assert counts.get("graded") == len(done) and counts.get("failed") is None
