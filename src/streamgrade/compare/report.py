"""What ``streamgrade compare`` writes: ``compare.json`` (the analysis,
:func:`.analysis.analyse`), ``summary.md`` (markdown tables, also printed), ``report.html``
and the PNG figures (:mod:`.plots`), in one folder.

report.html uses the reports' Jinja2 stack (:mod:`streamgrade.sinks.html`): autoescaping on,
every value passed as display text (experiment names, attributes and group values come
from the user's files and session records: untrusted), images by fixed file names, a
Content-Security-Policy with a per-page nonce, no script.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..sinks.atomic import write_atomic
from .load import Experiment

JSON_NAME, MARKDOWN_NAME, HTML_NAME = "compare.json", "summary.md", "report.html"


def _f(v: Any, nd: int = 3) -> str:
    """A figure for display: ``nd`` decimals without trailing zeros; very large or small
    values in ``g`` notation; None as a dash."""
    if v is None:
        return "–"
    if isinstance(v, float):
        if v and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.{nd}g}"
        return f"{v:.{nd}f}".rstrip("0").rstrip(".") or "0"
    return str(v)


def _p(p: Any) -> str:
    if p is None:
        return "–"
    return "<0.0001" if p < 1e-4 else f"{p:.4f}"


def _ci(ci: Any) -> str:
    return f"[{_f(ci[0])}, {_f(ci[1])}]" if isinstance(ci, list) and len(ci) == 2 else ""


def _md(s: Any) -> str:
    """A markdown table cell: pipes and newlines neutralised."""
    return str(s).replace("|", "\\|").replace("\n", " ")


def comparison_rows(result: dict[str, Any], comp: dict[str, Any]) -> list[dict[str, str]]:
    """Display rows of one comparison: metric, A and B means with CIs, the difference with
    its CI, the test, p, Holm p, Cohen's d, Cliff's delta, verdict."""
    summ = result["summary"]
    out = []
    for r in comp["rows"]:
        sa, sb = summ[r["metric"]][comp["a"]], summ[r["metric"]][comp["b"]]
        test = r["test"] or {}
        if comp["design"]["paired"] and r.get("cohens_dz") is not None:
            d, dname, dmag = r["cohens_dz"], "d_z", r.get("cohens_dz_magnitude")
        else:
            d, dname, dmag = r.get("cohens_d"), "d", r.get("cohens_d_magnitude")
        out.append({
            "metric": r["metric"], "n": f"{r['n_a']} / {r['n_b']}" + (f" ({r['pairs']} tasks)" if r["pairs"] else ""),
            "a": f"{_f(sa['mean'])} {_ci(sa['ci'])}".strip(), "b": f"{_f(sb['mean'])} {_ci(sb['ci'])}".strip(),
            "diff": f"{_f(r['diff'])} {_ci(r['diff_ci'])}".strip(), "test": test.get("test", "not tested") + (
                f"; Welch t p {_p(r['secondary']['p'])}" if r.get("secondary") else ""),
            "p": _p(r["p"]), "p_holm": _p(r["p_holm"]),
            "d": f"{_f(d, 2)} ({dname}, {dmag})" if d is not None else "–",
            "delta": f"{_f(r['cliffs_delta'], 2)} ({r.get('cliffs_delta_magnitude') or '-'})"
            if r["cliffs_delta"] is not None else "–",
            "verdict": r["verdict"],
        })
    return out


def shown_ks(max_k: int) -> list[int]:
    """The k shown in tables: 1 to 5, then 8, 10, 16, 32, 64 and the largest."""
    return sorted({k for k in (1, 2, 3, 4, 5, 8, 10, 16, 32, 64, max_k) if k <= max_k})


def _marks(result: dict[str, Any]) -> str:
    marks = ", ".join(f"{k} reward >= {v:g}" for k, v in result["pass_marks"].items())
    return (marks + "; " if marks else "") + f"without a reward, judge score >= {result['pass_score']:g}"


def markdown(result: dict[str, Any]) -> str:
    """The summary as markdown: the experiments, one table per comparison, pass@k."""
    lines = ["# streamgrade compare", ""]
    lines += ["| experiment | sessions | source | attributes |", "|---|---:|---|---|"]
    for e in result["experiments"]:
        attrs = ", ".join(f"{k}={v}" for k, v in e["attrs"].items())
        lines.append(f"| {_md(e['name'])} | {e['sessions']} | {_md(e['source'])} | {_md(attrs)} |")
    for comp in result["comparisons"]:
        lines += ["", f"## {_md(comp['b'])} vs {_md(comp['a'])}", "",
                  f"Design: {comp['design']['reason']}. Differences are B - A; p (Holm): adjusted over the "
                  f"{len(comp['rows'])} metrics; alpha {result['alpha']}.", "",
                  "| metric | n (A / B) | A mean [95% CI] | B mean [95% CI] | B - A [95% CI] | test | p | p (Holm) "
                  "| Cohen's d | Cliff's delta | verdict |",
                  "|---|---|---|---|---|---|---:|---:|---|---|---|"]
        for r in comparison_rows(result, comp):
            lines.append("| " + " | ".join(_md(r[k]) for k in ("metric", "n", "a", "b", "diff", "test", "p", "p_holm",
                                                               "d", "delta", "verdict")) + " |")
    pk = {k: v for k, v in result["pass_k"].items() if v["rows"]}
    if pk:
        names = list(pk)
        lines += ["", "## pass@k and pass^k", "",
                  "pass@k = 1 - C(n-c,k)/C(n,k) (Chen et al. 2021); pass^k = C(c,k)/C(n,k) (Yao et al. 2024, "
                  "tau-bench); n trials of a task, c passed; averaged over the tasks with at least k trials "
                  f"(in parentheses). Pass marks: {_marks(result)}.", "",
                  "| k | " + " | ".join(f"{_md(n)} pass@k | {_md(n)} pass^k" for n in names) + " |",
                  "|---:|" + "---:|---:|" * len(names)]
        for k in shown_ks(max(len(v["rows"]) for v in pk.values())):
            cells = []
            for n in names:
                r = next((x for x in pk[n]["rows"] if x["k"] == k), None)
                cells += [f"{_f(r['pass_at_k'])} ({r['tasks']})", _f(r["pass_hat_k"])] if r else ["–", "–"]
            lines.append(f"| {k} | " + " | ".join(cells) + " |")
    if result["dropped_metrics"]:
        lines += ["", "Left out: " + "; ".join(f"{d['name']} ({d['reason']})" for d in result["dropped_metrics"])]
    return "\n".join(lines) + "\n"


def html_context(result: dict[str, Any], plots: Sequence[dict[str, str]]) -> dict[str, Any]:
    """The report template's context: display text only."""
    names = [e["name"] for e in result["experiments"]]
    summary = []
    for m in result["metrics"]:
        cells = []
        for n in names:
            s = result["summary"][m["name"]][n]
            cells.append({"n": str(s["n"]), "mean": _f(s["mean"]), "ci": _ci(s["ci"]), "median": _f(s["median"]),
                          "sd": _f(s["sd"])})
        summary.append({"metric": m["name"], "label": m["label"],
                        "better": {"higher": "higher is better", "lower": "lower is better"}.get(m["better"] or "",
                                                                                                  "neither"),
                        "cells": cells})
    comps = [{"a": c["a"], "b": c["b"], "design": c["design"]["reason"], "rows": comparison_rows(result, c)}
             for c in result["comparisons"]]
    breakdowns = []
    for b in result["breakdowns"]:
        rows = []
        for g in b["groups"]:
            cells = [f"{_f((g['cells'].get(n) or {}).get('mean'))} (n={(g['cells'].get(n) or {}).get('n', 0)})"
                     for n in names]
            rows.append({"value": str(g["value"])[:200], "cells": cells,
                         "tests": ", ".join(f"{t['b']}: {_p(t['p'])}" for t in g["tests"])})
        breakdowns.append({"field": b["field"], "metric": b["metric"], "rows": rows, "omitted": b["omitted"]})
    pass_k = [{"name": k, "rows": [{"k": r["k"], "tasks": r["tasks"], "at": _f(r["pass_at_k"]),
                                    "hat": _f(r["pass_hat_k"])} for r in v["rows"] if r["k"] in shown_ks(len(v["rows"]))],
               "basis": f"{v['outcome_from_reward']} sessions by reward, {v['outcome_from_judge']} by judge score"}
              for k, v in result["pass_k"].items() if v["rows"]]
    return {
        "generated": result["generated_at"], "names": names, "baseline": result["baseline"],
        "experiments": [{"name": e["name"], "sessions": str(e["sessions"]), "source": str(e["source"])[:300],
                         "attrs": ", ".join(f"{k}={v}" for k, v in e["attrs"].items())[:500],
                         "excluded": ", ".join(f"{v} {k}" for k, v in e["excluded"].items()),
                         "models": ", ".join(e["models"])[:300]} for e in result["experiments"]],
        "summary": summary, "comparisons": comps, "breakdowns": breakdowns, "pass_k": pass_k,
        "plots": [{"src": p["file"], "title": p["title"]} for p in plots],
        "dropped": "; ".join(f"{d['name']} ({d['reason']})" for d in result["dropped_metrics"]),
        "alpha": str(result["alpha"]), "bootstrap": result["bootstrap"],
        "marks": _marks(result),
    }


def write(folder: str | Path, result: dict[str, Any], experiments: Sequence[Experiment], *,
          plots: bool = True) -> dict[str, Path]:
    """Write the PNGs (with ``plots``), compare.json, summary.md and report.html into
    ``folder`` (created), each atomically. Returns {kind: path}. Raises OSError."""
    from ..sinks.html import _render  # the reports' environment: autoescape, nonce'd CSP

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    figs: list[dict[str, str]] = []
    if plots:
        from .plots import write_plots

        figs = write_plots(folder, experiments, result)
    result["plots"] = [f["file"] for f in figs]
    paths = {"json": folder / JSON_NAME, "markdown": folder / MARKDOWN_NAME, "html": folder / HTML_NAME}
    write_atomic(paths["json"], (json.dumps(result, indent=1) + "\n").encode())
    write_atomic(paths["markdown"], markdown(result).encode())
    write_atomic(paths["html"], _render("compare.html.j2", **html_context(result, figs)))
    return paths


__all__ = ["write", "markdown", "comparison_rows", "html_context", "JSON_NAME", "MARKDOWN_NAME", "HTML_NAME"]
