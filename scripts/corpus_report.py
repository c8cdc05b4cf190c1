#!/usr/bin/env python3
"""Grade every folder of the shared corpus with no config (heuristic judge) and print, per
folder: sessions found, graded, failed, files not recognised, and the formats read.

    python scripts/corpus_report.py [CORPUS] [--json]

CORPUS defaults to ../shared/corpus beside the project. Each folder goes through the CLI
(``streamgrade grade FOLDER -o TMP --no-progress``) as a user would run it; the figures come
from its scores.jsonl and its summary. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def grade_folder(folder: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(folder), "-o", str(out),
                              "--no-progress"], capture_output=True, text=True, env=env, timeout=1800)
        scores = out / "exports" / "scores.jsonl"
        recs = [json.loads(x) for x in scores.read_text().splitlines()] if scores.exists() else []
    m = re.search(r"(\d+) files? not recognised", res.stderr)
    found = re.search(r"of (\d+) found", res.stderr)
    return {
        "folder": folder.name,
        "found": int(found.group(1)) if found else 0,
        "graded": sum(r["status"] == "graded" for r in recs),
        "failed": sum(r["status"] == "failed" for r in recs),
        "with_reward": sum(r["reward"] is not None for r in recs),
        "unrecognised": int(m.group(1)) if m else 0,
        "formats": dict(Counter(r["source_format"] for r in recs)),
        "exit": res.returncode,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("corpus", nargs="?", type=Path, default=ROOT.parent / "shared" / "corpus")
    ap.add_argument("--json", action="store_true", help="only the JSON line")
    args = ap.parse_args()
    rows = [grade_folder(d) for d in sorted(args.corpus.iterdir()) if d.is_dir()]
    if not args.json:
        print(f"{'folder':18} {'found':>6} {'graded':>7} {'failed':>7} {'reward':>7} {'unrecog':>8}  formats")
        for r in rows:
            fmts = ", ".join(f"{k} {v}" for k, v in sorted(r["formats"].items()))
            print(f"{r['folder']:18} {r['found']:>6} {r['graded']:>7} {r['failed']:>7} {r['with_reward']:>7} "
                  f"{r['unrecognised']:>8}  {fmts}")
    print(json.dumps({"folders": rows}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
