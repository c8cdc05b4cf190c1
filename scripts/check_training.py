#!/usr/bin/env python3
"""Check the training files of a graded output folder the way issue 11's "Done when" reads,
and print one figure per check.

    python scripts/check_training.py OUT [--templates]

Reads every ``*.jsonl`` under OUT/exports (``scores.jsonl`` aside, ``rebuilt/`` and
``computer_use/`` included) and checks, independently of the exporters' own code:

- file modes: every exported file is 0644 (with the usual umask 022);
- metadata: every ChatML, ShareGPT and DPO row has ``metadata`` with session_id,
  source_format, task_id, score, reward and judge (strict OpenAI files must have none);
- DPO (``prompt``/``chosen``/``rejected`` rows): both sides continue the one prompt, the
  chosen side's reward is never below the rejected side's, sides differ;
- tools: every row of one source (format + source folder of its session) carries the same
  tool list;
- Crafter: each SFT user turn is the Observation of the CSV row before its action (BALROG
  writes row N's Observation after Action N), read from the episode's CSV with ``csv``;
- computer use: every image a row references exists and opens with Pillow;
- with ``--templates``: every SFT and DPO row renders with the four chat templates of
  tests/data/chat_templates (needs transformers; uses the test harness in tests/consumers).

Exit code 0 when every check passes, 1 otherwise (the failures are listed, five a check).
"""

from __future__ import annotations

import argparse
import csv
import json
import stat
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
META_KEYS = {"session_id", "source_format", "task_id", "score", "reward", "judge"}


class Checks:
    def __init__(self) -> None:
        self.counts: dict[str, int] = defaultdict(int)
        self.fails: dict[str, list[str]] = defaultdict(list)

    def ok(self, name: str, cond: bool, what: str) -> None:
        self.counts[name] += 1
        if not cond:
            self.fails[name].append(what)

    def report(self) -> int:
        for name in sorted(self.counts):
            bad = self.fails.get(name, [])
            print(f"{'FAIL' if bad else 'ok  '} {name}: {self.counts[name] - len(bad)}/{self.counts[name]}")
            for what in bad[:5]:
                print(f"       {what}")
        return 1 if self.fails else 0


def rows_of(path: Path) -> list[dict]:
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


def crafter_expected(source_path: str) -> list[tuple[str, str]]:
    """(observation before the action, action) for each valid action N >= 1 of the CSV."""
    csv_path = Path(source_path).with_suffix(".csv")
    if not csv_path.is_file():
        return []
    with csv_path.open(newline="") as f:
        table = list(csv.DictReader(f))
    return [(table[n - 1]["Observation"].strip(), table[n]["Action"].strip())
            for n in range(1, len(table)) if table[n]["Action"].strip()]


