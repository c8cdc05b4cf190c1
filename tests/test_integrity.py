"""Issue 9: nothing lost, nothing corrupted, nothing hidden. One test (or more) per defect
that was reproduced on the code before the fix:

1. watch graded one session of a multi-session file and dropped the rest;
2. two runs on one output folder corrupted it for good;
3. a FIFO named like a session file hung the scan, and SIGTERM did not stop it;
4. session folder names were not one-to-one;
5. a 5,000-character id failed with ENAMETOOLONG and stayed pending forever;
6. interrupts, earlier failures, empty folders and unrecognised files were hidden;
plus the input size limits of item 8 (a huge file or line fails its session alone).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamgrade.config import WatchConfig, load_config
from streamgrade.errors import InputError
from streamgrade.formats import FORMATS
from streamgrade.formats._rows import _lines, clear_cache, load_rows
from streamgrade.inputs import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_SESSION_BYTES, configure_limits, open_regular
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.models import Session, SessionRef
from streamgrade.pipeline import Pipeline, scan_source
from streamgrade.sinks.jsonl import ExportMismatch
from streamgrade.sinks.layout import MAX_NAME_BYTES, session_folder
from streamgrade.sinks.lock import OutputLock, OutputLocked
from streamgrade.sources.scan import ScanReport
from streamgrade.sources.settle import Settler
from streamgrade.sources.watch import watch_source

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "clones"
sys.path.insert(0, str(ROOT / "scripts"))
from mock_provider import serve_in_thread  # noqa: E402
from synth import trajectory  # noqa: E402
from conftest import session_dirs

CLEAN_ENV = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}


def run(*args: str, env: dict | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "streamgrade", *args], capture_output=True, text=True,
                          env={**CLEAN_ENV, **(env or {})}, timeout=timeout)


def rows(n: int, start: int = 0) -> list[dict]:
    """``n`` tau-bench-shaped rows (synthetic: scripts/synth.py), task ids start..start+n."""
    import random

    rng = random.Random(start)
    return [{"task_id": i, "trial": 0, "reward": i % 2, "traj": trajectory(rng, i)} for i in range(start, start + n)]


def write_jsonl(path: Path, items: list[dict], mode: str = "w") -> None:
    with open(path, mode) as f:
        for r in items:
            f.write(json.dumps(r) + "\n")


def scores(out: Path) -> list[dict]:
    p = out / "exports" / "scores.jsonl"
    return [json.loads(x) for x in p.read_bytes().splitlines()] if p.exists() else []


async def grade(data: Path | list[Path], out: Path, cfg=None, report: ScanReport | None = None):
    cfg = cfg or load_config(env={})
    pipe = Pipeline(cfg, out, HeuristicJudge(cfg))
    paths = data if isinstance(data, list) else [data]
    return await pipe.run(scan_source(paths, exclude=[out], report=report))


# -- 1. watch: every row of a file, and only the appended rows ------------------------------------
def test_settler_keeps_every_row_of_a_file():
    s = Settler(settle_s=1.0)
    for i in range(25):
        s.touch(SessionRef(session_id=f"r{i}", format="openai-chat", path="/d/a.jsonl", files=("/d/a.jsonl",),
                           locator=str(i)), now=0.0)
    assert len(s) == 25 and len(s.due(1.0)) == 25


def test_row_fingerprints_survive_appends(tmp_path: Path):
    f = tmp_path / "agent.jsonl"
    write_jsonl(f, rows(3))
    before = [r.fingerprint for r in FORMATS["openai-chat"].find(tmp_path, ["agent.jsonl"])]
    write_jsonl(f, rows(2, start=3), mode="a")
    after = [r.fingerprint for r in FORMATS["openai-chat"].find(tmp_path, ["agent.jsonl"])]
    assert len(before) == 3 and len(after) == 5
    assert after[:3] == before and len(set(after)) == 5
    # a changed row changes its fingerprint, and only its own
    lines = f.read_text().splitlines()
    lines[1] = lines[1].replace('"reward": 1', '"reward": 0')
    f.write_text("\n".join(lines) + "\n")
    changed = [r.fingerprint for r in FORMATS["openai-chat"].find(tmp_path, ["agent.jsonl"])]
    assert changed[0] == before[0] and changed[1] != before[1] and changed[2:] == after[2:]


@pytest.mark.asyncio
async def test_watch_grades_every_row_then_only_the_appended_ones(tmp_path: Path):
    """Before: a 25-row JSONL copied into a running watch gave one scores line."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    settle = 0.4
    cfg = load_config(env={}, overrides={"watch": {"settle_s": settle}})
    pipe = Pipeline(cfg, out, HeuristicJudge(cfg))
    staged = tmp_path / "agent.jsonl"
    write_jsonl(staged, rows(25))

    async def source(send):
        await watch_source([data], send, WatchConfig(settle_s=settle), exclude=[out])

    async def wait_for(n: int) -> list[dict]:
        with anyio.fail_after(20):
            while len(got := scores(out)) < n:
                await anyio.sleep(0.05)
            return got

    async with anyio.create_task_group() as tg:
        tg.start_soon(pipe.run, source)
        await anyio.sleep(0.3)
        shutil.copy(staged, data / "agent.jsonl")
        assert len(await wait_for(25)) == 25
        write_jsonl(data / "agent.jsonl", rows(5, start=25), mode="a")
        await wait_for(30)
        await anyio.sleep(settle + 0.5)  # nothing more comes
        pipe.stop()
    got = scores(out)
    ids = [r["session_id"] for r in got]
    assert len(ids) == 30 and len(set(ids)) == 30
    assert {f"agent.task{i}.trial0" for i in range(30)} == set(ids)


