"""Ground truth from a separate labels file (labels.py, --labels): each kind of file, the
join keys, and the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from streamgrade.errors import ConfigError, InputError
from streamgrade.labels import Labels, load_labels


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_swebench_run_report(tmp_path: Path):
    f = write(tmp_path / "run.json", json.dumps({"total_instances": 3, "resolved_ids": ["a__a-1"],
                                                 "unresolved_ids": ["b__b-2"], "error_ids": ["c__c-3"]}))
    assert load_labels(f) == {"a__a-1": 1.0, "b__b-2": 0.0, "c__c-3": 0.0}


def test_swebench_per_instance_report(tmp_path: Path):
    f = write(tmp_path / "report.json", json.dumps({"django__django-1": {"resolved": True, "tests_status": {}},
                                                    "django__django-2": {"resolved": False}}))
    assert load_labels(f) == {"django__django-1": 1.0, "django__django-2": 0.0}


def test_terminal_bench_results(tmp_path: Path):
    f = write(tmp_path / "results.json", json.dumps({"results": [
        {"task_id": "enc", "trial_name": "enc.1-of-1.x", "is_resolved": True},
        {"task_id": "hello", "trial_name": "hello.1-of-1.x", "is_resolved": None}]}))
    assert load_labels(f) == {"enc.1-of-1.x": 1.0, "enc": 1.0}


def test_generic_tables(tmp_path: Path):
    assert load_labels(write(tmp_path / "a.json", '{"x": true, "y": 0.5, "z": "fail"}')) == {"x": 1.0, "y": 0.5, "z": 0.0}
    assert load_labels(write(tmp_path / "b.jsonl", '{"task_id": "t1", "passed": true}\n\n{"task_id": "t2", "passed": false}\n')) \
        == {"t1": 1.0, "t2": 0.0}
    assert load_labels(write(tmp_path / "c.csv", "run,outcome\nr1,1\nr2,0.25\n"), id_field="run", value_field="outcome") \
        == {"r1": 1.0, "r2": 0.25}
    with pytest.raises(InputError, match="c.csv: no id or value column"):
        load_labels(tmp_path / "c.csv")
    with pytest.raises(InputError, match=r"d.jsonl:2: invalid JSON"):
        load_labels(write(tmp_path / "d.jsonl", '{"id": 1, "reward": 1}\n{oops\n'))


def test_join_keys(tmp_path: Path):
    f = write(tmp_path / "l.json", json.dumps({"sess-1": 1.0, "trial-9": 0.0, "task-3": 1.0}))
    auto = Labels.load([str(f)])
    assert auto.reward_for("sess-1", "trial-9", "task-3") == 1.0  # session id first
    assert auto.reward_for("other", "trial-9", "task-3") == 0.0
    assert auto.reward_for("other", None, "task-3") == 1.0 and auto.reward_for("o", None, None) is None
    assert Labels.load([str(f)], key="task_id").reward_for("sess-1", "trial-9", "task-3") == 1.0
    with pytest.raises(ConfigError, match="labels.key"):
        Labels.load([str(f)], key="nope")
    with pytest.raises(ConfigError, match="labels file .*missing.json: file is missing"):
        Labels.load([str(tmp_path / "missing.json")])


def test_cli_labels_replace_the_reward_and_the_summary_says_so(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    rows = [{"task_id": t, "trial": 0, "traj": [{"role": "user", "content": f"task {t}"},
                                                {"role": "assistant", "content": "done"}]} for t in ("a", "b")]
    (data / "runs.json").write_text(json.dumps(rows))
    labels = write(tmp_path / "labels.csv", "task_id,resolved\na,true\nb,false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--labels",
                          str(labels)], capture_output=True, text=True, env=env, timeout=60)
    assert res.returncode == 0, res.stderr
    assert "2 sessions took their reward from the labels" in res.stderr
    recs = {json.loads(x)["task_id"]: json.loads(x)["reward"] for x in (out / "exports" / "scores.jsonl").read_text().splitlines()}
    assert recs == {"a": 1.0, "b": 0.0}
    bad = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(tmp_path / "o2"), "--labels",
                          str(tmp_path / "nope.json")], capture_output=True, text=True, env=env, timeout=60)
    assert bad.returncode == 2 and "labels file" in bad.stderr and "nope.json" in bad.stderr
