"""Settling: a session is graded only once its files stopped changing for a while."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..models import SessionRef


@dataclass
class Settler:
    """Holds sessions that changed until ``settle_s`` seconds pass with no further change.

    ``touch(ref, now)`` (re)starts the session's quiet period at ``now`` (seconds, any
    monotonic clock); ``due(now)`` pops and returns the sessions quiet for ``settle_s``;
    ``next_due()`` is the earliest deadline, or None. Keyed by the session's path and its
    locator inside a multi-session file (a row), so two refs of one session (before and
    after a file was added) are one entry, the newest kept, and every row of a file is an
    entry of its own.
    """

    settle_s: float
    _pending: dict[tuple[str, str], tuple[float, SessionRef]] = field(default_factory=dict)

    def touch(self, ref: SessionRef, now: float) -> None:
        self._pending[(ref.path, ref.locator)] = (now + self.settle_s, ref)

    def due(self, now: float) -> list[SessionRef]:
        ready = [path for path, (deadline, _) in self._pending.items() if deadline <= now]
        return [self._pending.pop(path)[1] for path in ready]

    def next_due(self) -> float | None:
        return min((d for d, _ in self._pending.values()), default=None)

    def __len__(self) -> int:
        return len(self._pending)
