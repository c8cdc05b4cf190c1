"""Chunking: cut a session's rendered actions into chunks that fit the judge's budget.

Each action becomes one line ``[12.3s] click(640, 320)``; lines are packed in order into
chunks of at most ``max_tokens`` estimated tokens (characters / 4, the usual rule of thumb
for English and code with OpenAI tokenizers) and ``max_chars`` characters. A line longer than
the budget is cut with a marker rather than dropped. The judge summarises chunk by chunk with
a running summary, and the final verdict sees every chunk's summary.
"""

from __future__ import annotations

from .config import ChunkingConfig
from .models import Chunk, Session
from .sft import render_action, render_chat_message


def estimate_tokens(text: str) -> int:
    """Estimated tokens of ``text``: ceil(chars / 4)."""
    return (len(text) + 3) // 4


def action_lines(session: Session) -> list[tuple[int, str]]:
    """(t_ms, line) for each action, the line prefixed with its time in seconds. For agent
    trajectories, (0, line) for each transcript message after the first user message (which
    is the task), prefixed with its message index: their chunks have no times."""
    if session.has_transcript:
        first_user = next((i for i, m in enumerate(session.transcript) if m.role == "user"), -1)
        # the system prompt (an agent's policy) is kept whole up to the chunk cap: adherence
        # to it is graded; other messages are cut at 4,000 characters
        return [(0, f"[{i}] {render_chat_message(m, 12000 if m.role == 'system' else 4000)}")
                for i, m in enumerate(session.transcript) if i != first_user]
    return [(a.t_ms, f"[{a.t_ms / 1000:.1f}s] {render_action(a)}") for a in session.actions]


def chunk_session(session: Session, cfg: ChunkingConfig) -> list[Chunk]:
    """The session's action lines packed into chunks (see module docstring). A session
    with no actions gives one empty chunk, so that the judge still sees the task."""
    limit = min(cfg.max_chars, cfg.max_tokens * 4)
    groups: list[list[tuple[int, str]]] = [[]]
    size = 0
    for t, line in action_lines(session):
        if len(line) > limit:
            line = line[: max(0, limit - 13)] + " …[line cut]"
        if groups[-1] and size + len(line) + 1 > limit:
            groups.append([])
            size = 0
        groups[-1].append((t, line))
        size += len(line) + 1
    total = len(groups)
    chunks = []
    for i, g in enumerate(groups):
        text = "\n".join(line for _, line in g)
        start = g[0][0] if g else 0
        end = g[-1][0] if g else int((session.duration_s or 0) * 1000)
        chunks.append(Chunk(index=i, total=total, start_ms=start, end_ms=end, lines=[l for _, l in g], tokens=estimate_tokens(text)))
    return chunks
