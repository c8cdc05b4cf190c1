"""The offline heuristic judge: deterministic, fast, no network. A baseline, not an oracle.

Agent runs and game episodes (``session.kind`` "agent" / "episode") are graded by one
small model over structural features (:mod:`.signals`: end-of-run evidence, loops and
repeated errors, giving up, unanswered requests, length, invalid actions; no word lists
over what the agent says):

    P(success) = sigmoid(intercept + sum_i w_i * x_i)

with the intercept and weights of ``heuristic_weights.json`` (a sign-constrained logistic
regression fitted on the labelled corpus folders by ``scripts/lodo_heuristic.py --write``,
which also prints its leave-one-dataset-out AUROC). All three components (outcome,
process, efficiency) carry the score ``100 * P``, so the final score (their weighted
mean, :func:`streamgrade.judges.rubric.final_score`) is ``100 * P`` too, whatever the
rubric weights; their reasons split the evidence (end of run / loops and errors / length).
Confidence = (0.15 + 0.7 * |2P - 1|) * min(1, assistant turns / 4): near 0.15 for a coin
flip, lower for runs too short to show much.

Length is judged on its own (no cross-session reference: the judge protocol grades one
session at a time, and a per-task median would depend on grading order): for an agent run
a longer run counts against it (brevity 1 - L), for a game episode, which the environment
ends, a longer one is survival (L), L = log1p(turns) / log1p(10000).

Recorded demonstrations are graded by :mod:`.desktop`. A session with nothing to judge
(:func:`.signals.ungradable_reason`: empty transcript, no assistant turn, no task, no
action) gets :func:`ungradable_verdict`: its record has status ``ungradable``, no score and
the reason in ``error``; it is counted apart, never retried, does not fail the run and
never enters training exports.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

from ..config import Config
from ..models import Chunk, Component, JudgeInfo, Session, Usage, Verdict
from .desktop import coverage, evidence_text, flailing, grade_recording, idle_share, screen_signals, summarise
from .signals import FEATURES, features, ungradable_reason

WEIGHTS_PATH = Path(__file__).with_name("heuristic_weights.json")
UNGRADABLE = "ungradable"

__all__ = ["HeuristicJudge", "grade_agent", "grade_episode", "grade_run", "ungradable_verdict", "probability",
           "coverage", "evidence_text", "flailing", "idle_share", "screen_signals", "summarise", "WEIGHTS_PATH"]


@lru_cache(maxsize=1)
def load_weights(path: str = str(WEIGHTS_PATH)) -> tuple[float, dict[str, float]]:
    """(intercept, {feature: weight}) of the weights file; a feature missing from it weighs
    0. Raises OSError or ValueError (a broken install) when the file cannot be read."""
    doc = json.loads(Path(path).read_text())
    return float(doc["intercept"]), {f: float(doc["weights"].get(f, 0.0)) for f in FEATURES}


def probability(x: dict[str, float]) -> tuple[float, dict[str, float]]:
    """(P(success), {feature: its contribution to the logit}) for a feature vector."""
    b, w = load_weights()
    parts = {f: w[f] * x[f] for f in FEATURES if w[f] and x[f]}
    z = b + sum(parts.values())
    return 1 / (1 + math.exp(-z)), parts


def ungradable_verdict(reason: str, n_chunks: int) -> Verdict:
    """The verdict of a session the judge cannot grade: ``ungradable`` set to ``reason``
    (the record becomes ``ungradable``, with no score); the components (50, confidence 0,
    reason after "ungradable: ") only keep the verdict's shape."""
    text = f"{UNGRADABLE}: {reason}"
    return Verdict(components={k: Component(50.0, 0.0, text) for k in ("outcome", "process", "efficiency")},
                   summary=text, chunk_summaries=[text] * n_chunks, usage=Usage(), ungradable=reason)


def _fmt(parts: dict[str, float], names: tuple[str, ...]) -> str:
    shown = [f"{n} {parts[n]:+.2f}" for n in names if n in parts]
    return ", ".join(shown) if shown else "no contribution"


def grade_run(session: Session, n_chunks: int) -> Verdict:
    """The verdict of an agent run or game episode (see the module docstring); the
    ungradable verdict when :func:`.signals.ungradable_reason` gives a reason."""
    why = ungradable_reason(session)
    if why:
        return ungradable_verdict(why, n_chunks)
    x = features(session)
    p, parts = probability(x)
    score = round(100 * p, 1)
    turns = sum(1 for m in session.transcript if m.role == "assistant")
    conf = round((0.15 + 0.7 * abs(2 * p - 1)) * min(1.0, turns / 4), 2)
    end = ("last result error" if x["last_result_error"] else "last result ok") + \
        (", final exit code not 0" if x["final_exit_nonzero"] else "") + \
        (", ends with an answer" if x["ends_with_answer"] else ", no final answer") + \
        (", a user request is unanswered" if x["unanswered"] else "") + \
        (f", stopped on {session.termination!r}" if x["stopped_bad"] else "")
    comps = {
        "outcome": Component(score, conf, f"P(success) {p:.2f}; {end}; logit parts: "
                             + _fmt(parts, ("last_result_error", "final_exit_nonzero", "unanswered", "stopped_bad",
                                            "task_length", "ends_with_answer", "final_empty"))),
        "process": Component(score, conf, f"{x['tool_error_share']:.0%} error results, "
                             f"{x['repeat_call_share']:.0%} repeated calls, longest repeat {x['longest_repeat']:.0%} of turns, "
                             f"{x['invalid_share']:.0%} invalid actions; logit parts: "
                             + _fmt(parts, ("tool_error_share", "repeat_call_share", "repeat_error", "longest_repeat",
                                            "invalid_share", "tool_call_rate"))),
        "efficiency": Component(score, conf, f"{turns} assistant turns; logit parts: " + _fmt(parts, ("length_credit",))),
    }
    kind = "Episode" if session.kind == "episode" else "Agent trajectory"
    summary = f"{kind}: {turns} turns, P(success) {p:.2f}; {end}."
    return Verdict(components=comps, summary=summary, chunk_summaries=[summary] * n_chunks, usage=Usage())


def grade_agent(session: Session, n_chunks: int) -> Verdict:
    """The verdict of an agent run: :func:`grade_run`."""
    return grade_run(session, n_chunks)


def grade_episode(session: Session, n_chunks: int) -> Verdict:
    """The verdict of a game episode: :func:`grade_run`."""
    return grade_run(session, n_chunks)


class HeuristicJudge:
    """The offline judge (see the module docstring). ``grade`` never raises for valid
    sessions and costs nothing (usage all zero)."""

    def __init__(self, config: Config | None = None):
        self.info = JudgeInfo(kind="heuristic", model=None)

    async def grade(self, session: Session, chunks: list[Chunk]) -> Verdict:
        return self.grade_sync(session, chunks)

    def grade_sync(self, session: Session, chunks: list[Chunk]) -> Verdict:
        """The same as :meth:`grade`, synchronously."""
        if session.has_transcript:
            return grade_run(session, len(chunks))
        why = ungradable_reason(session)
        if why:
            return ungradable_verdict(why, len(chunks))
        return grade_recording(session, chunks)

    async def aclose(self) -> None:
        return None
