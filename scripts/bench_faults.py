#!/usr/bin/env python3
"""Faults survived: a bulk run against the mock injecting each fault kind at 10% and 30%
(and all six at 10% together), reporting graded / failed sessions and the HTTP requests
spent per graded session (wasted spend is a cost).

    python scripts/bench_faults.py [--sessions 200] [--timeout 1.0]

Faults: 500, 503 (Retry-After 1), stall past the client timeout, truncated body, invalid
JSON, JSON that violates the verdict schema. The judge retries each request at most
``openai.max_retries`` (5) times. Last line: one JSON object of the figures.
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

KINDS = ["500", "503", "stall", "truncate", "invalid_json", "schema"]


def run(data: Path, work: Path, faults: dict[str, float], timeout: float) -> dict:
    out = work / f"out-{'-'.join(f'{k}{v}' for k, v in faults.items())}"
    with start_mock_process(stall_s=timeout * 3, seed=11, **{f"fault_{k}": v for k, v in faults.items()}) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
        env.update(STREAMGRADE_BASE_URL=url, STREAMGRADE_OPENAI__TIMEOUT_S=str(timeout),
                   STREAMGRADE_OPENAI__RPM="600000", STREAMGRADE_OPENAI__MAX_CONCURRENCY="50",
                   STREAMGRADE_PIPELINE__GRADE_WORKERS="50", STREAMGRADE_OPENAI__BACKOFF_MAX_S="2")
        t0 = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress"],
                              capture_output=True, text=True, env=env, timeout=900)
        took = time.monotonic() - t0
        stats = url.stats()
    recs = [json.loads(x) for x in (out / "exports" / "scores.jsonl").read_text().splitlines()]
    graded = sum(r["status"] == "graded" for r in recs)
    failed = [r for r in recs if r["status"] != "graded"]
    return {"faults": faults, "sessions": len(recs), "graded": graded, "failed": len(failed),
            "failed_with_reason": sum(bool(r["error"]) for r in failed), "exit": proc.returncode,
            "requests": stats["chat_requests"], "requests_per_graded": round(stats["chat_requests"] / max(1, graded), 3),
            "seconds": round(took, 1), "crashed": "Traceback" in proc.stderr}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=1.0, help="client timeout (s); stalls last 3x this")
    args = ap.parse_args(argv)
    cases = [{k: r} for k in KINDS for r in (0.1, 0.3)] + [{k: 0.1 for k in KINDS}]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        make_sessions(data, args.sessions, seed=7)
        print(f"{'faults':<44} {'graded':>6} {'failed':>6} {'req/graded':>10} {'seconds':>8}")
        for faults in cases:
            r = run(data, Path(tmp), faults, args.timeout)
            rows.append(r)
            label = ", ".join(f"{k} {v:.0%}" for k, v in faults.items())
            print(f"{label:<44} {r['graded']:>6} {r['failed']:>6} {r['requests_per_graded']:>10} {r['seconds']:>8}")
    ok = all(r["sessions"] == args.sessions and r["failed"] == r["failed_with_reason"] and not r["crashed"] for r in rows)
    print(json.dumps({"sessions": args.sessions, "all_graded_or_failed_with_reason": ok, "runs": rows}))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
