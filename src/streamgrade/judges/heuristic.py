"""The offline heuristic judge: deterministic, fast, no network. A baseline, not an oracle.

It scores from signals any recorded trajectory has, never from the reward:

- objective coverage: the share of the task's objectives (and title) with a content word
  that appears in what the session shows (typed text, focused app names, key names, context
  events such as web hints);
- activity: number of actions and the mix of action kinds;
- completion marker: the recorder marked the session completed (Clones meta ``status``);
- flailing: clicks repeated on the same spot (3+ within 2 s and 5 px) and scroll direction
  reversals;
- idle time: gaps over 10 s between actions, as a share of the session duration;
- screen (when frames were taken): the share of blank frames and of consecutive frames that
  did not change (16x16 grayscale thumbnails).

outcome = 20 + 35*coverage + 25*activity + 20*completed (0 when there is no action);
process = 40 + 35*mix + 25*(1 - flail share) - 15*reversal share - 20*blank share;
efficiency = 100 - 70*idle share - 30*redundant share - 20*unchanged share. All clamped to 0-100.
Confidence is fixed low (0.35): these signals only correlate with quality.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from ..config import Config
from ..models import Action, Chunk, Component, JudgeInfo, Session, Usage, Verdict

_WORD = re.compile(r"[A-Za-z][A-Za-z0-9+#.-]{2,}")
_STOP = {
    "the", "and", "for", "with", "your", "you", "open", "into", "from", "that", "this", "within",
    "using", "use", "make", "sure", "ensure", "between", "test", "thoroughly", "section", "menu",
    "settings", "navigate", "access", "adjust", "implement", "functionality", "relevant",
}
CONFIDENCE = 0.35
IDLE_GAP_MS = 10_000


def _words(text: str) -> set[str]:
    return {w.lower().strip(".-") for w in _WORD.findall(text)} - _STOP


def _clamp(x: float) -> float:
    return round(max(0.0, min(100.0, x)), 1)


def evidence_text(session: Session) -> str:
    """What the session itself shows in words: typed text, apps focused, keys, context."""
    parts = [a.text or "" for a in session.actions if a.kind in ("type", "app_focus")]
    parts += [" ".join(a.keys or []) for a in session.actions if a.keys]
    parts += [e.content for e in session.events if not e.content.startswith("Quest:")]
    return " ".join(parts)


def coverage(session: Session) -> float:
    """Share (0-1) of objectives having a content word present in :func:`evidence_text`;
    the title counts as the objective when none are listed."""
    seen = _words(evidence_text(session))
    goals = session.objectives or [session.task.splitlines()[0] if session.task else ""]
    if not goals or not seen:
        return 0.0
    hit = sum(1 for g in goals if _words(g) & seen)
    return hit / len(goals)


def flailing(actions: list[Action]) -> tuple[int, int]:
    """(clicks repeated on the same spot within 2 s and 5 px beyond the second,
    scroll direction reversals within 3 s)."""
    repeats = 0
    run = 1
    for prev, cur in zip(actions, actions[1:]):
        same = (
            prev.kind == cur.kind == "click" and cur.t_ms - prev.t_ms <= 2000
            and math.dist((prev.x or 0, prev.y or 0), (cur.x or 0, cur.y or 0)) <= 5
        )
        run = run + 1 if same else 1
        if run >= 3:
            repeats += 1
    scrolls = [a for a in actions if a.kind == "scroll"]
    reversals = sum(
        1 for p, c in zip(scrolls, scrolls[1:])
        if (p.dy or 0) * (c.dy or 0) < 0 and c.t_ms - (p.end_ms or p.t_ms) <= 3000
    )
    return repeats, reversals


def idle_share(session: Session) -> float:
    """Share (0-1) of the duration spent in gaps over 10 s between actions (and before the
    first or after the last action)."""
    dur_ms = (session.duration_s or 0) * 1000
    if dur_ms <= 0:
        return 0.0
    times = [0] + [a.t_ms for a in session.actions] + [int(dur_ms)]
    idle = sum(b - a for a, b in zip(times, times[1:]) if b - a > IDLE_GAP_MS)
    return min(1.0, idle / dur_ms)


def screen_signals(chunks: list[Chunk]) -> tuple[float, float, int]:
    """(share of blank frames, share of consecutive frames unchanged, frames seen) of the
    frames attached to the chunks: cheap image signals (16x16 grayscale thumbnails, see
    extract/frames.py ``blank_or_unchanged``); (0, 0, 0) without frames or on a read error."""
    paths = [p for c in chunks for p in c.frames]
    if not paths:
        return 0.0, 0.0, 0
    try:
        from ..extract.frames import blank_or_unchanged

        sig = blank_or_unchanged(paths)
    except (OSError, ValueError, ImportError):
        return 0.0, 0.0, 0
    return float(sig["blank_fraction"]), float(sig["unchanged_fraction"]), len(paths)


def summarise(actions: list[Action]) -> str:
    """A deterministic one-line summary of some actions: counts by kind, text typed, apps."""
    if not actions:
        return "no actions"
    counts = Counter(a.kind for a in actions)
    parts = [", ".join(f"{n} {k}" for k, n in counts.most_common())]
    typed = [a.text for a in actions if a.kind == "type" and a.text]
    if typed:
        parts.append("typed " + "; ".join(repr(t[:40]) for t in typed[:5]))
    apps = [a.text for a in actions if a.kind == "app_focus" and a.text]
    if apps:
        parts.append("apps " + ", ".join(dict.fromkeys(apps)))
    return "; ".join(parts)


class HeuristicJudge:
    """The offline judge (see module docstring). ``grade`` never raises for valid sessions
    and costs nothing (usage all zero)."""

    def __init__(self, config: Config | None = None):
        self.info = JudgeInfo(kind="heuristic", model=None)

    async def grade(self, session: Session, chunks: list[Chunk]) -> Verdict:
        return self.grade_sync(session, chunks)

    def grade_sync(self, session: Session, chunks: list[Chunk]) -> Verdict:
        """The same as :meth:`grade`, synchronously."""
        if session.kind == "agent":
            return grade_agent(session, len(chunks))
        if session.kind == "episode":
            return grade_episode(session, len(chunks))
        actions = session.actions
        n = len(actions)
        cov = coverage(session)
        completed = 1.0 if session.meta.get("completed") else 0.0
        activity = min(1.0, n / 10)
        kinds = {a.kind for a in actions}
        mix = min(1.0, len(kinds) / 4)
        repeats, reversals = flailing(actions)
        flail_share = repeats / n if n else 0.0
        reversal_share = reversals / max(1, sum(1 for a in actions if a.kind == "scroll"))
        idle = idle_share(session)

        if n == 0:
            outcome = Component(0.0, CONFIDENCE, "no actions were recorded, so nothing of the task is shown")
        else:
            outcome = Component(
                _clamp(20 + 35 * cov + 25 * activity + 20 * completed),
                CONFIDENCE,
                f"objective coverage {cov:.0%} from typed text and apps; {n} actions; "
                + ("recorder marked it completed" if completed else "no completion marker"),
            )
        blank, unchanged, seen = screen_signals(chunks)
        process = Component(
            _clamp(40 + 35 * mix + 25 * (1 - flail_share) - 15 * reversal_share - 20 * blank) if n else 0.0,
            CONFIDENCE,
            f"{len(kinds)} action kinds; {repeats} repeated same-spot clicks; {reversals} scroll reversals"
            + (f"; {blank:.0%} of {seen} frames blank" if seen else ""),
        )
        efficiency = Component(
            _clamp(100 - 70 * idle - 30 * flail_share - 20 * unchanged) if n else 0.0,
            CONFIDENCE,
            f"{idle:.0%} of {session.duration_s or 0:.0f} s idle in gaps over {IDLE_GAP_MS // 1000} s"
            + (f"; {unchanged:.0%} of consecutive frames unchanged" if seen else ""),
        )
        summaries = []
        for c in chunks:
            inside = [a for a in actions if c.start_ms <= a.t_ms <= c.end_ms]
            summaries.append(f"{c.start_ms / 1000:.1f}-{c.end_ms / 1000:.1f}s: {summarise(inside)}")
        return Verdict(
            components={"outcome": outcome, "process": process, "efficiency": efficiency},
            summary=f"Task {session.task.splitlines()[0]!r}: {summarise(actions)}.",
            chunk_summaries=summaries,
            usage=Usage(),
        )

    async def aclose(self) -> None:
        return None


def _verdict(outcome: float, process: float, efficiency: float, reason: str, summary: str, n_chunks: int) -> Verdict:
    """A verdict whose three components share one reason (the signals behind them)."""
    return Verdict(
        components={name: Component(score, CONFIDENCE, reason)
                    for name, score in (("outcome", outcome), ("process", process), ("efficiency", efficiency))},
        summary=summary,
        chunk_summaries=[reason] * n_chunks,
        usage=Usage(),
    )


_ERROR = re.compile(r"\b(error|exception|traceback|not found|invalid|failed|denied)\b", re.I)
_LIMITS = re.compile(r"\b(sorry|apologi[sz]e|unable|cannot|can't|not able|not allowed|not permitted)\b", re.I)


def agent_signals(session: Session) -> dict[str, float]:
    """Signals any agent trajectory has: assistant turns, tool calls, the share of distinct
    calls (same name and arguments repeated lowers it), tool results that read as errors,
    assistant messages that state a limit or decline ("sorry", "unable", "cannot": policy
    adherence, i.e. not forcing an action the policy forbids), and whether the run ends on
    an assistant answer."""
    calls = [tc for m in session.transcript for tc in (m.tool_calls or [])]
    distinct = {(tc.function.name, tc.function.arguments) for tc in calls}
    results = [m for m in session.transcript if m.role == "tool"]
    errors = sum(1 for m in results if m.content and _ERROR.search(m.content[:500]))
    limits = sum(len(_LIMITS.findall(m.content or "")) for m in session.transcript if m.role == "assistant")
    last = session.transcript[-1] if session.transcript else None
    return {
        "turns": float(session.turns),
        "tool_calls": float(len(calls)),
        "distinct_share": len(distinct) / len(calls) if calls else 1.0,
        "tool_errors": float(errors),
        "error_share": errors / len(results) if results else 0.0,
        "limits_stated": float(limits),
        "ends_with_answer": 1.0 if last is not None and last.role == "assistant" and last.content and not last.tool_calls else 0.0,
    }


def grade_agent(session: Session, n_chunks: int) -> Verdict:
    """The agent rubric, offline (a baseline; it never sees the reward or reference actions):

    - outcome = 60 - 1.5 per assistant turn beyond 6 + 5 per stated limit (max 3)
      - 20 x error share: short, clean runs finish more often; an agent that declines what
      it may not do has followed its instructions;
    - process = 70 + 10 per stated limit (max 3) - 40 x error share - 30 x repeated-call
      share: tool use and policy adherence;
    - efficiency = 100 - 3 per turn beyond 4 - 2 per tool call beyond 2.
    Measured on the corpus with `streamgrade agreement`: see the README."""
    sig = agent_signals(session)
    if not session.transcript:
        return _verdict(0.0, 0.0, 0.0, "empty trajectory", "empty trajectory", n_chunks)
    limits = min(3.0, sig["limits_stated"])
    outcome = _clamp(60 - 1.5 * max(0.0, sig["turns"] - 6) + 5 * limits - 20 * sig["error_share"])
    process = _clamp(70 + 10 * limits - 40 * sig["error_share"] - 30 * (1 - sig["distinct_share"]))
    efficiency = _clamp(100 - 3 * max(0.0, sig["turns"] - 4) - 2 * max(0.0, sig["tool_calls"] - 2))
    reason = (f"{sig['turns']:.0f} turns, {sig['tool_calls']:.0f} tool calls ({sig['distinct_share']:.0%} distinct), "
              f"{sig['tool_errors']:.0f} error results, {sig['limits_stated']:.0f} stated limits, "
              + ("ends with an answer" if sig["ends_with_answer"] else "does not end with an answer"))
    return _verdict(outcome, process, efficiency, reason, f"Agent trajectory: {reason}.", n_chunks)


def episode_signals(session: Session) -> dict[str, float]:
    """Signals of a game episode (observation -> action loop): steps taken, distinct actions
    used, the share of steps without a valid action, the share of no-op steps, and the
    longest run of one repeated action. The invalid share counts the steps the reader
    flagged (``metrics["invalid_actions"]``, of the shown steps plus
    ``metrics["dropped_invalid_actions"]`` left out of the transcript: BALROG Crafter) when
    it does, else the "no valid action" turns."""
    acts = []
    for m in session.transcript:
        if m.role == "assistant":
            text = m.content or ""
            acts.append(text.rsplit("Action:", 1)[-1].strip().lower())
    n = len(acts)
    if "invalid_actions" in session.metrics:
        total = n + session.metrics.get("dropped_invalid_actions", 0.0)
        invalid_share = session.metrics["invalid_actions"] / total if total else 0.0
    else:
        invalid_share = sum("no valid action" in a for a in acts) / n if n else 0.0
    longest = run = 0
    for prev, cur in zip([None, *acts], acts):
        run = run + 1 if cur == prev else 1
        longest = max(longest, run)
    return {
        "steps": float(n),
        "distinct_actions": float(len(set(acts))),
        "invalid_share": invalid_share,
        "noop_share": sum(a == "noop" for a in acts) / n if n else 0.0,
        "longest_repeat": float(longest),
    }


def grade_episode(session: Session, n_chunks: int) -> Verdict:
    """The episode rubric, offline (a baseline; it never sees rewards or achievements):

    - outcome = 70 x log10(1 + steps) / 4 (capped at 1: survival up to 10,000 steps) + 3 per
      distinct action used (max 30): in open-ended survival games, staying alive and using
      more of the action space is how progress shows;
    - process = 90 - 50 x share of steps without a valid action - 20 if one action repeats
      more than 20 times in a row;
    - efficiency = 100 - 60 x no-op share."""
    sig = episode_signals(session)
    if not sig["steps"]:
        return _verdict(0.0, 0.0, 0.0, "no steps recorded", "empty episode", n_chunks)
    outcome = _clamp(70 * min(1.0, math.log10(1 + sig["steps"]) / 4) + 3 * min(10.0, sig["distinct_actions"]))
    process = _clamp(90 - 50 * sig["invalid_share"] - (20 if sig["longest_repeat"] > 20 else 0))
    efficiency = _clamp(100 - 60 * sig["noop_share"])
    reason = (f"{sig['steps']:.0f} steps, {sig['distinct_actions']:.0f} distinct actions, "
              f"{sig['invalid_share']:.0%} without a valid action, {sig['noop_share']:.0%} no-ops, "
              f"longest repeat {sig['longest_repeat']:.0f}")
    return _verdict(outcome, process, efficiency, reason, f"Episode: {reason}.", n_chunks)
