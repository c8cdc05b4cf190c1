#!/usr/bin/env python3
"""Synthetic sessions for benchmarks and chaos runs: OpenAI-chat trajectory rows (the
tau-bench shape: task_id, trial, reward, traj) in JSONL files of ``per_file`` rows each.

    python scripts/synth.py DIR N [--per-file 100] [--seed 0]

Each trajectory: a system prompt, a user request, one to four tool calls with results and a
final answer; rewards 0/1. Deterministic for a seed. Importable: ``make_sessions(dir, n)``.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

TOOLS = ["get_user_details", "search_flights", "get_reservation", "update_reservation", "cancel_reservation"]


def trajectory(rng: random.Random, i: int) -> list[dict]:
    msgs = [{"role": "system", "content": "You are an airline agent. Follow the policy. " * 8},
            {"role": "user", "content": f"Hi, I need help with booking {i}: please change my flight to day {rng.randint(1, 28)}."}]
    for k in range(rng.randint(1, 4)):
        name = rng.choice(TOOLS)
        cid = f"call_{i}_{k}"
        args = {"user_id": f"user_{rng.randint(1, 9999)}", "reservation_id": f"R{rng.randint(10000, 99999)}"}
        msgs.append({"role": "assistant", "content": None, "tool_calls": [
            {"id": cid, "type": "function", "function": {"name": name, "arguments": json.dumps(args)}}]})
        result = "Error: not found" if rng.random() < 0.2 else json.dumps({"status": "ok", "seat": rng.randint(1, 40)})
        msgs.append({"role": "tool", "tool_call_id": cid, "name": name, "content": result})
    msgs.append({"role": "assistant", "content": rng.choice(["Done, your flight is changed.", "Sorry, I cannot change a basic economy ticket."])})
    return msgs


def make_sessions(folder: str | Path, n: int, *, per_file: int = 100, seed: int = 0) -> int:
    """Write ``n`` sessions into ``folder`` (created); returns the number of files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    files = 0
    for start in range(0, n, per_file):
        rows = [{"task_id": i, "trial": 0, "reward": float(rng.random() < 0.4), "traj": trajectory(rng, i)}
                for i in range(start, min(n, start + per_file))]
        (folder / f"synth-{start // per_file:06d}.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        files += 1
    return files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("n", type=int)
    ap.add_argument("--per-file", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    print(f"{make_sessions(a.folder, a.n, per_file=a.per_file, seed=a.seed)} files, {a.n} sessions in {a.folder}")


if __name__ == "__main__":
    main()
