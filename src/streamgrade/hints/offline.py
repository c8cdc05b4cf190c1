"""Hints of one episode without an LLM, read from its transcript's structure.

From an OpenAI-chat transcript (sft.json ``messages``; tool results linked to their calls
by ``tool_call_id``) and its tool definitions:

- **tools**: every tool the episode called, with its purpose (the first sentence of its
  definition's ``description``; else its name in words and, when its first successful
  result is a JSON object, the keys it returns) and an example call (the first call whose
  result was not an error, arguments as ``key=value``, at most :data:`EXAMPLE_CHARS`);
- **strategy**: the episode's steps in order: each run of calls of one tool as one step
  (``get_user_details(user_id='mia_li_3668')``, ``... x3`` when repeated), then the final
  answer's first sentence (:func:`final_answer`);
- **pitfalls**: its tool errors (the tool, its arguments and the first line of the
  error), loops (one call, name and arguments, made :data:`LOOP_CALLS` times or more; one
  error text returned twice or more), refusals (an assistant turn whose first sentence
  says it cannot or will not, :data:`REFUSAL`) and a termination naming a limit, a timeout
  or an error;
- **success criteria**: the state-changing tools it called (names that do not start with
  a read verb, :data:`READ_VERBS`) and how it ended (the final answer's first sentence).

Which of these a task keeps is :mod:`.aggregate`'s choice: tools and the strategy from
successful episodes (the strategy of the shortest one), pitfalls from failed ones. Errors
are recognised by structure, as :mod:`streamgrade.judges.signals` does: a leading
``Error``/``Exception``/traceback line, a non-zero exit code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from ..judges.signals import exit_codes

EXAMPLE_CHARS = 200
LOOP_CALLS = 3
_ERROR = re.compile(r"^\s*(?:Traceback \(most recent call last\)|(?:\w*(?:Error|Exception)|ERROR|error)\b\s*:?)")
REFUSAL = re.compile(r"\b(?:I(?:'m| am) (?:sorry|unable|not able)|I (?:can(?:'|no)t|cannot|won't|will not)|"
                     r"unable to (?:help|assist|proceed|complete|access)|I apologi[sz]e)", re.I)
_BAD_END = re.compile(r"limit|timeout|timed.?out|max.?(?:steps|iter|turn)|error|exceed|abort|crash|cancel", re.I)
READ_VERBS = ("get", "search", "list", "find", "read", "view", "show", "fetch", "lookup", "look", "query", "check",
              "calculate", "glob", "grep", "ls", "cat", "open", "describe", "think", "retrieve")
_SENTENCE = re.compile(r"(?<=[.!?])\s")


def first_sentence(text: str, limit: int = 160) -> str:
    """The first sentence (or line) of ``text``, whitespace collapsed, at most ``limit``
    characters (cut with "...")."""
    text = " ".join((text or "").strip().splitlines()[0].split()) if (text or "").strip() else ""
    text = _SENTENCE.split(text, 1)[0]
    return text if len(text) <= limit else text[: limit - 3].rstrip() + "..."


def is_error(content: str) -> bool:
    """A tool result that reads as an error from its structure (see the module docstring)."""
    if _ERROR.match(content[:300]):
        return True
    codes = exit_codes(content)
    return bool(codes) and codes[-1] != 0


def render_call(name: str, arguments: Any, limit: int = EXAMPLE_CHARS) -> str:
    """``name(k=v, ...)`` from a call's arguments (a JSON text or an object; other text as
    one positional argument), values as Python literals, at most ``limit`` characters."""
    args = arguments
    if isinstance(args, str):
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError:
            pass
    if isinstance(args, dict):
        inner = ", ".join(f"{k}={v!r}" for k, v in args.items())
    else:
        inner = repr(args)
    text = f"{name}({inner})"
    return text if len(text) <= limit else text[: limit - 4] + "...)"


def _words(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", " ", name).replace("_", " ").replace("-", " ").strip().lower()


def _purpose(name: str, definitions: dict[str, str], result: str | None) -> str:
    desc = definitions.get(name)
    if desc:
        return first_sentence(desc, 200)
    purpose = _words(name)
    if result:
        try:
            value = json.loads(result)
        except (json.JSONDecodeError, TypeError):
            value = None
        if isinstance(value, dict) and value:
            keys = list(value)[:6]
            purpose += "; returns an object with " + ", ".join(map(str, keys)) + (", ..." if len(value) > 6 else "")
        elif isinstance(value, list):
            purpose += "; returns a list"
    return purpose


def _definitions(tools: list[dict[str, Any]]) -> dict[str, str]:
    out = {}
    for t in tools:
        fn = t.get("function") if isinstance(t.get("function"), dict) else t
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            out[fn["name"]] = str(fn.get("description") or "")
    return out


def calls_of(messages: list[dict[str, Any]]) -> list[tuple[str, Any, str | None, int]]:
    """(tool name, arguments, result text or None, message index) of every tool call, in order."""
    results = {m.get("tool_call_id"): m.get("content") for m in messages
               if m.get("role") == "tool" and m.get("tool_call_id")}
    out = []
    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function") if isinstance(tc, dict) else None
            if not isinstance(fn, dict) or not isinstance(fn.get("name"), str):
                continue
            res = results.get(tc.get("id"))
            out.append((fn["name"], fn.get("arguments"), res if isinstance(res, str) else None, i))
    return out


def final_answer(messages: list[dict[str, Any]], least: int = 30) -> str:
    """The text of the last assistant turn that calls no tool and whose first sentence has
    at least ``least`` characters (a closing "You're welcome!" is not the answer), else of
    the last such turn, else ""."""
    texts = [str(m.get("content") or "") for m in messages
             if m.get("role") == "assistant" and not m.get("tool_calls") and str(m.get("content") or "").strip()]
    for t in reversed(texts):
        if len(first_sentence(t)) >= least:
            return t
    return texts[-1] if texts else ""


def offline_hints(messages: list[dict[str, Any]], tools: list[dict[str, Any]],
                  termination: str | None = None) -> dict[str, Any]:
    """The hints of one episode (see the module docstring):
    ``{tools: [{name, purpose, example}], strategy: [str], pitfalls: [str],
    success_criteria: [str]}``. Pure; never raises on odd messages (they are skipped)."""
    defs = _definitions(tools)
    calls = calls_of(messages)
    tool_hints: dict[str, dict[str, str]] = {}
    for name, args, res, _ in calls:
        ok = res is not None and not is_error(res)
        seen = tool_hints.get(name)
        if seen is None or (ok and not seen["_ok"]):
            tool_hints[name] = {"name": name, "purpose": _purpose(name, defs, res if ok else None),
                                "example": render_call(name, args), "_ok": ok}
    runs: list[list[Any]] = []  # [name, first call rendered, calls in the run]
    for name, args, _, _ in calls:
        if runs and runs[-1][0] == name:
            runs[-1][2] += 1
        else:
            runs.append([name, render_call(name, args, 120), 1])
    strategy = [sig + (f" x{n}" if n > 1 else "") for _, sig, n in runs]
    answer = first_sentence(final_answer(messages))
    if answer:
        strategy.append(f"answer: {answer}")
    pitfalls: list[str] = []
    errors: dict[str, int] = {}
    repeats: dict[str, int] = {}
    for name, args, res, _ in calls:
        sig = render_call(name, args, 120)
        repeats[sig] = repeats.get(sig, 0) + 1
        if res is not None and is_error(res):
            line = first_sentence(res, 160)
            errors[line] = errors.get(line, 0) + 1
            if errors[line] == 1:
                pitfalls.append(f"error from {sig}: {line}")
    pitfalls += [f"loop: the same error came back {n} times: {e}" for e, n in errors.items() if n >= 2]
    pitfalls += [f"loop: {sig} was called {n} times" for sig, n in repeats.items() if n >= LOOP_CALLS]
    for m in messages:
        if m.get("role") == "assistant" and not m.get("tool_calls"):
            head = first_sentence(str(m.get("content") or ""))
            if head and REFUSAL.search(head):
                pitfalls.append(f"refusal: {head}")
    if termination and _BAD_END.search(termination):
        pitfalls.append(f"the run ended by {termination}")
    changes = []
    for name, _, res, _ in calls:
        verb = _words(name).split(" ", 1)[0]
        if verb not in READ_VERBS and (res is None or not is_error(res)) and name not in changes:
            changes.append(name)
    criteria = [f"the state change {name} is made (and succeeds)" for name in changes]
    if answer:
        criteria.append(f"the run ends with an answer like: {answer}")
    return {"tools": [{k: v for k, v in t.items() if k != "_ok"} for t in tool_hints.values()],
            "strategy": strategy, "pitfalls": pitfalls, "success_criteria": criteria}


__all__ = ["offline_hints", "render_call", "is_error", "first_sentence", "calls_of", "final_answer", "REFUSAL",
           "READ_VERBS"]
