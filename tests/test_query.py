"""``streamgrade query`` (DuckDB views over an output folder), ``export --where`` and Parquet
exports read back with `datasets`, on small graded folders and on the shared corpus."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import statistics
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamgrade.cli import main
from streamgrade.exports.parquet import jsonl_to_parquet
from streamgrade.sinks.lock import OutputLock

from test_agreement_cmd import make_corpus

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus"
CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def cli(*args: str) -> subprocess.CompletedProcess:
    """``streamgrade ARGS`` in this process (click's runner), as a CompletedProcess."""
    unset = {k: None for k in os.environ if k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    res = CliRunner().invoke(main, list(args), env=unset)
    if res.exception is not None and not isinstance(res.exception, SystemExit):
        raise res.exception
    return subprocess.CompletedProcess(args, res.exit_code, res.stdout, res.stderr)


def grade(src: Path, out: Path) -> Path:
    res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(src), "-o", str(out), "--judge",
                          "heuristic", "--no-progress"], capture_output=True, text=True, env=CLEAN_ENV, timeout=120)
    assert res.returncode == 0, res.stderr
    return out


def records(out: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((out / "sessions").glob("*/*/scores.json"))]


@pytest.fixture(scope="module")
def graded(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("query")
    return grade(make_corpus(tmp / "corpus"), tmp / "out")


def _snapshot(out: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(out)): (p.stat().st_size, p.stat().st_mtime_ns) for p in out.rglob("*") if p.is_file()}


# -- query --------------------------------------------------------------------------------------
def test_query_table_json_csv_agree_with_the_records(graded: Path):
    recs = records(graded)
    sql = "select source_format, avg(score) as mean, count(*) as n from scores group by 1"
    js = cli("query", str(graded), sql, "--json")
    assert js.returncode == 0, js.stderr
    rows = json.loads(js.stdout)
    assert rows == [{"source_format": "openai-chat", "mean": pytest.approx(statistics.fmean(r["score"] for r in recs)),
                     "n": len(recs)}]
    rows = list(csv.reader(io.StringIO(cli("query", str(graded), sql, "--csv").stdout)))
    assert rows[0] == ["source_format", "mean", "n"] and rows[1][0] == "openai-chat" and int(rows[1][2]) == len(recs)
    table = cli("query", str(graded), sql)
    assert table.returncode == 0 and "openai-chat" in table.stdout and str(len(recs)) in table.stdout
    # the other views: sessions (results.json) and the training files
    js = json.loads(cli("query", str(graded), "select session_id, task_id, reward, folder from sessions "
                                              "order by session_id", "--json").stdout)
    assert [r["session_id"] for r in js] == sorted(r["session_id"] for r in recs)
    by_id = {r["session_id"]: r for r in recs}
    assert all(r["task_id"] == by_id[r["session_id"]]["task_id"] and r["reward"] == by_id[r["session_id"]]["reward"]
               for r in js)
    sft_lines = (graded / "exports" / "sft.chatml.jsonl").read_text().splitlines()
    js = json.loads(cli("query", str(graded), "select count(*) as n, min(metadata.score) as lo from sft", "--json").stdout)
    assert js[0]["n"] == len(sft_lines) and js[0]["lo"] == min(json.loads(x)["metadata"]["score"] for x in sft_lines)


