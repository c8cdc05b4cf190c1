"""Steps for computer-use training: one observation (the screen BEFORE the action) per
action, or per group of actions when a session has more actions than a row may carry.

:func:`streamgrade.extract.frames.plan_frames` picks the moments worth showing a judge,
a few per chunk. A computer-use model is trained on (screenshot, next action) pairs instead,
so :func:`plan_steps` gives every step its own "before" frame. This follows OpenCUA's
State-Action Matching (xlang-ai/OpenCUA, README.md, "DataProcessor - Action Reduction &
State-Action Matching": every reduced action is aligned with the last visually distinct
frame *before* the action begins, "avoiding future-information leakage").

Rules (times in ms from the session start, as :class:`~streamgrade.models.Action`):

1. Only input actions are steps (:data:`STEP_KINDS`: click, double_click, press_hold, drag,
   scroll, type, key, hotkey). ``app_focus`` is the effect of an input (a click, Cmd+Tab),
   not one a model can emit, so it is no step.
2. Bound: at most ``max_steps`` steps a session (default 50, under OpenAI's 64 images an
   example, see :mod:`streamgrade.exports.computer_use`). With more actions, neighbours are
   grouped: the ``max_steps - 1`` longest pauses between consecutive actions (from one
   action's end to the next one's start) are kept as step boundaries and the actions in
   between become one step (ties: the earlier pause is kept). A step then holds several
   actions and one observation, the screen before its first action.
3. Observation time of a step whose first action starts at ``t``: ``t - before_ms`` (200 ms,
   the screen the user aimed at), but never before the previous step's last action ended
   (its effect belongs in the picture) and never after ``t``; at least 0. The frame taken
   for a time is the last video frame presented at or before it (see
   :func:`~streamgrade.extract.frames.extract_frames`), so it never shows the step's own
   effect.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Sequence

from ..models import Action

#: Action kinds that are steps of a computer-use trajectory.
STEP_KINDS = ("click", "double_click", "press_hold", "drag", "scroll", "type", "key", "hotkey")
DEFAULT_MAX_STEPS = 50
DEFAULT_BEFORE_MS = 200


@dataclass(frozen=True, slots=True)
class StepPlan:
    """One step: ``t_ms`` the observation time (session ms), ``actions`` the indices into
    the session's action list (ascending) whose calls answer that observation."""

    t_ms: int
    actions: tuple[int, ...]


def _end(a: Action) -> int:
    return a.end_ms if a.end_ms is not None else a.t_ms


def plan_steps(actions: Sequence[Action], *, max_steps: int = DEFAULT_MAX_STEPS,
               before_ms: int = DEFAULT_BEFORE_MS) -> list[StepPlan]:
    """The steps of ``actions`` (in time order, as the extractor gives them) by the rules of
    the module docstring; [] when there is no input action or ``max_steps`` < 1."""
    idx = [i for i, a in enumerate(actions) if a.kind in STEP_KINDS]
    if not idx or max_steps < 1:
        return []
    # boundaries between consecutive input actions, kept where the pause is longest
    gaps = [(actions[b].t_ms - _end(actions[a]), k) for k, (a, b) in enumerate(zip(idx, idx[1:]))]
    keep = len(gaps) if len(idx) <= max_steps else max_steps - 1
    cuts = {k for _, k in sorted(gaps, key=lambda g: (-g[0], g[1]))[:keep]}
    groups: list[list[int]] = [[idx[0]]]
    for k, i in enumerate(idx[1:]):
        if k in cuts:
            groups.append([i])
        else:
            groups[-1].append(i)
    out: list[StepPlan] = []
    prev_end: int | None = None
    for g in groups:
        t = actions[g[0]].t_ms
        obs = t - before_ms
        if prev_end is not None:
            obs = max(obs, min(prev_end, t))
        out.append(StepPlan(t_ms=max(0, min(obs, t)), actions=tuple(g)))
        prev_end = max(_end(actions[i]) for i in g)
    return out


def video_size(path: str | os.PathLike[str], max_pixels: int | None = None) -> tuple[int, int] | None:
    """(width, height) in px of the first video stream as its container / codec headers
    declare it (PyAV ``codec_context.width/height`` after ``av.open``; no frame is decoded
    beyond FFmpeg's own probing), or None when unknown (0x0). Raises
    :class:`~streamgrade.extract.frames.FrameError` naming the file when it cannot be
    opened or has no decodable video stream."""
    from pathlib import Path

    from .frames import _open, _video_stream

    container = _open(Path(path), max_pixels)
    try:
        cc = _video_stream(container, Path(path)).codec_context
        w, h = int(cc.width or 0), int(cc.height or 0)
    finally:
        container.close()
    return (w, h) if w > 0 and h > 0 else None


__all__ = ["STEP_KINDS", "StepPlan", "plan_steps", "video_size", "DEFAULT_MAX_STEPS", "DEFAULT_BEFORE_MS"]
