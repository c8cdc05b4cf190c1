"""Exports built from a real graded run (tau-bench, Harbor, Crafter, Clones), validated
against each consumer's rules, and loaded with Hugging Face `datasets` as trainers do."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import anyio
import pytest

from streamgrade.config import load_config
from streamgrade.exports.build import ExportOptions, NothingToExport, build_export
from streamgrade.exports.tools import source_key
from streamgrade.stats import pass_mark
from streamgrade.exports.dpo import check_openai_dpo
from streamgrade.exports.filters import ExportFilter
from streamgrade.exports.sharegpt import ShareGPTError, _split_thought, to_sharegpt, validate
from streamgrade.exports.store import load_graded
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.pipeline import Pipeline, scan_source

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
pytestmark = pytest.mark.skipif(not CORPUS.is_dir(), reason=f"shared corpus not found at {CORPUS}")


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("exports") / "out"
    cfg = load_config(env={})
    paths = [CORPUS / "tau-bench", CORPUS / "harbor", CORPUS / "crafter-balrog", ROOT / "examples" / "clones"]
    anyio.run(lambda: Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source(paths, exclude=[out])))
    return out


def _jsonl(path: Path) -> list[dict]:
    raw = path.read_bytes()
    assert raw.endswith(b"\n")
    return [json.loads(x) for x in raw.splitlines()]


def _load_with_datasets(path: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    os.environ["HF_DATASETS_OFFLINE"] = "1"
    return datasets.load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def _check_openai_messages(messages: list[dict]) -> None:
    """OpenAI chat shape, as TRL's SFTTrainer and OpenAI fine-tuning read it."""
    open_calls: set[str] = set()
    for m in messages:
        assert m["role"] in {"system", "user", "assistant", "tool"}, m
        if m["role"] == "assistant" and m.get("tool_calls"):
            for tc in m["tool_calls"]:
                assert tc["type"] == "function" and isinstance(tc["function"]["name"], str)
                assert isinstance(tc["function"]["arguments"], str)
                json.loads(tc["function"]["arguments"])  # a JSON string, not a dict
                open_calls.add(tc["id"])
        elif m["role"] == "tool":
            assert m["tool_call_id"] in open_calls, "tool result without its call"
            assert isinstance(m["content"], str)
        else:
            assert isinstance(m["content"], str)


def _passing(out: Path) -> set[str]:
    """The sessions the default SFT files keep, computed from the records: reward at least
    its source's pass mark (1.0 for 0/1 rewards, else the median), else score >= 50."""
    recs = [s.record for s in load_graded(out, with_messages=False)]
    rewards: dict[str, list[float]] = {}
    for r in recs:
        if r["reward"] is not None:
            rewards.setdefault(source_key(r), []).append(r["reward"])
    marks = {k: pass_mark(v, None) for k, v in rewards.items()}
    return {r["session_id"] for r in recs
            if (r["reward"] >= marks[source_key(r)] if r["reward"] is not None else r["score"] >= 50)}


def test_sft_chatml_rows_are_valid_and_load(out: Path, tmp_path: Path):
    rows = _jsonl(out / "exports" / "sft.chatml.jsonl")
    ids = {r["metadata"]["session_id"] for r in rows}
    passing = _passing(out)
    assert ids <= passing and len(ids) == len(rows) and len(rows) >= len(passing) - 12  # no-assistant sessions aside
    for row in rows:
        assert set(row) <= {"messages", "tools", "metadata"}
        assert set(row["metadata"]) == {"session_id", "source_format", "task_id", "score", "reward", "judge"}
        msgs = row["messages"]
        assert msgs[-1]["role"] == "assistant"
        assert all(m["content"] is not None for m in msgs)  # null content breaks DeepSeek-V3's template
        _check_openai_messages(msgs)
        for tool in row.get("tools", []):
            assert tool["type"] == "function" and "name" in tool["function"]
            assert isinstance(tool["function"]["parameters"], dict)
    tau = [r for r in rows if r["metadata"]["source_format"] == "openai-chat"]
    assert len(tau) == 84 and all(r["metadata"]["reward"] == 1.0 for r in tau)  # the failed runs do not train
    assert all(r["messages"][0]["content"].startswith("# Airline Agent Policy") for r in tau)
    # one tool list for the whole benchmark, never per trajectory: every function the dump calls
    lists = {json.dumps(r["tools"], sort_keys=True) for r in tau}
    assert len(lists) == 1
    names = {t["function"]["name"] for t in tau[0]["tools"]}
    called = {tc["function"]["name"] for s in load_graded(out) if s.record["source_format"] == "openai-chat"
              for m in s.messages for tc in m.get("tool_calls") or []}
    assert names == called and len(names) >= 10
    ds = _load_with_datasets(out / "exports" / "sft.chatml.jsonl", tmp_path)
    assert ds.num_rows == len(rows) and "messages" in ds.column_names


