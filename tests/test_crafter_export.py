"""BALROG Crafter episodes end to end, as a user runs them: `streamgrade grade` on two
corpus episodes, then `streamgrade export --format sft`: the training rows hold BALROG's
instruction prompt and each action follows the observation the agent saw before it."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from streamgrade.formats.crafter import INSTRUCTION_PROMPT

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "crafter-balrog" / "submissions"
SONNET = CORPUS / "LLM" / "20241103_Claude-3.5-Sonnet" / "crafter" / "default"
GROK4 = CORPUS / "LLM" / "20250713_naive_grok-4" / "crafter" / "default"
pytestmark = pytest.mark.skipif(not SONNET.is_dir(), reason=f"Crafter corpus not present at {CORPUS}")

ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def _cli(*args: str, config: Path | None = None) -> subprocess.CompletedProcess:
    extra = ["--config", str(config)] if config else []
    return subprocess.run([sys.executable, "-m", "streamgrade", *args, *extra], capture_output=True, text=True,
                          env=ENV, timeout=120)


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def _graded(tmp_path: Path, config: Path | None = None) -> Path:
    """Two episodes (older and newer CSV) laid out as in the corpus, graded offline."""
    data, out = tmp_path / "data", tmp_path / "out"
    for src, sub in ((SONNET, "20241103_Claude-3.5-Sonnet"), (GROK4, "20250713_naive_grok-4")):
        dest = data / "LLM" / sub / "crafter" / "default"
        dest.mkdir(parents=True)
        for n in ("default_run_00.json", "default_run_00.csv"):
            shutil.copy(src / n, dest / n)
    res = _cli("grade", str(data), "-o", str(out), "--judge", "heuristic", "--no-progress", config=config)
    assert res.returncode == 0, res.stderr
    return out


def _sft(out: Path, tmp_path: Path, config: Path | None = None) -> list[list[dict]]:
    dest = tmp_path / "sft.jsonl"
    res = _cli("export", str(out), "--format", "sft", "-o", str(dest), config=config)
    assert res.returncode == 0, res.stderr
    rows = [json.loads(x)["messages"] for x in dest.read_text().splitlines()]
    assert len(rows) == 2
    for r in rows:
        assert r[0] == {"role": "system", "content": INSTRUCTION_PROMPT}
    return rows


def test_sft_rows_pair_each_action_with_the_state_before_it(tmp_path: Path):
    out = _graded(tmp_path)
    rows = _sft(out, tmp_path)
    sonnet = _rows(SONNET / "default_run_00.csv")
    msgs = next(m for m in rows if m[1]["content"] == sonnet[0]["Observation"])
    # the first user turn (row 0's observation: the state after the unrecorded action 0)
    # precedes the first action (row 1's), and each action is answered by its own result
    assert [m["role"] for m in msgs[:4]] == ["system", "user", "assistant", "user"]
    assert msgs[2]["content"] == sonnet[1]["Action"] and msgs[3]["content"] == sonnet[1]["Observation"]
    # step 40 "Place Table": the user turn before it has no table yet (row 39), after it has one
    k = 2 + 2 * (40 - 1)
    assert msgs[k]["content"] == "Place Table" and msgs[k - 1]["content"] == sonnet[39]["Observation"]
    assert "table" not in msgs[k - 1]["content"] and "table" in msgs[k + 1]["content"]
    assert msgs[-1]["role"] == "assistant" and msgs[-1]["content"] == sonnet[-1]["Action"]
    assert sum(m["role"] == "assistant" for m in msgs) == len(sonnet) - 1
    # grok-4: 12 empty outputs (BALROG ran Noop) are not training targets
    grok = next(m for m in rows if m is not msgs)
    assert not any(m["content"] == "(no valid action)" for m in grok)
    assert not any("Defaulted to action" in m["content"] for m in grok)
    scores = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    g = next(s for s in scores if "grok-4" in s["session_id"])
    assert g["metrics"]["invalid_actions"] == 12 == g["metrics"]["dropped_invalid_actions"]


def test_keep_invalid_actions_switch(tmp_path: Path):
    cfg = tmp_path / "keep.toml"
    cfg.write_text("[formats.crafter]\nkeep_invalid_actions = true\n")
    out = _graded(tmp_path, cfg)
    rows = _sft(out, tmp_path, cfg)
    grok = _rows(GROK4 / "default_run_00.csv")
    msgs = next(m for m in rows if m[1]["content"] == grok[0]["Observation"])
    assert msgs[2]["content"] == "(no valid action)"  # step 1, kept
    assert msgs[3]["content"] == grok[1]["Observation"] and "Defaulted to action: Noop" in msgs[3]["content"]
    assert sum(m["content"] == "(no valid action)" for m in msgs) == 12
