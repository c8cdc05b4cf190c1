"""Preference pairs from handmade task groups: where two runs diverge, which side wins, what
is dropped and why (streamgrade.exports.pairs and .dpo), without the corpus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import ConfigError
from streamgrade.exports.build import ExportOptions, NothingToExport, build_export
from streamgrade.exports.dpo import TaskGroups, check_openai_dpo, group_key
from streamgrade.exports.pairs import PairError, canon, cut, rank, renumber
from streamgrade.exports.store import load_graded

SYSTEM = {"role": "system", "content": "You are an airline agent. Follow the policy."}
TOOLS = [{"type": "function", "function": {"name": "get_user", "description": "Look a user up.",
                                           "parameters": {"type": "object", "properties": {"id": {"type": "string"}}}}},
         {"type": "function", "function": {"name": "cancel", "description": "Cancel a booking.",
                                           "parameters": {"type": "object", "properties": {"rid": {"type": "string"}}}}}]


def user(text: str) -> dict:
    return {"role": "user", "content": text}


def say(text: str) -> dict:
    return {"role": "assistant", "content": text}


def call(cid: str, name: str, **args) -> dict:
    return {"role": "assistant", "content": None,
            "tool_calls": [{"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]}


def result(cid: str, text: str) -> dict:
    return {"role": "tool", "tool_call_id": cid, "content": text}


def write_run(out: Path, sid: str, messages: list[dict], *, reward: float | None, score: float, task: str = "t1",
              fmt: str = "openai-chat", model: str = "m", source: str = "/data/bench/runs.json",
              tools: list[dict] | None = None) -> None:
    """A graded session folder as a grade run leaves it (scores.json, results.json, sft.json)."""
    d = out / "sessions" / sid
    d.mkdir(parents=True)
    rec = {"session_id": sid, "status": "graded", "source_format": fmt, "source_path": source, "task_id": task,
           "model": model, "score": score, "reward": reward, "judge": {"kind": "heuristic", "model": None}}
    (d / "scores.json").write_text(json.dumps(rec))
    (d / "results.json").write_text(json.dumps({"session": {"kind": "agent", "task": f"task {task}"}}))
    (d / "sft.json").write_text(json.dumps({"messages": messages, "tools": tools or []}))


def prefix(ids: str) -> list[dict]:
    """A shared opening with two assistant turns: a lookup (tool call) and a question."""
    return [SYSTEM, user("Cancel my booking, please."), call(f"{ids}1", "get_user", id="u1"),
            result(f"{ids}1", '{"bookings": ["R1"]}'), say("Which booking: R1?"), user("R1.")]


def export(out: Path, tmp_path: Path, fmt: str = "dpo", **kw):
    res = build_export(out, fmt, dest=tmp_path / f"{fmt}.jsonl", options=ExportOptions(**kw))
    rows = [json.loads(x) for x in res.path.read_text().splitlines()]
    return res, rows


def test_runs_diverging_at_the_third_assistant_turn_give_that_turn(tmp_path: Path):
    out = tmp_path / "out"
    good = prefix("call_a") + [call("call_a2", "cancel", rid="R1"), result("call_a2", "cancelled"), say("Done.")]
    # the same opening with other ids and whitespace, then a wrong third turn
    bad = prefix("toolu_") + [say("I cannot cancel bookings.")]
    bad[4] = say("Which booking: R1?  \n\n\n")
    write_run(out, "good", good, reward=1.0, score=20.0, tools=TOOLS)
    write_run(out, "bad", bad, reward=0.0, score=90.0, tools=TOOLS)  # the judge prefers it: the reward decides
    res, rows = export(out, tmp_path)
    assert res.rows == 1 and not res.reasons
    row = rows[0]
    assert [m["role"] for m in row["prompt"]] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert row["prompt"][2]["tool_calls"][0]["id"] == row["prompt"][3]["tool_call_id"] == "call_0"  # renumbered
    assert row["chosen"] == [{"role": "assistant", "content": "", "tool_calls": [
        {"id": "call_1", "type": "function", "function": {"name": "cancel", "arguments": '{"rid": "R1"}'}}]}]
    assert row["rejected"] == [say("I cannot cancel bookings.")]
    assert row["tools"] == sorted(TOOLS, key=lambda t: t["function"]["name"])  # the source's declared list
    assert row["metadata"]["pair"] == {"mode": "step", "ranked_by": "reward", "diverge_at": 6, "turn": 3}
    assert row["metadata"]["chosen"]["session_id"] == "good" and row["metadata"]["rejected"]["reward"] == 0.0
    # OpenAI's preference shape: the same cut, strict rules, no metadata
    res, rows = export(out, tmp_path, "openai-dpo")
    assert res.rows == 1 and check_openai_dpo(rows[0]) == []
    assert rows[0]["input"]["messages"][-1] == user("R1.")
    assert rows[0]["preferred_output"][0]["tool_calls"][0]["function"]["name"] == "cancel"
    assert {t["function"]["name"] for t in rows[0]["input"]["tools"]} == {"get_user", "cancel"}
    # --rank-by score: the judge prefers "bad", the reward says otherwise: never against it
    with pytest.raises(NothingToExport, match="score contradicts the reward"):
        export(out, tmp_path, rank_by="score")


def test_sides_that_differ_only_in_ids_and_whitespace_are_no_pair(tmp_path: Path):
    out = tmp_path / "out"
    a = prefix("call_") + [call("call_9", "cancel", rid="R1"), result("call_9", "ok")]
    b = prefix("toolu_") + [call("toolu_x", "cancel", rid="R1"), result("toolu_x", "ok\n")]
    b[1] = user("  Cancel my booking, please.\r\n")
    write_run(out, "a", a, reward=1.0, score=80.0)
    write_run(out, "b", b, reward=0.0, score=10.0)
    for mode in ("step", "trajectory"):
        with pytest.raises(NothingToExport, match="identical up to ids and whitespace"):
            export(out, tmp_path, pairs=mode)
    # indentation is not whitespace to ignore: a different edit is a different action
    assert canon([say("if x:\n    y()")]) != canon([say("if x:\n        y()")])
    assert canon([say("a\r\n\n\n\nb  ")]) == canon([say("a\n\nb")])


def test_a_simulated_user_that_rewords_gives_no_step_pair_but_a_trajectory_pair(tmp_path: Path):
    out = tmp_path / "out"
    # tau-bench: the simulated user words its first line differently in each trial
    write_run(out, "t0", [SYSTEM, user("Hi, cancel booking R1."), call("c1", "cancel", rid="R1"),
                          result("c1", "ok"), say("Cancelled."), user("thanks")], reward=1.0, score=50.0)
    write_run(out, "t1", [SYSTEM, user("Hello! I'd like to cancel R1."), say("Sorry, I cannot."),
                          user("Please?"), say("No.")], reward=0.0, score=50.0)
    with pytest.raises(NothingToExport, match="diverge at a user turn"):
        export(out, tmp_path)
    res, rows = export(out, tmp_path, pairs="trajectory")
    row = rows[0]
    assert row["prompt"] == [SYSTEM]
    assert [m["role"] for m in row["chosen"]] == ["user", "assistant", "tool", "assistant"]  # ends on the model
    assert row["chosen_train"] == [False, True, False, True]
    assert row["rejected_train"] == [False, True, False, True]
    assert row["metadata"]["pair"]["mode"] == "trajectory" and row["metadata"]["pair"]["diverge_at"] == 1


def test_crafter_seeds_share_only_the_system_prompt(tmp_path: Path):
    out = tmp_path / "out"
    sys_msg = {"role": "system", "content": "Crafter. Goal: unlock achievements. Actions: Noop, Move West, Do."}
    for i, (obs, act, reward) in enumerate([("tree to your west", "Move West", 5.1), ("water to your north", "Noop", 2.1)]):
        write_run(out, f"seed{i}", [sys_msg, user(f"You see: {obs}"), say(act), user("You see: grass"), say("Do")],
                  reward=reward, score=70.0, fmt="balrog-crafter", task="crafter/default",
                  source=f"/data/crafter/run_{i}.json")
    with pytest.raises(NothingToExport, match="diverge at a user turn"):
        export(out, tmp_path)
    res, rows = export(out, tmp_path, pairs="trajectory")
    assert rows[0]["prompt"] == [sys_msg] and rows[0]["metadata"]["chosen"]["session_id"] == "seed0"
    assert "tools" not in rows[0]  # the source calls no tools


def test_ranking_rules(tmp_path: Path):
    def rec(reward, score):
        return {"reward": reward, "score": score}

    assert rank(rec(1.0, 10), rec(0.0, 95)) == (0, "reward")  # the reward wins over the judge
    assert rank(rec(0.0, 95), rec(1.0, 10)) == (1, "reward")
    assert rank(rec(1.0, 80), rec(1.0, 60), min_gap=10) == (0, "score, rewards equal")  # a tie the score breaks
    with pytest.raises(PairError, match="equal rewards and score gap 5.0 below 10"):
        rank(rec(1.0, 65), rec(1.0, 60), min_gap=10)
    with pytest.raises(PairError, match="equal rewards"):
        rank(rec(12.1, 90), rec(12.100000000000001, 20), min_gap=100)  # float noise is a tie
    assert rank(rec(12.1, 90), rec(12.100000000000001, 20))[1] == "score, rewards equal"
    assert rank(rec(None, 30), rec(None, 70)) == (1, "score")  # no reward: the score
    assert rank(rec(1.0, 30), rec(None, 70)) == (1, "score")  # a side without reward: the score
    with pytest.raises(PairError, match="unrewarded side and score gap"):
        rank(rec(None, 30), rec(None, 35))
    assert rank(rec(1.0, 90), rec(0.0, 10), by="score") == (0, "score")
    with pytest.raises(PairError, match="score contradicts the reward"):
        rank(rec(0.0, 90), rec(1.0, 10), by="score")
    with pytest.raises(PairError, match="score gap 0.0 below 0"):
        rank(rec(1.0, 50), rec(1.0, 50), min_gap=0)  # chosen strictly above rejected


def test_duplicates_and_contradictions_within_a_task_are_dropped(tmp_path: Path):
    out = tmp_path / "out"
    p = [SYSTEM, user("Cancel R1.")]
    x, y = call("c", "cancel", rid="R1"), say("I cannot do that.")
    write_run(out, "a", p + [x], reward=1.0, score=50.0)
    write_run(out, "b", p + [y], reward=0.0, score=50.0)
    write_run(out, "c", p + [y], reward=0.0, score=50.0)  # the same as b: a>b and a>c give one pair
    res, rows = export(out, tmp_path)
    assert res.rows == 1 and rows[0]["metadata"]["rejected"]["session_id"] == "b"
    assert res.reasons == {"duplicate of another pair": 1, "identical up to ids and whitespace:": 1}  # b and c
    write_run(out, "d", p + [y], reward=1.0, score=50.0)  # y won here and x lost: x over y and y over x
    write_run(out, "e", p + [x], reward=0.0, score=50.0)
    with pytest.raises(NothingToExport, match=r"contradicted by another pair \(3\)"):
        export(out, tmp_path)


def test_task_groups_and_options(tmp_path: Path):
    out = tmp_path / "out"
    p = [SYSTEM, user("Cancel R1.")]
    write_run(out, "h1", p + [say("A")], reward=1.0, score=50.0, source="/d/hf.jsonl")
    write_run(out, "t1", p + [say("B")], reward=0.0, score=50.0, source="/d/tf.jsonl")
    write_run(out, "h2", p + [say("C")], reward=0.0, score=50.0, task="t2")
    write_run(out, "empty", [], reward=0.0, score=50.0)
    runs = {gs.session_id: gs for gs in load_graded(out, with_messages=False, with_task=True)}
    assert group_key(runs["h1"]) == group_key(runs["t1"]) == ("openai-chat", "t1", "m") != group_key(runs["h2"])
    fields = ["source_format", "source_file", "task_id", "model"]
    assert group_key(runs["h1"], fields) != group_key(runs["t1"], fields)  # e.g. OpenHands' hf/tf/torch hubs
    groups = TaskGroups(fields)
    for gs in runs.values():
        groups.add(gs)
    assert sorted(len(g) for _, g in groups) == [1, 1, 1, 1]
    with pytest.raises(ValueError, match="unknown fields"):
        TaskGroups(["task_id", "colour"])
    res, rows = export(out, tmp_path, metadata=False)
    assert res.rows == 1 and "metadata" not in rows[0]
    assert res.reasons["a run has no assistant turn"] == 1 and res.reasons["a task with one graded run"] == 1
    with pytest.raises(NothingToExport, match="a task with one graded run"):
        export(out, tmp_path, group_by=tuple(fields))


def test_cut_and_renumber_units():
    a = [SYSTEM, user("u"), say("x"), user("v"), say("y")]
    b = [SYSTEM, user("u"), say("x"), user("v"), say("z"), user("w")]
    c = cut(canon(a), canon(b), "step")
    assert (c.at, c.chosen_end, c.rejected_end, c.turn) == (4, 5, 5, 2)
    t = cut(canon(a), canon(b), "trajectory")
    assert (t.at, t.chosen_end, t.rejected_end) == (4, 5, 5)  # b's trailing user turn dropped
    with pytest.raises(PairError, match="one run is a prefix of the other"):
        cut(canon(a[:3]), canon(a), "step")
    with pytest.raises(PairError, match="no user message before the divergence"):
        cut(canon([SYSTEM, say("x")]), canon([SYSTEM, say("y")]), "step")
    with pytest.raises(PairError, match="diverge at a tool result"):
        cut(canon([user("u"), call("1", "f"), result("1", "a"), say("x")]),
            canon([user("u"), call("2", "f"), result("2", "b"), say("x")]), "step")
    msgs = renumber([call("zz", "f"), result("zz", "r"), call("zz", "f"), result("zz", "s"), result("orphan", "t")])
    assert [m.get("tool_call_id") or m["tool_calls"][0]["id"] for m in msgs] == [
        "call_0", "call_0", "call_1", "call_1", "orphan"]


def test_config_and_cli_options(tmp_path: Path):
    cfg = load_config(env={})
    assert (cfg.exports.dpo_pairs, cfg.exports.dpo_rank_by, cfg.exports.dpo_group_by) == (
        "step", "reward", ["source_format", "task_id", "model"])
    toml = tmp_path / "c.toml"
    toml.write_text('[exports]\ndpo_pairs = "trajectory"\ndpo_rank_by = "score"\n')
    opts = ExportOptions.from_config(load_config(toml, env={}).exports)
    assert (opts.pairs, opts.rank_by) == ("trajectory", "score")
    toml.write_text('[exports]\ndpo_pairs = "episodes"\n')
    with pytest.raises(ConfigError, match="dpo_pairs"):
        load_config(toml, env={})
    toml.write_text('[exports]\ndpo_group_by = ["task_id", "colour"]\n')
    with pytest.raises(ConfigError, match="dpo_group_by"):
        load_config(toml, env={})


def test_memory_stays_flat_one_task_at_a_time(tmp_path: Path):
    """600 runs of 300 tasks, each with 20 kB of messages (12 MB in all): making the pairs
    holds one task's runs at a time, so the peak stays far below what holding them all takes."""
    import tracemalloc

    from streamgrade.exports.dpo import write_pairs
    from streamgrade.exports.filters import ExportFilter
    from streamgrade.exports.tools import SourceTools
    from streamgrade.exports.training import Built

    out = tmp_path / "out"
    page = "observation line\n" * 1200  # ~20 kB
    for t in range(300):
        for i, reward in enumerate((1.0, 0.0)):
            write_run(out, f"r{t}-{i}", [SYSTEM, user(page), say(f"answer {i}")], reward=reward, score=50.0, task=f"t{t}")
    built = Built("dpo")
    sizes: list[int] = []
    tracemalloc.start()
    try:
        write_pairs(out, "dpo", lambda row: sizes.append(len(json.dumps(row))), built, tools=SourceTools(),
                    flt=ExportFilter())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert built.rows == 300 and sum(sizes) > 6_000_000
    # holding every run takes > 12 MB; one task's runs ~0.1 MB. The margin absorbs one-off
    # interpreter tables that may grow during the window (pathlib interns each path part; the
    # intern dict's resize after a long test session was a 3.7 MB single allocation)
    assert peak < 6_000_000, f"peak {peak} bytes: more than one task's runs in memory"
