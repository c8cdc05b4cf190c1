"""Select the evidence a verdict rests on, instead of truncating the session.

The verdict request shows the judge the task, then a selection of the session's steps that
fits a token budget (``judge.evidence_tokens``, estimated as characters / 4 like
:func:`streamgrade.judges.limits.estimate_tokens`), and, for recordings, a few frames. What
is kept, in priority order (after WebJudge's key-step / key-screenshot selection, Xue et
al. 2025, arXiv:2504.01382, and the Universal Verifier's relevance-based screenshot
selection rather than truncation, Rosset et al. 2026, arXiv:2604.06240):

0. the first step, the last :data:`TAIL` steps (the final state), the final answer (an
   agent's last assistant message) and system messages (an agent's policy, kept at the
   length chunking gave them: adherence to it is graded);
1. tool errors (a line that reads like an error: ``Error``, ``Traceback``, ``exit code 2``,
   ``failed`` ...) and the step right after each (the recovery, or not);
2. state changes: tool calls and typed text, key presses, app switches of a recording;
3. everything else, spread evenly over the run (first, last, middle, quarters ...).

Steps are added tier by tier until the budget is spent (each but system messages cut to
:data:`LINE_CHARS` characters first); the kept ones are shown in order, and every gap
becomes one marker line ``[... N steps omitted ...]``. Deterministic: the same session and
budget always give the same selection.

Step numbers: an agent transcript's lines already start with their message index
(``[7] tool bash -> ...``); a recording's lines (``[12.3s] click(..)``) get their position
prefixed (``[4] [12.3s] click(..)``). The judge cites these numbers in ``evidence_steps``.
"""

from __future__ import annotations

import re
from pathlib import Path

from ..models import Chunk, Session

#: Steps at the end always kept (the final state and answer).
TAIL = 3
#: Characters a selected step line is cut to.
LINE_CHARS = 1500

_INDEXED = re.compile(r"^\[(\d+)\] ")
_TIMED = re.compile(r"^\[(\d+(?:\.\d+)?)s\] ")
_ERROR = re.compile(
    r"\b(error|exception|traceback|failed|failure|fatal|denied|not found|no such file|invalid|"
    r"exit(?:ed)? (?:code|status)[ :=]*[1-9]\d*|returncode[ :=]*[1-9]\d*)\b", re.IGNORECASE)
_SYSTEM = re.compile(r"^\[\d+\] system: ")
_STATE = re.compile(r"(\bcalls \w|^\[[^\]]*\] (?:type|key|hotkey|app_focus|drag)\()")


def numbered_steps(session: Session, chunks: list[Chunk]) -> list[tuple[int, str, int | None]]:
    """The session's steps as (number, line, t_ms or None). Source: the chunks' lines, or
    the full rendering (:func:`streamgrade.chunking.action_lines`) when chunking condensed
    the session (``line_chars`` set), so selection sees what condensing cut."""
    if any(c.line_chars for c in chunks):
        from ..chunking import action_lines

        lines = [line for _, line in action_lines(session)]
    else:
        lines = [line for c in chunks for line in c.lines]
    out: list[tuple[int, str, int | None]] = []
    for k, line in enumerate(lines):
        m = _INDEXED.match(line)
        if m:
            out.append((int(m.group(1)), line, None))
            continue
        t = _TIMED.match(line)
        out.append((k, f"[{k}] {line}", round(float(t.group(1)) * 1000) if t else None))
    return out


def _tier(i: int, line: str, n: int, is_error_prev: bool, final_answer: int) -> int:
    if i == 0 or i >= n - TAIL or i == final_answer or _SYSTEM.match(line):
        return 0
    if _ERROR.search(line) or is_error_prev:
        return 1
    if _STATE.search(line.split("\n", 1)[0]) or " calls " in line:
        return 2
    return 3


