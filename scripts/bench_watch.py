#!/usr/bin/env python3
"""Latency of the watch daemon: from a session's last write to its scores.jsonl line.

    python scripts/bench_watch.py [--sessions 200] [--settle 1.0] [--interval 0.05]

Starts `streamgrade watch DIR -o OUT --settle S` (heuristic judge), drops N Clones desktop
sessions (copies of the bundled example, each a new folder) into DIR one after another,
every ``interval`` seconds, notes the time of each session's last write, and reads the time
each session's line appears in OUT/exports/scores.jsonl (polled every 10 ms). Prints p50,
p95 and max latency and, as the last line, one JSON object. Target: p95 <= settle + 1 s.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "clones" / "20251007_131852"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=200)
    ap.add_argument("--settle", type=float, default=1.0)
    ap.add_argument("--interval", type=float, default=0.05)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        data, out = Path(tmp) / "data", Path(tmp) / "out"
        data.mkdir()
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
        proc = subprocess.Popen([sys.executable, "-m", "streamgrade", "watch", str(data), "-o", str(out),
                                 "--settle", str(args.settle), "--judge", "heuristic"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        scores = out / "exports" / "scores.jsonl"
        seen: dict[str, float] = {}
        stop = threading.Event()

        def poll() -> None:  # when each line appears
            pos = 0
            while not stop.is_set():
                if scores.exists():
                    with open(scores, "rb") as f:
                        f.seek(pos)
                        chunk = f.read()
                    now = time.monotonic()
                    complete = chunk[: chunk.rfind(b"\n") + 1]
                    pos += len(complete)
                    for line in complete.splitlines():
                        seen.setdefault(json.loads(line)["session_id"], now)
                time.sleep(0.01)

        try:
            deadline = time.monotonic() + 20
            while not scores.exists() and time.monotonic() < deadline:
                time.sleep(0.05)
            watcher = threading.Thread(target=poll, daemon=True)
            watcher.start()
            written: dict[str, float] = {}
            for i in range(args.sessions):
                sid = f"s{i:04d}"
                tmp_dir = Path(tmp) / "staging" / sid
                shutil.copytree(EXAMPLE, tmp_dir)
                os.rename(tmp_dir, data / sid)  # the session appears whole: its last write is now
                written[sid] = time.monotonic()
                time.sleep(args.interval)
            deadline = time.monotonic() + args.settle + 30
            while len(seen) < args.sessions and time.monotonic() < deadline:
                time.sleep(0.05)
            stop.set()
            watcher.join()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    lat = sorted(seen[s] - written[s] for s in written if s in seen)
    missing = args.sessions - len(lat)
    p50 = statistics.median(lat) if lat else None
    p95 = lat[min(len(lat) - 1, int(0.95 * len(lat)))] if lat else None
    print(f"{'sessions':>9} {'graded':>7} {'p50 s':>7} {'p95 s':>7} {'max s':>7} {'target p95':>11}")
    print(f"{args.sessions:>9} {len(lat):>7} {p50:>7.3f} {p95:>7.3f} {lat[-1]:>7.3f} {args.settle + 1:>11.1f}")
    print(json.dumps({"sessions": args.sessions, "graded": len(lat), "missing": missing, "settle_s": args.settle,
                      "p50_s": round(p50, 3), "p95_s": round(p95, 3), "max_s": round(lat[-1], 3),
                      "target_met": missing == 0 and p95 <= args.settle + 1, "exit": proc.returncode}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
