"""Watch mode: the settle rule (fake clock), and the real flow with watchfiles: a session
copied in while the pipeline runs is graded within settle + 1 s, once."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import anyio
import pytest

from streamgrade.config import WatchConfig, load_config
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.models import SessionRef
from streamgrade.pipeline import Pipeline
from streamgrade.sources.settle import Settler
from streamgrade.sources.watch import refs_for_change, watch_source

EXAMPLES = Path(__file__).parent.parent / "examples" / "clones"


def _ref(path: str) -> SessionRef:
    return SessionRef(session_id=Path(path).name, format="clones-desktop", path=path, files=(path + "/meta.json",))


def test_settler_waits_for_quiet_period():
    s = Settler(settle_s=5.0)
    s.touch(_ref("/a"), now=0.0)
    s.touch(_ref("/b"), now=1.0)
    assert s.due(4.9) == [] and s.next_due() == 5.0
    s.touch(_ref("/a"), now=4.0)  # /a changed again: its quiet period restarts
    assert [r.path for r in s.due(6.0)] == ["/b"]
    assert s.due(8.9) == []
    assert [r.path for r in s.due(9.0)] == ["/a"]
    assert len(s) == 0 and s.next_due() is None


def test_refs_for_change_maps_files_and_folders(tmp_path: Path):
    shutil.copytree(EXAMPLES / "20251007_131852", tmp_path / "s1")
    shutil.copytree(EXAMPLES / "web", tmp_path / "web")
    refs = refs_for_change(tmp_path / "s1" / "input_log.jsonl")
    assert [r.session_id for r in refs] == ["s1"]
    assert [r.session_id for r in refs_for_change(tmp_path / "s1")] == ["s1"]
    web = refs_for_change(tmp_path / "web" / "viralmind.race_sessions.json")
    assert [r.format for r in web] == ["clones-web"]
    assert refs_for_change(tmp_path / "s1" / "unrelated.txt") == []
    assert refs_for_change(tmp_path / "s1" / "meta.json", exclude=[str(tmp_path)]) == []


async def _wait_for_lines(path: Path, n: int, timeout: float) -> list[dict]:
    with anyio.fail_after(timeout):
        while True:
            if path.exists():
                lines = [json.loads(x) for x in path.read_bytes().splitlines()]
                if len(lines) >= n:
                    return lines
            await anyio.sleep(0.02)


@pytest.mark.asyncio
async def test_watch_grades_new_session_after_settle(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    shutil.copytree(EXAMPLES / "20250817_232256", data / "old")  # present at start
    settle = 0.5
    cfg = load_config(env={}, overrides={"watch": {"settle_s": settle}})
    pipe = Pipeline(cfg, out, HeuristicJudge(cfg))
    scores = out / "exports" / "scores.jsonl"

    async def source(send):
        await watch_source([data], send, WatchConfig(settle_s=settle), exclude=[out])

    async with anyio.create_task_group() as tg:
        tg.start_soon(pipe.run, source)
        first = await _wait_for_lines(scores, 1, timeout=10)
        assert first[0]["session_id"] == "old"
        # Copy a session in, file by file, while the daemon runs.
        new = data / "new"
        new.mkdir()
        shutil.copy(EXAMPLES / "20251007_131852" / "input_log.jsonl", new / "input_log.jsonl")
        await anyio.sleep(0.2)
        shutil.copy(EXAMPLES / "20251007_131852" / "meta.json", new / "meta.json")
        last_write = time.monotonic()
        lines = await _wait_for_lines(scores, 2, timeout=settle + 5)
        latency = time.monotonic() - last_write
        assert lines[1]["session_id"] == "new" and lines[1]["status"] == "graded"
        assert latency >= settle * 0.9, "graded before the settle time passed"
        assert latency <= settle + 1.0, f"graded {latency:.2f}s after the last write"
        # touching nothing more: no further lines; stop drains and returns
        await anyio.sleep(settle + 0.3)
        pipe.stop()
    assert len(scores.read_bytes().splitlines()) == 2
    assert pipe.stats.graded == 2
