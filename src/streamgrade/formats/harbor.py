"""Harbor trials and lone ATIF trajectories (agent traces with OpenAI-shaped transcripts).

Source: Harbor (harbor-framework/harbor) job outputs and its golden ATIF fixtures; schema
notes in ../shared/corpus/harbor/PROVENANCE.md.

* :class:`HarborTrial` ("harbor"): a trial folder ``<trial>/`` holding ``result.json`` and
  ``agent/trajectory.json`` (ATIF). The reward is ``result.json``
  ``verifier_result.rewards.reward``; the verifier's own output (``verifier/``) is never read,
  so it cannot leak into the transcript or the task.
* :class:`AtifFile` ("atif"): a lone ATIF JSON file (root ``schema_version`` "ATIF-v1.x"),
  except trajectories inside a Harbor trial and files another ATIF file in the same folder
  references as its continuation (``continued_trajectory_ref``) or subagent
  (``observation.results[].subagent_trajectory_ref``). No verifier, so reward is None.

ATIF (v1.2-1.6): root ``{schema_version, session_id, agent {name, version, model_name,
tool_definitions?}, steps [...], final_metrics {total_prompt_tokens, total_completion_tokens,
total_cached_tokens?, total_cost_usd?}, continued_trajectory_ref?}``; a step is ``{step_id,
timestamp?, source user|agent|system, message, reasoning_content?, model_name?, tool_calls
[{tool_call_id, function_name, arguments}]?, observation {results [{source_call_id?,
content, subagent_trajectory_ref?}]}?, metrics?, is_copied_context?}``.

Reference resolution: a ref is resolved relative to the referencing file's folder. Harbor's
golden fixtures are stored renamed with a prefix (``X.trajectory.json`` references
``trajectory.cont-1.json``, stored as ``X.trajectory.cont-1.json``), so when the plain path
is absent the prefixed one is tried.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..models import ChatMessage, Session, SessionRef, ToolCall, ToolFunction
from .base import load_json, require

HARBOR = "harbor"
ATIF = "atif"
RESULT = "result.json"
TRAJECTORY = os.path.join("agent", "trajectory.json")
PEEK_BYTES = 4096
CONT_FIELD = "continued_trajectory_ref"
SUB_FIELD = "subagent_trajectory_ref"

# path -> ((mtime_ns, size), is_atif, refs): find() is called on every watch event.
_REF_CACHE: dict[str, tuple[tuple[int, int], bool, tuple[str, ...], tuple[str, ...]]] = {}


# --------------------------------------------------------------------------- helpers


def resolve_ref(base: str | Path, ref: str) -> Path | None:
    """The existing file ``ref`` names, relative to ``base``'s folder (see module
    docstring for the prefixed fallback), or None."""
    base = Path(base)
    plain = base.parent / ref
    if plain.is_file():
        return plain
    name = base.name
    if name.endswith("trajectory.json") and ref.startswith("trajectory."):
        prefixed = base.parent / (name[: -len("trajectory.json")] + ref)
        if prefixed.is_file():
            return prefixed
    return None


def _sub_ref_paths(value: Any) -> list[str]:
    """The trajectory paths named by a ``subagent_trajectory_ref`` (a string, an object
    with ``trajectory_path``, or a list of either)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        p = value.get("trajectory_path") or value.get("path")
        return [p] if isinstance(p, str) else []
    if isinstance(value, list):
        return [p for v in value for p in _sub_ref_paths(v)]
    return []