def test_sharegpt_rows_obey_llamafactory_rules_and_load(out: Path, tmp_path: Path):
    rows = _jsonl(out / "exports" / "sharegpt.jsonl")
    assert len(rows) >= 100
    for row in rows:
        validate(row)
        assert row["metadata"]["session_id"]
        assert isinstance(row["system"], str)
        if "tools" in row:
            assert isinstance(json.loads(row["tools"]), list)
        for turn in row["conversations"]:
            if turn["from"] == "function_call":
                call = json.loads(_split_thought(turn["value"])[1])
                assert all("name" in c and "arguments" in c for c in (call if isinstance(call, list) else [call]))
    ds = _load_with_datasets(out / "exports" / "sharegpt.jsonl", tmp_path)
    assert ds.num_rows == len(rows)


def test_sharegpt_converter_merges_and_rejects_with_reason():
    call = lambda i: {"id": f"c{i}", "type": "function", "function": {"name": "f", "arguments": json.dumps({"i": i})}}  # noqa: E731
    msgs = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": "let me look", "tool_calls": None},
        {"role": "assistant", "content": None, "tool_calls": [call(1)]},
        {"role": "assistant", "content": None, "tool_calls": [call(2)]},
        {"role": "tool", "tool_call_id": "c1", "content": "r1"},
        {"role": "tool", "tool_call_id": "c2", "content": "r2"},
        {"role": "assistant", "content": "done"},
        {"role": "user", "content": "thanks"},
    ]
    row = to_sharegpt(msgs)
    assert [t["from"] for t in row["conversations"]] == ["human", "function_call", "observation", "gpt"]
    thought, calls = _split_thought(row["conversations"][1]["value"])
    assert thought == "let me look"  # the assistant text that came with the calls is kept
    assert json.loads(calls) == [{"name": "f", "arguments": {"i": 1}}, {"name": "f", "arguments": {"i": 2}}]
    assert row["system"] == "sys"
    with pytest.raises(ShareGPTError, match="turn 0 is 'gpt'"):
        to_sharegpt([{"role": "assistant", "content": "I start"}, {"role": "user", "content": "x"},
                     {"role": "assistant", "content": "y"}])
    with pytest.raises(ShareGPTError, match="turn 2 is 'gpt'"):
        to_sharegpt([{"role": "user", "content": "u"}, {"role": "assistant", "content": None, "tool_calls": [call(1)]},
                     {"role": "assistant", "content": "text without the result"}])
    with pytest.raises(ShareGPTError, match="no conversation turns"):
        to_sharegpt([{"role": "user", "content": "only a question"}])


def _same_task(rec: dict) -> tuple:
    return rec["source_format"], rec["task_id"]


def test_dpo_step_pairs_share_their_prompt_and_follow_the_reward(out: Path, tmp_path: Path):
    # the run itself rebuilt dpo.jsonl at its end (step pairs): the same pairs as a rebuild
    at_end = _jsonl(out / "exports" / "dpo.jsonl")
    res = build_export(out, "dpo", ExportFilter(), dest=tmp_path / "again.jsonl")
    assert at_end == _jsonl(res.path) and res.rows == len(at_end) > 0
    # tau-bench's simulated user rewords its lines: its runs diverge at a user turn, never
    # at an assistant one, so they give no step pair, and the report says so
    assert res.reasons["diverge at a user turn"] >= 140
    recs = {s.session_id: s.record for s in load_graded(out, with_messages=False)}
    for row in at_end:
        meta = row["metadata"]
        c, r = recs[meta["chosen"]["session_id"]], recs[meta["rejected"]["session_id"]]
        assert _same_task(c) == _same_task(r) and c["session_id"] != r["session_id"]
        assert meta["pair"]["mode"] == "step" and meta["pair"]["diverge_at"] == len(row["prompt"])
        assert [m["role"] for m in row["chosen"]] == ["assistant"] == [m["role"] for m in row["rejected"]]
        assert any(m["role"] == "user" for m in row["prompt"])
        if c["reward"] is not None and r["reward"] is not None:
            assert c["reward"] >= r["reward"]
        _check_openai_messages(row["prompt"] + row["chosen"])
        _check_openai_messages(row["prompt"] + row["rejected"])
    ds = _load_with_datasets(res.path, tmp_path)
    assert {"prompt", "chosen", "rejected", "metadata"} <= set(ds.column_names)


