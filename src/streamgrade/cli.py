"""The command line: ``streamgrade grade`` and ``streamgrade watch`` (thin: it parses
options, builds the config, and runs the pipeline).

Exit codes: 0 every session graded (or nothing to do), 1 some sessions failed (a summary on
stderr says which and why), 2 usage or configuration error, 3 nothing to export (``export``),
4 the run budget (``openai.max_cost_usd``) was spent and sessions are left pending, 130
interrupted before the drain finished.
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
from .judges import check_judge, make_judge, resolve_kind
from .pipeline import Pipeline, RunStats, scan_source

log = logging.getLogger("streamgrade.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING, EXIT_BUDGET = 0, 1, 2, 3, 4

_common = [
    click.option("-o", "--output", "output", type=click.Path(file_okay=False, path_type=Path),
                 help="Output folder.  [default: ./streamgrade-out]"),
    click.option("--judge", type=click.Choice(["auto", "heuristic", "openai"]),
                 help="auto: openai when an API key or base URL is set, else heuristic.  [default: auto]"),
    click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
                 help="TOML config file (see configs/streamgrade.toml)."),
    click.option("--log-format", type=click.Choice(["text", "json"]), help="Log lines on stderr.  [default: text]"),
    click.option("-v", "--verbose", is_flag=True, help="Log every session (grade logs only problems by default)."),
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
    """


def _build_config(config_file: Path | None, output: Path | None, judge: str | None, log_format: str | None,
                  extra: dict[str, dict[str, Any]] | None = None) -> Config:
    overrides: dict[str, dict[str, Any]] = {"run": {"output": str(output) if output else None, "judge": judge,
                                                    "log_format": log_format}}
    for section, values in (extra or {}).items():
        overrides.setdefault(section, {}).update(values)
    try:
        return load_config(config_file, overrides=overrides)
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


def _judge_line(cfg: Config) -> str:
    kind = resolve_kind(cfg)
    if kind == "openai":
        return f"judge: openai, model {cfg.openai.model} at {cfg.openai.base_url or 'https://api.openai.com/v1'}"
    return "judge: heuristic (offline baseline; set STREAMGRADE_BASE_URL or an API key for the LLM judge)"


