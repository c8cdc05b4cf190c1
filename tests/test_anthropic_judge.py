"""AnthropicJudge against a respx-mocked Messages API (docs.anthropic.com "Messages")."""

from __future__ import annotations

import json
import logging
import random
import re
from datetime import datetime, timedelta, timezone

import httpx
import pytest
import pytest_asyncio
import respx

from streamgrade.config import load_config
from streamgrade.errors import ConfigError, JudgeError
from streamgrade.judges import check_judge, make_judge, resolve_kind, rubric
from streamgrade.judges.anthropic import AnthropicJudge
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.models import Chunk, Verdict
from test_openai_judge import SleepRecorder, make_chunk, make_session
from test_openai_judge import verdict_content as verdict_input

BASE = "http://anthropic.test"
URL = BASE + "/v1/messages"
SECRET = "sk-ant-test-SECRET-123456"


def make_config(**anthropic):
    over = {"base_url": BASE, "backoff_base_s": 0.01, "max_retries": 3, "rpm": 600_000, "http_client": "httpx"}
    over.update(anthropic)
    return load_config(env={}, overrides={"anthropic": over})


def message(tool_input=None, *, usage=None, headers=None, text_only=False) -> httpx.Response:
    content = [{"type": "text", "text": "Here is my verdict."}]
    if not text_only:
        content.append({"type": "tool_use", "id": "toolu_1", "name": "submit_verdict",
                        "input": tool_input or verdict_input()})
    return httpx.Response(200, headers=headers, json={
        "id": "msg_1", "type": "message", "role": "assistant", "model": "claude-sonnet-4-5",
        "content": content, "stop_reason": "end_turn" if text_only else "tool_use",
        "usage": usage or {"input_tokens": 100, "output_tokens": 20}})


def error(status: int, message: str = "boom", headers=None) -> httpx.Response:
    return httpx.Response(status, headers=headers,
                          json={"type": "error", "error": {"type": "some_error", "message": message}})


@pytest.fixture
def clock() -> SleepRecorder:
    return SleepRecorder()


@pytest_asyncio.fixture
async def factory(clock):
    judges: list[AnthropicJudge] = []

    def build(api_key=SECRET, **anthropic) -> AnthropicJudge:
        j = AnthropicJudge(make_config(**anthropic), api_key=api_key, sleep=clock, clock=clock.clock,
                           rng=random.Random(1))
        judges.append(j)
        return j

    yield build
    for j in judges:
        await j.aclose()


@pytest.mark.asyncio
async def test_tool_use_answer_becomes_verdict_and_request_shape(factory, clock):
    judge = factory()
    with respx.mock(assert_all_called=True) as mock:
        route = mock.post(URL).mock(return_value=message())
        verdict = await judge.grade(make_session(), [make_chunk()])
    assert isinstance(verdict, Verdict)
    assert {k: c.score for k, c in verdict.components.items()} == {"outcome": 80, "process": 70, "efficiency": 60}
    assert verdict.summary == "did X" and verdict.usage.requests == 1
    assert (verdict.usage.prompt_tokens, verdict.usage.completion_tokens) == (100, 20)
    assert judge.info.kind == "anthropic" and judge.info.model == "claude-sonnet-4-5"

    req = route.calls[0].request
    assert req.headers["x-api-key"] == SECRET
    assert req.headers["anthropic-version"] == "2023-06-01"
    assert req.headers["content-type"] == "application/json"
    assert "authorization" not in req.headers
    body = json.loads(req.content)
    assert body["model"] == "claude-sonnet-4-5" and body["max_tokens"] == 1024
    assert body["tool_choice"] == {"type": "tool", "name": "submit_verdict"}
    assert [t["name"] for t in body["tools"]] == ["submit_verdict"]
    assert body["tools"][0]["input_schema"] == json.loads(json.dumps(rubric.VERDICT_SCHEMA["schema"]))
    assert body["system"] == [{"type": "text", "text": rubric.SYSTEM_PROMPT, "cache_control": {"type": "ephemeral"}}]
    assert "seed" not in body and "response_format" not in body
    [msg] = body["messages"]
    assert msg["role"] == "user" and msg["content"][0]["type"] == "text"
    user = msg["content"][0]["text"]
    m = re.match(r'<session_data id="([0-9a-f]{12})">\n', user)
    assert m, user[:80]
    close = f'</session_data id="{m.group(1)}">'
    inner = user[m.end(): user.index(close)]
    assert "Task: Do X" in inner and "[0.0s] click(1, 2)" in inner
    assert clock.delays == []


@pytest.mark.asyncio
async def test_frames_go_as_base64_image_blocks(factory, tmp_path):
    frame = tmp_path / "f.jpg"
    frame.write_bytes(b"\xff\xd8jpeg")
    judge = factory()
    body = judge._body(make_session(), "prompt", rubric.VERDICT_SCHEMA, [str(frame)])
    image = body["messages"][0]["content"][1]
    assert image == {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": "/9hqcGVn"}}


@pytest.mark.asyncio
async def test_cached_tokens_counted_and_priced(factory):
    judge = factory()
    usage = {"input_tokens": 50, "cache_creation_input_tokens": 1000, "cache_read_input_tokens": 2000,
             "output_tokens": 100}
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=message(usage=usage))
        verdict = await judge.grade(make_session(), [make_chunk()])
    u = verdict.usage
    assert (u.prompt_tokens, u.cached_tokens, u.completion_tokens) == (3050, 2000, 100)
    # claude-sonnet-4-5: $3 input, $3.75 cache write, $0.30 cache read, $15 output per 1M
    assert u.cost_usd == pytest.approx((50 * 3 + 1000 * 3.75 + 2000 * 0.30 + 100 * 15) / 1e6)


