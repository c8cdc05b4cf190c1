"""``hints`` and ``augment``: learning from graded runs (per-task hints, augmented
demonstrations). Thin: options, config, the judge client, progress and the summary."""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import Any

import anyio
import click

from ..errors import ConfigError
from ..judges import resolve_kind
from ..summary import EXIT_BUDGET, EXIT_FAILED, EXIT_NOTHING, EXIT_OK, EXIT_USAGE, judge_line
from ._app import _build_config, _check_judge, _setup, main


class _Bar:
    """A rich progress bar on stderr (a terminal only): ``what`` done of the total, with
    requests, tokens and cost."""

    def __init__(self, label: str, enabled: bool):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        console = Console(stderr=True)
        self.bar = Progress(TextColumn(f"[bold]{label}"), BarColumn(), MofNCompleteColumn(),
                            TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console,
                            disable=not (enabled and console.is_terminal))
        self.task = self.bar.add_task(label, total=None, info="")

    def __enter__(self) -> _Bar:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def update(self, done: int, total: int, usage: Any) -> None:
        self.bar.update(self.task, completed=done, total=total or None,
                        info=f"{usage.requests} req | {usage.prompt_tokens + usage.completion_tokens:,} tok "
                             f"| ${usage.cost_usd:.4f}")


def _client(cfg, offline: bool, configured_mode: str, what: str):
    """The LLM judge to extract with, or None (offline). Exit 2 when ``[hints|augment]
    mode = "llm"`` but no LLM judge is configured."""
    from ..judges import make_judge

    if offline or configured_mode == "offline":
        return None
    kind = resolve_kind(cfg)
    if kind == "heuristic":
        if configured_mode == "llm":
            click.echo(f"streamgrade: configuration error: [{what}] mode = \"llm\" needs an LLM judge "
                       f"(set STREAMGRADE_BASE_URL or an API key, or --judge openai)", err=True)
            sys.exit(EXIT_USAGE)
        return None
    try:
        return make_judge(cfg)
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)


def _usage_line(usage: Any) -> str:
    return (f"{usage.requests} requests, {usage.prompt_tokens + usage.completion_tokens:,} tokens, "
            f"${usage.cost_usd:.4f}")


_judge_opt = click.option("--judge", type=click.Choice(["auto", "heuristic", "openai", "anthropic"]),
                          help="The LLM client (auto: openai when an API key or base URL is set); heuristic "
                               "means offline.  [default: auto]")


@main.command("hints")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("-o", "--output", "dest", type=click.Path(dir_okay=False, path_type=Path),
              help="The JSONL of augmented tasks.  [default: OUT/hints/hints.jsonl]")
@click.option("--max-tasks", type=click.IntRange(min=1), help="Only the first N tasks (in task-key order).")
@click.option("--offline", is_flag=True, help="Extract without an LLM: tools and calls of the successful episodes, "
                                              "pitfalls from the failed ones' errors, loops and refusals.")
@_judge_opt
@click.option("--group-by", "group_by", multiple=True,
              help="A field that makes a task (repeatable): source_format, source_dir, source_file, task_id, "
                   "trial, task, model, agent, meta.<path>.  [default: [hints] group_by: source_format, task_id]")
@click.option("--harbor-tasks", "harbor_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Also write a Harbor task folder per task here (instruction.md = the augmented task).")
@click.option("--harbor-source", type=click.Path(exists=True, file_okay=False, path_type=Path),
              help="The original Harbor task folders: their task.toml, environment/, tests/ and solution/ are "
                   "copied into --harbor-tasks.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file ([hints], [openai], [exports] reward_pass and pass_score).")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("-v", "--verbose", is_flag=True, help="Log every episode that failed.")
