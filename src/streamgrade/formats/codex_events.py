"""What Codex CLI's ``event_msg`` lines tell about tool calls (used by
:mod:`streamgrade.formats.codex_cli`): the output an ``*_end`` event records for a call that
has no output item, and whether a call failed.

Source: openai/codex ``codex-rs/protocol/src/protocol.rs`` (``ExecCommandEndEvent {call_id,
command, aggregated_output, formatted_output, stdout, stderr, exit_code, ...}``,
``PatchApplyEndEvent {call_id, stdout, stderr, success, changes}``, ``McpToolCallEndEvent
{call_id, invocation, result: {Ok | Err}}``, the collab_* events of subagents,
``ViewImageToolCallEvent {call_id, path}``). An exec output starts with lines like ``Process
exited with code N`` (unified exec) or is JSON ``{output, metadata: {exit_code}}`` (shell,
apply_patch).
"""

from __future__ import annotations

import json
import re

_EXIT = re.compile(r"(?:exited with code|Exit code:)\s*(-?\d+)")


def _joined(end: dict, *keys: str) -> str:
    return "\n".join(end[k] for k in keys if isinstance(end.get(k), str) and end[k])


def end_text(end: dict) -> str:
    """The output a ``*_end`` event records for its call."""
    kind = end.get("type")
    if kind == "exec_command_end":
        return _joined(end, "aggregated_output") or _joined(end, "formatted_output") or _joined(end, "stdout", "stderr")
    if kind == "patch_apply_end":
        return _joined(end, "stdout", "stderr")
    if kind == "view_image_tool_call":
        return f"[image {end.get('path', '')}]"
    rest = {k: v for k, v in end.items() if k not in ("type", "call_id", "turn_id")}
    return json.dumps(rest.get("result", rest), ensure_ascii=False, default=str)


def end_error(end: dict | None, content: str) -> bool | None:
    """A ``*_end`` event's error flag: a non-zero exit (unless the output says the command is
    still running), a failed patch, an MCP error result."""
    kind = end.get("type") if isinstance(end, dict) else None
    if kind == "exec_command_end" and "Process running with session ID" not in content:
        code = end.get("exit_code")
        return code != 0 if isinstance(code, int) and not isinstance(code, bool) else None
    if kind == "patch_apply_end" and isinstance(end.get("success"), bool):
        return not end["success"]
    if kind == "mcp_tool_call_end" and isinstance(end.get("result"), dict):
        ok = end["result"].get("Ok")
        return "Err" in end["result"] or (isinstance(ok, dict) and ok.get("isError") is True)
    return None


def output_error(content: str, end: dict | None) -> bool | None:
    """An output's error flag: its own exit code (``exited with code N``, or JSON
    ``metadata.exit_code``), else its ``*_end`` event's."""
    if content[:1] == "{" and len(content) < 1_000_000:
        try:
            meta = json.loads(content).get("metadata")
        except (ValueError, RecursionError, AttributeError):
            meta = None
        code = meta.get("exit_code") if isinstance(meta, dict) else None
        if isinstance(code, int) and not isinstance(code, bool):
            return code != 0
    m = _EXIT.search(content[:2000])
    return int(m.group(1)) != 0 if m else end_error(end, content)


__all__ = ["end_text", "end_error", "output_error"]