def test_dpo_trajectory_pairs_of_tau_bench(out: Path, tmp_path: Path):
    opts = ExportOptions(flt=ExportFilter(formats=["openai-chat"]), pairs="trajectory")
    res = build_export(out, "dpo", dest=tmp_path / "t.jsonl", options=opts)
    rows = _jsonl(res.path)
    assert res.rows == len(rows) >= 100
    assert set(res.reasons) == {"format", "equal rewards and score gap"}  # other formats; ties the score cannot break
    for row in rows:
        c, r = row["metadata"]["chosen"], row["metadata"]["rejected"]
        assert c["task_id"] == r["task_id"] and c["reward"] >= r["reward"]
        assert row["prompt"][0]["content"].startswith("# Airline Agent Policy")
        for side in ("chosen", "rejected"):
            assert row[f"{side}_train"] == [m["role"] == "assistant" for m in row[side]]
            assert row[side][-1]["role"] == "assistant"
        assert len({json.dumps(r["tools"], sort_keys=True) for r in rows}) == 1  # the benchmark's one list
    ranked = Counter(r["metadata"]["pair"]["ranked_by"] for r in rows)
    assert ranked["reward"] >= 80 and set(ranked) <= {"reward", "score, rewards equal"}
    ds = _load_with_datasets(res.path, tmp_path)
    assert {"chosen_train", "rejected_train", "tools"} <= set(ds.column_names)


def test_openai_dpo_shape(out: Path, tmp_path: Path):
    res = build_export(out, "openai-dpo", ExportFilter(), dest=tmp_path / "o.jsonl")
    rows = _jsonl(res.path)
    assert rows
    for row in rows:
        assert check_openai_dpo(row) == []
        assert set(row) == {"input", "preferred_output", "non_preferred_output"}
        assert any(m["role"] == "user" for m in row["input"]["messages"])
        for side in ("preferred_output", "non_preferred_output"):
            assert len(row[side]) == 1 and row[side][0]["role"] == "assistant"
        assert row["preferred_output"] != row["non_preferred_output"]


