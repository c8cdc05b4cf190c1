"""scripts/mock_provider.py: the local OpenAI-compatible mock, driven for real (no respx)."""

from __future__ import annotations

import json
import re
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

from mock_provider import (  # noqa: E402
    MockOptions,
    MockProvider,
    _schema_violation,
    answer,
    main,
    openai_duration,
    serve_in_thread,
    start_mock_process,
)


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

    # a known, generous rpm: pacing (which would use the fake sleep) stays out of these tests
    over = {"base_url": base_url, "backoff_base_s": 0.01, "max_retries": 3, "timeout_s": 5.0, "rpm": 600_000}
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
    # the mock follows the reasoning-first protocol when the schema asks for success
    ex = verdict.extras
    assert ex["success"] == (verdict.components["outcome"].score >= 50)
    assert ex["p_success"] == round(verdict.components["outcome"].score / 100, 2)
    assert ex["failure_cause"] in ("none", "agent", "environment", "unclear")
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
    # the mock sends Retry-After: 0, so no back-off (the judge may skip a 0 s sleep)
    assert all(d == 0 for d in delays)


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
        rest = proc.stdout.read().splitlines()  # then exactly one line: the stats as JSON
        assert len(rest) == 1 and json.loads(rest[0])["requests"] == 1
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
    assert proc.stdout.count("\n") == 2 and proc.stdout.startswith("mock provider listening on ")
    assert json.loads(proc.stdout.splitlines()[1])["requests"] == 0


# --- rate limits, faults, stats (the aiohttp mock) --------------------------------------

HELLO = {"model": "m", "messages": [{"role": "user", "content": "hello"}]}
DURATION = re.compile(r"^(\d+ms|(\d+h)?(\d+m)?\d+(\.\d+)?s)$")


def verdict_body(text: str = "grade me") -> dict:
    return {"model": "m", "messages": [{"role": "user", "content": text}],
            "response_format": {"type": "json_schema", "json_schema": rubric.VERDICT_SCHEMA}}


def test_openai_duration_format():
    assert [openai_duration(s) for s in (0, 0.0004, 0.12, 1, 2.3941, 59.9999, 60, 360, 3723.5)] == [
        "0s", "1ms", "120ms", "1s", "2.395s", "1m0s", "1m0s", "6m0s", "1h2m3.5s"]


def test_rpm_limit_gives_429_with_retry_after_and_headers():
    with serve_in_thread(rpm=2) as url, httpx.Client(base_url=url, timeout=5) as client:
        r1 = client.post("/chat/completions", json=HELLO)
        r2 = client.post("/chat/completions", json=HELLO)
        r3 = client.post("/chat/completions", json=HELLO)
        models = client.get("/models")
        stats = url.stats()
    assert (r1.status_code, r2.status_code, r3.status_code) == (200, 200, 429)
    assert r1.headers["x-ratelimit-limit-requests"] == "2"
    assert r1.headers["x-ratelimit-remaining-requests"] == "1" and r2.headers["x-ratelimit-remaining-requests"] == "0"
    for r in (r1, r2, r3, models):
        assert DURATION.match(r.headers["x-ratelimit-reset-requests"]), r.headers["x-ratelimit-reset-requests"]
        assert "x-ratelimit-limit-tokens" not in r.headers  # no TPM configured
    err = r3.json()["error"]
    assert err["type"] == "requests" and err["code"] == "rate_limit_exceeded" and "RPM" in err["message"]
    assert 29 <= int(r3.headers["Retry-After"]) <= 30  # 1 request per 30 s refills the bucket
    assert 29_000 <= int(r3.headers["retry-after-ms"]) <= 30_000
    assert r3.headers["x-ratelimit-remaining-requests"] == "0"
    assert stats["rate_limited"] == stats["rate_limited_requests"] == 1 and stats["answered"] == 2
    assert stats["status"] == {"200": 3, "429": 1}


def test_hide_limits_still_enforces_without_headers():
    with serve_in_thread(rpm=1, tpm=1000, hide_limits=True) as url, httpx.Client(base_url=url, timeout=5) as client:
        r1 = client.post("/chat/completions", json=HELLO)
        r2 = client.post("/chat/completions", json=HELLO)
        probe = client.post("/chat/completions", json={"model": "m", "messages": []})
    assert (r1.status_code, r2.status_code, probe.status_code) == (200, 429, 400)
    for r in (r1, r2, probe):
        assert not [h for h in r.headers if h.lower().startswith("x-ratelimit")]
    assert int(r2.headers["Retry-After"]) >= 1 and r2.json()["error"]["type"] == "requests"


