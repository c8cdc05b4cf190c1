#!/usr/bin/env python3
"""Peers benchmark: the same N prompts graded by streamgrade and by Bespoke Curator
(bespokelabs-curator) against the local mock provider, same RPM limit and concurrency.

    python scripts/bench_peers.py [--n 2000] [--concurrency 50] [--rpm-high 60000] ...

Curator is installed by this script into its own virtualenv (default
``~/.cache/streamgrade-bench/curator-venv``; ``--curator-venv`` to move it) the first time,
with pip from the package registry, and runs there as a subprocess, offline: before import
``TELEMETRY_ENABLED=false``, ``LITELLM_LOCAL_MODEL_COST_MAP=True``,
``CURATOR_DISABLE_CACHE=1``, ``CURATOR_DISABLE_RICH_DISPLAY=1``, ``TIKTOKEN_CACHE_DIR`` =
the tokenizers folder litellm ships, and ``HOME`` a scratch folder. It uses
``backend="openai"`` with ``backend_params`` base_url, api_key, max_requests_per_minute, a
very large max_tokens_per_minute and max_concurrent_requests; it POSTs one probe with empty
messages when created (the mock answers it 400 with the x-ratelimit-limit-* headers).

The prompts are streamgrade's own: the synthetic sessions (scripts/synth.py) assembled and
rendered with the judge's system and final prompts (one request per session). streamgrade
grades those sessions through its whole pipeline (openai judge, ``openai.http_client``
default); Curator sends the same [system, user] messages (no response_format, so the mock
echoes the prompt back, a larger answer than streamgrade's verdict).

Regimes (a fresh mock process for every client and regime, so its token bucket and counters
start clean):

- ``0ms`` and ``200ms``: a known limit far above what 50 requests in flight can reach
  (``--rpm-high``), so the rate is each client's own: ``vs_curator_0ms``, ``vs_curator_200ms``.
- ``known``: a binding known limit (``--rpm-bound``, mock at 0 ms): RPM utilisation
  (rows/s over rpm/60) and 429s. streamgrade gets ``openai.rpm`` = the limit.
- ``unknown``: the mock enforces ``--rpm-hidden`` (60) with ``--hide-limits``; neither
  client is told (streamgrade ``openai.rpm = 0``; Curator gets no max_requests_per_minute):
  429s, the share of requests answered 429, and whether every row finished.

Timing: rows/s is end to end, rows done over wall time: for streamgrade
``Pipeline(...).run`` (opening the ledger, scan, grading, files, exports, the final DPO
rebuild), for Curator the ``LLM`` object's creation (its probe) plus the call (request
files, responses, the dataset it builds); neither counts Python's start-up or imports.
``steady/s`` and the utilisation come from the mock's request log: answered requests per
second between the 10th and 90th percentile of their arrival times.

A last regime, ``0ms-none``, runs streamgrade alone at 0 ms with ``[sinks] session_files =
"none"``: its rate and bytes written per session. Then (unless ``--skip-memory``) the RSS
of `streamgrade grade` on 10K and 100K sessions (scripts/bench_memory.py).

Prints a table, the goals of issue 13 (vs_curator_0ms >= 2, vs_curator_200ms >= 1.2,
ceiling_ratio_200ms >= 0.9 (rate at 200 ms over concurrency / latency), RSS growth 10K ->
100K < 10%, bytes per session with session_files none <= 5 KB) measured in this one run,
then, as its last line, one JSON object of the figures (``goals`` among them). Older
targets still in ``targets_met``: utilisation >= 0.98 with zero 429s when known, <= 5% of
requests answered 429 when not.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

CURATOR_SPEC = "bespokelabs-curator==0.1.31"
DEFAULT_VENV = Path.home() / ".cache" / "streamgrade-bench" / "curator-venv"

# Runs inside Curator's virtualenv: python runner.py PROMPTS.jsonl RESULT.json PARAMS_JSON
CURATOR_RUNNER = r'''
import json, os, sys, time, glob
prompts_path, result_path, params = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
import litellm as _probe_only  # noqa: F401  (locate its tokenizers; env is already set)
from bespokelabs import curator

rows = [json.loads(l) for l in open(prompts_path)]


class Grader(curator.LLM):
    def prompt(self, row):
        return [{"role": "system", "content": row["system"]}, {"role": "user", "content": row["user"]}]

    def parse(self, row, response):
        return {"id": row["id"], "response": response}


backend_params = {"base_url": params["base_url"], "api_key": "sk-mock", "max_retries": params["max_retries"],
                  "max_concurrent_requests": params["concurrency"], "max_tokens_per_minute": 10**12,
                  "request_timeout": 60, "require_all_responses": False}
if params.get("rpm"):
    backend_params["max_requests_per_minute"] = params["rpm"]
t0 = time.perf_counter()
llm = Grader(model_name="mock-judge", backend="openai", backend_params=backend_params,
             generation_params={"temperature": 0.0, "seed": 7, "max_tokens": 1024})
t1 = time.perf_counter()
error = None
done = 0
try:
    out = llm(rows)
    done = sum(1 for r in out.dataset if r.get("response") is not None)
except Exception as exc:  # noqa: BLE001 - reported
    error = f"{type(exc).__name__}: {exc}"[:500]
t2 = time.perf_counter()
json.dump({"rows": len(rows), "done": done, "create_s": round(t1 - t0, 3), "call_s": round(t2 - t1, 3),
           "seconds": round(t2 - t0, 3), "rate": round(done / (t2 - t0), 1) if done else 0.0,
           "rate_call_only": round(done / (t2 - t1), 1) if done else 0.0, "error": error}, open(result_path, "w"))
'''


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=2000, help="prompts per run at 0 ms")
    ap.add_argument("--n-200", type=int, default=2000, help="prompts per run at 200 ms")
    ap.add_argument("--n-known", type=int, default=1000, help="prompts of the binding-limit run")
    ap.add_argument("--n-unknown", type=int, default=120, help="prompts of the hidden-limit run (> --rpm-hidden)")
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--latency-ms", type=float, default=200.0)
    ap.add_argument("--rpm-high", type=int, default=60_000, help="known limit of the 0 ms / 200 ms runs (not binding)")
    ap.add_argument("--rpm-bound", type=int, default=3_000, help="known, binding limit of the utilisation run")
    ap.add_argument("--rpm-hidden", type=int, default=60, help="limit the mock enforces without telling")
    ap.add_argument("--curator-venv", type=Path, default=DEFAULT_VENV)
    ap.add_argument("--skip-curator", action="store_true", help="streamgrade's side only")
    ap.add_argument("--skip-unknown", action="store_true", help="skip the hidden-limit regime")
    ap.add_argument("--work", default=None)
    ap.add_argument("--timeout", type=float, default=240, help="bound of each measured run, s")
    ap.add_argument("--session-files", choices=["all", "failed", "none"], default="all",
                    help="[sinks] session_files of streamgrade's runs (default all, the default setting); a last "
                         "0 ms run with none measures bytes per session in any case")
    ap.add_argument("--skip-memory", action="store_true", help="skip the RSS growth runs (scripts/bench_memory.py)")
    ap.add_argument("--memory-small", type=int, default=10_000)
    ap.add_argument("--memory-large", type=int, default=100_000)
    return ap.parse_args(argv)


# --- Curator's virtualenv --------------------------------------------------------------


def curator_python(venv_dir: Path, log: Path) -> tuple[Path | None, str | None]:
    """The venv's python with Curator installed (installing it when missing), or the reason
    it cannot be had."""
    py = venv_dir / "bin" / "python"
    check = [str(py), "-c", "import bespokelabs.curator, litellm"]
    if py.exists() and subprocess.run(check, capture_output=True, timeout=120).returncode == 0:
        return py, None
    print(f"installing {CURATOR_SPEC} into {venv_dir} (once; log {log}) ...", file=sys.stderr, flush=True)
    try:
        if not py.exists():
            venv.EnvBuilder(with_pip=True, clear=False).create(venv_dir)
        with open(log, "w") as fh:
            r = subprocess.run([str(py), "-m", "pip", "install", "--disable-pip-version-check", CURATOR_SPEC],
                               stdout=fh, stderr=subprocess.STDOUT, timeout=900)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, f"cannot create the Curator venv: {exc}"
    if r.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-3:]
        return None, f"pip install {CURATOR_SPEC} failed: {' | '.join(tail)}"
    if subprocess.run(check, capture_output=True, timeout=120).returncode != 0:
        return None, "Curator installed but does not import"
    return py, None


def curator_env(py: Path, home: Path) -> dict[str, str]:
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, timeout=60).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "STREAMGRADE_", "HF_", "LITELLM_"))}
    env.update({
        "TELEMETRY_ENABLED": "false",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        "CURATOR_DISABLE_CACHE": "1",
        "CURATOR_DISABLE_RICH_DISPLAY": "1",
        "TIKTOKEN_CACHE_DIR": str(Path(site) / "litellm" / "litellm_core_utils" / "tokenizers"),
        "HOME": str(home),
        "CURATOR_CACHE_DIR": str(home / "curator-cache"),
        "HF_DATASETS_OFFLINE": "1",
        "HF_HUB_OFFLINE": "1",
        "NO_PROXY": "127.0.0.1,localhost",
        "no_proxy": "127.0.0.1,localhost",
    })
    return env


def run_curator(py: Path, env: dict[str, str], base_url: str, prompts: Path, *, rpm: int | None, concurrency: int,
                timeout: float, work: Path) -> dict[str, Any]:
    runner = work / "curator_runner.py"
    runner.write_text(CURATOR_RUNNER)
    result = Path(tempfile.mkstemp(prefix="curator-", suffix=".json", dir=work)[1])
    params = {"base_url": base_url, "rpm": rpm, "concurrency": concurrency, "max_retries": 10}
    log = work / "curator-last.log"
    t0 = time.perf_counter()
    try:
        with open(log, "w") as fh:
            proc = subprocess.run([str(py), str(runner), str(prompts), str(result), json.dumps(params)], env=env,
                                  stdout=fh, stderr=subprocess.STDOUT, timeout=timeout, cwd=str(work))
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:g} s", "done": None, "seconds": round(time.perf_counter() - t0, 1),
                "rate": None, "timed_out": True}
    try:
        out = json.loads(result.read_text())
    except (OSError, ValueError):
        tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-4:])
        out = {"error": f"exit {proc.returncode}: {tail[:600]}", "done": None, "rate": None,
               "seconds": round(time.perf_counter() - t0, 1)}
    finally:
        result.unlink(missing_ok=True)
    return out


# --- prompts ----------------------------------------------------------------------------


def write_prompts(data: Path, dest: Path) -> int:
    """streamgrade's own [system, user] prompts of every session in ``data`` (the judge's
    system prompt and final prompt over its chunks), one JSON object a line."""
    from streamgrade.chunking import chunk_session
    from streamgrade.config import load_config
    from streamgrade.formats import FORMATS, configure_formats
    from streamgrade.judges import rubric
    from streamgrade.sources.scan import scan

    cfg = load_config(env={})
    configure_formats(cfg)
    n = 0
    with open(dest, "w") as fh:
        for ref in scan([data]):
            s = FORMATS[ref.format].assemble(ref, cfg)
            chunks = chunk_session(s, cfg.chunking)
            fh.write(json.dumps({"id": ref.session_id, "system": rubric.system_prompt(s),
                                 "user": rubric.final_prompt(s, chunks, [])}) + "\n")
            n += 1
    return n


def prompts_for(work: Path, n: int) -> tuple[Path, Path]:
    data = B.sessions_dir(work, n)
    dest = work / f"prompts-{n}.jsonl"
    if not dest.exists():
        write_prompts(data, dest)
    return data, dest


# --- one measured run -------------------------------------------------------------------


def statuses(stats: dict[str, Any] | None) -> tuple[int, int, int]:
    """(chat requests, 429s, probes) from the mock's counters."""
    if not stats:
        return 0, 0, 0
    return int(stats.get("chat_requests", 0)), int(stats.get("status", {}).get("429", 0)), int(stats.get("probes", 0))


