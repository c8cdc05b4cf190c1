"""Running the pipeline for ``grade`` and ``watch``: the judge, the output lock, the source
(scan or watch), signals (SIGINT/SIGTERM drain, a second one aborts), systemd notify, the
metrics endpoint (``watch``, ``[metrics] port``) and the progress display."""

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
from ..pipeline import Pipeline, RunStats, scan_source
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
    snapshot = getattr(judge, "snapshot", None)  # batch mode: the collector's phase
    phase = None
    if snapshot is not None:
        from ..judges.batch_collector import describe

        phase = lambda: describe(snapshot())  # noqa: E731
    display = Progress(judge.info.kind, phase=phase) if progress else None
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
    progress = server = None
    if watch:
        from ..daemon import ProgressWatch, stuck_after_for
        from ..sdnotify import Notifier
        from ..sources.watch import watch_source

        notifier = Notifier.from_env()  # systemd Type=notify; a no-op outside systemd
        # one notion of "stuck" for the watchdog pings and /healthz
        progress = ProgressWatch(pipe.stats, stuck_after=stuck_after_for(cfg))
        if cfg.metrics.port:
            server = await _serve_metrics(cfg, pipe, judge, progress)

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
                from ..daemon import supervise
                from ..sdnotify import watchdog_interval

                ping = watchdog_interval()
                tg.start_soon(lambda: supervise(pipe.stats, notifier, interval=ping or 5.0, watchdog=ping is not None,
                                                stuck_after=progress.stuck_after, stopping=lambda: pipe._stopping,
                                                progress=progress))
            if server is not None:
                tg.start_soon(_sample, progress)
            if display:
                display.start(pipe.stats)
                if phase is not None:
                    tg.start_soon(_tick, display)
            try:
                await pipe.run(source)
            finally:
                if display:
                    display.stop()
            tg.cancel_scope.cancel()
    finally:
        if snapshot is not None:
            pipe.stats.batch = snapshot()
        await judge.aclose()
        if notifier:
            notifier.close()
        if server is not None:
            server.close()
    return pipe.stats, signalled, interrupted


async def _serve_metrics(cfg: Config, pipe: Pipeline, judge, progress):
    """Start the metrics endpoint (:mod:`streamgrade.ops`) on ``[metrics] host:port``;
    exits 2 when it cannot bind (port in use, unknown address), releasing the output."""
    from ..ops import MetricsServer, PipelineMetrics

    metrics = PipelineMetrics(pipe, judge, progress)
    host, port = cfg.metrics.host, cfg.metrics.port
    try:
        server = MetricsServer(metrics.registry, metrics.health, host=host, port=port).start()
    except OSError as exc:
        pipe.close()
        await judge.aclose()
        click.echo(f"streamgrade: cannot serve metrics on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(EXIT_USAGE)
    log.info("metrics on %s/metrics, health on %s/healthz", server.url, server.url)
    return server


async def _sample(progress, interval: float = 1.0) -> None:
    """Look at the progress every ``interval`` s, so the progress age is exact to that
    (scrapes and the watchdog look too); until cancelled."""
    while True:
        progress.check()
        await anyio.sleep(interval)
async def _tick(display: Progress, every_s: float = 1.0) -> None:
    """Refresh the progress display while nothing is written (batch mode waits long)."""
    while True:
        await anyio.sleep(every_s)
        display.update()


