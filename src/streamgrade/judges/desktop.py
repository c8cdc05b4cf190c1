"""The offline judge's rubric for recorded human demonstrations (desktop and web captures).

Signals any recording has, never the reward:

- objective coverage: the share of the task's objectives (the title when none are listed)
  with a content word the user actually showed: typed text and context events (web hints).
  An objective that names the focused app counts half: opening the app is a start, not the
  objective done. App names and key names are not words of the task the user wrote;
- activity: number of actions and the mix of action kinds;
- completion marker: the recorder marked the session completed (Clones meta ``status``);
- flailing: clicks repeated on the same spot (3+ within 2 s and 5 px) and scroll direction
  reversals;
- idle time: gaps over 10 s between actions, as a share of the session duration;
- screen (when frames were taken): the share of blank frames and of consecutive frames that
  did not change (16x16 grayscale thumbnails).

outcome = 10 + 60*coverage + 15*activity + 15*completed;
process = (40 + 35*mix + 25*(1 - flail share) - 15*reversal share - 20*blank share) * g;
efficiency = (100 - 70*idle share - 30*redundant share - 20*unchanged share) * g, where
g = 0.4 + 0.6*coverage: a capture that shows none of its task cannot have carried it out
well (10 s of typing "coucou" in Word for "implement a shopping cart" scores about 35, not
79). All clamped to 0-100. Confidence is low (0.35, 0.2 at zero coverage): these signals
only correlate with quality. A capture with no task or no action is ungradable (see
:func:`streamgrade.judges.signals.ungradable_reason`); the judge gives it the neutral
low-confidence verdict of :func:`streamgrade.judges.heuristic.ungradable_verdict`.
"""

from __future__ import annotations

import math
import re
from collections import Counter

from ..models import Action, Chunk, Component, Session, Usage, Verdict

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
    """What the user showed in words: typed text and context events (not the quest)."""
    parts = [a.text or "" for a in session.actions if a.kind == "type"]
    parts += [e.content for e in session.events
              if isinstance(e.content, str) and not e.content.startswith("Quest:")]
    return " ".join(parts)


def coverage(session: Session) -> float:
    """Share (0-1) of objectives having a content word in :func:`evidence_text` (1 each),
    or else naming a focused app (0.5 each); the title counts as the objective when none
    are listed; 0 without a task."""
    title = session.task.splitlines()[0] if (session.task or "").strip() else ""
    goals = [g for g in (session.objectives or [title]) if _words(g)]
    if not goals:
        return 0.0
    seen = _words(evidence_text(session))
    apps = _words(" ".join(a.text or "" for a in session.actions if a.kind == "app_focus"))
    hit = sum(1.0 if _words(g) & seen else 0.5 if _words(g) & apps else 0.0 for g in goals)
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




def grade_recording(session: Session, chunks: list[Chunk]) -> Verdict:
    """The verdict of a recorded demonstration with a task and actions (see the module
    docstring for the formulas)."""
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
    gate = 0.4 + 0.6 * cov
    conf = CONFIDENCE if cov > 0 else 0.2
    outcome = Component(
        _clamp(10 + 60 * cov + 15 * activity + 15 * completed),
        conf,
        f"objective coverage {cov:.0%} from typed text and context (half for an objective naming the focused app); "
        f"{n} actions; " + ("recorder marked it completed" if completed else "no completion marker"),
    )
    blank, unchanged, seen = screen_signals(chunks)
    process = Component(
        _clamp((40 + 35 * mix + 25 * (1 - flail_share) - 15 * reversal_share - 20 * blank) * gate),
        conf,
        f"{len(kinds)} action kinds; {repeats} repeated same-spot clicks; {reversals} scroll reversals"
        + (f"; {blank:.0%} of {seen} frames blank" if seen else "") + f"; scaled by coverage ({gate:.2f})",
    )
    efficiency = Component(
        _clamp((100 - 70 * idle - 30 * flail_share - 20 * unchanged) * gate),
        conf,
        f"{idle:.0%} of {session.duration_s or 0:.0f} s idle in gaps over {IDLE_GAP_MS // 1000} s"
        + (f"; {unchanged:.0%} of consecutive frames unchanged" if seen else "") + f"; scaled by coverage ({gate:.2f})",
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
