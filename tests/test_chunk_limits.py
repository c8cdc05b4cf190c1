"""``[chunking] max_chunks``: a session too long for the cap is condensed (lines shortened,
then the middle elided with a marker line, head and tail kept) so that grading it takes at
most max_chunks + 1 judge requests; the prompts, the chunks and results.json say so. A
session within the cap is chunked exactly as before."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import respx

from conftest import schema_answerer
from streamgrade.chunking import action_lines, chunk_session, estimate_tokens
from streamgrade.config import ChunkingConfig, load_config
from streamgrade.errors import ConfigError
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.models import Action, ChatMessage, Session, SessionRef, ToolCall, ToolFunction
from streamgrade.pipeline import Pipeline, scan_source
from conftest import session_dirs

VERDICT = {"summary": "s", **{k: {"score": 50, "confidence": 0.5, "reason": "r"} for k in ("outcome", "process", "efficiency")}}
CHUNK = {"summary": "so far", "progress": [], "problems": []}
URL = "http://judge.test/v1/chat/completions"
POLICY = "# Shop policy\n" + "Never refund without an order id. " * 200  # ~6.8 KB
BLOCK = " ".join(f"line{i} status=ok bytes={i * 37 % 9973}" for i in range(1200))  # ~35 KB of text


def big_row(rounds: int = 500, result_chars: int = 22_000) -> dict:
    """An OpenAI-chat dump row of about ``rounds * result_chars`` bytes: a system policy, the
    task, then ``rounds`` x (assistant tool call, long tool result, short assistant note)."""
    traj = [{"role": "system", "content": POLICY}, {"role": "user", "content": "Find the failing job and fix it."}]
    for k in range(rounds):
        traj.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": f"c{k}", "type": "function", "function": {"name": "read_log", "arguments": json.dumps({"job": k})}}]})
        traj.append({"role": "tool", "tool_call_id": f"c{k}", "name": "read_log",
                     "content": f"log of job {k}: " + BLOCK[k % 97:][:result_chars]})
        traj.append({"role": "assistant", "content": f"Job {k} looks fine, next."})
    traj.append({"role": "assistant", "content": f"Fixed: job {rounds - 1} had a stale lock; removed it."})
    return {"task_id": 1, "trial": 0, "reward": 1.0, "traj": traj}


def session_of(row: dict) -> Session:
    msgs = []
    for m in row["traj"]:
        calls = [ToolCall(id=c["id"], function=ToolFunction(**c["function"])) for c in m.get("tool_calls") or []]
        msgs.append(ChatMessage(role=m["role"], content=m.get("content"), tool_calls=calls or None,
                                tool_call_id=m.get("tool_call_id"), name=m.get("name")))
    ref = SessionRef(session_id="big.task1.trial0", format="openai-chat", path="/data/big.json", files=("/data/big.json",))
    return Session(ref=ref, task=row["traj"][1]["content"], kind="agent", transcript=msgs)


def demo(n: int) -> Session:
    ref = SessionRef(session_id="demo", format="clones-desktop", path="/data/demo", files=())
    return Session(ref=ref, task="click around", duration_s=n / 10,
                   actions=[Action(kind="click", t_ms=i * 100, x=i % 1000, y=i % 700) for i in range(n)])


def test_max_chunks_default_documented_and_checked():
    assert ChunkingConfig().max_chunks == load_config(env={}).chunking.max_chunks == 24
    shipped = (Path(__file__).resolve().parents[1] / "configs" / "streamgrade.toml").read_text()
    assert "max_chunks = 24" in shipped
    with pytest.raises(ConfigError, match="chunking.max_chunks"):
        load_config(env={}, overrides={"chunking": {"max_chunks": 0}})


def test_small_session_is_chunked_as_before():
    s = demo(40)
    cfg = ChunkingConfig(max_tokens=64, max_chars=12000, max_chunks=24)
    chunks = chunk_session(s, cfg)
    assert 1 < len(chunks) <= 24
    assert [line for c in chunks for line in c.lines] == [line for _, line in action_lines(s)]
    assert all(c.omitted == 0 and c.line_chars == 0 for c in chunks)
    assert "chunking" not in s.meta


def test_long_lines_are_shortened_before_anything_is_omitted(caplog):
    row = big_row(rounds=20, result_chars=6000)  # 61 long-ish lines: ~32 chunks uncapped
    s = session_of(row)
    cfg = ChunkingConfig(max_chunks=8)
    with caplog.at_level(logging.WARNING, logger="streamgrade.chunking"):
        chunks = chunk_session(s, cfg)
    assert len(chunks) <= 8 and all(c.total == len(chunks) for c in chunks)
    lines = [line for c in chunks for line in c.lines]
    full = [line for _, line in action_lines(s)]
    assert len(lines) == len(full)  # nothing omitted
    assert lines[0] == full[0]  # the system policy kept whole
    cap = chunks[0].line_chars
    assert 0 < cap < 4000 and all(len(line) <= cap for line in lines[1:])
    assert any(line.endswith("…[cut]") for line in lines)
    assert all(c.omitted == 0 for c in chunks)
    assert all(c.tokens == estimate_tokens("\n".join(c.lines)) <= cfg.max_tokens for c in chunks)
    info = s.meta["chunking"]
    assert info["uncapped_chunks"] > 8 and info["line_chars"] == cap and info["omitted"] == 0
    assert "big.task1.trial0" in caplog.text and "chunking.max_chunks" in caplog.text


def test_many_short_actions_keep_head_and_tail_around_a_marker():
    s = demo(60_000)  # ~1.5 MB of short lines: shortening cannot help
    cfg = ChunkingConfig(max_chunks=5)
    chunks = chunk_session(s, cfg)
    assert len(chunks) <= 5
    lines = [line for c in chunks for line in c.lines]
    full = [line for _, line in action_lines(s)]
    markers = [line for line in lines if "omitted (chunking.max_chunks)" in line]
    assert len(markers) == 1
    omitted = sum(c.omitted for c in chunks)
    assert markers[0] == f"[... {omitted:,} actions omitted (chunking.max_chunks) ...]"
    at = lines.index(markers[0])
    assert lines[:at] == full[:at] and lines[at + 1:] == full[len(full) - (len(lines) - at - 1):]  # head, tail
    assert at > 100 and len(lines) - at - 1 > 100
    assert len(lines) - 1 + omitted == len(full)
    starts = [c.start_ms for c in chunks]
    assert starts == sorted(starts) and chunks[-1].end_ms == s.actions[-1].t_ms
    assert s.meta["chunking"]["omitted"] == omitted


@pytest.mark.asyncio
async def test_11_mb_trajectory_takes_at_most_max_chunks_plus_one_requests(tmp_path: Path):
    data = tmp_path / "data"
    data.mkdir()
    (data / "big.json").write_text(json.dumps([big_row(rounds=1600, result_chars=7000)]))  # 4,802 messages
    assert (data / "big.json").stat().st_size > 11_000_000
    out = tmp_path / "out"
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "rpm": 600_000,
                                                    "http_client": "httpx"}})
    bodies: list[dict] = []
    with respx.mock:
        respx.post(URL).mock(side_effect=schema_answerer(bodies, VERDICT, CHUNK))
        judge = OpenAIJudge(cfg, api_key="k")
        stats = await Pipeline(cfg, out, judge).run(scan_source([data], exclude=[out]))
        await judge.aclose()
    assert stats.graded == 1
    assert len(bodies) <= cfg.chunking.max_chunks + 1
    prompts = [b["messages"][1]["content"] for b in bodies]
    assert sum("messages omitted (chunking.max_chunks)" in p for p in prompts[:-1]) == 1  # the marker, once
    assert "Fixed: job 1599 had a stale lock" in "".join(prompts[:-1])  # the tail is kept
    assert "Never refund without an order id." in prompts[0]  # and the head
    assert "omitted" in prompts[-1] and "chunking.max_chunks" in prompts[-1]  # the verdict is told
    folder = session_dirs(out)[0]
    results = json.loads((folder / "results.json").read_text())
    assert len(results["chunks"]) <= cfg.chunking.max_chunks
    info = results["session"]["meta"]["chunking"]
    assert info["max_chunks"] == 24 and info["uncapped_chunks"] > 400 and info["omitted"] > 0
    assert json.loads((folder / "scores.json").read_text())["usage"]["requests"] == len(bodies)


@pytest.mark.parametrize("seed", range(12))
def test_cap_holds_and_nothing_disappears_silently(seed):
    import random

    rng = random.Random(seed)
    max_chunks = rng.choice([1, 2, 5, 24])
    cfg = ChunkingConfig(max_tokens=rng.choice([64, 500, 2000]), max_chars=rng.choice([256, 3000, 12000]),
                         max_chunks=max_chunks)
    row = {"traj": [{"role": "system", "content": POLICY[: rng.randint(10, 6000)]}, {"role": "user", "content": "task"}]}
    for k in range(rng.randint(0, 3000)):
        row["traj"].append({"role": rng.choice(["assistant", "tool"]), "name": "t", "tool_call_id": "c",
                            "content": BLOCK[: rng.choice([5, 50, 500, 5000])] + str(k)})
    s = session_of(row)
    chunks = chunk_session(s, cfg)
    limit = min(cfg.max_chars, cfg.max_tokens * 4)
    assert 1 <= len(chunks) <= max_chunks
    assert all(len("\n".join(c.lines)) <= limit and c.tokens <= cfg.max_tokens for c in chunks)
    full = [line for _, line in action_lines(s)]
    lines = [line for c in chunks for line in c.lines]
    omitted = sum(c.omitted for c in chunks)
    assert len(lines) - (1 if omitted else 0) + omitted == len(full)
    # every kept line is its original, or the original's start and a cut mark, in order
    def same(a: str, b: str) -> bool:
        return a == b or any(a.endswith(m) and b.startswith(a[: -len(m)]) for m in (" …[cut]", " …[line cut]"))

    at = next((i for i, line in enumerate(lines) if "omitted (chunking.max_chunks)" in line), len(lines))
    tail = lines[at + 1:]
    assert all(same(a, b) for a, b in zip(lines[:at], full))
    assert all(same(a, b) for a, b in zip(tail, full[len(full) - len(tail):]))
