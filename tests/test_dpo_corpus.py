"""Preference pairs on a graded run of the shared corpus (tau-bench, Harbor, Crafter/BALROG,
the Clones examples, OWA, SWE-agent, mini-swe-agent, OpenHands output, Terminal-Bench),
both ways of cutting them, checked against the sessions they come from and loaded with
Hugging Face `datasets`."""

from __future__ import annotations

import json
import os
from collections import Counter
from math import comb
from pathlib import Path

import anyio
import pytest

from streamgrade.config import load_config
from streamgrade.exports.build import ExportOptions, build_export
from streamgrade.exports.dpo import check_openai_dpo, group_key, write_pairs
from streamgrade.exports.filters import ExportFilter
from streamgrade.exports.pairs import canon
from streamgrade.exports.store import load_graded
from streamgrade.exports.tools import source_key
from streamgrade.exports.training import Built, chat_messages, first_pass
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.pipeline import Pipeline, scan_source

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
FOLDERS = ["tau-bench", "harbor", "crafter-balrog", "owa", "swe-agent", "mini-swe-agent", "openhands-output",
           "terminal-bench"]
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")

# candidates dropped before any pair is made: they are runs or tasks, not pairs
NOT_PAIRS = {"a task with one graded run", "a run has no assistant turn", "a run's files missing or broken"}


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("dpo") / "out"
    cfg = load_config(env={})
    paths = [CORPUS / f for f in FOLDERS] + [ROOT / "examples" / "clones"]
    anyio.run(lambda: Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source(paths, exclude=[out])))
    return out


@pytest.fixture(scope="module")
def runs(out: Path) -> dict:
    return {gs.session_id: gs for gs in load_graded(out)}


def _rows(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines()]


def _load(path: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def _candidates(runs: dict) -> int:
    """Candidate pairs: two runs of one task, each with an assistant turn."""
    tasks = Counter(group_key(gs) for gs in runs.values() if any(m["role"] == "assistant" for m in gs.messages))
    return sum(comb(n, 2) for n in tasks.values())


@pytest.mark.parametrize("mode", ["step", "trajectory"])
def test_every_pair_shares_its_prompt_and_follows_the_reward(out: Path, runs: dict, tmp_path: Path, mode: str):
    res = build_export(out, "dpo", dest=tmp_path / "dpo.jsonl", options=ExportOptions(pairs=mode))
    rows = _rows(res.path)
    sources: dict[str, bool] = {}  # does the source declare or call tools?
    for gs in runs.values():
        key = source_key(gs.record)
        sources[key] = sources.get(key, False) or bool(gs.tools) or any(m.get("tool_calls") for m in gs.messages)
    assert res.rows == len(rows) > 0
    for row in rows:
        meta = row["metadata"]
        c, r = runs[meta["chosen"]["session_id"]], runs[meta["rejected"]["session_id"]]
        assert group_key(c) == group_key(r) and c.session_id != r.session_id
        k = meta["pair"]["diverge_at"]
        assert k == len(row["prompt"]) > 0
        # the one prompt is both runs' own opening (modulo ids and whitespace), and each side
        # is what its own run did next
        assert canon(row["prompt"]) == canon(chat_messages(c)[:k]) == canon(chat_messages(r)[:k])
        assert canon(row["chosen"]) == canon(chat_messages(c)[k: k + len(row["chosen"])])
        assert canon(row["rejected"]) == canon(chat_messages(r)[k: k + len(row["rejected"])])
        assert canon(row["chosen"]) != canon(row["rejected"])
        if c.record["reward"] is not None and r.record["reward"] is not None:
            assert c.record["reward"] >= r.record["reward"]
            if meta["pair"]["ranked_by"] == "reward":
                assert c.record["reward"] > r.record["reward"]
        else:
            assert c.record["score"] - r.record["score"] >= 10
        if mode == "step":
            assert len(row["chosen"]) == len(row["rejected"]) == 1 == len({row["chosen"][0]["role"], "assistant"})
        else:
            for side in ("chosen", "rejected"):
                assert row[f"{side}_train"] == [m["role"] == "assistant" for m in row[side]]
                assert row[side][-1]["role"] == "assistant"
        calls = any(m.get("tool_calls") for m in row["prompt"] + row["chosen"] + row["rejected"])
        assert bool(row.get("tools")) == (sources[source_key(c.record)] or sources[source_key(r.record)])
        if calls:
            assert {tc["function"]["name"] for m in row["prompt"] + row["chosen"] + row["rejected"]
                    for tc in m.get("tool_calls") or []} <= {t["function"]["name"] for t in row["tools"]}
    # every candidate pair is written or dropped with a reason
    pair_drops = sum(n for kind, n in res.reasons.items() if kind not in NOT_PAIRS)
    assert res.rows + pair_drops == _candidates(runs)
    ds = _load(res.path, tmp_path)
    assert ds.num_rows == len(rows) and {"prompt", "chosen", "rejected", "metadata"} <= set(ds.column_names)


def test_step_mode_says_why_tau_bench_and_crafter_give_no_step_pair(out: Path):
    tools, _ = first_pass(out, ExportFilter(), None)
    for fmt, least in (("openai-chat", 300), ("balrog-crafter", 600)):
        built = Built("dpo")
        write_pairs(out, "dpo", lambda row: None, built, tools=tools, flt=ExportFilter(formats=[fmt]))
        # every two tau-bench runs of a task (50 tasks x 6 pairs) first differ at a user
        # turn: the simulated user rewords its lines; Crafter's seeds give other first
        # observations (but for the few episodes that share an opening)
        assert built.rejected.by_reason["diverge at a user turn"] >= least, fmt


def test_openai_dpo_rows_pass_the_preference_rules(out: Path, runs: dict, tmp_path: Path):
    res = build_export(out, "openai-dpo", dest=tmp_path / "o.jsonl", options=ExportOptions())
    rows = _rows(res.path)
    assert rows
    for row in rows:
        assert check_openai_dpo(row) == []
        assert row["preferred_output"] != row["non_preferred_output"]
    ds = _load(res.path, tmp_path)
    assert ds.num_rows == len(rows)