def measure(client: str, args: argparse.Namespace, work: Path, *, n: int, latency: float, mock_rpm: int,
            hide: bool, client_rpm: int | None, curator: tuple[Path, dict[str, str]] | None,
            session_files: str | None = None) -> dict[str, Any]:
    data, prompts = prompts_for(work, n)
    c = args.concurrency
    log = work / f"mock-{client}.log"
    log.unlink(missing_ok=True)
    with B.mock(latency_ms=latency, rpm=mock_rpm, hide_limits=hide, log=str(log)) as url:
        if client == "streamgrade":
            r = asyncio.run(B.run_streamgrade(url, data, work, concurrency=c, rpm=client_rpm or 0,
                                              timeout=args.timeout, label="peers",
                                              session_files=session_files or args.session_files))
            r["done"] = r["graded"]
        else:
            assert curator is not None
            r = run_curator(curator[0], curator[1], url, prompts, rpm=client_rpm, concurrency=c,
                            timeout=args.timeout, work=work)
        stats = url.stats()
    requests, r429, probes = statuses(stats)
    r.update({"client": client, "n": n, "requests": requests, "429s": r429, "probes": probes,
              "share_429": round(r429 / requests, 4) if requests else None,
              "all_rows": r.get("done") == n})
    r["steady_rate"] = steady_rate(log)
    if mock_rpm and r.get("steady_rate"):
        r["utilisation"] = round(r["steady_rate"] / (mock_rpm / 60.0), 3)
    return r


