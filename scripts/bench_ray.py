#!/usr/bin/env python3
"""Ray engine benchmark: rows/s of ``streamgrade grade`` with the local engine and with
``--engine ray``, on the same rows against the same mock provider, in one run.

    python scripts/bench_ray.py [--sizes 2000 20000] [--latency-ms 50] [--actors 2] [--repeats 3]

Rows: synthetic OpenAI-chat sessions (scripts/synth.py; one judge request each), made once
in the work dir. The mock provider (scripts/mock_provider.py) runs in its own process with a
fixed latency. Every run is the real CLI in a subprocess (``streamgrade grade DATA -o OUT``,
openai judge, a fresh OUT), timed from its start to its exit, so Ray's start-up, the scan,
the ledger, every file, the exports, the HTML reports and the final training rebuild are in
the figures of both engines. Runs, in this order: local then Ray at each size, ``--repeats``
times (alternating, so that a slow spell of the disk hits both), then Ray with one actor at
the smallest size (the per-actor rate). Between runs the output is removed, the page cache
written back (``sync``) and the machine left idle for 2 s, so that one run's writeback does
not land in the next. Each engine's figures at a size are the medians of its repeats.

Figures per run: ``seconds`` (wall), ``rate`` (rows / wall), ``first_s`` (to the first line
of scores.jsonl), ``steady`` (rows/s between 10% and 90% of the lines, sampled every 0.1 s),
and the CPU time (from /proc) of the driver and of the grading actors, per row in ms: what
bounds a cluster (a driver core serves about 1000 / driver_ms rows/s; an actor core about
1000 / actor_ms, or ``max_concurrency`` / latency when the judge's latency is the bound).
Ray's rate is compared with the local engine's twice: the ratio of the medians, and the
median of the ratios of each back-to-back pair of runs (less moved by a slow spell of the
machine, which hits both runs of a pair). Fixed cost per engine: the intercept of the line through its two sizes' wall times,
``t(n) = fixed + n / marginal_rate``. Targets: Ray's fixed cost under 10 s, and Ray's
rate at the largest size at least 0.9 of the local engine's.

Prints a table, then, as its last line, one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs=2, default=[2000, 20000], metavar=("SMALL", "LARGE"))
    ap.add_argument("--latency-ms", type=float, default=50.0, help="the mock's latency per request")
    ap.add_argument("--concurrency", type=int, default=50, help="openai.max_concurrency (per Ray actor)")
    ap.add_argument("--actors", type=int, default=2, help="Ray actors ([ray] actors)")
    ap.add_argument("--work", default=None, help="scratch folder (default: $TMPDIR/streamgrade-bench)")
    ap.add_argument("--timeout", type=float, default=1800, help="bound of each run, s")
    ap.add_argument("--repeats", type=int, default=3, help="runs per engine and size (medians are reported)")
    return ap.parse_args(argv)


def grade(data: Path, work: Path, env: dict[str, str], engine: str, n: int, timeout: float,
          *extra: str) -> dict[str, Any]:
    """One CLI run into a fresh OUT; samples scores.jsonl's line count every 0.1 s."""
    out = Path(tempfile.mkdtemp(prefix=f"ray-bench-{engine}-", dir=work))
    scores = out / "exports" / "scores.jsonl"
    cmd = [sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress",
           "--engine", engine, *extra]
    samples: list[tuple[float, int]] = []
    cpu: dict[int, tuple[str, float]] = {}  # pid -> (role, CPU seconds seen last)
    counter = LineCounter(scores)
    last_cpu = 0.0
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        while proc.poll() is None:
            if time.perf_counter() - t0 > timeout:
                proc.kill()
                raise RuntimeError(f"{engine} run at {n} rows did not finish within {timeout:.0f} s")
            lines = counter.count()
            if lines and (not samples or lines != samples[-1][1]):
                samples.append((time.perf_counter() - t0, lines))
            if time.perf_counter() - last_cpu >= CPU_EVERY_S:
                _sample_cpu(proc.pid, cpu)
                last_cpu = time.perf_counter()
            time.sleep(0.1)
        seconds = time.perf_counter() - t0
        err = proc.stderr.read() if proc.stderr else ""
    finally:
        if proc.stderr:
            proc.stderr.close()
    graded = counter.count()
    shutil.rmtree(out, ignore_errors=True)
    os.sync()  # this run's writeback and deletions, not in the next run's time
    time.sleep(2)
    if proc.returncode != 0 or graded != n:
        raise RuntimeError(f"{engine} run at {n} rows: exit {proc.returncode}, {graded} lines\n{err[-2000:]}")
    per_row = {role: round(1000 * sum(c for r, c in cpu.values() if r == role) / n, 2)
               for role in ("driver", "actors", "ray")}
    return {"engine": engine, "n": n, "seconds": round(seconds, 2), "rate": round(n / seconds, 1),
            "first_s": round(samples[0][0], 2) if samples else None, "steady": steady(samples, n),
            "cpu_ms_per_row": per_row}


_TICK = os.sysconf("SC_CLK_TCK")


