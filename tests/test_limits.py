"""Rate limiting: the pause gate, limits learned from headers, the adaptive search when the
limit is unknown, the token bucket, AIMD concurrency, the response cache and the budget."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
import respx

from streamgrade.config import load_config
from streamgrade.judges.limits import AdaptiveConcurrency, RateLimiter, estimate_tokens, parse_reset
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.pipeline import Pipeline, scan_source
from streamgrade.sinks.ledger import Ledger

EXAMPLES = Path(__file__).parent.parent / "examples" / "clones"
URL = "http://judge.test/v1/chat/completions"


class FakeTime:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, s: float) -> None:
        self.slept.append(s)
        self.now += s


@pytest.mark.parametrize("text,seconds", [("1s", 1.0), ("6m0s", 360.0), ("120ms", 0.12), ("1h2m3.5s", 3723.5),
                                          ("0.5", 0.5), ("", None), ("soon", None), ("5x", None)])
def test_parse_reset(text, seconds):
    assert parse_reset(text) == seconds


def test_estimate_tokens():
    assert estimate_tokens(b"x" * 400) == 100 and estimate_tokens("abc") == 1


@pytest.mark.asyncio
async def test_429_pauses_everyone_until_retry_after():
    t = FakeTime()
    lim = RateLimiter(rpm=600_000, clock=t.clock, sleep=t.sleep)
    await lim.acquire()
    lim.observe(429, {}, retry_after=3.0)
    await lim.acquire()
    assert t.slept == [3.0] and lim.stats.rate_limited == 1 and lim.stats.paused_s == 3.0
    await lim.acquire()  # the pause is over: no more waiting
    assert t.slept == [3.0]


@pytest.mark.asyncio
async def test_remaining_zero_waits_for_reset_and_limits_come_from_headers():
    t = FakeTime()
    lim = RateLimiter(clock=t.clock, sleep=t.sleep)
    assert lim.stats.rate_rps == 5.0  # unknown: adaptive start
    lim.observe(200, {"x-ratelimit-limit-requests": "120", "x-ratelimit-remaining-requests": "0",
                      "x-ratelimit-reset-requests": "750ms", "x-ratelimit-limit-tokens": "60000"}, None)
    assert lim.stats.limits_from_headers and lim.stats.rate_rps == 2.0  # 120 RPM
    await lim.acquire(100)
    assert t.slept[0] == pytest.approx(0.75)
    lim.observe(429, {}, retry_after=10.0)
    assert lim.stats.rate_rps == 2.0  # a known limit is not cut by a 429, only paused


def test_adaptive_rate_slow_start_then_cut_to_retry_after():
    t = FakeTime()
    lim = RateLimiter(clock=t.clock, sleep=t.sleep, adaptive_start_rps=4)
    lim._window_admitted = 4  # a saturated second: 4 admitted at 4 rps
    t.now += 1.0
    lim._adapt_up()
    assert lim.stats.rate_rps == 8.0  # slow start doubles
    lim.observe(429, {}, retry_after=1.0)  # a 1 req/s token bucket says: next token in 1 s
    assert lim.stats.rate_rps == 1.0  # max(1/1, 8/8) and at most 8/2
    lim._window_admitted = 1
    t.now += 1.0
    lim._adapt_up()
    assert lim.stats.rate_rps == pytest.approx(1.02)  # additive growth after the first 429
    lim.observe(429, {}, retry_after=0.1)
    assert lim.stats.rate_rps == pytest.approx(0.51)  # halved at least


@pytest.mark.asyncio
async def test_token_bucket_waits_and_settles():
    t = FakeTime()
    lim = RateLimiter(rpm=600_000, tpm=6000, clock=t.clock, sleep=t.sleep)  # 100 tokens/s, burst 1000
    await lim.acquire(1000)
    assert t.slept == []
    await lim.acquire(500)  # empty bucket: 5 s of refill
    assert sum(t.slept) == pytest.approx(5.0)
    lim.settle(estimated_prompt=500, reported_prompt=100)  # over-estimated by 400: given back
    before = len(t.slept)
    await lim.acquire(400)
    assert len(t.slept) == before


@pytest.mark.asyncio
async def test_adaptive_concurrency_halves_on_429_and_grows_back():
    sem = AdaptiveConcurrency(8)
    await sem.acquire()
    await sem.release(ok=False, rate_limited=True)
    assert sem.limit == 4
    for _ in range(4):
        await sem.acquire()
        await sem.release(ok=True, rate_limited=False)
    assert sem.limit == 5
    fixed = AdaptiveConcurrency(8, adaptive=False)
    await fixed.acquire()
    await fixed.release(ok=False, rate_limited=True)
    assert fixed.limit == 8


def _ok(content: dict) -> httpx.Response:
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": json.dumps(content)}}],
                                     "usage": {"prompt_tokens": 1_000_000, "completion_tokens": 0}})


VERDICT = {"summary": "s", **{k: {"score": 70, "confidence": 0.5, "reason": "r"} for k in ("outcome", "process", "efficiency")}}


@pytest.mark.asyncio
async def test_response_cache_means_a_rerun_never_pays_twice(tmp_path: Path):
    data = tmp_path / "data"
    shutil.copytree(EXAMPLES, data)
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "rpm": 600_000, "http_client": "httpx",
                                                    "cache_dir": str(tmp_path / "cache")}})
    with respx.mock:
        route = respx.post(URL).mock(return_value=_ok(VERDICT))
        for out in ("out1", "out2"):  # two separate runs into two outputs
            judge = OpenAIJudge(cfg, api_key="k")
            stats = await Pipeline(cfg, tmp_path / out, judge).run(scan_source([data], exclude=[tmp_path / out]))
            await judge.aclose()
            assert stats.graded == 3
    assert route.call_count == 3  # the second run was answered from the cache
    assert len(list((tmp_path / "cache").rglob("*.json"))) == 3


@pytest.mark.asyncio
async def test_budget_stops_sending_and_leaves_the_rest_pending(tmp_path: Path):
    data = tmp_path / "data"
    for i in range(6):
        shutil.copytree(EXAMPLES / "20251007_131852", data / f"s{i}")
        meta = data / f"s{i}" / "meta.json"
        meta.write_text(meta.read_text().replace("Implement shopping cart", f"Implement shopping cart {i}"))
    # gpt-4o-mini input costs $0.15 per 1M tokens: each answer reports 1M prompt tokens
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "rpm": 600_000, "http_client": "httpx",
                                                    "max_cost_usd": 0.30, "max_concurrency": 1},
                                         "pipeline": {"grade_workers": 1, "stream_capacity": 1}})
    out = tmp_path / "out"
    with respx.mock:
        route = respx.post(URL).mock(return_value=_ok(VERDICT))
        judge = OpenAIJudge(cfg, api_key="k")
        stats = await Pipeline(cfg, out, judge).run(scan_source([data], exclude=[out]))
        await judge.aclose()
    assert route.call_count == 2 and stats.graded == 2  # $0.30 spent after two answers
    assert stats.failed == 0 and stats.budget_pending >= 1
    lines = (out / "exports" / "scores.jsonl").read_text().splitlines()
    assert len(lines) == 2
    ledger = Ledger(out / "state.sqlite")
    counts = ledger.counts()
    ledger.close()
    assert counts["graded"] == 2 and counts.get("pending", 0) >= 1
