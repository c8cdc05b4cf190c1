#!/usr/bin/env python3
"""Peak memory of a bulk run: `streamgrade grade` on 10K and 100K synthetic sessions with
the heuristic judge, each in its own process; peak RSS from the kernel's accounting of the
child (getrusage RUSAGE_CHILDREN ru_maxrss, KiB on Linux).

    python scripts/bench_memory.py [--small 10000] [--large 100000]

Prints a table and, as the last line, one JSON object: rss_10k_mb, rss_100k_mb, growth
(rss_100k / rss_10k - 1), sessions/s of each run. Target: RSS <= 300 MB, growing < 10% from
10K to 100K. ``--session-files`` sets ``[sinks] session_files`` (default all). The output
folders go to a temporary folder on the same disk (about 400 MB for 100K sessions with
all) and are removed.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from synth import make_sessions  # noqa: E402


def measure(n: int, work: Path, *, session_files: str = "all") -> dict:
    """Peak RSS (MB) and sessions/s of `streamgrade grade` on ``n`` synthetic sessions
    (``[sinks] session_files``), in a fresh process; the output folder is removed."""
    import shutil

    data, out = work / f"data{n}", work / f"out{n}-{session_files}"
    if not (data / ".done").exists():
        make_sessions(data, n)
        (data / ".done").write_text("ok")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    env["STREAMGRADE_SINKS__SESSION_FILES"] = session_files
    t0 = time.monotonic()
    # A fresh interpreter per size, so RUSAGE_CHILDREN's maximum is this run's alone.
    code = ("import resource, subprocess, sys;"
            "p = subprocess.run([sys.executable, '-m', 'streamgrade', 'grade', sys.argv[1], '-o', sys.argv[2],"
            " '--judge', 'heuristic', '--no-progress'], stderr=subprocess.DEVNULL);"
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, p.returncode)")
    res = subprocess.run([sys.executable, "-c", code, str(data), str(out)], capture_output=True, text=True, env=env,
                         check=True)
    elapsed = time.monotonic() - t0
    rss_kb, rc = map(int, res.stdout.split())
    lines = (out / "exports" / "scores.jsonl").read_bytes().count(b"\n")
    shutil.rmtree(out, ignore_errors=True)
    return {"n": n, "rss_mb": round(rss_kb / 1024, 1), "seconds": round(elapsed, 1), "graded": lines,
            "sessions_per_s": round(lines / elapsed, 1), "exit": rc}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--small", type=int, default=10_000)
    ap.add_argument("--large", type=int, default=100_000)
    ap.add_argument("--session-files", choices=["all", "failed", "none"], default="all",
                    help="[sinks] session_files of the runs (default: all)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(dir=os.environ.get("TMPDIR")) as tmp:
        small = measure(args.small, Path(tmp), session_files=args.session_files)
        large = measure(args.large, Path(tmp), session_files=args.session_files)
    print(f"{'sessions':>9} {'peak RSS MB':>12} {'seconds':>8} {'sessions/s':>11}")
    for r in (small, large):
        print(f"{r['n']:>9} {r['rss_mb']:>12} {r['seconds']:>8} {r['sessions_per_s']:>11}")
    growth = large["rss_mb"] / small["rss_mb"] - 1
    print(json.dumps({"rss_10k_mb": small["rss_mb"], "rss_100k_mb": large["rss_mb"], "growth": round(growth, 3),
                      "sessions_per_s_10k": small["sessions_per_s"], "sessions_per_s_100k": large["sessions_per_s"],
                      "graded_10k": small["graded"], "graded_100k": large["graded"],
                      "session_files": args.session_files,
                      "target_met": large["rss_mb"] <= 300 and growth < 0.10}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
