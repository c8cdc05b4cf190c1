"""The Prometheus endpoint of ``watch``: every metric family served and moving while
sessions are graded (the real CLI against the mock provider), /healthz turning 503 when the
judge hangs and 200 again when it answers (in process, a short stuck bound), the dashboard's
metric names, and the server's edges (404, 405, a port in use)."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from streamgrade.config import WatchConfig, load_config
from streamgrade.daemon import ProgressWatch
from streamgrade.judges.heuristic import HeuristicJudge
from streamgrade.models import JudgeInfo
from streamgrade.ops import MetricsServer, PipelineMetrics
from streamgrade.pipeline import Pipeline
from streamgrade.sources.watch import watch_source

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "clones"
DASHBOARD = ROOT / "configs" / "grafana-streamgrade.json"
sys.path.insert(0, str(ROOT / "scripts"))
from mock_provider import serve_in_thread  # noqa: E402

CLEAN_ENV = {k: v for k, v in os.environ.items()
             if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_", "NOTIFY_SOCKET", "WATCHDOG_"))}

#: Every family the issue asks for (name as the parser reports it: counters without _total).
FAMILIES = {
    "streamgrade_sessions": "counter", "streamgrade_sessions_found": "counter",
    "streamgrade_sessions_in_flight": "gauge", "streamgrade_stream_queue_depth": "gauge",
    "streamgrade_stream_capacity": "gauge", "streamgrade_stream_waiting_senders": "gauge",
    "streamgrade_judge_request_seconds": "histogram", "streamgrade_judge_retries": "counter",
    "streamgrade_judge_http_429": "counter", "streamgrade_judge_rate_limit_paused_seconds": "counter",
    "streamgrade_judge_tokens": "counter", "streamgrade_judge_cost_usd": "counter",
    "streamgrade_session_latency_seconds": "histogram", "streamgrade_session_pipeline_seconds": "histogram",
    "streamgrade_last_progress_age_seconds": "gauge", "streamgrade_stuck_after_seconds": "gauge",
    "streamgrade_healthy": "gauge", "streamgrade_build_info": "gauge",  # an Info is a gauge in the text format
}


class Scrape:
    """One parsed /metrics answer."""

    def __init__(self, text: str):
        self.text = text
        self.families = {f.name: f for f in text_string_to_metric_families(text)}

    def value(self, sample: str, **labels: str) -> float:
        """The sum of the samples named ``sample`` whose labels include ``labels`` (0 if none)."""
        return sum(s.value for f in self.families.values() for s in f.samples
                   if s.name == sample and all(s.labels.get(k) == v for k, v in labels.items()))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _copy_fresh(src: Path, dst: Path) -> None:
    """Copy a session folder with fresh modification times (a session just written)."""
    shutil.copytree(src, dst, copy_function=shutil.copy)


def _scrape(port: int) -> Scrape:
    r = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    return Scrape(r.text)


def _scrape_until(port: int, ok, timeout: float, proc: subprocess.Popen) -> Scrape:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()[1]
        try:
            last = _scrape(port)
            if ok(last):
                return last
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.05)
    raise AssertionError(f"condition not met within {timeout} s; last scrape:\n{last.text if last else None}")


# -- the CLI end to end -------------------------------------------------------------------------
def test_watch_metrics_move_while_sessions_are_graded(tmp_path: Path):
    """`streamgrade watch --metrics-port N` with the openai judge against the mock provider
    (300 ms a request, its first two answers 429, one grade worker): scraped after the first
    session and again after four more were dropped in, every family is there, and the
    counters, histograms and (while they were graded) the in-flight and queue gauges moved."""
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    _copy_fresh(EXAMPLES / "20250817_232256", data / "present")
    port = _free_port()
    with serve_in_thread(latency_ms=300, fail_first=2, fail_status=429) as url:
        env = {**CLEAN_ENV, "STREAMGRADE_BASE_URL": url, "STREAMGRADE_OPENAI__RPM": "600000",
               "STREAMGRADE_PIPELINE__GRADE_WORKERS": "1"}
        proc = subprocess.Popen([sys.executable, "-m", "streamgrade", "watch", str(data), "-o", str(out),
                                 "--settle", "0.3", "--judge", "openai", "--metrics-port", str(port)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        try:
            graded = lambda s: s.value("streamgrade_sessions_total", status="graded")  # noqa: E731
            first = _scrape_until(port, lambda s: graded(s) >= 1, 30, proc)
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).text.startswith("ok: idle")
            for i in range(4):
                _copy_fresh(EXAMPLES / "20251007_131852", data / f"dropped-{i}")
            # watch the gauges while the four are graded one at a time
            peak_in_flight = peak_grade_queue = 0.0
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline:
                s = _scrape(port)
                peak_in_flight = max(peak_in_flight, s.value("streamgrade_sessions_in_flight"))
                peak_grade_queue = max(peak_grade_queue, s.value("streamgrade_stream_queue_depth", stream="grade"))
                if graded(s) >= 5:
                    break
                time.sleep(0.05)
            health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            second = _scrape(port)
            proc.send_signal(signal.SIGTERM)
            _, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
    assert proc.returncode == 0, err
    assert f"metrics on http://127.0.0.1:{port}/metrics" in err

    for scrape in (first, second):
        for name, kind in FAMILIES.items():
            assert name in scrape.families and scrape.families[name].type == kind, name
    assert graded(first) == 1 and graded(second) == 5
    assert second.value("streamgrade_sessions_total", status="graded", format="clones-desktop") == 5
    assert second.value("streamgrade_sessions_found_total") == 5 > first.value("streamgrade_sessions_found_total")
    # the judge: every HTTP attempt timed, the two 429s counted and retried
    assert second.value("streamgrade_judge_request_seconds_count") > first.value(
        "streamgrade_judge_request_seconds_count") >= 3
    assert second.value("streamgrade_judge_request_seconds_count", outcome="rate_limited") == 2
    assert first.value("streamgrade_judge_http_429_total") == 2
    assert first.value("streamgrade_judge_retries_total") == 2
    # a 300 ms answer lands in the 0.5 s bucket, not the 0.25 s one
    assert second.value("streamgrade_judge_request_seconds_bucket", outcome="ok", le="0.25") == 0
    assert second.value("streamgrade_judge_request_seconds_bucket", outcome="ok", le="0.5") >= 5
    for kind in ("prompt", "completion"):
        assert second.value("streamgrade_judge_tokens_total", kind=kind) > first.value(
            "streamgrade_judge_tokens_total", kind=kind) > 0
    assert second.value("streamgrade_judge_cost_usd_total") > first.value("streamgrade_judge_cost_usd_total") > 0
    # end to end: from the last write (settle 0.3 s included) to the commit, for the four
    # written while the daemon ran; "present" was written before it started (a backlog)
    assert first.value("streamgrade_session_latency_seconds_count") == 0
    assert second.value("streamgrade_session_latency_seconds_count") == 4
    assert 60 > second.value("streamgrade_session_latency_seconds_sum") >= 4 * 0.3
    assert first.value("streamgrade_session_pipeline_seconds_count") == 1
    assert second.value("streamgrade_session_pipeline_seconds_count") == 5
    # seen while the four were graded one at a time behind a 300 ms judge
    assert peak_in_flight >= 1 and peak_grade_queue >= 1
    assert second.value("streamgrade_sessions_in_flight") == 0
    assert second.value("streamgrade_stream_capacity", stream="grade") == 16
    assert second.value("streamgrade_healthy") == 1 and health.status_code == 200
    assert second.value("streamgrade_stuck_after_seconds") >= 300
    assert second.value("streamgrade_build_info", version="0.1.0") == 1
    assert second.value("process_resident_memory_bytes") > 0


def test_watch_metrics_port_in_use_exits_2(tmp_path: Path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        res = subprocess.run([sys.executable, "-m", "streamgrade", "watch", str(tmp_path), "-o", str(tmp_path / "out"),
                              "--metrics-port", str(port)], capture_output=True, text=True, env=CLEAN_ENV, timeout=60)
    assert res.returncode == 2, res.stderr
    assert f"cannot serve metrics on 127.0.0.1:{port}" in res.stderr
    assert "Traceback" not in res.stderr


# -- /healthz when the judge hangs ----------------------------------------------------------------
class HangingJudge:
    """A judge whose answers wait until :attr:`release` is set (a wedged provider)."""

    def __init__(self, cfg):
        self.info = JudgeInfo(kind="hanging", model=None)
        self.release = anyio.Event()
        self.heuristic = HeuristicJudge(cfg)
        self.calls = 0

    async def grade(self, session, chunks):
        self.calls += 1
        await self.release.wait()
        return await self.heuristic.grade(session, chunks)

    async def aclose(self) -> None:
        pass


@pytest.mark.asyncio
async def test_healthz_503_when_the_judge_hangs_and_200_again(tmp_path: Path):
    data, out = tmp_path / "data", tmp_path / "out"
    data.mkdir()
    cfg = load_config(env={}, overrides={"watch": {"settle_s": 0.2}})
    judge = HangingJudge(cfg)
    pipe = Pipeline(cfg, out, judge)
    progress = ProgressWatch(pipe.stats, stuck_after=0.6)  # the watchdog's bound, short for the test
    metrics = PipelineMetrics(pipe, judge, progress)

    async def source(send):
        await watch_source([data], send, WatchConfig(settle_s=0.2), exclude=[out])

    async def healthz(client) -> httpx.Response:
        return await client.get("/healthz")

    with MetricsServer(metrics.registry, metrics.health, port=0) as server:
        assert server.url.startswith("http://127.0.0.1:")
        async with httpx.AsyncClient(base_url=server.url, timeout=5) as client, anyio.create_task_group() as tg:
            tg.start_soon(pipe.run, source)
            with anyio.fail_after(20):
                await anyio.sleep(0.3)
                r = await healthz(client)
                assert (r.status_code, r.text) == (200, "ok: idle\n")  # nothing to do: healthy
                _copy_fresh(EXAMPLES / "20251007_131852", data / "s1")
                while judge.calls == 0:  # admitted, assembled, at the judge, which hangs
                    await anyio.sleep(0.02)
                t_hang = time.monotonic()
                r = await healthz(client)
                assert r.status_code == 200 and r.text.startswith("ok: progressing: 1 in flight")
                while (r := await healthz(client)).status_code == 200:
                    await anyio.sleep(0.05)
                waited = time.monotonic() - t_hang
                assert r.status_code == 503 and waited >= 0.5
                assert re.fullmatch(r"stuck: 1 in flight and nothing completed for \d+ s \(limit 0\.6 s\)\n", r.text)
                s = Scrape((await client.get("/metrics")).text)
                assert s.value("streamgrade_healthy") == 0 and s.value("streamgrade_sessions_in_flight") == 1
                assert s.value("streamgrade_last_progress_age_seconds") >= 0.6
                assert s.value("streamgrade_stuck_after_seconds") == 0.6
                # the provider answers again: the session completes and health returns
                judge.release.set()
                while pipe.stats.graded == 0:
                    await anyio.sleep(0.02)
                r = await healthz(client)
                assert (r.status_code, r.text) == (200, "ok: idle\n")
                s = Scrape((await client.get("/metrics")).text)
                assert s.value("streamgrade_healthy") == 1
                assert s.value("streamgrade_sessions_total", status="graded", format="clones-desktop") == 1
                # committed after the hang: the end-to-end latency covers the wait
                assert s.value("streamgrade_session_latency_seconds_sum") >= 0.6
                pipe.stop()
    assert pipe.stats.graded == 1


# -- the server's edges -------------------------------------------------------------------------
def _metrics(tmp_path: Path) -> PipelineMetrics:
    cfg = load_config(env={})
    pipe = Pipeline(cfg, tmp_path / "out", HeuristicJudge(cfg))
    return PipelineMetrics(pipe, pipe.judge, ProgressWatch(pipe.stats, stuck_after=300))


def test_server_paths_and_methods(tmp_path: Path):
    m = _metrics(tmp_path)
    with MetricsServer(m.registry, m.health) as server:
        assert server.host == "127.0.0.1" and server.port > 0
        assert httpx.get(server.url + "/nope", timeout=5).status_code == 404
        assert httpx.post(server.url + "/metrics", timeout=5).status_code == 405
        assert httpx.get(server.url + "/healthz", timeout=5).text == "ok: idle\n"
        om = httpx.get(server.url + "/metrics", headers={"Accept": "application/openmetrics-text"}, timeout=5)
        assert om.headers["content-type"].startswith("application/openmetrics-text") and om.text.endswith("# EOF\n")
    with pytest.raises(httpx.TransportError):  # closed: the port is free again
        httpx.get(server.url + "/healthz", timeout=2)


def test_two_pipelines_have_separate_registries(tmp_path: Path):
    a, b = _metrics(tmp_path / "a"), _metrics(tmp_path / "b")  # no "Duplicated timeseries" error
    a.pipeline.stats.by_format["graded", "tau2"] += 3
    assert a.registry.get_sample_value("streamgrade_sessions_total", {"status": "graded", "format": "tau2"}) == 3
    assert b.registry.get_sample_value("streamgrade_sessions_total", {"status": "graded", "format": "tau2"}) is None


def test_hook_errors_never_reach_the_pipeline(tmp_path: Path, caplog):
    m = _metrics(tmp_path)
    m.observe_commit(object(), None)  # no admitted_at: dropped, logged once
    m.observe_commit(object(), None)
    m.observe_attempt(0.2, 200, 2)
    assert caplog.text.count("observation dropped") == 1
    assert m.registry.get_sample_value("streamgrade_judge_retries_total") == 1


# -- the Grafana dashboard ------------------------------------------------------------------------
def _registry_names(m: PipelineMetrics) -> set[str]:
    suffixes = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "info": ("_info",),
                "gauge": ("",)}
    names = set()
    for fam in m.registry.collect():
        names.update(fam.name + s for s in suffixes.get(fam.type, ("",)))
    return names


def test_dashboard_uses_only_metrics_that_exist(tmp_path: Path):
    board = json.loads(DASHBOARD.read_text())
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k in ("expr", "query", "definition") and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    walk(board)
    used = {n for e in exprs for n in re.findall(r"\bstreamgrade_[a-z0-9_]+", e)}
    names = _registry_names(_metrics(tmp_path))
    assert used and not used - names, sorted(used - names)
    # the panels the issue names are there
    flat = "\n".join(exprs)
    for needle in ("rate(streamgrade_sessions_total", "streamgrade_sessions_in_flight", "streamgrade_stream_queue_depth",
                   "histogram_quantile(0.95, sum by (le) (rate(streamgrade_session_latency_seconds_bucket",
                   "histogram_quantile(0.95, sum by (le) (rate(streamgrade_judge_request_seconds_bucket",
                   "streamgrade_judge_http_429_total", "streamgrade_judge_retries_total",
                   "streamgrade_judge_cost_usd_total", "streamgrade_judge_tokens_total",
                   "streamgrade_last_progress_age_seconds"):
        assert needle in flat, needle
    panels = [p for p in board["panels"] if p.get("type") != "row"]
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    assert all(p.get("targets") for p in panels)
    assert board["__inputs"][0]["pluginId"] == "prometheus"