def hints_cmd(out, dest, max_tasks, offline, judge, group_by, harbor_dir, harbor_source, config_file, no_progress,
              verbose) -> None:
    """Learn per-task hints from OUT's graded agent episodes and write augmented tasks.

    Episodes are grouped by task; each episode's hints (tools with purpose and an example
    call, strategy steps, pitfalls, success criteria) are extracted once, by the LLM judge
    client (strict JSON schema; its rate limits, retries, cache and openai.max_cost_usd
    budget) or offline, and cached in OUT/hints/cache.sqlite, so a re-run sends no
    request for them. A task's hints are aggregated from its episodes (success decided by
    the reward where there is one, else the judge's score) and written as JSONL rows
    {task_id, task, hints, augmented_task, episodes}: the task followed by a "# Hints"
    section. Hints never see the grader's output or reference actions.

    \b
    Exit codes: 0 ok; 1 some episodes failed (they are tried again next run); 2 usage or
    configuration error; 3 no graded agent episode in OUT; 4 run budget spent (the rest
    is left for the next run).
    """
    from ..hints import run_hints

    extra = {"hints": {"group_by": list(group_by)}} if group_by else None
    cfg = _build_config(config_file, None, judge, None, extra)
    if not offline:
        _check_judge(cfg)
    _setup(cfg, verbose, quiet_default=True)
    client = _client(cfg, offline, cfg.hints.mode, "hints")
    click.echo(f"streamgrade: hints from {out}; " + (judge_line(cfg) if client else "offline extraction"), err=True)
    t0 = time.monotonic()

    async def go():
        with _Bar("hints", not no_progress) as bar:
            try:
                return await run_hints(out, cfg, judge=client, dest=dest, max_tasks=max_tasks, harbor_dir=harbor_dir,
                                       harbor_source=harbor_source,
                                       on_progress=lambda r: bar.update(r.done, r.episodes, r.usage))
            finally:
                if client is not None:
                    await client.aclose()

    try:
        run = anyio.run(go)
    except OSError as exc:
        click.echo(f"streamgrade: cannot write the hints of {out}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    rep = run.report
    if not rep.episodes:
        click.echo(f"streamgrade: no graded agent episode in {out} ({rep.recordings} recordings: see "
                   f"`streamgrade augment`; {rep.not_graded} not graded)", err=True)
        sys.exit(EXIT_NOTHING)
    click.echo(f"streamgrade: {run.written} augmented tasks of {run.tasks} ({run.episodes} episodes read: "
               f"{run.extracted} extracted, {run.cached} cached, {len(run.failed)} failed, {run.budget_pending} left "
               f"by the budget); {run.mode}; {_usage_line(run.usage)}; {time.monotonic() - t0:.1f} s; "
               f"wrote {run.path}", err=True)
    if run.harbor:
        click.echo(f"streamgrade: {len(run.harbor)} Harbor task folders under {harbor_dir}", err=True)
    for sid, reason in run.failed[:10]:
        click.echo(f"  failed {sid}: {reason}", err=True)
    code = EXIT_FAILED if run.failed else EXIT_BUDGET if run.budget_pending else EXIT_OK
    sys.exit(code)


@main.command("augment")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--offline", is_flag=True, help="Template captions (the action, the focused window, key names) and "
                                              "measured screen changes, no LLM.")
@_judge_opt
@click.option("--force", is_flag=True, help="Augment sessions again that already are (same mode and version).")
@click.option("--max-sessions", type=click.IntRange(min=1), help="Only the first N recordings.")
@click.option("--config", "config_file", type=click.Path(dir_okay=False, path_type=Path),
              help="TOML config file ([augment], [frames], [openai]).")
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
def augment_cmd(out, offline, judge, force, max_sessions, config_file, no_progress, verbose) -> None:
    """Caption every action of OUT's recordings, with the state transition it caused and
    structured hints per session, into their results.json ("augment").

    For Clones desktop and web, OWA and DuckTrack sessions graded with frames: each step's
    frames before and after, sent to the LLM judge client in batches ([augment]
    batch_steps; at most max_requests a session), or offline: template captions from the
    action, the focused window and key names, and the measured pixel change. The
    computer-use export (export --format computer-use) then carries the captions as
    thoughts. Sessions already augmented are skipped (--force redoes them).

    \b
    Exit codes: 0 ok; 1 some sessions failed; 2 usage or configuration error, or OUT in use
    by a grade or watch (it holds OUT's lock); 3 no graded recording in OUT; 4 run budget
    spent.
    """
    from ..augment import run_augment

    cfg = _build_config(config_file, None, judge, None)
    if not offline:
        _check_judge(cfg)
    _setup(cfg, verbose, quiet_default=True)
    client = _client(cfg, offline, cfg.augment.mode, "augment")
    click.echo(f"streamgrade: augment {out}; " + (judge_line(cfg) if client else "offline templates"), err=True)
    t0 = time.monotonic()

    async def go():
        with _Bar("augment", not no_progress) as bar:
            try:
                return await run_augment(out, cfg, client, force=force, max_sessions=max_sessions,
                                         on_progress=lambda r: bar.update(r.augmented + r.cached + len(r.failed),
                                                                          r.sessions, r.usage))
            finally:
                if client is not None:
                    await client.aclose()

    from ..sinks.lock import OutputLocked

    try:
        run = anyio.run(go)
    except OutputLocked as exc:
        click.echo(f"streamgrade: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    except OSError as exc:
        click.echo(f"streamgrade: cannot augment {out}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    if not run.sessions:
        click.echo(f"streamgrade: no graded recording in {out} ({run.other_formats} sessions of other formats)", err=True)
        sys.exit(EXIT_NOTHING)
    click.echo(f"streamgrade: augmented {run.augmented} recordings of {run.sessions} ({run.cached} already, "
               f"{len(run.failed)} failed, {run.budget_pending} left by the budget): {run.actions} actions captioned, "
               f"{run.with_frames} with frames before and after; {run.mode}; {_usage_line(run.usage)}; "
               f"{time.monotonic() - t0:.1f} s", err=True)
    for sid, reason in run.failed[:10]:
        click.echo(f"  failed {sid}: {reason}", err=True)
    sys.exit(EXIT_FAILED if run.failed else EXIT_BUDGET if run.budget_pending else EXIT_OK)


__all__ = ["hints_cmd", "augment_cmd"]
