"""``grade --engine ray``: the Ray Data engine (src/streamgrade/engines/).

Three tests start Ray (a private single-node Ray, in a subprocess each, bounded in time):
the shared corpus's tau-bench graded with the Ray engine and with the local one (same
session set, identical heuristic scores), and a run whose driver is killed with SIGKILL
mid-run, checked while it runs (Ray on 127.0.0.1 only, no ~/.ray/auth_token) and after
(its Ray processes die with it; a rerun loses and duplicates nothing). The rest exercise
the pieces without a cluster: the actor UDF in-process, the limit split, the CLI checks.

Skipped when Ray is not installed (pip install 'streamgrade[ray]'); CI sets
STREAMGRADE_REQUIRE_RAY=1 so that they must run.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from streamgrade.cli import main
from streamgrade.config import load_config
from conftest import session_dir

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
sys.path.insert(0, str(ROOT / "scripts"))

try:
    importlib.import_module("ray.data")
except ImportError:
    if os.environ.get("STREAMGRADE_REQUIRE_RAY") == "1":
        raise RuntimeError("STREAMGRADE_REQUIRE_RAY=1 but Ray is not installed (pip install -e '.[test,ray]')")
    pytest.skip("Ray is not installed: pip install 'streamgrade[ray]' (CI sets STREAMGRADE_REQUIRE_RAY=1)",
                allow_module_level=True)


def _env(home: Path, **extra: str) -> dict[str, str]:
    """The environment of a CLI subprocess: no judge keys or streamgrade settings from the
    caller, HOME in the test's folder, streamgrade importable from this checkout."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_", "RAY_"))}
    home.mkdir(parents=True, exist_ok=True)
    env.update(HOME=str(home), PYTHONPATH=os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")]), **extra)
    return env


def _grade(data: Path, out: Path, env: dict[str, str], *args: str) -> list[str]:
    return [sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress", *args]


def _scores(out: Path) -> dict[str, dict]:
    rows = [json.loads(line) for line in (out / "exports" / "scores.jsonl").read_bytes().splitlines()]
    by_id = {r["session_id"]: r for r in rows}
    assert len(by_id) == len(rows), "a session has two lines in scores.jsonl"
    return by_id


# -- with Ray ------------------------------------------------------------------------------


@pytest.mark.skipif(not (CORPUS / "tau-bench").is_dir(), reason=f"shared corpus not found at {CORPUS}")
def test_tau_bench_with_ray_equals_local(tmp_path: Path):
    env = _env(tmp_path / "home")
    data = CORPUS / "tau-bench"
    local = subprocess.run(_grade(data, tmp_path / "local", env, "--judge", "heuristic"),
                           capture_output=True, text=True, env=env, timeout=180)
    with_ray = subprocess.run(_grade(data, tmp_path / "ray", env, "--judge", "heuristic", "--engine", "ray"),
                              capture_output=True, text=True, env=env, timeout=180)
    assert local.returncode == 0, local.stderr
    assert with_ray.returncode == 0, with_ray.stderr
    assert "engine: ray, private Ray" in with_ray.stderr and "127.0.0.1" in with_ray.stderr
    a, b = _scores(tmp_path / "local"), _scores(tmp_path / "ray")
    assert len(a) == 200 and set(a) == set(b)
    same = ("status", "score", "components", "confidence", "reward", "fingerprint", "source_path", "n_actions")
    assert {k: [a[k][f] for f in same] for k in a} == {k: [b[k][f] for f in same] for k in b}
    for name in ("sft.chatml.jsonl", "sharegpt.jsonl"):  # training rows rebuilt from the session folders
        rows = lambda out: sorted((out / "exports" / name).read_bytes().splitlines())  # noqa: E731
        assert rows(tmp_path / "local") == rows(tmp_path / "ray")
    one = "gpt-4o-airline.task7.trial2"
    for f in ("results.json", "sft.json"):
        assert (session_dir(tmp_path / "local", one) / f).read_bytes() == (session_dir(tmp_path / "ray", one) / f).read_bytes()


def test_driver_killed_mid_run_then_rerun_loses_nothing(tmp_path: Path, request):
    from mock_provider import serve_in_thread
    from synth import make_sessions

    n = 600
    data, out, home = tmp_path / "data", tmp_path / "out", tmp_path / "home"
    make_sessions(data, n, per_file=50)
    with serve_in_thread(latency_ms=40) as url:
        env = _env(home, STREAMGRADE_BASE_URL=url, STREAMGRADE_OPENAI__RPM="600000",
                   STREAMGRADE_OPENAI__MAX_CONCURRENCY="4", STREAMGRADE_RAY__BLOCK_ROWS="8")
        proc = subprocess.Popen(_grade(data, out, env, "--engine", "ray"), env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        tree: set[int] = set()
        try:
            scores = out / "exports" / "scores.jsonl"
            deadline = time.monotonic() + 120
            while not (scores.exists() and scores.read_bytes().count(b"\n") >= 1):
                assert proc.poll() is None, proc.stderr.read().decode()
                assert time.monotonic() < deadline, "no session graded within 120 s"
                time.sleep(0.05)
            tree = _descendants(proc.pid)
            listening = _listening(tree | {proc.pid})
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            at_kill = scores.read_bytes().count(b"\n")
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stderr.close()
            request.addfinalizer(lambda: _kill_all(tree))
        assert 0 < at_kill < n, f"the kill came at {at_kill} of {n} sessions: not mid-run"
        # While it ran: Ray's processes listened, on the loopback only; no token file written.
        assert len(tree) >= 3 and listening, (tree, listening)
        assert all(_loopback(addr) for _, addr in listening), listening
        assert not (home / ".ray").exists()
        # Its Ray died with it (PR_SET_PDEATHSIG): GCS, raylet, workers. Ray's two agents
        # notice at once but then try for 60 s (a fixed timeout) to tell the dead GCS.
        deadline = time.monotonic() + 30
        while (alive := {p for p in tree if _alive(p) and _cmdline(p) not in RAY_AGENTS}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not alive, f"Ray processes outlived the killed driver: {[_cmdline(p) for p in alive]}"

        rerun = subprocess.run(_grade(data, out, env, "--engine", "ray"), capture_output=True, text=True,
                               env=env, timeout=240)
        stats = url.stats()
    assert rerun.returncode == 0, rerun.stderr
    # 0 lost, 0 duplicates: every session exactly once in scores.jsonl and the ledger.
    lines = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_bytes().splitlines()]
    per_session = Counter(r["session_id"] for r in lines)
    assert len(per_session) == n and max(per_session.values()) == 1
    assert {r["status"] for r in lines} == {"graded"}
    db = sqlite3.connect(out / "state.sqlite")
    try:
        assert dict(db.execute("SELECT status, count(*) FROM sessions GROUP BY status").fetchall()) == {"graded": n}
        committed = db.execute("SELECT committed_bytes FROM exports WHERE name='scores.jsonl'").fetchone()[0]
        appends = db.execute("SELECT count(*) FROM appends WHERE export='scores.jsonl'").fetchone()[0]
    finally:
        db.close()
    assert committed == (out / "exports" / "scores.jsonl").stat().st_size and appends == n
    for name in ("sft.chatml.jsonl", "sharegpt.jsonl"):
        rows = (out / "exports" / name).read_bytes().splitlines()
        assert rows and len(set(rows)) == len(rows)
    assert len(list((out / "sessions").glob("*/*/scores.json"))) == n
    assert stats["chat_requests"] >= n  # a session in flight at the kill is graded again


# -- without a cluster ---------------------------------------------------------------------


def test_actor_grades_a_batch_and_one_bad_session_is_its_own_failure(tmp_path: Path):
    """GradeActor in this process (no Ray): every session comes back, the broken one with
    its input error naming the file (as the local assemble stage leaves it), the good ones
    assembled and graded."""
    import pyarrow as pa

    from streamgrade.engines.ray_udf import GradeActor, decode_results, encode_block
    from streamgrade.sources.scan import scan
    from synth import make_sessions

    make_sessions(tmp_path / "data", 3, per_file=3)
    (tmp_path / "data" / "broken.json").write_text('[{"task_id": 1, "trial": 0, "reward": 1.0, "traj": [{"role": ')
    refs = sorted(scan([tmp_path / "data"]), key=lambda r: r.path)
    cfg = load_config(env={}, overrides={"run": {"judge": "heuristic"}})
    actor = GradeActor(cfg)

    async def call() -> list:  # two blocks in one batch, as map_batches may give them
        cells = [encode_block([0, 1], refs[:2]), encode_block(list(range(2, len(refs))), refs[2:])]
        return [t async for t in actor(pa.table({"refs": pa.array(cells, pa.binary())}))]

    tables = asyncio.run(call())
    assert [t.num_rows for t in tables] == [2]  # one results cell per block
    results = {r.key: r for t in tables for cell in t.column("results").to_pylist() for r in decode_results(cell)}
    assert sorted(results) == list(range(len(refs)))
    bad = next(r for k, r in results.items() if refs[k].path.endswith("broken.json"))
    assert bad.error_kind == "input" and "broken.json" in bad.error
    assert bad.record.status == "failed" and bad.record.error == bad.error and "results.json" not in bad.encoded.files
    good = {refs[k].session_id: r for k, r in results.items() if not refs[k].path.endswith("broken.json")}
    assert sorted(good) == [f"synth-000000.task{i}.trial0" for i in range(3)]
    for sid, g in good.items():  # what the driver's file writer would have built
        assert g.error is None and g.record.session_id == sid and g.record.status == "graded"
        assert set(g.record.components) == {"outcome", "process", "efficiency"} and g.record.judge.kind == "heuristic"
        assert sorted(g.encoded.files) == ["results.json", "scores.json", "sft.json"]
        results_json = json.loads(g.encoded.files["results.json"])
        assert results_json["chunks"] and results_json["verdict"]["components"]
        assert json.loads(g.encoded.files["sft.json"])["messages"]
        [(name, line)] = g.encoded.lines
        assert name == "scores.jsonl" and json.loads(line)["score"] == g.record.score


def test_frames_travel_from_the_actor_to_the_driver_output(tmp_path: Path):
    """A Clones recording graded by the actor (in this process): its frames come back as
    bytes, and the driver's delivery writes them under OUT/sessions/<id>/frames/, where the
    job's frame paths point."""
    import shutil

    import anyio
    import pyarrow as pa

    from streamgrade.engines.ray_engine import RayPipeline
    from streamgrade.engines.ray_udf import GradeActor, decode_results, encode_block
    from streamgrade.judges import HeuristicJudge
    from streamgrade.pipeline import Pipeline
    from streamgrade.job import Job
    from streamgrade.sources.scan import scan
    from test_frames_pipeline import SESSION, make_recording

    data = tmp_path / "data" / "rec1"
    shutil.copytree(SESSION, data)
    make_recording(data / "recording.mp4")
    [ref] = list(scan([tmp_path / "data"]))
    cfg = load_config(env={}, overrides={"run": {"judge": "heuristic"}, "frames": {"per_chunk": 2, "longest_side": 160}})
    actor = GradeActor(cfg)

    async def call() -> list:
        return [t async for t in actor(pa.table({"refs": pa.array([encode_block([7], [ref])], pa.binary())}))]

    [graded] = decode_results(asyncio.run(call())[0].column("results")[0].as_py())
    assert graded.key == 7 and graded.error is None and graded.frames
    results_json = json.loads(graded.encoded.files["results.json"])
    wanted = {f["path"] for f in results_json["frames"] + results_json["steps"]}  # the judge's and the steps'
    assert results_json["frames"] and sorted(f"frames/{name}" for name in graded.frames) == sorted(wanted)
    assert not any(actor.scratch.rglob("*.jpg"))  # the actor's scratch copy is gone

    pipe = RayPipeline(cfg, tmp_path / "out", HeuristicJudge(cfg))
    Pipeline.open(pipe)  # the output folder and ledger, no Ray
    try:
        job = pipe._sent[7] = Job(ref)

        async def deliver() -> Job:
            send, recv = anyio.create_memory_object_stream(1)
            async with send, recv:
                await pipe._deliver([graded], send)
                return recv.receive_nowait()

        assert anyio.run(deliver) is job and job.built == (graded.record, graded.encoded) and not pipe._sent
        folder = pipe.layout.frames_dir(ref.session_id)
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == graded.frames
        assert all((pipe.layout.session_dir(ref.session_id) / f["path"]).is_file() for f in results_json["frames"])
    finally:
        Pipeline.close(pipe)


@pytest.mark.parametrize("mode", ["all", "none"])
def test_what_the_actor_builds_the_driver_writes_as_a_local_run_would(tmp_path: Path, mode: str):
    """The record and encoded outputs an actor builds (after the pickle trip back) are
    written and committed by the driver's writers into the same output a local run leaves:
    the same scores lines, scores.json, results.json and sft.json per session, in folders
    (``session_files = "all"``) or in the session store (``"none"``), an input failure
    included."""
    import anyio
    import pyarrow as pa

    from streamgrade.engines.ray_engine import RayPipeline
    from streamgrade.engines.ray_udf import GradeActor, decode_results, encode_block
    from streamgrade.job import Job
    from streamgrade.judges import HeuristicJudge
    from streamgrade.pipeline import Pipeline
    from streamgrade.sinks.reader import SessionsReader
    from streamgrade.sinks.writers import write_all
    from streamgrade.sources.scan import scan
    from streamgrade.sources.source import scan_source
    from synth import make_sessions

    data = tmp_path / "data"
    make_sessions(data, 4, per_file=2)
    (data / "broken.json").write_text('[{"task_id": 1, "trial": 0, "reward": 1.0, "traj": [{"role": ')
    cfg = load_config(env={}, overrides={"run": {"judge": "heuristic"}, "sinks": {"session_files": mode}})
    anyio.run(Pipeline(cfg, tmp_path / "local", HeuristicJudge(cfg)).run, scan_source([data]))

    refs = sorted(scan([data]), key=lambda r: r.session_id)
    actor = GradeActor(cfg, judge_info=HeuristicJudge(cfg).info)

    async def call() -> list:
        return [t async for t in actor(pa.table({"refs": pa.array([encode_block(list(range(len(refs))), refs)],
                                                                   pa.binary())}))]

    graded = decode_results(asyncio.run(call())[0].column("results")[0].as_py())
    pipe = RayPipeline(cfg, tmp_path / "ray", HeuristicJudge(cfg))
    Pipeline.open(pipe)  # the output folder and ledger, no Ray
    try:
        jobs = {}
        for key, ref in enumerate(refs):
            jobs[key] = pipe._sent[key] = Job(ref)
            pipe._current[ref.session_id] = ref.fingerprint
        pipe.stats.in_flight = len(refs)

        async def deliver_and_commit() -> None:
            send, recv = anyio.create_memory_object_stream(len(refs))
            async with send, recv:
                await pipe._deliver(graded, send)
                delivered = [recv.receive_nowait() for _ in refs]
            assert all(job.built is not None for job in delivered)
            await pipe._commit(write_all(delivered, layout=pipe.layout, config=cfg, judge=pipe.judge.info,
                                         calibration=None, encoder=pipe._encoder))

        anyio.run(deliver_and_commit)
    finally:
        Pipeline.close(pipe)

    def output(out: Path) -> dict:
        got = {}
        with SessionsReader(out) as reader:
            for folder, rec, stored in reader.entries():
                files = reader.files(rec["session_id"], folder, stored)
                got[rec["session_id"]] = (rec, files)
        lines = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
        return {"sessions": got, "lines": {x["session_id"]: x for x in lines}}

    def same(doc):  # graded_at is the clock of each write
        return json.loads(json.dumps(doc).replace("graded_at", "x"), object_hook=lambda d: {
            k: v for k, v in d.items() if k != "x"})

    local, ray = output(tmp_path / "local"), output(tmp_path / "ray")
    assert len(local["sessions"]) == len(refs) == 5 and sorted(local["sessions"]) == sorted(ray["sessions"])
    assert same(local["lines"]) == same(ray["lines"])
    assert same(local["sessions"]) == same(ray["sessions"])
    statuses = Counter(rec["status"] for rec, _ in ray["sessions"].values())
    assert statuses == {"graded": 4, "failed": 1}
    if mode == "none":
        assert not any((tmp_path / "ray" / "sessions").rglob("results.json"))


def test_the_actor_applies_the_drivers_calibration_model(tmp_path: Path):
    """With ``grade --calibration``, the records the actors build carry ``p_success`` from
    the driver's model, as the local writer's do; without a model they have none."""
    import pyarrow as pa

    from streamgrade.calibration.model import CalibrationModel
    from streamgrade.engines.ray_udf import GradeActor, decode_results, encode_block
    from streamgrade.sources.scan import scan
    from synth import make_sessions

    make_sessions(tmp_path / "data", 3, per_file=3)
    refs = list(scan([tmp_path / "data"]))
    cfg = load_config(env={}, overrides={"run": {"judge": "heuristic"}})
    model = CalibrationModel("isotonic", ["score"], {"x": [0.0, 1.0], "y": [0.1, 0.9]})

    def grade(actor: GradeActor) -> list:
        async def call() -> list:
            cell = encode_block(list(range(len(refs))), refs)
            return [t async for t in actor(pa.table({"refs": pa.array([cell], pa.binary())}))]
        return decode_results(asyncio.run(call())[0].column("results")[0].as_py())

    calibrated = grade(GradeActor(cfg, calibration=model))
    assert len(calibrated) == 3 and all(g.record.status == "graded" for g in calibrated)
    for g in calibrated:
        expected = round(0.1 + 0.8 * g.record.score / 100, 4)
        assert g.record.p_success == pytest.approx(expected, abs=1e-4)
        assert json.loads(g.encoded.lines[0][1])["p_success"] == g.record.p_success
    assert all("p_success" not in json.loads(g.encoded.lines[0][1]) for g in grade(GradeActor(cfg)))


def test_split_limits_divides_the_provider_budget_among_actors():
    from streamgrade.engines.ray_engine import split_limits

    cfg = load_config(env={"STREAMGRADE_API_KEY": "sk-test-123456789"}, overrides={
        "openai": {"rpm": 601, "tpm": 0, "max_cost_usd": 10.0}, "anthropic": {"rpm": 50}})
    part = split_limits(cfg, 4)
    assert (part.openai.rpm, part.openai.tpm, part.openai.max_cost_usd) == (150, 0, 2.5)
    assert part.anthropic.rpm == 12 and part.anthropic.max_cost_usd is None
    assert part.openai.max_concurrency == cfg.openai.max_concurrency  # per actor
    assert split_limits(load_config(env={}, overrides={"openai": {"rpm": 3}}), 8).openai.rpm == 1


def test_ray_config_is_checked():
    from streamgrade.errors import ConfigError

    with pytest.raises(ConfigError, match="ray.max_actors"):
        load_config(env={}, overrides={"ray": {"actors": 4, "max_actors": 2}})
    with pytest.raises(ConfigError, match="ray.actors"):
        load_config(env={"STREAMGRADE_RAY__ACTORS": "0"})


def test_cli_ray_options_need_the_ray_engine(tmp_path: Path):
    res = CliRunner().invoke(main, ["grade", str(tmp_path), "-o", str(tmp_path / "out"), "--ray-address", "auto"])
    assert res.exit_code == 2 and "need --engine ray" in res.output


def test_cli_without_ray_installed_says_how_to_get_it(tmp_path: Path, monkeypatch):
    from streamgrade.engines import ray_cluster

    monkeypatch.setattr(ray_cluster, "ray_installed", lambda: False)
    (tmp_path / "data").mkdir()
    res = CliRunner().invoke(main, ["grade", str(tmp_path / "data"), "-o", str(tmp_path / "out"), "--engine", "ray",
                                    "--judge", "heuristic", "--no-progress"])
    assert res.exit_code == 2 and "pip install 'streamgrade[ray]'" in res.output


# -- processes and sockets (Linux /proc) ---------------------------------------------------


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = set(), [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            if c not in out:
                out.add(c)
                todo.append(c)
    return out


RAY_AGENTS = ("ray::DashboardAgent", "ray::RuntimeEnvAgent")


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
    except OSError:
        return ""


def _kill_all(pids: set[int]) -> None:
    """SIGKILL what is left of a killed run (the test's own processes)."""
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _listening(pids: set[int]) -> list[tuple[int, str]]:
    """(pid, local address) of every listening TCP socket the processes hold."""
    inodes: dict[str, int] = {}
    for pid in pids:
        try:
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                try:
                    link = os.readlink(fd)
                except OSError:
                    continue
                if link.startswith("socket:["):
                    inodes[link[8:-1]] = pid
        except OSError:
            continue
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            f = line.split()
            if f[3] == "0A" and f[9] in inodes:  # LISTEN
                found.append((inodes[f[9]], f[1].rsplit(":", 1)[0]))
    return found


def _loopback(hex_addr: str) -> bool:
    """127.0.0.0/8, ::1 or ::ffff:127.x.x.x, as /proc/net/tcp{,6} print them (hex, host order per word)."""
    if len(hex_addr) == 8:
        return hex_addr.endswith("7F")
    return hex_addr == "00000000000000000000000001000000" or (
        hex_addr.startswith("0000000000000000FFFF0000") and hex_addr.endswith("7F"))


def test_actor_closes_its_judge_on_its_loop_when_ray_drops_it(tmp_path: Path):
    """Ray Data runs an async UDF on an event loop in a thread of its own and drops the UDF
    at the actor's graceful exit (``__ray_shutdown__``), from another thread: the judge's
    HTTP client is closed on the loop that made it (an unclosed aiohttp session used to be
    logged to the driver by every actor at the end of a run)."""
    import threading

    import pyarrow as pa

    from streamgrade.engines.ray_udf import GradeActor, encode_block
    from streamgrade.judges import make_judge
    from streamgrade.sources.scan import scan
    from synth import make_sessions

    class Judge:  # the heuristic judge, recording where aclose ran
        def __init__(self, inner):
            self.inner, self.info, self.closed_on = inner, inner.info, None

        async def grade(self, session, chunks):
            return await self.inner.grade(session, chunks)

        async def aclose(self):
            self.closed_on = threading.get_ident()
            await self.inner.aclose()

    make_sessions(tmp_path / "data", 2)
    refs = sorted(scan([tmp_path / "data"]), key=lambda r: r.path)
    cfg = load_config(env={}, overrides={"run": {"judge": "heuristic"}})
    actor = GradeActor(cfg)
    judge = actor.judge = Judge(make_judge(cfg))
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    try:
        async def call() -> int:
            table = pa.table({"refs": pa.array([encode_block(list(range(len(refs))), refs)], pa.binary())})
            return sum([t.num_rows async for t in actor(table)])

        assert asyncio.run_coroutine_threadsafe(call(), loop).result(timeout=60) == 1
        assert judge.closed_on is None
        actor.__del__()  # what dropping the last reference does, from Ray's main thread
        assert judge.closed_on == thread.ident
        assert not actor.scratch.exists()
    finally:
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)


def test_cluster_shutdown_soon_runs_in_the_background_and_shutdown_waits_for_it(monkeypatch):
    """``shutdown_soon`` (the dataset is done) stops Ray in a thread while the run's end
    work goes on; ``shutdown`` (close) waits for it and then finds nothing left to do."""
    from streamgrade.config_ray import RayConfig
    from streamgrade.engines.ray_cluster import RayCluster

    monkeypatch.delenv("STREAMGRADE_TEST_RAY_ENV", raising=False)
    cluster = RayCluster(RayConfig())
    cluster._set_env({"STREAMGRADE_TEST_RAY_ENV": "1"})  # what start() sets for a private Ray
    assert os.environ["STREAMGRADE_TEST_RAY_ENV"] == "1"
    cluster.shutdown_soon()
    cluster.shutdown_soon()  # once
    cluster.shutdown()
    assert "STREAMGRADE_TEST_RAY_ENV" not in os.environ and cluster._stopper is None
    cluster.shutdown()  # again: nothing to do, no error
