"""Augmented tasks: the JSONL rows ``streamgrade hints`` writes, and Harbor task folders.

A row (one per task, in task-key order)::

    {"task_id", "task", "group": [key values], "hints": {"tools": [{name, purpose, example,
     episodes}], "strategy": [str], "pitfalls": [{text, episodes: [session ids]}],
     "success_criteria": [str]}, "augmented_task", "episodes": [{session_id, trial,
     success, decided_by, reward, score, turns, source ("llm" | "offline"), error}]}

``augmented_task`` is the task text, then a ``# Hints`` section with four parts:
``## Tools``, ``## Strategy``, ``## Pitfalls`` and ``## Success criteria`` (a part with
nothing to say says so, e.g. "No episode of this task succeeded yet").

Harbor task folders (harborframework.com/docs/tasks: a task is a folder holding
``instruction.md``, ``task.toml``, ``environment/``, ``tests/`` and optionally
``solution/``): :func:`write_harbor_task` writes ``<dest>/<task>/instruction.md`` (the
augmented task) and, when the original task folder is given, copies its other files
(``task.toml``, ``environment/``, ``tests/``, ``solution/``: the task needs them to run;
none of them goes into a hint); without it a minimal ``task.toml`` (``version = "1.0"``
and a ``[metadata]`` table naming the source) is written and the folder is not runnable
until ``environment/`` and ``tests/`` are added. Every file is written atomically.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from ..sinks.atomic import write_atomic
from ..sinks.layout import session_folder
from .episodes import Task

NO_SUCCESS = "No episode of this task succeeded yet"


def augmented_task(task: str, hints: dict[str, Any], failed: int | None = None) -> str:
    """``task`` followed by the ``# Hints`` section (see the module docstring); ``failed``
    the number of failed episodes read (for the note when they showed no pitfall)."""
    out = [task.rstrip(), "", "# Hints", "", "## Tools", ""]
    tools = hints.get("tools") or []
    if tools:
        for t in tools:
            line = f"- `{t['name']}`" + (f": {t['purpose']}" if t.get("purpose") else "")
            if t.get("example"):
                line += f". Example: `{t['example']}`"
            if t.get("seen_in_failures_only"):
                line += " (seen in failed episodes only)"
            out.append(line)
    else:
        out.append("- No tool calls were recorded.")
    out += ["", "## Strategy", ""]
    strategy = hints.get("strategy") or []
    out += [f"{i}. {s}" for i, s in enumerate(strategy, 1)] if strategy else [f"- {NO_SUCCESS}."]
    out += ["", "## Pitfalls", ""]
    pits = hints.get("pitfalls") or []
    out += [f"- {p['text']} (seen in {len(p['episodes'])} failed episode{'s' if len(p['episodes']) != 1 else ''})"
            for p in pits] if pits else [
        "- No failed episode was read." if failed == 0 else
        f"- None seen in the {failed} failed episode{'s' if failed != 1 else ''} (no error, loop or refusal)."
        if failed else "- None seen in the failed episodes."]
    out += ["", "## Success criteria", ""]
    crit = hints.get("success_criteria") or []
    out += [f"- {c}" for c in crit] if crit else ["- Not known yet."]
    return "\n".join(out) + "\n"


def task_row(task: Task, hints: dict[str, Any], episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """The JSONL row of one task (see the module docstring)."""
    return {"task_id": task.task_id, "task": task.task, "group": list(task.key), "hints": hints,
            "augmented_task": augmented_task(task.task, hints, sum(1 for e in episodes if not e.get("success"))),
            "episodes": episodes}


def write_rows(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write ``rows`` as JSONL to ``path`` atomically (UTF-8, one object a line)."""
    write_atomic(path, b"".join(json.dumps(r, ensure_ascii=False).encode("utf-8") + b"\n" for r in rows))


def _toml_str(value: str) -> str:
    """A TOML basic string: JSON's escapes are TOML's for these characters (no \\/ and no
    surrogate escapes are produced with ensure_ascii=False)."""
    return json.dumps(value, ensure_ascii=False)


def harbor_folder_name(row: dict[str, Any]) -> str:
    """The folder of a task: the last path part of its task id (Harbor's task name), else
    its group key, made a safe folder name (:func:`streamgrade.sinks.layout.session_folder`)."""
    tid = row.get("task_id")
    name = str(tid).rstrip("/").rsplit("/", 1)[-1] if tid else \
        "-".join(x.replace(":", "-") for x in row.get("group") or [] if x)
    return session_folder(name or "task")


def write_harbor_task(dest: Path, row: dict[str, Any], source: Path | None = None) -> Path:
    """Write the Harbor task folder of ``row`` under ``dest`` (see the module docstring);
    ``source`` is the original task folder, whose files other than ``instruction.md`` are
    copied. Returns the folder. Raises OSError."""
    folder = dest / harbor_folder_name(row)
    folder.mkdir(parents=True, exist_ok=True)
    if source is not None and source.is_dir():
        for item in source.iterdir():
            if item.name == "instruction.md":
                continue
            target = folder / item.name
            if item.is_dir():
                shutil.copytree(item, target, dirs_exist_ok=True)
            else:
                shutil.copy2(item, target)
    if not (folder / "task.toml").exists():
        n = len(row["episodes"])
        wins = sum(1 for e in row["episodes"] if e.get("success"))
        toml = ('version = "1.0"\n\n[metadata]\n'
                f"source = {_toml_str('streamgrade hints')}\n"
                f"task_id = {_toml_str(str(row.get('task_id') or ''))}\n"
                f"episodes = {n}\nsuccessful_episodes = {wins}\n")
        write_atomic(folder / "task.toml", toml.encode("utf-8"))
    write_atomic(folder / "instruction.md", row["augmented_task"].encode("utf-8"))
    return folder


__all__ = ["augmented_task", "task_row", "write_rows", "write_harbor_task", "harbor_folder_name", "NO_SUCCESS"]
