"""SWE-bench resolved labels, and the files of an agent run that sit beside its trajectories.

:func:`load_swebench_labels` reads any of the SWE-bench evaluation outputs below into
``{instance_id: 1.0 (resolved) | 0.0 (not resolved)}``; the trajectory readers
(:mod:`.swe_agent`, :mod:`.mini_swe_agent`) take a session's reward from it, and a general
``--labels FILE`` option can reuse it. Shapes (sources: SWE-bench/SWE-bench
``swebench/harness/grading.py`` ``get_eval_report`` and ``reporting.py``
``make_run_report``; the swe-bench/experiments ``results/results.json``):

- a harness per-instance report ``{instance_id: {resolved: bool, patch_is_None,
  patch_exists, patch_successfully_applied, tests_status}}`` (``logs/run_evaluation/<run>/
  <model>/<instance_id>/report.json``); also unwrapped, ``{resolved: bool, ...}``, whose
  instance id is its own ``instance_id`` field, else the file name ``<instance_id>.report.json``,
  else (a file named ``report.json``) its folder's name;
- a harness run report ``{resolved_ids, unresolved_ids, error_ids, empty_patch_ids,
  completed_ids, ...}``: resolved ids 1.0; unresolved, error and empty-patch ids, and
  completed ids that are not resolved, 0.0 (incomplete ids get no label);
- an experiments ``results.json`` ``{resolved: [ids], no_generation: [...], applied:
  [...], ...}``: resolved ids 1.0, the ids of every other list 0.0;
- rows ``[{instance_id, resolved}]`` (a JSON list, a JSONL file, or the list under
  ``instances`` of a summary such as ``{total, passed, instances: [...]}``).

A file of another shape (a ``preds.json``) gives no labels (``{}``); a file that is not JSON,
or a recognised shape with a bad value, raises :class:`InputError` naming the file and field.

:func:`label_files` says which files beside a trajectory may hold its label;
:func:`run_files` which files of a folder belong to an agent run without being a session
(labels, configs, predictions, patches, logs), for :func:`.explain.owned`.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Collection

from ..errors import InputError
from ._rows import looks_like_json
from .base import iter_jsonl, load_json
from .mapping import as_float

REPORT_SUFFIX = ".report.json"
#: Run-level label files by name (besides any other ``*report*.json``).
RUN_LABEL_NAMES = frozenset({"results.json", "results_summary.json"})
#: The run's own files by name: predictions (SWE-agent ``all_preds.jsonl`` (0.x) and
#: ``preds.json``, mini-swe-agent ``preds.json``).
RUN_NAMES = frozenset({"preds.json", "all_preds.jsonl"})
#: The run's own files by suffix: configs and status files (``args.yaml``,
#: ``run_batch.config.yaml``, ``exit_statuses_*.yaml``), patches, predictions and logs.
RUN_SUFFIXES = (".yaml", ".yml", ".patch", ".pred", ".log")
TRAJ_SUFFIXES = (".traj", ".traj.json")

_ZERO_IDS = ("unresolved_ids", "error_ids", "empty_patch_ids")
_CACHE: OrderedDict[tuple[str, int, int], dict[str, float]] = OrderedDict()
_CACHE_MAX = 16
_LIST_CACHE: OrderedDict[str, tuple[int, list[str], list[str]]] = OrderedDict()


def load_swebench_labels(path: str | Path) -> dict[str, float]:
    """``{instance_id: 1.0 | 0.0}`` from a SWE-bench label file of any shape in the module
    docstring (``{}`` for a file without labels); cached by path, size and mtime. Raises
    InputError naming the file (and line or field) when it is not JSON or a value is bad."""
    p = str(path)
    try:
        st = os.stat(p)
        key = (p, st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _CACHE:
        _CACHE.move_to_end(key)
        return dict(_CACHE[key])
    if p.endswith(".jsonl"):
        pairs = list(iter_jsonl(p))
        labels = _rows([obj for _, obj in pairs], p, "", lines=[n for n, _ in pairs])
    else:
        labels = labels_of(load_json(p), p)
    if key is not None:
        _CACHE[key] = labels
        if len(_CACHE) > _CACHE_MAX:
            _CACHE.popitem(last=False)
    return dict(labels)


def labels_of(doc: Any, path: str) -> dict[str, float]:
    """The labels of a parsed label document (see :func:`load_swebench_labels`)."""
    if isinstance(doc, list):
        return _rows(doc, path, "")
    if not isinstance(doc, dict):
        return {}
    if "resolved_ids" in doc:
        return _run_report(doc, path)
    resolved = doc.get("resolved")
    if isinstance(resolved, list):
        out = {k: 0.0 for key, ids in doc.items() if key != "resolved" and isinstance(ids, list)
               for k in ids if isinstance(k, str)}
        out.update((k, 1.0) for k in _ids(doc, "resolved", path))
        return out
    if "resolved" in doc:
        iid = doc.get("instance_id") if isinstance(doc.get("instance_id"), str) else _id_from_name(path)
        return {iid: _flag(resolved, path, "resolved")} if iid else {}
    if isinstance(doc.get("instances"), list):
        return _rows(doc["instances"], path, "instances")
    return {str(k): _flag(v["resolved"], path, f"{k}.resolved")
            for k, v in doc.items() if isinstance(v, dict) and "resolved" in v}


def _run_report(doc: dict, path: str) -> dict[str, float]:
    resolved = set(_ids(doc, "resolved_ids", path))
    out = {k: 0.0 for key in _ZERO_IDS for k in _ids(doc, key, path)}
    out.update((k, 0.0) for k in _ids(doc, "completed_ids", path) if k not in resolved)
    out.update((k, 1.0) for k in resolved)
    return out


def _ids(doc: dict, key: str, path: str) -> list[str]:
    ids = doc.get(key)
    if ids is None:
        return []
    if not isinstance(ids, list):
        raise InputError(path, f"expected a list of instance ids, got {type(ids).__name__}", field=key)
    for i, k in enumerate(ids):
        if not isinstance(k, str):
            raise InputError(path, f"expected an instance id string, got {type(k).__name__}", field=f"{key}[{i}]")
    return ids


def _rows(rows: list, path: str, field: str, *, lines: list[int] | None = None) -> dict[str, float]:
    """Rows ``{instance_id, resolved}`` (JSONL rows with their ``lines``); rows without both
    are not labels (predictions)."""
    out: dict[str, float] = {}
    for i, row in enumerate(rows):
        if isinstance(row, dict) and isinstance(row.get("instance_id"), str) and "resolved" in row:
            if lines is not None:
                out[row["instance_id"]] = _flag(row["resolved"], path, "resolved", line=lines[i])
            else:
                out[row["instance_id"]] = _flag(row["resolved"], path, f"{field}[{i}].resolved" if field else f"[{i}].resolved")
    return out


def _flag(value: Any, path: str, field: str, line: int | None = None) -> float:
    v = as_float(value)
    if v is None or v not in (0.0, 1.0):
        raise InputError(path, f"expected true or false, got {value!r:.40}", field=field, line=line)
    return v


def _id_from_name(path: str) -> str | None:
    name = os.path.basename(path)
    if name.endswith(REPORT_SUFFIX) and len(name) > len(REPORT_SUFFIX):
        return name[: -len(REPORT_SUFFIX)]
    if name == "report.json":
        return os.path.basename(os.path.dirname(os.path.abspath(path))) or None
    return None


def reward_of(files: Collection[str], ids: list[str]) -> tuple[float | None, str | None]:
    """(reward, file name) of the first of ``ids`` labelled in ``files`` (label files in the
    order :func:`label_files` gives: the instance's own report first), else (None, None)."""
    for f in files:
        labels = load_swebench_labels(f)
        for iid in ids:
            if iid in labels:
                return labels[iid], os.path.basename(f)
    return None, None


# -- which files belong to a run ----------------------------------------------------------------
def is_label_name(name: str) -> bool:
    """A name a label file may have: ``results.json``, ``results_summary.json``, any
    ``*report*.json``."""
    return name in RUN_LABEL_NAMES or (name.endswith(".json") and "report" in name.lower())


def traj_stem(name: str) -> str | None:
    """``<stem>`` of ``<stem>.traj`` / ``<stem>.traj.json``, else None."""
    for suffix in TRAJ_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return None


def _listing(folder: str) -> tuple[list[str], list[str]]:
    """(file names, folder names) of ``folder``, cached by its mtime; empty when unreadable."""
    try:
        mtime = os.stat(folder).st_mtime_ns
    except OSError:
        return [], []
    hit = _LIST_CACHE.get(folder)
    if hit and hit[0] == mtime:
        return hit[1], hit[2]
    files, dirs = [], []
    try:
        with os.scandir(folder) as it:
            for e in it:
                try:
                    (dirs if e.is_dir(follow_symlinks=False) else files).append(e.name)
                except OSError:
                    continue
    except OSError:
        return [], []
    _LIST_CACHE[folder] = (mtime, sorted(files), dirs)
    if len(_LIST_CACHE) > 64:
        _LIST_CACHE.popitem(last=False)
    return sorted(files), dirs


def _labels_among(names: Collection[str], stem: str, others: Collection[str]) -> list[str]:
    own = stem + REPORT_SUFFIX
    out = [own] if own in names else []
    for n in sorted(names):
        if n != own and is_label_name(n) and not (n.endswith(REPORT_SUFFIX) and n[: -len(REPORT_SUFFIX)] in others):
            out.append(n)
    return out


def label_files(folder: Path, names: Collection[str], stem: str) -> list[str]:
    """Paths of the files that may hold the label of trajectory ``<stem>`` in ``folder``:
    ``<stem>.report.json``, then run-level files (:func:`is_label_name`, except another
    trajectory's ``<other>.report.json``); when the folder is the instance's own
    (``<run>/<stem>/<stem>.traj``), then the same in the run folder above it."""
    others = {s for s in map(traj_stem, names) if s}
    out = [str(folder / n) for n in _labels_among(names, stem, others)]
    if folder.name == stem:
        files, dirs = _listing(str(folder.parent))
        out += [str(folder.parent / n) for n in _labels_among(files, stem, dirs)]
    return out


def _run_file(name: str) -> bool:
    return name in RUN_NAMES or name.endswith(RUN_SUFFIXES) or is_label_name(name)


def run_files(folder: Path, names: list[str]) -> set[str]:
    """Names in ``folder`` that belong to an agent run without being sessions: labels,
    predictions, configs, patches and logs (:data:`RUN_NAMES`, :data:`RUN_SUFFIXES`,
    :func:`is_label_name`) in a folder holding a JSON trajectory (``*.traj``,
    ``*.traj.json``) or in a run folder whose instance folders hold one
    (``<run>/<id>/<id>.traj``), and a 0.x run's ``patches/<id>.patch``."""
    cands = [n for n in names if _run_file(n)]
    if not cands:
        return set()
    trajs = [n for n in names if traj_stem(n)]
    if trajs:
        return set(cands) if any(looks_like_json(folder / n) for n in trajs[:8]) else set()
    if folder.name == "patches":
        parent_files, _ = _listing(str(folder.parent))
        stems = {traj_stem(n) for n in parent_files}
        return {n for n in cands if n.endswith(".patch") and n[: -len(".patch")] in stems}
    _, dirs = _listing(str(folder))
    for d in sorted(dirs)[:64]:
        if any(os.path.isfile(folder / d / (d + s)) for s in TRAJ_SUFFIXES):
            return set(cands)
    return set()


def clear_cache() -> None:
    """Forget cached labels and folder listings (tests)."""
    _CACHE.clear()
    _LIST_CACHE.clear()


__all__ = ["load_swebench_labels", "labels_of", "reward_of", "label_files", "run_files", "is_label_name",
           "traj_stem", "clear_cache"]
