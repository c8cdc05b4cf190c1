"""Batch mode of the judges (judges/batch.py, batch_collector.py, batch_api.py) against an
in-memory fake of both providers' batch APIs (tests/batch_fakes.py): request files within
limits, rounds of multi-chunk sessions, result states, retries, cost at the batch price."""

from __future__ import annotations

import json

import anyio
import pytest

from batch_fakes import FakeBatchProvider
from streamgrade.config import load_config
from streamgrade.errors import JudgeError
from streamgrade.judges import batch_mode, make_judge
from streamgrade.judges.batch import AnthropicBatchJudge, OpenAIBatchJudge, custom_id
from streamgrade.judges.batch_store import BatchStore
from test_openai_judge import make_chunk, make_session

def make_config(tmp_path, provider="openai", section=None, **batch):
    sec = {"base_url": "http://fake.test/v1" if provider == "openai" else "http://fake.test",
           "http_client": "httpx", "mode": "batch", "max_retries": 2, "backoff_base_s": 0.01, "backoff_max_s": 0.02}
    sec.update(section or {})
    b = {"quiet_s": 0.05, "max_wait_s": 5.0, "poll_min_s": 0.01, "poll_max_s": 0.02}
    b.update(batch)
    return load_config(env={}, overrides={provider: sec, "batch": b,
                                          "run": {"output": str(tmp_path), "judge": provider}})


def make_batch_judge(tmp_path, fake: FakeBatchProvider, **kw):
    cfg = make_config(tmp_path, fake.provider, **kw)
    cls = OpenAIBatchJudge if fake.provider == "openai" else AnthropicBatchJudge
    return cls(cfg, api_key="sk-test-SECRET-0123456789", transport=fake.transport())


async def grade_all(judge, sessions: dict[str, list]) -> dict:
    """Grade every (session id -> chunks) at once with the collector running; returns
    id -> Verdict or the exception raised."""
    out: dict = {}

    async def one(sid, chunks):
        try:
            out[sid] = await judge.grade(make_session(sid), chunks)
        except JudgeError as exc:
            out[sid] = exc

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(judge.serve)
            async with anyio.create_task_group() as inner:
                for sid, chunks in sessions.items():
                    inner.start_soon(one, sid, chunks)
            tg.cancel_scope.cancel()
    return out


def chunks(n: int, tag: str = "") -> list:
    return [make_chunk(i, n, f"[{i}.0s] click({i}, 2) {tag}") for i in range(n)]


def kinds(fake: FakeBatchProvider, bid: str) -> list[str]:
    """The schema (chunk or verdict) of every request of a fake batch."""
    out = []
    for body in fake.batches[bid]["bodies"].values():
        if fake.provider == "openai":
            out.append(body["response_format"]["json_schema"]["name"].removeprefix("streamgrade_"))
        else:
            out.append(body["tool_choice"]["name"].removeprefix("submit_"))
    return sorted(out)


def test_custom_id_is_deterministic_and_valid_for_both_providers():
    a = custom_id("openai:/chat/completions", b'{"x":1}')
    assert a == custom_id("openai:/chat/completions", b'{"x":1}')
    assert a != custom_id("openai:/chat/completions", b'{"x":2}')
    assert a != custom_id("anthropic:/v1/messages", b'{"x":1}')
    assert a != custom_id("openai:/chat/completions", b'{"x":1}', retry=1)
    import re
    assert re.fullmatch(r"[a-zA-Z0-9_-]{1,64}", a) and len(a) == 43


