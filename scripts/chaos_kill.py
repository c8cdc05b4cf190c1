#!/usr/bin/env python3
"""Crash safety, proven: grade under SIGKILL at random moments, restart, repeat, then check.

    python scripts/chaos_kill.py [--sessions 1000] [--trials 20] [--seed 1] [--latency-ms 20]
    python scripts/chaos_kill.py --batch [--provider openai|anthropic] [--sessions 300] [--trials 10]

Makes N synthetic sessions (scripts/synth.py), starts the mock provider (its own process),
then for each trial starts ``streamgrade grade DATA -o OUT`` with the openai judge against
the mock and kills it with SIGKILL after a random delay; after the last trial one run goes to
completion.

``--batch``: the same with ``grade --batch`` against the mock's batch endpoints
(scripts/mock_batches.py: a start delay, a completion rate and seeded request errors, so
that a run goes through collect, submit, poll and download while the kills land), with a
small chunk budget so that sessions of several chunks go in rounds. The trials aim their
kills at submit, poll, download and a random moment in turn (watching the ledger every
5 ms after a random delay; a trial whose phase never comes is killed at a deadline or ends
by itself). After each kill it prints the phase the kill landed in, read from the ledger's batch tables (and the mock for
"download"): ``collect`` (no batch open: requests being gathered, or results being written),
``submit`` (an intent without its batch id), ``poll`` (a batch open and not ended at the
mock), ``download`` (a batch open that the mock has ended: results not yet stored). It then
also checks, from the mock's batch log, that no custom_id was submitted again after it
succeeded (``resubmitted_after_success``) and counts those submitted again while an earlier
batch holding them still ran (``resubmitted_while_pending``).

Then it checks:

- lost: sessions without a graded line in scores.jsonl;
- duplicates: sessions with more than one line in scores.jsonl, and repeated rows in the
  training files (sft.chatml.jsonl, sharegpt.jsonl: rebuilt at the end of a run, filtered,
  so not counted for lost);
- corrupt: lines that do not parse (a half line included), JSON files under OUT/sessions that
  do not parse, ledger inconsistencies (a session not graded, an export whose committed
  length differs from its size, appended lines the ledger does not know), and a session
  not in its one place: its folder with ``--session-files all`` (the default), its session
  store row (decoding) with ``--session-files none``, never read twice.

Prints a table, and as the last line one JSON object {trials, kills, lost, duplicates,
corrupt, ...} (with --batch also phases, batches, resubmitted_after_success ...). Exit code
0 when lost, duplicates and corrupt are all 0 (and, with --batch,
resubmitted_after_success is 0).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent / "src") not in sys.path:  # the checks read OUT with streamgrade's reader
    sys.path.append(str(HERE.parent / "src"))
from mock_provider import start_mock_process  # noqa: E402
from synth import make_sessions  # noqa: E402

#: The exports appended exactly once (sinks/layout.py APPENDED_EXPORTS), and the training
#: files rebuilt from the session folders at the end of a run (filtered: no count to expect).
APPENDED = ("scores.jsonl",)
TRAINING = ("sft.chatml.jsonl", "sharegpt.jsonl")
EXPORTS = APPENDED + TRAINING


def run_grade(data: Path, out: Path, env: dict, kill_after: float | None, extra: tuple[str, ...] = (),
              kill_when=None, min_s: float = 0.0) -> tuple[int | None, float]:
    """One `streamgrade grade` run; SIGKILL after ``kill_after`` s (None: to completion), or
    as soon as ``kill_when()`` holds after ``min_s`` s (polled every 5 ms)."""
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress",
                             *extra], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
    deadline = t0 + (kill_after if kill_after is not None else 600)
    while proc.poll() is None:
        now = time.monotonic()
        if now >= deadline or (kill_when is not None and now - t0 >= min_s and kill_when()):
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            return None, time.monotonic() - t0
        time.sleep(0.005)
    return proc.returncode, time.monotonic() - t0


def check(out: Path, n: int, session_files: str = "all") -> dict:
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
    for name in TRAINING:
        keys = Counter(json.dumps(r, sort_keys=True) for r in lines[name])
        dups += sum(c - 1 for c in keys.values() if c > 1)
    for f in (out / "sessions").rglob("*.json"):  # sessions/<shard>/<folder>/*.json
        try:
            json.loads(f.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            corrupt.append(f"{f.relative_to(out)}: does not parse")
    corrupt += check_places(out, n, session_files)
    db = sqlite3.connect(out / "state.sqlite")
    status = dict(db.execute("SELECT status, count(*) FROM sessions GROUP BY status").fetchall())
    if status.get("graded", 0) != expected or len(status) != 1:
        corrupt.append(f"ledger statuses {status}")
    for name in APPENDED:
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


def check_places(out: Path, n: int, session_files: str) -> list[str]:
    """Each session in one place, once: its folder (session_files all) or its session store
    row (none), every store row decoding (scores.json, results.json, sft.json)."""
    from streamgrade.sinks.reader import SessionsReader

    problems = []
    with SessionsReader(out) as reader:
        places = Counter()
        ids: Counter[str] = Counter()
        for _, rec, stored in reader.entries():
            places["store" if stored else "folder"] += 1
            ids[rec["session_id"]] += 1
            if stored and reader.files(rec["session_id"], None, True) is None:
                problems.append(f"store: {rec['session_id']}: no results.json/sft.json")
    want = {"all": {"folder": n}, "none": {"store": n}}.get(session_files)
    if want is not None and dict(places) != want:
        problems.append(f"sessions by place {dict(places)}, expected {want}")
    problems += [f"{sid}: read {c} times" for sid, c in ids.items() if c > 1][:5]
    return problems


def batch_phase(out: Path, url: str, provider: str) -> str:
    """Where a kill landed in batch mode, from the ledger's batch tables (see the module
    docstring); ``startup`` before the ledger exists (the process was still starting)."""
    db_path = out / "state.sqlite"
    if not db_path.exists():
        return "startup"
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT status, batch_id FROM batch_submissions WHERE status IN ('submitting', 'submitted')"
                          ).fetchall()
    except sqlite3.OperationalError:
        rows = []
    finally:
        db.close()
    if any(status == "submitting" for status, _ in rows):
        return "submit"
    if not rows:
        return "collect"
    root = url.removesuffix("/v1")
    for _, batch_id in rows:
        path = f"{root}/v1/batches/{batch_id}" if provider == "openai" else f"{root}/v1/messages/batches/{batch_id}"
        req = urllib.request.Request(path, headers={"x-api-key": "sk-ant-chaos", "anthropic-version": "2023-06-01"})
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 - the local mock
            b = json.load(resp)
        if b.get("status") in ("completed", "failed", "expired", "cancelled") or b.get("processing_status") == "ended":
            return "download"
    return "poll"


#: Where the batch trials aim their kills, in turn.
TARGETS = ("submit", "poll", "download", "random")


def _at_phase(out: Path, url: str, provider: str, target: str) -> bool:
    """Whether the run is now in ``target`` (see :func:`batch_phase`); False while the
    ledger cannot be read."""
    try:
        return batch_phase(out, url, provider) == target
    except (sqlite3.Error, OSError, ValueError):
        return False


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sessions", type=int, default=1000)
    ap.add_argument("--trials", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--latency-ms", type=float, default=20.0)
    ap.add_argument("--min-kill-s", type=float, default=0.3)
    ap.add_argument("--max-kill-s", type=float, default=3.0)
    ap.add_argument("--keep", type=Path, help="work in this folder and keep it")
    ap.add_argument("--batch", action="store_true", help="grade --batch against the mock's batch endpoints")
    ap.add_argument("--provider", choices=["openai", "anthropic"], default="openai", help="with --batch")
    ap.add_argument("--batch-rate", type=float, default=100.0,
                    help="with --batch: the mock's requests finished per second in a batch")
    ap.add_argument("--batch-error-rate", type=float, default=0.05, help="with --batch: the mock's request errors")
    ap.add_argument("--session-files", choices=["all", "failed", "none"], default="all",
                    help="[sinks] session_files of the runs: with none, every session must end in the session "
                         "store once")
    args = ap.parse_args(argv)
    if args.batch and args.max_kill_s == 3.0:
        args.max_kill_s = 8.0  # a batch run takes longer: spread the kills over its phases
    rng = random.Random(args.seed)
    phases: Counter[str] = Counter()
    with tempfile.TemporaryDirectory() as tmp:
        work = args.keep or Path(tmp)
        data, out = work / "data", work / "out"
        make_sessions(data, args.sessions, seed=args.seed)
        batch_log = work / "batch-log.jsonl"
        mock_options: dict = {"latency_ms": args.latency_ms}
        extra: tuple[str, ...] = ()
        if args.batch:
            mock_options.update(batch_start_delay_s=0.5, batch_rate=args.batch_rate, batch_finalize_s=0.3,
                                batch_error_rate=args.batch_error_rate, batch_log=str(batch_log), seed=args.seed)
            extra = ("--batch", "--judge", args.provider)
        with start_mock_process(**mock_options) as url:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
            env.update(STREAMGRADE_BASE_URL=url, STREAMGRADE_OPENAI__MAX_CONCURRENCY="32",
                       STREAMGRADE_PIPELINE__GRADE_WORKERS="32", STREAMGRADE_SINKS__SESSION_FILES=args.session_files)
            if args.batch:
                env.update(ANTHROPIC_API_KEY="sk-ant-chaos", STREAMGRADE_ANTHROPIC__BASE_URL=url.removesuffix("/v1"),
                           STREAMGRADE_CHUNKING__MAX_TOKENS="200", STREAMGRADE_BATCH__QUIET_S="0.3",
                           STREAMGRADE_BATCH__POLL_MIN_S="0.2", STREAMGRADE_BATCH__POLL_MAX_S="0.5",
                           STREAMGRADE_OPENAI__BACKOFF_BASE_S="0.1", STREAMGRADE_ANTHROPIC__BACKOFF_BASE_S="0.1")
            kills = 0
            print(f"{'trial':>5} {'outcome':>10} {'after_s':>8} {'graded_lines':>13}"
                  + (f" {'aimed_at':>8} {'phase':>9}" if args.batch else ""))
            for trial in range(1, args.trials + 1):
                delay = rng.uniform(args.min_kill_s, args.max_kill_s)
                kill_when, min_s, target = None, 0.0, ""
                if args.batch:  # aim the kills at each phase in turn (a random delay first)
                    target = TARGETS[(trial - 1) % len(TARGETS)]
                    if target != "random":
                        kill_when = functools.partial(_at_phase, out, url, args.provider, target)
                        min_s, delay = rng.uniform(0.0, args.max_kill_s / 2), args.max_kill_s * 3
                code, took = run_grade(data, out, env, delay, extra, kill_when=kill_when, min_s=min_s)
                kills += code is None
                path = out / "exports" / "scores.jsonl"
                n_lines = path.read_bytes().count(b"\n") if path.exists() else 0
                phase = ""
                if args.batch:
                    phase = batch_phase(out, url, args.provider) if code is None else "(done)"
                    phases[phase] += 1
                print(f"{trial:>5} {'killed' if code is None else f'exit {code}':>10} {took:>8.2f} {n_lines:>13}"
                      + (f" {target:>8} {phase:>9}" if args.batch else ""))
            code, took = run_grade(data, out, env, None, extra)
            print(f"{'final':>5} {f'exit {code}':>10} {took:>8.2f}")
            mock_stats = url.stats()
        result = check(out, args.sessions, args.session_files)
        if args.batch:
            from mock_batches import read_batch_submissions, resubmitted_after_success

            after_success = resubmitted_after_success(batch_log, args.provider)
            submissions = read_batch_submissions(batch_log, args.provider)
    figures = {"trials": args.trials, "kills": kills, "sessions": args.sessions, "lost": result["lost"],
               "duplicates": result["duplicates"], "corrupt": result["corrupt"], "final_exit": code,
               "requests": mock_stats.get("chat_requests"), "problems": result["problems"],
               "session_files": args.session_files}
    ok = figures["lost"] == figures["duplicates"] == figures["corrupt"] == 0 and code == 0
    if args.batch:
        bstats = mock_stats["batches"][args.provider]
        figures.update(provider=args.provider, phases=dict(phases), batches=bstats["created"],
                       requests_submitted=bstats["requests_submitted"], succeeded=bstats["succeeded"],
                       errored=bstats["errored"], custom_ids=len(submissions),
                       resubmitted_after_success=sum(len(v) for v in after_success.values()),
                       resubmitted_while_pending=bstats["resubmitted_while_pending"])
        ok = ok and figures["resubmitted_after_success"] == 0
        figures["requests"] = figures["requests_submitted"]
    print(f"lost {figures['lost']}, duplicates {figures['duplicates']}, corrupt {figures['corrupt']} "
          f"over {args.trials} trials ({kills} SIGKILLs); {figures['requests']} requests to the mock"
          + (f"; kills by phase {dict(phases)}; {figures['resubmitted_after_success']} custom_ids resubmitted after "
             f"success, {figures['resubmitted_while_pending']} while pending" if args.batch else ""))
    print(json.dumps(figures))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
