"""PNG figures of ``streamgrade compare``, drawn with matplotlib's Agg backend (no display)
and written atomically: score (and reward) histograms, box plots of every metric, bar charts
of a metric's mean with its 95% CI per group, and tool-call (or game action) frequency per
experiment. One colour per experiment, the same in every figure."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Sequence

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ..agreement_plots import _color, _png  # noqa: E402  (one palette and PNG encoding for every report)
from ..sinks.atomic import write_atomic  # noqa: E402
from .load import Experiment  # noqa: E402
from .metrics import BY_NAME, values  # noqa: E402

MAX_BOXES = 9  # metrics in the box-plot grid




def safe_name(s: str) -> str:
    """A file-name-safe form of a field or metric name."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", s)[:60] or "_"


def _label(s: str, n: int = 40) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def histogram_png(experiments: Sequence[Experiment], metric: str) -> bytes:
    """Overlaid histograms of ``metric`` (shared bins), one per experiment."""
    m = BY_NAME[metric]
    series = [(e.name, values(e.rows, m)) for e in experiments]
    allv = [v for _, vs in series for v in vs]
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.histogram_bin_edges(allv, bins=min(30, max(5, len(set(allv))))) if allv else 10
    for i, (name, vs) in enumerate(series):
        if vs:
            ax.hist(vs, bins=bins, alpha=0.45, color=_color(i), label=f"{_label(name)} (n={len(vs)})",
                    edgecolor=_color(i))
    ax.set(xlabel=m.label, ylabel="sessions", title=f"{m.label}: distribution")
    ax.legend(fontsize=8)
    return _png(fig)


def boxes_png(experiments: Sequence[Experiment], metrics: Sequence[str]) -> bytes:
    """A grid of box plots, one panel per metric, one box per experiment (mean as a dot)."""
    metrics = list(metrics)[:MAX_BOXES]
    cols = min(3, len(metrics))
    rows = (len(metrics) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.4 * rows), squeeze=False)
    for ax, name in zip(axes.flat, metrics):
        data = [values(e.rows, BY_NAME[name]) for e in experiments]
        shown = [(i, d) for i, d in enumerate(data) if d]
        if shown:
            bp = ax.boxplot([d for _, d in shown], patch_artist=True, showmeans=True,
                            meanprops={"marker": "o", "markerfacecolor": "white", "markeredgecolor": "black"})
            for patch, (i, _) in zip(bp["boxes"], shown):
                patch.set_facecolor(_color(i))
                patch.set_alpha(0.55)
            ax.set_xticks(range(1, len(shown) + 1), [_label(experiments[i].name, 18) for i, _ in shown],
                          rotation=20, fontsize=8)
        ax.set_title(BY_NAME[name].label, fontsize=10)
    for ax in list(axes.flat)[len(metrics):]:
        ax.axis("off")
    fig.tight_layout()
    return _png(fig)


def group_bars_png(breakdown: dict[str, Any], experiment_names: Sequence[str]) -> bytes:
    """Horizontal grouped bars: per group of ``breakdown`` (:func:`.analysis.breakdown`), each
    experiment's mean of the metric with its 95% CI as an error bar."""
    groups = breakdown["groups"]
    k = len(experiment_names)
    h = 0.8 / max(1, k)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.32 * len(groups) * max(1, k) / 1.5 + 1)))
    ys = np.arange(len(groups))
    for i, name in enumerate(experiment_names):
        means, lo, hi = [], [], []
        for g in groups:
            c = g["cells"].get(name) or {}
            m = c.get("mean")
            means.append(np.nan if m is None else m)
            ci = c.get("ci")
            lo.append(0 if m is None or not ci else max(0.0, m - ci[0]))
            hi.append(0 if m is None or not ci else max(0.0, ci[1] - m))
        ax.barh(ys + (i - (k - 1) / 2) * h, means, height=h, color=_color(i), alpha=0.8, label=_label(name),
                xerr=[lo, hi], error_kw={"elinewidth": 0.8, "capsize": 2})
    ax.set_yticks(ys, [_label(g["value"], 30) for g in groups], fontsize=7)
    ax.invert_yaxis()
    label = BY_NAME[breakdown["metric"]].label
    ax.set(xlabel=f"mean {label} (95% CI)", title=f"{label} by {breakdown['field']}")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def tools_png(tools: dict[str, Any]) -> bytes:
    """Horizontal grouped bars: calls per session of the most called tools, per experiment."""
    names = tools["tools"]
    exps = list(tools["per_session"])
    k = len(exps)
    h = 0.8 / max(1, k)
    fig, ax = plt.subplots(figsize=(8, max(2.5, 0.3 * len(names) * max(1, k) / 1.5 + 1)))
    ys = np.arange(len(names))
    for i, e in enumerate(exps):
        ax.barh(ys + (i - (k - 1) / 2) * h, [tools["per_session"][e].get(t, 0.0) for t in names], height=h,
                color=_color(i), alpha=0.8, label=f"{_label(e)} ({tools['sessions'][e]} sessions)")
    ax.set_yticks(ys, [_label(t, 30) for t in names], fontsize=8)
    ax.invert_yaxis()
    ax.set(xlabel="calls per session", title="Tool calls (game actions for episodes) per experiment")
    ax.legend(fontsize=8, loc="best")
    return _png(fig)


def write_plots(folder: Path, experiments: Sequence[Experiment], result: dict[str, Any]) -> list[dict[str, str]]:
    """Write every figure into ``folder``; returns ``[{"file", "title"}]`` in report order."""
    folder.mkdir(parents=True, exist_ok=True)
    out: list[dict[str, str]] = []

    def put(name: str, title: str, data: bytes) -> None:
        write_atomic(folder / name, data)
        out.append({"file": name, "title": title})

    metrics = [m["name"] for m in result["metrics"]]
    for name in ("score", "reward"):
        if name in metrics:
            put(f"hist_{name}.png", f"{BY_NAME[name].label}: histogram", histogram_png(experiments, name))
    put("boxes.png", "Box plots of every metric (dot: mean)", boxes_png(experiments, metrics))
    names = [e.name for e in experiments]
    for b in result["breakdowns"]:
        if b["groups"]:
            put(f"by_{safe_name(b['field'])}_{safe_name(b['metric'])}.png",
                f"{BY_NAME[b['metric']].label} by {b['field']} (mean, 95% CI)", group_bars_png(b, names))
    if result["tools"]["tools"]:
        put("tools.png", "Tool-call frequency per experiment", tools_png(result["tools"]))
    return out


__all__ = ["histogram_png", "boxes_png", "group_bars_png", "tools_png", "write_plots", "safe_name"]
