"""``compare``: experiments side by side, with significance tests, effect sizes, confidence
intervals and plots (:mod:`streamgrade.compare`)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from ..summary import EXIT_FAILED, EXIT_NOTHING, EXIT_USAGE
from ._app import _build_config, main


def _names(paths: tuple[Path, ...], given: tuple[str, ...]) -> list[str]:
    """Experiment names: ``--name`` in order, else the folder's name (with its parent's when
    two folders share a name)."""
    if given and len(given) != len(paths):
        raise click.UsageError(f"--name given {len(given)} times for {len(paths)} output folders")
    if given:
        names = list(given)
    else:
        names = [p.resolve().name for p in paths]
        if len(set(names)) < len(names):
            names = [f"{p.resolve().parent.name}/{p.resolve().name}" for p in paths]
    if len(set(names)) < len(names):
        raise click.UsageError(f"experiment names must differ: {', '.join(names)} (use --name)")
    return names


@main.command("compare")
@click.argument("outs", nargs=-1, type=click.Path(exists=True, path_type=Path))
@click.option("--experiments", "experiments_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="A JSON file {\"experiments\": [{\"name\", \"output\" or \"values\", \"where\", \"model\", ...}]} "
                   "(see README: Comparing experiments).")
@click.option("--name", "names", multiple=True, help="Name of each OUT, in order (repeatable).  [default: the "
                                                     "folder's name]")
@click.option("--where", "where", metavar="SQL", help="Keep only the sessions of each OUT matching this SQL condition "
                                                      "(the scores view of `streamgrade query`).")
@click.option("--split-by", "split", metavar="FIELD",
              help="Split each experiment into one per value of this field (model, agent, task, meta.X, ...): "
                   "one folder graded once, compared by model.")
@click.option("--baseline", metavar="NAME", help="The experiment the others are compared with (A).  [default: the "
                                                 "first]")
@click.option("--metric", "metrics", multiple=True, metavar="NAME",
              help="Compare only these metrics (repeatable): score, reward, pass, p_success, achievements, "
                   "progression, turns, tool_calls, cost_usd, judge_cost_usd.  [default: every one present]")
@click.option("--group-by", "group_by", multiple=True, metavar="FIELD",
              help="Break down by this field (repeatable): task, model, agent, a record field, metrics.X, meta.X "
                   "(results.json).  [default: task, model, agent, difficulty, ... where they vary]")
@click.option("--pairing", type=click.Choice(["auto", "none"]), default="auto", show_default=True,
              help="auto: paired by task when the experiments share 6 or more tasks; none: independent samples.")
@click.option("--all-pairs", is_flag=True, help="Compare every pair of experiments, not only each with the baseline.")
@click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05, show_default=True,
              help="Significance level, for the Holm-adjusted p-values.")
@click.option("--fail-if-worse", "fail_if_worse", multiple=True, metavar="METRIC",
              help="Exit 1 when an experiment is significantly worse than the baseline on METRIC (after Holm; "
                   "repeatable). For CI.")
@click.option("-o", "--output", "dest", type=click.Path(file_okay=False, path_type=Path),
              default=Path("streamgrade-compare"), show_default=True,
              help="Folder for report.html, compare.json, summary.md and the PNGs.")
@click.option("--json", "as_json", is_flag=True, help="Print compare.json instead of the markdown summary.")
@click.option("--no-plots", is_flag=True, help="Skip the PNG figures (faster).")
@click.option("--resamples", type=click.IntRange(100, 1_000_000), default=2000, show_default=True,
              help="Bootstrap resamples per confidence interval.")
@click.option("--seed", type=int, default=0, show_default=True, help="Bootstrap seed (same input, same intervals).")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file ([exports] reward_pass and pass_score: the pass marks).")
def compare_cmd(outs, experiments_file, names, where, split, baseline, metrics, group_by, pairing, all_pairs, alpha,
                fail_if_worse, dest, as_json, no_plots, resamples, seed, config_file) -> None:
    """Compare graded experiments: OUT_A OUT_B [...] (output folders), or --experiments FILE.

    For each metric (score, reward, pass rate, P(success), achievements and progression of
    game episodes, turns, tool calls, cost): mean, median, sd and a bootstrap 95% CI per
    experiment; B against the baseline A with a paired test by task when they share tasks
    (Wilcoxon signed-rank; McNemar for pass/fail) or else independent ones (Mann-Whitney U,
    Welch's t), Cohen's d, Cliff's delta and Holm-adjusted p-values; pass@k and pass^k; a
    breakdown by task and grouping fields; plots. Writes DIR/report.html, compare.json,
    summary.md and PNGs; prints the summary.

    Exit codes: 0 done; 1 --fail-if-worse METRIC and an experiment is significantly worse
    on it; 2 usage error (bad experiments file, unknown metric); 3 an experiment has no
    session to compare.
    """
    from ..compare import analysis, report
    from ..compare.load import Experiment, ExperimentError, NoSessions, from_out, from_records_file
    from ..compare.load import load_experiments_file, split_by
    from ..compare.metrics import BY_NAME

    if bool(outs) == bool(experiments_file):
        raise click.UsageError("give output folders (OUT_A OUT_B ...) or --experiments FILE, not both")
    for m in fail_if_worse:
        if m not in BY_NAME:
            raise click.UsageError(f"--fail-if-worse {m}: unknown metric; choose from {', '.join(BY_NAME)}")
        if BY_NAME[m].better is None:
            raise click.UsageError(f"--fail-if-worse {m}: neither way is better for {m}")
    cfg = _build_config(config_file, None, None, None)
    group_fields = list(group_by) or None
    try:
        if experiments_file:
            exps = load_experiments_file(experiments_file, group_fields=group_by)
        else:
            exps = []
            for name, p in zip(_names(outs, names), outs):
                if p.is_dir():
                    rows, excluded = from_out(p, where=where, group_fields=group_by)
                else:
                    rows, excluded = from_records_file(p), {}
                exps.append(Experiment(name, rows, {}, str(p), excluded))
        if split:
            exps = split_by(exps, split)
        if baseline:
            first = [e for e in exps if e.name == baseline]
            if not first:
                raise click.UsageError(f"--baseline {baseline!r}: no such experiment ({', '.join(e.name for e in exps)})")
            exps = first + [e for e in exps if e.name != baseline]
        opts = analysis.Options(metrics=list(metrics) or None, group_by=group_fields, pairing=pairing,
                                all_pairs=all_pairs, alpha=alpha, reward_pass=cfg.exports.reward_pass,
                                pass_score=cfg.exports.pass_score, n_resamples=resamples, seed=seed)
        result = analysis.analyse(exps, opts)
    except NoSessions as exc:
        click.echo(f"streamgrade: compare: {exc}", err=True)
        sys.exit(EXIT_NOTHING)
    except ExperimentError as exc:
        click.echo(f"streamgrade: compare: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    compared = {m["name"] for m in result["metrics"]}
    for m in fail_if_worse:
        if m not in compared:
            click.echo(f"streamgrade: compare: --fail-if-worse {m}: not compared (no value, or the same value in "
                       "every session)", err=True)
            sys.exit(EXIT_USAGE)
    paths = report.write(dest, result, exps, plots=not no_plots)
    if as_json:
        click.echo(json.dumps(result))
    else:
        click.echo(report.markdown(result), nl=False)
    click.echo(f"streamgrade: compare: wrote {paths['html']} ({', '.join(p.name for p in paths.values())}"
               f"{', ' + str(len(result['plots'])) + ' figures' if result['plots'] else ''})", err=True)
    failed = [w for m in fail_if_worse for w in analysis.worse(result, m)]
    for m in fail_if_worse:
        for w in analysis.worse(result, m):
            click.echo(f"streamgrade: compare: {w['b']} is significantly worse than {w['a']} on {m}: "
                       f"B - A = {w['diff']:g}, p (Holm) = {w['p_holm']:.4g}", err=True)
    if failed:
        sys.exit(EXIT_FAILED)
