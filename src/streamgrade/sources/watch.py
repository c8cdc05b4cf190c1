"""Watch folders: scan once, then grade each new or changed session after it settles.

File events come from watchfiles (Rust notify: inotify on Linux, polling where asked);
each changed path is mapped to the session(s) it belongs to, and a :class:`Settler` holds
them until their files were quiet for ``watch.settle_s`` seconds. The initial scan puts a
session whose newest file is younger than the settle time into the settler too, so a
session still being copied when the daemon starts is not graded half-written.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import AsyncIterator, Callable, Iterable

import aiofiles.os
import anyio
from anyio.abc import ObjectSendStream

from ..config import WatchConfig
from ..models import SessionRef
from ..formats.explain import explain
from .scan import ScanReport, claimed_in_folder, find_in_folder, in_owned_tree, list_folder, scan, with_fingerprint
from .settle import Settler

log = logging.getLogger("streamgrade.watch")

Watcher = Callable[[list[Path], anyio.Event], AsyncIterator[set[tuple[object, str]]]]


def default_watcher(cfg: WatchConfig) -> Watcher:
    """watchfiles.awatch over the paths, stopped by the event."""

    def watch(paths: list[Path], stop: anyio.Event) -> AsyncIterator[set[tuple[object, str]]]:
        from watchfiles import awatch

        return awatch(*paths, stop_event=stop, force_polling=cfg.force_polling or None,
                      poll_delay_ms=cfg.poll_delay_ms, step=20, rust_timeout=250, recursive=True)

    return watch


def refs_for_change(path: str | Path, *, exclude: Iterable[str] = (),
                    report: ScanReport | None = None) -> list[SessionRef]:
    """The sessions a changed path belongs to: a new folder is scanned, a file maps to the
    sessions of its folder that read it (or that its folder is). A file that belongs to no
    session (and is not inside a session's folder) goes into ``report`` with the reason."""
    p = Path(os.path.abspath(path))
    real = os.path.realpath(p)
    if any(real == e or real.startswith(e + os.sep) for e in exclude):
        return []
    if p.is_dir():
        return [r for r in scan([p], exclude=exclude, report=report)]
    folder = p.parent
    if in_owned_tree(folder):
        return []  # a file under a session folder that owns its tree: no session of its own
    try:
        _, names, other = list_folder(folder)  # regular files only: a FIFO is never opened
    except OSError:
        return []
    found = find_in_folder(folder, names)
    refs = [r for r in found if str(p) in r.files or r.path == str(p)]
    if not refs and report is not None:
        kind = dict(other).get(p.name)
        if kind is not None:
            report.add(str(p), lambda: kind)
        elif p.name in names and str(p) not in claimed_in_folder(folder, names, found) \
                and not _in_session_folder(folder, found):
            report.add(str(p), lambda: explain(folder, p.name, names))
    return refs


def _in_session_folder(folder: Path, found: list[SessionRef]) -> bool:
    """Whether ``folder`` is a session's folder, or the direct child of one (a Harbor
    trial's ``agent/``): its files belong to that session."""
    if any(r.path == str(folder) for r in found):
        return True
    parent = folder.parent
    try:
        _, names, _ = list_folder(parent)
    except OSError:
        return False
    return any(r.path == str(parent) for r in find_in_folder(parent, names))


async def _newest_mtime(ref: SessionRef) -> float | None:
    newest = None
    for f in ref.files:
        try:
            st = await aiofiles.os.stat(f)
        except OSError:
            continue
        newest = st.st_mtime if newest is None else max(newest, st.st_mtime)
    return newest


async def watch_source(
    paths: list[Path],
    send: ObjectSendStream[SessionRef],
    cfg: WatchConfig,
    *,
    exclude: Iterable[str | Path] = (),
    watcher: Watcher | None = None,
    clock: Callable[[], float] = time.monotonic,
    on_ready: Callable[[], None] | None = None,
    report: ScanReport | None = None,
) -> None:
    """The watch source actor: sends each settled session's ref (with its fingerprint) to
    ``send`` until cancelled. ``watcher`` and ``clock`` are injectable for tests;
    ``on_ready`` is called once the initial scan has started; files the initial scan did not
    recognise go into ``report``, and files that appear later and belong to no session are
    logged once each (``not recognised: <reason>``)."""
    excl = [os.path.realpath(e) for e in exclude]
    settler = Settler(cfg.settle_s)
    watcher = watcher or default_watcher(cfg)
    stop = anyio.Event()
    async with send:
        if on_ready:
            on_ready()
        refs = await anyio.to_thread.run_sync(lambda: list(scan(paths, exclude=excl, report=report)),
                                              abandon_on_cancel=True)
        for ref in refs:
            newest = await _newest_mtime(ref)
            age = time.time() - newest if newest is not None else cfg.settle_s
            if age >= cfg.settle_s:
                await send.send(ref)
            else:
                settler.touch(ref, clock() - age)
        log.info("initial scan: %d sessions; watching %s", len(refs), ", ".join(map(str, paths)))

        wake = anyio.Event()
        later = ScanReport(keep=0, verbose=True, once=True)  # logs each new unrecognised file once

        async def pump() -> None:
            async for changes in watcher(paths, stop):
                now = clock()
                for _, changed in changes:
                    for ref in await anyio.to_thread.run_sync(
                            lambda c=changed: refs_for_change(c, exclude=excl, report=later), abandon_on_cancel=True):
                        settler.touch(ref, now)
                wake.set()

        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(pump)
                while True:
                    nxt = settler.next_due()
                    timeout = 1.0 if nxt is None else max(0.0, nxt - clock())
                    with anyio.move_on_after(timeout):
                        await wake.wait()
                    wake = anyio.Event()
                    for ref in settler.due(clock()):
                        await send.send(with_fingerprint(ref))
        finally:
            stop.set()