def steady_rate(log: Path) -> float | None:
    """Answered chat requests per second in steady state, from the mock's request log: the
    span from the 10th to the 90th percentile of their arrival times (a run's start-up, the
    initial burst its pacer allows, and its tail left out)."""
    try:
        times = sorted(rec["t"] for rec in map(json.loads, log.read_text().splitlines())
                       if rec.get("status") == 200 and rec.get("path", "").endswith("/chat/completions"))
    except (OSError, ValueError):
        return None
    if len(times) < 20:
        return None
    lo, hi = len(times) // 10, len(times) * 9 // 10
    span = times[hi] - times[lo]
    return round((hi - lo) / span, 1) if span > 0 else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    B.quiet_logs()
    work = B.work_dir(args.work)
    t0 = time.perf_counter()
    c, lat = args.concurrency, args.latency_ms

    curator: tuple[Path, dict[str, str]] | None = None
    curator_error = None
    if args.skip_curator:
        curator_error = "skipped (--skip-curator)"
    else:
        py, curator_error = curator_python(args.curator_venv, work / "curator-install.log")
        if py is not None:
            home = work / "curator-home"
            home.mkdir(exist_ok=True)
            curator = (py, curator_env(py, home))
    if curator_error:
        print(f"CURATOR NOT RUN: {curator_error}", file=sys.stderr)

    regimes = [
        ("0ms", dict(n=args.n, latency=0, mock_rpm=args.rpm_high, hide=False, client_rpm=args.rpm_high)),
        (f"{lat:g}ms", dict(n=args.n_200, latency=lat, mock_rpm=args.rpm_high, hide=False, client_rpm=args.rpm_high)),
        ("known", dict(n=args.n_known, latency=0, mock_rpm=args.rpm_bound, hide=False, client_rpm=args.rpm_bound)),
    ]
    if not args.skip_unknown:
        regimes.append(("unknown", dict(n=args.n_unknown, latency=0, mock_rpm=args.rpm_hidden, hide=True, client_rpm=None)))

    regimes.append(("0ms-none", dict(n=args.n, latency=0, mock_rpm=args.rpm_high, hide=False, client_rpm=args.rpm_high,
                                     session_files="none")))
    results: dict[str, dict[str, Any]] = {}
    for name, kw in regimes:
        for client in ("streamgrade", "curator"):
            if client == "curator" and name == "0ms-none":
                continue
            if client == "curator" and curator is None:
                results[f"{client}:{name}"] = {"client": client, "error": curator_error}
                continue
            print(f"  {name:>8} {client:<12} ...", end="", file=sys.stderr, flush=True)
            r = measure(client, args, work, curator=curator, **kw)
            results[f"{client}:{name}"] = r
            print(f" {r.get('rate')}/s, {r.get('429s')} x 429, rows {r.get('done')}/{r['n']}"
                  + (f"  ERROR {r['error']}" if r.get("error") else ""), file=sys.stderr, flush=True)

    rows = []
    for name, kw in regimes:
        limit = f"{kw['mock_rpm']} rpm{' hidden' if kw['hide'] else ''}"
        for client in ("streamgrade", "curator"):
            if f"{client}:{name}" not in results:
                continue
            r = results[f"{client}:{name}"]
            rows.append([name, client, f"{kw['latency']:g} ms", limit, r.get("n"), r.get("done"), r.get("seconds"),
                         r.get("rate"), r.get("steady_rate"), r.get("utilisation"), r.get("requests"), r.get("429s"), r.get("share_429"),
                         (r.get("error") or "")[:60]])
    print(B.table(rows, ["regime", "client", "latency", "limit", "rows", "done", "seconds", "rows/s", "steady/s", "util",
                         "requests", "429s", "429 share", "error"]))
    print(f"streamgrade's runs: [sinks] session_files = {args.session_files!r} (0ms-none: 'none'); bytes written per "
          "session: " + ", ".join(f"{name} {results[f'streamgrade:{name}'].get('bytes_per_session')}"
                                   for name, _ in regimes if f"streamgrade:{name}" in results))
    if curator_error:
        print(f"Curator was not run: {curator_error}")

    def g(key: str, field: str) -> Any:
        return results.get(key, {}).get(field)

    lat_key = f"{lat:g}ms"
    figures: dict[str, Any] = {
        "benchmark": "peers",
        "concurrency": c,
        "curator": CURATOR_SPEC if curator else None,
        "curator_error": curator_error,
        "rpm_high": args.rpm_high,
        "rpm_bound": args.rpm_bound,
        "rpm_hidden": args.rpm_hidden,
        "streamgrade_0ms": g("streamgrade:0ms", "rate"),
        "curator_0ms": g("curator:0ms", "rate"),
        "vs_curator_0ms": B.ratio(g("streamgrade:0ms", "rate"), g("curator:0ms", "rate")),
        "streamgrade_200ms": g(f"streamgrade:{lat_key}", "rate"),
        "curator_200ms": g(f"curator:{lat_key}", "rate"),
        "vs_curator_200ms": B.ratio(g(f"streamgrade:{lat_key}", "rate"), g(f"curator:{lat_key}", "rate")),
        "known_utilisation_streamgrade": g("streamgrade:known", "utilisation"),
        "known_utilisation_curator": g("curator:known", "utilisation"),
        "known_429s_streamgrade": g("streamgrade:known", "429s"),
        "known_429s_curator": g("curator:known", "429s"),
        "vs_curator_known": B.ratio(g("streamgrade:known", "rate"), g("curator:known", "rate")),
        "curator_0ms_call_only": g("curator:0ms", "rate_call_only"),
        "curator_200ms_call_only": g(f"curator:{lat_key}", "rate_call_only"),
        "steady_0ms": {cl: g(f"{cl}:0ms", "steady_rate") for cl in ("streamgrade", "curator")},
        "steady_200ms": {cl: g(f"{cl}:{lat_key}", "steady_rate") for cl in ("streamgrade", "curator")},
    }
    figures["session_files"] = args.session_files
    figures["ceiling_200ms"] = c / (lat / 1000.0)
    figures["ceiling_ratio_200ms"] = B.ratio(g(f"streamgrade:{lat_key}", "rate"), figures["ceiling_200ms"])
    figures["ceiling_ratio_200ms_curator"] = B.ratio(g(f"curator:{lat_key}", "rate"), figures["ceiling_200ms"])
    figures["streamgrade_0ms_none"] = g("streamgrade:0ms-none", "rate")
    figures["vs_curator_0ms_none"] = B.ratio(g("streamgrade:0ms-none", "rate"), g("curator:0ms", "rate"))
    figures["bytes_per_session"] = g("streamgrade:0ms", "bytes_per_session")
    figures["bytes_per_session_none"] = g("streamgrade:0ms-none", "bytes_per_session")
    figures["bytes_by_kind_none"] = g("streamgrade:0ms-none", "bytes_by_kind")
    figures["tail_s"] = {name: g(f"streamgrade:{name}", "tail_s") for name in ("0ms", lat_key)}
    if args.skip_memory:
        figures["memory"] = None
    else:
        print(f"  memory: streamgrade grade on {args.memory_small} and {args.memory_large} sessions ...", file=sys.stderr,
              flush=True)
        figures["memory"] = B.memory_growth(args.memory_small, args.memory_large, session_files=args.session_files)
    figures["rss_growth"] = figures["memory"]["growth"] if figures["memory"] else None
    for client in ("streamgrade", "curator"):
        for name, _ in regimes:
            if name in ("0ms", lat_key):
                figures[f"{client}_429s_{name}"] = g(f"{client}:{name}", "429s")
    if not args.skip_unknown:
        for client in ("streamgrade", "curator"):
            k = f"{client}:unknown"
            figures[f"unknown_{client}"] = {f: g(k, f) for f in ("rate", "steady_rate", "seconds", "requests", "429s", "share_429",
                                                                 "done", "all_rows", "error")}
    sg_unknown = figures.get("unknown_streamgrade", {})
    figures["goals"] = B.goals(figures)
    print(B.goals_table(figures["goals"]))
    figures["targets_met"] = {
        "vs_curator_0ms>=3": bool(figures["vs_curator_0ms"] and figures["vs_curator_0ms"] >= 3),
        "vs_curator_200ms>=1.2": bool(figures["vs_curator_200ms"] and figures["vs_curator_200ms"] >= 1.2),
        "known_utilisation>=0.98_and_0x429": bool((figures["known_utilisation_streamgrade"] or 0) >= 0.98
                                                  and figures["known_429s_streamgrade"] == 0),
        "unknown_429_share<=0.05": bool(sg_unknown.get("share_429") is not None and sg_unknown["share_429"] <= 0.05
                                        and sg_unknown.get("all_rows")),
    }
    figures["seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
