"""The agreement section of ``OUT/index.html``: what ``streamgrade agreement`` wrote under
``OUT/agreement/`` (:mod:`streamgrade.agreement_report`), as display text for the index
template (autoescaped there), and the PNGs that exist, by fixed relative paths. Nothing when
``agreement.json`` is missing or broken, so the index stays valid either way."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from .layout import AGREEMENT, AGREEMENT_JSON


def num(v: Any) -> float | None:
    """A finite number, else None."""
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return None
    return float(v) if math.isfinite(v) else None


def fmt_num(v: Any, digits: int) -> str:
    n = num(v)
    return "" if n is None else f"{n:.{digits}f}" if isinstance(v, float) else str(v)


def text(v: Any, limit: int) -> str:
    if v is None:
        return ""
    s = v if isinstance(v, str) else json.dumps(v, ensure_ascii=False)
    return s[:limit]


_AGREEMENT_PLOTS = (("roc", "ROC curve"), ("reliability", "Reliability diagram"))


def agreement_section(out: Path) -> dict[str, Any] | None:
    """The ``streamgrade agreement`` section of the index from ``OUT/agreement/
    agreement.json`` (None when it is missing or broken): its rows as display text, and the
    ``<img>`` sources (fixed relative paths) of the PNGs that exist."""
    try:
        doc = json.loads((out / AGREEMENT / AGREEMENT_JSON).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("rows"), list):
        return None

    def cell(v: Any) -> str:
        return fmt_num(v, 3) if isinstance(v, float) else text(v, 200)

    rows = []
    for r in [*doc["rows"], doc.get("all")]:
        if not isinstance(r, dict):
            continue
        ci = r.get("auroc_ci")
        ci_text = f"[{fmt_num(ci[0], 2)}, {fmt_num(ci[1], 2)}]" if isinstance(ci, list) and len(ci) == 2 \
            and all(num(x) is not None for x in ci) else ""
        rows.append({"dataset": cell(r.get("dataset")), "format": cell(r.get("format")), "n": cell(r.get("n")),
                     "pos": cell(r.get("positives")), "auroc": cell(r.get("auroc")), "ci": ci_text,
                     **{k: cell(r.get(k)) for k in ("ece", "brier", "kappa", "precision", "recall")}})
    judges = doc.get("judges") if isinstance(doc.get("judges"), dict) else {}
    plots = [{"src": f"{AGREEMENT}/{name}.png", "title": title} for name, title in _AGREEMENT_PLOTS
             if (out / AGREEMENT / f"{name}.png").is_file()]
    return {"rows": rows, "plots": plots, "computed_at": text(doc.get("computed_at"), 64),
            "judges": text(", ".join(f"{k} ({v})" for k, v in judges.items()), 300),
            "pass_score": f"{doc['pass_score']:g}" if num(doc.get("pass_score")) is not None else ""}


__all__ = ["agreement_section"]