def test_filters(out: Path, tmp_path: Path):
    every = lambda **kw: ExportOptions(flt=ExportFilter(**kw), pass_only=False)  # noqa: E731 - --all
    base = build_export(out, "sft", dest=tmp_path / "all.jsonl", options=every())
    passing = build_export(out, "sft", dest=tmp_path / "p.jsonl", options=ExportOptions())
    assert passing.rows < base.rows and passing.reasons  # the default leaves failed runs out, with reasons
    assert any(k.startswith("reward") for k in passing.reasons)
    only_pass = build_export(out, "sft", dest=tmp_path / "r.jsonl", options=every(min_reward=1.0, formats=["openai-chat"]))
    assert only_pass.rows == 84 < base.rows
    recs = {s.session_id: s.record for s in load_graded(out, with_messages=False)}
    cut = sorted(r["score"] for r in recs.values())[3 * len(recs) // 4]  # the upper quarter of scores
    high = build_export(out, "sft", dest=tmp_path / "s.jsonl", options=every(min_score=cut))
    assert high.rows == sum(1 for r in recs.values() if r["score"] >= cut and r["source_format"] != "clones-web"
                            and r["turns"] > 0) > 0
    crafter = build_export(out, "sft", dest=tmp_path / "c.jsonl", options=every(min_achievements=5, min_progression=0.2))
    assert 0 < crafter.rows < 160
    assert all(json.loads(x)["messages"] for x in (tmp_path / "c.jsonl").read_text().splitlines())
    short = build_export(out, "sft", dest=tmp_path / "t.jsonl", options=every(max_turns=40, require_termination=["completed"]))
    assert short.rows == sum(1 for r in recs.values() if r["termination"] == "completed" and r["turns"] <= 40) > 0
    with pytest.raises(NothingToExport, match="none passed"):
        build_export(out, "sft", ExportFilter(min_score=101), dest=tmp_path / "none.jsonl")
    assert not (tmp_path / "none.jsonl").exists()


def test_export_cli_nothing_to_export_exit_3_and_stats_json(out: Path, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    run = lambda *a: subprocess.run([sys.executable, "-m", "streamgrade", *a], capture_output=True, text=True, env=env)  # noqa: E731
    res = run("export", str(out), "--format", "sharegpt", "--min-score", "101", "-o", str(tmp_path / "x.jsonl"))
    assert res.returncode == 3 and "nothing to export" in res.stderr
    assert not (tmp_path / "x.jsonl").exists()
    res = run("export", str(out), "--format", "openai-dpo", "--source-format", "balrog-crafter")
    assert res.returncode == 0, res.stderr
    assert (out / "exports" / "rebuilt" / "dpo.openai.jsonl").exists()
    assert "dropped: diverge at a user turn" in res.stderr  # the reasons are printed
    res = run("export", str(out), "--format", "openai-dpo", "--pairs", "trajectory")
    assert res.returncode == 2 and "one assistant message per side" in res.stderr
    res = run("stats", str(out), "--json")
    assert res.returncode == 0, res.stderr
    st = json.loads(res.stdout)
    assert st["total"]["sessions"] == 381
    tau = st["by_format"]["openai-chat"]
    assert tau["with_reward"] == 200 and tau["reward_pass_rate"] == 0.42 and tau["auroc"] > 0.5
    assert st["by_task"]["openai-chat/0"]["sessions"] == 4
    assert Counter(k.split("/")[0] for k in st["by_task"])["openai-chat"] == 50
    res = run("stats", str(out))
    assert res.returncode == 0 and "openai-chat" in res.stdout and "AUROC" in res.stdout


def test_openai_sft_rows_pass_the_rules(out: Path, tmp_path: Path):
    from streamgrade.exports.openai_sft import check_openai_sft

    res = build_export(out, "openai-sft", dest=tmp_path / "o.jsonl", options=ExportOptions(pass_only=False))
    rows = _jsonl(res.path)
    assert len(rows) == res.rows > 300
    problems = {i: check_openai_sft(r) for i, r in enumerate(rows)}
    assert not any(problems.values()), {i: p for i, p in problems.items() if p}
    assert all(set(r) <= {"messages", "tools"} for r in rows)  # no metadata: OpenAI rejects unknown keys


def test_to_openai_sft_repairs_what_openai_rejects():
    from streamgrade.exports.openai_sft import check_openai_sft, to_openai_sft

    call = lambda cid, name, args: {"id": cid, "type": "function", "function": {"name": name, "arguments": args}}  # noqa: E731
    msgs = [{"role": "system", "content": "policy"}, {"role": "user", "content": "hi"},
            {"role": "assistant", "content": None, "tool_calls": [call("c", "get.user", '{"id": 1}')]},
            {"role": "tool", "tool_call_id": "c", "name": "get.user", "content": "u1"},
            {"role": "system", "content": "reminder: be brief"},
            {"role": "assistant", "content": "", "tool_calls": [call("c", "bash", "ls -la")]},  # the id again
            {"role": "tool", "tool_call_id": "c", "content": "a.txt"},
            {"role": "tool", "tool_call_id": "zzz", "content": "orphan"},
            {"role": "assistant", "content": "done"}, {"role": "user", "content": "thanks"}]
    tools = [{"type": "function", "function": {"name": "get.user", "description": "", "parameters": None}}]
    assert check_openai_sft({"messages": msgs, "tools": tools})  # the raw row breaks the rules
    row = to_openai_sft(msgs, tools)
    assert check_openai_sft(row) == []
    m = row["messages"]
    assert [x["role"] for x in m] == ["system", "user", "assistant", "tool", "user", "assistant", "tool", "user",
                                      "assistant"]
    assert m[4]["content"] == "[system] reminder: be brief" and "name" not in m[3]
    assert m[2]["tool_calls"][0]["id"] != m[5]["tool_calls"][0]["id"]
    assert json.loads(m[5]["tool_calls"][0]["function"]["arguments"]) == {"input": "ls -la"}
    assert {t["function"]["name"] for t in row["tools"]} == {"get_user", "bash"}
    assert all(isinstance(t["function"]["parameters"], dict) for t in row["tools"])


def test_exported_files_are_readable_by_others_and_metadata_can_be_left_out(out: Path, tmp_path: Path):
    for f in (out / "exports").glob("*.jsonl"):
        assert f.stat().st_mode & 0o777 == 0o644, f
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "export", str(out), "--format", "sft", "--no-metadata",
                          "--all", "-o", str(tmp_path / "plain.jsonl")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr
    rows = _jsonl(tmp_path / "plain.jsonl")
    assert rows and all("metadata" not in r for r in rows)
    assert (tmp_path / "plain.jsonl").stat().st_mode & 0o777 == 0o644