def test_tpm_limit_counts_prompt_plus_max_tokens():
    with serve_in_thread(tpm=100) as url, httpx.Client(base_url=url, timeout=5) as client:
        r1 = client.post("/chat/completions", json={**HELLO, "max_tokens": 60})  # 1 + 60 tokens
        r2 = client.post("/chat/completions", json={**HELLO, "max_tokens": 60})
        big = client.post("/chat/completions", json={**HELLO, "max_completion_tokens": 500})
        r3 = client.post("/chat/completions", json=HELLO)  # 1 + completion tokens of "echo: hello"
        stats = url.stats()
    assert r1.status_code == 200 and r1.headers["x-ratelimit-limit-tokens"] == "100"
    assert r1.headers["x-ratelimit-remaining-tokens"] == "39"
    assert DURATION.match(r1.headers["x-ratelimit-reset-tokens"])
    assert "x-ratelimit-limit-requests" not in r1.headers
    assert r2.status_code == 429
    err = r2.json()["error"]
    assert err["type"] == "tokens" and err["code"] == "rate_limit_exceeded" and "TPM" in err["message"]
    assert int(r2.headers["Retry-After"]) >= 1 and int(r2.headers["retry-after-ms"]) > 10_000  # 22 tokens at 100/min
    assert big.status_code == 429 and "Request too large" in big.json()["error"]["message"]
    assert "Retry-After" not in big.headers  # it could never pass
    assert r3.status_code == 200 and r3.json()["usage"]["completion_tokens"] == 2
    assert stats["charged_tokens"] == 61 + 3 and stats["rate_limited_tokens"] == 2


def _fault_outcome(kind: str) -> tuple[str, dict]:
    opts = {f"fault_{kind}": 1.0, "stall_s": 0.5}
    with serve_in_thread(**opts) as url, httpx.Client(base_url=url, timeout=0.2 if kind == "stall" else 5) as client:
        try:
            r = client.post("/chat/completions", json=verdict_body())
        except httpx.TimeoutException:
            outcome = "timeout"
        except httpx.RemoteProtocolError:
            outcome = "short body"
        else:
            outcome = f"{r.status_code}"
            if r.status_code == 503:
                outcome += f" retry-after {r.headers['Retry-After']}"
            if r.status_code == 200:
                try:
                    content = r.json()["choices"][0]["message"]["content"]
                except ValueError:
                    outcome += " not json"
                else:
                    try:
                        rubric.parse_verdict(content)
                        outcome += " valid"
                    except ValueError:
                        outcome += " schema violated"
        return outcome, url.stats()


@pytest.mark.parametrize("kind,expected", [
    ("500", "500"),
    ("503", "503 retry-after 1"),
    ("stall", "timeout"),
    ("truncate", "short body"),
    ("invalid_json", "200 not json"),
    ("schema", "200 schema violated"),
])
def test_each_fault_at_rate_one(kind, expected):
    outcome, stats = _fault_outcome(kind)
    assert outcome == expected
    assert stats["faults"] == {k: int(k == kind) for k in stats["faults"]}
    assert stats["answered"] == 0 and stats["chat_requests"] == 1


def test_schema_fault_variants_and_fault_rates_are_seeded():
    bad = set()
    for i in range(8):
        p = MockProvider(fault_schema=1.0)
        content = _schema_violation(verdict_body(f"p{i}"))["choices"][0]["message"]["content"]
        data = json.loads(content)
        bad.add("process missing" if "process" not in data else f"score {data['outcome']['score']}")
        with pytest.raises(ValueError):
            rubric.parse_verdict(content)
        assert p._draw_fault() == "schema"
    assert bad == {"process missing", "score 150"}
    a, b = MockProvider(fault_500=0.3, fault_503=0.2, seed=7), MockProvider(fault_500=0.3, fault_503=0.2, seed=7)
    draws = [a._draw_fault() for _ in range(2000)]
    assert draws == [b._draw_fault() for _ in range(2000)]
    assert 500 < draws.count("500") < 700 and 320 < draws.count("503") < 480 and None in draws
    with pytest.raises(ValueError):
        MockOptions(fault_500=0.7, fault_stall=0.5)
    with pytest.raises(ValueError):
        MockOptions(fault_truncate=1.5)


