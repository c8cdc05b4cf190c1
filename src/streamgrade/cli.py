"""The command line: ``streamgrade grade``, ``watch``, ``export``, ``stats`` and ``repair``
(thin: it parses options, builds the config, and runs the pipeline).

Exit codes (see :mod:`streamgrade.summary`): 0 every session found is graded or ungradable, 1 some
sessions failed (now, or earlier and unchanged since), 2 usage or configuration error or an
output folder in use or in need of repair, 3 nothing to export (``export``), 4 the run budget
was spent, 5 no session found, 6 files not recognised with ``--strict``, 130 interrupted.
"""

from __future__ import annotations

import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import click

from . import __version__
from .config import Config, api_key, load_config
from .errors import ConfigError
from .formats import configure_formats
from .judges import check_judge, make_judge
from .pipeline import Pipeline, RunStats, scan_source
from .sinks.jsonl import ExportMismatch
from .sinks.lock import OutputLocked
from .sources.scan import ScanReport
from .summary import EXIT_NOTHING, EXIT_OK, EXIT_USAGE, Progress, exit_code, finish, judge_line, print_summary, \
    training_lines

log = logging.getLogger("streamgrade.cli")

_common = [
    click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
                 help="Output folder.  [default: ./streamgrade-out]"),
    click.option("--judge", type=click.Choice(["auto", "heuristic", "openai"]),
                 help="auto: openai when an API key or base URL is set, else heuristic.  [default: auto]"),
    click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="TOML config file (see configs/streamgrade.toml)."),
    click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines on stderr.  [default: text]"),
    click.option("-v", "--verbose", is_flag=True,
                 help="Log every session, and every file no format recognised (grade logs only problems by default)."),
]


def common_options(fn):
    for opt in reversed(_common):
        fn = opt(fn)
    return fn


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="streamgrade")
def main() -> None:
    """Grade recorded demonstrations and agent trajectories into training-ready data.

    Reads Clones desktop and web recordings (with their Guacamole and video recordings),
    open-world-agents captures, OpenAI-chat trajectory dumps (tau-bench), Harbor jobs and
    ATIF files, trace rows and BALROG episodes; extracts actions and screen frames; grades
    each session with an LLM judge (any OpenAI-compatible server) or the offline heuristic
    judge; writes per-session results and HTML reports, and run-level JSONL (scores, ChatML
    SFT, ShareGPT, DPO) under the output folder.

    \b
    Exit codes: 0 all graded or ungradable; 1 sessions failed (now or earlier); 2 usage or configuration
    error, output folder in use or in need of `streamgrade repair`; 3 nothing to export;
    4 run budget spent; 5 no session found; 6 unrecognised files (--strict); 130 interrupted.
    """


def _build_config(config_file: Path | None, output: Path | None, judge: str | None, log_format: str | None,
                  extra: dict[str, dict[str, Any]] | None = None, labels: tuple[Path, ...] = ()) -> Config:
    overrides: dict[str, dict[str, Any]] = {"run": {"output": str(output) if output else None, "judge": judge,
                                                    "log_format": log_format}}
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    try:
        cfg = load_config(config_file, overrides=overrides)
        if labels:
            cfg.labels.files = [*cfg.labels.files, *map(str, labels)]
        configure_formats(cfg)  # mappings and limits: a bad mapping is a configuration error now
        return cfg
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _check_judge(cfg: Config) -> None:
    """Exit 2 with one line when the judge cannot work (no key or base URL, a key that
    cannot be sent), before anything is printed or started."""
    try:
        check_judge(cfg)
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _setup(cfg: Config, verbose: bool, quiet_default: bool) -> None:
    from .logs import setup_logging

    level = "DEBUG" if verbose and cfg.run.log_level.upper() == "DEBUG" else cfg.run.log_level
    if quiet_default and not verbose:
        level = "WARNING"
    setup_logging(cfg.run.log_format, level, secrets=[api_key() or ""])


