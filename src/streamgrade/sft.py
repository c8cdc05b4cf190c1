"""SFT formatting: a session as chat messages, compatible with Clones' sft.json.

Shape (Clones, clones-ai/clones-quality-agent, data/tests/grader/*/sft_generated_test.json):
``{"messages": [{"role", "content", "timestamp"}]}`` with ``timestamp`` in ms from the
session start. The first message is the user's task (quest title, objectives, content);
each action is an assistant message holding one Python call in a fenced code block, e.g.
``click(640, 320)``. Context events (web quests and hints) are user messages at their time.
"""

from __future__ import annotations

import json

from .models import Action, ChatMessage, Message, Session


def _s(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def render_action(a: Action) -> str:
    """One action as a Python call: ``click(640, 320)``, ``click(10, 20, button="right")``,
    ``double_click(x, y)``, ``drag([(x, y), ...])``, ``scroll(x, y, dy=-120)``,
    ``type("hello")``, ``press("Return")``, ``hotkey("Meta", "Tab")``, ``app_focus("Word")``,
    ``press_hold(x, y, duration_ms=900)``. Coordinates in the recording's points."""
    btn = f', button="{a.button}"' if a.button and a.button != "left" else ""
    match a.kind:
        case "click" | "double_click":
            return f"{a.kind}({a.x}, {a.y}{btn})"
        case "press_hold":
            return f"press_hold({a.x}, {a.y}{btn}, duration_ms={(a.end_ms or a.t_ms) - a.t_ms})"
        case "drag":
            pts = ", ".join(f"({x}, {y})" for x, y in a.path or [])
            return f"drag([{pts}]{btn})"
        case "scroll":
            dx = f", dx={a.dx:g}" if a.dx else ""
            return f"scroll({a.x}, {a.y}, dy={a.dy or 0:g}{dx})"
        case "type":
            return f"type({_s(a.text or '')})"
        case "key":
            return f"press({', '.join(_s(k) for k in a.keys or [])})"
        case "hotkey":
            return f"hotkey({', '.join(_s(k) for k in a.keys or [])})"
        case "app_focus":
            return f"app_focus({_s(a.text or '')})"
        case _:
            fields = {k: v for k, v in (("x", a.x), ("y", a.y), ("text", a.text)) if v is not None}
            return f"{a.kind}({', '.join(f'{k}={v!r}' for k, v in fields.items())})"


def task_message(session: Session) -> str:
    """The user's task text: the task, then the objectives as a list."""
    text = session.task
    if session.objectives:
        text += "\n\nObjectives:\n" + "\n".join(f"- {o}" for o in session.objectives)
    return text


def to_messages(session: Session) -> list[Message]:
    """The session as SFT messages (see module docstring), in time order."""
    msgs = [Message(role="user", content=task_message(session), timestamp=0)]
    timeline: list[Message] = list(session.events)
    timeline += [Message(role="assistant", content=f"```python\n{render_action(a)}\n```", timestamp=a.t_ms) for a in session.actions]
    timeline.sort(key=lambda m: m.timestamp)
    return msgs + timeline


def render_chat_message(m: ChatMessage, max_chars: int = 4000) -> str:
    """One transcript message as a line for the judge: ``user: ...``, ``assistant: ...``,
    ``assistant calls name({"a": 1})``, ``tool name -> ...``; each text cut at ``max_chars``."""

    def cut(text: str) -> str:
        text = " ".join(text.split())
        return text if len(text) <= max_chars else text[:max_chars] + " …[cut]"

    parts = []
    if m.content:
        who = f"tool {m.name or m.tool_call_id or ''}".strip() + " ->" if m.role == "tool" else f"{m.role}:"
        parts.append(f"{who} {cut(m.content)}")
    for tc in m.tool_calls or []:
        parts.append(f"{m.role} calls {tc.function.name}({cut(tc.function.arguments)})")
    if not parts:
        parts.append(f"{m.role}: (empty)")
    return "\n".join(parts)


def to_openai_messages(session: Session) -> list[dict]:
    """An agent session's transcript as OpenAI chat message dicts (tool-call arguments as
    JSON strings; ``reasoning_content`` dropped, as fine-tuning APIs reject unknown keys, and
    so assistant messages that held only reasoning are left out)."""
    import msgspec

    out = []
    for m in session.transcript:
        if m.role == "assistant" and not m.content and not m.tool_calls:
            continue  # a step with only reasoning: nothing a fine-tuning API can take
        d = msgspec.to_builtins(m)
        d.pop("reasoning_content", None)
        if m.role == "assistant" and "content" not in d:
            d["content"] = None
        out.append(d)
    return out
