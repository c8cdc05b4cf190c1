"""What ``grade`` and ``watch`` tell the user: the progress bar, the end-of-run summary and
the exit code. The summary never hides anything: sessions that failed now or earlier, what
was left pending by a stop, files no format recognised (with the reason), and a run that
found nothing lists the supported formats.

Exit codes (also in ``streamgrade --help``):

====  ==================================================================================
0     every session found is graded, or ungradable (nothing to judge: not a failure)
1     some sessions failed, in this run or earlier (unchanged since)
2     usage or configuration error, the output folder is in use or needs repair
3     ``export``: nothing passed the filters
4     the run budget (``openai.max_cost_usd``) was spent; the rest is pending
5     no session was found under the paths
6     ``--strict``: some files were not recognised by any format
130   interrupted (SIGINT/SIGTERM) before the work was done; the rest is pending
====  ==================================================================================
"""

from __future__ import annotations

import sys

import click

from .config import Config
from .logs import escape_controls
from .pipeline import RunStats

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_NOTHING, EXIT_BUDGET = 0, 1, 2, 3, 4
EXIT_NO_SESSIONS, EXIT_UNRECOGNISED, EXIT_INTERRUPTED = 5, 6, 130

def clean(text: object) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``; see
    :func:`streamgrade.logs.escape_controls`), so that a session id or an error quoting
    untrusted input prints on one line and cannot forge another."""
    return escape_controls(str(text))


def exit_code(stats: RunStats, *, signalled: bool, strict: bool) -> int:
    """The exit code of a ``grade`` run (see the module docstring); the first that applies
    of: interrupted, failed, budget, no session, unrecognised with ``strict``."""
    if signalled:
        return EXIT_INTERRUPTED
    if stats.failed or stats.failed_earlier:
        return EXIT_FAILED
    if stats.budget_pending:
        return EXIT_BUDGET
    if stats.found == 0:
        return EXIT_NO_SESSIONS
    if strict and stats.scan.unrecognised:
        return EXIT_UNRECOGNISED
    return EXIT_OK


def judge_line(cfg: Config) -> str:
    """Which judge grades, in one line."""
    from .judges import resolve_kind

    kind = resolve_kind(cfg)
    batch = ""
    if kind in ("openai", "anthropic") and getattr(cfg, kind).mode == "batch":
        batch = f", batch mode at {cfg.batch.price_factor:.0%} of list price"
    if kind == "anthropic":
        return f"judge: anthropic, model {cfg.anthropic.model} at {cfg.anthropic.base_url}{batch}"
    if kind == "openai":
        return f"judge: openai, model {cfg.openai.model} at {cfg.openai.base_url or 'https://api.openai.com/v1'}{batch}"
    return "judge: heuristic (offline baseline; set STREAMGRADE_BASE_URL or an API key for the LLM judge)"


def _echo(text: str) -> None:
    click.echo(text, err=True)


def print_summary(stats: RunStats, cfg: Config, elapsed: float, *, signal_name: str | None = None,
                  verbose: bool = False) -> None:
    """The end-of-run summary on stderr (see the module docstring)."""
    parts = [f"{stats.graded} graded", f"{stats.failed} failed"]
    if stats.ungradable:
        parts.append(f"{stats.ungradable} ungradable (nothing to judge; not retried)")
    if stats.failed_earlier:
        parts.append(f"{stats.failed_earlier} failed earlier (unchanged input)")
    parts.append(f"{stats.skipped} unchanged (skipped)")
    _echo(f"streamgrade: {', '.join(parts)} of {stats.found} found in {elapsed:.1f} s; {judge_line(cfg)}; "
          f"{stats.requests} requests, {stats.prompt_tokens + stats.completion_tokens} tokens, "
          f"${stats.cost_usd:.4f}; output: {clean(cfg.run.output)}")
    if stats.bytes_written:
        _echo(f"streamgrade: {bytes_line(stats)}")
    if stats.batch is not None:
        _batch_line(stats.batch, stats.cost_usd, cfg.batch.price_factor)
    if cfg.labels.files:
        _echo(f"streamgrade: {stats.labelled} sessions took their reward from the labels "
              f"({', '.join(map(clean, cfg.labels.files))}, joined by {cfg.labels.key})")
    if signal_name:
        _echo(f"streamgrade: interrupted by {signal_name}: the scan stopped before the end, so sessions not found "
              f"yet are not counted above; {stats.pending} sessions are pending in the ledger. "
              "Run the same command again to finish.")
    elif stats.pending and not stats.budget_pending:
        _echo(f"streamgrade: {stats.pending} sessions are pending in the ledger (left by a stop or a failed write, "
              "or their input is gone); the next run over their input grades them")
    if stats.budget_pending:
        _echo(f"streamgrade: run budget spent: {stats.budget_pending} sessions left pending "
              f"(raise openai.max_cost_usd and run again)")
    _failures("failed sessions", stats.failures, stats.failed)
    _failures("failed earlier, unchanged since (fix the input, or see scores.jsonl)", stats.earlier_failures,
              stats.failed_earlier)
    rep = stats.scan
    if rep.unrecognised:
        files = "file" if rep.unrecognised == 1 else "files"
        _echo(f"streamgrade: {rep.unrecognised} {files} not recognised by any format"
              + ("" if verbose else " (all of them with -v)") + ":")
        for path, why in rep.examples:
            _echo(f"  {clean(path)}: {clean(why)}")
        if rep.unrecognised > len(rep.examples):
            _echo(f"  ... and {rep.unrecognised - len(rep.examples)} more")
    if stats.found == 0 and not signal_name:
        from .formats.explain import formats_help

        _echo("streamgrade: no session found. Supported formats (see README.md, Input formats):\n" + formats_help())


def human_bytes(n: float) -> str:
    """``n`` bytes as B, KB, MB or GB (powers of 1,000), e.g. ``3.9 KB``."""
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def bytes_line(stats: RunStats) -> str:
    """What the run wrote under the output folder: the total, per session done in this run
    (graded, ungradable or failed), and by kind (see :mod:`streamgrade.sinks.meter`; the
    ledger, which holds the session store, as its growth on disk)."""
    total = stats.bytes_total
    per = f", {human_bytes(total / stats.done)} per session" if stats.done else ""
    kinds = sorted(stats.bytes_written.items(), key=lambda kv: -kv[1])
    names = {"ledger": "ledger and session store (growth)"}
    return (f"wrote {human_bytes(total)} ({total} bytes){per}: "
            + ", ".join(f"{names.get(k, k)} {human_bytes(v)}" for k, v in kinds))


def _batch_line(snap: dict, cost_usd: float, factor: float) -> None:
    """Batch mode's line: the batches (ids), requests submitted, answered from the ledger,
    resumed, and the cost at the batch price."""
    ids = snap.get("batches") or []
    shown = ", ".join(map(clean, ids[:5])) + (f", ... ({len(ids) - 5} more)" if len(ids) > 5 else "")
    line = (f"streamgrade: batch mode ({clean(snap.get('provider', ''))}): {len(ids)} batches"
            + (f" ({shown})" if ids else "") + f", {snap.get('submitted', 0)} requests submitted")
    if snap.get("from_ledger"):
        line += f", {snap['from_ledger']} answered from results stored in the ledger"
    if snap.get("resumed"):
        line += f", {snap['resumed']} batches resumed from an earlier run"
    if snap.get("recovered"):
        line += f" ({snap['recovered']} found by their metadata after a lost create)"
    _echo(line + f"; cost ${cost_usd:.4f} at the batch price ({factor:.0%} of list)")
    open_ = snap.get("open") or {}
    if open_ or snap.get("queued"):
        _echo(f"streamgrade: {sum(open_.values())} batches still open at the provider; the next run picks them up")


def _failures(title: str, items: list[tuple[str, str]], total: int) -> None:
    if not total:
        return
    _echo(f"{title}:")
    for sid, err in items[:50]:
        _echo(f"  {clean(sid)}: {clean(err)}")
    if total > 50:
        _echo(f"  ... and {total - 50} more (see scores.jsonl, status \"failed\")")


class Progress:
    """The rich progress bar of ``grade``: sessions done/failed, requests/s, tokens, cost
    (shown only on a terminal); ``phase`` (batch mode) adds the collector's phase: collecting,
    submitting, in progress n of m done, downloading."""

    def __init__(self, judge_kind: str, phase=None):
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress as _Bar, TextColumn, TimeElapsedColumn

        self.console = Console(stderr=True)
        self.progress = _Bar(
            TextColumn("[bold]grading"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
            TimeElapsedColumn(), console=self.console, redirect_stderr=True, transient=False,
            disable=not self.console.is_terminal,
        )
        self.task = self.progress.add_task("grade", total=None, info="")
        self.stats: RunStats | None = None
        self.phase = phase  # () -> str: batch mode's phase line

    def start(self, stats: RunStats) -> None:
        self.stats = stats
        self.progress.start()

    def update(self, _record=None) -> None:
        st = self.stats
        if st is None:
            return
        info = (f"ok {st.graded} failed {st.failed} skipped {st.skipped} | {st.requests_per_s():.1f} req/s "
                f"| {st.prompt_tokens + st.completion_tokens:,} tok | ${st.cost_usd:.4f}")
        if self.phase is not None:
            info += f" | {self.phase()}"
        self.progress.update(self.task, completed=st.done, total=max(st.found - st.skipped, st.done) or None, info=info)

    def stop(self) -> None:
        self.update()
        self.progress.stop()


def finish(code: int) -> None:
    """Exit with ``code``. When a worker thread is still stuck in I/O (abandoned at the drain
    timeout: a hung mount), the interpreter would wait for it forever at exit; then the
    process ends at once, after flushing its output."""
    import logging
    import os
    import threading

    import time

    deadline = time.monotonic() + 1.0  # idle worker threads end on their own at once
    for t in threading.enumerate():
        if t is not threading.main_thread() and not t.daemon:
            t.join(max(0.0, deadline - time.monotonic()))
    stuck = [t for t in threading.enumerate() if t is not threading.main_thread() and t.is_alive() and not t.daemon]
    if stuck:
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)


def training_lines(stats: RunStats, verbose: bool = False) -> None:
    """What the rebuilt training files hold: rows per file, and how many sessions (or
    groups) were left out and why (the most common reasons; every reason with -v)."""
    for fmt, res in stats.training.items():
        where = res.path if res.rows else "(no file)"
        line = f"streamgrade: {fmt}: {res.rows} rows {where}"
        if res.reasons:
            shown = sorted(res.reasons.items(), key=lambda kv: -kv[1])
            line += "; left out: " + ", ".join(f"{k} ({n})" for k, n in (shown if verbose else shown[:3]))
            if len(shown) > 3 and not verbose:
                line += f", ... ({len(shown) - 3} more reasons with -v)"
        _echo(clean(line))
