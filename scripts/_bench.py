"""Shared helpers of scripts/bench_dispatch.py and scripts/bench_peers.py.

- the mock provider in its own process (:func:`mock`, scripts/mock_provider.py);
- bare clients (:func:`bare_httpx`, :func:`bare_aiohttp`): ``concurrency`` workers POST the
  same kind of body the judge sends until ``n`` answers came back, each answer parsed;
- the real streamgrade grade path (:func:`run_streamgrade`): synthetic OpenAI-chat sessions
  (scripts/synth.py) through ``Pipeline(...).run(scan_source(...))`` with the openai judge
  (prompt build, request, parse, per-session files, exports, ledger);
- the pipeline alone (:func:`run_pipeline_alone`): the same run with an instant in-process
  judge, i.e. the ceiling that everything but HTTP puts on the rate;
- table printing.

Every run is bounded by a timeout; servers listen on 127.0.0.1 only.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

SCRIPTS = Path(__file__).resolve().parent
ROOT = SCRIPTS.parent
if str(SCRIPTS) not in sys.path:
    sys.path.insert(0, str(SCRIPTS))
if str(ROOT / "src") not in sys.path:  # a fresh clone without the editable install
    sys.path.append(str(ROOT / "src"))

from mock_provider import start_mock_process  # noqa: E402
from synth import make_sessions  # noqa: E402

CHAT = "/chat/completions"


def mock(**options: Any):
    """The mock provider in its own process (its own core): a context manager yielding its
    base URL (``.stats()``, ``.final_stats``). ``max_seconds`` bounds its life."""
    options.setdefault("max_seconds", 1800)
    return start_mock_process(**options)


def judge_like_body(i: int = 0) -> bytes:
    """A request body shaped and sized like the judge's final request (system + user
    prompt, the verdict json_schema), so bare clients move the same bytes."""
    from streamgrade.judges import rubric

    system = ("You are a strict grader of AI agent sessions. Grade outcome, process and efficiency "
              "from 0 to 100 with a confidence and a one-line reason. ") * 6
    user = (f"Session synth-{i}: the user asked to change a flight. Actions:\n"
            + "\n".join(f"[{k}] tool call get_reservation {{\"reservation_id\": \"R{10000 + k}\"}} -> ok" for k in range(30)))
    body = {
        "model": "mock-judge",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "response_format": {"type": "json_schema", "json_schema": rubric.VERDICT_SCHEMA},
        "temperature": 0.0,
        "seed": 7,
        "max_tokens": 1024,
    }
    return json.dumps(body).encode()


async def _workers(n: int, concurrency: int, one: Callable[[int], Any], timeout: float) -> dict[str, Any]:
    """Run ``one(i)`` for i in range(n) with ``concurrency`` workers; returns counts and rate."""
    counter = iter(range(n))
    ok = errors = 0
    statuses: dict[int, int] = {}

    async def worker() -> None:
        nonlocal ok, errors
        for i in counter:
            try:
                status = await one(i)
            except Exception:  # noqa: BLE001 - counted
                errors += 1
                continue
            statuses[status] = statuses.get(status, 0) + 1
            ok += status == 200

    t0 = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), timeout)
    dt = time.perf_counter() - t0
    return {"n": n, "ok": ok, "errors": errors, "statuses": statuses, "seconds": round(dt, 3),
            "rate": round(ok / dt, 1)}


async def bare_httpx(base_url: str, n: int, concurrency: int, *, timeout: float = 300, clients: int = 1,
                     max_connections: int | None = 100, max_keepalive: int | None = 20, http2: bool = False,
                     transport: str = "default") -> dict[str, Any]:
    """An httpx.AsyncClient loop: ``clients`` clients (requests spread round-robin), pool
    limits, HTTP/2 (the mock speaks HTTP/1.1 only, so h2 falls back to it over plain
    http), or ``transport="aiohttp"`` (httpx-aiohttp's AiohttpTransport under httpx's API)."""
    import httpx

    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_keepalive)

    def make() -> httpx.AsyncClient:
        if transport == "aiohttp":
            from httpx_aiohttp import AiohttpTransport

            return httpx.AsyncClient(transport=AiohttpTransport(limits=limits), timeout=60)
        return httpx.AsyncClient(limits=limits, http2=http2, timeout=60)

    pool = [make() for _ in range(clients)]
    url = base_url + CHAT
    body = judge_like_body()
    headers = {"Content-Type": "application/json"}

    async def one(i: int) -> int:
        resp = await pool[i % clients].post(url, content=body, headers=headers)
        json.loads(resp.content)
        return resp.status_code

    try:
        return await _workers(n, concurrency, one, timeout)
    finally:
        for c in pool:
            await c.aclose()


async def bare_aiohttp(base_url: str, n: int, concurrency: int, *, timeout: float = 300) -> dict[str, Any]:
    """A bare aiohttp.ClientSession loop (connector limit 100)."""
    import aiohttp

    url = base_url + CHAT
    body = judge_like_body()
    headers = {"Content-Type": "application/json"}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100)) as session:

        async def one(i: int) -> int:
            async with session.post(url, data=body, headers=headers) as resp:
                json.loads(await resp.read())
                return resp.status

        return await _workers(n, concurrency, one, timeout)


# --- streamgrade ---------------------------------------------------------------------


def sessions_dir(root: Path, n: int) -> Path:
    """``n`` synthetic sessions (one judge request each) under ``root``, made once."""
    data = root / f"sessions-{n}"
    if not (data / ".done").exists():
        shutil.rmtree(data, ignore_errors=True)
        make_sessions(data, n)
        (data / ".done").write_text("ok")
    return data


def streamgrade_config(base_url: str | None, *, concurrency: int, rpm: int = 0, http_client: str | None = None,
                       judge: str = "openai", max_retries: int = 8, session_files: str = "all") -> Any:
    from streamgrade.config import load_config

    openai: dict[str, Any] = {"base_url": base_url, "model": "mock-judge", "rpm": rpm,
                              "max_concurrency": concurrency, "timeout_s": 60.0, "max_retries": max_retries}
    if http_client is not None:
        openai["http_client"] = http_client
    return load_config(env={}, overrides={
        "run": {"judge": judge, "log_level": "WARNING"},
        "pipeline": {"grade_workers": concurrency + 14, "stream_capacity": max(16, concurrency)},
        "openai": openai,
        "sinks": {"session_files": session_files},
    })


class InstantJudge:
    """An in-process judge that answers at once with a fixed verdict (no HTTP): the
    pipeline's own ceiling."""

    def __init__(self) -> None:
        from streamgrade.models import Component, JudgeInfo, Usage, Verdict

        self.info = JudgeInfo(kind="instant", model="none")
        comps = {k: Component(score=70.0, confidence=0.8, reason=f"instant {k}") for k in ("outcome", "process", "efficiency")}
        self._verdict = lambda: Verdict(components=comps, summary="instant verdict", usage=Usage(requests=0))

    async def grade(self, session: Any, chunks: Any) -> Any:
        return self._verdict()

    async def aclose(self) -> None:
        return None


