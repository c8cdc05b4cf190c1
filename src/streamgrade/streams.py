"""Helpers for the pipeline's bounded anyio memory object streams: how many items one thread
hand-off carries (:data:`HANDOFF`) and taking what is already waiting without waiting."""

from __future__ import annotations

import anyio
from anyio.abc import ObjectReceiveStream

#: Most items one thread hand-off carries (assembly, file writes, scanned refs): a hand-off
#: costs a wake-up and GIL exchanges on the event loop's thread, worth more than the work
#: of a small session.
HANDOFF = 8


def waiting(recv: ObjectReceiveStream, n: int) -> list:
    """Up to ``n`` items already waiting in ``recv`` (never waits; an ended stream gives
    what it had)."""
    out = []
    while len(out) < n:
        try:
            out.append(recv.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return out


__all__ = ["HANDOFF", "waiting"]