async def _run(cfg: Config, paths: list[Path], *, watch: bool, progress: bool) -> tuple[RunStats, bool]:
    try:
        judge = make_judge(cfg)
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    out = Path(cfg.run.output)
    display = _Progress(judge.info.kind) if progress else None
    pipe = Pipeline(cfg, out, judge, on_record=display.update if display else None, rebuild_when_idle=watch)
    try:
        pipe.open()
    except OSError as exc:
        click.echo(f"streamgrade: cannot use output folder {out}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)
    exclude = [out]
    notifier = None
    if watch:
        from .sdnotify import Notifier
        from .sources.watch import watch_source

        notifier = Notifier.from_env()  # systemd Type=notify; a no-op outside systemd

        async def source(send):
            await watch_source(paths, send, cfg.watch, exclude=exclude, on_ready=notifier.ready)
    else:
        source = scan_source(paths, exclude=exclude)

    interrupted = False

    async def signals(scope: anyio.CancelScope) -> None:
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as received:
            async for sig in received:
                if not pipe._stopping:
                    log.warning("%s: stopping; finishing sessions in flight (again to abort)", signal.Signals(sig).name)
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
    return pipe.stats, interrupted


class _Progress:
    """The rich progress bar of ``grade``: sessions done/failed, requests/s, tokens, cost."""

    def __init__(self, judge_kind: str):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = Progress(
            TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=self.console, redirect_stderr=True, transient=False,
            disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task("grade", total=None, info="")
        self.stats: RunStats | None = None

    def start(self, stats: RunStats) -> None:
        self.stats = stats
        self.progress.start()

    def update(self, _record=None) -> None:
        st = self.stats
        if st is None:
            return
        info = (f"ok {st.graded} failed {st.failed} skipped {st.skipped} | {st.requests_per_s():.1f} req/s "
                f"| {st.prompt_tokens + st.completion_tokens:,} tok | ${st.cost_usd:.4f}")
        self.progress.update(self.task, completed=st.done, total=max(st.found - st.skipped, st.done) or None, info=info)

    def stop(self) -> None:
        self.update()
        self.progress.stop()


def _summary(stats: RunStats, cfg: Config, elapsed: float) -> None:
    click.echo(
        f"streamgrade: {stats.graded} graded, {stats.failed} failed, {stats.skipped} unchanged (skipped) "
        f"of {stats.found} found in {elapsed:.1f} s; {_judge_line(cfg)}; "
        f"{stats.requests} requests, {stats.prompt_tokens + stats.completion_tokens} tokens, ${stats.cost_usd:.4f}; "
        f"output: {cfg.run.output}",
        err=True,
    )
    if stats.budget_pending:
        click.echo(f"streamgrade: run budget spent: {stats.budget_pending} sessions left pending "
                   f"(raise openai.max_cost_usd and run again)", err=True)
    if stats.failed:
        click.echo("failed sessions:", err=True)
        for sid, err in stats.failures[:50]:
            click.echo(f"  {sid}: {err}", err=True)
        if stats.failed > 50:
            click.echo(f"  ... and {stats.failed - 50} more (see scores.jsonl, status \"failed\")", err=True)


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
def grade(paths, output, judge, config_file, log_format, verbose, no_progress) -> None:
    """Grade every session found under PATHS, then exit.

    Sessions already graded with unchanged files are skipped, so a re-run only grades what
    is new or changed. Exit code 0 when all sessions are graded, 1 when some failed, 2 on a
    usage or configuration error.
    """
    cfg = _build_config(config_file, output, judge, log_format)
    _check_judge(cfg)
    _setup(cfg, verbose, quiet_default=True)
    paths = _check_paths(paths)
    click.echo(f"streamgrade: {_judge_line(cfg)}", err=True)
    t0 = time.monotonic()
    stats, interrupted = anyio.run(lambda: _run(cfg, paths, watch=False, progress=not no_progress))
    _summary(stats, cfg, time.monotonic() - t0)
    if stats.dpo_pairs:
        click.echo(f"streamgrade: {stats.dpo_pairs} DPO pairs in {Path(cfg.run.output) / 'exports' / 'dpo.jsonl'}", err=True)
    elif stats.dpo_pairs == 0:
        click.echo(f"streamgrade: no DPO pairs (no task has two graded sessions {cfg.exports.dpo_min_gap:g} "
                   "points apart)", err=True)
    sys.exit(130 if interrupted else EXIT_FAILED if stats.failed else EXIT_BUDGET if stats.budget_pending else EXIT_OK)


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options
@click.option("--settle", "settle_s", type=float,
              help="Seconds a session's files must stay unchanged before it is graded.  [default: 5]")
def watch(paths, output, judge, config_file, log_format, verbose, settle_s) -> None:
    """Grade what is under PATHS, then watch for new or changed sessions until SIGINT/SIGTERM.

    Each session is graded once its files have not changed for the settle time, and logged
    in one line. On SIGINT/SIGTERM it stops taking sessions, finishes those in flight and
    exits 0 (a second signal aborts; the rest stays pending for the next run).
    """
    cfg = _build_config(config_file, output, judge, log_format, {"watch": {"settle_s": settle_s}})
    _check_judge(cfg)
    _setup(cfg, verbose, quiet_default=False)
    paths = _check_paths(paths)
    log.info("%s", _judge_line(cfg))
    t0 = time.monotonic()
    stats, interrupted = anyio.run(lambda: _run(cfg, paths, watch=True, progress=False))
    _summary(stats, cfg, time.monotonic() - t0)
    sys.exit(130 if interrupted else EXIT_OK)


_FORMATS = ["sft", "sharegpt", "dpo", "openai-dpo"]


@main.command("export")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--format", "fmt", type=click.Choice(_FORMATS), required=True,
              help="sft: ChatML (TRL SFTTrainer, OpenAI fine-tuning); sharegpt: LLaMA-Factory; "
                   "dpo: TRL preference pairs; openai-dpo: OpenAI preference fine-tuning.")
@click.option("-o", "--output", "dest", type=click.Path(dir_okay=False, path_type=Path),
              help="File to write.  [default: OUT/exports/rebuilt/<name>.jsonl]")
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
@click.option("--min-gap", type=float, help="DPO: least score gap between chosen and rejected.  [default: 10]")
def export_cmd(out, fmt, dest, config_file, min_score, min_reward, min_achievements, min_progression, max_turns,
               require_termination, formats, models, min_gap) -> None:
    """Rebuild a training-data file from the graded results in OUT, without regrading.

    Exit code 0 when rows were written, 3 when nothing passed the filters (no file is
    written), 2 on a usage error.
    """
    from .exports.build import NothingToExport, build_export
    from .exports.filters import ExportFilter

    cfg = _build_config(config_file, None, None, None)
    base = cfg.exports.filter()
    given = {"min_score": min_score, "min_reward": min_reward, "min_achievements": min_achievements,
             "min_progression": min_progression, "max_turns": max_turns,
             "require_termination": list(require_termination) or None, "formats": list(formats) or None,
             "models": list(models) or None}
    flt = ExportFilter(**{k: (given[k] if given.get(k) is not None else getattr(base, k)) for k in ExportFilter.__struct_fields__})
    try:
        res = build_export(out, fmt, flt, min_gap=cfg.exports.dpo_min_gap if min_gap is None else min_gap, dest=dest)
    except NothingToExport as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_NOTHING)
    click.echo(f"streamgrade: wrote {res.rows} {fmt} rows to {res.path} ({res.considered} graded sessions considered, "
               f"{len(res.rejected)} left out)", err=True)
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
        cols = ["group", "n", "graded", "failed", "score", "p10", "p90", "judge pass",
                "rewards", "reward", "reward pass", "AUROC", "rho"]
        keys = ["sessions", "graded", "failed", "score_mean", "score_p10", "score_p90",
                "judge_pass_rate", "with_reward", "reward_mean", "reward_pass_rate", "auroc", "spearman"]
        for c in cols:
            table.add_column(c, justify="left" if c == "group" else "right")
        for group, f in [*res[name].items(), ("(all)", res["total"])]:
            table.add_row(group, *["-" if f[k] is None else f"{f[k]:.3g}" if isinstance(f[k], float) else str(f[k]) for k in keys])
        console.print(table)
    console.print(f"{len(res['by_task'])} tasks; per-task figures with --json")