def test_scores_is_the_latest_version_history_keeps_all_and_a_half_line_is_left_out(graded: Path, tmp_path: Path):
    out = tmp_path / "out"
    shutil.copytree(graded, out)
    jsonl = out / "exports" / "scores.jsonl"
    first = json.loads(jsonl.read_text().splitlines()[0])
    regraded = {**first, "score": 99.5, "graded_at": "2999-01-01T00:00:00.000Z"}
    with open(jsonl, "a") as f:
        f.write(json.dumps(regraded) + "\n")
        f.write(json.dumps(regraded)[:40])  # a line being appended
    n = len(records(out))
    res = cli("query", str(out), "select (select count(*) from scores) as latest, (select count(*) from "
                                 f"score_history) as hist, (select score from scores where session_id = "
                                 f"'{first['session_id']}') as s", "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout) == [{"latest": n, "hist": n + 1, "s": 99.5}]
    assert "the last line is being written" in res.stderr


def test_query_errors_exit_2_and_name_the_missing_file(graded: Path):
    bad = cli("query", str(graded), "select nope from scores")
    assert bad.returncode == 2 and "nope" in bad.stderr
    two = cli("query", str(graded), "select 1; select 2")
    assert two.returncode == 2 and "one SQL statement" in two.stderr
    assert not (graded / "exports" / "dpo.jsonl").exists()  # one run per task: no pair
    missing = cli("query", str(graded), "select count(*) from dpo")
    assert missing.returncode == 2 and "dpo.jsonl does not exist" in missing.stderr
    assert cli("query", str(graded), "select 1", "--json", "--csv").returncode == 2


def test_query_is_read_only_and_runs_while_a_writer_holds_the_lock(graded: Path):
    before = _snapshot(graded)
    with OutputLock(graded, command="grade"):  # as a running grade holds it
        res = cli("query", str(graded), "select count(*) as n from scores join sessions using (session_id)", "--json")
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)[0]["n"] == len(records(graded))
        wh = cli("export", str(graded), "--format", "scores", "--where", "score > 0", "-o",
                 str(graded.parent / "elsewhere.jsonl"))
        assert wh.returncode == 0, wh.stderr
    after = _snapshot(graded)
    # the lock's files, and SQLite's WAL index: reading the session store (state.sqlite, read-only)
    # sets a reader's mark in state.sqlite-shm, as any reader of a WAL database does
    skip = {".streamgrade.lock", ".streamgrade.holder", "state.sqlite-shm"}
    assert {k: v for k, v in after.items() if k not in skip} == {k: v for k, v in before.items() if k not in skip}
    assert "state.sqlite" in after


# -- export --where -------------------------------------------------------------------------------
def test_export_where_keeps_exactly_the_matching_sessions(graded: Path, tmp_path: Path):
    recs = records(graded)
    dest = tmp_path / "w.jsonl"
    res = cli("export", str(graded), "--format", "sft", "--all", "--where", "reward = 1 and task_id in ('0', '2')",
              "-o", str(dest))
    assert res.returncode == 0, res.stderr
    got = sorted(json.loads(x)["metadata"]["session_id"] for x in dest.read_text().splitlines())
    want = sorted(r["session_id"] for r in recs if r["reward"] == 1 and r["task_id"] in ("0", "2"))
    assert got == want and len(want) == 4
    assert "not matched by --where" in res.stderr
    # with a flag filter on top
    res = cli("export", str(graded), "--format", "scores", "--where", "reward = 1", "--min-score",
              str(statistics.median(r["score"] for r in recs)), "-o", str(dest))
    keep = {r["session_id"] for r in recs if r["reward"] == 1 and r["score"] >= statistics.median(x["score"] for x in recs)}
    assert res.returncode == 0 and {json.loads(x)["session_id"] for x in dest.read_text().splitlines()} == keep
    bad = cli("export", str(graded), "--format", "sft", "--where", "score >>> 3", "-o", str(tmp_path / "x.jsonl"))
    assert bad.returncode == 2 and "--where" in bad.stderr and not (tmp_path / "x.jsonl").exists()
    none = cli("export", str(graded), "--format", "sft", "--where", "false", "-o", str(tmp_path / "y.jsonl"))
    assert none.returncode == 3 and not (tmp_path / "y.jsonl").exists()


# -- Parquet --------------------------------------------------------------------------------------
def _strip_none(o):
    if isinstance(o, dict):
        return {k: _strip_none(v) for k, v in o.items() if v is not None}
    if isinstance(o, list):
        return [_strip_none(x) for x in o]
    return o