# -- 2. one process per output folder; exports that disagree with the ledger ----------------------
def test_lock_names_the_holder_and_dies_with_it(tmp_path: Path):
    code = ("import sys, time; from streamgrade.sinks.lock import OutputLock; "
            f"l = OutputLock({str(tmp_path)!r}, 'watch'); l.acquire(); print('held', flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "held"
        with pytest.raises(OutputLocked) as err:
            OutputLock(tmp_path).acquire()
        assert f"process {child.pid}" in str(err.value) and "streamgrade watch" in str(err.value)
    finally:
        child.kill()  # kill -9: no cleanup runs
        child.wait()
    lock = OutputLock(tmp_path)
    lock.acquire()  # no stale lock
    assert lock.held
    lock.release()


def test_second_grade_on_one_output_exits_2_and_the_first_finishes_exactly_once(tmp_path: Path):
    """Before: both runs exited 0, 3,466 requests for 2,000 sessions, and the next run cut
    scores.jsonl mid-line."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_jsonl(data / "a.jsonl", rows(120))
    with serve_in_thread(latency_ms=60) as url:
        env = {**CLEAN_ENV, "STREAMGRADE_BASE_URL": url, "STREAMGRADE_OPENAI__RPM": "600000",
               "STREAMGRADE_OPENAI__MAX_CONCURRENCY": "4", "STREAMGRADE_PIPELINE__GRADE_WORKERS": "4"}
        first = subprocess.Popen([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out),
                                  "--no-progress"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        deadline = time.monotonic() + 20
        while not (out / ".streamgrade.holder").exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        t0 = time.monotonic()
        second = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out),
                                 "--no-progress"], capture_output=True, text=True, env=env, timeout=60)
        second_took = time.monotonic() - t0
        _, err = first.communicate(timeout=120)
        requests = url.stats()["requests"]
    assert second.returncode == 2, second.stderr
    assert f"in use by process {first.pid}" in second.stderr and second_took < 10
    assert first.returncode == 0, err
    got = scores(out)
    assert len(got) == 120 and len({r["session_id"] for r in got}) == 120
    assert requests == 120
    db = sqlite3.connect(out / "state.sqlite")
    committed = dict(db.execute("SELECT name, committed_bytes FROM exports"))
    db.close()
    for name, size in committed.items():
        assert (out / "exports" / name).stat().st_size == size, name


@pytest.mark.asyncio
async def test_export_that_disagrees_with_the_ledger_refuses_and_repair_mends_it(tmp_path: Path):
    out = tmp_path / "out"
    await grade(EXAMPLES, out)
    sc = out / "exports" / "scores.jsonl"
    good = sc.read_bytes()
    first, second = good.splitlines(keepends=True)[:2]
    # what two runs on one folder left: a duplicated line, half a line, a ledger that no
    # longer points at a line end
    sc.write_bytes(first + first + second[:40])
    with pytest.raises(ExportMismatch) as err:
        Pipeline(load_config(env={}), out, HeuristicJudge(load_config(env={}))).open()
    assert "streamgrade repair" in str(err.value) and "scores.jsonl" in str(err.value)
    assert sc.read_bytes() == first + first + second[:40]  # nothing changed
    res = run("grade", str(EXAMPLES), "-o", str(out), "--no-progress")
    assert res.returncode == 2 and "streamgrade repair" in res.stderr, res.stderr
    res = run("repair", str(out))
    assert res.returncode == 0, res.stderr
    assert "dropped 1 duplicate and 1 broken lines" in res.stderr
    backups = list((out / "exports").glob("backup-*/scores.jsonl"))
    assert len(backups) == 1 and backups[0].read_bytes() == first + first + second[:40]
    res = run("grade", str(EXAMPLES), "-o", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    got = scores(out)
    assert sorted(r["session_id"] for r in got) == sorted(json.loads(x)["session_id"] for x in good.splitlines())
    assert sc.read_bytes().endswith(b"\n")


@pytest.mark.asyncio
async def test_recovery_never_cuts_a_line_the_ledger_committed(tmp_path: Path):
    out = tmp_path / "out"
    await grade(EXAMPLES, out)
    db = sqlite3.connect(out / "state.sqlite")
    first_len = len((out / "exports" / "scores.jsonl").read_bytes().splitlines(keepends=True)[0])
    db.execute("UPDATE exports SET committed_bytes=? WHERE name='scores.jsonl'", (first_len,))
    db.commit()
    db.close()
    before = (out / "exports" / "scores.jsonl").read_bytes()
    with pytest.raises(ExportMismatch, match="belong to sessions the ledger records as appended"):
        Pipeline(load_config(env={}), out, HeuristicJudge(load_config(env={}))).open()
    assert (out / "exports" / "scores.jsonl").read_bytes() == before


# -- 3. FIFOs, sockets, devices; a stop with a reader stuck in I/O ---------------------------------
def test_open_regular_refuses_a_fifo_at_once(tmp_path: Path):
    fifo = tmp_path / "b.jsonl"
    os.mkfifo(fifo)
    t0 = time.monotonic()
    with pytest.raises(InputError, match="FIFO"):
        open_regular(fifo)
    assert time.monotonic() - t0 < 1


def test_grade_with_a_fifo_and_a_socket_among_the_inputs_finishes(tmp_path: Path):
    """Before: grade hung on the FIFO, and SIGTERM printed a summary without exiting."""
    data = tmp_path / "data"
    data.mkdir()
    write_jsonl(data / "a.jsonl", rows(5))
    os.mkfifo(data / "b.jsonl")
    os.mkfifo(data / "trajectory.json")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(data / "c.json"))
    try:
        res = run("grade", str(data), "-o", str(tmp_path / "out"), "--no-progress", timeout=60)
    finally:
        sock.close()
    assert res.returncode == 0, res.stderr
    assert "5 graded" in res.stderr
    assert "3 files not recognised" in res.stderr
    assert "b.jsonl: not a regular file: a FIFO" in res.stderr and "c.json: not a regular file: a socket" in res.stderr


class _StuckFormat:
    """A format whose reader blocks as if on a hung network mount (until ``release``)."""

    name = "stuck"

    def __init__(self) -> None:
        self.entered, self.release = threading.Event(), threading.Event()

    def find(self, folder, names):
        return []

    def assemble(self, ref, config) -> Session:
        self.entered.set()
        self.release.wait(60)
        raise InputError(ref.path, "released")


@pytest.mark.asyncio
async def test_stop_with_a_reader_stuck_in_io_ends_within_the_drain_timeout(tmp_path: Path):
    from streamgrade.formats import register_format, unregister_format

    stuck = _StuckFormat()
    register_format(stuck)
    cfg = load_config(env={}, overrides={"pipeline": {"drain_timeout_s": 1.0}})
    pipe = Pipeline(cfg, tmp_path / "out", HeuristicJudge(cfg))

    async def source(send):
        async with send:
            await send.send(SessionRef(session_id="s", format="stuck", path=str(tmp_path / "s"),
                                       files=(), fingerprint="f"))
            await anyio.sleep_forever()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(pipe.run, source)
            with anyio.fail_after(10):
                while not stuck.entered.is_set():
                    await anyio.sleep(0.01)
            t0 = time.monotonic()
            pipe.stop()
        took = time.monotonic() - t0
    finally:
        stuck.release.set()
        unregister_format("stuck")
    assert took < 5
    assert pipe.stats.drain_timed_out and pipe.stats.stopped_early and pipe.stats.pending == 1


def test_process_exits_even_with_a_thread_stuck_in_io():
    code = ("import threading; from streamgrade.summary import finish; "
            "threading.Thread(target=threading.Event().wait).start(); finish(130)")
    res = subprocess.run([sys.executable, "-c", code], timeout=20)
    assert res.returncode == 130


# -- 4 and 5. session folder names: one-to-one, bounded, ids of any length ----------------------
def test_folder_names_of_look_alike_ids_differ():
    ids = ["sess 1", "sess_1", "sess:1", "trail.", "trail", ".", "..", ".hidden", "a/b", "a_b", "é", "e"]
    names = [session_folder(i) for i in ids]
    assert len(set(names)) == len(ids), names
    assert session_folder("gpt-4o-airline.task3.trial0") == "gpt-4o-airline.task3.trial0"
    assert all(n not in (".", "..") and not n.startswith(".") and "/" not in n for n in names)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=300), min_size=2, max_size=8, unique=True))
def test_folder_names_are_one_to_one_and_bounded(ids):
    names = [session_folder(i) for i in ids]
    assert len(set(names)) == len(ids)
    for n in names:
        assert 0 < len(n.encode()) <= MAX_NAME_BYTES and "/" not in n and "\0" not in n
        assert n not in (".", "..") and not n.startswith(".")


def test_lookalike_folders_get_a_folder_each(tmp_path: Path):
    """Before: sess 1/, sess_1/ and sess:1/ all landed in sessions/sess_1/."""
    data, out = tmp_path / "data", tmp_path / "out"
    for name in ("sess 1", "sess_1", "sess:1"):
        shutil.copytree(EXAMPLES / "20251007_131852", data / name)
    res = run("grade", str(data), "-o", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    folders = session_dirs(out)
    assert len(folders) == 3
    recs = {json.loads((f / "scores.json").read_text())["session_id"] for f in folders}
    assert recs == {"sess 1", "sess_1", "sess:1"}
    index = (out / "index.html").read_text()
    assert index.count("<tr><td class=\"id\">") == 3 and '<b id="n-graded" class="st-graded">3</b>' in index


@pytest.mark.asyncio
async def test_a_5000_character_task_id_is_graded_under_its_full_id(tmp_path: Path):
    """Before: ENAMETOOLONG, no scores line, and every later run exited 1."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    row = rows(1)[0]
    row["task_id"] = "t" * 5000
    write_jsonl(data / "long.jsonl", [row])
    stats = await grade(data, out)
    assert (stats.graded, stats.failed) == (1, 0)
    (rec,) = scores(out)
    assert rec["session_id"] == f"long.task{'t' * 5000}.trial0" and rec["task_id"] == "t" * 5000
    (folder,) = session_dirs(out)
    assert len(folder.name.encode()) <= MAX_NAME_BYTES
    stats = await grade(data, out)
    assert (stats.skipped, stats.graded, stats.failed) == (1, 0, 0)


# -- 6. interrupts, earlier failures, nothing found, unrecognised files ---------------------------
def test_rerun_counts_sessions_that_failed_earlier_and_exits_1(tmp_path: Path):
    """Before: "2 unchanged (skipped)" and exit 0."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    (data / "a.json").write_text('{"traj": 5}')
    (data / "b.json").write_text('{"messages": "x"}')
    assert run("grade", str(data), "-o", str(out)).returncode == 1
    res = run("grade", str(data), "-o", str(out))
    assert res.returncode == 1, res.stderr
    assert "0 failed, 2 failed earlier (unchanged input)" in res.stderr
    assert "failed earlier, unchanged since" in res.stderr and "a.json" in res.stderr and "b.json" in res.stderr


def test_empty_folder_exits_5_and_lists_the_formats(tmp_path: Path):
    """Before: "0 of 0 found", exit 0, no hint."""
    (tmp_path / "empty").mkdir()
    res = run("grade", str(tmp_path / "empty"), "-o", str(tmp_path / "out"))
    assert res.returncode == 5
    assert "no session found" in res.stderr
    for name in FORMATS:
        assert f"  {name}: " in res.stderr


def test_unrecognised_files_are_counted_with_their_reason(tmp_path: Path):
    """Before: notes.txt and conf.json were skipped without a word, even with -v."""
    data, out = tmp_path / "data", tmp_path / "out"
    shutil.copytree(EXAMPLES / "20251007_131852", data / "s1")
    (data / "notes.txt").write_text("hello")
    (data / "conf.json").write_text('{"a": 1}')
    for i in range(7):
        (data / f"x{i}.yaml").write_text("k: v")
    res = run("grade", str(data), "-o", str(out))
    assert res.returncode == 0, res.stderr
    assert "9 files not recognised by any format" in res.stderr
    assert "conf.json: JSON without session rows (openai-chat: no row holds a messages list" in res.stderr
    assert "notes.txt: no format reads .txt files" in res.stderr and "... and 4 more" in res.stderr
    verbose = run("grade", str(data), "-o", str(out), "-v")
    assert verbose.stderr.count("not recognised: ") == 9
    strict = run("grade", str(data), "-o", str(out), "--strict")
    assert strict.returncode == 6


def test_summary_escapes_hostile_names(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    bad = data / "x\n2026-01-01T00:00:00 INFO    graded forged"
    shutil.copytree(EXAMPLES / "20251007_131852", bad)
    (bad / "meta.json").write_text("{}")
    res = run("grade", str(data), "-o", str(out))
    assert res.returncode == 1
    assert not any(line.startswith("2026-01-01") for line in res.stderr.splitlines()), res.stderr
    assert "x\\n2026-01-01" in res.stderr


# -- 8. input size limits --------------------------------------------------------------------------
def test_jsonl_lines_are_read_in_blocks_and_overlong_lines_never_held(tmp_path: Path):
    import io

    data = b"ab\n" + b"x" * 50 + b"\n\ncd\n" + b"y" * 30
    got = list(_lines(io.BytesIO(data), limit=20))
    assert [(n, v if isinstance(v, int) else v.decode(), last) for n, _, v, last in got] == [
        (1, "ab", False), (2, 50, False), (3, "", False), (4, "cd", False), (5, 30, True)]
    for block in (1, 2, 3, 7):  # block boundaries anywhere
        import streamgrade.formats._rows as r

        old, r._BLOCK = r._BLOCK, block
        try:
            assert list(_lines(io.BytesIO(data), limit=20)) == got
        finally:
            r._BLOCK = old


@pytest.mark.asyncio
async def test_an_oversized_row_fails_alone_and_an_oversized_file_fails_with_the_reason(tmp_path: Path):
    """Before: a 200 MB single-line session took 1.07 GB and was copied into three outputs."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    items = rows(3)
    items[1]["traj"][1]["content"] = "z" * 300_000
    write_jsonl(data / "a.jsonl", items)
    write_jsonl(data / "only.jsonl", [items[1]])  # a file whose one row is over the limit
    shutil.copytree(EXAMPLES / "20250817_232256", data / "desktop")  # input_log.jsonl: 319,988 bytes
    clear_cache()
    cfg = load_config(env={}, overrides={"limits": {"max_session_bytes": 200_000}})
    try:
        stats = await grade(data, out, cfg)
    finally:
        clear_cache()
        configure_limits(max_session_bytes=DEFAULT_MAX_SESSION_BYTES, max_file_bytes=DEFAULT_MAX_FILE_BYTES)
    by_id = {r["session_id"]: r for r in scores(out)}
    assert (stats.graded, stats.failed) == (2, 3), by_id
    assert "only.jsonl:1: line is 300,899 bytes" in by_id["only.row0"]["error"]
    assert by_id["a.task0.trial0"]["status"] == by_id["a.task2.trial0"]["status"] == "graded"
    big = by_id["a.row1"]  # its task id is in the line that was never read
    assert big["status"] == "failed" and "a.jsonl:2: line is 300,899 bytes, over the limit of 200,000 " \
        "([limits] max_session_bytes)" in big["error"]
    desk = by_id["desktop"]
    assert desk["status"] == "failed" and "input_log.jsonl: file is 319,988 bytes, over the limit of 200,000 " \
        "([limits] max_session_bytes)" in desk["error"]


def test_row_cache_is_bounded_by_bytes(tmp_path: Path):
    import streamgrade.formats._rows as r

    clear_cache()
    old, r.CACHE_BYTES = r.CACHE_BYTES, 50_000
    try:
        for i in range(5):
            write_jsonl(tmp_path / f"{i}.jsonl", rows(20, start=i * 20))
            load_rows(tmp_path / f"{i}.jsonl")
        assert len(r._cache) < 5 and sum(x.nbytes for x in r._cache.values()) <= max(
            50_000, max(x.nbytes for x in r._cache.values()))
    finally:
        r.CACHE_BYTES = old
        clear_cache()


@pytest.mark.asyncio
async def test_a_version_seen_twice_while_in_flight_is_graded_once(tmp_path: Path):
    """watch sends a file's refs again on every change to it: a version already on its way
    must not be graded (and appended) twice."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_jsonl(data / "a.jsonl", rows(3))
    (ref, *_) = [r for r in FORMATS["openai-chat"].find(data, ["a.jsonl"])]
    cfg = load_config(env={})
    pipe = Pipeline(cfg, out, HeuristicJudge(cfg))

    async def source(send):
        async with send:
            for _ in range(5):
                await send.send(ref)
            await anyio.sleep(0.2)
            await send.send(ref)  # again after it was graded

    stats = await pipe.run(source)
    assert [r["session_id"] for r in scores(out)] == [ref.session_id]
    assert (stats.graded, stats.skipped) == (1, 1)


@pytest.mark.asyncio
async def test_rows_graded_before_row_fingerprints_are_not_graded_again(tmp_path: Path):
    """Upgrading must not regrade (and pay for) a whole backlog: a row whose ledger entry
    carries the old whole-file fingerprint is unchanged while its file is."""
    from streamgrade.formats import fingerprint

    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    write_jsonl(data / "a.jsonl", rows(4))
    await grade(data, out)
    db = sqlite3.connect(out / "state.sqlite")
    db.execute("UPDATE sessions SET fingerprint=?", (fingerprint([str(data / "a.jsonl")]),))  # the old scheme
    db.commit()
    db.close()
    stats = await grade(data, out)
    assert (stats.skipped, stats.graded) == (4, 0) and len(scores(out)) == 4
    write_jsonl(data / "a.jsonl", rows(1, start=4), mode="a")  # the file changes: its rows get row fingerprints
    stats = await grade(data, out)
    assert (stats.graded, stats.skipped) == (5, 0)
    stats = await grade(data, out)
    assert (stats.graded, stats.skipped) == (0, 5)


def test_watch_reports_a_new_unrecognised_file_once_and_never_a_session_file(tmp_path: Path):
    """In watch, a file that appears later and belongs to no session is logged once with the
    reason; files of sessions (and those inside a session's folder) are not reported."""
    from streamgrade.sources.watch import refs_for_change

    shutil.copytree(EXAMPLES / "20251007_131852", tmp_path / "s1")
    (tmp_path / "s1" / "screenshot.png").write_bytes(b"\x89PNG")  # inside a session folder
    (tmp_path / "notes.txt").write_text("hello")
    write_jsonl(tmp_path / "a.jsonl", rows(2))
    os.mkfifo(tmp_path / "pipe.jsonl")
    report = ScanReport(keep=10, once=True)
    for _ in range(3):  # watch sees each path on every change
        for name in ("s1/input_log.jsonl", "s1/screenshot.png", "notes.txt", "a.jsonl", "pipe.jsonl", "gone.json"):
            refs_for_change(tmp_path / name, report=report)
    assert report.unrecognised == 2, report.examples
    assert dict(report.examples) == {str(tmp_path / "notes.txt"): "no format reads .txt files",
                                     str(tmp_path / "pipe.jsonl"): "not a regular file: a FIFO (named pipe)"}
