"""The commands that read session folders read the session store too ([sinks] session_files
= "none" or "failed"): query's ``sessions`` view, compare, hints and augment give what they
give on an output with every folder."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import anyio
import pytest

from streamgrade.augment import run_augment
from streamgrade.compare.load import from_out
from streamgrade.config import load_config
from streamgrade.hints.episodes import load_tasks
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.pipeline import Pipeline, scan_source
from streamgrade.query import run_query
from streamgrade.sinks.reader import SessionsReader

ROOT = Path(__file__).parent.parent
sys.path.insert(0, str(ROOT / "scripts"))
from synth import make_sessions  # noqa: E402
from test_augment import make_data  # noqa: E402

N = 30


def grade(data: Path, out: Path, mode: str) -> None:
    cfg = load_config(env={}, overrides={"sinks": {"session_files": mode}})
    stats = anyio.run(Pipeline(cfg, out, HeuristicJudge(cfg)).run, scan_source([data], exclude=[out]))
    assert stats.failed == 0


@pytest.fixture(scope="module")
def outs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("readers")
    make_sessions(root / "data", N, per_file=10)
    res = {}
    for mode in ("all", "none"):
        grade(root / "data", root / mode, mode)
        res[mode] = root / mode
    return res


def test_query_sessions_view_reads_folders_and_store_alike(outs: dict[str, Path]):
    sql = "select session_id, task_id, reward, status, folder from sessions order by session_id"
    a, b = run_query(outs["all"], sql), run_query(outs["none"], sql)
    assert len(a.rows) == N and a.rows == b.rows  # folder names included: the store's rows carry theirs
    assert not list(outs["none"].glob("sessions/*/*/results.json"))
    joined = run_query(outs["none"], "select count(*) from scores join sessions using (session_id)")
    assert joined.rows == [(N,)]


def test_compare_rows_are_the_same_from_the_store(outs: dict[str, Path]):
    rows_a, ex_a = from_out(outs["all"], group_fields=["meta.row"])
    rows_b, ex_b = from_out(outs["none"], group_fields=["meta.row"])
    key = lambda r: r["session_id"]  # noqa: E731
    assert ex_a == ex_b and len(rows_a) == N
    for x, y in zip(sorted(rows_a, key=key), sorted(rows_b, key=key)):
        assert x["_tools"] == y["_tools"] and x["_tools"]  # tool calls counted from the stored sft.json
        assert x.get("_session", {}).get("meta") == y.get("_session", {}).get("meta")


def test_hints_episodes_and_transcripts_from_the_store(outs: dict[str, Path]):
    ta, ra = load_tasks(outs["all"], ["source_format", "task_id"])
    tb, rb = load_tasks(outs["none"], ["source_format", "task_id"])
    assert (ra.episodes, rb.episodes) == (N, N) and not rb.broken
    ea = {e.session_id: e for t in ta for e in t.episodes}
    eb = {e.session_id: e for t in tb for e in t.episodes}
    assert ea.keys() == eb.keys()
    sid = sorted(ea)[0]
    assert eb[sid].store is not None and ea[sid].store is None
    assert ea[sid].load() == eb[sid].load()  # the transcript read from the store on demand


def test_augment_rewrites_a_stored_recording(tmp_path: Path):
    data = make_data(tmp_path)
    for mode in ("all", "none"):
        grade(data, tmp_path / mode, mode)
        run = anyio.run(lambda: run_augment(tmp_path / mode, load_config(env={})))
        assert run.augmented >= 1 and not run.failed, run.failed
    with SessionsReader(tmp_path / "none") as r:
        (res_none, _) = r.files("rec1", None, True)
        assert r.store.record("rec1")["status"] == "graded"  # the rest of the row kept
    res_all = json.loads((next((tmp_path / "all" / "sessions").glob("*/rec1")) / "results.json").read_text())
    assert res_none["augment"]["actions"] and \
        [e["caption"] for e in res_none["augment"]["actions"]] == [e["caption"] for e in res_all["augment"]["actions"]]
    again = anyio.run(lambda: run_augment(tmp_path / "none", load_config(env={})))
    assert again.cached == run.sessions and again.augmented == 0  # read back from the store as done
