#!/usr/bin/env python3
"""Batch mode, measured: ``streamgrade grade DATA --batch`` against the mock provider's batch
endpoints, beside the same sessions graded synchronously, for each provider.

    python scripts/bench_batch.py [--sessions 2000] [--providers openai,anthropic]
                                  [--chunk-tokens 150] [--batch-rate 2000] [--no-sync]

Makes N synthetic sessions (scripts/synth.py; ``--chunk-tokens`` sets
``chunking.max_tokens`` so that part of them have several chunks), starts the mock (its own
process; batches start after ``--start-delay-s``, finish ``--batch-rate`` requests per
second, then finalize for ``--finalize-s``), and runs, per provider, ``grade --batch`` (poll
every 0.5-1 s, quiet period 2 s) and, unless ``--no-sync``, the same data with the
synchronous judge into another folder. Prints per run: exit code, wall time, sessions
graded, requests, batches (with the multi-chunk rounds), tokens and cost, and the batch/sync
cost ratio on the same tokens; the last line is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mock_provider import start_mock_process  # noqa: E402
from synth import make_sessions  # noqa: E402


def grade(data: Path, out: Path, env: dict, provider: str, batch: bool) -> dict:
    """One ``grade`` run; its figures from scores.jsonl and the summary."""
    args = [sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--judge", provider,
            "--no-progress"] + (["--batch"] if batch else [])
    t0 = time.monotonic()
    res = subprocess.run(args, env=env, capture_output=True, text=True)
    wall = time.monotonic() - t0
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()] \
        if (out / "exports" / "scores.jsonl").exists() else []
    usage = [r.get("usage") or {} for r in recs]
    return {"exit": res.returncode, "wall_s": round(wall, 2), "graded": sum(r["status"] == "graded" for r in recs),
            "failed": sum(r["status"] == "failed" for r in recs),
            "requests": sum(u.get("requests", 0) for u in usage),
            "multi_chunk_sessions": sum(u.get("requests", 0) > 1 for u in usage),
            "prompt_tokens": sum(u.get("prompt_tokens", 0) for u in usage),
            "completion_tokens": sum(u.get("completion_tokens", 0) for u in usage),
            "cost_usd": round(sum(u.get("cost_usd", 0.0) for u in usage), 6),
            "summary": [line for line in res.stderr.splitlines() if "batch mode (" in line][:1]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=2000)
    ap.add_argument("--providers", default="openai,anthropic")
    ap.add_argument("--chunk-tokens", type=int, default=150)
    ap.add_argument("--batch-rate", type=float, default=2000.0)
    ap.add_argument("--start-delay-s", type=float, default=0.5)
    ap.add_argument("--finalize-s", type=float, default=0.2)
    ap.add_argument("--no-sync", action="store_true")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)
    figures: dict = {"sessions": args.sessions, "chunk_tokens": args.chunk_tokens}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "data"
        make_sessions(data, args.sessions, seed=args.seed)
        with start_mock_process(batch_start_delay_s=args.start_delay_s, batch_rate=args.batch_rate,
                                batch_finalize_s=args.finalize_s) as url:
            base = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
            base.update(STREAMGRADE_CHUNKING__MAX_TOKENS=str(args.chunk_tokens), STREAMGRADE_BATCH__POLL_MIN_S="0.5",
                        STREAMGRADE_BATCH__POLL_MAX_S="1", STREAMGRADE_REPORTS__HTML="false",
                        STREAMGRADE_OPENAI__RPM="600000", STREAMGRADE_ANTHROPIC__RPM="600000",
                        STREAMGRADE_PIPELINE__GRADE_WORKERS="32", STREAMGRADE_OPENAI__MAX_CONCURRENCY="32",
                        STREAMGRADE_ANTHROPIC__MAX_CONCURRENCY="32")
            for provider in args.providers.split(","):
                env = dict(base)
                if provider == "openai":
                    env["STREAMGRADE_BASE_URL"] = url
                else:
                    env.update(ANTHROPIC_API_KEY="sk-ant-bench", STREAMGRADE_ANTHROPIC__BASE_URL=url.removesuffix("/v1"))
                before = url.stats()["batches"][provider]["created"]
                b = grade(data, work / f"out-{provider}-batch", env, provider, batch=True)
                b["batches"] = url.stats()["batches"][provider]["created"] - before
                figures[f"{provider}_batch"] = b
                print(f"{provider} --batch: exit {b['exit']}, {b['wall_s']} s, {b['graded']} graded "
                      f"({b['multi_chunk_sessions']} with several chunks), {b['requests']} requests in "
                      f"{b['batches']} batches, {b['prompt_tokens'] + b['completion_tokens']:,} tokens, "
                      f"${b['cost_usd']:.4f}")
                if not args.no_sync:
                    s = grade(data, work / f"out-{provider}-sync", env, provider, batch=False)
                    figures[f"{provider}_sync"] = s
                    ratio = b["cost_usd"] / s["cost_usd"] if s["cost_usd"] else None
                    figures[f"{provider}_cost_ratio"] = round(ratio, 4) if ratio else None
                    print(f"{provider} sync:    exit {s['exit']}, {s['wall_s']} s, {s['graded']} graded, "
                          f"{s['requests']} requests, {s['prompt_tokens'] + s['completion_tokens']:,} tokens, "
                          f"${s['cost_usd']:.4f}; batch/sync cost {ratio:.3f}" if ratio else "")
    print(json.dumps(figures))
    return 0 if all(figures[k]["exit"] == 0 for k in figures if k.endswith(("_batch", "_sync"))) else 1


if __name__ == "__main__":
    sys.exit(main())
