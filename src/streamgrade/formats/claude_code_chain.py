"""Claude Code transcripts: from a file's lines to the conversation's canonical steps (used
by :mod:`streamgrade.formats.claude_code`, which finds the files and assembles sessions).

:func:`main_chain` picks the conversation: from the last user/assistant/system line back along
``parentUuid`` (across a compaction through ``logicalParentUuid``, so the history before it
stays), plus what one turn writes off that line: the other lines of the same API response
(same ``message.id``: Claude Code writes one line per content block, and parallel tool calls
branch) and the tool results answering its calls. Lines of abandoned branches (a retried
response, an edited prompt) are left out and counted. Files without ``parentUuid`` are read in
line order.

:class:`Turns` makes the steps: assistant lines of one ``message.id`` make one agent step
(text, thinking as reasoning, tool_use calls, the response's usage as step metrics);
tool_result blocks are observations of their calls (``is_error`` kept); real prompts are user
steps; compaction summaries, ``isMeta`` text (skill bodies, hook context), slash commands and
their output (``<command-name>``, ``<local-command-stdout>``, ``<bash-input>``, system
``local_command`` lines), API errors and other messages Claude Code writes itself
(model ``<synthetic>``) are system steps; the ``<local-command-caveat>`` notes are dropped.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import Any

from ..errors import InputError
from ..models import Step
from ._agentlog import str_or_none
from .mapping import attach, reasoning_of, results_in, text_of, tool_calls_in

CHAIN = frozenset({"user", "assistant", "system", "progress", "attachment"})
USAGE = (("input_tokens", "input_tokens"), ("output_tokens", "output_tokens"),
         ("cache_creation_input_tokens", "cache_creation_tokens"), ("cache_read_input_tokens", "cache_read_tokens"))
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
_TAG = re.compile(r"<(command-name|command-args|local-command-stdout|local-command-stderr|bash-input|bash-stdout|"
                  r"bash-stderr)>(.*?)</\1>", re.S)
_REMINDER = re.compile(r"<system-reminder>.*?</system-reminder>", re.S)


def parent_of(rec: dict) -> Any:
    p = rec.get("parentUuid")
    return p if p is not None else rec.get("logicalParentUuid")  # a compact boundary's predecessor


def main_chain(records: list[tuple[int, dict]], sidechain: bool) -> tuple[list[tuple[int, dict]], int]:
    """(the conversation's lines in file order, the number of user/assistant lines left out).
    Lines of the given side (main or sidechain) only; see the module docstring."""
    msgs = [(n, r) for n, r in records if str_or_none(r.get("type")) in CHAIN and (r.get("isSidechain") is True) == sidechain]
    if not any("parentUuid" in r for _, r in msgs):
        return msgs, 0
    by_uuid: dict[str, dict] = {}
    for _, r in msgs:
        if isinstance(r.get("uuid"), str):
            by_uuid.setdefault(r["uuid"], r)
    leaf = next((r for _, r in reversed(msgs) if r.get("type") in ("user", "assistant", "system")
                 and isinstance(r.get("uuid"), str)), None)
    keep: set[str] = set()
    cur = leaf.get("uuid") if leaf else None
    while isinstance(cur, str) and cur in by_uuid and cur not in keep:
        keep.add(cur)
        cur = parent_of(by_uuid[cur])
    while True:  # the rest of each kept API response, and the results of its calls
        kept = [r for _, r in msgs if str_or_none(r.get("uuid")) in keep]
        ids = {_mid(r) for r in kept} - {None}
        calls = {str_or_none(c.get("id")) for r in kept for c in blocks(r, "tool_use")} - {None}
        more = {r["uuid"] for _, r in msgs if isinstance(r.get("uuid"), str) and r["uuid"] not in keep
                and ((r.get("type") == "assistant" and _mid(r) in ids)
                     or (r.get("type") == "user" and blocks(r, "tool_result")
                         and all(str_or_none(b.get("tool_use_id")) in calls for b in blocks(r, "tool_result"))))}
        if not more:
            break
        keep |= more
    chain = [(n, r) for n, r in msgs if str_or_none(r.get("uuid")) in keep]
    left = sum(1 for _, r in msgs if r.get("type") in ("user", "assistant") and str_or_none(r.get("uuid")) not in keep)
    return chain, left


def _mid(rec: dict) -> str | None:
    msg = rec.get("message")
    mid = msg.get("id") if isinstance(msg, dict) and rec.get("type") == "assistant" else None
    return mid if isinstance(mid, str) else None


def blocks(rec: dict, kind: str) -> list[dict]:
    msg = rec.get("message")
    content = msg.get("content") if isinstance(msg, dict) else None
    return [b for b in content if isinstance(b, dict) and b.get("type") == kind] if isinstance(content, list) else []


def _clean(text: str) -> str:
    """A command line's text: its tags as "/cmd args" or their output, ANSI codes removed."""
    parts: list[str] = []
    for tag, body in _TAG.findall(text):
        body = _ANSI.sub("", body).strip()
        if tag == "command-args":
            if body and parts:
                parts[-1] = f"{parts[-1]} {body}"
        elif tag in ("command-name", "bash-input"):
            parts.append(body if tag == "command-name" else f"! {body}")
        elif body:
            parts.append(body)
    return "\n".join(parts) if parts else _ANSI.sub("", text).strip()


class Turns:
    """Main-chain lines to steps (see module docstring), with what termination and metrics need."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.steps: list[Step] = []
        self.by_msg: dict[str, Step] = {}
        self.usage: dict[str, dict] = {}
        self.models: Counter[str] = Counter()
        self.task: str | None = None
        self.command: str | None = None
        self.last: str | None = None
        self.stop: str | None = None
        self.compactions = 0
        self.prompts = 0

    def run(self, chain: list[tuple[int, dict]]) -> Turns:
        for n, rec in chain:
            fail = lambda f, m, n=n: InputError(self.path, m, line=n, field=f or None)  # noqa: E731
            kind, ts = rec.get("type"), rec.get("timestamp") if isinstance(rec.get("timestamp"), str) else None
            if kind == "assistant":
                self._assistant(rec, fail, ts, n)
            elif kind == "user":
                self._user(rec, fail, ts)
            elif kind == "system" and rec.get("subtype") == "compact_boundary":
                self.compactions += 1
                self._system("[conversation compacted]", ts)
            elif kind == "system" and rec.get("subtype") == "local_command" and isinstance(rec.get("content"), str):
                self._system(_clean(rec["content"]), ts)
        return self

    def _system(self, text: str, ts: str | None) -> None:
        if text and not (self.steps and self.steps[-1].source == "system" and self.steps[-1].message == text):
            self.steps.append(Step(source="system", message=text, timestamp=ts))

    def _message(self, rec: dict, fail) -> dict:
        msg = rec.get("message")
        if not isinstance(msg, dict):
            raise fail("message", "missing message" if msg is None else f"expected an object, got {type(msg).__name__}")
        return msg

    def _assistant(self, rec: dict, fail, ts: str | None, n: int) -> None:
        msg = self._message(rec, fail)
        content, model = msg.get("content"), msg.get("model")
        text = text_of(content, fail, "message.content")
        if rec.get("isApiErrorMessage") or model == "<synthetic>":  # written by Claude Code, not the model
            self._system(f"[{'API error' if rec.get('isApiErrorMessage') else 'Claude Code'}] {text or ''}".strip(), ts)
            self.last = "error" if rec.get("isApiErrorMessage") else self.last
            return
        mid = _mid(rec) or f"line{n}"
        step = self.by_msg.get(mid)
        if step is None:
            step = self.by_msg[mid] = Step(source="agent", timestamp=ts, model=model if isinstance(model, str) else None)
            self.steps.append(step)
        text = (text or "").strip()
        if text:
            step.message = f"{step.message}\n\n{text}" if step.message else text
        thought = reasoning_of(content)
        if thought:
            step.reasoning = f"{step.reasoning}\n\n{thought}" if step.reasoning else thought
        have = {c.id for c in step.tool_calls}
        step.tool_calls += [c for c in tool_calls_in(msg, fail, "message", len(self.steps) - 1) if c.id not in have]
        if isinstance(msg.get("usage"), dict):
            self.usage[mid] = msg["usage"]
            u = msg["usage"]
            nums = {k: float(u[k]) for k, _ in USAGE if isinstance(u.get(k), (int, float)) and not isinstance(u.get(k), bool)}
            step.metrics = {"prompt_tokens": sum(v for k, v in nums.items() if k != "output_tokens"),
                            "completion_tokens": nums.get("output_tokens", 0.0),
                            "cached_tokens": nums.get("cache_read_input_tokens", 0.0)}
        if isinstance(model, str):
            self.models[model] += 1
        self.stop = msg.get("stop_reason") if isinstance(msg.get("stop_reason"), str) else self.stop
        self.last = "agent"

    def _user(self, rec: dict, fail, ts: str | None) -> None:
        content = self._message(rec, fail).get("content")
        results = results_in(content, fail, "message.content")
        for obs in results:
            attach(self.steps, obs)
        text = (text_of(content, fail, "message.content") or "").strip()
        if results:
            self.last = "result"
        if not text:
            return
        if rec.get("isCompactSummary"):
            self.compactions += 0 if self.steps and self.steps[-1].message == "[conversation compacted]" else 1
            self._system(text, ts)
        elif rec.get("isMeta"):
            if not text.startswith("<local-command-caveat>"):
                self._system(text, ts)
        elif _TAG.search(text) and text.lstrip().startswith("<"):
            line = _clean(text)
            self._system(line, ts)
            if self.command is None and "<command-name>" in text:
                self.command = line
        else:
            self.steps.append(Step(source="user", message=text, timestamp=ts))
            if text.startswith("[Request interrupted by user"):
                self.last = "interrupt"
            else:
                self.last, self.prompts = "prompt", self.prompts + 1
                prompt = _REMINDER.sub("", text).strip()
                self.task = self.task or prompt or None

    def termination(self) -> str:
        if self.last in ("interrupt", "error"):
            return "interrupted" if self.last == "interrupt" else "error"
        if self.last == "agent":
            last = next(s for s in reversed(self.steps) if s.source == "agent")
            if self.stop == "max_tokens":
                return "max_tokens"
            return "tool_call" if last.tool_calls and not last.observations else "stop"
        return "incomplete" if self.last in ("prompt", "result") else "unknown"

    def metrics(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for u in self.usage.values():  # one usage per API response (its last line's)
            for k, name in USAGE:
                if isinstance(u.get(k), (int, float)) and not isinstance(u.get(k), bool):
                    out[name] = out.get(name, 0.0) + float(u[k])
        calls = [c for s in self.steps for c in s.tool_calls]
        out.update(steps=float(len(self.steps)), tool_calls=float(len(calls)), turns=float(self.prompts),
                   tool_errors=float(sum(1 for s in self.steps for o in s.observations if o.is_error)))
        if self.compactions:
            out["compactions"] = float(self.compactions)
        return out


__all__ = ["main_chain", "Turns", "blocks", "parent_of", "CHAIN", "USAGE"]
