"""``export`` and ``stats``: training files and figures from a graded output folder,
without regrading."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from ..errors import ConfigError
from ..summary import EXIT_NOTHING, EXIT_USAGE
from ._app import _build_config, main


_FORMATS = ["sft", "sharegpt", "openai-sft", "dpo", "openai-dpo", "computer-use", "scores"]


@main.command("export")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), required=True,
              help="sft: ChatML (TRL SFTTrainer); sharegpt: LLaMA-Factory; openai-sft: strict OpenAI chat "
                   "fine-tuning; dpo: TRL preference pairs; openai-dpo: OpenAI preference fine-tuning; "
                   "computer-use: screenshots + pyautogui steps of recordings (OpenAI vision and "
                   "LLaMA-Factory multimodal files in a folder); scores: the latest record of each session "
                   "(scores.jsonl fields).")
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path),
              help="File to write (computer-use: the folder).  "
                   "[default: OUT/exports/rebuilt/<name>.jsonl (.parquet with --parquet); OUT/exports/computer_use/]")
@click.option("--parquet", is_flag=True,
              help="Write Parquet instead of JSONL (datasets.load_dataset(\"parquet\", ...), the Hub's viewer); "
                   "not for computer-use.")
@click.option("--where", "where", metavar="SQL",
              help="Keep only sessions whose latest record matches this SQL condition (DuckDB, over the columns "
                   "of the scores view of `streamgrade query`), e.g. \"metrics.progression > 0.3 and model like "
                   "'%llama%'\".")
@click.option("--inline-images", is_flag=True,
              help="computer-use: images as data URLs and no metadata in the OpenAI file (for an upload; OpenAI "
                   "cannot read local paths).  [default: relative paths]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file; its [exports] section gives the default filters.")
@click.option("--min-score", type=float, help="Least judge score (0-100).")
@click.option("--min-reward", type=float, help="Least ground-truth reward.")
@click.option("--min-achievements", type=float, help="Least achievements unlocked (game episodes).")
@click.option("--min-progression", type=float, help="Least progression 0-1 (game episodes).")
@click.option("--min-p-success", type=float, help="Least calibrated P(success) 0-1 (grade --calibration); a session "
                                                  "without p_success is left out.")
@click.option("--max-turns", type=int, help="Most assistant turns.")
@click.option("--require-termination", multiple=True, help="Keep only these termination reasons (repeatable).")
@click.option("--source-format", "formats", multiple=True, help="Keep only this input format (repeatable).")
@click.option("--model", "models", multiple=True, help="Keep only this model (repeatable).")
@click.option("--pairs", "pairs", type=click.Choice(["step", "trajectory"]),
              help="DPO: step = the first assistant turn where two runs of a task diverge (one turn per side); "
                   "trajectory = whole continuations after the shared prefix, with chosen_train/rejected_train "
                   "flags marking the model's turns (dpo only).  [default: [exports] dpo_pairs, step]")
@click.option("--rank-by", "rank_by", type=click.Choice(["reward", "score", "pairwise"]),
              help="DPO: reward = the higher ground-truth reward is chosen, the judge score only without a reward "
                   "or to break a tie; score = the judge score, never against the reward; pairwise = where "
                   "rewards do not decide, ask the LLM judge ([openai]) to compare the two runs in both orders "
                   "(sends requests; a tie gives no pair).  "
                   "[default: [exports] dpo_rank_by, reward]")
@click.option("--min-gap", type=float, help="DPO: least score gap between chosen and rejected where the score "
                                            "ranks them.  [default: 10]")
@click.option("--all", "keep_all", is_flag=True,
              help="SFT: keep every graded session, not only those that pass (reward at the pass mark, else "
                   "score >= [exports] pass_score).")
@click.option("--no-metadata", is_flag=True, help="Leave out the rows' metadata (session id, source, task, score, "
                                                  "reward, judge).")
def export_cmd(out, fmt, dest, config_file, min_score, min_reward, min_achievements, min_progression, max_turns,
               require_termination, formats, models, pairs, rank_by, min_gap, keep_all, no_metadata,
               inline_images, min_p_success, parquet, where) -> None:
    """Rebuild a training-data file from the graded results in OUT, without regrading.

    SFT files keep only sessions that pass by default (--all keeps every one); every row
    carries its metadata (--no-metadata leaves it out; never in openai-sft or openai-dpo
    rows) and its source's one tool list. DPO pairs two runs of one task on their shared
    prompt (--pairs, --rank-by). The output says what was left out and why. Exit code 0
    when rows were written, 3 when nothing passed the filters (no file is written), 2 on a
    usage error.
    """
    from ..exports.filters import ExportFilter

    if fmt == "openai-dpo" and pairs == "trajectory":
        raise click.UsageError("--pairs trajectory: OpenAI preference fine-tuning takes one assistant message per "
                               "side; use --pairs step (the default) with --format openai-dpo")
    cfg = _build_config(config_file, None, None, None)
    base = cfg.exports.filter()
    given = {"min_score": min_score, "min_reward": min_reward, "min_achievements": min_achievements,
             "min_progression": min_progression, "max_turns": max_turns,
             "require_termination": list(require_termination) or None, "formats": list(formats) or None,
             "models": list(models) or None, "min_p_success": min_p_success}
    flt = ExportFilter(**{k: (given[k] if given.get(k) is not None else getattr(base, k)) for k in ExportFilter.__struct_fields__})
    if parquet and fmt == "computer-use":
        raise click.UsageError("--parquet: computer-use writes a folder of images and two files; export it as JSONL")
    flt = _with_where(out, flt, where)
    if fmt == "computer-use":
        _export_computer_use(out, dest, flt, cfg, inline_images, metadata=not no_metadata)
        return
    _export_rows(out, fmt, dest, flt, cfg, parquet=parquet, keep_all=keep_all, no_metadata=no_metadata,
                 pairs=pairs, rank_by=rank_by, min_gap=min_gap)


def _with_where(out: Path, flt, where: str | None):
    """``flt`` with the --where condition (exit 2 with DuckDB's message when it fails)."""
    if where is None:
        return flt
    from ..exports.where import where_filter
    from ..query import QueryError

    try:
        flt, notes = where_filter(out, flt, where)
    except QueryError as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    for note in notes:
        click.echo(f"streamgrade: {note}", err=True)
    return flt


def _export_rows(out: Path, fmt: str, dest: Path | None, flt, cfg, *, parquet: bool, keep_all: bool,
                 no_metadata: bool, pairs, rank_by, min_gap) -> None:
    """Every format but computer-use: the JSONL rows (with ``--parquet`` to a temporary file
    beside the Parquet file, then converted by :mod:`streamgrade.exports.parquet`)."""
    import os

    from ..exports.build import FILE_NAMES, ExportOptions, NothingToExport, build_export
    from ..exports.parquet import jsonl_to_parquet, parquet_name
    from ..exports.scores import SCORES_NAME, write_scores
    from ..sinks.layout import Layout

    name = SCORES_NAME if fmt == "scores" else FILE_NAMES[fmt]
    if dest is not None and dest.is_dir():
        raise click.UsageError(f"--output {dest} is a folder; name the file to write")
    final = dest or Layout(out).export(f"rebuilt/{parquet_name(name) if parquet else name}")
    rows_file = final.with_name(f".{final.name}.{os.getpid()}.jsonl") if parquet else final
    try:
        if fmt == "scores":
            res = write_scores(out, rows_file, flt)
        else:
            opts = ExportOptions.from_config(cfg.exports, flt=flt, min_gap=min_gap, pairs=pairs, rank_by=rank_by,
                                             pass_only=False if keep_all else None,
                                             metadata=False if no_metadata else None)
            if rank_by == "pairwise" and fmt in ("dpo", "openai-dpo"):
                from ..exports.pairwise_rank import pairwise_preferer

                with pairwise_preferer(cfg) as opts.prefer:
                    res = build_export(out, fmt, dest=rows_file, options=opts)
            else:
                res = build_export(out, fmt, dest=rows_file, options=opts)
        if parquet:
            jsonl_to_parquet(rows_file, final)
            res.path = final
    except ConfigError as exc:
        raise click.UsageError(str(exc)) from None
    except NothingToExport as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_NOTHING)
    finally:
        if parquet:
            rows_file.unlink(missing_ok=True)
    _report(fmt, res)