def _sample_cpu(root: int, cpu: dict[int, tuple[str, float]]) -> None:
    """CPU seconds (user + system, /proc/PID/stat) of ``root`` (the driver) and each of its
    descendants, by role: driver, actors (Ray Data's GradeActor workers), ray (the rest)."""
    children: dict[int, list[int]] = {}
    stats: dict[int, list[str]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        stats[pid] = fields
        children.setdefault(int(fields[1]), []).append(pid)
    todo, seen = [root], set()
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in stats:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, []))
        try:
            name = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode(errors="replace")
        except OSError:
            continue
        role = "driver" if pid == root else "actors" if "GradeActor" in name else "ray"
        if cpu.get(pid, ("",))[0] == "actors":  # a worker's title changes; once an actor, counted as one
            role = "actors"
        f = stats[pid]
        cpu[pid] = (role, (int(f[11]) + int(f[12])) / _TICK)


#: How often the CPU of the run's processes is sampled (s): a pass over /proc costs a few
#: ms, taken from the same two cores as the run.
CPU_EVERY_S = 0.5


class LineCounter:
    """The line count of a growing file, reading only the bytes added since the last call
    (re-reading a 20 MB scores.jsonl ten times a second took about half a core from the
    run being measured)."""

    def __init__(self, path: Path):
        self.path, self.offset, self.lines = path, 0, 0

    def count(self) -> int:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                while chunk := f.read(1 << 20):
                    self.lines += chunk.count(b"\n")
                    self.offset += len(chunk)
        except FileNotFoundError:
            pass
        return self.lines


