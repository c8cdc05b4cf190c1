"""ChatML SFT rows (OpenAI chat shape): ``{"messages": [{"role", "content"}, ...]}``.

Accepted by TRL's SFTTrainer (conversational "messages" datasets) and by OpenAI
fine-tuning (chat format). Consecutive messages of one role are merged, since many chat
templates require roles to alternate; a row must end with an assistant turn to be useful.
"""

from __future__ import annotations

from ..models import Message

SYSTEM_PROMPT = (
    "You operate a computer to complete the user's task. Answer each step with Python calls "
    "in a code block: click(x, y), double_click(x, y), drag([(x, y), ...]), scroll(x, y, dy=...), "
    "type(text), press(key), hotkey(mod, key), app_focus(app)."
)


def to_chatml(messages: list[Message], system: str = SYSTEM_PROMPT) -> dict | None:
    """A ChatML row from SFT messages, or None when it has no assistant turn."""
    out: list[dict[str, str]] = [{"role": "system", "content": system}]
    for m in messages:
        if not isinstance(m.content, str):
            continue  # frames (image entries) stay in sft.json; the ChatML rows are text
        if out[-1]["role"] == m.role:
            out[-1]["content"] += "\n" + m.content
        else:
            out.append({"role": m.role, "content": m.content})
    while out and out[-1]["role"] != "assistant":
        out.pop()
    if not any(m["role"] == "assistant" for m in out):
        return None
    return {"messages": out}


_JSON_TYPES = {str: "string", bool: "boolean", int: "integer", float: "number", list: "array", dict: "object"}


def infer_tools(messages: list[dict]) -> list[dict]:
    """Function definitions inferred from the tool calls in ``messages``, for traces that do
    not carry their tool list (tau-bench): each function with the argument names and JSON
    types seen in its calls, in OpenAI's ``{"type": "function", "function": {name,
    description, parameters}}`` shape; the description says it was inferred."""
    import json

    found: dict[str, dict[str, str]] = {}
    for m in messages:
        for tc in m.get("tool_calls") or []:
            fn = tc.get("function", {})
            props = found.setdefault(fn.get("name", ""), {})
            try:
                args = json.loads(fn.get("arguments") or "{}")
            except json.JSONDecodeError:
                continue
            if isinstance(args, dict):
                for k, v in args.items():
                    props.setdefault(k, _JSON_TYPES.get(type(v), "string"))
    return [{"type": "function", "function": {
        "name": name, "description": "(inferred from the calls in this trajectory)",
        "parameters": {"type": "object", "properties": {k: {"type": t} for k, t in sorted(props.items())}}}}
        for name, props in sorted(found.items()) if name]


def agent_chatml(messages: list[dict], tools: list[dict]) -> dict | None:
    """A ChatML row for an agent trajectory: its OpenAI messages as they are (system kept,
    tool calls with string arguments) and ``tools`` (inferred from the calls by
    :func:`infer_tools` when the trace has none); None without an assistant turn. Trailing non-assistant messages are dropped so the row ends on the model's turn."""
    out = list(messages)
    while out and out[-1]["role"] != "assistant":
        out.pop()
    if not out:
        return None
    row: dict = {"messages": out}
    tools = tools or infer_tools(out)
    if tools:
        row["tools"] = tools
    return row
