"""Preference pairs: best vs worst graded session of the same task, in TRL's conversational
shape and in OpenAI's preference fine-tuning shape.

- TRL (DPOTrainer, "conversational" preference datasets): ``{"prompt": [messages],
  "chosen": [messages], "rejected": [messages]}``. The prompt is the chosen trajectory up to
  and including its first user message (system kept); chosen and rejected are each
  trajectory's messages after its own first user message (trajectory-level preference).
- OpenAI (fine-tuning, method "dpo"): ``{"input": {"messages", "tools"?},
  "preferred_output": [one assistant message], "non_preferred_output": [one assistant
  message]}``. OpenAI takes a single assistant message per side, so the pair is cut at the
  first assistant turn where the two trajectories differ: the input is the chosen
  trajectory before that turn.

Pairs form within a group (same source format, task id or task text, and model), from the
highest and the lowest score, when they differ by at least the minimum gap.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from typing import Any

from .chatml import infer_tools
from .store import GradedSession


class PairError(ValueError):
    """Why a group gives no pair."""


def group_key(s: GradedSession) -> tuple[str, str, str]:
    """(format, task, model): pairs only ever form within one key."""
    return (s.record.get("source_format") or "", str(s.record.get("task_id") or s.task or ""), s.record.get("model") or "")


def pick_pair(group: list[GradedSession], min_gap: float) -> tuple[GradedSession, GradedSession]:
    """(best, worst) by score (ties: higher reward, then session id); PairError if the group
    has fewer than two or the gap is below ``min_gap``."""
    if len(group) < 2:
        raise PairError("fewer than two graded sessions")
    order = sorted(group, key=_rank)
    worst, best = order[0], order[-1]
    if best.score - worst.score < min_gap:
        raise PairError(f"score gap {best.score - worst.score:.1f} below {min_gap}")
    return best, worst


def _rank(s: GradedSession) -> tuple[float, float, str]:
    return (s.score, s.record.get("reward") or 0.0, s.session_id)


class PairPicker:
    """:func:`pick_pair` over a stream of sessions, grouped on disk: each session adds one
    row (group, score, reward, id) to a private temporary SQLite database (``sqlite3.connect
    ("")``: on disk, removed on close), and the best and worst of every group come from one
    windowed query, so memory stays flat however many sessions and groups there are."""

    _SEP = "\x1f"

    def __init__(self) -> None:
        self.db = sqlite3.connect("")
        self.db.execute("CREATE TABLE r (key TEXT, score REAL, reward REAL, id TEXT)")
        self._rows: list[tuple[str, float, float, str]] = []

    def add(self, s: GradedSession) -> None:
        score, reward, sid = _rank(s)
        self._rows.append((self._SEP.join(group_key(s)), score, reward, sid))
        if len(self._rows) >= 1000:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO r VALUES (?, ?, ?, ?)", self._rows)
        self._rows.clear()

    def pairs(self, min_gap: float) -> Iterator[tuple[tuple[str, ...], Any]]:
        """Yield (key, (best, worst) or PairError) per group, in key order; best and worst
        are GradedSessions holding only their id, score and reward (fill them to use them)."""
        self._flush()
        query = """
            WITH ranked AS (
              SELECT key, id, score, reward,
                ROW_NUMBER() OVER (PARTITION BY key ORDER BY score DESC, reward DESC, id DESC) AS b,
                ROW_NUMBER() OVER (PARTITION BY key ORDER BY score ASC, reward ASC, id ASC) AS w,
                COUNT(*) OVER (PARTITION BY key) AS n
              FROM r)
            SELECT key, MAX(n),
              MAX(CASE WHEN b = 1 THEN id END), MAX(CASE WHEN b = 1 THEN score END), MAX(CASE WHEN b = 1 THEN reward END),
              MAX(CASE WHEN w = 1 THEN id END), MAX(CASE WHEN w = 1 THEN score END), MAX(CASE WHEN w = 1 THEN reward END)
            FROM ranked WHERE b = 1 OR w = 1 GROUP BY key ORDER BY key"""
        try:
            for key, n, bid, bscore, breward, wid, wscore, wreward in self.db.execute(query):
                k = tuple(key.split(self._SEP))
                if n < 2:
                    yield k, PairError("fewer than two graded sessions")
                elif bscore - wscore < min_gap:
                    yield k, PairError(f"score gap {bscore - wscore:.1f} below {min_gap}")
                else:
                    yield k, (GradedSession(bid, {"score": bscore, "reward": breward}),
                              GradedSession(wid, {"score": wscore, "reward": wreward}))
        finally:
            self.db.close()


def _split(messages: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    for i, m in enumerate(messages):
        if m.get("role") == "user":
            return messages[: i + 1], messages[i + 1:]
    raise PairError("trajectory has no user message")


def trl_pair(best: GradedSession, worst: GradedSession) -> dict[str, Any]:
    """A TRL conversational preference row (see module docstring)."""
    prompt, chosen = _split(best.messages)
    _, rejected = _split(worst.messages)
    if not chosen or not rejected:
        raise PairError("a side has no messages after the prompt")
    return {"prompt": prompt, "chosen": chosen, "rejected": rejected}


def _same(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return a.get("content") == b.get("content") and a.get("tool_calls") == b.get("tool_calls")


def openai_pair(best: GradedSession, worst: GradedSession) -> dict[str, Any]:
    """An OpenAI preference fine-tuning row (see module docstring)."""
    b_idx = [i for i, m in enumerate(best.messages) if m.get("role") == "assistant"]
    w_idx = [i for i, m in enumerate(worst.messages) if m.get("role") == "assistant"]
    for k in range(min(len(b_idx), len(w_idx))):
        pref, non = best.messages[b_idx[k]], worst.messages[w_idx[k]]
        if not _same(pref, non):
            row: dict[str, Any] = {"input": {"messages": best.messages[: b_idx[k]]},
                                   "preferred_output": [pref], "non_preferred_output": [non]}
            tools = best.tools or infer_tools(best.messages + worst.messages)
            if tools:
                row["input"]["tools"] = tools
            if not any(m.get("role") == "user" for m in row["input"]["messages"]):
                raise PairError("no user message before the first differing assistant turn")
            return row
    raise PairError("assistant turns never differ")
