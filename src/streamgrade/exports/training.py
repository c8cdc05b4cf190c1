"""Training rows built from the graded sessions of an output folder: ChatML SFT, ShareGPT and
strict OpenAI SFT, with their metadata, one tool list per source and the pass filter.

Training files are derived data: they are rebuilt from the session folders and the
session store (the durable record, :mod:`.store`) at the end of a grade run, when ``watch`` is idle, and by ``streamgrade export``;
scores.jsonl is the one file appended exactly once. Building is two streaming passes over
the sessions: the first collects each source's tools (:mod:`.tools`) and rewards (for the
pass mark), the second writes the rows, one session's messages in memory at a time.

Which sessions train (:class:`PassRule`): by default only those that pass: the reward is
at least the source's pass mark where the session has a reward (``[exports] reward_pass``,
else 1.0 when the source's rewards are 0/1 and their median otherwise, as ``stats`` does),
else the judge score is at least ``[exports] pass_score`` (50). Ungradable records never train (not
graded). ``--all`` keeps every graded
session; the ``[exports]`` filters (min_score, min_reward, ...) apply in both cases. Every
session left out is counted with its reason.

Metadata (``--no-metadata`` leaves it out): ``{"metadata": {session_id, source_format,
task_id, score, reward, judge}}`` on ChatML and ShareGPT rows (TRL and LLaMA-Factory ignore
a column they do not map); never on the strict OpenAI rows (OpenAI rejects unknown keys).
"""

from __future__ import annotations

import json
from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import msgspec

from .filters import ExportFilter
from .openai_sft import to_openai_sft
from .sharegpt import ShareGPTError, to_sharegpt
from .store import GradedSession, Sessions, load_graded
from .tools import SourceTools, source_key

#: Training files and their names under OUT/exports/.
FILE_NAMES = {"sft": "sft.chatml.jsonl", "sharegpt": "sharegpt.jsonl", "openai-sft": "sft.openai.jsonl",
              "dpo": "dpo.jsonl", "openai-dpo": "dpo.openai.jsonl"}
SESSION_FORMATS = ("sft", "sharegpt", "openai-sft")


class Rejections:
    """Why sessions (or pairs) were left out: counts by reason, the first 1,000 in full."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.count = 0
        self.by_reason: dict[str, int] = defaultdict(int)

    def add(self, what: str, reason: str) -> None:
        self.count += 1
        self.by_reason[_kind(reason)] += 1
        if len(self.items) < 1000:
            self.items.append((what, reason))

    def common(self, n: int = 3) -> str:
        return ", ".join(f"{k} ({c})" for k, c in sorted(self.by_reason.items(), key=lambda kv: -kv[1])[:n])


def _kind(reason: str) -> str:
    """The kind of a reason, for counting: its words before the first figure or quote."""
    words = []
    for w in reason.split():
        if any(ch.isdigit() for ch in w) or w[:1] in "'\"(":
            break
        words.append(w)
    return " ".join(words[:6]) or reason[:40]


def row_metadata(record: dict[str, Any]) -> dict[str, Any]:
    """The metadata of a training row, from the session's record."""
    judge = record.get("judge") if isinstance(record.get("judge"), dict) else {}
    kind, model = judge.get("kind"), judge.get("model")
    return {"session_id": record.get("session_id"), "source_format": record.get("source_format"),
            "task_id": record.get("task_id"), "score": record.get("score"), "reward": record.get("reward"),
            "judge": f"{kind}/{model}" if kind and model else kind}


class PassRule:
    """Which sessions pass (see the module docstring): :meth:`add` every record in the first
    pass, then :meth:`reject_reason`."""

    def __init__(self, reward_pass: float | None = None, pass_score: float = 50.0):
        self.reward_pass = reward_pass
        self.pass_score = pass_score
        self._rewards: dict[str, array] = defaultdict(lambda: array("d"))  # 8 bytes a reward, not 32
        self._marks: dict[str, float] | None = None

    def add(self, record: dict[str, Any]) -> None:
        r = record.get("reward")
        if isinstance(r, (int, float)) and not isinstance(r, bool):
            self._rewards[source_key(record)].append(float(r))

    def mark(self, key: str) -> float | None:
        """The reward pass mark of a source (None without rewards)."""
        from ..stats import pass_mark

        if self._marks is None:
            self._marks = {k: pass_mark(v, self.reward_pass) for k, v in self._rewards.items() if v}
            self._rewards.clear()
        return self._marks.get(key)

    def reject_reason(self, record: dict[str, Any]) -> str | None:
        r = record.get("reward")
        mark = self.mark(source_key(record))
        if isinstance(r, (int, float)) and not isinstance(r, bool) and mark is not None:
            return None if r >= mark else f"reward {r:g} below the pass mark {mark:g}"
        score = record.get("score")
        if isinstance(score, (int, float)) and score >= self.pass_score:
            return None
        return f"no reward and score {score} below pass_score {self.pass_score:g}"


