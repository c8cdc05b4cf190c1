"""Figures of the ``p_success`` already written in an output folder (``streamgrade
calibrate OUT --evaluate``: how a model fitted elsewhere transfers), and the text tables
both modes print.

The evaluation uses the same labelled set and pass marks as fitting (:mod:`.fit`), and
compares score / 100 ("before") with the records' ``p_success`` ("after"); labelled
records without a ``p_success`` are counted (``missing_p_success``) and left out of the
figures.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from .fit import LabelledSet
from .metrics import figures


def evaluate(data: LabelledSet) -> dict[str, Any]:
    """{n, positives, missing_p_success, pass_marks, from_labels, before, after,
    by_format: {fmt: {pass_mark, missing_p_success, before, after}}} of the records'
    ``p_success`` against their success (see the module docstring)."""
    def block(idx: list[int]) -> dict[str, Any]:
        have = [i for i in idx if isinstance(data.records[i].get("p_success"), (int, float))]
        ys = [data.success[i] for i in have]
        return {"missing_p_success": len(idx) - len(have),
                "before": figures([data.records[i]["score"] / 100.0 for i in have], ys),
                "after": figures([float(data.records[i]["p_success"]) for i in have], ys)}

    groups: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(data.records):
        groups[str(r.get("source_format"))].append(i)
    total = block(list(range(len(data.records))))
    return {"n": len(data.records), "positives": sum(data.success), "pass_marks": data.pass_marks,
            "from_labels": data.from_labels, **total,
            "by_format": {f: {"pass_mark": data.pass_marks[f], **block(idx)} for f, idx in sorted(groups.items())}}


def _f(v: Any) -> str:
    return "-" if v is None else f"{v:.3f}" if isinstance(v, float) else str(v)


def table(res: dict[str, Any], after_name: str) -> list[str]:
    """Text lines: one row per source_format and one for all, with n, positives, pass mark,
    AUROC / ECE / Brier of score/100 and of ``after_name``."""
    head = (f"{'source_format':<18} {'n':>5} {'pos':>5} {'pass':>6}  {'AUROC score':>11} {'AUROC ' + after_name:>18}"
            f"  {'ECE score':>9} {'ECE ' + after_name:>16}  {'Brier score':>11} {'Brier ' + after_name:>18}")
    lines = [head]
    rows = [(f, g, g.get("pass_mark")) for f, g in res["by_format"].items()] + [("(all)", res, None)]
    for name, g, mark in rows:
        b, a = g["before"], g["after"]
        lines.append(f"{name:<18} {a['n']:>5} {a['positives']:>5} {_f(mark):>6}  {_f(b['auroc']):>11} "
                     f"{_f(a['auroc']):>18}  {_f(b['ece']):>9} {_f(a['ece']):>16}  {_f(b['brier']):>11} "
                     f"{_f(a['brier']):>18}")
    return lines


__all__ = ["evaluate", "table"]