def _report(fmt: str, res) -> None:
    """What an export wrote and left out, on stderr."""
    left = sum(res.reasons.values())
    # DPO: what is left out is candidate pairs (two runs of a task), one-run tasks and filtered runs
    verb = "dropped" if fmt in ("dpo", "openai-dpo") else "left out"
    what = " (candidate pairs, one-run tasks, filtered runs)" if verb == "dropped" else ""
    considered = "sessions" if fmt == "scores" else "graded sessions"
    click.echo(f"streamgrade: wrote {res.rows} {fmt} rows to {res.path} ({res.considered} {considered} considered, "
               f"{left} {verb}{what})", err=True)
    for kind, n in sorted(res.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n} {verb}: {kind}", err=True)
    for sid, reason in res.rejected[:10]:
        click.echo(f"  {verb} {sid}: {reason}", err=True)
    if len(res.rejected) > 10:
        click.echo(f"  ... and {len(res.rejected) - 10} more", err=True)


def _export_computer_use(out: Path, dest: Path | None, flt, cfg, inline: bool, *, metadata: bool = True) -> None:
    """``export --format computer-use``: see :mod:`streamgrade.exports.computer_use`."""
    from ..exports.build import NothingToExport
    from ..exports.computer_use import build_computer_use

    try:
        res = build_computer_use(out, dest, flt, inline_images=inline, frames=cfg.frames, metadata=metadata)
    except NothingToExport as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        for sid, reason in getattr(exc, "result").rejected[:10]:
            click.echo(f"  left out {sid}: {reason}", err=True)
        sys.exit(EXIT_NOTHING)
    click.echo(f"streamgrade: wrote {res.rows} computer-use rows ({res.images} images; {res.openai_rows} rows in "
               f"{res.files['openai'].name}, {res.rows} in {res.files['sharegpt'].name}) to "
               f"{res.files['openai'].parent} ({res.considered} recording sessions considered, "
               f"{len(res.rejected)} left out, {res.dropped_actions} actions dropped)", err=True)
    for sid, reason in res.rejected[:10]:
        click.echo(f"  left out {sid}: {reason}", err=True)
    if len(res.rejected) > 10:
        click.echo(f"  ... and {len(res.rejected) - 10} more", err=True)


