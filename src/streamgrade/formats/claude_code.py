"""Claude Code session transcripts: ``~/.claude/projects/<project>/<session>.jsonl``, one session
per file, with the session's subagent transcripts (``<session>/subagents/agent-*.jsonl``; in
2.0.x ``agent-*.jsonl`` beside it) folded in.

Sources: Claude Code writes the format (it is not open source); read from the transcripts it
writes and the tools that parse them: simonw/claude-code-transcripts and marot/spotter (their
fixtures are ../shared/corpus/claude-code, see PROVENANCE.md), jeremedia/claude-code-log-format
(``source-docs/JSONL_LOGGING.md``: appendEntry, sidechain files, from the CLI's source),
microsoft/amplifier ``ai_working/claude_code_logging`` (forks, compaction). Lines are
``{type, uuid, parentUuid, sessionId, isSidechain, isMeta?, timestamp, cwd, version, gitBranch,
message?: {role, content: str | [text | thinking | tool_use | tool_result | image], model, id,
stop_reason, usage}, toolUseResult?, ...}``; other types (summary, file-history-snapshot,
progress, queue-operation, custom-title, attachment, ...) carry no conversation.

Finding: a ``.jsonl`` file whose first line is a Claude Code line and that holds a user or
assistant line (a byte scan; no parse) is a session, unless it is a sidechain (a subagent's
file). Subagent files, summary-only files and a session's ``tool-results/`` files are owned
(:func:`owned_names`), never unrecognised. Session id: the file stem.

The conversation is the main chain and its steps (:mod:`.claude_code_chain`: the last branch
of forks and retries; split API responses joined; commands, ``isMeta`` and compaction
summaries as system steps). Sidechains (``isSidechain``: subagent runs, in the file or in
subagent files) never become steps: each is summarised in ``meta.subagents`` (its task,
model, steps, tool calls by name, tokens, termination; linked to its Task/Agent call through
``toolUseResult.agentId`` or ``agent_progress``) and counted in metrics; the call's own
tool_result (the subagent's answer) is its observation. ``meta.abandoned`` counts the
user/assistant lines of abandoned branches.

Task: the first real prompt (``<system-reminder>`` blocks removed), else the first slash
command. Model: the most used on the main chain. Termination: "interrupted" ([Request
interrupted by user...]), "error" (an API error message), "max_tokens", "tool_call" (ends on
unanswered calls), "stop", "incomplete" (ends on a prompt or a tool result). Metrics: tokens
summed over distinct API responses (input_tokens, output_tokens, cache_creation_tokens,
cache_read_tokens), the same for subagents (``subagent_*``), steps, tool_calls, tool_errors,
turns (prompts), compactions. No reward: transcripts carry no outcome label.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

from ..config import Config
from ..errors import InputError
from ..models import Session, SessionRef
from ._agentlog import Verdicts, contains, first_records, head, span, str_or_none
from ._rows import file_stem, sanitise
from .base import iter_jsonl, within
from .claude_code_chain import CHAIN, USAGE, Turns, blocks, main_chain, parent_of
from .mapping import agent_session

NAME = "claude-code"
TYPES = frozenset({"user", "assistant", "system", "summary", "file-history-snapshot", "progress", "queue-operation",
                   "custom-title", "attachment", "agent-name", "last-prompt", "tag"})
_CONV = re.compile(rb'"type"\s*:\s*"(?:user|assistant)"')
_SIG = re.compile(rb'"(?:sessionId|parentUuid|leafUuid|isSidechain)"\s*:')
_TYPE = re.compile(rb'"type"\s*:\s*"(?:user|assistant|system|summary|file-history-snapshot|progress|queue-operation)"')
_SIDE = re.compile(rb'"isSidechain"\s*:\s*true')
_SID = re.compile(rb'"sessionId"\s*:\s*"([^"]{1,200})"')
_UUID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}$")
_VERDICTS = Verdicts()


class Verdict(NamedTuple):
    """What a ``.jsonl`` file is to this format: a conversation or only bookkeeping lines
    (``conversation``), a subagent's file (``sidechain``), its ``sessionId``."""

    conversation: bool
    sidechain: bool
    session_id: str | None


def _looks(rec: Any) -> bool:
    if not isinstance(rec, dict) or not isinstance(rec.get("type"), str):
        return False
    if rec["type"] in ("summary", "file-history-snapshot"):
        return "leafUuid" in rec or "snapshot" in rec or "messageId" in rec
    keyed = isinstance(rec.get("sessionId"), str) or "parentUuid" in rec or "uuid" in rec
    return keyed and (rec["type"] in TYPES or isinstance(rec.get("sessionId"), str))


