#!/usr/bin/env python3
"""Crash safety, proven: grade under SIGKILL at random moments, restart, repeat, then check.

    python scripts/chaos_kill.py [--sessions 1000] [--trials 20] [--seed 1] [--latency-ms 20]

Makes N synthetic sessions (scripts/synth.py), starts the mock provider (its own process),
then for each trial starts ``streamgrade grade DATA -o OUT`` with the openai judge against
the mock and kills it with SIGKILL after a random delay; after the last trial one run goes to
completion. Then it checks:

- lost: sessions without a graded line in scores.jsonl, or missing from an export;
- duplicates: sessions with more than one line in scores.jsonl, and repeated export rows;
- corrupt: lines that do not parse (a half line included), JSON files under OUT/sessions that
  do not parse, and ledger inconsistencies (a session not graded, an export whose committed
  length differs from its size, appended lines the ledger does not know).

Prints a table, and as the last line one JSON object {trials, kills, lost, duplicates,
corrupt, ...}. Exit code 0 when lost, duplicates and corrupt are all 0.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from mock_provider import start_mock_process  # noqa: E402
from synth import make_sessions  # noqa: E402

EXPORTS = ("scores.jsonl", "sft.chatml.jsonl", "sharegpt.jsonl")


def run_grade(data: Path, out: Path, env: dict, kill_after: float | None) -> tuple[int | None, float]:
    """One `streamgrade grade` run; SIGKILL after ``kill_after`` s (None: to completion)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    try:
        proc.wait(timeout=kill_after if kill_after is not None else 600)
        return proc.returncode, time.monotonic() - t0
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        return None, time.monotonic() - t0


def check(out: Path, n: int) -> dict:
    corrupt: list[str] = []
    lines: dict[str, list[dict]] = {}
    for name in EXPORTS:
        path = out / "exports" / name
        raw = path.read_bytes() if path.exists() else b""
        if raw and not raw.endswith(b"\n"):
            corrupt.append(f"{name}: ends with a partial line")
        rows = []
        for i, line in enumerate(raw.splitlines(), 1):
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                corrupt.append(f"{name}:{i}: does not parse")
        lines[name] = rows
    scores = Counter(r["session_id"] for r in lines["scores.jsonl"] if r.get("status") == "graded")
    failed = [r for r in lines["scores.jsonl"] if r.get("status") != "graded"]
    expected = n
    lost = max(0, expected - len(scores))
    dups = sum(c - 1 for c in scores.values() if c > 1) + len(failed)
    for name in ("sft.chatml.jsonl", "sharegpt.jsonl"):
        keys = Counter(json.dumps(r, sort_keys=True) for r in lines[name])
        dups += sum(c - 1 for c in keys.values() if c > 1)
        lost += max(0, expected - len(keys))
    for f in (out / "sessions").glob("*/*.json"):
        try:
            json.loads(f.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            corrupt.append(f"{f.relative_to(out)}: does not parse")
    db = sqlite3.connect(out / "state.sqlite")
    status = dict(db.execute("SELECT status, count(*) FROM sessions GROUP BY status").fetchall())
    if status.get("graded", 0) != expected or len(status) != 1:
        corrupt.append(f"ledger statuses {status}")
    for name in EXPORTS:
        committed = db.execute("SELECT committed_bytes FROM exports WHERE name=?", (name,)).fetchone()
        size = (out / "exports" / name).stat().st_size
        if committed is None or committed[0] != size:
            corrupt.append(f"ledger: {name} committed {committed} != size {size}")
        known = db.execute("SELECT count(*) FROM appends WHERE export=?", (name,)).fetchone()[0]
        if known != len(lines[name]):
            corrupt.append(f"ledger: {known} appends recorded for {name}, {len(lines[name])} lines")
    db.close()
    return {"lost": lost, "duplicates": dups, "corrupt": len(corrupt), "problems": corrupt[:20],
            "graded_lines": sum(scores.values())}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--min-kill-s", type=float, default=0.3)
    ap.add_argument("--max-kill-s", type=float, default=3.0)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    args = ap.parse_args(argv)
    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        data, out = work / "data", work / "out"
        make_sessions(data, args.sessions, seed=args.seed)
        with start_mock_process(latency_ms=args.latency_ms) as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
            env.update(STREAMGRADE_BASE_URL=url, STREAMGRADE_OPENAI__MAX_CONCURRENCY="32",
                       STREAMGRADE_PIPELINE__GRADE_WORKERS="32")
            kills = 0
            print(f"{'trial':>5} {'outcome':>10} {'after_s':>8} {'graded_lines':>13}")
            for trial in range(1, args.trials + 1):
                delay = rng.uniform(args.min_kill_s, args.max_kill_s)
                code, took = run_grade(data, out, env, delay)
                kills += code is None
                path = out / "exports" / "scores.jsonl"
                n_lines = path.read_bytes().count(b"\n") if path.exists() else 0
                print(f"{trial:>5} {'killed' if code is None else f'exit {code}':>10} {took:>8.2f} {n_lines:>13}")
            code, took = run_grade(data, out, env, None)
            print(f"{'final':>5} {f'exit {code}':>10} {took:>8.2f}")
            mock_stats = url.stats()
        result = check(out, args.sessions)
    figures = {"trials": args.trials, "kills": kills, "sessions": args.sessions, "lost": result["lost"],
               "duplicates": result["duplicates"], "corrupt": result["corrupt"], "final_exit": code,
               "requests": mock_stats.get("chat_requests"), "problems": result["problems"]}
    print(f"lost {figures['lost']}, duplicates {figures['duplicates']}, corrupt {figures['corrupt']} "
          f"over {args.trials} trials ({kills} SIGKILLs); {figures['requests']} requests to the mock")
    print(json.dumps(figures))
    return 0 if figures["lost"] == figures["duplicates"] == figures["corrupt"] == 0 and code == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