async def _run(cfg: Config, paths: list[Path], *, watch: bool, progress: bool,
               verbose: bool = False) -> tuple[RunStats, str | None, bool]:
    """Run the pipeline; returns (stats, the name of the signal that stopped it or None,
    whether a second signal aborted the drain)."""
    try:
        judge = make_judge(cfg)
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    out = Path(cfg.run.output)
    display = Progress(judge.info.kind) if progress else None
    pipe = Pipeline(cfg, out, judge, on_record=display.update if display else None, rebuild_when_idle=watch)
    try:
        pipe.open("watch" if watch else "grade")
    except (OutputLocked, ExportMismatch) as exc:
        await judge.aclose()
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except ConfigError as exc:
        await judge.aclose()
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        await judge.aclose()
        click.echo(f"streamgrade: cannot use output folder {out}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)
    report = pipe.stats.scan = ScanReport(verbose=verbose)
    exclude = [out]
    notifier = None
    if watch:
        from .sdnotify import Notifier
        from .sources.watch import watch_source

        notifier = Notifier.from_env()  # systemd Type=notify; a no-op outside systemd

        async def source(send):
            await watch_source(paths, send, cfg.watch, exclude=exclude, on_ready=notifier.ready, report=report)
    else:
        source = scan_source(paths, exclude=exclude, report=report)

    interrupted = False
    signalled: str | None = None

    async def signals(scope: anyio.CancelScope) -> None:
        nonlocal interrupted, signalled
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async for sig in received:
                if not pipe._stopping:
                    signalled = signal.Signals(sig).name
                    log.warning("%s: stopping; finishing sessions in flight (again to abort)", signalled)
                    if notifier:
                        notifier.stopping()
                    pipe.stop()
                else:
                    interrupted = True
                    scope.cancel()

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(signals, tg.cancel_scope)
            if notifier and notifier.enabled:
                from .daemon import stuck_after_for, supervise
                from .sdnotify import watchdog_interval

                ping = watchdog_interval()
                tg.start_soon(lambda: supervise(pipe.stats, notifier, interval=ping or 5.0, watchdog=ping is not None,
                                                stuck_after=stuck_after_for(cfg), stopping=lambda: pipe._stopping))
            if display:
                display.start(pipe.stats)
            try:
                await pipe.run(source)
            finally:
                if display:
                    display.stop()
            tg.cancel_scope.cancel()
    finally:
        await judge.aclose()
        if notifier:
            notifier.close()
    return pipe.stats, signalled, interrupted


def _check_paths(paths: tuple[Path, ...]) -> list[Path]:
    missing = [p for p in paths if not p.exists()]
    if missing:
        click.echo(f"streamgrade: no such file or folder: {', '.join(map(str, missing))}", err=True)
        sys.exit(EXIT_USAGE)
    return list(paths)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("--strict", is_flag=True, help="Exit 6 when some files were not recognised by any format.")
@click.option("--labels", "labels", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth to join to the sessions (repeatable): a SWE-bench report, a Terminal-Bench "
                   "results.json, or a JSON/JSONL/CSV of id to reward or bool ([labels] in the config).")
def grade(paths, output, judge, config_file, log_format, verbose, no_progress, strict, labels) -> None:
    """Grade every session found under PATHS, then exit.

    Sessions already graded with unchanged files are skipped, so a re-run only grades what
    is new or changed. The summary counts every session found, those that failed (in this
    run, or earlier with unchanged input), and the files no format recognised, with the
    reason. One process at a time may write an output folder.

    \b
    Exit codes: 0 all graded or ungradable; 1 some failed (now or earlier); 2 usage or configuration
    error, output folder in use or in need of `streamgrade repair`; 4 run budget spent;
    5 no session found; 6 unrecognised files with --strict; 130 interrupted (SIGINT or
    SIGTERM: what was in flight is finished, the rest is pending for the next run).
    """
    cfg = _build_config(config_file, output, judge, log_format, labels=labels)
    _check_judge(cfg)
    _setup(cfg, verbose, quiet_default=True)
    paths = _check_paths(paths)
    click.echo(f"streamgrade: {judge_line(cfg)}", err=True)
    t0 = time.monotonic()
    stats, signalled, _ = anyio.run(lambda: _run(cfg, paths, watch=False, progress=not no_progress, verbose=verbose))
    print_summary(stats, cfg, time.monotonic() - t0, signal_name=signalled, verbose=verbose)
    training_lines(stats, verbose)
    finish(exit_code(stats, signalled=signalled is not None, strict=strict))


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options
@click.option("--settle", "settle_s", type=float,
              help="Seconds a session's files must stay unchanged before it is graded.  [default: 5]")
@click.option("--labels", "labels", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth to join to the sessions (repeatable; see grade --help).")
def watch(paths, output, judge, config_file, log_format, verbose, settle_s, labels) -> None:
    """Grade what is under PATHS, then watch for new or changed sessions until SIGINT/SIGTERM.

    Each session is graded once its files have not changed for the settle time, and logged
    in one line; every row of a multi-session file (JSONL) is a session of its own, and a
    file that grows by appends has only its new rows graded. On SIGINT/SIGTERM it stops
    taking sessions, finishes those in flight and exits 0 (a second signal, or in-flight
    work outlasting the drain timeout, exits 130; the rest stays pending for the next run).
    """
    cfg = _build_config(config_file, output, judge, log_format, {"watch": {"settle_s": settle_s}}, labels=labels)
    _check_judge(cfg)
    _setup(cfg, verbose, quiet_default=False)
    paths = _check_paths(paths)
    log.info("%s", judge_line(cfg))
    t0 = time.monotonic()
    stats, _, interrupted = anyio.run(lambda: _run(cfg, paths, watch=True, progress=False, verbose=verbose))
    print_summary(stats, cfg, time.monotonic() - t0, verbose=verbose)
    finish(130 if interrupted or stats.drain_timed_out else EXIT_OK)


_FORMATS = ["sft", "sharegpt", "openai-sft", "dpo", "openai-dpo", "computer-use"]


@main.command("export")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), required=True,
              help="sft: ChatML (TRL SFTTrainer); sharegpt: LLaMA-Factory; openai-sft: strict OpenAI chat "
                   "fine-tuning; dpo: TRL preference pairs; openai-dpo: OpenAI preference fine-tuning; "
                   "computer-use: screenshots + pyautogui steps of recordings (OpenAI vision and "
                   "LLaMA-Factory multimodal files in a folder).")
