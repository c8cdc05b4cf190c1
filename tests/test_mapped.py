"""Dumps described in TOML ([[formats.mappings]], formats/mapped.py): one test per mapping
feature on a small handmade file, and the CLI reading a new dump with a few lines of TOML."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamgrade.config import load_config
from streamgrade.errors import ConfigError, InputError
from streamgrade.formats import FORMATS, configure_formats
from streamgrade.sources.scan import ScanReport, scan


def cfg_with(*mappings: dict):
    cfg = load_config(env={}, overrides={"formats": {"mappings": list(mappings)}})
    configure_formats(cfg)
    return cfg


@pytest.fixture(autouse=True)
def _reset_registry():
    yield
    configure_formats(load_config(env={}))


def sessions(folder: Path, cfg) -> dict:
    report = ScanReport()
    out = {r.session_id: FORMATS[r.format].assemble(r, cfg) for r in scan([folder], report=report)}
    return out


TAU2_LIKE = {
    "info": {"agent_info": {"llm": "gpt-4.1"}},
    "tasks": [{"id": "t-1", "description": "Change the flight", "evaluation_criteria": {"actions": ["SECRET"]}},
              {"id": "t-2", "description": "Cancel"}],
    "simulations": [
        {"id": "s1", "task_id": "t-1", "trial": 0, "reward_info": {"reward": 1.0},
         "termination_reason": "user_stop",
         "messages": [{"role": "assistant", "content": "Hi! How can I help you today?"},
                      {"role": "user", "content": "Move me to May 20"},
                      {"role": "assistant", "content": None,
                       "tool_calls": [{"id": "c1", "name": "update", "arguments": {"day": 20}}]},
                      {"role": "tool", "id": "c1", "content": "ok"},
                      {"role": "assistant", "content": "Done."}]},
        {"id": "s2", "task_id": "t-2", "trial": 1, "reward_info": {"reward": 0.0},
         "messages": [{"role": "assistant", "content": "Hi!"}]},
    ],
}
TAU2_MAPPING = {"name": "tau2-like", "files": ["*.json"], "detect": "simulations", "rows": "simulations",
                "id": "id", "messages": "messages", "task": "tasks[id=task_id].description",
                "task_id": "task_id", "trial": "trial", "reward": "reward_info.reward",
                "termination": "termination_reason", "model": "info.agent_info.llm"}


def test_rows_nested_under_a_key_with_a_task_joined_from_a_table(tmp_path: Path):
    (tmp_path / "results.json").write_text(json.dumps(TAU2_LIKE))
    got = sessions(tmp_path, cfg_with(TAU2_MAPPING))
    assert sorted(got) == ["results.s1", "results.s2"]
    s1 = got["results.s1"]
    assert (s1.task, s1.task_id, s1.trial, s1.reward, s1.termination) == ("Change the flight", "t-1", "0", 1.0,
                                                                         "user_stop")
    assert s1.ref.format == "tau2-like" and s1.transcript[0].role == "assistant"  # starts with the greeting
    assert s1.steps[2].tool_calls[0].arguments == {"day": 20} and s1.steps[2].observations[0].content == "ok"
    assert "SECRET" not in json.dumps([m.content for m in s1.transcript])
    # a run with no user message still has its task, from the table
    assert got["results.s2"].task == "Cancel" and got["results.s2"].reward == 0.0


def test_row_fingerprints_are_per_row(tmp_path: Path):
    f = tmp_path / "results.json"
    f.write_text(json.dumps(TAU2_LIKE))
    cfg_with(TAU2_MAPPING)
    before = {r.session_id: r.fingerprint for r in scan([tmp_path])}
    doc = json.loads(f.read_text())
    doc["simulations"][1]["reward_info"]["reward"] = 1.0
    f.write_text(json.dumps(doc))
    after = {r.session_id: r.fingerprint for r in scan([tmp_path])}
    assert after["results.s1"] == before["results.s1"] and after["results.s2"] != before["results.s2"]


def test_a_dict_of_rows_keyed_by_id_with_sharegpt_messages(tmp_path: Path):
    doc = {"q1": {"conversations": [{"from": "human", "value": "2+2?"}, {"from": "gpt", "value": "4"}], "em": True},
           "q2": {"conversations": [{"from": "human", "value": "capital of France?"}, {"from": "gpt", "value": "Paris"}],
                  "em": False}}
    (tmp_path / "react.json").write_text(json.dumps(doc))
    got = sessions(tmp_path, cfg_with({"name": "qa", "rows": "*", "messages": "conversations", "reward": "em"}))
    assert {k: (s.task, s.reward) for k, s in got.items()} == {"react.q1": ("2+2?", 1.0),
                                                              "react.q2": ("capital of France?", 0.0)}


def test_any_suffix_and_jsonl_lines(tmp_path: Path):
    row = {"messages": [{"role": "user", "content": "fix the bug"},
                        {"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "bash",
                                                           "input": {"cmd": "pytest"}}]},
                        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": "1 passed"}]}],
           "instance": "repo-1"}
    (tmp_path / "run.traj").write_text(json.dumps(row))
    (tmp_path / "many.jsonl").write_text(json.dumps(row) + "\n" + json.dumps({**row, "instance": "repo-2"}) + "\n")
    got = sessions(tmp_path, cfg_with({"name": "mine", "files": ["*.traj", "*.jsonl"], "id": "instance"}))
    assert sorted(got) == ["many.repo-1", "many.repo-2", "run.repo-1"]
    s = got["run.repo-1"]
    assert s.steps[1].tool_calls[0].name == "bash" and s.steps[1].observations[0].content == "1 passed"


def test_detect_leaves_other_files_to_other_readers(tmp_path: Path):
    (tmp_path / "results.json").write_text(json.dumps(TAU2_LIKE))
    (tmp_path / "other.json").write_text(json.dumps({"messages": [{"role": "user", "content": "hi"}]}))
    cfg_with(TAU2_MAPPING)
    formats = {r.session_id: r.format for r in scan([tmp_path])}
    assert formats["results.s1"] == "tau2-like" and formats["other.row0"] == "openai-chat"


def test_bad_rows_fail_with_their_field_and_broken_files_are_sessions(tmp_path: Path):
    bad = json.loads(json.dumps(TAU2_LIKE))
    bad["simulations"][0]["messages"][2]["tool_calls"][0].pop("name")
    (tmp_path / "results.json").write_text(json.dumps(bad))
    (tmp_path / "broken.json").write_text('{"simulations": [')
    cfg = cfg_with(TAU2_MAPPING)
    refs = {r.session_id: r for r in scan([tmp_path])}
    with pytest.raises(InputError, match=r"simulations\[0\]\.messages\[2\]\.tool_calls\[0\]\.name: missing tool name"):
        FORMATS["tau2-like"].assemble(refs["results.s1"], cfg)
    with pytest.raises(InputError, match="broken.json:1"):
        FORMATS[refs["broken"].format].assemble(refs["broken"], cfg)


def test_a_mapping_may_not_take_a_builtin_name():
    with pytest.raises(ConfigError, match="built-in"):
        cfg_with({"name": "openai-chat"})


def test_a_new_dump_needs_a_few_lines_of_toml(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "results.json").write_text(json.dumps(TAU2_LIKE))
    toml = tmp_path / "sg.toml"
    toml.write_text('''[[formats.mappings]]
name = "tau2-like"
detect = "simulations"
rows = "simulations"
id = "id"
task = "tasks[id=task_id].description"
task_id = "task_id"
trial = "trial"
reward = "reward_info.reward"
''')
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--config", str(toml)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    assert {(r["session_id"], r["source_format"], r["reward"]) for r in recs} == {
        ("results.s1", "tau2-like", 1.0), ("results.s2", "tau2-like", 0.0)}


def test_the_readme_plugin_example_works_through_an_entry_point(tmp_path: Path):
    """README.md "Adding a reader": its example, installed as a package with a
    streamgrade.formats entry point, reads its files with no change to streamgrade."""
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    section = readme[readme.index("### Adding a reader"):]
    code = section[section.index("```python\n") + 10:section.index("\n```", section.index("```python"))]
    site = tmp_path / "site"
    (site / "my_package").mkdir(parents=True)
    (site / "my_package" / "__init__.py").write_text("")
    (site / "my_package" / "reader.py").write_text(code)
    dist = site / "my_package-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-package\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[streamgrade.formats]\nmydump = my_package.reader:MyDump\n")
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "run1.mydump").write_text(json.dumps({"task": "Say hi", "passed": True, "messages": [
        {"role": "user", "content": "Say hi"}, {"role": "assistant", "content": "hi"}]}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    env["PYTHONPATH"] = os.pathsep.join([str(site), env.get("PYTHONPATH", "")])
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    (rec,) = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    assert (rec["session_id"], rec["source_format"], rec["reward"], rec["status"]) == ("run1", "mydump", 1.0, "graded")
    # a broken plugin is logged and skipped, never stops a run
    (dist / "entry_points.txt").write_text("[streamgrade.formats]\nmydump = my_package.nope:Missing\n")
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(tmp_path / "out2")],
                         capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 5 and "reader plugin mydump" in res.stderr and "not loaded" in res.stderr


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as hst  # noqa: E402

_json = hst.recursive(hst.none() | hst.booleans() | hst.integers() | hst.text(max_size=8),
                      lambda kids: hst.lists(kids, max_size=4) | hst.dictionaries(hst.text(max_size=6), kids, max_size=4),
                      max_leaves=20)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=_json, mutate=hst.sampled_from(["as_is", "messages", "tool_calls", "truncate"]))
def test_fuzz_a_mapped_dump_gives_input_errors_only(tmp_path_factory, doc, mutate):
    """Whatever a file holds, a mapping's find never raises and its assemble returns a
    Session or raises InputError naming the file."""
    folder = tmp_path_factory.mktemp("fz")
    base = json.loads(json.dumps(TAU2_LIKE))
    if mutate == "messages":
        base["simulations"][0]["messages"] = doc
    elif mutate == "tool_calls":
        base["simulations"][0]["messages"][2]["tool_calls"] = doc
    elif mutate == "as_is":
        base = {"simulations": doc, "tasks": doc}
    text = json.dumps(base)
    if mutate == "truncate":
        text = text[: len(text) // 2]
    f = folder / "results.json"
    f.write_text(text)
    cfg = cfg_with(TAU2_MAPPING)
    for ref in FORMATS["tau2-like"].find(folder, ["results.json"]):
        try:
            FORMATS["tau2-like"].assemble(ref, cfg)
        except InputError as exc:
            assert exc.path == str(f)