@pytest.mark.asyncio
async def test_429_with_retry_after_then_success(factory, clock):
    judge = factory()
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=[error(429, "rate", {"retry-after": "2"}), message()])
        verdict = await judge.grade(make_session(), [make_chunk()])
    assert route.call_count == 2 and verdict.usage.requests == 2
    assert sum(clock.delays) >= 2.0  # the limiter's pause gate waited out retry-after


@pytest.mark.asyncio
async def test_529_overloaded_and_text_only_answers_are_retried(factory):
    judge = factory()
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=[error(529, "Overloaded"), message(text_only=True), message()])
        verdict = await judge.grade(make_session(), [make_chunk()])
    assert route.call_count == 3 and verdict.components["outcome"].score == 80


@pytest.mark.asyncio
async def test_ratelimit_remaining_zero_waits_until_reset(factory, clock):
    judge = factory()
    reset = (datetime.now(timezone.utc) + timedelta(seconds=30)).isoformat().replace("+00:00", "Z")
    headers = {"anthropic-ratelimit-requests-remaining": "0", "anthropic-ratelimit-requests-reset": reset}
    with respx.mock() as mock:
        mock.post(URL).mock(side_effect=[message(headers=headers), message()])
        await judge.grade(make_session(), [make_chunk()])
        assert clock.delays == []
        await judge.grade(make_session(), [Chunk(index=0, total=1, start_ms=0, end_ms=9, lines=["b"], tokens=1)])
    assert 25 <= sum(clock.delays) <= 31


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 401, 403, 404])
async def test_client_errors_fail_at_once_with_key_redacted(factory, caplog, status):
    judge = factory()
    caplog.set_level(logging.DEBUG)
    with respx.mock() as mock:
        route = mock.post(URL).mock(return_value=error(status, f"invalid x-api-key {SECRET}"))
        with pytest.raises(JudgeError) as info:
            await judge.grade(make_session(), [make_chunk()])
    assert route.call_count == 1
    text = str(info.value)
    assert f"HTTP {status}" in text and "not retried" in text
    assert SECRET not in text and SECRET[:12] not in text
    assert SECRET not in caplog.text and SECRET not in repr(judge)


def test_make_judge_and_auto(monkeypatch):
    for name in ("STREAMGRADE_API_KEY", "OPENAI_API_KEY", "ANTHROPIC_API_KEY", "STREAMGRADE_BASE_URL",
                 "OPENAI_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    cfg = load_config(env={}, overrides={"run": {"judge": "anthropic"}})
    with pytest.raises(ConfigError, match="ANTHROPIC_API_KEY"):
        check_judge(cfg)
    monkeypatch.setenv("ANTHROPIC_API_KEY", SECRET)
    judge = make_judge(cfg)
    assert isinstance(judge, AnthropicJudge) and judge.base_url == "https://api.anthropic.com"
    auto = load_config(env={}, overrides={"run": {"judge": "auto"}})
    assert resolve_kind(auto) == "anthropic"
    monkeypatch.setenv("OPENAI_API_KEY", "sk-openai")
    assert resolve_kind(auto) == "openai"
    assert type(make_judge(auto)) is OpenAIJudge


def test_config_section_defaults_and_validation():
    cfg = load_config(env={})
    assert (cfg.anthropic.base_url, cfg.anthropic.model) == ("https://api.anthropic.com", "claude-sonnet-4-5")
    assert cfg.anthropic.prices["claude-sonnet-4-5"].cache_write == 3.75
    with pytest.raises(ConfigError, match="anthropic.timeout_s"):
        load_config(env={}, overrides={"anthropic": {"timeout_s": 0}})
    with pytest.raises(ConfigError):
        load_config(env={}, overrides={"anthropic": {"api_key": "sk-ant-x"}})  # never in config


@pytest.mark.asyncio
async def test_chunked_session_forces_submit_chunk_then_verdict(factory):
    judge = factory()
    chunk_answer = {"summary": "half done", "progress": ["p"], "problems": []}
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=[message(chunk_answer), message(chunk_answer), message()])
        chunks = [Chunk(index=i, total=2, start_ms=i, end_ms=i + 1, lines=[f"[{i}.0s] step"], tokens=2)
                  for i in range(2)]
        verdict = await judge.grade(make_session(), chunks)
    names = [json.loads(c.request.content)["tool_choice"]["name"] for c in route.calls]
    assert names == ["submit_chunk", "submit_chunk", "submit_verdict"]
    assert verdict.chunk_summaries == [rubric.parse_chunk(json.dumps(chunk_answer))] * 2