def test_latency_distributions_are_seeded():
    def draws(**kw) -> list[float]:
        p = MockProvider(latency_ms=100, seed=3, **kw)
        return [p._latency_s() for _ in range(500)]

    assert set(draws()) == {0.1}
    u = draws(latency_dist="uniform", latency_jitter=20)
    assert u == draws(latency_dist="uniform", latency_jitter=20) and min(u) >= 0.08 and max(u) <= 0.12
    ln = sorted(draws(latency_dist="lognormal", latency_jitter=0.5))
    assert 0.085 < ln[250] < 0.115 and ln[-1] > 0.2  # median ~ 100 ms, long right tail


def test_duplicates_counted_and_stats_endpoint():
    with serve_in_thread() as url, httpx.Client(base_url=url, timeout=5) as client:
        for text in ("a", "b", "a", "a"):
            assert client.post("/chat/completions", json=verdict_body(text)).status_code == 200
        client.post("/chat/completions", content=b"{not json")
        stats = httpx.get(url.removesuffix("/v1") + "/_mock/stats").json()
    assert stats["duplicates"] == 2 and stats["unique_bodies"] == 3
    assert stats["requests"] == stats["chat_requests"] == 5  # /_mock/* is not counted
    assert stats["answered"] == 4 and stats["bad_requests"] == 1 and stats["status"] == {"200": 4, "400": 1}
    assert stats["total_tokens"] == stats["prompt_tokens"] + stats["completion_tokens"] > 0


def test_curator_probe_gets_400_with_limit_headers():
    with serve_in_thread(rpm=60, tpm=10_000) as url, httpx.Client(base_url=url, timeout=5) as client:
        r = client.post("/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
        stats = url.stats()
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["type"] == "invalid_request_error" and err["param"] == "messages" and err["code"] == "empty_array"
    assert r.headers["x-ratelimit-limit-requests"] == "60" and r.headers["x-ratelimit-limit-tokens"] == "10000"
    assert r.headers["x-ratelimit-remaining-requests"] == "60"  # the probe is not charged
    assert stats["probes"] == 1 and stats["rate_limited"] == 0


def test_start_mock_process_end_to_end(tmp_path: Path):
    log = tmp_path / "requests.jsonl"
    with start_mock_process(rpm=1, log=str(log), max_seconds=30) as url:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/v1")
        with httpx.Client(base_url=url, timeout=5) as client:
            assert client.post("/chat/completions", json=HELLO).status_code == 200
            r = client.post("/chat/completions", json=HELLO)
        assert r.status_code == 429 and r.headers["x-ratelimit-limit-requests"] == "1"
        live = url.stats()
        assert live["requests"] == 2 and live["rate_limited_requests"] == 1 and live["duplicates"] == 1
        assert url.final_stats is None
    assert url.proc.returncode == 0
    assert url.final_stats["requests"] == 2 and url.final_stats["status"] == {"200": 1, "429": 1}
    records = [json.loads(x) for x in log.read_text().splitlines()]
    assert [(x["status"], x["kind"]) for x in records] == [(200, "ok"), (429, "rate_limit_requests")]
    assert records[0]["sha256"] == records[1]["sha256"] and records[0]["path"] == "/v1/chat/completions"


def test_cli_rejects_bad_options(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["--fault-500", "0.8", "--fault-503", "0.8"])
    out, err = capsys.readouterr()
    assert ei.value.code == 2 and "sum to at most 1" in err and out == ""


def test_mock_verdict_shape_follows_the_requested_schema():
    """Protocol schema (has ``success``): the reasoning-first answer; an older schema
    without it (other users of the mock): the legacy ``{score, confidence, reason}`` one."""
    msgs = [{"role": "user", "content": "grade me"}]
    new = json.loads(answer({"messages": msgs, "response_format": {"type": "json_schema",
                                                                   "json_schema": rubric.VERDICT_SCHEMA}})
                     ["choices"][0]["message"]["content"])
    assert list(new["outcome"]) == ["evidence_steps", "reasoning", "score", "confidence"]
    assert rubric.parse_judgement(json.dumps(new)).success is not None
    legacy_schema = {"name": "streamgrade_verdict", "strict": True, "schema": {"type": "object", "properties": {}}}
    old = json.loads(answer({"messages": msgs, "response_format": {"type": "json_schema", "json_schema": legacy_schema}})
                     ["choices"][0]["message"]["content"])
    assert set(old["outcome"]) == {"score", "confidence", "reason"} and "success" not in old
