"""Pairwise judging of two runs of one task, asked in both orders (respx), and the DPO
export's opt-in --rank-by pairwise."""

from __future__ import annotations

import json
import random
from pathlib import Path

import httpx
import pytest
import respx

from streamgrade.config import load_config
from streamgrade.errors import ConfigError
from streamgrade.exports.build import ExportOptions, NothingToExport, build_export
from streamgrade.exports.pairwise_rank import pairwise_preferer
from streamgrade.judges.openai import OpenAIJudge
from streamgrade.judges.pairwise import PairwiseJudge
from test_dpo import TOOLS, call, prefix, result, say, write_run

BASE = "http://judge.test/v1"
URL = BASE + "/chat/completions"


def config():
    return load_config(env={}, overrides={"openai": {"base_url": BASE, "max_retries": 0, "rpm": 600_000,
                                                     "http_client": "httpx"}})


def reply(better: str, confidence: float = 0.8) -> httpx.Response:
    content = json.dumps({"reasoning": "compared", "better": better, "confidence": confidence})
    return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": content}}],
                                     "usage": {"prompt_tokens": 50, "completion_tokens": 5}})


def runs_in(prompt: str) -> tuple[str, str]:
    """The first and second run blocks of a pairwise prompt."""
    first = prompt.split("First run:\n", 1)[1].split("\n\nSecond run:\n", 1)
    return first[0], first[1]


def prefers(marker: str):
    """A fair judge: prefers the run whose block holds ``marker``, whatever the order."""
    def respond(request: httpx.Request) -> httpx.Response:
        prompt = json.loads(request.content)["messages"][1]["content"]
        first, _ = runs_in(prompt)
        return reply("first" if marker in first else "second")
    return respond


GOOD = [{"role": "user", "content": "Cancel R1"}, {"role": "assistant", "content": "cancelled R1 as asked"}]
BAD = [{"role": "user", "content": "Cancel R1"}, {"role": "assistant", "content": "I refuse"}]


async def _sleep(_: float) -> None:
    return None


@pytest.mark.asyncio
async def test_both_orders_are_asked_and_a_consistent_answer_wins():
    judge = OpenAIJudge(config(), sleep=_sleep, rng=random.Random(0))
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=prefers("cancelled R1"))
        pref = await PairwiseJudge(judge).compare("Cancel R1", BAD, GOOD)
    await judge.aclose()
    assert route.call_count == 2
    prompts = [json.loads(c.request.content)["messages"][1]["content"] for c in route.calls]
    assert "I refuse" in runs_in(prompts[0])[0] and "I refuse" in runs_in(prompts[1])[1]  # (A, B) then (B, A)
    assert json.loads(route.calls[0].request.content)["response_format"]["json_schema"]["name"] == "streamgrade_pairwise"
    assert pref.winner == 1 and pref.consistent and pref.p_a == pytest.approx(0.1)
    assert pref.usage.requests == 2 and pref.usage.prompt_tokens == 100


@pytest.mark.asyncio
async def test_position_bias_gives_a_tie():
    judge = OpenAIJudge(config(), sleep=_sleep, rng=random.Random(0))
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=reply("first", 0.9))  # always the first shown
        pref = await PairwiseJudge(judge).compare("Cancel R1", BAD, GOOD)
    await judge.aclose()
    assert pref.winner is None and not pref.consistent and pref.p_a == pytest.approx(0.5)


def _two_unrewarded_runs(out: Path) -> None:
    good = prefix("call_a") + [call("call_a2", "cancel", rid="R1"), result("call_a2", "cancelled"), say("Done.")]
    bad = prefix("call_b") + [say("I cannot cancel bookings.")]
    write_run(out, "good", good, reward=None, score=50.0, tools=TOOLS)
    write_run(out, "bad", bad, reward=None, score=50.0, tools=TOOLS)  # equal scores: score ranking gives nothing


def test_dpo_export_ranks_by_pairwise_when_no_reward(tmp_path: Path):
    out = tmp_path / "out"
    _two_unrewarded_runs(out)
    with pytest.raises(NothingToExport):
        build_export(out, "dpo", dest=tmp_path / "s.jsonl", options=ExportOptions(rank_by="score"))
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=prefers('cancel({"rid": "R1"})'))
        with pairwise_preferer(config()) as prefer:
            res = build_export(out, "dpo", dest=tmp_path / "p.jsonl",
                               options=ExportOptions(rank_by="pairwise", prefer=prefer))
    assert route.call_count == 2
    row = json.loads(res.path.read_text().splitlines()[0])
    assert row["chosen"][0]["tool_calls"][0]["function"]["name"] == "cancel"
    assert row["metadata"]["pair"]["ranked_by"] == "pairwise (p=0.90)"


def test_dpo_export_pairwise_tie_gives_no_pair_and_needs_a_judge(tmp_path: Path):
    out = tmp_path / "out"
    _two_unrewarded_runs(out)
    with respx.mock() as mock:
        mock.post(URL).mock(return_value=reply("second"))
        with pairwise_preferer(config()) as prefer, pytest.raises(NothingToExport, match="no consistent preference"):
            build_export(out, "dpo", dest=tmp_path / "p.jsonl", options=ExportOptions(rank_by="pairwise", prefer=prefer))
    with pytest.raises(ConfigError, match="pairwise needs an LLM judge"):
        with pairwise_preferer(load_config(env={}), api_key=""):
            pass


def test_cli_export_rank_by_pairwise(tmp_path: Path, monkeypatch):
    from click.testing import CliRunner

    from streamgrade.cli import main

    out = tmp_path / "out"
    _two_unrewarded_runs(out)
    toml = tmp_path / "c.toml"
    toml.write_text(f'[openai]\nbase_url = "{BASE}"\nhttp_client = "httpx"\nmax_retries = 0\n')
    for var in ("STREAMGRADE_API_KEY", "OPENAI_API_KEY", "STREAMGRADE_BASE_URL", "OPENAI_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    dest = tmp_path / "p.jsonl"
    with respx.mock() as mock:
        route = mock.post(URL).mock(side_effect=prefers('cancel({"rid": "R1"})'))
        res = CliRunner().invoke(main, ["export", str(out), "--format", "dpo", "--rank-by", "pairwise",
                                        "--config", str(toml), "-o", str(dest)])
    assert res.exit_code == 0, res.output
    assert route.call_count == 2 and len(dest.read_text().splitlines()) == 1
    # without a judge configured: a usage error, nothing sent
    res = CliRunner().invoke(main, ["export", str(out), "--format", "dpo", "--rank-by", "pairwise",
                                    "-o", str(dest)])
    assert res.exit_code == 2 and "needs an LLM judge" in res.output