async def _pipeline(config: Any, data: Path, out: Path, judge: Any, timeout: float) -> dict[str, Any]:
    from streamgrade.pipeline import Pipeline, scan_source

    stamps: list[float] = []
    t0 = time.perf_counter()
    try:
        pipeline = Pipeline(config, out, judge, on_record=lambda _r: stamps.append(time.perf_counter()))
        stats = await asyncio.wait_for(pipeline.run(scan_source([data], exclude=[out])), timeout)
    finally:
        await judge.aclose()
    dt = time.perf_counter() - t0
    return {"graded": stats.graded, "failed": stats.failed, "requests": stats.requests, "seconds": round(dt, 3),
            "rate": round(stats.graded / dt, 1), "steady_rate": steady(stamps),
            "first_s": round(stamps[0] - t0, 3) if stamps else None,
            "tail_s": round(t0 + dt - stamps[-1], 3) if stamps else None,
            "failures": [e for _, e in stats.failures[:3]],
            "session_files": config.sinks.session_files,
            "bytes_written": stats.bytes_total, "bytes_by_kind": stats.bytes_written,
            "bytes_per_session": round(stats.bytes_total / stats.done) if stats.done else None}


def steady(stamps: list[float]) -> float | None:
    """Sessions per second between the 10th and 90th percentile of their finish times
    (start-up and tail left out)."""
    if len(stamps) < 20:
        return None
    lo, hi = len(stamps) // 10, len(stamps) * 9 // 10
    span = stamps[hi] - stamps[lo]
    return round((hi - lo) / span, 1) if span > 0 else None


