"""Hints of one episode from an LLM: the prompt, its strict JSON schema and the parser.

One request per episode, sent with :meth:`streamgrade.judges.openai.OpenAIJudge.ask` (the
judge's rate limits, retries, response cache, usage and run budget). The answer follows
:data:`HINTS_SCHEMA` (OpenAI Structured Outputs, ``strict``: every property required,
``additionalProperties: false``):

- ``tools``: ``[{name, purpose, example_call}]``, the tools that mattered;
- ``strategy``: ordered, general steps that solve the task (from a successful episode);
- ``pitfalls``: concrete mistakes that made this episode fail, or nearly;
- ``success_criteria``: what must be true at the end for the task to count as done.

The prompt shows the task, the episode's outcome (success or failure and whether a reward
or the judge's score decided it: never the grader's own output), the tool definitions'
names and first sentences, and the episode's selected steps
(:func:`streamgrade.judges.pairwise.run_lines`: errors, state changes, the first and last
steps kept within ``[hints] evidence_tokens``), all inside one data block
(:func:`streamgrade.judges.rubric.delimit`): session content is untrusted.
:data:`PROMPT_VERSION` names this prompt and schema; the episode cache keys on it.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ..judges import rubric
from ..judges.pairwise import run_lines
from .offline import first_sentence

#: Bump when the prompt or the schema changes: cached extractions of another version are redone.
PROMPT_VERSION = "hints-llm-1"
#: Longest text kept of one answer item (characters).
ITEM_CHARS = 400
#: Most items kept of one answer list.
MAX_ITEMS = 15

HINTS_SCHEMA: dict[str, Any] = {
    "name": "streamgrade_hints",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "tools": {"type": "array", "items": {
                "type": "object",
                "properties": {"name": {"type": "string"}, "purpose": {"type": "string"},
                               "example_call": {"type": "string"}},
                "required": ["name", "purpose", "example_call"], "additionalProperties": False}},
            "strategy": {"type": "array", "items": {"type": "string"}},
            "pitfalls": {"type": "array", "items": {"type": "string"}},
            "success_criteria": {"type": "array", "items": {"type": "string"}},
        },
        "required": ["tools", "strategy", "pitfalls", "success_criteria"],
        "additionalProperties": False,
    },
}

HINTS_SYSTEM_PROMPT = f"""You study one episode of an agent working on a task and write reusable
hints for a future agent that will attempt the same task. You see the task, whether this
episode succeeded, the tools available and the episode's steps, numbered [n].
{rubric.DATA_RULE}
Answer with:
- tools: the tools that mattered, each with its purpose and one example call copied from
  a step that worked (name(arg=value, ...));
- strategy: the ordered steps that solve the task, general enough to reuse (from a
  successful episode; from a failed one, only the steps that were right);
- pitfalls: concrete mistakes of this episode (errors, loops, wrong assumptions, policy
  violations, giving up) and how to avoid them; none when there were none;
- success_criteria: what must be true at the end for the task to be done.
Use only what the episode itself shows. Keep each item to one or two sentences.
Answer only with JSON matching the given schema."""


class _Tool(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    purpose: str
    example_call: str


class _Answer(msgspec.Struct, forbid_unknown_fields=True):
    tools: list[_Tool]
    strategy: list[str]
    pitfalls: list[str]
    success_criteria: list[str]


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= ITEM_CHARS else text[: ITEM_CHARS - 3] + "..."


def parse_hints(text: str) -> dict[str, Any]:
    """An answer as ``{tools: [{name, purpose, example}], strategy, pitfalls,
    success_criteria}`` (empty items dropped, each item cut to :data:`ITEM_CHARS`, each
    list to :data:`MAX_ITEMS`). Raises ValueError when it does not match
    :data:`HINTS_SCHEMA` (the judge retries)."""
    try:
        ans = msgspec.json.decode(text, type=_Answer)
    except msgspec.DecodeError as exc:
        raise ValueError(f"hints answer does not match the schema: {exc}") from None
    return {
        "tools": [{"name": _clip(t.name), "purpose": _clip(t.purpose), "example": _clip(t.example_call)}
                  for t in ans.tools if t.name.strip()][:MAX_ITEMS],
        "strategy": [_clip(s) for s in ans.strategy if s.strip()][:MAX_ITEMS],
        "pitfalls": [_clip(s) for s in ans.pitfalls if s.strip()][:MAX_ITEMS],
        "success_criteria": [_clip(s) for s in ans.success_criteria if s.strip()][:MAX_ITEMS],
    }


def tool_lines(tools: list[dict[str, Any]]) -> list[str]:
    """``- name: first sentence of its description`` for each tool definition."""
    out = []
    for t in tools:
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out.append(f"- {fn['name']}: {first_sentence(str(fn.get('description') or ''), 200)}")
    return out


def hints_prompt(task: str, outcome: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                 budget_tokens: int) -> str:
    """The user prompt of one episode (see the module docstring); the task, tools and steps
    inside one data block, the outcome outside it (it is ours, not the session's)."""
    lines = run_lines(messages, budget_tokens)
    body = f"Task:\n{task}\n\nTools available:\n" + ("\n".join(tool_lines(tools)) or "(no definitions; see the calls)")
    body += "\n\nSteps of the episode (selected, numbered):\n" + ("\n".join(lines) or "(no steps)")
    return (rubric.delimit(body) + f"\n\nThis episode {outcome}. Write the hints it teaches for the same task.")


__all__ = ["HINTS_SCHEMA", "HINTS_SYSTEM_PROMPT", "PROMPT_VERSION", "hints_prompt", "parse_hints", "tool_lines"]
