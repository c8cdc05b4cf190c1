"""Ground truth from a separate labels file (``--labels FILE``, ``[labels]``): a reward per
run, joined to sessions by an id.

Files understood (detected by content, :func:`load_labels`):

- every SWE-bench evaluation output that :func:`streamgrade.formats.swebench_labels.labels_of`
  reads: a harness run report (``resolved_ids``, ``unresolved_ids``, ...), per-instance
  ``report.json`` files, the experiments' ``results.json``, rows of ``{instance_id,
  resolved}``;
- a Terminal-Bench run's ``results.json``: ``{results: [{task_id, trial_name, is_resolved,
  ...}]}`` (keyed by trial name and by task id);
- any JSON object ``{id: reward or bool}``, a JSON list or JSONL file of rows, or a CSV with
  a header, whose id and value columns are given (``[labels] id_field``, ``value_field``) or
  found among the usual names (id: ``instance_id``, ``task_id``, ``trial_name``,
  ``session_id``, ``sample_id``, ``id``; value: ``reward``, ``resolved``, ``is_resolved``,
  ``correct``, ``passed``, ``success``, ``score``, ``label``).

Values become floats: numbers as they are, booleans and pass/fail words 1.0 / 0.0.
Sessions are joined by ``[labels] key`` (``session_id``, ``task_id`` or ``trial``), or, with
``auto``, by the first of their session id, trial and task id that the labels hold. A
label replaces the session's own reward; the judges never see it.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, InputError
from .formats.base import check_utf8, read_bytes
from .formats.mapping import as_float
from .formats.swebench_labels import labels_of
from .inputs import max_file_bytes

ID_FIELDS = ("instance_id", "task_id", "trial_name", "session_id", "sample_id", "id")
VALUE_FIELDS = ("reward", "resolved", "is_resolved", "correct", "passed", "success", "score", "label")


def load_labels(path: str | Path, *, id_field: str | None = None, value_field: str | None = None) -> dict[str, float]:
    """The id -> reward table of one labels file (see the module docstring). Raises
    InputError naming the file (and line or field) when it cannot be read or holds no
    label."""
    p = str(path)
    data = read_bytes(p, max_file_bytes())
    check_utf8(p, data)
    text = data.decode("utf-8")
    if p.endswith(".csv"):
        rows = list(csv.DictReader(io.StringIO(text)))
        return _from_rows(p, rows, id_field, value_field)
    if p.endswith(".jsonl"):
        rows = []
        for n, line in enumerate(text.splitlines(), start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except ValueError as exc:
                    raise InputError(p, f"invalid JSON: {exc}", line=n) from None
        return _from_rows(p, rows, id_field, value_field)
    try:
        doc = json.loads(text)
    except ValueError as exc:
        raise InputError(p, f"invalid JSON: {exc}") from None
    if isinstance(doc, dict) and isinstance(doc.get("results"), list):  # Terminal-Bench results.json
        out: dict[str, float] = {}
        for row in doc["results"]:
            if isinstance(row, dict) and "is_resolved" in row:
                v = as_float(row.get("is_resolved"))
                for k in ("trial_name", "task_id"):
                    if row.get(k) is not None and v is not None:
                        out[str(row[k])] = v
        return _nonempty(p, out)
    swebench = {} if id_field or value_field else labels_of(doc, p)  # every SWE-bench shape
    if swebench:
        return swebench
    if isinstance(doc, list):
        return _from_rows(p, doc, id_field, value_field)
    if isinstance(doc, dict):
        out: dict[str, float] = {}
        for k, v in doc.items():
            if isinstance(v, dict):  # per-instance reports: {id: {resolved: bool, ...}}
                v = next((v[f] for f in ([value_field] if value_field else VALUE_FIELDS) if f in v), None)
            f = as_float(v)
            if f is not None:
                out[str(k)] = f
        return _nonempty(p, out)
    raise InputError(p, "expected a labels object, list or rows")


def _from_rows(path: str, rows: list[Any], id_field: str | None, value_field: str | None) -> dict[str, float]:
    dicts = [r for r in rows if isinstance(r, dict)]
    if not dicts:
        raise InputError(path, "no label rows")
    keys = set().union(*(r.keys() for r in dicts[:50]))
    idf = id_field or next((f for f in ID_FIELDS if f in keys), None)
    vf = value_field or next((f for f in VALUE_FIELDS if f in keys), None)
    if idf is None or vf is None:
        raise InputError(path, f"no id or value column: set [labels] id_field and value_field (columns: "
                               f"{', '.join(sorted(map(str, keys)))})")
    out = {}
    for r in dicts:
        v = as_float(r.get(vf))
        if r.get(idf) is not None and v is not None:
            out[str(r[idf])] = v
    return _nonempty(path, out)


def _nonempty(path: str, out: dict[str, float]) -> dict[str, float]:
    if not out:
        raise InputError(path, "no label in the file")
    return out


@dataclass
class Labels:
    """The labels of a run: ``table`` id -> reward from ``files``, joined by ``key``
    (``auto``, ``session_id``, ``task_id`` or ``trial``). ``used`` counts sessions labelled."""

    table: dict[str, float] = field(default_factory=dict)
    key: str = "auto"
    files: list[str] = field(default_factory=list)
    used: int = 0

    @classmethod
    def load(cls, files: list[str], *, key: str = "auto", id_field: str | None = None,
             value_field: str | None = None) -> "Labels":
        """Read every file (later files win on a shared id). Raises ConfigError naming the
        file when one cannot be read (the run cannot start without its labels)."""
        if key not in ("auto", "session_id", "task_id", "trial"):
            raise ConfigError(f"labels.key: expected auto, session_id, task_id or trial, got {key!r}")
        table: dict[str, float] = {}
        for f in files:
            try:
                table.update(load_labels(f, id_field=id_field, value_field=value_field))
            except InputError as exc:
                raise ConfigError(f"labels file {exc}") from None
        return cls(table=table, key=key, files=list(files))

    def reward_for(self, session_id: str, trial: str | None, task_id: str | None) -> float | None:
        """The label of a session, or None."""
        if not self.table:
            return None
        cands = {"session_id": [session_id], "trial": [trial], "task_id": [task_id],
                 "auto": [session_id, trial, task_id]}[self.key]
        return next((self.table[c] for c in cands if c is not None and c in self.table), None)


__all__ = ["load_labels", "Labels", "ID_FIELDS", "VALUE_FIELDS"]