def verdict(path: str) -> Verdict | None:
    """The file's :class:`Verdict` from its head (and, for a head without a message line, a
    byte scan for one); None when it is not a Claude Code transcript. Never raises."""
    recs, partial = first_records(head(path))
    if recs:
        if not _looks(recs[0]):
            return None
        msg = next((r for r in recs if isinstance(r, dict) and r.get("type") in ("user", "assistant")), None)
        sid = next((r["sessionId"] for r in recs if isinstance(r, dict) and isinstance(r.get("sessionId"), str)), None)
        side = bool(msg and msg.get("isSidechain") is True)
        return Verdict(msg is not None or contains(path, _CONV), side, sid)
    top = partial[:8192]
    if not (top and _TYPE.search(top) and _SIG.search(top)):
        return None
    m = _SID.search(top)
    return Verdict(bool(_CONV.search(top)) or contains(path, _CONV), bool(_SIDE.search(top)),
                   m.group(1).decode("utf-8", "replace") if m else None)


def _subagent_files(folder: Path, stem: str, names: list[str], own: str | None) -> list[str]:
    """The subagent transcripts of session ``stem``: ``<stem>/subagents/agent-*.jsonl`` (files
    inside ``folder`` after resolving links) and (Claude Code 2.0.x) sidechain
    ``agent-*.jsonl`` files beside it with its sessionId."""
    out = []
    sub = folder / stem / "subagents"
    try:
        with os.scandir(sub) as it:
            out += [e.path for e in it if e.name.startswith("agent-") and e.name.endswith(".jsonl") and e.is_file()
                    and within(e.path, folder)]  # a link out of the project is not read
    except OSError:
        pass
    for n in names:
        if n.startswith("agent-") and n.endswith(".jsonl"):
            v = _VERDICTS.get(str(folder / n), verdict)
            if v is not None and v.sidechain and v.session_id in (stem, own):
                out.append(str(folder / n))
    return sorted(out)


def owned_names(folder: Path, names: list[str]) -> set[str]:
    """Names in ``folder`` that belong to Claude Code sessions without being one: subagent
    transcripts (in ``subagents/`` or beside the session), files with no conversation
    (summary-only files), and the files of a session's ``tool-results/`` folder."""
    folder = Path(folder)
    if folder.name == "tool-results" and _UUID.match(folder.parent.name):
        return set(names)
    out = set()
    for n in names:
        if n.endswith(".jsonl"):
            v = _VERDICTS.get(str(folder / n), verdict)
            if v is not None and (v.sidechain or not v.conversation or folder.name == "subagents"):
                out.add(n)
    return out