def _spread(items: list[int]) -> list[int]:
    """``items`` reordered first, last, middle, then the middles of each half, ... (an even
    spread whatever prefix of it is kept)."""
    if len(items) <= 2:
        return list(items)
    order = [items[0], items[-1]]
    spans = [(0, len(items) - 1)]
    while spans:
        nxt = []
        for lo, hi in spans:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            order.append(items[mid])
            nxt += [(lo, mid), (mid, hi)]
        spans = nxt
    return order


def select_steps(steps: list[tuple[int, str, int | None]], budget_tokens: int) -> tuple[list[str], list[int]]:
    """(lines to show, positions kept) of ``steps`` within ``budget_tokens`` (chars / 4).

    Lines keep their order; a run of left-out steps becomes ``[... N steps omitted ...]``
    (N > 0). Tier 0 is kept even over budget (a run is never shown without its end).
    Positions index ``steps``."""
    n = len(steps)
    if n == 0:
        return [], []
    cut = [s[1] if len(s[1]) <= LINE_CHARS or _SYSTEM.match(s[1]) else s[1][: LINE_CHARS - 7] + " …[cut]"
           for s in steps]
    final_answer = next((i for i in range(n - 1, -1, -1) if re.match(r"^\[\d+\] assistant: ", steps[i][1])), -1)
    tiers: list[list[int]] = [[], [], [], []]
    prev_error = False
    for i, s in enumerate(steps):
        t = _tier(i, s[1], n, prev_error, final_answer)
        tiers[t].append(i)
        prev_error = bool(_ERROR.search(s[1])) and " calls " not in s[1]
    room = budget_tokens * 4
    kept: set[int] = set()
    for t, members in enumerate(tiers):
        for i in (members if t < 2 else _spread(members)):
            size = len(cut[i]) + 1
            if t == 0 or size <= room:
                kept.add(i)
                room -= size
    out: list[str] = []
    gap = 0
    for i in range(n):
        if i in kept:
            if gap:
                out.append(f"[... {gap:,} steps omitted ...]")
                gap = 0
            out.append(cut[i])
        else:
            gap += 1
    if gap:
        out.append(f"[... {gap:,} steps omitted ...]")
    return out, sorted(kept)


def _frame_ms(path: str) -> int | None:
    try:
        return int(Path(path).stem)
    except ValueError:
        return None


def select_frames(session: Session, chunks: list[Chunk], steps: list[tuple[int, str, int | None]],
                  kept: list[int], max_images: int, last: int = 2) -> list[str]:
    """Up to ``max_images`` frame paths, in time order: the last ``last`` frames of the
    recording, then the frame nearest each step the selection kept (within 2 s of it;
    the selection holds the key steps first), latest steps first. Frames are named ``<video_ms>.jpg`` (:func:`extract.frames.frame_name`);
    a session time t is video time ``t + session.video_offset_ms``."""
    frames = [(ms, p) for c in chunks for p in c.frames if (ms := _frame_ms(p)) is not None]
    if not frames or max_images <= 0:
        return []
    frames.sort()
    chosen: list[tuple[int, str]] = frames[-last:] if last > 0 else []
    times = [steps[i][2] for i in reversed(kept) if steps[i][2] is not None]
    for t in times:
        if len(chosen) >= max_images:
            break
        v = t + session.video_offset_ms
        ms, p = min(frames, key=lambda f: (abs(f[0] - v), f[0]))
        if abs(ms - v) <= 2000 and (ms, p) not in chosen:
            chosen.append((ms, p))
    return [p for _, p in sorted(chosen[:max_images])]


def select_evidence(session: Session, chunks: list[Chunk], budget_tokens: int,
                    max_images: int) -> tuple[list[str], list[str]]:
    """(step lines, frame paths) to show in the verdict request: :func:`select_steps` over
    :func:`numbered_steps`, and :func:`select_frames`."""
    steps = numbered_steps(session, chunks)
    lines, kept = select_steps(steps, budget_tokens)
    return lines, select_frames(session, chunks, steps, kept, max_images)