def steady(samples: list[tuple[float, int]], n: int) -> float | None:
    """Rows/s between the samples where the line count first reached 10% and 90% of n."""
    lo = next((s for s in samples if s[1] >= n // 10), None)
    hi = next((s for s in samples if s[1] >= n * 9 // 10), None)
    if lo is None or hi is None or hi[0] <= lo[0]:
        return None
    return round((hi[1] - lo[1]) / (hi[0] - lo[0]), 1)


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of repeated runs of one engine at one size: wall seconds, rate, steady
    rate, first result and CPU per row each the median of its own values."""
    if len(runs) == 1:
        return runs[0]
    med = lambda xs: round(statistics.median(xs), 2) if xs else None  # noqa: E731
    return runs[0] | {
        "seconds": med([r["seconds"] for r in runs]), "rate": med([r["rate"] for r in runs]),
        "steady": med([r["steady"] for r in runs if r["steady"] is not None]),
        "first_s": med([r["first_s"] for r in runs if r["first_s"] is not None]),
        "cpu_ms_per_row": {k: med([r["cpu_ms_per_row"][k] for r in runs]) for k in runs[0]["cpu_ms_per_row"]}}


def fixed_cost(small: dict[str, Any], large: dict[str, Any]) -> tuple[float | None, float | None]:
    """(fixed s, marginal rows/s) of the line through two runs' (n, wall seconds)."""
    dt = large["seconds"] - small["seconds"]
    if dt <= 0:
        return None, None
    marginal = (large["n"] - small["n"]) / dt
    return round(small["seconds"] - small["n"] / marginal, 2), round(marginal, 1)


def paired_ratios(runs: list[dict[str, Any]], n: int) -> list[float]:
    """Ray's rate over the local engine's, for each pair of back-to-back runs at ``n`` rows
    (a local run, then the Ray run that followed it): a slow spell of this shared machine
    weighs on both runs of a pair, where the ratio of the medians may pair a fast run with
    a slow one."""
    local = [r for r in runs if (r["engine"], r["n"]) == ("local", n)]
    ray = [r for r in runs if (r["engine"], r["n"]) == ("ray", n)]
    return [round(b["rate"] / a["rate"], 3) for a, b in zip(local, ray) if a["rate"]]


def _per_core(ms: float) -> float | None:
    return round(1000 / ms, 1) if ms else None


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    small_n, large_n = args.sizes
    work = B.work_dir(args.work)
    c = args.concurrency
    t0 = time.perf_counter()
    print(f"bench_ray: sizes {small_n} and {large_n}, mock at {args.latency_ms:g} ms (own process), "
          f"{c} requests in flight per engine (per actor with Ray), {args.actors} Ray actors, work dir {work}",
          file=sys.stderr)
    data = {n: B.sessions_dir(work, n) for n in (small_n, large_n)}
    runs: list[dict[str, Any]] = []
    with B.mock(latency_ms=args.latency_ms) as url:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_", "RAY_"))}
        src = str(B.ROOT / "src")
        env.update(PYTHONPATH=os.pathsep.join([src, env.get("PYTHONPATH", "")]), STREAMGRADE_BASE_URL=url,
                   STREAMGRADE_JUDGE="openai", STREAMGRADE_MODEL="mock-judge",
                   STREAMGRADE_OPENAI__RPM="6000000",  # a known limit far above reach: the pacer never binds
                   STREAMGRADE_OPENAI__MAX_CONCURRENCY=str(c), STREAMGRADE_PIPELINE__GRADE_WORKERS=str(c + 14),
                   STREAMGRADE_PIPELINE__STREAM_CAPACITY=str(max(16, c)), STREAMGRADE_PIPELINE__SINK_BATCH="64",
                   STREAMGRADE_RAY__ACTORS=str(args.actors))
        for n in (small_n, large_n):
            for _ in range(args.repeats):
                for engine in ("local", "ray"):
                    run = grade(data[n], work, env, engine, n, args.timeout)
                    print(f"  {engine:5} {n:>6} rows: {run['seconds']:>7.1f} s, {run['rate']:>7.1f} rows/s",
                          file=sys.stderr)
                    runs.append(run)
        one = grade(data[small_n], work, env | {"STREAMGRADE_RAY__ACTORS": "1"}, "ray", small_n, args.timeout)
        one["engine"] = "ray (1 actor)"
        runs.append(one)
        mock_status = url.stats().get("status")

    by = {key: median_run([r for r in runs if (r["engine"], r["n"]) == key])
          for key in {(r["engine"], r["n"]) for r in runs}}
    local_fixed, local_marginal = fixed_cost(by["local", small_n], by["local", large_n])
    ray_fixed, ray_marginal = fixed_cost(by["ray", small_n], by["ray", large_n])
    print(B.table([[r["engine"], r["n"], r["seconds"], r["rate"], r["steady"], r["first_s"],
                    r["cpu_ms_per_row"]["driver"], r["cpu_ms_per_row"]["actors"], r["cpu_ms_per_row"]["ray"]]
                   for r in runs],
                  ["engine", "rows", "seconds", "rows/s", "steady/s", "first s", "driver ms", "actors ms", "ray ms"]))
    print("rows/s: rows over the wall time of the whole CLI run; steady/s: between 10% and 90% of the lines; "
          "first s: to the first line of scores.jsonl; driver/actors/ray ms: CPU per row of the CLI process, "
          "of the grading actors and of Ray's other processes")
    print(f"fixed cost (intercept of t(n) through both sizes): local {local_fixed} s, ray {ray_fixed} s; "
          f"marginal rate: local {local_marginal}/s, ray {ray_marginal}/s")
    ratio = B.ratio(by["ray", large_n]["rate"], by["local", large_n]["rate"])
    paired = {n: paired_ratios(runs, n) for n in (small_n, large_n)}
    print(f"ray / local per pair of back-to-back runs at {large_n} rows: {paired[large_n]}, "
          f"median {statistics.median(paired[large_n]) if paired[large_n] else None}")
    figures = {
        "benchmark": "ray",
        "latency_ms": args.latency_ms,
        "concurrency_per_actor": c,
        "actors": args.actors,
        "cpus": os.cpu_count(),
        f"local_{small_n}": by["local", small_n]["rate"],
        f"ray_{small_n}": by["ray", small_n]["rate"],
        f"local_{large_n}": by["local", large_n]["rate"],
        f"ray_{large_n}": by["ray", large_n]["rate"],
        f"ray_vs_local_{large_n}": ratio,
        f"ray_vs_local_{small_n}": B.ratio(by["ray", small_n]["rate"], by["local", small_n]["rate"]),
        f"ray_vs_local_{large_n}_pairs": paired[large_n],
        f"ray_vs_local_{large_n}_pairs_median": round(statistics.median(paired[large_n]), 3) if paired[large_n] else None,
        "ray_fixed_s": ray_fixed,
        "local_fixed_s": local_fixed,
        "ray_first_result_s": by["ray", small_n]["first_s"],
        "ray_marginal_rate": ray_marginal,
        "local_marginal_rate": local_marginal,
        "per_actor_rate": one["steady"],
        "repeats": args.repeats,
        f"local_{large_n}_runs": [r["rate"] for r in runs if (r["engine"], r["n"]) == ("local", large_n)],
        f"ray_{large_n}_runs": [r["rate"] for r in runs if (r["engine"], r["n"]) == ("ray", large_n)],
        "cpu_ms_per_row": {f"{e}_{n}": r["cpu_ms_per_row"] for (e, n), r in sorted(by.items())},
        # what one core of each role sustains, from the CPU per row of the large Ray run
        "driver_core_rows_s": _per_core(by["ray", large_n]["cpu_ms_per_row"]["driver"]),
        "actor_core_rows_s": _per_core(by["ray", large_n]["cpu_ms_per_row"]["actors"]),
        "actor_latency_bound_rows_s": round(c / (args.latency_ms / 1000.0), 1) if args.latency_ms else None,
        "ray_2_actors_steady": by["ray", small_n]["steady"],
        "steady": {f"{e}_{n}": r["steady"] for (e, n), r in sorted(by.items())},
        "mock_status": mock_status,
        "seconds": round(time.perf_counter() - t0, 1),
    }
    figures["targets_met"] = {
        "ray_fixed_s<10": bool(ray_fixed is not None and ray_fixed < 10),
        f"ray_vs_local_{large_n}>=0.9": bool(ratio and ratio >= 0.9),
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
