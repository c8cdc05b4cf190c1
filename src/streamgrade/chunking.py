"""Chunking: cut a session's rendered actions into chunks that fit the judge's budget.

Each action becomes one line ``[12.3s] click(640, 320)``; lines are packed in order into
chunks of at most ``max_tokens`` estimated tokens (characters / 4, the usual rule of thumb
for English and code with OpenAI tokenizers) and ``max_chars`` characters. A line longer than
the budget is cut with a marker rather than dropped. The judge summarises chunk by chunk with
a running summary, and the final verdict sees every chunk's summary.

Cap: the OpenAI judge sends one request per chunk plus one for the verdict, so a session
gets at most ``max_chunks`` chunks (``max_chunks + 1`` requests). A session that packs into
more is condensed, never cut silently (an 11 MB trajectory was 501 chunks, 502 requests):

1. lines are shortened to the longest length ``c`` (characters, at least
   :data:`MIN_LINE_CHARS` = 240) at which all of them provably fit, each cut one ending in
   ``…[cut]``; the leading system prompt (an agent's policy) keeps its length;
2. if they do not fit even at 240, they are cut to 240 and the middle is elided: as many
   lines as fit are kept from the head and from the tail (half the room each) around one
   marker line ``[... 1,234 messages omitted (chunking.max_chunks) ...]`` ("actions" for
   recordings).

Condensed chunks carry ``line_chars`` (``c``) and, in the marker's chunk, ``omitted``; the
session gets ``meta["chunking"]`` (written to results.json) and a warning is logged naming
it. Cost: the rendering dominates, linear in the session's size (about 60 ms for an 11 MB
trajectory, 5-15 ms of it condensing).
"""

from __future__ import annotations

import bisect
import logging
from itertools import accumulate

from .config import ChunkingConfig
from .models import Chunk, Session
from .sft import render_action, render_chat_message

log = logging.getLogger("streamgrade.chunking")

#: Shortest length (characters) a line is shortened to before lines are omitted instead
#: (a quarter of the chunk budget when that is less).
MIN_LINE_CHARS = 240