def _doc_refs(doc: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(continuation refs, subagent refs) named in a parsed ATIF document."""
    if not isinstance(doc, dict):
        return (), ()
    cont = doc.get(CONT_FIELD)
    conts = (cont,) if isinstance(cont, str) and cont else ()
    subs: list[str] = []
    for step in doc.get("steps") or []:
        obs = step.get("observation") if isinstance(step, dict) else None
        results = obs.get("results") if isinstance(obs, dict) else None
        for r in results or []:
            if isinstance(r, dict) and r.get(SUB_FIELD):
                subs.extend(_sub_ref_paths(r[SUB_FIELD]))
    return conts, tuple(subs)


def _peek_atif(path: str) -> bool:
    """Cheap check: the first 4 KB mention ATIF and schema_version."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(PEEK_BYTES)
    except OSError:
        return False
    return b"ATIF" in head and b"schema_version" in head


def _scan_file(path: str) -> tuple[bool, tuple[str, ...], tuple[str, ...]]:
    """(is ATIF, continuation refs, subagent refs) of a file, cached by mtime and size;
    never raises (a half-written file counts as not ATIF for now)."""
    try:
        st = os.stat(path)
    except OSError:
        return False, (), ()
    key = (st.st_mtime_ns, st.st_size)
    hit = _REF_CACHE.get(path)
    if hit and hit[0] == key:
        return hit[1], hit[2], hit[3]
    is_atif, conts, subs = False, (), ()
    if path.endswith(".json") and _peek_atif(path):
        try:
            with open(path, "rb") as fh:
                doc = json.loads(fh.read())
        except (OSError, ValueError):
            doc = None
        if isinstance(doc, dict) and str(doc.get("schema_version", "")).startswith("ATIF"):
            is_atif = True
            conts, subs = _doc_refs(doc)
    _REF_CACHE[path] = (key, is_atif, conts, subs)
    return is_atif, conts, subs


def continuation_chain(path: str | Path) -> list[str]:
    """``path`` and the files its ``continued_trajectory_ref`` chain names that exist (for
    find(); never raises, stops at a cycle or a missing file)."""
    chain = [str(path)]
    seen = {os.path.realpath(path)}
    cur = str(path)
    while True:
        _, conts, _ = _scan_file(cur)
        if not conts:
            return chain
        nxt = resolve_ref(cur, conts[0])
        if nxt is None or os.path.realpath(nxt) in seen:
            return chain
        seen.add(os.path.realpath(nxt))
        cur = str(nxt)
        chain.append(cur)


def _text(value: Any) -> str | None:
    """Message/observation content as text: strings as they are, ATIF content-part lists
    joined by their text, anything else JSON-encoded."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, list) and all(isinstance(p, dict) for p in value):
        parts = []
        for p in value:
            if isinstance(p.get("text"), str):
                parts.append(p["text"])
            else:
                parts.append(json.dumps(p, ensure_ascii=False))
        return "\n".join(parts)
    return json.dumps(value, ensure_ascii=False)


def _step_messages(step: dict, i: int, path: str) -> list[ChatMessage]:
    """The chat messages of one ATIF step (an assistant step is followed by one tool message
    per observation result)."""
    where = f"steps[{i}]"
    source = require(step, "source", str, path, where=where)
    message = _text(step.get("message"))
    if source == "user":
        return [ChatMessage(role="user", content=message or "")]
    if source == "system":
        out = [ChatMessage(role="system", content=message or "")]
    elif source == "agent":
        calls: list[ToolCall] = []
        raw_calls = step.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise InputError(path, "expected a list", field=f"{where}.tool_calls")
        for j, tc in enumerate(raw_calls):
            cw = f"{where}.tool_calls[{j}]"
            name = require(tc, "function_name", str, path, where=cw)
            cid = tc.get("tool_call_id")
            if not isinstance(cid, str) or not cid:
                cid = f"call_{i}_{j}"
            args = tc.get("arguments", {})
            args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            calls.append(ToolCall(id=cid, function=ToolFunction(name=name, arguments=args)))
        reasoning = step.get("reasoning_content")
        out = [
            ChatMessage(
                role="assistant",
                content=message if message else None,
                tool_calls=calls or None,
                reasoning_content=_text(reasoning) if reasoning else None,
            )
        ]
    else:
        raise InputError(path, f"unknown step source {source!r} (expected user, agent or system)", field=f"{where}.source")

    obs = step.get("observation")
    if obs is None:
        return out
    if not isinstance(obs, dict):
        raise InputError(path, "expected an object", field=f"{where}.observation")
    results = obs.get("results") or []
    if not isinstance(results, list):
        raise InputError(path, "expected a list", field=f"{where}.observation.results")
    call_ids = [c.id for c in (out[0].tool_calls or [])]
    for k, r in enumerate(results):
        if not isinstance(r, dict):
            raise InputError(path, "expected an object", field=f"{where}.observation.results[{k}]")
        content = _text(r.get("content"))
        if content is None:
            continue  # e.g. a result that only points at subagent trajectories
        cid = r.get("source_call_id")
        if not isinstance(cid, str) or not cid:
            # terminus-2 results carry no source_call_id: pair them with the step's calls
            cid = call_ids[min(k, len(call_ids) - 1)] if call_ids else None
        if cid:
            out.append(ChatMessage(role="tool", tool_call_id=cid, content=content))
        else:
            out.append(ChatMessage(role="user", content=content))  # environment feedback
    return out


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def atif_transcript(path: str | Path) -> tuple[list[ChatMessage], dict, list[str], list[dict], list[Any]]:
    """Read an ATIF file and its ``continued_trajectory_ref`` chain.

    Returns (transcript, root document of ``path``, files read in order, every step read,
    each file's ``final_metrics``).
    Copied-context steps of a continuation (``is_copied_context``) that repeat a step
    already in the transcript (same source and message) are skipped. Raises InputError
    naming the file and field: not an ATIF object, ``steps`` missing or not a non-empty list,
    a bad step, a continuation file missing, or a continuation cycle."""
    path = str(path)
    transcript: list[ChatMessage] = []
    files: list[str] = []
    all_steps: list[dict] = []
    finals: list[Any] = []
    seen_keys: set[tuple[str, str]] = set()
    seen_paths: set[str] = set()
    root: dict | None = None
    cur = path
    while True:
        seen_paths.add(os.path.realpath(cur))
        doc = load_json(cur)
        if not isinstance(doc, dict):
            raise InputError(cur, "expected a JSON object (ATIF trajectory)")
        version = doc.get("schema_version")
        if not isinstance(version, str) or not version.startswith("ATIF"):
            raise InputError(cur, "not an ATIF trajectory", field="schema_version")
        steps = require(doc, "steps", list, cur)
        if not steps:
            raise InputError(cur, "trajectory has no steps", field="steps")
        files.append(cur)
        finals.append(doc.get("final_metrics"))
        if root is None:
            root = doc
        continuing = len(files) > 1
        for i, step in enumerate(steps):
            if not isinstance(step, dict):
                raise InputError(cur, "expected an object", field=f"steps[{i}]")
            key = (str(step.get("source")), str(step.get("message")))
            if continuing and step.get("is_copied_context") and key in seen_keys:
                continue
            seen_keys.add(key)
            transcript.extend(_step_messages(step, i, cur))
            all_steps.append(step)
        ref = doc.get(CONT_FIELD)
        if ref is None:
            break
        if not isinstance(ref, str) or not ref:
            raise InputError(cur, "expected a file name", field=CONT_FIELD)
        nxt = resolve_ref(cur, ref)
        if nxt is None:
            raise InputError(cur, f"continuation file {ref!r} is missing", field=CONT_FIELD)
        if os.path.realpath(nxt) in seen_paths:
            raise InputError(cur, f"continuation cycle: {ref!r} was already read", field=CONT_FIELD)
        cur = str(nxt)
    assert root is not None
    return transcript, root, files, all_steps, finals


def _first_user(transcript: list[ChatMessage]) -> str:
    return next((m.content for m in transcript if m.role == "user" and m.content), "")


def _step_model(steps: list[dict]) -> str | None:
    """The model the steps themselves name most often (agent steps)."""
    c = Counter(s.get("model_name") for s in steps if s.get("source") == "agent" and isinstance(s.get("model_name"), str))
    return c.most_common(1)[0][0] if c else None


def _duration(steps: list[dict]) -> float | None:
    times = [t for t in (_parse_ts(s.get("timestamp")) for s in steps) if t is not None]
    if len(times) < 2:
        return None
    return round((max(times) - min(times)).total_seconds(), 3)


def _final_metrics(docs_metrics: list[Any]) -> dict[str, float]:
    """Tokens and cost from ``final_metrics``; across a continuation chain each figure is
    the maximum (Harbor writes a continuation's totals cumulatively)."""
    keys = {
        "total_prompt_tokens": "input_tokens",
        "total_completion_tokens": "output_tokens",
        "total_cached_tokens": "cache_tokens",
        "total_cost_usd": "cost_usd",
    }
    out: dict[str, float] = {}
    for fm in docs_metrics:
        if not isinstance(fm, dict):
            continue
        for k, name in keys.items():
            v = fm.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[name] = max(out.get(name, 0.0), float(v))
    return out


def _tools(root: dict) -> list[dict[str, Any]]:
    agent = root.get("agent") if isinstance(root.get("agent"), dict) else {}
    tools = agent.get("tool_definitions")
    return [t for t in tools if isinstance(t, dict)] if isinstance(tools, list) else []


# --------------------------------------------------------------------------- formats


def _is_harbor_trial(folder: Path) -> bool:
    return (folder / RESULT).is_file() and (folder / TRAJECTORY).is_file()


class HarborTrial:
    """A Harbor trial folder (see module docstring)."""

    name = HARBOR

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """A folder whose names include result.json and that has agent/trajectory.json is
        one session named after the folder; its files are result.json and the trajectory
        with its continuation files."""
        folder = Path(folder)
        if RESULT not in names:  # names may hold only files (os.walk), so agent/ is checked on disk
            return []
        traj = folder / TRAJECTORY
        if not os.path.isfile(traj):
            return []
        files = (str(folder / RESULT), *continuation_chain(traj))
        return [SessionRef(session_id=folder.name, format=HARBOR, path=str(folder), files=files)]

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read result.json and the ATIF trajectory. Raises InputError naming the file and
        field (``verifier_result.rewards.reward``, ``steps[3].source``, ...)."""
        folder = Path(ref.path)
        result_path = str(folder / RESULT)
        result = load_json(result_path)
        if not isinstance(result, dict):
            raise InputError(result_path, "expected a JSON object")
        traj_path = folder / TRAJECTORY
        if not traj_path.is_file():
            raise InputError(str(traj_path), "file is missing (a Harbor trial needs agent/trajectory.json)")
        transcript, root, files, steps, _ = atif_transcript(traj_path)

        reward = None
        vr = result.get("verifier_result")
        if vr is not None:
            if not isinstance(vr, dict):
                raise InputError(result_path, "expected an object", field="verifier_result")
            rewards = vr.get("rewards")
            if rewards is not None:
                if not isinstance(rewards, dict):
                    raise InputError(result_path, "expected an object", field="verifier_result.rewards")
                r = rewards.get("reward")
                if r is not None:
                    if not isinstance(r, (int, float)) or isinstance(r, bool):
                        raise InputError(result_path, f"expected a number, got {type(r).__name__}", field="verifier_result.rewards.reward")
                    reward = float(r)

        config_doc = result.get("config") if isinstance(result.get("config"), dict) else {}
        cfg_agent = config_doc.get("agent") if isinstance(config_doc.get("agent"), dict) else {}
        info = result.get("agent_info") if isinstance(result.get("agent_info"), dict) else {}
        root_agent = root.get("agent") if isinstance(root.get("agent"), dict) else {}
        agent_name = info.get("name") or root_agent.get("name") or cfg_agent.get("name")
        agent_version = info.get("version") or root_agent.get("version")
        config_model = cfg_agent.get("model_name")
        model = _step_model(steps) or root_agent.get("model_name") or config_model

        metrics: dict[str, float] = {}
        ar = result.get("agent_result") if isinstance(result.get("agent_result"), dict) else {}
        for k, name in (("n_input_tokens", "input_tokens"), ("n_output_tokens", "output_tokens"), ("n_cache_tokens", "cache_tokens"), ("cost_usd", "cost_usd")):
            v = ar.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[name] = float(v)
        fm = root.get("final_metrics") if isinstance(root.get("final_metrics"), dict) else {}
        extra = fm.get("extra") if isinstance(fm.get("extra"), dict) else {}
        for k, name in (("total_cache_creation_input_tokens", "cache_creation_tokens"), ("total_cache_read_input_tokens", "cache_read_tokens")):
            v = extra.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[name] = float(v)
        metrics["steps"] = float(len(steps))

        exc = result.get("exception_info")
        if exc:
            etype = str(exc.get("exception_type", "")) if isinstance(exc, dict) else str(exc)
            termination = "timeout" if "timeout" in etype.lower() else "error"
        else:
            termination = "completed"

        started, finished = _parse_ts(result.get("started_at")), _parse_ts(result.get("finished_at"))
        ae = result.get("agent_execution") if isinstance(result.get("agent_execution"), dict) else {}
        a0, a1 = _parse_ts(ae.get("started_at")), _parse_ts(ae.get("finished_at"))
        duration = round((a1 - a0).total_seconds(), 3) if a0 and a1 else _duration(steps)
        task_id = result.get("task_name")
        if not isinstance(task_id, str):
            tid = result.get("task_id")
            task_id = tid.get("path") if isinstance(tid, dict) else (tid if isinstance(tid, str) else None)
        learning = folder / "agent" / "learning" / "trajectory.json"
        return Session(
            ref=ref,
            task=_first_user(transcript),
            duration_s=duration,
            reward=reward,
            kind="agent",
            task_id=task_id,
            trial=result.get("trial_name") if isinstance(result.get("trial_name"), str) else folder.name,
            agent=f"{agent_name} {agent_version}".strip() if agent_name and agent_version else agent_name,
            model=model,
            transcript=transcript,
            tools=_tools(root),
            termination=termination,
            metrics=metrics,
            meta={
                "schema_version": root.get("schema_version"),
                "atif_session_id": root.get("session_id"),
                "agent_name": agent_name,
                "agent_version": agent_version,
                "config_model": config_model,
                "source": result.get("source"),
                "trajectory_files": files,
                "exception": exc if exc else None,
                "started_at": started.isoformat() if started else None,
                "finished_at": finished.isoformat() if finished else None,
                "has_learning_trajectory": learning.is_file(),
            },
        )


def _inside_harbor_trial(folder: Path) -> bool:
    """A folder that is a trial's agent/ folder or a folder below it (agent/learning/)."""
    if folder.name == "agent" and _is_harbor_trial(folder.parent):
        return True
    return folder.parent.name == "agent" and _is_harbor_trial(folder.parent.parent)


class AtifFile:
    """A lone ATIF trajectory file (see module docstring)."""

    name = ATIF

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """Each ATIF ``*.json`` file in ``folder`` that is not inside a Harbor trial and not
        a continuation or subagent of another ATIF file here is one session. Peeks at the
        first 4 KB before parsing (parses are cached by mtime and size)."""
        folder = Path(folder)
        cands = [n for n in sorted(names) if n.endswith(".json")]
        if not cands or _inside_harbor_trial(folder):
            return []
        atif = [n for n in cands if _scan_file(str(folder / n))[0]]
        if not atif:
            return []
        referenced: set[str] = set()
        for n in atif:
            _, conts, subs = _scan_file(str(folder / n))
            for r in (*conts, *subs):
                p = resolve_ref(folder / n, r)
                if p is not None:
                    referenced.add(os.path.realpath(p))
        out = []
        for n in atif:
            p = folder / n
            if os.path.realpath(p) in referenced:
                continue
            stem = n[: -len(".json")]
            files = tuple(continuation_chain(p))
            out.append(SessionRef(session_id=f"{folder.name}.{stem}", format=ATIF, path=str(p), files=files))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the ATIF file and its continuations. Raises InputError naming the file and
        field."""
        transcript, root, files, steps, finals = atif_transcript(ref.path)
        root_agent = root.get("agent") if isinstance(root.get("agent"), dict) else {}
        name, version = root_agent.get("name"), root_agent.get("version")
        metrics = _final_metrics(finals)
        metrics["steps"] = float(len(steps))
        return Session(
            ref=ref,
            task=_first_user(transcript),
            duration_s=_duration(steps),
            reward=None,
            kind="agent",
            task_id=None,
            trial=root.get("session_id") if isinstance(root.get("session_id"), str) else None,
            agent=f"{name} {version}".strip() if name and version else name,
            model=_step_model(steps) or root_agent.get("model_name"),
            transcript=transcript,
            tools=_tools(root),
            termination=None,
            metrics=metrics,
            meta={
                "schema_version": root.get("schema_version"),
                "atif_session_id": root.get("session_id"),
                "agent_name": name,
                "agent_version": version,
                "trajectory_files": files,
            },
        )