async def run_streamgrade(base_url: str, data: Path, work: Path, *, concurrency: int, rpm: int = 0,
                          http_client: str | None = None, timeout: float = 600, label: str = "sg",
                          session_files: str = "all") -> dict[str, Any]:
    """Grade every session in ``data`` through the real pipeline with the openai judge
    against ``base_url`` (``[sinks] session_files``); a fresh output folder each time. The
    result has the rates and the bytes the run wrote (``bytes_per_session``)."""
    from streamgrade.judges.openai import OpenAIJudge

    out = Path(tempfile.mkdtemp(prefix=f"{label}-", dir=work))
    config = streamgrade_config(base_url, concurrency=concurrency, rpm=rpm, http_client=http_client,
                                session_files=session_files)
    judge = OpenAIJudge(config)
    try:
        result = await _pipeline(config, data, out, judge, timeout)
        result["limiter"] = {"rate_limited": judge.limits.stats.rate_limited,
                             "rate_rps": judge.limits.stats.rate_rps,
                             "paused_s": round(judge.limits.stats.paused_s, 2)}
        return result
    finally:
        shutil.rmtree(out, ignore_errors=True)


async def run_pipeline_alone(data: Path, work: Path, *, concurrency: int, timeout: float = 600,
                             session_files: str = "all") -> dict[str, Any]:
    out = Path(tempfile.mkdtemp(prefix="alone-", dir=work))
    config = streamgrade_config(None, concurrency=concurrency, judge="heuristic", session_files=session_files)
    try:
        return await _pipeline(config, data, out, InstantJudge(), timeout)
    finally:
        shutil.rmtree(out, ignore_errors=True)


def memory_growth(small: int, large: int, *, session_files: str = "all") -> dict[str, Any]:
    """Peak RSS of `streamgrade grade` (heuristic judge) on ``small`` and ``large``
    synthetic sessions, each in a fresh process (scripts/bench_memory.py), and the growth
    ``rss_large / rss_small - 1`` (the goal: under 0.10 from 10K to 100K)."""
    import bench_memory

    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        a = bench_memory.measure(small, Path(tmp), session_files=session_files)
        b = bench_memory.measure(large, Path(tmp), session_files=session_files)
    return {"sessions": [small, large], "rss_mb": [a["rss_mb"], b["rss_mb"]],
            "growth": round(b["rss_mb"] / a["rss_mb"] - 1, 3), "sessions_per_s": [a["sessions_per_s"], b["sessions_per_s"]],
            "session_files": session_files}


def goals(figures: dict[str, Any]) -> dict[str, Any]:
    """The goals of issue 13 that ``figures`` measured (a missing figure is None): each
    ``{"value", "target", "met"}``."""
    def goal(value: Any, target: float, below: bool = False) -> dict[str, Any]:
        met = None if value is None else (value < target if below else value >= target)
        return {"value": value, "target": ("< " if below else ">= ") + f"{target:g}", "met": met}

    return {
        "vs_curator_0ms": goal(figures.get("vs_curator_0ms"), 2.0),
        "vs_curator_200ms": goal(figures.get("vs_curator_200ms"), 1.2),
        "ceiling_ratio_200ms": goal(figures.get("ceiling_ratio_200ms"), 0.9),
        "rss_growth_10k_100k": goal(figures.get("rss_growth"), 0.10, below=True),
        "bytes_per_session_none": goal(figures.get("bytes_per_session_none"), 5000.5, below=True),
    }


def goals_table(g: dict[str, Any]) -> str:
    rows = [[k, v["value"], v["target"], {True: "met", False: "MISSED", None: "not measured"}[v["met"]]]
            for k, v in g.items()]
    return table(rows, ["issue 13 goal", "measured", "target", ""])


def quiet_logs() -> None:
    logging.basicConfig(level=logging.ERROR)
    for name in ("streamgrade", "streamgrade.judge", "streamgrade.pipeline", "httpx", "aiohttp"):
        logging.getLogger(name).setLevel(logging.ERROR)


def work_dir(arg: str | None) -> Path:
    """A scratch folder (given, or a new temp dir); synthetic sessions are cached in it."""
    path = Path(arg) if arg else Path(tempfile.gettempdir()) / "streamgrade-bench"
    path.mkdir(parents=True, exist_ok=True)
    return path


def table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    cells = [[str(c) for c in header]] + [[("" if c is None else str(c)) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    line = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
    sep = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), sep] + [line(r) for r in cells[1:]])


def ratio(a: float | None, b: float | None) -> float | None:
    return round(a / b, 3) if a and b else None


def env_flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false")