def test_make_judge_picks_the_batch_variant(tmp_path, monkeypatch):
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-x")
    cfg = make_config(tmp_path, "openai")
    assert batch_mode(cfg) and isinstance(make_judge(cfg), OpenAIBatchJudge)
    cfg = make_config(tmp_path, "anthropic")
    assert batch_mode(cfg) and isinstance(make_judge(cfg), AnthropicBatchJudge)
    cfg = make_config(tmp_path, "openai", section={"mode": "sync"})
    assert not batch_mode(cfg) and not isinstance(make_judge(cfg), OpenAIBatchJudge)


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_sessions_go_in_rounds_and_verdicts_come_last(tmp_path, provider):
    fake = FakeBatchProvider(provider)
    judge = make_batch_judge(tmp_path, fake)
    sessions = {"one": chunks(1, "a"), "two": chunks(1, "b"), "three": chunks(3, "c"), "pair": chunks(2, "d")}
    async with judge:
        res = await grade_all(judge, sessions)
    assert all(not isinstance(v, Exception) for v in res.values()), res
    assert len(res["three"].chunk_summaries) == 3 and len(res["pair"].chunk_summaries) == 2
    # round 1: chunk 1 of the multi-chunk sessions and the verdicts of the one-chunk ones;
    # round 2: chunk 2 of both; round 3: chunk 3 of "three" and the verdict of "pair";
    # round 4: the verdict of "three".
    assert [kinds(fake, b) for b in fake.created] == [
        ["chunk", "chunk", "verdict", "verdict"], ["chunk", "chunk"], ["chunk", "verdict"], ["verdict"]]
    assert res["three"].usage.requests == 4 and res["one"].usage.requests == 1
    snap = judge.snapshot()
    assert snap["batches"] == fake.created and snap["submitted"] == 9
    if provider == "openai":  # files uploaded with purpose=batch, batches created for /v1/chat/completions
        assert ("POST", "/v1/files") in fake.calls
        line = json.loads(fake.files[fake.batches[fake.created[0]]["file"]].split(b"\n")[0])
        assert set(line) == {"custom_id", "method", "url", "body"} and line["url"] == "/v1/chat/completions"


@pytest.mark.asyncio
async def test_request_limit_splits_into_several_batches(tmp_path):
    fake = FakeBatchProvider("openai")
    judge = make_batch_judge(tmp_path, fake, max_requests=3)
    async with judge:
        res = await grade_all(judge, {f"s{i}": chunks(1, str(i)) for i in range(7)})
    assert all(not isinstance(v, Exception) for v in res.values())
    assert sorted(len(fake.batches[b]["custom_ids"]) for b in fake.created) == [1, 3, 3]


@pytest.mark.asyncio
async def test_byte_limit_splits_into_several_batches(tmp_path):
    fake = FakeBatchProvider("anthropic")
    probe = make_batch_judge(tmp_path, fake)
    body = json.dumps(probe._body(make_session("s0"), "x" * 10, {"name": "streamgrade_verdict", "schema": {}}))
    await probe.aclose()
    limit = int(len(body) * 2.5) + 3000  # about two requests of these sessions per batch
    judge = make_batch_judge(tmp_path, fake, max_bytes=limit)
    async with judge:
        res = await grade_all(judge, {f"s{i}": chunks(1, str(i)) for i in range(5)})
    assert all(not isinstance(v, Exception) for v in res.values())
    sizes = [len(fake.batches[b]["custom_ids"]) for b in fake.created]
    assert len(sizes) >= 3 and sum(sizes) == 5 and max(sizes) <= 2


@pytest.mark.asyncio
async def test_request_over_the_byte_limit_fails_its_session(tmp_path):
    fake = FakeBatchProvider("openai")
    judge = make_batch_judge(tmp_path, fake, max_bytes=200)
    async with judge:
        res = await grade_all(judge, {"big": chunks(1)})
    assert isinstance(res["big"], JudgeError) and "over the batch limit" in str(res["big"])
    assert fake.created == []


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
@pytest.mark.parametrize("fate", ["errored", "expired", "canceled"])
async def test_errored_expired_canceled_are_resubmitted_once_then_succeed(tmp_path, provider, fate):
    seen: dict[str, int] = {}

    def override(cid, body):
        seen[cid] = seen.get(cid, 0) + 1
        return fate if seen[cid] == 1 else None

    fake = FakeBatchProvider(provider, override=override)
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, {"s": chunks(1)})
    assert not isinstance(res["s"], Exception)
    assert len(fake.created) == 2 and fake.batches[fake.created[0]]["custom_ids"] == \
        fake.batches[fake.created[1]]["custom_ids"]
    assert res["s"].usage.requests == 2 and fake.submitted_after_success == []


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_request_refused_for_good_fails_the_session_at_once(tmp_path, provider):
    fake = FakeBatchProvider(provider, override=lambda cid, body: "errored-final")
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, {"s": chunks(1)})
    assert isinstance(res["s"], JudgeError) and "not retried" in str(res["s"])
    assert "SECRET" not in str(res["s"]) and len(fake.created) == 1


