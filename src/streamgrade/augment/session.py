"""Augment one recording: captions, state transitions and structured hints.

Input: the session's actions, its computer-use steps (:mod:`streamgrade.extract.steps`:
one "before" frame per action or action group) and its recording. For each step an
"after" frame is taken (``[augment] after_ms`` after its last action ends, never past the
next step's first action, never before its own last action), from the same video and into
the same frames folder (``OUT/sessions/<folder>/frames/<video ms>.jpg``, reused when there).
Then, for every action of every step:

- the **state transition**: the pixel change between the step's two frames
  (:func:`.transitions.pixel_change`) and a change of focused window, as a sentence
  (:func:`.transitions.describe`), replaced by the LLM's description when it gave one;
- the **caption**: the offline template (:func:`.templates.template_caption`), replaced by
  the LLM's caption when it gave one (:mod:`.captions`: ``[augment] batch_steps`` steps per
  request, their frames as images);

and per session the **structured hints** (the LLM's, from the captions, or
:func:`.templates.template_session_hints`). At most ``[augment] max_requests`` requests a
session (the hints request included; retries of a request come on top): steps beyond the
cap keep their template captions. A batch whose request fails for good keeps its templates
and is listed in ``errors``; a spent budget (BudgetExceeded) is raised to the caller.
A session without a recording or step frames gets template captions and no transitions.

The result is results.json's ``augment`` object::

    {"version", "mode" ("llm" | "offline"), "model", "requests", "usage", "errors",
     "frames_error", "hints", "hints_source" ("llm" | "template"),
     "actions": [{"action" (index into actions), "t_ms", "step", "before", "after"
                  (frame paths relative to the session folder, or None), "caption",
                  "caption_source" ("llm" | "template"), "transition", "transition_source",
                  "changed_share" (0-1), "box" ([x0, y0, x1, y1] px of the frame, or None),
                  "focus_before", "focus_after"}]}
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import msgspec

from ..config import Config
from ..errors import BudgetExceeded, JudgeError
from ..models import Action, Session, SessionRef, Usage
from ..sft import render_action
from . import captions as cap
from .templates import CAPTIONED, focused_windows, template_caption, template_session_hints
from .transitions import describe, pixel_change

log = logging.getLogger("streamgrade.augment")

#: Bump when the offline rules change (results.json ``augment.version`` of offline runs).
TEMPLATE_VERSION = "augment-template-2"


@dataclass
class Recording:
    """What augmenting a session needs: ``session_id``, ``task``, ``app``, ``platform``
    ("macos", "windows", "linux" or None), ``actions``, ``steps`` (results.json ``steps``:
    ``{t_ms, path, actions}``), ``video`` (``{path, offset_ms}`` or None), ``folder`` (the
    session folder, which step paths are relative to) and ``frames_dir`` (where frames go)."""

    session_id: str
    task: str
    app: str | None
    platform: str | None
    actions: list[Action]
    steps: list[dict[str, Any]]
    video: dict[str, Any] | None
    folder: Path
    frames_dir: Path
    format: str = ""
    usage: Usage = field(default_factory=Usage)


def after_times(actions: list[Action], steps: list[dict[str, Any]], after_ms: int) -> list[int]:
    """The session time (ms) of each step's "after" frame (see the module docstring)."""
    out = []
    for k, st in enumerate(steps):
        idx = list(st.get("actions") or [])
        last = max((actions[i].end_ms if actions[i].end_ms is not None else actions[i].t_ms) for i in idx) \
            if idx else int(st["t_ms"])
        t = last + after_ms
        if k + 1 < len(steps) and steps[k + 1].get("actions"):
            t = min(t, actions[steps[k + 1]["actions"][0]].t_ms)
        out.append(max(t, last))
    return out


def _frames(rec: Recording, cfg: Config) -> tuple[list[str | None], list[str | None], str | None]:
    """(before, after) frame paths relative to the session folder per step, and an error
    text when the recording could not give them (then both lists hold None). Blocking."""
    n = len(rec.steps)
    none: list[str | None] = [None] * n
    video = rec.video or {}
    if not n or not video.get("path"):
        return none, none, None if not n else "no recording"
    if not Path(video["path"]).exists():
        return none, none, f"recording {video['path']} is gone"
    from ..extract.frames import FrameError, extract_frames, frame_name

    off = float(video.get("offset_ms") or 0)

    def vms(t: int) -> int:
        return max(0, round(t + off))

    before = [vms(int(st["t_ms"])) for st in rec.steps]
    after = [vms(t) for t in after_times(rec.actions, rec.steps, cfg.augment.after_ms)]
    fc = cfg.frames
    try:
        extract_frames(video["path"], sorted(set(before + after)), rec.frames_dir, longest_side=fc.longest_side,
                       quality=fc.quality, seek_gap_ms=fc.seek_gap_ms, max_pixels=fc.max_pixels)
    except (FrameError, ValueError) as exc:
        return none, none, str(exc)
    rel = rec.frames_dir.relative_to(rec.folder) if rec.frames_dir.is_relative_to(rec.folder) else rec.frames_dir
    return ([f"{rel.as_posix()}/{frame_name(t)}" for t in before],
            [f"{rel.as_posix()}/{frame_name(t)}" for t in after], None)


