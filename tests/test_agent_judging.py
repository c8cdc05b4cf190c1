"""Agent trajectories reach the LLM judge with the agent rubric, delimited as untrusted data,
and without the reward or the reference actions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import respx

from streamgrade.chunking import chunk_session
from conftest import schema_answerer
from streamgrade.config import load_config
from streamgrade.formats import FORMATS
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.judges.rubric import AGENT_SYSTEM_PROMPT
from streamgrade.sources.scan import scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")

VERDICT = {"summary": "s", **{k: {"score": 50, "confidence": 0.5, "reason": "r"} for k in ("outcome", "process", "efficiency")}}
CHUNK = {"summary": "so far", "progress": [], "problems": []}


def _tau_session(task: str, trial: str, cfg):
    ref = next(r for r in scan([CORPUS / "tau-bench"]) if r.session_id == f"gpt-4o-airline.task{task}.trial{trial}")
    return FORMATS[ref.format].assemble(ref, cfg)


@pytest.mark.asyncio
async def test_prompt_has_agent_rubric_and_no_reward_or_reference_actions():
    cfg = load_config(env={}, overrides={"openai": {"base_url": "http://judge.test/v1", "http_client": "httpx"}})
    rows = json.loads((CORPUS / "tau-bench" / "gpt-4o-airline.json").read_text())
    row = next(r for r in rows if r["task_id"] == 5 and r["trial"] == 0)
    session = _tau_session("5", "0", cfg)
    assert session.reward == row["reward"]
    chunks = chunk_session(session, cfg.chunking)
    bodies = []

    answer = schema_answerer(bodies, VERDICT, CHUNK)

    with respx.mock:
        respx.post("http://judge.test/v1/chat/completions").mock(side_effect=answer)
        judge = OpenAIJudge(cfg, api_key="k")
        verdict = await judge.grade(session, chunks)
        await judge.aclose()
    assert len(bodies) == len(chunks) + (1 if len(chunks) > 1 else 0)
    assert verdict.components["outcome"].score == 50
    text = "\n".join(m["content"] for b in bodies for m in b["messages"])
    assert all(b["messages"][0]["content"] == AGENT_SYSTEM_PROMPT for b in bodies)
    assert '<session_data id="' in text and '</session_data id="' in text
    assert "# Airline Agent Policy" in text  # the policy the agent had to follow
    assert "reward" not in text.lower().replace("rewards program", "")
    assert row["info"]["task"]["instruction"] not in text  # the simulated user's hidden script
    for action in row["info"]["task"]["actions"]:  # the reference actions, as serialised in the row
        assert json.dumps(action) not in text and json.dumps(action["kwargs"]) not in text


def test_heuristic_agent_judge_ignores_reward():
    cfg = load_config(env={})
    s = _tau_session("0", "0", cfg)
    v1 = HeuristicJudge(cfg).grade_sync(s, chunk_session(s, cfg.chunking))
    s.reward = 1.0 - (s.reward or 0.0)
    v2 = HeuristicJudge(cfg).grade_sync(s, chunk_session(s, cfg.chunking))
    assert v1.components == v2.components