def _load_parquet(path: Path, tmp_path: Path):
    datasets = pytest.importorskip("datasets")
    os.environ["HF_DATASETS_OFFLINE"] = "1"  # as the other datasets tests: local files only
    return datasets.load_dataset("parquet", data_files=str(path), split="train", cache_dir=str(tmp_path / "hf"))


def test_parquet_exports_load_with_datasets_as_the_jsonl_rows(graded: Path, tmp_path: Path):
    for fmt in ("sft", "sharegpt", "openai-sft"):
        jl, pq = tmp_path / f"{fmt}.jsonl", tmp_path / f"{fmt}.parquet"
        assert cli("export", str(graded), "--format", fmt, "-o", str(jl)).returncode == 0
        res = cli("export", str(graded), "--format", fmt, "--parquet", "-o", str(pq))
        assert res.returncode == 0, res.stderr
        assert pq.read_bytes()[:4] == b"PAR1" and not list(tmp_path.glob(f".{fmt}.parquet.*"))
        ds = _load_parquet(pq, tmp_path)
        want = [json.loads(x) for x in jl.read_text().splitlines()]
        assert len(ds) == len(want) and [_strip_none(r) for r in ds] == [_strip_none(r) for r in want]
    # scores: the default destination, one row per session with its score
    res = cli("export", str(graded), "--format", "scores", "--parquet")
    assert res.returncode == 0, res.stderr
    ds = _load_parquet(graded / "exports" / "rebuilt" / "scores.parquet", tmp_path)
    assert sorted((r["session_id"], r["score"]) for r in ds) == sorted((r["session_id"], r["score"])
                                                                        for r in records(graded))
    assert cli("export", str(graded), "--format", "computer-use", "--parquet").returncode == 2


def test_parquet_keeps_mixed_types_and_each_tools_own_schema(tmp_path: Path):
    rows = [
        {"messages": [{"role": "user", "content": "hi"}], "n": 1,
         "tools": [{"type": "function", "function": {"name": "a", "parameters": {
             "type": "object", "properties": {"x": {"type": "string"}}}}}]},
        {"messages": [{"role": "user", "content": [{"type": "text", "text": "look"},
                                                   {"type": "image_url", "image_url": {"url": "f/1.jpg"}}]}],
         "n": 2.5, "tools": [{"type": "function", "function": {"name": "b", "parameters": {
             "type": "object", "properties": {"y": {"type": "integer"}}, "required": ["y"]}}}]},
    ]
    src = tmp_path / "rows.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert jsonl_to_parquet(src, tmp_path / "rows.parquet") == 2
    ds = _load_parquet(tmp_path / "rows.parquet", tmp_path)
    assert ds[1]["messages"][0]["content"] == rows[1]["messages"][0]["content"]  # a list where row 0 has a string
    assert ds[0]["messages"][0]["content"] == "hi"
    assert [ds[i]["tools"] for i in range(2)] == [r["tools"] for r in rows]  # no property leaks into the other tool
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(ValueError):
        jsonl_to_parquet(empty, tmp_path / "empty.parquet")
    assert not (tmp_path / "empty.parquet").exists()


# -- the shared corpus ----------------------------------------------------------------------------
@pytest.mark.skipif(not (CORPUS / "tau-bench").is_dir(), reason=f"shared corpus not found at {CORPUS}")
def test_query_on_a_corpus_run(tmp_path: Path):
    out = grade(CORPUS / "tau-bench", tmp_path / "tau")
    res = cli("query", str(out), "select source_format, avg(score) from scores group by 1", "--json")
    assert res.returncode == 0, res.stderr
    recs = records(out)
    assert len(recs) == 200
    assert json.loads(res.stdout) == [{"source_format": "openai-chat",
                                       "avg(score)": pytest.approx(statistics.fmean(r["score"] for r in recs))}]
    res = cli("query", str(out), "select task_id, avg(reward) as pass_rate from scores group by 1 "
                                 "order by pass_rate desc, task_id limit 3", "--json")
    assert res.returncode == 0 and len(json.loads(res.stdout)) == 3