@click.option("-o", "--output", "dest", type=click.Path(path_type=Path),
              help="File to write (computer-use: the folder).  "
                   "[default: OUT/exports/rebuilt/<name>.jsonl; OUT/exports/computer_use/]")
@click.option("--inline-images", is_flag=True,
              help="computer-use: images as data URLs and no metadata in the OpenAI file (for an upload; OpenAI "
                   "cannot read local paths).  [default: relative paths]")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file; its [exports] section gives the default filters.")
@click.option("--min-score", type=float, help="Least judge score (0-100).")
@click.option("--min-reward", type=float, help="Least ground-truth reward.")
@click.option("--min-achievements", type=float, help="Least achievements unlocked (game episodes).")
@click.option("--min-progression", type=float, help="Least progression 0-1 (game episodes).")
@click.option("--max-turns", type=int, help="Most assistant turns.")
@click.option("--require-termination", multiple=True, help="Keep only these termination reasons (repeatable).")
@click.option("--source-format", "formats", multiple=True, help="Keep only this input format (repeatable).")
@click.option("--model", "models", multiple=True, help="Keep only this model (repeatable).")
@click.option("--pairs", "pairs", type=click.Choice(["step", "trajectory"]),
              help="DPO: step = the first assistant turn where two runs of a task diverge (one turn per side); "
                   "trajectory = whole continuations after the shared prefix, with chosen_train/rejected_train "
                   "flags marking the model's turns (dpo only).  [default: [exports] dpo_pairs, step]")
