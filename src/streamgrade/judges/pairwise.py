"""Pairwise judging: which of two runs of the same task is better, asked in both orders.

LLM judges prefer the first (or second) answer they are shown (position bias); Zheng et
al. 2023 ("Judging LLM-as-a-Judge with MT-Bench and Chatbot Arena", arXiv:2306.05685,
§3.3-3.4) swap the order and count a win only when the judge prefers the same answer both
ways, otherwise a tie. :class:`PairwiseJudge` does exactly that: it asks (A, B) and then
(B, A) with :data:`PAIRWISE_SCHEMA` (reasoning before the choice, as in G-Eval,
arXiv:2303.16634), maps the second answer back, and returns a :class:`Preference`:

- both orders prefer the same run: that run wins (``consistent`` True);
- the orders disagree, or either says "tie": a tie (``winner`` None).

``p_a`` (probability that A is better, 0-1) is the mean over the two orders of
``0.5 + confidence / 2`` for a vote for A, ``0.5 - confidence / 2`` for B, 0.5 for a tie.

Each run is shown as its selected key steps (:func:`.evidence.select_steps`, half of
``judge.evidence_tokens`` each), inside its own data block (:func:`.rubric.delimit`), so
session content is untrusted data there as in grading. Used by the DPO export with
``--rank-by pairwise`` (opt-in; it sends requests, the export is otherwise offline).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import msgspec

from ..models import ChatMessage, Session, SessionRef, Usage
from ..sft import render_chat_message
from . import rubric
from .evidence import select_steps
from .openai import OpenAIJudge

PAIRWISE_SCHEMA: dict[str, Any] = {
    "name": "streamgrade_pairwise",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "reasoning": {"type": "string", "description": "compare the runs before choosing"},
            "better": {"type": "string", "enum": ["first", "second", "tie"]},
            "confidence": {"type": "number", "description": "0 to 1"},
        },
        "required": ["reasoning", "better", "confidence"],
        "additionalProperties": False,
    },
}

PAIRWISE_SYSTEM_PROMPT = f"""You compare two runs of the same task by an agent (or person) for a
preference dataset and say which run did the task better: completed what the task asked,
with correct actions and tool use, adherence to any policy, and no needless steps.
{rubric.DATA_RULE}
Each run is in its own data block; steps are numbered [n] within each run, and
"[... N steps omitted ...]" marks steps left out to fit the budget (do not count them as
missing or wrong). The order the runs are shown in says nothing about their quality.
Answer with reasoning first, then better ("first", "second" or "tie") and your
confidence (0-1). Answer only with JSON matching the given schema."""


class _Answer(msgspec.Struct, forbid_unknown_fields=True):
    reasoning: str
    better: Literal["first", "second", "tie"]
    confidence: float


def parse_pairwise(text: str) -> tuple[str, float]:
    """(better: "first" | "second" | "tie", confidence 0-1) of a pairwise answer; raises
    ValueError when it does not match :data:`PAIRWISE_SCHEMA` or the confidence is outside
    0-1 (the judge retries)."""
    try:
        ans = msgspec.json.decode(text, type=_Answer)
    except msgspec.DecodeError as exc:
        raise ValueError(f"pairwise answer does not match the schema: {exc}") from None
    if not 0 <= ans.confidence <= 1:
        raise ValueError(f"pairwise confidence {ans.confidence} outside 0-1")
    return ans.better, float(ans.confidence)


@dataclass
class Preference:
    """The outcome of comparing runs A and B: ``winner`` 0 (A), 1 (B) or None (a tie:
    the orders disagreed or one said tie); ``p_a`` the probability that A is better (0-1);
    ``consistent`` whether both orders picked the same run; ``votes`` the raw answers
    (better, confidence) of the (A, B) and (B, A) requests; ``usage`` what they cost."""

    winner: int | None
    p_a: float
    consistent: bool
    votes: list[tuple[str, float]]
    usage: Usage


def run_lines(messages: list[dict[str, Any]], budget_tokens: int) -> list[str]:
    """A run's OpenAI chat messages as numbered, selected step lines (system messages are
    left out: both runs share the policy)."""
    steps = []
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") == "system":
            continue
        try:
            msg = msgspec.convert(m, ChatMessage, strict=False)
        except msgspec.ValidationError:
            msg = ChatMessage(role=str(m.get("role", "?")), content=str(m.get("content", "")))
        steps.append((i, f"[{i}] {render_chat_message(msg, 4000)}", None))
    return select_steps(steps, budget_tokens)[0]


def _vote(better: str, confidence: float, first_is_a: bool) -> float:
    """P(A better) from one answer."""
    if better == "tie":
        return 0.5
    picked_a = (better == "first") == first_is_a
    return 0.5 + confidence / 2 if picked_a else 0.5 - confidence / 2


class PairwiseJudge:
    """Compare two runs of one task with an :class:`OpenAIJudge` (its config, limits,
    retries and cache). ``judge.aclose()`` is the caller's."""

    def __init__(self, judge: OpenAIJudge):
        self.judge = judge

    async def compare(self, task: str, run_a: list[dict[str, Any]], run_b: list[dict[str, Any]],
                      name: str = "pair") -> Preference:
        """Ask (A, B) then (B, A) and combine (see the module docstring). ``run_a`` /
        ``run_b`` are OpenAI chat messages; ``name`` labels the requests in logs. Raises
        :class:`~streamgrade.errors.JudgeError` when a request fails for good."""
        budget = max(64, self.judge.config.judge.evidence_tokens // 2)
        a, b = run_lines(run_a, budget), run_lines(run_b, budget)
        shell = Session(ref=SessionRef(session_id=name, format="pairwise", path="", files=()), task=task)
        usage = Usage()
        votes = []
        for first, second in ((a, b), (b, a)):
            prompt = (rubric.delimit(f"Task: {task}") + "\n\nFirst run:\n" + rubric.delimit("\n".join(first))
                      + "\n\nSecond run:\n" + rubric.delimit("\n".join(second))
                      + "\n\nWhich run did the task better?")
            votes.append(await self.judge.ask(shell, prompt, PAIRWISE_SCHEMA, parse_pairwise, usage,
                                              system=PAIRWISE_SYSTEM_PROMPT))
        p1 = _vote(*votes[0], first_is_a=True)
        p2 = _vote(*votes[1], first_is_a=False)
        consistent = (p1 > 0.5 and p2 > 0.5) or (p1 < 0.5 and p2 < 0.5)
        winner = (0 if p1 > 0.5 else 1) if consistent else None
        return Preference(winner=winner, p_a=round((p1 + p2) / 2, 4), consistent=consistent, votes=votes,
                          usage=usage)


__all__ = ["PAIRWISE_SCHEMA", "PAIRWISE_SYSTEM_PROMPT", "PairwiseJudge", "Preference", "parse_pairwise", "run_lines"]
