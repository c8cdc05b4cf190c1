"""OpenAI Codex CLI rollouts: ``~/.codex/sessions/YYYY/MM/DD/rollout-<time>-<id>.jsonl``, one
session per file.

Sources (openai/codex): ``codex-rs/protocol/src/protocol.rs`` (``RolloutLine {timestamp, type,
payload}``, ``RolloutItem`` session_meta | response_item | event_msg | turn_context | compacted,
``SessionMeta``, ``TurnContextItem``, ``EventMsg``, ``TokenCountEvent``),
``codex-rs/protocol/src/models.rs`` (``ResponseItem``), ``codex-rs/core/src/rollout.rs`` at
89a151f5 (the older format) and ``codex-cli/src/utils/storage/save-rollout.ts`` (the
TypeScript CLI); notes in ../shared/corpus/codex-cli/PROVENANCE.md. Variants: rollout lines
(Codex >= 0.3x); the older JSONL (a first line ``{id, timestamp, instructions?, git?}``, then
bare ``ResponseItem`` lines and skipped ``{"record_type": "state"}`` lines); the TypeScript
CLI's ``rollout-*.json`` ``{session, items}``. Unknown line, item and event types are skipped.

Finding: a ``.jsonl`` whose first line is a rollout line (or an older meta line followed by an
item), and every ``rollout-*.jsonl`` / ``rollout-*.json`` whatever it holds (a damaged rollout
fails with its line). Session id: the file stem.

Steps: ``response_item`` lines in order through
:class:`~streamgrade.formats.responses.ResponsesSteps` (one agent step per model response,
outputs linked by ``call_id``; a ``token_count`` event ends a response). ``developer`` messages
and the user messages Codex injects (:data:`CONTEXT_PREFIXES`: ``<environment_context>``,
AGENTS.md, skills, ...) are system steps, never the task. ``event_msg`` lines fill gaps: a
``user_message`` / ``agent_message`` without its ``response_item`` twin becomes a step; a call
without an output item gets one from its ``*_end`` event (exec_command, patch_apply,
mcp_tool_call, collab_*); exit codes (the output's own, else exec_command_end) and patch
success set ``is_error``. ``compacted`` lines and compaction items are system steps (the
history before them stays); ``thread_rolled_back {num_turns}`` drops the last user turns, as
Codex does on resume. ``session_meta.base_instructions`` (Codex's system prompt) is not a step.

Task: the first real user message. Model: the latest ``turn_context.model`` (each agent step
gets the current one), else ``session_meta.model``. Termination from the last turn event:
task_complete "stop", turn_aborted "interrupted" (or "aborted"), error "error", a turn never
finished "incomplete"; without events, "stop" / "tool_call" from the last step. Metrics: the
last ``token_count`` ``info.total_token_usage`` (input_tokens, cache_read_tokens, output_tokens,
reasoning_tokens, total_tokens; agent steps get their response's ``last_token_usage``), steps,
tool_calls, tool_errors, turns, errors, compactions, rolled_back_turns. No reward: rollouts
carry no outcome label.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..models import Observation, Session, SessionRef, Step
from ._agentlog import Verdicts, first_records, head, span, str_or_none
from ._rows import file_stem, looks_like_json, sanitise
from .base import iter_jsonl, load_json
from .codex_events import end_error, end_text, output_error
from .mapping import agent_session, role_of, text_of
from .responses import RESPONSES_CALLS, RESPONSES_OUTPUTS, ResponsesSteps

NAME = "codex-cli"
LINE_TYPES = frozenset({"session_meta", "response_item", "event_msg", "turn_context", "compacted"})
ITEM_TYPES = RESPONSES_CALLS | RESPONSES_OUTPUTS | {"message", "reasoning"}
COMPACTION_ITEMS = frozenset({"compaction", "compaction_summary", "context_compaction"})
#: Starts of the user-role messages Codex injects (codex-rs instruction markers and
#: contextual-message prefixes): context, not the user's request.
CONTEXT_PREFIXES = ("<environment_context", "<user_instructions", "# agents.md instructions", "<instructions>",
                    "<skills_instructions", "<skill>", "<skill ", "<user_shell_command", "<turn_aborted",
                    "<subagent_notification", "<context_update", "<collaboration_mode", "<permissions instructions",
                    "<personality_spec", "<model_switch", "<codex_internal_context", "<recommended_plugins",
                    "<hook_prompt", "<external_")
_ROLLOUT_HEAD = re.compile(rb'^\s*\{\s*"timestamp"\s*:\s*"[^"]*"\s*,\s*"type"\s*:\s*"(?:session_meta|response_item|'
                           rb'event_msg|turn_context|compacted)"')
_USAGE = (("input_tokens", "input_tokens"), ("cached_input_tokens", "cache_read_tokens"),
          ("output_tokens", "output_tokens"), ("reasoning_output_tokens", "reasoning_tokens"),
          ("total_tokens", "total_tokens"))
_STEP_USAGE = (("input_tokens", "prompt_tokens"), ("output_tokens", "completion_tokens"),
               ("cached_input_tokens", "cached_tokens"), ("reasoning_output_tokens", "reasoning_tokens"))
_VERDICTS = Verdicts()


def is_context(text: str) -> bool:
    """Whether a user message text is one Codex injects (see :data:`CONTEXT_PREFIXES`)."""
    return text.lstrip()[:40].lower().startswith(CONTEXT_PREFIXES)


def _kind(path: str) -> str | None:
    """"rollout" (rollout lines), "legacy" (an older meta line then an item) or None, from the
    file's first lines."""
    recs, partial = first_records(head(path), 2)
    if not recs:
        return "rollout" if partial and _ROLLOUT_HEAD.match(partial) else None
    first = recs[0]
    if not isinstance(first, dict):
        return None
    if str_or_none(first.get("type")) in LINE_TYPES and "payload" in first:
        return "rollout"
    if "type" not in first and isinstance(first.get("id"), str) and isinstance(first.get("timestamp"), str):
        nxt = recs[1] if len(recs) > 1 else None
        if isinstance(nxt, dict) and (str_or_none(nxt.get("type")) in ITEM_TYPES or nxt.get("record_type") == "state"):
            return "legacy"
    return None


