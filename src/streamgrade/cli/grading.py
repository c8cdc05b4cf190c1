"""``grade``, ``watch``, ``repair`` and ``report``: the commands that write an output folder."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import anyio
import click

from ..engines import ENGINES
from ..sinks.lock import OutputLocked
from ..summary import EXIT_OK, EXIT_USAGE, clean, exit_code, finish, judge_line, print_summary, training_lines
from ._app import _build_config, _calibration, _check_judge, _check_paths, _setup, common_options, main
from ._run import _run

log = logging.getLogger("streamgrade.cli")


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options
@click.option("--no-progress", is_flag=True, help="Do not show the progress bar.")
@click.option("--strict", is_flag=True, help="Exit 6 when some files were not recognised by any format.")
@click.option("--labels", "labels", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth to join to the sessions (repeatable): a SWE-bench report, a Terminal-Bench "
                   "results.json, or a JSON/JSONL/CSV of id to reward or bool ([labels] in the config).")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path),
              help="Calibration model from `streamgrade calibrate`: writes p_success (0-1) into every graded "
                   "record ([calibration] file).")
@click.option("--batch", is_flag=True,
              help="Grade through the judge's Batch API at half the token price (openai: OpenAI Batch; anthropic: "
                   "Message Batches; results within 24 h, resumable after a stop or a crash). Sets [openai] or "
                   "[anthropic] mode = \"batch\"; see [batch] in the config.")
@click.option("--engine", type=click.Choice(ENGINES), default="local", show_default=True,
              help="Where sessions are assembled and graded: local (this process) or ray (a Ray Data actor "
                   "pool; needs pip install 'streamgrade[ray]'). Output, ledger and exports stay on this machine.")
@click.option("--ray-address", metavar="ADDR",
              help="With --engine ray: the Ray cluster to join (auto, HOST:6379, ray://HOST:10001). Default: a "
                   "private Ray for this run, on 127.0.0.1 only ([ray] address).")
@click.option("--ray-actors", type=click.IntRange(min=1), metavar="N",
              help="With --engine ray: grading actors; the provider's rpm/tpm/budget are divided among them "
                   "([ray] actors).  [default: 2]")
def grade(paths, output, judge, config_file, log_format, verbose, no_progress, strict, labels, calibration,
          batch, engine, ray_address, ray_actors) -> None:
    """Grade every session found under PATHS, then exit.

    Sessions already graded with unchanged files are skipped, so a re-run only grades what
    is new or changed. The summary counts every session found, those that failed (in this
    run, or earlier with unchanged input), and the files no format recognised, with the
    reason. One process at a time may write an output folder.

    \b
    Exit codes: 0 all graded or ungradable; 1 some failed (now or earlier); 2 usage or
    configuration error, output folder in use or in need of `streamgrade repair`; 4 run budget spent;
    5 no session found; 6 unrecognised files with --strict; 130 interrupted (SIGINT or
    SIGTERM: what was in flight is finished, the rest is pending for the next run).

    With --batch, requests go to the provider in batches (sessions of several chunks in
    rounds, one batch per chunk step); a stop or a crash leaves the batches running at the
    provider, and the same command later picks them up without paying twice.
    """
    if engine != "ray" and (ray_address or ray_actors):
        click.echo("streamgrade: --ray-address and --ray-actors need --engine ray", err=True)
        sys.exit(EXIT_USAGE)
    cfg = _build_config(config_file, output, judge, log_format,
                        {**_calibration(calibration), "ray": {"address": ray_address, "actors": ray_actors}},
                        labels=labels)
    _check_judge(cfg)
    if batch:
        _use_batch(cfg)
    from ..judges import batch_mode

    if engine == "ray" and batch_mode(cfg):
        click.echo("streamgrade: batch mode runs on the local engine (one collector submits the batches); "
                   "drop --engine ray, or set mode = \"sync\"", err=True)
        sys.exit(EXIT_USAGE)
    _setup(cfg, verbose, quiet_default=True)
    paths = _check_paths(paths)
    click.echo(f"streamgrade: {judge_line(cfg)}", err=True)
    t0 = time.monotonic()
    stats, signalled, _ = anyio.run(lambda: _run(cfg, paths, watch=False, progress=not no_progress, verbose=verbose,
                                                 engine=engine))
    print_summary(stats, cfg, time.monotonic() - t0, signal_name=signalled, verbose=verbose)
    training_lines(stats, verbose)
    finish(exit_code(stats, signalled=signalled is not None, strict=strict))


def _use_batch(cfg) -> None:
    """``--batch``: batch mode for the judge in use; exit 2 when it is the heuristic."""
    from ..judges import resolve_kind

    kind = resolve_kind(cfg)
    if kind not in ("openai", "anthropic"):
        click.echo(f"streamgrade: --batch needs an LLM judge with a Batch API (--judge openai or anthropic, with its "
                   f"key or base URL); the judge in use is {kind}", err=True)
        sys.exit(EXIT_USAGE)
    getattr(cfg, kind).mode = "batch"


@main.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@common_options
@click.option("--settle", "settle_s", type=float,
              help="Seconds a session's files must stay unchanged before it is graded.  [default: 5]")
@click.option("--labels", "labels", multiple=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Ground truth to join to the sessions (repeatable; see grade --help).")
@click.option("--calibration", type=click.Path(dir_okay=False, path_type=Path),
              help="Calibration model: p_success in every graded record (see grade --help).")
@click.option("--metrics-port", type=click.IntRange(0, 65535),
              help="Serve Prometheus metrics on /metrics and health on /healthz at this port; 0 = off "
                   "([metrics] port).  [default: 0]")
@click.option("--metrics-host",
              help="Address the metrics endpoint binds; 0.0.0.0 or :: lets other hosts scrape "
                   "([metrics] host).  [default: 127.0.0.1]")
@click.option("--batch", is_flag=True, hidden=True)
def watch(paths, output, judge, config_file, log_format, verbose, settle_s, labels, calibration, metrics_port,
          metrics_host, batch) -> None:
    """Grade what is under PATHS, then watch for new or changed sessions until SIGINT/SIGTERM.

    Each session is graded once its files have not changed for the settle time, and logged
    in one line; every row of a multi-session file (JSONL) is a session of its own, and a
    file that grows by appends has only its new rows graded. On SIGINT/SIGTERM it stops
    taking sessions, finishes those in flight and exits 0 (a second signal, or in-flight
    work outlasting the drain timeout, exits 130; the rest stays pending for the next run).

    With --metrics-port N, http://127.0.0.1:N/metrics serves Prometheus metrics (sessions by
    status and format, in flight, queue depths, judge and end-to-end latency, 429s,
    retries, tokens, cost, progress age) and /healthz answers 200, or 503 when sessions
    are in flight and none completed for longer than the watchdog allows. Exit 2 when the
    port cannot be bound.

    Batch mode is refused here (exit 2): it is for ``grade``.
    """
    cfg = _build_config(config_file, output, judge, log_format,
                        {"watch": {"settle_s": settle_s}, "metrics": {"port": metrics_port, "host": metrics_host},
                         **_calibration(calibration)},
                        labels=labels)
    _check_judge(cfg)
    from ..judges import batch_mode

    if batch or batch_mode(cfg):
        click.echo("streamgrade: watch grades each session as it settles, so it does not use batch mode (batches "
                   "return within 24 h); use `streamgrade grade --batch` for a backlog, and mode = \"sync\" in "
                   "[openai]/[anthropic] for watch", err=True)
        sys.exit(EXIT_USAGE)
    _setup(cfg, verbose, quiet_default=False)
    paths = _check_paths(paths)
    log.info("%s", judge_line(cfg))
    t0 = time.monotonic()
    stats, _, interrupted = anyio.run(lambda: _run(cfg, paths, watch=True, progress=False, verbose=verbose))
    print_summary(stats, cfg, time.monotonic() - t0, verbose=verbose)
    finish(130 if interrupted or stats.drain_timed_out else EXIT_OK)


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
    from ..sinks.repair import repair

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


@main.command("report")
@click.argument("out", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--session", "session_ids", multiple=True, metavar="ID",
              help="Build only this session's pages (repeatable).")
@click.option("--force", is_flag=True, help="Rebuild every page, even those up to date.")
def report_cmd(out, session_ids, force) -> None:
    """Build OUT's HTML pages: each session's results.html and sft.html, then index.html.

    Grading does not build the session pages (about 2 ms of CPU each; [reports]
    session_pages = "live" builds them during the run instead): this command builds
    those missing or older than their session's result, for sessions with a folder and
    for those in the session store ([sinks] session_files), so running it again is quick.
    It may run while a grade or watch writes OUT. Exit code 0 when every page was
    written, 1 when some could not be (listed), 2 when OUT cannot be read.
    """
    from ..sinks.report import build_reports

    t0 = time.monotonic()
    try:
        res = build_reports(out, session_ids=list(session_ids) or None, force=force)
    except OSError as exc:
        click.echo(f"streamgrade: cannot read {out}: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(f"streamgrade: report of {out}: pages built for {res.built} sessions, {res.up_to_date} up to date, "
               f"{len(res.failed)} failed, in {time.monotonic() - t0:.1f} s; index: {res.index}", err=True)
    for sid, err in res.failed[:20]:
        click.echo(f"  {clean(sid)}: {clean(err)}", err=True)
    if len(res.failed) > 20:
        click.echo(f"  ... and {len(res.failed) - 20} more", err=True)
    if session_ids:
        found = res.built + res.up_to_date + len(res.failed)
        if found < len(set(session_ids)):
            click.echo(f"streamgrade: {len(set(session_ids)) - found} of the sessions named were not found in {out}",
                       err=True)
    sys.exit(1 if res.failed else EXIT_OK)
