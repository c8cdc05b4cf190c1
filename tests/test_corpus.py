"""The whole shared corpus through scan and the pipeline: every adapter detected
automatically, every session graded, rewards carried into scores.jsonl."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.pipeline import Pipeline, scan_source
from streamgrade.sources.scan import scan

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")
AGENT_DIRS = ["tau-bench", "harbor", "crafter-balrog"]


def test_scan_detects_every_format():
    counts = Counter(r.format for r in scan([CORPUS / "clones", *[CORPUS / d for d in AGENT_DIRS]]))
    assert counts == {"openai-chat": 200, "trace-rows": 7, "harbor": 5, "atif": 6, "balrog-crafter": 160,
                      "clones-desktop": 2, "clones-web": 1}


@pytest.mark.asyncio
async def test_grade_agent_corpus_with_rewards(tmp_path: Path):
    cfg = load_config(env={})
    out = tmp_path / "out"
    stats = await Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source([CORPUS / d for d in AGENT_DIRS], exclude=[out]))
    assert (stats.failed, stats.graded, stats.ungradable) == (0, 368, 10)  # 10 Crafter episodes without steps
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    by_fmt = Counter(r["source_format"] for r in recs)
    assert by_fmt == {"openai-chat": 200, "trace-rows": 7, "harbor": 5, "atif": 6, "balrog-crafter": 160}
    tau = [r for r in recs if r["source_format"] == "openai-chat"]
    assert Counter(r["reward"] for r in tau) == {0.0: 116, 1.0: 84}
    harbor = {r["session_id"]: r for r in recs if r["source_format"] == "harbor"}
    assert harbor["pyutils__line_profiler.a646bf0f.__hsfb47w"]["reward"] == 1.0
    assert harbor["mozilla__bleach.73871d76.func_ba__kwVZBCH"]["model"] == "MiniMax-M2.7"
    crafter = next(r for r in recs if r["session_id"] == "LLM.20241103_Claude-3.5-Sonnet.default_run_00")
    assert crafter["reward"] == pytest.approx(6.1)
    assert crafter["metrics"]["achievements"] == 7 and crafter["turns"] == 161  # actions 1-161: action 0 has no observation before it
    t0 = next(r for r in tau if r["session_id"] == "gpt-4o-airline.task0.trial0")
    assert (t0["task_id"], t0["trial"], t0["turns"], t0["tool_calls"]) == ("0", "0", 15, 8)