class CodexCLI:
    """Codex CLI rollout files (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per rollout file (``.jsonl`` by content or ``rollout-*`` name; the
        TypeScript CLI's ``rollout-*.json``)."""
        out: list[SessionRef] = []
        for n in sorted(names):
            path = str(Path(folder) / n)
            named = n.startswith("rollout-")
            if n.endswith(".jsonl"):
                kind = _VERDICTS.get(path, _kind)
                if not named and kind not in ("rollout", "legacy"):
                    continue
            elif not (named and n.endswith(".json") and looks_like_json(path)):
                continue
            out.append(SessionRef(session_id=sanitise(file_stem(n)), format=NAME, path=path, files=(path,)))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the rollout. Raises InputError naming the file, the line and the field
        (``payload.content[0]``) of bad input."""
        return _Rollout(ref.path).read().session(ref)


Entry = tuple[int | None, str, Any, Any, str]  # (line, kind, payload, timestamp, field prefix)


def _entries(path: str) -> list[Entry]:
    """The file as (line, kind, payload, timestamp, field prefix) entries, every variant
    mapped onto rollout-line kinds."""
    if path.endswith(".json"):
        doc = load_json(path)
        if not isinstance(doc, dict):
            raise InputError(path, f"expected a JSON object with session and items, got {type(doc).__name__}")
        items = doc.get("items")
        if not isinstance(items, list):
            raise InputError(path, "expected a list of items" if items is not None else "missing field", field="items")
        out: list[Entry] = []
        if isinstance(doc.get("session"), dict):
            out.append((None, "session_meta", doc["session"], doc["session"].get("timestamp"), "session"))
        return out + [(None, "response_item", it, None, f"items[{i}]") for i, it in enumerate(items)]
    out = []
    legacy: bool | None = None
    for n, obj in iter_jsonl(path):
        if not isinstance(obj, dict):
            raise InputError(path, f"expected a JSON object, got {type(obj).__name__}", line=n)
        if legacy is None:
            legacy = not (str_or_none(obj.get("type")) in LINE_TYPES or "payload" in obj)
            if legacy and "type" not in obj and "record_type" not in obj:
                out.append((n, "session_meta", obj, obj.get("timestamp"), ""))
                continue
        if legacy:
            if obj.get("record_type") == "state":
                continue
            out.append((n, "response_item", obj, None, ""))
            continue
        kind = obj.get("type")
        if not isinstance(kind, str):
            raise InputError(path, "missing line type" if kind is None else "expected a string", line=n, field="type")
        if kind not in LINE_TYPES:
            continue  # a line type newer than this reader
        payload = obj.get("payload")
        if not isinstance(payload, dict):
            raise InputError(path, f"expected an object, got {type(payload).__name__}", line=n, field="payload")
        out.append((n, kind, payload, obj.get("timestamp"), "payload"))
    return out


def _parts(payload: dict) -> list[str]:
    """The texts of a message item's content parts (no errors: for classifying)."""
    content = payload.get("content")
    if isinstance(content, str):
        return [content]
    parts = content if isinstance(content, list) else []
    return [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]