def _offline_actions(rec: Recording, cfg: Config) -> tuple[list[dict[str, Any]], str | None]:
    """The per-action entries with template captions and measured transitions. Blocking."""
    before, after, frames_error = _frames(rec, cfg)
    windows = focused_windows(rec.actions, rec.app)
    out: list[dict[str, Any]] = []
    step_of: dict[int, int] = {i: k for k, st in enumerate(rec.steps) for i in st.get("actions") or []}
    order = sorted(step_of) if rec.steps else [i for i, a in enumerate(rec.actions) if a.kind in CAPTIONED]
    changes: dict[int, dict[str, Any] | None] = {}
    for i in order:
        a = rec.actions[i]
        k = step_of.get(i)
        b = before[k] if k is not None else None
        f = after[k] if k is not None else None
        if k is not None and k not in changes:
            try:
                changes[k] = pixel_change(rec.folder / b, rec.folder / f) if b and f else None
            except OSError as exc:
                log.warning("session %s: no transition for step %d: %s", rec.session_id, k, exc)
                changes[k] = None
        change = changes.get(k) if k is not None else None
        nxt = rec.steps[k + 1]["actions"][0] if k is not None and k + 1 < len(rec.steps) else len(rec.actions)
        focus_after = windows[max(i, nxt - 1)] if rec.actions else None
        has_frames = bool(b and f)
        out.append({"action": i, "t_ms": a.t_ms, "step": k, "before": b, "after": f,
                    "caption": template_caption(a, windows[i], rec.platform), "caption_source": "template",
                    "transition": describe(change, windows[i], focus_after) if has_frames else "",
                    "transition_source": "pixels" if has_frames and change is not None else None,
                    "changed_share": change["changed_share"] if change else None,
                    "box": change["box"] if change else None,
                    "focus_before": windows[i], "focus_after": focus_after})
    return out, frames_error


async def augment_recording(rec: Recording, cfg: Config, judge: Any = None) -> dict[str, Any]:
    """Augment ``rec`` (see the module docstring) and return results.json's ``augment``
    object. ``judge``: an LLM judge (anything with ``ask``) or None (offline). Raises
    BudgetExceeded when the run budget is spent; other request failures are recorded."""
    entries, frames_error = await anyio.to_thread.run_sync(_offline_actions, rec, cfg)
    ac = cfg.augment
    requests, errors = 0, []
    usage = rec.usage
    llm = judge is not None and hasattr(judge, "ask")
    shell = Session(ref=SessionRef(session_id=rec.session_id, format=rec.format, path=str(rec.folder), files=()),
                    task=rec.task)
    by_step: dict[int, list[dict[str, Any]]] = {}
    for e in entries:
        if e["step"] is not None and e["before"] and e["after"]:
            by_step.setdefault(e["step"], []).append(e)
    if llm and by_step:
        budget = ac.max_requests - (1 if ac.session_hints else 0)
        keys = sorted(by_step)
        batches = [keys[i:i + ac.batch_steps] for i in range(0, len(keys), ac.batch_steps)][:max(0, budget)]
        for batch in batches:
            items, images, indices = [], [], []
            for k in batch:
                es = by_step[k]
                items.append({"step": k, "t_ms": rec.steps[k]["t_ms"],
                              "actions": [(e["action"], f"[{e['t_ms'] / 1000:.1f}s] {render_action(rec.actions[e['action']])}",
                                           e["focus_before"]) for e in es]})
                images += [str(rec.folder / es[0]["before"]), str(rec.folder / es[0]["after"])]
                indices += [e["action"] for e in es]
            requests += 1
            try:
                got = await judge.ask(shell, cap.caption_prompt(rec.task, rec.app, items), cap.caption_schema(indices),
                                      cap.parse_captions(indices), usage, system=cap.CAPTION_SYSTEM_PROMPT,
                                      images=images)
            except BudgetExceeded:
                raise
            except JudgeError as exc:
                errors.append(f"captions of steps {batch[0]}-{batch[-1]}: {exc}")
                continue
            for k in batch:
                for e in by_step[k]:
                    ans = got[e["action"]]
                    e["caption"], e["caption_source"] = ans["caption"], "llm"
                    if ans["transition"]:
                        e["transition"], e["transition_source"] = ans["transition"], "llm"
    hints, hints_source = None, "template"
    if llm and ac.session_hints and requests < ac.max_requests and entries:
        requests += 1
        try:
            hints = await judge.ask(shell, cap.hints_prompt(rec.task, [(e["t_ms"] / 1000, e["caption"], e["transition"])
                                                                       for e in entries]),
                                    cap.SESSION_HINTS_SCHEMA, cap.parse_session_hints, usage,
                                    system=cap.HINTS_SYSTEM_PROMPT)
            hints_source = "llm"
        except BudgetExceeded:
            raise
        except JudgeError as exc:
            errors.append(f"session hints: {exc}")
    if hints is None:
        transitions = {e["action"]: e for e in entries}
        hints = template_session_hints(rec.task, rec.actions, rec.platform, transitions)
    return {"version": cap.PROMPT_VERSION if llm else TEMPLATE_VERSION, "mode": "llm" if llm else "offline",
            "model": getattr(getattr(judge, "info", None), "model", None) if llm else None,
            "requests": requests, "usage": msgspec.to_builtins(usage), "errors": errors,
            "frames_error": frames_error, "hints": hints, "hints_source": hints_source, "actions": entries}


__all__ = ["Recording", "augment_recording", "after_times", "TEMPLATE_VERSION"]