@click.option("--rank-by", "rank_by", type=click.Choice(["reward", "score"]),
              help="DPO: reward = the higher ground-truth reward is chosen, the judge score only without a reward "
                   "or to break a tie; score = the judge score, never against the reward.  "
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
               inline_images) -> None:
    """Rebuild a training-data file from the graded results in OUT, without regrading.

    SFT files keep only sessions that pass by default (--all keeps every one); every row
    carries its metadata (--no-metadata leaves it out; never in openai-sft or openai-dpo
    rows) and its source's one tool list. DPO pairs two runs of one task on their shared
    prompt (--pairs, --rank-by). The output says what was left out and why. Exit code 0
    when rows were written, 3 when nothing passed the filters (no file is written), 2 on a
    usage error.
    """
    from .exports.build import ExportOptions, NothingToExport, build_export
    from .exports.filters import ExportFilter

    if fmt == "openai-dpo" and pairs == "trajectory":
        raise click.UsageError("--pairs trajectory: OpenAI preference fine-tuning takes one assistant message per "
                               "side; use --pairs step (the default) with --format openai-dpo")
    cfg = _build_config(config_file, None, None, None)
    base = cfg.exports.filter()
    given = {"min_score": min_score, "min_reward": min_reward, "min_achievements": min_achievements,
             "min_progression": min_progression, "max_turns": max_turns,
             "require_termination": list(require_termination) or None, "formats": list(formats) or None,
             "models": list(models) or None}
    flt = ExportFilter(**{k: (given[k] if given.get(k) is not None else getattr(base, k)) for k in ExportFilter.__struct_fields__})
    if fmt == "computer-use":
        _export_computer_use(out, dest, flt, cfg, inline_images, metadata=not no_metadata)
        return
    if dest is not None and dest.is_dir():
        raise click.UsageError(f"--output {dest} is a folder; name the file to write")
    opts = ExportOptions.from_config(cfg.exports, flt=flt, min_gap=min_gap, pairs=pairs, rank_by=rank_by,
                                     pass_only=False if keep_all else None,
                                     metadata=False if no_metadata else None)
    try:
        res = build_export(out, fmt, dest=dest, options=opts)
    except NothingToExport as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_NOTHING)
    left = sum(res.reasons.values())
    # DPO: what is left out is candidate pairs (two runs of a task), one-run tasks and filtered runs
    verb = "dropped" if fmt in ("dpo", "openai-dpo") else "left out"
    what = " (candidate pairs, one-run tasks, filtered runs)" if verb == "dropped" else ""
    click.echo(f"streamgrade: wrote {res.rows} {fmt} rows to {res.path} ({res.considered} graded sessions considered, "
               f"{left} {verb}{what})", err=True)
    for kind, n in sorted(res.reasons.items(), key=lambda kv: -kv[1]):
        click.echo(f"  {n} {verb}: {kind}", err=True)
    for sid, reason in res.rejected[:10]:
        click.echo(f"  {verb} {sid}: {reason}", err=True)
    if len(res.rejected) > 10:
        click.echo(f"  ... and {len(res.rejected) - 10} more", err=True)


def _export_computer_use(out: Path, dest: Path | None, flt, cfg, inline: bool, *, metadata: bool = True) -> None:
    """``export --format computer-use``: see :mod:`streamgrade.exports.computer_use`."""
    from .exports.build import NothingToExport
    from .exports.computer_use import build_computer_use

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

    from .stats import stats

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


@main.command("repair")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file; its [exports] section filters the rebuilt training rows.")
def repair_cmd(out, config_file) -> None:
    """Make OUT's JSONL exports and its ledger agree again.

    Needed when a run refuses to start because an export disagrees with the ledger (an
    output folder written by two processes at once, an edited export, a deleted ledger).
    scores.jsonl keeps every complete line once and regains the lines of finished sessions
    from their scores.json; sft.chatml.jsonl and sharegpt.jsonl are rebuilt from the session
    folders; sessions that cannot be restored are set back to pending, so the next run
    grades them. The old files are kept in OUT/exports/backup-<time>/. Exit code 0 when
    repaired, 2 when OUT is in use or not an output folder.
    """
    from .sinks.repair import repair

    cfg = _build_config(config_file, None, None, None)
    try:
        rep = repair(out, cfg)
    except (OutputLocked, FileNotFoundError) as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"streamgrade: repaired {out}: scores.jsonl kept {rep.kept} lines, dropped {rep.duplicates} duplicate "
               f"and {rep.broken} broken lines, restored {rep.restored} from scores.json; "
               f"training files rebuilt ({', '.join(f'{k} {v}' for k, v in rep.rows.items() if k != 'scores.jsonl')}); "
               f"{len(rep.reset)} sessions set back to pending; old files in {rep.backup}", err=True)