def check_crafter(c: Checks, row: dict, where: str, sources: dict[str, str]) -> None:
    """Walk the row's (user, assistant) turns along the CSV's actions in order: each action must
    come after the Observation of the row before it (BALROG's feedback line may lead the CSV
    cell; the exporter takes it off)."""
    msgs = row.get("messages") or []
    src = sources.get(row["metadata"]["session_id"])
    expected = crafter_expected(src) if src else []
    k = 0
    for i, m in enumerate(msgs):
        if m["role"] != "assistant" or msgs[i - 1]["role"] != "user":
            continue
        seen = msgs[i - 1]["content"].strip()
        action = m["content"].rsplit("Action:", 1)[-1].strip()
        while k < len(expected) and expected[k][1] != action:
            k += 1  # an invalid action the exporter dropped
        good = k < len(expected) and expected[k][0].endswith(seen)
        c.ok("crafter: user turn is the observation before its action", good, f"{where} message {i}: {action}")
        k += 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--templates", action="store_true", help="render SFT and DPO rows with the four chat templates")
    args = ap.parse_args()
    exports = args.out / "exports"
    sources = {}
    with (exports / "scores.jsonl").open() as f:
        for line in f:
            rec = json.loads(line)
            sources[rec["session_id"]] = rec.get("source_path") or ""
    c = Checks()
    tool_lists: dict[tuple[str, str], set[str]] = defaultdict(set)
    files = sorted(p for p in exports.rglob("*") if p.is_file() and p.name != "scores.jsonl"
                   and "backup-" not in str(p) and not p.name.startswith("."))
    for path in files:
        c.ok("file mode 0644", stat.S_IMODE(path.stat().st_mode) == 0o644, f"{path} {oct(path.stat().st_mode)}")
    for path in (p for p in files if p.suffix == ".jsonl"):
        # strict OpenAI files carry no metadata; the computer-use OpenAI file does unless its
        # images are inlined for an upload
        openai = ".openai." in path.name and (path.parent.name != "computer_use" or "data:image" in path.read_text())
        rows = rows_of(path)
        print(f"{path.relative_to(args.out)}: {len(rows)} rows")
        for n, row in enumerate(rows, 1):
            where = f"{path.name}:{n}"
            meta = row.get("metadata")
            if openai:
                c.ok("openai rows carry no metadata", meta is None, where)
            elif "prompt" in row:
                c.ok("metadata on every row", isinstance(meta, dict) and all(
                    META_KEYS <= set(meta.get(s) or {}) for s in ("chosen", "rejected")), where)
            else:
                c.ok("metadata on every row", isinstance(meta, dict) and META_KEYS <= set(meta), where)
            if "prompt" in row:
                c.ok("dpo: a prompt and two different sides", bool(row["prompt"]) and row["chosen"] != row["rejected"],
                     where)
                rc, rr = meta["chosen"]["reward"], meta["rejected"]["reward"]
                c.ok("dpo: chosen reward >= rejected reward", rc is None or rr is None or rc >= rr,
                     f"{where} {rc} < {rr}")
            if isinstance(meta, dict) and "session_id" in meta and "messages" in row and not openai:
                src = sources.get(meta["session_id"], "")
                if "tools" in row or row.get("messages"):
                    names = frozenset(t["function"]["name"] for t in row.get("tools") or [])
                    tool_lists[(path.name, meta["source_format"], str(Path(src).parent))].add(names)
                if meta["source_format"] == "balrog-crafter" and path.parent == exports:
                    check_crafter(c, row, where, sources)
            if path.parent.name == "computer_use":
                images = row.get("images") or [p["image_url"]["url"] for m in row.get("messages", [])
                                                 if isinstance(m.get("content"), list) for p in m["content"]
                                                 if p.get("type") == "image_url"]
                for ref in images:
                    if ref.startswith("data:"):
                        continue
                    try:
                        from PIL import Image
                        with Image.open(path.parent / ref) as im:
                            im.load()
                        good = True
                    except Exception as e:  # noqa: BLE001 - any failure to open is the finding
                        good, ref = False, f"{ref}: {e}"
                    c.ok("computer use: image exists and opens with Pillow", good, f"{where} {ref}")
    for (name, fmt, folder), lists in sorted(tool_lists.items()):
        c.ok("one tool list per source", len(lists) == 1, f"{name} {fmt} {folder}: {len(lists)} lists")
    if args.templates:
        sys.path.insert(0, str(ROOT / "tests"))
        from consumers.rows import errors, read_rows
        from consumers.templates import check_rows
        for path in (p for p in files if p.suffix == ".jsonl" and p.parent.name != "computer_use"
                     and "sharegpt" not in p.name):
            rows, problems = read_rows(path, "templates")
            bad = errors(problems + check_rows(rows))
            c.counts["chat templates: rows render"] += len(rows)
            c.fails["chat templates: rows render"] += [f"{path.name}: {p.kind} {p.detail}"[:200] for p in bad]
            if not bad:
                c.fails.pop("chat templates: rows render", None)
    return c.report()


if __name__ == "__main__":
    sys.exit(main())
