"""The openai-chat format on the real tau-bench dump (shared corpus) and synthetic dumps."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats.openai_chat import OpenAIChat
from streamgrade.models import Session

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
TAU = CORPUS / "tau-bench"
TAU_FILE = TAU / "gpt-4o-airline.json"

if not TAU_FILE.is_file():
    pytest.skip(f"shared corpus not found: {TAU_FILE} (expected beside the repository)", allow_module_level=True)

FMT = OpenAIChat()


def sessions_in(folder: Path, config=None) -> list[Session]:
    config = config if config is not None else load_config(env={})
    refs = FMT.find(folder, sorted(os.listdir(folder)))
    return [FMT.assemble(r, config) for r in refs]


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def tau() -> dict[str, Session]:
    return {s.ref.session_id: s for s in sessions_in(TAU)}


@pytest.fixture(scope="module")
def tau_rows() -> list[dict]:
    return json.loads(TAU_FILE.read_text(encoding="utf-8"))


# --- real corpus: tau-bench gpt-4o airline ---------------------------------------------------


def test_tau_counts_and_rewards(tau):
    assert len(tau) == 200
    assert Counter(s.reward for s in tau.values()) == {1.0: 84, 0.0: 116}
    assert {s.kind for s in tau.values()} == {"agent"}
    assert {s.ref.format for s in tau.values()} == {"openai-chat"}
    assert Counter(s.task_id for s in tau.values()) == {str(t): 4 for t in range(50)}
    assert {s.trial for s in tau.values()} == {"0", "1", "2", "3"}
    # user_cost is a number on 195 rows, null on 5
    assert sum("user_cost" in s.metrics for s in tau.values()) == 195


def test_tau_task0_trial0(tau):
    s = tau["gpt-4o-airline.task0.trial0"]
    assert s.ref.locator == "0"
    assert s.ref.files == (str(TAU_FILE),)
    assert s.task == "Hi! I'm looking to book a flight from New York to Seattle on May 20th."
    assert len(s.transcript) == 32
    assert s.transcript[0].role == "system"
    assert s.transcript[0].content.startswith("# Airline Agent Policy")
    first_call = next(m for m in s.transcript if m.tool_calls).tool_calls[0]
    assert first_call.function.name == "get_user_details"
    assert isinstance(first_call.function.arguments, str)
    assert json.loads(first_call.function.arguments) == {"user_id": "mia_li_3668"}
    assert first_call.id == "call_oIHazX6yQrB8hUwl4cRilFKj"
    tool_msg = s.transcript[7]
    # the chat view links a result to its call by id only (a `name` on tool messages breaks
    # OpenAI's fine-tuning format); the step keeps the pairing
    assert (tool_msg.role, tool_msg.tool_call_id, tool_msg.name) == ("tool", first_call.id, None)
    assert s.turns == 15 and s.n_tool_calls == 8
    assert s.reward == 0.0
    assert s.metrics["user_cost"] == pytest.approx(0.0035475)
    # the row ends with the simulated user's ###STOP###: the dump does not say why it ended
    assert s.transcript[-1].role == "user" and "###STOP###" in s.transcript[-1].content
    assert s.termination == "unknown"
    assert s.duration_s is None and s.actions == []


def test_tau_terminations(tau):
    # rows end with the user (149) or a tool result (51), never the assistant
    assert Counter(s.termination for s in tau.values()) == {"unknown": 200}


def test_tau_task_is_first_user_message_not_reference(tau, tau_rows):
    for i, row in enumerate(tau_rows):
        s = tau[f"gpt-4o-airline.task{row['task_id']}.trial{row['trial']}"]
        first_user = next(m["content"] for m in row["traj"] if m["role"] == "user")
        assert s.task == first_user
        instruction = row["info"]["task"]["instruction"]
        assert instruction not in s.task
        actions = json.dumps(row["info"]["task"]["actions"])
        assert actions not in s.task
        assert all(actions not in (m.content or "") and instruction not in (m.content or "") for m in s.transcript)
        assert "info" not in s.meta and "actions" not in s.meta
    # task 0: no reference-action argument value is in the task
    s = tau["gpt-4o-airline.task0.trial0"]
    ref_values = [v for a in tau_rows[0]["info"]["task"]["actions"] for v in a["kwargs"].values() if isinstance(v, str)]
    assert "mia_li_3668" in ref_values
    assert not [v for v in ref_values if len(v) > 3 and v in s.task]


# --- synthetic dumps --------------------------------------------------------------------------


def test_dict_arguments_json_encoded_and_content_parts(tmp_path):
    rows = [{
        "task_id": 7, "trial": 1, "reward": "1.0", "model": "m", "agent": "a",
        "messages": [
            {"role": "system", "content": "sys"},
            {"role": "user", "content": [{"type": "text", "text": "Do X"}, {"type": "text", "text": "now"}]},
            {"role": "assistant", "content": None,
             "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": {"a": 1, "b": "é"}}}]},
            {"role": "tool", "tool_call_id": "c1", "name": "f", "content": "ok"},
        ],
    }]
    write(tmp_path / "dump.json", rows)
    (s,) = sessions_in(tmp_path)
    assert s.ref.session_id == "dump.task7.trial1"
    assert s.task == "Do X\nnow"
    call = s.transcript[2].tool_calls[0]
    assert isinstance(call.function.arguments, str) and json.loads(call.function.arguments) == {"a": 1, "b": "é"}
    assert s.termination == "unknown"
    assert (s.reward, s.model, s.agent, s.task_id, s.trial) == (1.0, "m", "a", "7", "1")
    # ends with a tool call / a final answer
    rows[0]["messages"] = rows[0]["messages"][:3]
    write(tmp_path / "dump.json", rows)
    assert sessions_in(tmp_path)[0].termination == "tool_call"
    rows[0]["messages"].append({"role": "assistant", "content": "done"})
    write(tmp_path / "dump.json", rows)
    assert sessions_in(tmp_path)[0].termination == "stop"


def test_custom_mapping_generic_dump(tmp_path):
    rows = [
        {"id": "alpha", "run": 2, "score": 0.5, "meta": {"llm": "gpt-x"},
         "messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]},
        {"id": "beta", "run": 0, "score": None,
         "messages": [{"role": "user", "content": "q"}]},
    ]
    write(tmp_path / "generic.json", rows)
    cfg = load_config(env={}, overrides={"formats": {"openai_chat": {"task_id": "id", "trial": "run", "reward": "score", "model": "meta.llm"}}})
    by_row = {s.ref.locator: s for s in sessions_in(tmp_path, cfg)}
    a, b = by_row["0"], by_row["1"]
    assert (a.task_id, a.trial, a.reward, a.model, a.task, a.termination) == ("alpha", "2", 0.5, "gpt-x", "hi", "stop")
    assert (b.task_id, b.trial, b.reward) == ("beta", "0", None)
    # find has no config: without task_id/trial at the default paths, ids use the row index
    assert a.ref.session_id == "generic.row0" and b.ref.session_id == "generic.row1"


def test_jsonl_dump_and_skips(tmp_path):
    lines = [{"task_id": 1, "trial": 0, "traj": [{"role": "user", "content": "a"}]},
             {"task_id": 1, "trial": 0, "traj": [{"role": "user", "content": "b"}]}]
    (tmp_path / "runs.jsonl").write_text("\n".join(json.dumps(x) for x in lines) + "\n", encoding="utf-8")
    # files other formats own, trace rows and non-JSON are not claimed
    write(tmp_path / "x.traces.json", lines)
    write(tmp_path / "meta.json", lines[0])
    write(tmp_path / "traces.json", [{"trial_name": "t", "episode": "episode-0", "conversations": []}])
    (tmp_path / "notes.json").write_text("hello", encoding="utf-8")
    refs = FMT.find(tmp_path, sorted(os.listdir(tmp_path)))
    assert [(r.session_id, r.locator) for r in refs] == [("runs.task1.trial0", "0"), ("runs.task1.trial0.row1", "1")]


@pytest.mark.parametrize(
    ("row", "field"),
    [
        ({"traj": "nope"}, "[1].traj"),
        ({"traj": [{"role": "user", "content": "x"}, {"content": "no role"}]}, "[1].traj[1].role"),
        ({"traj": [{"role": "user", "content": 5}]}, "[1].traj[0].content"),
        ({"traj": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"name": "f", "arguments": 3}}]}]},
         "[1].traj[1].tool_calls[0].function.arguments"),
        ({"traj": [{"role": "user", "content": "x"}, {"role": "assistant", "tool_calls": [{"id": "c", "function": {"arguments": "{}"}}]}]},
         "[1].traj[1].tool_calls[0].function.name"),
        ({"traj": [{"role": "assistant", "content": "no user"}]}, "[1].traj"),
        ({"other": 1}, "[1]"),
    ],
)
def test_malformed_rows(tmp_path, row, field):
    good = {"task_id": 0, "trial": 0, "traj": [{"role": "user", "content": "ok"}]}
    path = write(tmp_path / "bad.json", [good, row])
    refs = FMT.find(tmp_path, ["bad.json"])
    assert [r.locator for r in refs] == ["0", "1"]
    config = load_config(env={})
    FMT.assemble(refs[0], config)
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs[1], config)
    assert exc.value.path == str(path)
    assert exc.value.field == field
    assert str(path) in str(exc.value) and field in str(exc.value)


def test_malformed_row_not_an_object_and_bad_json(tmp_path):
    path = write(tmp_path / "mixed.json", [{"traj": [{"role": "user", "content": "ok"}]}, "oops"])
    refs = FMT.find(tmp_path, ["mixed.json"])
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs[1], load_config(env={}))
    assert exc.value.field == "[1]" and exc.value.path == str(path)
    # JSONL: the line is named
    (tmp_path / "bad.jsonl").write_text('{"traj": [{"role": "user", "content": "ok"}]}\n\n{"traj": {}}\n', encoding="utf-8")
    refs = FMT.find(tmp_path, ["bad.jsonl"])
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs[1], load_config(env={}))
    assert (exc.value.line, exc.value.field) == (3, "traj")
    # a file that looks like JSON but does not parse is claimed once and reports its line
    (tmp_path / "broken.json").write_text('[\n{"traj": [}\n]', encoding="utf-8")
    (ref,) = FMT.find(tmp_path, ["broken.json"])
    assert ref.session_id == "broken"
    with pytest.raises(InputError) as exc:
        FMT.assemble(ref, load_config(env={}))
    assert exc.value.line == 2 and "invalid JSON" in str(exc.value)


def test_clones_desktop_folder_not_claimed(tmp_path):
    # a Clones desktop session folder's sft export has a messages list but is Clones' own
    write(tmp_path / "meta.json", {"quest": "q"})
    (tmp_path / "input_log.jsonl").write_text("{}\n", encoding="utf-8")
    write(tmp_path / "sft_generated_test.json", {"messages": [{"role": "assistant", "content": "x", "timestamp": 1}]})
    assert FMT.find(tmp_path, sorted(os.listdir(tmp_path))) == []


@pytest.mark.asyncio
async def test_new_benchmark_needs_only_a_mapping(tmp_path):
    """A dump whose messages live under a key the defaults do not know is found and graded
    once the config maps it; ids come from the mapped fields."""
    from streamgrade.formats import configure_formats
    from streamgrade.judges.heuristic import HeuristicJudge
    from streamgrade.pipeline import Pipeline, scan_source

    data = tmp_path / "data"
    data.mkdir()
    write(data / "bench.json", [
        {"case": "c1", "attempt": 3, "passed": 1, "dialog": [{"role": "user", "content": "do x"},
                                                           {"role": "assistant", "content": "done"}]}])
    cfg = load_config(env={}, overrides={"formats": {"openai_chat": {
        "messages_fields": ["dialog"], "task_id": "case", "trial": "attempt", "reward": "passed"}}})
    out = tmp_path / "out"
    try:
        stats = await Pipeline(cfg, out, HeuristicJudge(cfg)).run(scan_source([data], exclude=[out]))
    finally:
        configure_formats(load_config(env={}))  # the formats are process-wide: restore defaults
    assert stats.graded == 1
    rec = json.loads((out / "exports" / "scores.jsonl").read_text())
    assert (rec["session_id"], rec["task_id"], rec["trial"], rec["reward"]) == ("bench.taskc1.trial3", "c1", "3", 1.0)
