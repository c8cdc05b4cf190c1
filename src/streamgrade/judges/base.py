"""The judge protocol: every judge grades one assembled, chunked session into a Verdict."""

from __future__ import annotations

from typing import Protocol

from ..models import Chunk, JudgeInfo, Session, Verdict


class Judge(Protocol):
    """A judge. ``info`` names it in records; ``grade`` returns a :class:`Verdict` for
    ``session`` whose rendered actions are ``chunks`` (at least one chunk, possibly with no
    lines), or raises :class:`streamgrade.errors.JudgeError`; ``aclose`` frees clients.
    Judges never see ``session.reward``."""

    info: JudgeInfo

    async def grade(self, session: Session, chunks: list[Chunk]) -> Verdict: ...

    async def aclose(self) -> None: ...
