"""The trace-rows format on Harbor's golden exported traces (shared corpus) and synthetic rows."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import InputError
from streamgrade.formats.openai_chat import OpenAIChat
from streamgrade.formats.trace_rows import TraceRows
from streamgrade.models import Session

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
GOLDEN = CORPUS / "harbor" / "golden"

if not GOLDEN.is_dir():
    pytest.skip(f"shared corpus not found: {GOLDEN} (expected beside the repository)", allow_module_level=True)

FMT = TraceRows()


def sessions_in(folder: Path) -> dict[str, Session]:
    config = load_config(env={})
    refs = FMT.find(folder, sorted(os.listdir(folder)))
    return {r.session_id: FMT.assemble(r, config) for r in refs}


def write(path: Path, obj) -> Path:
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def row(trial: str, episode: int, n: int, **extra) -> dict:
    conv = [{"role": "user" if k % 2 == 0 else "assistant", "content": f"m{k}"} for k in range(n)]
    return {"agent": "ag", "conversations": conv, "date": "d", "episode": f"episode-{episode}", "model": "gpt-4o",
            "model_provider": "openai", "result": None, "run_id": "r", "task": "t", "trial_name": trial, **extra}


# --- real corpus: Harbor golden traces ---------------------------------------------------------


def test_terminus_invalid_json_collapsed_to_longest_prefix():
    folder = GOLDEN / "terminus_2"
    raw = json.loads((folder / "hello-world-invalid-json.traces.json").read_text(encoding="utf-8"))
    assert [len(r["conversations"]) for r in raw] == [2, 4, 6, 8]
    assert {r["trial_name"] for r in raw} == {"NORMALIZED_TRIAL_NAME"}
    sessions = sessions_in(folder)
    s = sessions["hello-world-invalid-json.NORMALIZED_TRIAL_NAME"]
    assert s.ref.locator == "NORMALIZED_TRIAL_NAME" and s.ref.format == "trace-rows"
    assert len(s.transcript) == 8
    assert [m.content for m in s.transcript] == [m["content"] for m in raw[3]["conversations"]]
    assert s.metrics == {"episodes": 4.0}
    assert s.meta["episode"] == "episode-3"
    assert s.task == raw[3]["conversations"][0]["content"]
    assert s.task.startswith("You are an AI assistant tasked with solving command-line tasks")
    assert (s.kind, s.agent, s.model, s.task_id, s.trial) == ("agent", "terminus-2", "openai/gpt-4o", "harbor/hello-world", "NORMALIZED_TRIAL_NAME")
    assert s.reward is None  # result is null in the golden exports
    assert s.termination == "unknown"
    assert s.tools == []


def test_terminus_folder_one_session_per_file():
    folder = GOLDEN / "terminus_2"
    sessions = sessions_in(folder)
    expected = {}
    for name in sorted(os.listdir(folder)):
        if name.endswith(".traces.json"):
            raw = json.loads((folder / name).read_text(encoding="utf-8"))
            expected[name[: -len(".traces.json")] + ".NORMALIZED_TRIAL_NAME"] = (max(len(r["conversations"]) for r in raw), len(raw))
    assert len(expected) == 5
    assert {sid: (len(s.transcript), int(s.metrics["episodes"])) for sid, s in sessions.items()} == expected
    assert expected["hello-world-context-summarization.NORMALIZED_TRIAL_NAME"] == (11, 7)
    # the ATIF trajectories beside them are not trace rows, nor openai-chat dumps
    assert OpenAIChat().find(folder, sorted(os.listdir(folder))) == []


def test_openhands_tools_and_model():
    folder = GOLDEN / "openhands"
    sessions = sessions_in(folder)
    assert set(sessions) == {"hello-world.NORMALIZED_TRIAL_NAME", "hello-world-no_function_calling.NORMALIZED_TRIAL_NAME"}
    s = sessions["hello-world.NORMALIZED_TRIAL_NAME"]
    assert len(s.transcript) == 7 and s.metrics == {"episodes": 2.0}
    assert len(s.tools) == 6 and s.tools[0]["function"]["name"]
    assert (s.agent, s.model) == ("openhands", "openai/gpt-4o")  # model "gpt-4o" + provider "openai"
    assert sessions["hello-world-no_function_calling.NORMALIZED_TRIAL_NAME"].tools == []
    assert len(sessions["hello-world-no_function_calling.NORMALIZED_TRIAL_NAME"].transcript) == 5


# --- synthetic rows ----------------------------------------------------------------------------


def test_grouping_tie_and_result_values(tmp_path):
    rows = [row("a/1", 0, 2, result="1.0"), row("a/1", 2, 4, result="1.0"), row("a/1", 1, 4, result=0.0),
            row("b", 0, 3, result=0.25), row("c", 0, 1, result={"x": 1})]
    write(tmp_path / "export.json", rows)  # not *.traces.json: found by its rows
    s = sessions_in(tmp_path)
    assert set(s) == {"export.a_1", "export.b", "export.c"}
    a = s["export.a_1"]
    assert a.meta["episode"] == "episode-2" and a.reward == 1.0 and a.metrics == {"episodes": 3.0}
    assert s["export.b"].reward == 0.25
    assert s["export.c"].reward is None
    assert s["export.c"].model == "openai/gpt-4o"
    # openai-chat leaves trace rows alone
    assert OpenAIChat().find(tmp_path, ["export.json"]) == []


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        ({"conversations": "x"}, "[1].conversations"),
        ({"conversations": [{"role": "user", "content": "a"}, {"content": "b"}]}, "[1].conversations[1].role"),
        ({"conversations": [{"role": "user", "content": {"a": 1}}]}, "[1].conversations[0].content"),
        ({"conversations": [{"role": "assistant", "content": "a"}]}, "[1].conversations"),
        ({"tool_definitions": "nope"}, "[1].tool_definitions"),
    ],
)
def test_malformed_rows(tmp_path, bad, field):
    path = write(tmp_path / "bad.traces.json", [row("good", 0, 2), {**row("bad", 0, 2), **bad}])
    refs = {r.locator: r for r in FMT.find(tmp_path, ["bad.traces.json"])}
    config = load_config(env={})
    FMT.assemble(refs["good"], config)
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs["bad"], config)
    assert exc.value.path == str(path) and exc.value.field == field
    assert str(path) in str(exc.value)


def test_broken_traces_file_is_reported(tmp_path):
    (tmp_path / "x.traces.json").write_text('[{"trial_name": "t",\n "episode": }]', encoding="utf-8")
    write(tmp_path / "y.traces.json", [{"no": "trace"}])
    refs = {r.session_id: r for r in FMT.find(tmp_path, sorted(os.listdir(tmp_path)))}
    assert set(refs) == {"x", "y"}
    config = load_config(env={})
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs["x"], config)
    assert exc.value.line == 2 and exc.value.path == str(tmp_path / "x.traces.json")
    with pytest.raises(InputError, match="no trace rows"):
        FMT.assemble(refs["y"], config)
    # JSONL exports name the line
    (tmp_path / "t.jsonl").write_text(json.dumps(row("t", 0, 2)) + "\n" + json.dumps({**row("u", 0, 2), "conversations": 5}) + "\n", encoding="utf-8")
    refs = {r.locator: r for r in FMT.find(tmp_path, ["t.jsonl"])}
    with pytest.raises(InputError) as exc:
        FMT.assemble(refs["u"], config)
    assert (exc.value.line, exc.value.field) == (2, "conversations")
