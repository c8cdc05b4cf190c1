"""PNG figures of ``streamgrade agreement``: an ROC curve and a reliability diagram, one line
per dataset, drawn with matplotlib's Agg backend (no display needed) and written atomically.

The ROC curve is scikit-learn's ``roc_curve`` of the judge score against the pass label; the
reliability diagram plots, for 10 equal-width bins of ``score / 100``, the fraction of
sessions that passed against the mean predicted probability (Niculescu-Mizil & Caruana
2005; Guo et al. 2017, fig. 1); the diagonal is perfect calibration.
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import matplotlib

matplotlib.use("Agg")  # before pyplot: headless, thread-safe enough for one figure at a time

import matplotlib.pyplot as plt  # noqa: E402
from sklearn.metrics import roc_curve  # noqa: E402

from .agreement_stats import reliability_bins  # noqa: E402
from .sinks.atomic import write_atomic  # noqa: E402

#: One line: a label (dataset name), the scores 0-100 and the pass labels.
Series = tuple[str, Sequence[float], Sequence[bool]]


def _color(i: int) -> str:
    """One colour per series, the same in both figures (tab10, then tab20)."""
    return f"C{i}" if i < 10 else plt.get_cmap("tab20")(i % 20)


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def roc_png(series: Sequence[Series], title: str = "ROC: judge score vs ground truth") -> bytes:
    """PNG bytes of the ROC curves of every series with both classes (others are left out)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="chance")
    for i, (name, scores, labels) in enumerate(series):
        if len(set(map(bool, labels))) < 2:
            continue
        fpr, tpr, _ = roc_curve([bool(x) for x in labels], list(scores))
        ax.plot(fpr, tpr, linewidth=1.5, color=_color(i), label=f"{name} (n={len(labels)})")
    ax.set(xlim=(0, 1), ylim=(0, 1.02), xlabel="false positive rate", ylabel="true positive rate", title=title)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return _png(fig)


def reliability_png(series: Sequence[Series], title: str = "Reliability: score/100 as P(success)") -> bytes:
    """PNG bytes of a reliability diagram: per series, the non-empty bins' observed pass rate
    against their mean predicted probability (marker size grows with the bin's count)."""
    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    ax.plot([0, 1], [0, 1], linestyle="--", color="#999999", linewidth=1, label="perfect calibration")
    for i, (name, scores, labels) in enumerate(series):
        bins = reliability_bins(scores, labels)
        if not bins:
            continue
        x = [b["confidence"] for b in bins]
        y = [b["accuracy"] for b in bins]
        sizes = [12 + 60 * b["n"] / max(1, len(labels)) for b in bins]
        ax.plot(x, y, linewidth=1.2, color=_color(i), label=f"{name} (n={len(labels)})")
        ax.scatter(x, y, s=sizes, color=_color(i))
    ax.set(xlim=(0, 1), ylim=(-0.02, 1.02), xlabel="mean predicted probability (score / 100)",
           ylabel="fraction passed", title=title)
    ax.legend(loc="center left", bbox_to_anchor=(1.02, 0.5), fontsize=8)
    return _png(fig)


def write_plots(folder: Path, series: Sequence[Series]) -> dict[str, str]:
    """Write ``roc.png`` and ``reliability.png`` into ``folder`` (atomically); returns
    ``{"roc": name, "reliability": name}``."""
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / "roc.png", roc_png(series))
    write_atomic(folder / "reliability.png", reliability_png(series))
    return {"roc": "roc.png", "reliability": "reliability.png"}


__all__ = ["roc_png", "reliability_png", "write_plots", "Series"]
