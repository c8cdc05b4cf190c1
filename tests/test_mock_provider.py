"""scripts/mock_provider.py: the local OpenAI-compatible mock, driven for real (no respx)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import httpx
import pytest

from streamgrade.config import load_config
from streamgrade.errors import JudgeError
from streamgrade.judges import rubric
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.models import Chunk, Session, SessionRef

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from mock_provider import answer, serve_in_thread  # noqa: E402


def make_session(session_id: str = "s1") -> Session:
    return Session(
        ref=SessionRef(session_id=session_id, format="clones-desktop", path="/x", files=("/x/a",)),
        task="Do X",
        objectives=["a"],
        actions=[],
        duration_s=10.0,
    )


def make_chunk(index: int = 0, total: int = 1) -> Chunk:
    return Chunk(index=index, total=total, start_ms=index * 1000, end_ms=(index + 1) * 1000,
                 lines=[f"[{index}.0s] click(1, 2)", f"[{index}.5s] type('hi')"], tokens=5)


def make_judge(base_url: str, **openai) -> tuple[OpenAIJudge, list[float]]:
    delays: list[float] = []

    async def sleep(s: float) -> None:
        delays.append(s)

    over = {"base_url": base_url, "backoff_base_s": 0.01, "max_retries": 3, "timeout_s": 5.0}
    over.update(openai)
    cfg = load_config(env={}, overrides={"openai": over})
    return OpenAIJudge(cfg, api_key="sk-local", sleep=sleep), delays


@pytest.mark.asyncio
async def test_judge_against_mock_single_chunk():
    with serve_in_thread() as base_url:
        assert isinstance(base_url, str) and base_url.startswith("http://127.0.0.1:") and base_url.endswith("/v1")
        judge, delays = make_judge(base_url)
        try:
            verdict = await judge.grade(make_session(), [make_chunk()])
            again = await judge.grade(make_session(), [make_chunk()])
        finally:
            await judge.aclose()
        assert base_url.requests == 2 and base_url.chat_requests == 2
    assert set(verdict.components) == {"outcome", "process", "efficiency"}
    for comp in verdict.components.values():
        assert 0 <= comp.score <= 100 and 0 <= comp.confidence <= 1 and comp.reason
    assert verdict.summary.startswith("Mock verdict")
    assert verdict.chunk_summaries == []
    assert verdict.usage.requests == 1
    assert verdict.usage.prompt_tokens > 100  # system prompt + user prompt, chars / 4
    assert verdict.usage.completion_tokens > 0
    assert verdict.usage.cost_usd > 0  # default model gpt-4o-mini has a price
    assert delays == []
    # deterministic: same prompt, same verdict
    assert {k: (c.score, c.confidence) for k, c in again.components.items()} == {
        k: (c.score, c.confidence) for k, c in verdict.components.items()
    }


@pytest.mark.asyncio
async def test_judge_against_mock_multi_chunk():
    chunks = [make_chunk(i, 3) for i in range(3)]
    with serve_in_thread() as base_url:
        judge, _ = make_judge(base_url)
        try:
            verdict = await judge.grade(make_session(), chunks)
        finally:
            await judge.aclose()
        assert base_url.chat_requests == 4
    assert verdict.usage.requests == 4
    assert len(verdict.chunk_summaries) == 3
    for i, s in enumerate(verdict.chunk_summaries):
        assert f"chunk {i + 1} of 3 (2 actions)" in s
    assert 0 <= verdict.components["outcome"].score <= 100


@pytest.mark.asyncio
async def test_judge_retries_against_mock_failures():
    with serve_in_thread(fail_first=2) as base_url:
        judge, delays = make_judge(base_url)
        try:
            verdict = await judge.grade(make_session(), [make_chunk()])
        finally:
            await judge.aclose()
        assert base_url.chat_requests == 3
    assert verdict.usage.requests == 3
    assert delays == [0.0, 0.0]  # the mock sends Retry-After: 0


@pytest.mark.asyncio
async def test_judge_against_mock_not_found_fails_fast():
    with serve_in_thread() as base_url:
        judge, delays = make_judge(base_url.removesuffix("/v1") + "/nope")
        try:
            with pytest.raises(JudgeError) as ei:
                await judge.grade(make_session(), [make_chunk()])
        finally:
            await judge.aclose()
    assert "404" in str(ei.value) and ei.value.attempts == 1 and delays == []


def test_mock_answers_chunk_schema_and_models_and_text():
    with serve_in_thread(latency_ms=5) as base_url:
        with httpx.Client(base_url=base_url, timeout=5) as client:
            chunk_prompt = rubric.chunk_prompt(make_session(), make_chunk(1, 3), "earlier")
            body = {
                "model": "my-model",
                "messages": [{"role": "system", "content": rubric.SYSTEM_PROMPT},
                             {"role": "user", "content": chunk_prompt}],
                "response_format": {"type": "json_schema", "json_schema": rubric.CHUNK_SCHEMA},
            }
            r = client.post("/chat/completions", json=body)
            assert r.status_code == 200
            data = r.json()
            assert data["id"].startswith("chatcmpl-") and data["object"] == "chat.completion"
            assert data["model"] == "my-model" and isinstance(data["created"], int)
            choice = data["choices"][0]
            assert choice["index"] == 0 and choice["finish_reason"] == "stop"
            assert choice["message"]["role"] == "assistant"
            content = json.loads(choice["message"]["content"])
            assert set(content) == {"summary", "progress", "problems"}
            assert "chunk 2 of 3" in rubric.parse_chunk(choice["message"]["content"])
            u = data["usage"]
            chars = len(rubric.SYSTEM_PROMPT) + len(chunk_prompt)
            assert u["prompt_tokens"] == chars // 4
            assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"]

            body["response_format"] = {"type": "json_schema", "json_schema": rubric.VERDICT_SCHEMA}
            r = client.post("/chat/completions", json=body)
            summary, comps = rubric.parse_verdict(r.json()["choices"][0]["message"]["content"])
            assert summary and set(comps) == {"outcome", "process", "efficiency"}

            r = client.post("/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hello"}]})
            assert r.json()["choices"][0]["message"]["content"] == "echo: hello"

            models = client.get("/models").json()
            assert models["object"] == "list" and models["data"][0]["id"] == "mock-judge"

            r = client.post("/chat/completions", content=b"{not json")
            assert r.status_code == 400 and "error" in r.json()
            assert client.get("/nope").status_code == 404
        assert base_url.requests == 6


def test_answer_is_deterministic_and_in_range():
    for i in range(50):
        msgs = [{"role": "user", "content": f"prompt {i}"}]
        req = {"model": "m", "messages": msgs,
               "response_format": {"type": "json_schema", "json_schema": rubric.VERDICT_SCHEMA}}
        a, b = answer(req), answer(req)
        assert a["choices"][0]["message"]["content"] == b["choices"][0]["message"]["content"]
        rubric.parse_verdict(a["choices"][0]["message"]["content"])  # raises if out of range
    with pytest.raises(ValueError):
        answer({"model": "m"})


def test_cli_prints_one_line_and_stops_on_sigterm():
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPTS / "mock_provider.py"), "--port", "0", "--max-seconds", "30"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        line = proc.stdout.readline()
        assert line.startswith("mock provider listening on http://127.0.0.1:") and line.endswith("/v1\n")
        url = line.split(" on ", 1)[1].strip()
        with urllib.request.urlopen(url + "/models", timeout=5) as resp:
            assert json.load(resp)["data"][0]["id"] == "mock-judge"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert proc.stdout.read() == ""  # exactly one line
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
        proc.stderr.close()


def test_cli_stops_after_max_seconds():
    proc = subprocess.run(
        [sys.executable, str(SCRIPTS / "mock_provider.py"), "--max-seconds", "0.2"],
        capture_output=True, text=True, timeout=10,
    )
    assert proc.returncode == 0
    assert proc.stdout.count("\n") == 1 and proc.stdout.startswith("mock provider listening on ")
