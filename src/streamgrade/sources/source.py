"""What the pipeline takes sessions from: a :data:`Source` is an ``async`` callable that
sends :class:`~streamgrade.models.SessionRef` objects into the stream it is given and
closes it when it ends (cancelled to stop). :func:`scan_source` scans folders once (the
``grade`` command); :mod:`.watch` watches them (``watch``)."""

from __future__ import annotations

from pathlib import Path
from typing import Awaitable, Callable

import anyio
from anyio.abc import ObjectSendStream

from ..models import SessionRef
from ..streams import HANDOFF
from .scan import ScanReport, scan

Source = Callable[[ObjectSendStream[SessionRef]], Awaitable[None]]


def scan_source(paths: list[Path], *, exclude: list[str | Path] = (), report: ScanReport | None = None) -> Source:
    """A source that scans ``paths`` once (in a worker thread, one ref at a time, so that
    backpressure reaches the directory walk) and ends; files no format took go into
    ``report``."""

    async def source(send: ObjectSendStream[SessionRef]) -> None:
        async with send:
            async def send_all(refs: list[SessionRef]) -> None:
                for ref in refs:
                    await send.send(ref)

            def walk() -> None:
                batch: list[SessionRef] = []
                for ref in scan(paths, exclude=exclude, report=report):
                    batch.append(ref)
                    if len(batch) >= HANDOFF:  # one hand-off to the event loop a few refs
                        anyio.from_thread.run(send_all, batch)
                        batch = []
                if batch:
                    anyio.from_thread.run(send_all, batch)

            await anyio.to_thread.run_sync(walk, abandon_on_cancel=True)

    return source


__all__ = ["Source", "scan_source"]