def chat_messages(gs: GradedSession) -> list[dict[str, Any]]:
    """A session's OpenAI chat messages as training rows use them: null contents as ""
    (DeepSeek-V3's template, among others, breaks on null), an empty tool result as
    ``(empty)``, and a tool-call id that an earlier call of the row already used renamed
    (``<id>~<n>``), with the results that follow it."""
    out = []
    seen: set[str] = set()
    renamed: dict[str, str] = {}
    for m in gs.messages:
        m = dict(m)
        if m.get("content") is None:
            m["content"] = ""
        if m.get("role") == "assistant" and m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                cid = str(tc.get("id"))
                new = cid
                while new in seen:
                    new = f"{cid}~{len(seen)}"
                seen.add(new)
                renamed[cid] = new
                calls.append({**tc, "id": new} if new != cid else tc)
            m["tool_calls"] = calls
        elif m.get("role") == "tool":
            if m.get("tool_call_id") in renamed:
                m["tool_call_id"] = renamed[m["tool_call_id"]]
            if m["content"] == "":
                m["content"] = "(empty)"
        out.append(m)
    return out


def row_messages(gs: GradedSession) -> list[dict[str, Any]]:
    """The messages a session's rows are built from: :func:`chat_messages` up to the last
    assistant turn."""
    messages = chat_messages(gs)
    while messages and messages[-1].get("role") != "assistant":
        messages.pop()
    return messages


def session_rows(fmt: str, gs: GradedSession, tools: list[dict[str, Any]], *, metadata: bool,
                 messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """One session's row in ``fmt`` (sft, sharegpt, openai-sft), from ``messages`` when
    given (:func:`row_messages`, computed once for every format); ValueError (or
    ShareGPTError) with the reason when it has none."""
    messages = list(messages) if messages is not None else row_messages(gs)
    if not any(m.get("role") == "assistant" for m in messages):
        raise ValueError("no assistant turn")
    if fmt == "openai-sft":
        row = to_openai_sft(messages, tools)
        if row is None:
            raise ValueError("no assistant turn")
        return row
    if fmt == "sft":
        row = {"messages": messages}
        if tools:
            row["tools"] = tools
    elif fmt == "sharegpt":
        row = to_sharegpt(messages, tools)
    else:
        raise ValueError(f"unknown session format {fmt!r}")
    if metadata:
        row["metadata"] = row_metadata(gs.record)
    return row


@dataclass
class Built:
    """What a build wrote for one format: ``rows`` and the sessions ``rejected`` (reasons)."""

    fmt: str
    rows: int = 0
    rejected: Rejections = field(default_factory=Rejections)


def first_pass(out: "Path | Sessions", flt: ExportFilter, rule: PassRule | None,
               on_graded: Callable[[GradedSession], None] | None = None) -> tuple[SourceTools, int]:
    """Each source's tools and the rewards of the pass rule; returns (tools, graded).
    ``on_graded`` is called with every graded session whose task could be read (with its
    messages when they could be read too): the preference pairs group their runs in this
    same pass (:func:`.dpo.write_pairs` ``groups``)."""
    if not isinstance(out, Sessions):
        with Sessions(out) as sessions:
            return first_pass(sessions, flt, rule, on_graded)
    tools = SourceTools()
    n = 0
    for gs in out.graded(with_messages=False):
        if not out.fill(gs):
            if on_graded is not None and out.fill(gs, messages=False):
                on_graded(gs)  # its task alone: a run whose messages are broken is reported by the pairs
            continue
        n += 1
        tools.add(source_key(gs.record), gs.messages, gs.tools)
        if rule is not None:
            rule.add(gs.record)
        if on_graded is not None:
            on_graded(gs)
        gs.messages = []
    return tools, n


def build_session_exports(out: "str | Path | Sessions", writers: dict[str, Callable[[dict[str, Any]], None]], flt: ExportFilter,
                          *, rule: PassRule | None, metadata: bool = True,
                          tools: SourceTools | None = None) -> tuple[dict[str, Built], int]:
    """Write the rows of the session formats in ``writers`` (format -> a function taking a
    row) for the graded sessions under ``out`` (two passes; see the module docstring).
    ``rule`` None keeps every session that passes ``flt`` (``--all``). Returns (what each
    format got, sessions considered)."""
    if tools is None:
        tools, _ = first_pass(out, flt, rule)
    built = {fmt: Built(fmt) for fmt in writers}
    considered = 0
    for gs in load_graded(out):
        considered += 1
        reason = flt.reject_reason(gs.record) or (rule.reject_reason(gs.record) if rule is not None else None)
        if reason:
            for b in built.values():
                b.rejected.add(gs.session_id, reason)
            continue
        key = source_key(gs.record)
        row_tools = tools.tools_for(key, gs.messages) if (tools.declared.get(key) or tools.called.get(key)) else []
        messages = row_messages(gs)
        for fmt, write in writers.items():
            try:
                write(session_rows(fmt, gs, row_tools, metadata=metadata, messages=messages))
                built[fmt].rows += 1
            except (ValueError, ShareGPTError) as exc:
                built[fmt].rejected.add(gs.session_id, str(exc))
        gs.messages = []
    return built, considered


_ENCODER = msgspec.json.Encoder()


def encode(row: dict[str, Any]) -> bytes:
    """A row as one JSONL line: compact JSON, UTF-8 (msgspec, several times faster than
    ``json.dumps``); a value msgspec cannot encode (an int beyond 64 bits) falls back on
    ``json.dumps``."""
    try:
        return _ENCODER.encode(row) + b"\n"
    except (TypeError, OverflowError, msgspec.EncodeError):
        return json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


__all__ = ["FILE_NAMES", "SESSION_FORMATS", "Rejections", "PassRule", "row_metadata", "session_rows",
           "build_session_exports", "first_pass", "Built", "encode", "chat_messages", "row_messages"]