class ClaudeCode:
    """Claude Code session transcripts (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per transcript with a conversation that is not a sidechain; its files are
        the transcript and its subagent transcripts."""
        folder = Path(folder)
        if folder.name == "subagents":
            return []
        out = []
        for n in sorted(names):
            if not n.endswith(".jsonl"):
                continue
            path = str(folder / n)
            v = _VERDICTS.get(path, verdict)
            if v is None or v.sidechain or not v.conversation:
                continue
            files = (path, *_subagent_files(folder, file_stem(n), names, v.session_id))
            out.append(SessionRef(session_id=sanitise(file_stem(n)), format=NAME, path=path, files=files))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the transcript and its subagent files. Raises InputError naming the file, the
        line and the field (``message.content[2].name``) of bad input."""
        records = _read(ref.path)
        chain, abandoned = main_chain(records, sidechain=False)
        t = Turns(ref.path).run(chain)
        if not t.steps:
            raise InputError(ref.path, "no conversation: no user or assistant message on the main chain", line=1)
        task = t.task or t.command
        if task is None:
            raise InputError(ref.path, "no task: no user prompt or command on the main chain", line=chain[0][0])
        subs = _subagents(ref, records)
        first = next((r for _, r in chain if isinstance(r.get("sessionId"), str)), {})
        meta: dict[str, Any] = {"session_id": first.get("sessionId"), "cwd": first.get("cwd"),
                                "git_branch": first.get("gitBranch"), "version": chain[-1][1].get("version"),
                                "slug": next((r["slug"] for _, r in chain if isinstance(r.get("slug"), str)), None),
                                "title": _title(records), "abandoned": abandoned, "subagents": subs}
        metrics = {**t.metrics(), "subagents": float(len(subs))}
        for s in subs:
            for k, v in s["tokens"].items():
                metrics[f"subagent_{k}"] = metrics.get(f"subagent_{k}", 0.0) + v
            metrics["subagent_tool_calls"] = metrics.get("subagent_tool_calls", 0.0) + s["tool_calls"]
        model = t.models.most_common(1)[0][0] if t.models else None
        return agent_session(ref, t.steps, task=task, agent="claude-code", model=model, termination=t.termination(),
                             metrics=metrics, meta={k: v for k, v in meta.items() if v not in (None, [], 0)},
                             duration_s=span([r.get("timestamp") for _, r in chain]))


def _read(path: str) -> list[tuple[int, dict]]:
    out = []
    for n, rec in iter_jsonl(path):
        if not isinstance(rec, dict):
            raise InputError(path, f"expected a JSON object, got {type(rec).__name__}", line=n)
        out.append((n, rec))
    return out


def _title(records: list[tuple[int, dict]]) -> str | None:
    """The session's custom title, else its latest summary whose leafUuid is in this file
    (Claude Code has written other sessions' summaries into files)."""
    uuids = {r["uuid"] for _, r in records if isinstance(r.get("uuid"), str)}
    titles = [r["customTitle"] for _, r in records if r.get("type") == "custom-title" and isinstance(r.get("customTitle"), str)]
    summaries = [r["summary"] for _, r in records if r.get("type") == "summary" and isinstance(r.get("summary"), str)
                 and str_or_none(r.get("leafUuid")) in uuids]
    return (titles or summaries or [None])[-1]


def _subagents(ref: SessionRef, records: list[tuple[int, dict]]) -> list[dict[str, Any]]:
    """A summary of each subagent run: the session's subagent files and the sidechains in its
    own file (grouped by agentId, else by root line)."""
    calls: dict[str, str] = {}  # agentId -> the Task/Agent call that ran it
    for _, r in records:
        res, data = r.get("toolUseResult"), r.get("data")
        if isinstance(res, dict) and isinstance(res.get("agentId"), str):
            ids = [b.get("tool_use_id") for b in blocks(r, "tool_result")]
            if ids and isinstance(ids[0], str):
                calls[res["agentId"]] = ids[0]
        if isinstance(data, dict) and data.get("type") == "agent_progress" and isinstance(data.get("agentId"), str) \
                and isinstance(r.get("parentToolUseID"), str):
            calls.setdefault(data["agentId"], r["parentToolUseID"])
    groups: dict[str, tuple[str, list[tuple[int, dict]]]] = {}
    for f in ref.files[1:]:
        recs = _read(f)
        aid = next((r["agentId"] for _, r in recs if isinstance(r.get("agentId"), str)), Path(f).stem[len("agent-"):])
        groups[f] = (aid, [(n, {**r, "isSidechain": True}) for n, r in recs])
    inline = [(n, r) for n, r in records if r.get("isSidechain") is True and str_or_none(r.get("type")) in CHAIN]
    for key, recs in _by_agent(inline).items():
        groups[f"{ref.path}#{key}"] = (key, recs)
    out = []
    for where, (aid, recs) in groups.items():
        chain, _ = main_chain(recs, sidechain=True)
        t = Turns(where.split("#")[0]).run(chain)
        names = Counter(c.name for s in t.steps for c in s.tool_calls)
        m = t.metrics()
        out.append({"agent_id": aid, "file": os.path.basename(where), "call_id": calls.get(aid),
                    "task": (t.task or t.command or "")[:300], "model": t.models.most_common(1)[0][0] if t.models else None,
                    "steps": len(t.steps), "tool_calls": int(m["tool_calls"]), "tools": dict(names),
                    "termination": t.termination() if t.steps else "unknown",
                    "tokens": {k: m[k] for _, k in USAGE if m.get(k)}})
    return out


def _by_agent(recs: list[tuple[int, dict]]) -> dict[str, list[tuple[int, dict]]]:
    """Sidechain lines of a main file by agentId, else by the root line of their chain."""
    by_uuid = {r["uuid"]: r for _, r in recs if isinstance(r.get("uuid"), str)}

    def root(r: dict) -> str:
        seen: set[str] = set()
        while isinstance(parent_of(r), str) and parent_of(r) in by_uuid and parent_of(r) not in seen:
            seen.add(parent_of(r))
            r = by_uuid[parent_of(r)]
        return str(r.get("uuid"))
    out: dict[str, list[tuple[int, dict]]] = {}
    for n, r in recs:
        out.setdefault(r["agentId"] if isinstance(r.get("agentId"), str) else f"sidechain-{root(r)[:8]}", []).append((n, r))
    return out


__all__ = ["ClaudeCode", "NAME", "main_chain", "verdict", "owned_names"]
