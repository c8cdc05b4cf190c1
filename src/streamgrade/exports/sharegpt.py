"""ShareGPT rows in LLaMA-Factory's shape, validated against its ordering rules.

Shape (LLaMA-Factory data/README.md, "sharegpt" format): ``{"conversations": [{"from",
"value"}], "system": str, "tools": str}`` with ``from`` one of human, gpt, function_call,
observation; ``tools`` a JSON string of function definitions ``[{"name", "description",
"parameters"}]``; a function_call value is a JSON string ``{"name", "arguments"}`` (a list of
them for parallel calls). The assistant text that comes with a call is kept in the
function_call value before the JSON, inside LLaMA-Factory's default thought words
(``<think>\n`` ... ``\n</think>\n\n``): its ``FunctionFormatter`` (data/formatter.py)
cuts that part out before parsing the calls and puts it back in front of the rendered call.

Rules (LLaMA-Factory src/llamafactory/data/converter.py, SharegptDatasetConverter): after an
optional leading system turn, turns at even positions (0, 2, ...) must be human or
observation and turns at odd positions gpt or function_call, and the count must be even. It
drops a row that breaks them with only a log warning; here such a row is rejected with a
reason (:class:`ShareGPTError`) instead.
"""

from __future__ import annotations

import json
from typing import Any

ODD = ("human", "observation")
EVEN = ("gpt", "function_call")
TOOL_JOIN = "\n</tool_response>\n<tool_response>\n"  # how LLaMA-Factory joins parallel results


class ShareGPTError(ValueError):
    """A row that LLaMA-Factory would drop; the message says which rule it breaks."""


def _call_value(tool_calls: list[dict[str, Any]]) -> str:
    calls = []
    for tc in tool_calls:
        fn = tc.get("function", {})
        args = fn.get("arguments", "{}")
        try:
            parsed = json.loads(args) if isinstance(args, str) else args
        except json.JSONDecodeError:
            parsed = args
        calls.append({"name": fn.get("name", ""), "arguments": parsed})
    return json.dumps(calls[0] if len(calls) == 1 else calls, ensure_ascii=False)


THOUGHT = ("<think>\n", "\n</think>\n\n")  # LLaMA-Factory's default Template.thought_words


def _with_thought(text: str, calls: str) -> str:
    return f"{THOUGHT[0]}{text}{THOUGHT[1]}{calls}" if text.strip() else calls


def _split_thought(value: str) -> tuple[str, str]:
    if value.startswith(THOUGHT[0]) and THOUGHT[1] in value:
        text, _, calls = value[len(THOUGHT[0]):].partition(THOUGHT[1])
        return text, calls
    return "", value


def to_sharegpt(messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Convert OpenAI chat messages to a ShareGPT row, then :func:`validate` it.

    System messages become ``system`` (joined); consecutive tool results become one
    observation; an assistant message with tool calls becomes one function_call whose text
    is kept as its thought (see the module docstring); consecutive human or gpt turns are
    merged, consecutive calls become one function_call list, and assistant text right
    before a call joins that call's thought; trailing human/observation turns are dropped so
    the row ends on the model. Raises ShareGPTError when the result still breaks the rules
    (e.g. a call followed by assistant text with no result between)."""
    system: list[str] = []
    conv: list[dict[str, str]] = []

    def push(role: str, value: str) -> None:
        prev = conv[-1]["from"] if conv else None
        if prev == role == "human" or prev == role == "gpt":
            conv[-1]["value"] += "\n" + value
        elif prev == role == "observation":
            conv[-1]["value"] += TOOL_JOIN + value
        elif prev == role == "function_call":
            # calls made in separate assistant messages with no result between: one turn
            (t1, c1), (t2, c2) = _split_thought(conv[-1]["value"]), _split_thought(value)
            calls = [json.loads(c1), json.loads(c2)]
            flat = [c for group in calls for c in (group if isinstance(group, list) else [group])]
            conv[-1]["value"] = _with_thought("\n".join(t for t in (t1, t2) if t), json.dumps(flat, ensure_ascii=False))
        elif prev == "gpt" and role == "function_call":
            thought, calls = _split_thought(value)  # text before a call joins its thought
            conv[-1] = {"from": role, "value": _with_thought("\n".join(t for t in (conv[-1]["value"], thought) if t), calls)}
        else:
            conv.append({"from": role, "value": value})

    for m in messages:
        role, content = m.get("role"), m.get("content")
        text = content if isinstance(content, str) else json.dumps(content, ensure_ascii=False) if content else ""
        if role == "system":
            system.append(text)
        elif role == "user":
            push("human", text)
        elif role == "assistant":
            if m.get("tool_calls"):
                push("function_call", _with_thought(text, _call_value(m["tool_calls"])))
            else:
                push("gpt", text)
        elif role == "tool":
            push("observation", text)
        else:
            raise ShareGPTError(f"unknown role {role!r}")
    while conv and conv[-1]["from"] in ODD:
        conv.pop()
    row: dict[str, Any] = {"conversations": conv, "system": "\n".join(system)}
    if tools:
        row["tools"] = json.dumps([t.get("function", t) if t.get("type") == "function" else t for t in tools],
                                  ensure_ascii=False)
    validate(row)
    return row


def validate(row: dict[str, Any]) -> None:
    """Raise ShareGPTError naming the first turn that breaks LLaMA-Factory's rules."""
    conv = row.get("conversations")
    if not isinstance(conv, list) or not conv:
        raise ShareGPTError("no conversation turns (nothing from the model)")
    for i, turn in enumerate(conv):
        want = ODD if i % 2 == 0 else EVEN
        if turn.get("from") not in want:
            raise ShareGPTError(f"out of LLaMA-Factory's turn order: turn {i} is {turn.get('from')!r}, "
                                f"it expects one of {want}")
        if not isinstance(turn.get("value"), str):
            raise ShareGPTError(f"a value that is not a string: turn {i}")
    if len(conv) % 2:
        raise ShareGPTError(f"odd number of turns ({len(conv)}): must end with gpt or function_call")
    if "tools" in row and not isinstance(row["tools"], str):
        raise ShareGPTError("tools must be a JSON string")