def _text(payload: dict) -> str:
    return "\n".join(_parts(payload))


def _num(d: Any, key: str) -> float | None:
    v = d.get(key) if isinstance(d, dict) else None
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None


class _Rollout:
    """One rollout being read: the steps and what the events said."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.b = ResponsesSteps()
        self.meta: dict[str, Any] = {}
        self.model: str | None = None
        self.turn_starts: list[int] = []
        self.ends: dict[str, dict] = {}
        self.total: dict | None = None
        self.legacy_usage: dict[str, float] = {}
        self.status: str | None = None
        self.counts = {"errors": 0.0, "compactions": 0.0, "rolled_back_turns": 0.0}
        self.times: list[str] = []
        self.user_texts: list[str] = []
        self.agent_texts: list[str] = []
        self.search_id: str | None = None

    def fail(self, line: int | None, prefix: str):
        def make(field: str, msg: str) -> InputError:
            name = ".".join(x for x in (prefix, field.lstrip(".")) if x)
            return InputError(self.path, msg, line=line, field=name or None)
        return make

    def read(self) -> _Rollout:
        entries = _entries(self.path)
        for _, kind, p, _, _ in entries:  # response_item twins of the UI events
            if kind == "response_item" and p.get("type") == "message":
                role, text = role_of(p), _text(p).strip()
                if role == "user" and text and not any(is_context(t) for t in _parts(p)):
                    self.user_texts.append(text)
                elif role == "assistant" and text:
                    self.agent_texts.append(text)
        for line, kind, p, ts, prefix in entries:
            if isinstance(ts, str):
                self.times.append(ts)
            before = len(self.b.steps)
            if kind == "session_meta":
                self._meta(p)
            elif kind == "turn_context":
                self._turn_context(p)
            elif kind == "compacted":
                msg = p.get("message")
                self._system("[context compacted]" + (f"\n{msg}" if isinstance(msg, str) and msg else ""))
                self.counts["compactions"] += 1
            elif kind == "response_item":
                self._item(p, self.fail(line, prefix))
            elif kind == "event_msg":
                self._event(p)
            for step in self.b.steps[before:]:
                step.timestamp = ts if isinstance(ts, str) else None
                if step.source == "agent":
                    step.model = self.model
        return self

    def _meta(self, p: dict) -> None:
        if "session_id" in self.meta:
            return  # a fork repeats its parent's session_meta lines: the first is this session's
        self.meta["session_id"] = p.get("id", p.get("session_id"))
        for k in ("timestamp", "cwd", "originator", "cli_version", "source", "model_provider", "forked_from_id",
                  "agent_nickname", "agent_role", "git"):
            if p.get(k) is not None:
                self.meta[k] = p[k]
        source = p.get("source")  # "cli", "exec", ... or {"subagent": {"thread_spawn": {parent_thread_id}}}
        sub = source.get("subagent") if isinstance(source, dict) else None
        spawn = sub.get("thread_spawn") if isinstance(sub, dict) else None
        if isinstance(spawn, dict) and spawn.get("parent_thread_id"):
            self.meta["parent_thread_id"] = spawn["parent_thread_id"]
        base = p.get("base_instructions")
        text = base.get("text") if isinstance(base, dict) else base
        if isinstance(text, str):
            self.meta["base_instructions_chars"] = len(text)
        instructions = p.get("instructions")  # the older format: the user's instructions
        if isinstance(instructions, str) and instructions.strip():
            self._system(instructions)
        if isinstance(p.get("model"), str):
            self.model = p["model"]

    def _turn_context(self, p: dict) -> None:
        if isinstance(p.get("model"), str) and p["model"]:
            self.model = p["model"]
        for k in ("approval_policy", "effort", "cwd"):
            if isinstance(p.get(k), str):
                self.meta[k] = p[k]
        sandbox = p.get("sandbox_policy")
        if isinstance(sandbox, dict) and isinstance(sandbox.get("type", sandbox.get("mode")), str):
            self.meta["sandbox"] = sandbox.get("type", sandbox.get("mode"))

    def _system(self, text: str) -> None:
        self.b.append(Step(source="system", message=text))

    def _user(self, text: str) -> None:
        self.turn_starts.append(len(self.b.steps))
        self.b.append(Step(source="user", message=text))

    def _item(self, p: dict, fail) -> None:
        kind = str_or_none(p.get("type"))
        if kind == "message" and role_of(p) == "user":
            text = text_of(p.get("content"), fail, "content") or ""
            if any(is_context(t) for t in _parts(p)):  # Codex: any injected part makes it context
                self._system(text)
            else:
                self._user(text)
        elif kind in COMPACTION_ITEMS:
            self._system("[context compacted]")
            self.counts["compactions"] += 1
        elif kind == "web_search_call" and not (p.get("call_id") or p.get("id")) and self.search_id:
            self.b.add({**p, "call_id": self.search_id}, fail, "")  # its web_search_end came first
            self.search_id = None
        elif kind == "agent_message":  # a message between agents (multi-agent Codex)
            text = text_of(p.get("content"), fail, "content") or ""
            self._system(f"[message from {p.get('author', 'agent')} to {p.get('recipient', 'agent')}]\n{text}")
        else:
            self.b.add(p, fail, "")

    def _event(self, p: dict) -> None:
        kind = str_or_none(p.get("type"))
        msg = p.get("message") if isinstance(p.get("message"), str) else None
        if kind == "user_message" and msg and msg.strip() and p.get("kind") in (None, "plain") and not is_context(msg):
            if not _consume(self.user_texts, msg.strip()):
                self._user(msg)
        elif kind == "agent_message" and msg and msg.strip():
            if not _consume(self.agent_texts, msg.strip()):
                self.b.add({"type": "message", "role": "assistant", "content": msg}, self.fail(None, ""), "")
                self.b.close()
        elif kind == "token_count":
            self._tokens(p)
        elif isinstance(kind, str) and (kind.endswith("_end") or kind in ("view_image_tool_call", "dynamic_tool_call_response")):
            cid = p.get("call_id")
            if isinstance(cid, str) and kind != "web_search_end":
                self.ends[cid] = p
            elif isinstance(cid, str):
                self.search_id = cid
        if kind in ("task_started", "turn_started"):
            self.status = "incomplete"
        elif kind in ("task_complete", "turn_complete"):
            self.status = "stop"
        elif kind == "turn_aborted":
            self.status = "interrupted" if p.get("reason") == "interrupted" else "aborted"
        elif kind == "error":
            self.status, self.counts["errors"] = "error", self.counts["errors"] + 1
        elif kind == "thread_rolled_back":
            n = p.get("num_turns")
            if isinstance(n, int) and not isinstance(n, bool) and 0 < n <= len(self.turn_starts):
                cut = self.turn_starts[-n]
                del self.b.steps[cut:], self.turn_starts[-n:]
                self.b.close()
                self.counts["rolled_back_turns"] += n
        elif kind == "thread_name_updated" and isinstance(p.get("thread_name"), str):
            self.meta["title"] = p["thread_name"]

    def _tokens(self, p: dict) -> None:
        info = p.get("info")
        if isinstance(info, dict):  # sent when a model response ends: the next item starts a new step
            self.b.close()
            if isinstance(info.get("total_token_usage"), dict):
                self.total = info["total_token_usage"]
            last = info.get("last_token_usage")
            step = self.b.steps[-1] if self.b.steps else None
            if isinstance(last, dict) and step is not None and step.source == "agent" and not step.metrics:
                step.metrics = {name: v for k, name in _STEP_USAGE if (v := _num(last, k)) is not None}
        elif "info" not in p:  # older events: the usage itself
            for k, name in _USAGE:
                if (v := _num(p, k)) is not None:
                    self.legacy_usage[name] = self.legacy_usage.get(name, 0.0) + v

    def _finish(self) -> None:
        """Outputs from ``*_end`` events for calls without an output item; error flags."""
        for step in self.b.steps:
            answered = {o.source_call_id for o in step.observations}
            for call in step.tool_calls:
                end = self.ends.get(call.id)
                if call.id not in answered and end is not None:
                    step.observations.append(Observation(content=end_text(end), source_call_id=call.id,
                                                         is_error=end_error(end, "")))
            for o in step.observations:
                if o.is_error is None and o.source_call_id is not None:
                    o.is_error = output_error(o.content, self.ends.get(o.source_call_id))

    def session(self, ref: SessionRef) -> Session:
        self._finish()
        steps = self.b.steps
        first = next((s for s in steps if s.source == "user" and s.message and s.message.strip()), None)
        if first is None:
            raise InputError(self.path, "no user message: the task is the first user request (only injected context "
                                        "or no user turn found)", line=1 if not self.path.endswith(".json") else None)
        metrics: dict[str, float] = {}
        for k, name in _USAGE:
            if (v := _num(self.total, k)) is not None:
                metrics[name] = v
        for name, v in self.legacy_usage.items():
            metrics.setdefault(name, v)
        calls = [c for s in steps for c in s.tool_calls]
        metrics.update(steps=float(len(steps)), tool_calls=float(len(calls)), turns=float(len(self.turn_starts)),
                       tool_errors=float(sum(1 for s in steps for o in s.observations if o.is_error)),
                       **{k: v for k, v in self.counts.items() if v})
        termination = self.status  # from the turn events; files without them: from the last step
        if termination is None:
            last = steps[-1]
            termination = ("tool_call" if last.tool_calls else "stop") if last.source == "agent" else "unknown"
        meta = {k: v for k, v in self.meta.items() if v is not None}
        return agent_session(ref, steps, task=first.message, agent="codex-cli", model=self.model,
                             termination=termination, metrics=metrics, meta=meta, duration_s=span(self.times))


def _consume(texts: list[str], msg: str) -> bool:
    """Remove and report the first text in ``texts`` that is ``msg`` or holds it."""
    for i, t in enumerate(texts):
        if t == msg or msg in t:
            del texts[i]
            return True
    return False


__all__ = ["CodexCLI", "NAME", "CONTEXT_PREFIXES", "is_context"]
