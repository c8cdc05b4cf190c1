"""The experiments of ``streamgrade compare``: graded output folders, or an experiments file.

An experiment is a name, its attributes (``model``, ...) and one row per session: the
session's latest record (``OUT/sessions/<folder>/scores.json``, the scores.jsonl fields),
with ``_tools`` (tool name -> calls) and, when a grouping field needs it, ``_session`` (the
``session`` object of its results.json).

Experiments file (``--experiments FILE``): the shape issue 15 gives for the Crafter
fine-tuning workflow's experiments (``{experiments: [{name, output or values, model,
...}]}``). That workflow's own file is not public (synth-ai's ``compare_experiments.py``
hard-codes its experiment ids), so the keys below are our reading of that shape::

    {"experiments": [
      {"name": "baseline", "output": "runs/base", "model": "Qwen2.5-7B"},
      {"name": "fine-tuned", "output": "runs/ft", "model": "ft:Qwen2.5-7B", "where": "task_id like 'crafter/%'"},
      {"name": "paper", "values": [0.31, 0.52, 0.4], "metric": "progression"},
      {"name": "by task", "values": [{"task_id": "7", "reward": 1}, {"task_id": "8", "reward": 0}]}
    ]}

- ``name`` (required, unique): the experiment's name in the report.
- ``output``: a streamgrade output folder (its sessions' latest records), or a JSONL/JSON
  file of records (a scores.jsonl: the last line of each session_id wins); relative paths
  are relative to the experiments file's folder.
- ``values`` (instead of ``output``): the sessions inline, as numbers (values of ``metric``,
  default ``score``) or as record objects (``score``, ``reward``, ``task_id``, ``trial``,
  ``metrics``, ...).
- ``where``: with ``output``, a SQL condition on the ``scores`` view of ``streamgrade
  query`` choosing the sessions (one folder graded once, split into experiments).
- Any other key (``model``, ``difficulty``, ...) is an attribute, shown in the report.

A top-level list is read as the ``experiments`` list. Errors name the file and the entry
(``experiments[2].output``).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..exports.store import Sessions

#: Fields of a row that are not grouping values.
_INTERNAL = ("_tools", "_session", "_pass")


class ExperimentError(Exception):
    """A bad experiments file or experiment source (the message names the file and field)."""


class NoSessions(ExperimentError):
    """An experiment has no session to compare (an empty folder, every session failed or
    filtered out)."""


@dataclass
class Experiment:
    """``name``, ``attrs`` (the entry's other keys), ``source`` (where the rows came from),
    ``rows`` (one per session, see the module docstring), ``excluded`` (reason -> sessions
    left out: failed records, not matched by ``where``)."""

    name: str
    rows: list[dict[str, Any]]
    attrs: dict[str, Any] = field(default_factory=dict)
    source: str = ""
    excluded: dict[str, int] = field(default_factory=dict)


def _tool_counts(sft: Any) -> Counter:
    """Tool name -> calls of a session: the assistant tool calls of its sft.json (``sft``,
    None when unreadable); for game episodes without tool calls, the caller takes the
    action counts BALROG records (results.json ``session.meta.action_frequency``)."""
    counts: Counter = Counter()
    for m in sft.get("messages", []) if isinstance(sft, dict) else []:
        for tc in (m.get("tool_calls") or []) if isinstance(m, dict) else []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            name = (fn or {}).get("name") if isinstance(fn, dict) else (tc or {}).get("name")
            if isinstance(name, str):
                counts[name] += 1
    return counts


def _session_of(results: Any) -> dict[str, Any]:
    s = results.get("session") if isinstance(results, dict) else None
    return s if isinstance(s, dict) else {}


def lookup(row: dict[str, Any], name: str) -> Any:
    """The value of grouping field ``name`` in ``row``: ``task`` is ``task_id``; a dotted
    path (``metrics.x``, ``meta.seed``, ``judge.kind``) is followed in the record, then in
    results.json's session; a bare name is a record field, else a metric, else a session
    field or one of its ``meta``. None when absent."""
    if name == "task":
        name = "task_id"
    session = row.get("_session") or {}
    if "." in name:
        for base in (row, session):
            cur: Any = base
            for part in name.split("."):
                cur = cur.get(part) if isinstance(cur, dict) else None
            if cur is not None:
                return cur
        return None
    for source in (row, row.get("metrics"), session, session.get("meta")):
        if isinstance(source, dict) and source.get(name) is not None and name not in _INTERNAL:
            return source[name]
    return None


def _needs_session(row: dict[str, Any], fields: Iterable[str]) -> bool:
    return any(lookup(row, f) is None for f in fields)


def from_out(out: str | Path, *, where: str | None = None, group_fields: Iterable[str] = (),
             tools: bool = True) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """(rows, excluded) of a graded output folder: every session's latest record but failed
    ones; ``where`` keeps the sessions matching that SQL condition (:mod:`streamgrade.query`).
    Raises ExperimentError when ``out`` has no session."""
    out = Path(out)
    allowed = None
    if where:
        from ..query import QueryError, matching_sessions

        try:
            allowed, _ = matching_sessions(out, where)
        except QueryError as exc:
            raise ExperimentError(f"{out}: {exc}") from None
    fields = [f for f in group_fields if f]
    rows, excluded, seen = [], Counter(), 0
    with Sessions(out) as sessions:  # session folders and the session store
        for folder, rec, stored in sessions.entries():
            seen += 1
            if allowed is not None and rec["session_id"] not in allowed:
                excluded["not matched by where"] += 1
                continue
            if rec.get("status") == "failed":
                excluded["failed"] += 1
                continue
            row = dict(rec)
            files = sessions.files(rec["session_id"], None if stored else folder, stored, sft=tools) \
                if tools or _needs_session(row, fields) else None
            results, sft = files if files is not None else (None, None)
            if tools:
                row["_tools"] = _tool_counts(sft)
            if (tools and not row["_tools"]) or _needs_session(row, fields):
                row["_session"] = _session_of(results)
                freq = (row["_session"].get("meta") or {}).get("action_frequency")
                if tools and not row["_tools"] and isinstance(freq, dict):
                    row["_tools"] = Counter({str(k): int(v) for k, v in freq.items() if isinstance(v, (int, float))})
            rows.append(row)
    if not seen:
        raise NoSessions(f"{out}: no graded session (no sessions/*/scores.json): is it a streamgrade output folder?")
    return rows, dict(excluded)


def from_records_file(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL (or JSON list) file, the last one of each session_id."""
    text = path.read_text(encoding="utf-8")
    try:
        doc = json.loads(text)
        recs = doc if isinstance(doc, list) else [doc]
    except ValueError:
        recs = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    recs.append(json.loads(line))
                except ValueError as exc:
                    raise ExperimentError(f"{path}:{n}: not JSON ({exc})") from None
    latest: dict[Any, dict[str, Any]] = {}
    for i, r in enumerate(recs):
        if not isinstance(r, dict):
            raise ExperimentError(f"{path}: record {i + 1} is not an object")
        latest[r.get("session_id", i)] = r
    return [r for r in latest.values() if r.get("status") != "failed"]


def from_values(values: Any, metric: str, where: str) -> list[dict[str, Any]]:
    """Rows of an inline ``values`` list (numbers of ``metric``, or record objects)."""
    if not isinstance(values, list) or not values:
        raise ExperimentError(f"{where}: expected a non-empty list of numbers or objects")
    rows = []
    for i, v in enumerate(values):
        if isinstance(v, bool) or not isinstance(v, (int, float, dict)):
            raise ExperimentError(f"{where}[{i}]: expected a number or an object, got {type(v).__name__}")
        row = dict(v) if isinstance(v, dict) else {metric: v}
        row.setdefault("session_id", f"{i}")
        rows.append(row)
    return rows


def load_experiments_file(path: str | Path, *, group_fields: Iterable[str] = (),
                          tools: bool = True) -> list[Experiment]:
    """The experiments of an experiments file (see the module docstring). Raises
    ExperimentError."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ExperimentError(f"{path}: cannot read the experiments file: {exc}") from None
    entries = doc.get("experiments") if isinstance(doc, dict) else doc
    if not isinstance(entries, list) or not entries:
        raise ExperimentError(f"{path}: expected {{\"experiments\": [{{\"name\", \"output\" or \"values\"}}, ...]}}")
    out, names = [], set()
    for i, e in enumerate(entries):
        where = f"{path}: experiments[{i}]"
        if not isinstance(e, dict):
            raise ExperimentError(f"{where}: expected an object")
        name = e.get("name")
        if not isinstance(name, str) or not name.strip():
            raise ExperimentError(f"{where}.name: required, a non-empty string")
        if name in names:
            raise ExperimentError(f"{where}.name: {name!r} is used twice")
        names.add(name)
        if ("output" in e) == ("values" in e):
            raise ExperimentError(f"{where}: give one of output (a graded folder) or values (inline)")
        attrs = {k: v for k, v in e.items() if k not in ("name", "output", "values", "where", "metric")}
        if "values" in e:
            metric = e.get("metric", "score")
            if not isinstance(metric, str):
                raise ExperimentError(f"{where}.metric: expected a metric name")
            out.append(Experiment(name, from_values(e["values"], metric, f"{where}.values"), attrs, "values"))
            continue
        if not isinstance(e["output"], str):
            raise ExperimentError(f"{where}.output: expected a path")
        src = Path(e["output"]).expanduser()
        src = src if src.is_absolute() else path.parent / src
        cond = e.get("where")
        if cond is not None and not isinstance(cond, str):
            raise ExperimentError(f"{where}.where: expected a SQL condition (a string)")
        if src.is_dir():
            rows, excluded = from_out(src, where=cond, group_fields=group_fields, tools=tools)
        elif src.is_file():
            if cond:
                raise ExperimentError(f"{where}.where: only with an output folder")
            rows, excluded = from_records_file(src), {}
        else:
            raise ExperimentError(f"{where}.output: {src} does not exist")
        out.append(Experiment(name, rows, attrs, str(src), excluded))
    return out


def split_by(experiments: list[Experiment], field_name: str) -> list[Experiment]:
    """Each experiment split into one per value of ``field_name`` (:func:`lookup`), named by
    the value (``<name>/<value>`` when several experiments are split); rows without the
    field go to ``(none)``. Values in order of first appearance."""
    out = []
    for exp in experiments:
        groups: dict[str, list[dict[str, Any]]] = {}
        for row in exp.rows:
            v = lookup(row, field_name)
            groups.setdefault("(none)" if v is None else str(v), []).append(row)
        for value, rows in groups.items():
            name = value if len(experiments) == 1 else f"{exp.name}/{value}"
            out.append(Experiment(name, rows, {**exp.attrs, field_name: value}, exp.source, {}))
    return out


__all__ = ["Experiment", "ExperimentError", "NoSessions", "lookup", "from_out", "from_records_file", "from_values",
           "load_experiments_file", "split_by"]
