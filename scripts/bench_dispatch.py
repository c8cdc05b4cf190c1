#!/usr/bin/env python3
"""Dispatch benchmark: graded sessions/s through streamgrade's whole grade path against the
local mock provider, beside bare HTTP clients measured in the same run.

    python scripts/bench_dispatch.py [--n 3000] [--n-200 2500] [--concurrency 50]

For each mock latency (0 ms and 200 ms; the mock runs in its own process):

- ``streamgrade``: synthetic OpenAI-chat sessions (scripts/synth.py; one request each)
  through ``Pipeline(...).run(scan_source(...))`` with the openai judge: prompt build,
  request, parse, per-session files, JSONL exports, ledger. Once with
  ``openai.http_client = "aiohttp"`` (the default) and once with ``"httpx"``.
- bare clients, each ``concurrency`` workers posting a judge-sized body and parsing the
  answer: aiohttp, httpx.AsyncClient as it comes, and the ways tried to lift httpx's
  ceiling (encode/httpx#3215): pool limits, HTTP/2 (the mock is HTTP/1.1 only, so over
  plain http httpx still speaks HTTP/1.1: only its code path changes), several clients,
  and httpx-aiohttp's AiohttpTransport under httpx's API.
- the pipeline alone, with an instant in-process judge: the ceiling that everything but
  HTTP puts on the rate.
- streamgrade with ``[sinks] session_files = "none"`` (the bulk setting) at both
  latencies, and its bytes written per session;
- Bespoke Curator (bench_peers.py's runner, its own virtualenv) at both latencies, unless
  ``--skip-curator``; then the RSS growth of `streamgrade grade` from 10K to 100K
  sessions (bench_memory.py), unless ``--skip-memory``.

Prints a table, the goals of issue 13 measured in this one run (vs_curator_0ms >= 2,
vs_curator_200ms >= 1.2, ceiling_ratio_200ms >= 0.9, RSS growth < 10%, bytes per session
with session_files none <= 5 KB), then, as its last line, one JSON object: ``vs_httpx`` and
``vs_aiohttp`` (streamgrade's rate at 0 ms over each bare client's),
``ceiling_ratio_200ms`` (rate at 200 ms over concurrency / latency), ``goals`` and every
rate measured. Older targets in ``targets_met``: vs_aiohttp >= 0.5, ceiling_ratio_200ms
>= 0.95.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=3000, help="sessions/requests per fast run at 0 ms")
    ap.add_argument("--n-slow", type=int, default=1200, help="requests per run of the slow httpx variants at 0 ms")
    ap.add_argument("--n-200", type=int, default=2500, help="sessions/requests per run at 200 ms")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--latency-ms", type=float, default=200.0, help="the slow latency (the fast one is 0)")
    ap.add_argument("--work", default=None, help="scratch folder (default: $TMPDIR/streamgrade-bench)")
    ap.add_argument("--timeout", type=float, default=300, help="bound of each measured run, s")
    ap.add_argument("--rpm", type=int, default=6_000_000,
                    help="openai.rpm of the streamgrade runs: a known limit far above reach, so the pacer never "
                         "binds (the mock enforces none); 0 would start the adaptive search at 5 req/s")
    ap.add_argument("--quick", action="store_true", help="skip the extra httpx variants and the rpm=0 run")
    ap.add_argument("--skip-curator", action="store_true",
                    help="skip Bespoke Curator's runs at 0 and 200 ms (vs_curator_*; see scripts/bench_peers.py)")
    ap.add_argument("--curator-venv", type=Path, default=None, help="Curator's virtualenv (bench_peers.py's default)")
    ap.add_argument("--skip-memory", action="store_true", help="skip the RSS growth runs (scripts/bench_memory.py)")
    ap.add_argument("--memory-small", type=int, default=10_000)
    ap.add_argument("--memory-large", type=int, default=100_000)
    return ap.parse_args(argv)


def have(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def httpx_variants(c: int, quick: bool) -> list[tuple[str, dict[str, Any]]]:
    out = [("httpx (defaults)", {})]
    if quick:
        return out
    out += [
        (f"httpx limits max_conn={c} keepalive={c}", {"max_connections": c, "max_keepalive": c}),
        ("httpx limits unbounded", {"max_connections": None, "max_keepalive": None}),
    ]
    if have("h2"):
        out.append(("httpx http2=True (h2; mock is HTTP/1.1)", {"http2": True}))
    else:
        print("  (httpx http2=True skipped: the h2 package is not installed; pip install h2)", file=sys.stderr)
    return out + [
        ("httpx x5 clients (10 conns each)", {"clients": 5, "max_connections": 10, "max_keepalive": 10}),
        ("httpx x10 clients (5 conns each)", {"clients": 10, "max_connections": 5, "max_keepalive": 5}),
    ]


async def measure(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    c = args.concurrency
    rows: list[dict[str, Any]] = []

    def add(latency: float, what: str, r: dict[str, Any], kind: str) -> dict[str, Any]:
        r = {"latency_ms": latency, "what": what, "kind": kind, **r}
        rows.append(r)
        print(f"  {latency:>5g} ms  {what:<44} {r.get('rate')!s:>8}/s  ({r.get('seconds')} s)", file=sys.stderr, flush=True)
        return r

    data_fast = B.sessions_dir(work, args.n)
    data_slow = B.sessions_dir(work, args.n_200)

    if not have("httpx_aiohttp"):
        sys.exit("bench_dispatch: the httpx-aiohttp package is missing (streamgrade's default openai.http_client "
                 "= 'aiohttp' needs it): pip install httpx-aiohttp")
    res: dict[str, Any] = {}
    res["pipeline_alone"] = add(0, "pipeline alone (instant judge, no HTTP)",
                                await B.run_pipeline_alone(data_fast, work, concurrency=c, timeout=args.timeout), "pipeline")

    with B.mock(latency_ms=0) as url:
        # warm the mock and the loopback (not measured)
        await B.bare_aiohttp(url, 200, c, timeout=args.timeout)
        res["aiohttp_0"] = add(0, "bare aiohttp", await B.bare_aiohttp(url, args.n, c, timeout=args.timeout), "bare")
        res["httpx_aiohttp_0"] = add(0, "httpx + AiohttpTransport (httpx-aiohttp)",
                                     await B.bare_httpx(url, args.n, c, transport="aiohttp", timeout=args.timeout), "bare")
        for name, kw in httpx_variants(c, args.quick):
            res[f"v0:{name}"] = add(0, name, await B.bare_httpx(url, args.n_slow, c, timeout=args.timeout, **kw), "bare")
        res["httpx_0"] = res["v0:httpx (defaults)"]
        res["sg_0"] = add(0, "streamgrade (http_client=aiohttp)",
                          await B.run_streamgrade(url, data_fast, work, concurrency=c, http_client="aiohttp",
                                                  rpm=args.rpm, timeout=args.timeout), "streamgrade")
        res["sg_none_0"] = add(0, "streamgrade (aiohttp, session_files=none)",
                               await B.run_streamgrade(url, data_fast, work, concurrency=c, http_client="aiohttp",
                                                       rpm=args.rpm, timeout=args.timeout, session_files="none"),
                               "streamgrade")
        res["sg_httpx_0"] = add(0, "streamgrade (http_client=httpx)",
                                await B.run_streamgrade(url, B.sessions_dir(work, args.n_slow), work, concurrency=c,
                                                        http_client="httpx", rpm=args.rpm, timeout=args.timeout),
                                "streamgrade")
        if not args.quick:
            res["sg_adaptive_0"] = add(0, "streamgrade (aiohttp, openai.rpm=0: adaptive)",
                                       await B.run_streamgrade(url, B.sessions_dir(work, args.n_slow), work,
                                                               concurrency=c, http_client="aiohttp", rpm=0,
                                                               timeout=args.timeout), "streamgrade")
        mock0 = url.stats()

    lat = args.latency_ms
    with B.mock(latency_ms=lat) as url:
        await B.bare_aiohttp(url, c, c, timeout=args.timeout)
        res["aiohttp_200"] = add(lat, "bare aiohttp", await B.bare_aiohttp(url, args.n_200, c, timeout=args.timeout), "bare")
        res["httpx_200"] = add(lat, "httpx (defaults)", await B.bare_httpx(url, args.n_200, c, timeout=args.timeout), "bare")
        res["httpx_aiohttp_200"] = add(lat, "httpx + AiohttpTransport (httpx-aiohttp)",
                                       await B.bare_httpx(url, args.n_200, c, transport="aiohttp", timeout=args.timeout), "bare")
        res["sg_200"] = add(lat, "streamgrade (http_client=aiohttp)",
                            await B.run_streamgrade(url, data_slow, work, concurrency=c, http_client="aiohttp",
                                                    rpm=args.rpm, timeout=args.timeout), "streamgrade")
        res["sg_none_200"] = add(lat, "streamgrade (aiohttp, session_files=none)",
                                 await B.run_streamgrade(url, data_slow, work, concurrency=c, http_client="aiohttp",
                                                         rpm=args.rpm, timeout=args.timeout, session_files="none"),
                                 "streamgrade")
        res["sg_httpx_200"] = add(lat, "streamgrade (http_client=httpx)",
                                  await B.run_streamgrade(url, data_slow, work, concurrency=c, http_client="httpx",
                                                          rpm=args.rpm, timeout=args.timeout), "streamgrade")
        mock200 = url.stats()
    res["rows"] = rows
    res["mock"] = {"0ms": mock0.get("status"), f"{lat:g}ms": mock200.get("status")}
    res["curator"] = None if args.skip_curator else curator_runs(args, work, add)
    return res


def curator_runs(args: argparse.Namespace, work: Path, add: Any) -> dict[str, Any]:
    """Bespoke Curator on the same sessions' prompts at 0 ms and at the slow latency (a fresh
    mock process each, as bench_peers.py does), for vs_curator_*."""
    import bench_peers as P

    venv_dir = args.curator_venv or P.DEFAULT_VENV
    py, error = P.curator_python(venv_dir, work / "curator-install.log")
    if py is None:
        print(f"CURATOR NOT RUN: {error}", file=sys.stderr)
        return {"error": error}
    home = work / "curator-home"
    home.mkdir(exist_ok=True)
    env = P.curator_env(py, home)
    out: dict[str, Any] = {"spec": P.CURATOR_SPEC}
    for key, latency, n in (("0ms", 0.0, args.n), ("200ms", args.latency_ms, args.n_200)):
        _, prompts = P.prompts_for(work, n)
        with B.mock(latency_ms=latency) as url:
            r = P.run_curator(py, env, url, prompts, rpm=60_000, concurrency=args.concurrency, timeout=args.timeout,
                              work=work)
        out[key] = add(latency, f"Curator {P.CURATOR_SPEC.split('==')[1]}", {**r, "n": n, "ok": r.get("done")}, "curator")
    return out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    B.quiet_logs()
    work = B.work_dir(args.work)
    c, lat = args.concurrency, args.latency_ms
    t0 = time.perf_counter()
    print(f"bench_dispatch: concurrency {c}, mock at 0 ms and {lat:g} ms (own process), work dir {work}", file=sys.stderr)
    res = asyncio.run(measure(args, work))
    ceiling = c / (lat / 1000.0)

    rows = []
    for r in res["rows"]:
        ok = r.get("ok", r.get("graded"))
        bad = r.get("errors", r.get("failed"))
        ratio = B.ratio(r["rate"], ceiling) if r["latency_ms"] else None
        rows.append([f"{r['latency_ms']:g} ms", r["what"], r.get("n", (r.get("graded", 0) + r.get("failed", 0))), ok, bad,
                     r["seconds"], r["rate"], r.get("steady_rate"), ratio, r.get("first_s"), r.get("tail_s")])
    print(B.table(rows, ["latency", "what", "n", "ok", "errors", "seconds", "per s", "steady/s",
                         f"of ceiling {ceiling:g}/s", "first s", "tail s"]))
    print("per s: end to end (wall); steady/s: sessions/s between the 10th and 90th percentile of finish times; "
          "first s: time to the first graded session; tail s: from the last one to the run's end (final DPO rebuild)")

    sg0, sg200 = res["sg_0"]["rate"], res["sg_200"]["rate"]
    figures = {
        "benchmark": "dispatch",
        "concurrency": c,
        "latency_ms": lat,
        "n_0ms": args.n,
        "n_200ms": args.n_200,
        "streamgrade_0ms": sg0,
        "streamgrade_200ms": sg200,
        "streamgrade_httpx_0ms": res["sg_httpx_0"]["rate"],
        "streamgrade_httpx_200ms": res["sg_httpx_200"]["rate"],
        "streamgrade_rpm0_adaptive_0ms": res.get("sg_adaptive_0", {}).get("rate"),
        "openai_rpm": args.rpm,
        "pipeline_alone": res["pipeline_alone"]["rate"],
        "aiohttp_0ms": res["aiohttp_0"]["rate"],
        "httpx_0ms": res["httpx_0"]["rate"],
        "httpx_aiohttp_transport_0ms": res["httpx_aiohttp_0"]["rate"],
        "aiohttp_200ms": res["aiohttp_200"]["rate"],
        "httpx_200ms": res["httpx_200"]["rate"],
        "httpx_aiohttp_transport_200ms": res["httpx_aiohttp_200"]["rate"],
        "httpx_variants_0ms": {k[3:]: v["rate"] for k, v in res.items() if k.startswith("v0:")},
        "vs_httpx": B.ratio(sg0, res["httpx_0"]["rate"]),
        "vs_aiohttp": B.ratio(sg0, res["aiohttp_0"]["rate"]),
        "ceiling_ratio_200ms": B.ratio(sg200, ceiling),
        "ceiling_ratio_200ms_steady": B.ratio(res["sg_200"].get("steady_rate"), ceiling),
        "streamgrade_steady_0ms": res["sg_0"].get("steady_rate"),
        "streamgrade_steady_200ms": res["sg_200"].get("steady_rate"),
        "pipeline_alone_steady": res["pipeline_alone"].get("steady_rate"),
        "streamgrade_first_tail_s_200ms": [res["sg_200"].get("first_s"), res["sg_200"].get("tail_s")],
        "failed_sessions": res["sg_0"]["failed"] + res["sg_200"]["failed"],
        "streamgrade_none_0ms": res["sg_none_0"]["rate"],
        "streamgrade_none_200ms": res["sg_none_200"]["rate"],
        "ceiling_ratio_200ms_none": B.ratio(res["sg_none_200"]["rate"], ceiling),
        "bytes_per_session": res["sg_0"]["bytes_per_session"],
        "bytes_per_session_none": res["sg_none_0"]["bytes_per_session"],
        "bytes_by_kind_none": res["sg_none_0"]["bytes_by_kind"],
        "tail_s": {"0ms": res["sg_0"]["tail_s"], "200ms": res["sg_200"]["tail_s"]},
        "mock_status": res["mock"],
        "seconds": round(time.perf_counter() - t0, 1),
    }
    cur = res.get("curator") or {}
    figures["curator_0ms"] = (cur.get("0ms") or {}).get("rate")
    figures["curator_200ms"] = (cur.get("200ms") or {}).get("rate")
    figures["vs_curator_0ms"] = B.ratio(sg0, figures["curator_0ms"])
    figures["vs_curator_200ms"] = B.ratio(sg200, figures["curator_200ms"])
    figures["vs_curator_0ms_none"] = B.ratio(res["sg_none_0"]["rate"], figures["curator_0ms"])
    figures["vs_curator_200ms_none"] = B.ratio(res["sg_none_200"]["rate"], figures["curator_200ms"])
    if args.skip_memory:
        figures["memory"] = None
    else:
        print(f"  memory: streamgrade grade on {args.memory_small} and {args.memory_large} sessions ...", file=sys.stderr,
              flush=True)
        figures["memory"] = B.memory_growth(args.memory_small, args.memory_large)
    figures["rss_growth"] = figures["memory"]["growth"] if figures["memory"] else None
    figures["goals"] = B.goals(figures)
    print(B.goals_table(figures["goals"]))
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    figures["targets_met"] = {
        "vs_aiohttp>=0.5": bool(figures["vs_aiohttp"] and figures["vs_aiohttp"] >= 0.5),
        "ceiling_ratio_200ms>=0.95": bool(figures["ceiling_ratio_200ms"] and figures["ceiling_ratio_200ms"] >= 0.95),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