@main.command("stats")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file ([exports] reward_pass and min_score).")
def stats_cmd(out, as_json, config_file) -> None:
    """Counts, score and reward distributions by format, model and task, pass rates, and
    score-vs-reward agreement (AUROC, Spearman) where rewards exist."""
    import json as _json

    from ..stats import stats

    cfg = _build_config(config_file, None, None, None)
    res = stats(out, reward_pass=cfg.exports.reward_pass,
                score_pass=cfg.exports.min_score if cfg.exports.min_score is not None else 50.0)
    if as_json:
        click.echo(_json.dumps(res))
        return
    from rich.console import Console
    from rich.table import Table

    console = Console()
    if not console.is_terminal:
        console.width = 160
    for name in ("by_format", "by_model"):
        table = Table(title=f"{out}: {name.replace('_', ' ')}")
        cols = ["group", "n", "graded", "failed", "ungradable", "score", "p10", "p90", "judge pass",
                "rewards", "reward", "reward pass", "AUROC", "rho"]
        keys = ["sessions", "graded", "failed", "ungradable", "score_mean", "score_p10", "score_p90",
                "judge_pass_rate", "with_reward", "reward_mean", "reward_pass_rate", "auroc", "spearman"]
        for c in cols:
            table.add_column(c, justify="left" if c == "group" else "right")
        for group, f in [*res[name].items(), ("(all)", res["total"])]:
            table.add_row(group, *["-" if f[k] is None else f"{f[k]:.3g}" if isinstance(f[k], float) else str(f[k]) for k in keys])
        console.print(table)
    console.print(f"{len(res['by_task'])} tasks; per-task figures with --json")


