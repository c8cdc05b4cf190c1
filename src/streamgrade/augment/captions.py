"""Captions and state transitions from an LLM with images, batched, and structured hints
per session.

A caption request covers ``[augment] batch_steps`` consecutive steps: for each step its
actions (rendered as calls, with times and the focused window) and two images, the frame
before the step and the frame after it, sent in that order (step by step) after the text.
Its schema (:func:`caption_schema`) is built per batch: one required property per action,
``a<index>`` (the action's index in the session), each ``{caption, transition}``, so an
answer names every action of the batch and nothing else (OpenAI Structured Outputs, strict:
every property required, ``additionalProperties: false``). ``caption`` says what the user
did, naming the element acted on as the screen shows it ("clicks Save in the File menu");
``transition`` what changed on screen between the two frames.

The structured-hints request is text only: the task and every action's caption and
transition, answered with :data:`SESSION_HINTS_SCHEMA` ``{goal, apps, subgoals,
shortcuts, issues}`` (the shape of the offline
:func:`~.templates.template_session_hints`). Session text is untrusted and delimited
(:func:`streamgrade.judges.rubric.delimit`).
"""

from __future__ import annotations

from typing import Any, Sequence

import msgspec

from ..judges import rubric

#: Bump when a prompt or schema changes (results.json ``augment.version``).
PROMPT_VERSION = "augment-llm-1"
TEXT_CHARS = 300

_ITEM = {"type": "object", "properties": {"caption": {"type": "string"}, "transition": {"type": "string"}},
         "required": ["caption", "transition"], "additionalProperties": False}

SESSION_HINTS_SCHEMA: dict[str, Any] = {
    "name": "streamgrade_session_hints",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "goal": {"type": "string"},
            "apps": {"type": "array", "items": {"type": "string"}},
            "subgoals": {"type": "array", "items": {"type": "string"}},
            "shortcuts": {"type": "array", "items": {"type": "string"}},
            "issues": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["goal", "apps", "subgoals", "shortcuts", "issues"],
        "additionalProperties": False,
    },
}

CAPTION_SYSTEM_PROMPT = f"""You annotate a recorded computer-use demonstration for a training
dataset. For each action you get the action as a call (coordinates in screen points, time
in seconds, the focused window) and two screenshots: the screen before the step and the
screen after it, in the order the text lists them.
{rubric.DATA_RULE}
For every action answer:
- caption: what the user did, in one short present-tense phrase naming the element acted
  on as the screenshots show it (e.g. "clicks Save in the File menu", "types the product
  name into the search box"); say "clicks at an empty spot" when nothing is there;
- transition: what changed on screen between the before and after screenshots ("the File
  menu closed and a Save dialog opened"), or "no visible change".
Answer only with JSON matching the given schema."""

HINTS_SYSTEM_PROMPT = f"""You summarise a recorded computer-use demonstration into structured
hints for a training dataset, from its task and its captioned actions.
{rubric.DATA_RULE}
Answer with: goal (what the user was doing, one sentence), apps (the applications or sites
used, in order), subgoals (the ordered sub-steps achieved), shortcuts (keyboard shortcuts
used, with their meaning) and issues (mistakes, detours, undone or repeated actions; none
when there were none). Answer only with JSON matching the given schema."""


def caption_schema(indices: Sequence[int]) -> dict[str, Any]:
    """The strict schema of a caption batch: one ``a<i>`` property per action index."""
    props = {f"a{i}": _ITEM for i in indices}
    return {"name": "streamgrade_captions", "strict": True,
            "schema": {"type": "object", "properties": props, "required": list(props), "additionalProperties": False}}


def caption_prompt(task: str, app: str | None, batch: list[dict[str, Any]]) -> str:
    """The user prompt of a batch: ``batch`` items are ``{step, t_ms, actions: [(index,
    rendered call, focused window)]}``, each followed by its two images in order."""
    lines = [f"Task: {task}"] + ([f"App: {app}"] if app else []) + ["", "Steps (two images each, before then after):"]
    for b in batch:
        lines.append(f"Step {b['step']} at {b['t_ms'] / 1000:.1f}s:")
        for i, call, window in b["actions"]:
            lines.append(f"  a{i}: {call}" + (f"  (focused window: {window})" if window else ""))
    return rubric.delimit("\n".join(lines)) + "\n\nCaption every action listed (a<index>) and say what changed."


def _clip(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= TEXT_CHARS else text[: TEXT_CHARS - 3] + "..."


def parse_captions(indices: Sequence[int]):
    """A parser for a batch's answer: ``{index: {caption, transition}}`` for every index;
    raises ValueError when the answer is not a JSON object holding exactly the ``a<i>``
    keys, each with a non-empty caption and a transition string (the judge retries)."""
    want = [f"a{i}" for i in indices]

    def parse(text: str) -> dict[int, dict[str, str]]:
        try:
            doc = msgspec.json.decode(text)
        except msgspec.DecodeError as exc:
            raise ValueError(f"captions answer is not JSON: {exc}") from None
        if not isinstance(doc, dict):
            raise ValueError("captions answer is not an object")
        extra = set(doc) - set(want)
        if extra:
            raise ValueError(f"captions answer has unknown keys {sorted(extra)[:5]}")
        out = {}
        for key, i in zip(want, indices):
            item = doc.get(key)
            if not isinstance(item, dict) or not isinstance(item.get("caption"), str) \
                    or not isinstance(item.get("transition"), str) or not item["caption"].strip():
                raise ValueError(f"captions answer: {key} is missing or not {{caption, transition}}")
            out[i] = {"caption": _clip(item["caption"]), "transition": _clip(item["transition"])}
        return out

    return parse


class _Hints(msgspec.Struct, forbid_unknown_fields=True):
    goal: str
    apps: list[str]
    subgoals: list[str]
    shortcuts: list[str]
    issues: list[str]


def parse_session_hints(text: str) -> dict[str, Any]:
    """A structured-hints answer as a dict (items cut to 300 characters, lists to 12);
    raises ValueError when it does not match :data:`SESSION_HINTS_SCHEMA`."""
    try:
        h = msgspec.json.decode(text, type=_Hints)
    except msgspec.DecodeError as exc:
        raise ValueError(f"session hints answer does not match the schema: {exc}") from None
    return {"goal": _clip(h.goal), **{k: [_clip(x) for x in getattr(h, k) if x.strip()][:12]
                                      for k in ("apps", "subgoals", "shortcuts", "issues")}}


def hints_prompt(task: str, captioned: list[tuple[float, str, str]]) -> str:
    """The structured-hints prompt: the task and each action's (time s, caption, transition)."""
    lines = [f"Task: {task}", "", "Actions:"]
    lines += [f"[{t:.1f}s] {c}" + (f" -> {tr}" if tr else "") for t, c, tr in captioned]
    return rubric.delimit("\n".join(lines)) + "\n\nWrite the structured hints of this demonstration."


__all__ = ["CAPTION_SYSTEM_PROMPT", "HINTS_SYSTEM_PROMPT", "PROMPT_VERSION", "SESSION_HINTS_SCHEMA", "caption_prompt",
           "caption_schema", "hints_prompt", "parse_captions", "parse_session_hints"]
