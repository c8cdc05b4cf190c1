"""``streamgrade agreement OUT``: how far a graded folder's judge scores agree with ground truth.

For every graded session of OUT with a reward (its own, or joined from ``--labels`` files
as ``grade --labels`` joins them, :class:`streamgrade.labels.Labels`), grouped by dataset
and source format, and for all of them: n, positives, AUROC with a percentile-bootstrap 95%
CI, ECE, Brier score, Cohen's kappa, precision and recall of ``score >= pass_score``
(:mod:`streamgrade.agreement_stats`). Writes ``OUT/agreement/agreement.json`` (the figures),
``roc.png`` and ``reliability.png`` (:mod:`streamgrade.agreement_plots`), and re-renders
``OUT/index.html``, which shows them when they exist. A grade run does not compute them (it
re-renders the index with the last ones, which say when they were computed).

Positive label: reward >= the pass mark of the session's (dataset, format) group (the
by-dataset, by-format and ``all`` rows keep each session's label from its group):
``[exports] reward_pass`` when set, else 1.0 for binary rewards and the group's median
otherwise (:func:`streamgrade.agreement.pass_mark`). Prediction: score >= ``[exports]
pass_score`` (50 by default), the mark at which the SFT filter passes a session.

Dataset rule (:func:`datasets`): the folder a session came from, one level below the common
root of all of OUT's source paths (a run over ``corpus/`` gives ``tau-bench``,
``crafter-balrog``, ...); a file directly in the root is its own dataset (its name); when
every session comes from one file, that file's folder names the dataset. ``--root`` sets the
root instead.

``--judge KIND`` (:func:`regrade`): the source files of OUT's labelled sessions are graded
again with that judge into ``OUT/agreement/judge-KIND/`` (or ``-o DIR``; incremental, so an
LLM judge is paid once per session), and that folder's agreement is reported.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any, Iterable

from . import agreement_stats as st
from .agreement import pass_mark
from .exports.store import load_records
from .labels import Labels
from .sinks.atomic import write_atomic
from .sinks.layout import AGREEMENT_JSON, Layout

ALL = "all"


class NoGroundTruth(Exception):
    """No graded session of the folder has a reward (exit code 3)."""


def datasets(paths: Iterable[str], root: str | None = None) -> tuple[str, dict[str, str]]:
    """(root, {source path: dataset name}) by the module docstring's rule."""
    uniq = sorted({os.path.normpath(p) for p in paths if p})
    if not uniq:
        return root or "", {}
    if root is None:
        if len(uniq) == 1:  # every session from one file (or folder): its folder names the dataset
            root = os.path.dirname(os.path.dirname(uniq[0]))
        else:
            root = os.path.commonpath(uniq)
            if root in uniq:  # one source holds the others: go up one level
                root = os.path.dirname(root)
    root = os.path.normpath(root)
    out = {}
    for p in uniq:
        rel = os.path.relpath(p, root)
        first = rel.split(os.sep)[0]
        if first == "..":  # outside a given root: the file's folder
            out[p] = os.path.basename(os.path.dirname(p))
        else:
            out[p] = os.path.basename(root) if first in (".", "") else first
    return root, out


def source_root(out: Path) -> str:
    """The common root of OUT's source paths (:func:`datasets`), so that a regrade of a
    subset keeps OUT's dataset names."""
    return datasets(r.get("source_path") or "" for r in load_records(out))[0]


def labelled_records(out: Path, labels: Labels | None = None) -> tuple[list[dict[str, Any]], int]:
    """(graded records of OUT with a reward, number of graded records without one); a label
    of ``labels`` replaces a record's own reward, as in a grade run."""
    have, without = [], 0
    for r in load_records(out):
        if r.get("status") != "graded" or r.get("score") is None:
            continue
        if labels is not None:
            lab = labels.reward_for(str(r.get("session_id")), r.get("trial"), r.get("task_id"))
            if lab is not None:
                r = {**r, "reward": lab}
        if r.get("reward") is None:
            without += 1
        else:
            have.append(r)
    return have, without