def _min_line(limit: int) -> int:
    return min(MIN_LINE_CHARS, max(16, limit // 4))

_CUT = " …[cut]"


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text``: ceil(chars / 4)."""
    return (len(text) + 3) // 4


def action_lines(session: Session) -> list[tuple[int, str]]:
    """(t_ms, line) for each action, the line prefixed with its time in seconds. For agent
    trajectories, (0, line) for each transcript message after the first user message (which
    is the task; game episodes keep it: there it is the first observation), prefixed with
    its message index: their chunks have no times."""
    if session.has_transcript:
        first_user = -1 if session.kind == "episode" else next(
            (i for i, m in enumerate(session.transcript) if m.role == "user"), -1)
        # the system prompt (an agent's policy) is kept whole up to the chunk cap: adherence
        # to it is graded; other messages are cut at 4,000 characters
        return [(0, f"[{i}] {render_chat_message(m, 12000 if m.role == 'system' else 4000)}")
                for i, m in enumerate(session.transcript) if i != first_user]
    return [(a.t_ms, f"[{a.t_ms / 1000:.1f}s] {render_action(a)}") for a in session.actions]


def _leading_system(session: Session) -> int:
    """How many of :func:`action_lines` are the leading system prompt(s) (kept whole when
    condensing)."""
    if not session.has_transcript:
        return 0
    n = 0
    for m in session.transcript:
        if m.role != "system":
            break
        n += 1
    return n


def _cut(line: str, n: int, mark: str) -> str:
    """``line`` cut to at most ``n`` characters, ending in ``mark`` when cut."""
    return line if len(line) <= n else line[: max(0, n - len(mark))] + mark


def _pack(lines: list[tuple[int, str]], limit: int) -> list[list[tuple[int, str]]]:
    """Lines in order into groups of at most ``limit`` characters (newlines counted)."""
    groups: list[list[tuple[int, str]]] = [[]]
    size = 0
    for t, line in lines:
        if groups[-1] and size + len(line) + 1 > limit:
            groups.append([])
            size = 0
        groups[-1].append((t, line))
        size += len(line) + 1
    return groups


def chunk_session(session: Session, cfg: ChunkingConfig) -> list[Chunk]:
    """The session's action lines packed into at most ``cfg.max_chunks`` chunks (see the
    module docstring). A session with no actions gives one empty chunk, so that the judge
    still sees the task. A condensed session also gets ``session.meta["chunking"]`` =
    ``{max_chunks, uncapped_chunks, lines, line_chars, omitted}`` (counts of lines; chars)."""
    limit = min(cfg.max_chars, cfg.max_tokens * 4)
    lines = [(t, line if len(line) <= limit else line[: max(0, limit - 13)] + " …[line cut]")
             for t, line in action_lines(session)]
    groups = _pack(lines, limit)
    if len(groups) <= cfg.max_chunks:
        session.meta.pop("chunking", None)  # from an earlier call with a smaller cap
        return _chunks(session, groups)
    uncapped = len(groups)
    noun = "messages" if session.has_transcript else "actions"
    pinned = _leading_system(session)
    c = _fitting_cap(lines, pinned, limit, cfg.max_chunks)
    omitted, at = 0, -1
    if c is not None:
        short = lines[:pinned] + [(t, _cut(line, c, _CUT)) for t, line in lines[pinned:]]
        groups = _pack(short, limit)
    if c is None or len(groups) > cfg.max_chunks:
        c = _min_line(limit)
        short = lines[:pinned] + [(t, _cut(line, c, _CUT)) for t, line in lines[pinned:]]
        groups, omitted, at = _elide(short, limit, cfg.max_chunks, noun)
    chunks = _chunks(session, groups)
    for ch in chunks:
        ch.line_chars = c
    if omitted:
        chunks[at].omitted = omitted
    session.meta["chunking"] = {"max_chunks": cfg.max_chunks, "uncapped_chunks": uncapped, "lines": len(lines),
                                "line_chars": c, "omitted": omitted}
    log.warning("session %s: %d chunks over chunking.max_chunks = %d; condensed to %d: lines cut to %d characters, "
                "%d of %d %s omitted", session.ref.session_id, uncapped, cfg.max_chunks, len(chunks), c, omitted,
                len(lines), noun, extra={"session": session.ref.session_id, "file": session.ref.path})
    return chunks


def _fitting_cap(lines: list[tuple[int, str]], pinned: int, limit: int, max_chunks: int) -> int | None:
    """The longest line length ``c`` (chars, :func:`_min_line` to ``limit``) at which the
    lines, all but the first ``pinned`` cut to ``c``, pack into at most ``max_chunks``
    chunks; None when even the shortest is too long.

    Greedy packing closes a chunk only when the next line does not fit, so every closed
    chunk holds more than ``limit - c - 1`` characters, except before a pinned line (one
    each): ``total(c) <= (max_chunks - pinned) * (limit - c - 1)`` guarantees the cap.
    ``total(c)`` comes from the sorted lengths and their prefix sums (O(log n) each)."""
    room = max_chunks - pinned
    if room <= 0:
        return None
    fixed = sum(len(line) + 1 for _, line in lines[:pinned])
    lens = sorted(len(line) for _, line in lines[pinned:])
    prefix = [0, *accumulate(lens)]

    def fits(c: int) -> bool:
        k = bisect.bisect_right(lens, c)  # lines not longer than c keep their length
        total = fixed + prefix[k] + (len(lens) - k) * c + len(lens)
        return total <= room * (limit - c - 1)

    lo, hi = _min_line(limit), limit
    if not fits(lo):
        return None
    while lo < hi:  # largest c that fits
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _elide(lines: list[tuple[int, str]], limit: int, max_chunks: int,
           noun: str) -> tuple[list[list[tuple[int, str]]], int, int]:
    """Keep the head and the tail of ``lines`` (half the room each) around a marker line
    naming how many were left out, packed into at most ``max_chunks`` groups of ``limit``
    characters; returns (groups, omitted, index of the group holding the marker). The room
    (characters) starts at the whole budget, ``max_chunks * limit``, and shrinks in
    proportion to the excess (at least 2 %) until the packing fits: once or twice."""
    n = len(lines)
    reserve = len(f"[... {n:,} {noun} omitted (chunking.max_chunks) ...]") + 1
    room = max_chunks * limit
    while True:
        half = (room - reserve) // 2
        head, used = 0, 0
        while head < n and used + len(lines[head][1]) + 1 <= half:
            used += len(lines[head][1]) + 1
            head += 1
        tail, used_t = 0, 0
        while tail < n - head and used_t + len(lines[n - 1 - tail][1]) + 1 <= room - reserve - used:
            used_t += len(lines[n - 1 - tail][1]) + 1
            tail += 1
        omitted = n - head - tail
        if omitted:
            marker = (lines[head][0], _cut(f"[... {omitted:,} {noun} omitted (chunking.max_chunks) ...]", limit, ""))
            kept = lines[:head] + [marker] + lines[n - tail:]
        else:  # all fit after all (a loose budget): the loop shrinks the room if they do not
            kept = lines
        groups = _pack(kept, limit)
        if len(groups) <= max_chunks or (head == 0 and tail == 0):
            break
        room = int(room * min(0.98, max_chunks / len(groups)))
    i, at = 0, 0
    for gi, g in enumerate(groups):
        if omitted and i <= head < i + len(g):
            at = gi
        i += len(g)
    return groups, omitted, at


def _chunks(session: Session, groups: list[list[tuple[int, str]]]) -> list[Chunk]:
    total = len(groups)
    chunks = []
    for i, g in enumerate(groups):
        text = "\n".join(line for _, line in g)
        start = g[0][0] if g else 0
        end = g[-1][0] if g else int((session.duration_s or 0) * 1000)
        chunks.append(Chunk(index=i, total=total, start_ms=start, end_ms=end, lines=[l for _, l in g], tokens=estimate_tokens(text)))
    return chunks
