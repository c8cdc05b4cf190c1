"""Running the pipeline for ``grade`` and ``watch``: the judge, the output lock, the source
(scan or watch), signals (SIGINT/SIGTERM drain, a second one aborts), systemd notify and the
progress display."""

from __future__ import annotations

import logging
import signal
import sys
from pathlib import Path

import anyio
import click

from ..config import Config
from ..errors import ConfigError
from ..judges import make_judge
from ..engines import make_pipeline
from ..pipeline import RunStats, scan_source
from ..sinks.jsonl import ExportMismatch
from ..sinks.lock import OutputLocked
from ..sources.scan import ScanReport
from ..summary import EXIT_USAGE, Progress

log = logging.getLogger("streamgrade.cli")


async def _run(cfg: Config, paths: list[Path], *, watch: bool, progress: bool,
               verbose: bool = False, engine: str = "local") -> tuple[RunStats, str | None, bool]:
    """Run the pipeline on ``engine`` (:mod:`streamgrade.engines`); returns (stats, the name
    of the signal that stopped it or None, whether a second signal aborted the drain)."""
    try:
        judge = make_judge(cfg)
    except ConfigError as exc:
        click.echo(f"streamgrade: configuration error: {exc}", err=True)
        sys.exit(EXIT_USAGE)
    out = Path(cfg.run.output)
    display = Progress(judge.info.kind) if progress else None
    pipe = make_pipeline(engine, cfg, out, judge, on_record=display.update if display else None,
                         rebuild_when_idle=watch)
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
    if engine != "local":
        click.echo(f"streamgrade: {pipe.describe()}", err=True)
    report = pipe.stats.scan = ScanReport(verbose=verbose)
    exclude = [out]
    notifier = None
    if watch:
        from ..sdnotify import Notifier
        from ..sources.watch import watch_source

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
                from ..daemon import stuck_after_for, supervise
                from ..sdnotify import watchdog_interval

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