def _row(recs: list[dict[str, Any]], labels: list[bool], pass_score: float, **keys: Any) -> dict[str, Any]:
    return {**keys, **st.figures([float(r["score"]) for r in recs], labels, threshold=pass_score)}


def compute(out: Path, *, labels: Labels | None = None, reward_pass: float | None = None, pass_score: float = 50.0,
            root: str | None = None) -> tuple[dict[str, Any], list[tuple[str, list[float], list[bool]]]]:
    """(the agreement of OUT as a JSON-ready dict, plot series per dataset). The dict:
    ``{"out", "computed_at", "judges" {kind[/model]: n}, "root", "pass_score", "reward_pass",
    "bootstrap" {resamples, seed, confidence}, "ece_bins", "unlabelled", "rows" [per
    (dataset, format)], "by_dataset" [...], "by_format" [...], "all" {...}}``, each row
    ``{"dataset", "format", "pass_mark", n, positives, auroc, auroc_ci, ece, brier, kappa,
    precision, recall, threshold}``. Raises NoGroundTruth when no session has a reward."""
    out = Path(out)
    recs, without = labelled_records(out, labels)
    if not recs:
        raise NoGroundTruth(f"{out}: no graded session has a ground-truth reward ({without} graded without one); "
                            "give --labels FILE")
    all_paths = [r.get("source_path") or "" for r in load_records(out)]
    root, names = datasets(all_paths, root)
    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in recs:
        ds = names.get(os.path.normpath(r.get("source_path") or ""), "-") if r.get("source_path") else "-"
        groups[(ds, str(r.get("source_format") or "-"))].append(r)
    label_of: dict[int, bool] = {}
    rows = []
    for (ds, fmt), g in sorted(groups.items()):
        mark = pass_mark([float(r["reward"]) for r in g], reward_pass)
        lab = [float(r["reward"]) >= mark for r in g]
        label_of.update({id(r): y for r, y in zip(g, lab)})
        rows.append(_row(g, lab, pass_score, dataset=ds, format=fmt, pass_mark=mark))

    def agg(key: str) -> list[dict[str, Any]]:
        by: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for (ds, fmt), g in groups.items():
            by[ds if key == "dataset" else fmt].extend(g)
        return [_row(g, [label_of[id(r)] for r in g], pass_score, **{key: k}) for k, g in sorted(by.items())]

    by_dataset = agg("dataset")
    series = []
    for (ds, _), g in sorted(groups.items()):
        if series and series[-1][0] == ds:
            series[-1][1].extend(float(r["score"]) for r in g)
            series[-1][2].extend(label_of[id(r)] for r in g)
        else:
            series.append((ds, [float(r["score"]) for r in g], [label_of[id(r)] for r in g]))
    judges = Counter("/".join(str(x) for x in ((r.get("judge") or {}).get("kind"), (r.get("judge") or {}).get("model")) if x)
                     or "-" for r in recs)
    result = {
        "out": str(out), "computed_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "judges": dict(judges.most_common()), "root": root, "pass_score": pass_score, "reward_pass": reward_pass,
        "bootstrap": {"resamples": st.N_RESAMPLES, "seed": st.SEED, "confidence": 0.95, "method": "percentile"},
        "ece_bins": st.N_BINS, "unlabelled": without, "rows": rows, "by_dataset": by_dataset,
        "by_format": agg("format"),
        "all": _row(recs, [label_of[id(r)] for r in recs], pass_score, dataset=ALL, format=ALL),
    }
    return result, series


def write(out: Path, result: dict[str, Any], series, *, plots: bool = True) -> Path:
    """Write ``OUT/agreement/agreement.json`` (and the PNGs with ``plots``), atomically, then
    re-render ``OUT/index.html``. Returns the agreement folder. Raises OSError."""
    folder = Layout(out).agreement
    if plots:
        from .agreement_plots import write_plots

        result["plots"] = write_plots(folder, series)
    write_atomic(folder / AGREEMENT_JSON, (json.dumps(result, indent=1) + "\n").encode())
    from .sinks.html import render_index

    render_index(Path(out))
    return folder