@pytest.mark.asyncio
async def test_retries_exhausted(tmp_path):
    fake = FakeBatchProvider("openai", override=lambda cid, body: "expired")
    judge = make_batch_judge(tmp_path, fake)  # max_retries 2: three batches
    async with judge:
        res = await grade_all(judge, {"s": chunks(1)})
    assert isinstance(res["s"], JudgeError) and "after 3 batch attempts" in str(res["s"])
    assert len(fake.created) == 3 and res["s"].usage.requests == 3


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_unparseable_answer_is_asked_again_under_a_new_custom_id(tmp_path, provider):
    first: list[str] = []

    def override(cid, body):
        if not first:
            first.append(cid)
            return "bad"
        return None

    fake = FakeBatchProvider(provider, override=override)
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, {"s": chunks(1)})
    assert not isinstance(res["s"], Exception)
    ids = [fake.batches[b]["custom_ids"][0] for b in fake.created]
    assert len(ids) == 2 and ids[0] != ids[1] and fake.submitted_after_success == []


@pytest.mark.asyncio
@pytest.mark.parametrize("provider", ["openai", "anthropic"])
async def test_cost_is_counted_at_the_batch_price(tmp_path, provider):
    fake = FakeBatchProvider(provider)
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, {"s": chunks(2)})
    u = res["s"].usage
    price = getattr(judge.config, provider).prices[judge.info.model]
    plain = u.prompt_tokens - u.cached_tokens
    if provider == "openai":
        full = (plain * price.input + u.cached_tokens * price.cached_input + u.completion_tokens * price.output) / 1e6
    else:  # the fake's answers report cache writes and reads of the system block
        full = None
    assert u.prompt_tokens > 0 and u.cost_usd > 0
    if full is not None:
        assert u.cost_usd == pytest.approx(full * 0.5)
    # the same answers at price_factor 1 cost twice as much
    fake2 = FakeBatchProvider(provider)
    judge2 = make_batch_judge(tmp_path / "full", fake2, price_factor=1.0)
    async with judge2:
        res2 = await grade_all(judge2, {"s": chunks(2)})
    assert res2["s"].usage.prompt_tokens == u.prompt_tokens
    assert res2["s"].usage.cost_usd == pytest.approx(2 * u.cost_usd, rel=0.05)


@pytest.mark.asyncio
async def test_create_failure_is_retried_without_a_second_batch(tmp_path):
    fake = FakeBatchProvider("openai", fail_create=1)
    judge = make_batch_judge(tmp_path, fake)
    async with judge:
        res = await grade_all(judge, {"s": chunks(1)})
    assert not isinstance(res["s"], Exception) and len(fake.created) == 1
    # the file was uploaded once and reused for the second create call
    assert fake.calls.count(("POST", "/v1/files")) == 1 and fake.calls.count(("POST", "/v1/batches")) == 2
    store = BatchStore(tmp_path / "state.sqlite")
    assert store.counts() == {"succeeded": 1}
    store.close()


def test_progress_line_names_the_phase():
    from streamgrade.judges.batch_collector import describe

    snap = {"provider": "openai", "queued": 12, "open": {"in progress": 2, "downloading": 1, "submitting": 1},
            "done": 150, "total": 400, "batches": ["b1", "b2", "b3"], "submitted": 400}
    line = describe(snap)
    assert line.startswith("batch openai: collecting 12 requests; submitting 1 batches; in progress: 150 of 400 done "
                           "in 2 batches; downloading 1 batches")
    assert line.endswith("400 requests submitted in 3 batches")
    assert "waiting for requests" in describe({"provider": "anthropic"})
