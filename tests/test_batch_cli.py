"""``streamgrade grade --batch`` as a user runs it, against the mock provider's batch
endpoints (scripts/mock_batches.py) for both providers; the usage errors of --batch."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from test_cli import EXAMPLES, lines, run

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from mock_provider import serve_in_thread  # noqa: E402
from synth import make_sessions  # noqa: E402
from conftest import session_dir

FAST = {"STREAMGRADE_BATCH__QUIET_S": "0.2", "STREAMGRADE_BATCH__POLL_MIN_S": "0.05",
        "STREAMGRADE_BATCH__POLL_MAX_S": "0.2", "STREAMGRADE_OPENAI__BACKOFF_BASE_S": "0.05",
        "STREAMGRADE_ANTHROPIC__BACKOFF_BASE_S": "0.05"}
MOCK = {"batch_start_delay_s": 0.1, "batch_finalize_s": 0.05, "batch_rate": 0, "batch_error_rate": 0.2}


def env_for(provider: str, url: str) -> dict:
    env = dict(FAST, STREAMGRADE_CHUNKING__MAX_TOKENS="100")  # multi-chunk sessions
    if provider == "openai":
        env["STREAMGRADE_BASE_URL"] = url
    else:
        env.update(ANTHROPIC_API_KEY="sk-ant-mock-key-123", STREAMGRADE_ANTHROPIC__BASE_URL=url.removesuffix("/v1"))
    return env


def test_batch_with_the_heuristic_judge_is_a_usage_error(tmp_path):
    res = run("grade", str(EXAMPLES), "-o", str(tmp_path / "out"), "--judge", "heuristic", "--batch")
    assert res.returncode == 2 and "--batch needs an LLM judge" in res.stderr
    assert not (tmp_path / "out").exists()


def test_watch_refuses_batch_mode(tmp_path):
    res = run("watch", str(EXAMPLES), "-o", str(tmp_path / "out"), "--judge", "openai", "--batch",
              env={"STREAMGRADE_BASE_URL": "http://127.0.0.1:9/v1"})
    assert res.returncode == 2 and "batch mode" in res.stderr
    res = run("watch", str(EXAMPLES), "-o", str(tmp_path / "out"), "--judge", "openai",
              env={"STREAMGRADE_BASE_URL": "http://127.0.0.1:9/v1", "STREAMGRADE_OPENAI__MODE": "batch"})
    assert res.returncode == 2 and "grade --batch" in res.stderr


@pytest.mark.parametrize("provider", ["openai", "anthropic"])
def test_grade_batch_against_the_mock(tmp_path, provider):
    data, out = tmp_path / "data", tmp_path / "out"
    make_sessions(data, 12, seed=3)
    with serve_in_thread(**MOCK) as url:
        env = env_for(provider, url)
        res = run("grade", str(data), "-o", str(out), "--judge", provider, "--batch", "--no-progress", env=env,
                  timeout=120)
        assert res.returncode == 0, res.stderr
        stats = url.stats()["batches"][provider]
        again = run("grade", str(data), "-o", str(out), "--judge", provider, "--batch", "--no-progress", env=env)
        assert again.returncode == 0 and "12 unchanged (skipped)" in again.stderr
        assert url.stats()["batches"][provider]["created"] == stats["created"]  # nothing sent again
    assert "batch mode at 50% of list price" in res.stderr and f"batch mode ({provider}):" in res.stderr
    assert "sk-ant-mock-key-123" not in res.stderr
    recs = lines(out)
    assert len(recs) == 12 and {r["status"] for r in recs} == {"graded"}
    assert len({r["session_id"] for r in recs}) == 12
    summaries = [len(json.loads((session_dir(out, r["session_id"]) / "results.json").read_text())["verdict"]
                     ["chunk_summaries"]) for r in recs]
    assert max(summaries) >= 2  # multi-chunk sessions went through
    requests = sum(r["usage"]["requests"] for r in recs)
    assert requests > 12  # multi-chunk sessions: chunk requests, then the verdict
    assert stats["created"] >= 3  # rounds: chunk 1, chunk 2, ..., verdicts
    assert stats["errored"] > 0 and stats["requests_submitted"] == stats["succeeded"] + stats["errored"]
    assert stats["resubmitted_after_success"] == 0 and stats["resubmitted_while_pending"] == 0
    if provider == "openai":  # gpt-4o-mini list price 0.15 / 0.60 per 1M tokens, at 50%
        for r in recs:
            u = r["usage"]
            expected = 0.5 * (u["prompt_tokens"] * 0.15 + u["completion_tokens"] * 0.60) / 1e6
            assert u["cost_usd"] == pytest.approx(expected, abs=1e-6) and u["cost_usd"] > 0
    else:
        assert all(r["usage"]["cost_usd"] > 0 for r in recs)