def run(out: Path, *, label_files: list[str] = (), key: str = "auto", id_field: str | None = None,
        value_field: str | None = None, reward_pass: float | None = None, pass_score: float = 50.0,
        root: str | None = None, plots: bool = True) -> dict[str, Any]:
    """Load the labels, compute and write the agreement of OUT; returns the result dict.
    Raises ConfigError (a labels file), NoGroundTruth, OSError."""
    labels = Labels.load(list(label_files), key=key, id_field=id_field, value_field=value_field) if label_files else None
    result, series = compute(out, labels=labels, reward_pass=reward_pass, pass_score=pass_score, root=root)
    write(out, result, series, plots=plots)
    return result


# -- the table ----------------------------------------------------------------------------------
def _f(v: Any, nd: int = 3) -> str:
    return "-" if v is None else f"{v:.{nd}f}" if isinstance(v, float) else str(v)


def table_rows(result: dict[str, Any]) -> list[list[str]]:
    """The printed table: dataset, format, n, pos, AUROC [95% CI], ECE, Brier, kappa,
    precision, recall; one row per (dataset, format) and the ``all`` row last."""
    out = []
    for r in [*result["rows"], result["all"]]:
        ci = r.get("auroc_ci")
        au = _f(r["auroc"]) + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
        out.append([r["dataset"], r["format"], str(r["n"]), str(r["positives"]), au, _f(r["ece"]), _f(r["brier"]),
                    _f(r["kappa"]), _f(r["precision"]), _f(r["recall"])])
    return out


HEADER = ["dataset", "format", "n", "pos", "AUROC [95% CI]", "ECE", "Brier", "kappa", "precision", "recall"]


def print_table(result: dict[str, Any], console=None) -> None:
    """Print the table (rich) and a line saying what was measured."""
    from rich.console import Console
    from rich.table import Table

    console = console or Console()
    if not console.is_terminal:
        console.width = 140
    judges = ", ".join(f"{k} ({v})" for k, v in result["judges"].items())
    table = Table(title=f"{result['out']}: judge {judges}")
    for c in HEADER:
        table.add_column(c, justify="left" if c in ("dataset", "format") else "right")
    for row in table_rows(result):
        table.add_row(*row)
    console.print(table)
    console.print(f"positive: reward >= the group's pass mark; predicted: score >= {result['pass_score']:g}; "
                  f"ECE over {result['ece_bins']} bins of score/100; CI: percentile bootstrap, "
                  f"{result['bootstrap']['resamples']} resamples, seed {result['bootstrap']['seed']}; "
                  f"{result['unlabelled']} graded sessions without ground truth left out")


# -- --judge KIND: regrade the labelled sessions ---------------------------------------------
def sources_to_regrade(out: Path, labels: Labels | None = None) -> list[Path]:
    """The distinct source files (or folders) of OUT's labelled graded sessions that still
    exist. Raises NoGroundTruth when there is none."""
    recs, without = labelled_records(out, labels)
    paths = sorted({r["source_path"] for r in recs if r.get("source_path")})
    found = [Path(p) for p in paths if Path(p).exists()]
    if not found:
        raise NoGroundTruth(f"{out}: no labelled session whose source still exists ({len(recs)} labelled, "
                            f"{without} without ground truth)")
    return found


async def regrade(cfg, sources: list[Path], dest: Path):
    """Grade ``sources`` into ``dest`` with ``cfg``'s judge (the normal pipeline: resumable,
    skips what is unchanged); returns its :class:`~streamgrade.run_stats.RunStats`. Raises
    ConfigError, OutputLocked, ExportMismatch, OSError as ``grade`` does."""
    from .judges import make_judge
    from .pipeline import Pipeline, scan_source

    judge = make_judge(cfg)
    try:
        return await Pipeline(cfg, dest, judge).run(scan_source(sources, exclude=[dest]))
    finally:
        await judge.aclose()


__all__ = ["NoGroundTruth", "datasets", "labelled_records", "compute", "write", "run", "table_rows", "print_table",
           "sources_to_regrade", "regrade", "source_root", "HEADER"]
