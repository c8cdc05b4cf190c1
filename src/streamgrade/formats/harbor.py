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
  A broken ATIF file (not UTF-8 or not JSON, named ``trajectory*.json`` /
  ``*.trajectory*.json`` or mentioning ATIF and schema_version in its first 4 KB) is still
  a session, whose assemble reports the error and its line; a
  ``<prefix>trajectory.cont-N.json`` beside a broken ``<prefix>trajectory.json`` belongs to
  that (failing) session. Files ATIF owns are never claimed by the row formats.

Timestamps: a duration (``agent_execution`` started/finished, else the first to the last
step timestamp) is None when the timestamps mix naive (no UTC offset) and aware ones: the
offset of a naive time is unknown, so no duration is guessed.

ATIF (v1.2-1.6): root ``{schema_version, session_id, agent {name, version, model_name,
tool_definitions?}, steps [...], final_metrics {total_prompt_tokens, total_completion_tokens,
total_cached_tokens?, total_cost_usd?}, continued_trajectory_ref?}``; a step is ``{step_id,
timestamp?, source user|agent|system, message, reasoning_content?, model_name?, tool_calls
[{tool_call_id, function_name, arguments}]?, observation {results [{source_call_id?,
content, subagent_trajectory_ref?}]}?, metrics?, is_copied_context?}``.

Reference resolution (:mod:`.atif_refs`): a ref is resolved relative to the referencing
file's folder, with a fallback for Harbor's prefixed fixture names. A ref must stay inside
the session's input tree (the trial folder of a Harbor trial, the folder holding a lone
ATIF file), lexically and after resolving symlinks, checked before whether the file exists:
a document could otherwise pull any file into the transcript (hence into the judge's prompt
and the SFT exports), and an error saying "missing" would tell whether a path exists. A ref
that leaves it fails the session with the one message ``OUTSIDE``; ``find`` does not follow
it.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..inputs import max_session_bytes, open_regular
from ..models import Observation, Session, SessionRef, Step, StepToolCall
from .atif_refs import OUTSIDE, RefOutside, ref_inside, ref_paths, resolve_ref
from .base import load_json, require
from .mapping import arguments_of, chat_view, first_user

HARBOR = "harbor"
ATIF = "atif"
RESULT = "result.json"
TRAJECTORY = os.path.join("agent", "trajectory.json")
PEEK_BYTES = 4096
CONT_FIELD = "continued_trajectory_ref"
SUB_FIELD = "subagent_trajectory_ref"

# ATIF file names: ``trajectory*.json`` and ``*.trajectory*.json`` (Harbor's own naming).
ATIF_NAME_RE = re.compile(r"(?:^|\.)trajectory[^/]*\.json$")
# A Harbor continuation file: ``<prefix>trajectory.cont-N.json``; group 1 is the prefix.
CONT_NAME_RE = re.compile(r"^(.*)trajectory\.cont-\d+\.json$")

# File states of :func:`_scan_file`.
IS_ATIF, BROKEN, OTHER = "atif", "broken", "other"

# path -> ((mtime_ns, size), state, continuation refs, subagent refs): find() is called on
# every watch event.
_REF_CACHE: dict[str, tuple[tuple[int, int], str, tuple[str, ...], tuple[str, ...]]] = {}
_REF_CACHE_MAX = 10_000


# --------------------------------------------------------------------------- helpers


def _sub_ref_paths(value: Any) -> list[str]:
    """The trajectory paths named by a ``subagent_trajectory_ref`` (a string, an object
    with ``trajectory_path``, or a list of either; lists nested in lists are flattened
    without recursion, so no nesting depth can exhaust the stack)."""
    out: list[str] = []
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str):
            out.append(v)
        elif isinstance(v, dict):
            p = v.get("trajectory_path") or v.get("path")
            if isinstance(p, str):
                out.append(p)
        elif isinstance(v, list):
            stack.extend(reversed(v))
    return out


def _doc_refs(doc: Any) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(continuation refs, subagent refs) named in a parsed ATIF document. Never raises:
    ``steps`` or ``observation.results`` of the wrong type name no refs here (assemble
    reports them)."""
    if not isinstance(doc, dict):
        return (), ()
    cont = doc.get(CONT_FIELD)
    conts = (cont,) if isinstance(cont, str) and cont else ()
    subs: list[str] = []
    steps = doc.get("steps")
    for step in steps if isinstance(steps, list) else ():
        obs = step.get("observation") if isinstance(step, dict) else None
        results = obs.get("results") if isinstance(obs, dict) else None
        for r in results if isinstance(results, list) else ():
            if isinstance(r, dict) and r.get(SUB_FIELD):
                subs.extend(_sub_ref_paths(r[SUB_FIELD]))
    return conts, tuple(subs)


def _peek_atif(path: str) -> bool:
    """Cheap check: the first 4 KB mention ATIF and schema_version."""
    try:
        with open_regular(path) as fh:  # never blocks on a FIFO
            head = fh.read(PEEK_BYTES)
    except (OSError, InputError):
        return False
    return b"ATIF" in head and b"schema_version" in head


def _scan_file(path: str) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(state, continuation refs, subagent refs) of a file, cached by mtime and size; never
    raises. The state is :data:`IS_ATIF` (a JSON object whose ``schema_version`` starts with
    "ATIF"), :data:`BROKEN` (a ``.json`` file that does not parse, not UTF-8 or not JSON,
    and whose name is an ATIF name (:data:`ATIF_NAME_RE`) or whose first 4 KB mention ATIF
    and schema_version: a damaged or half-written ATIF file, which is a session whose
    assemble reports the error) or :data:`OTHER`."""
    try:
        st = os.stat(path)
    except OSError:
        return OTHER, (), ()
    key = (st.st_mtime_ns, st.st_size)
    hit = _REF_CACHE.get(path)
    if hit and hit[0] == key:
        return hit[1], hit[2], hit[3]
    state, conts, subs = OTHER, (), ()
    if path.endswith(".json") and (ATIF_NAME_RE.search(os.path.basename(path)) or _peek_atif(path)):
        try:
            with open_regular(path, max_session_bytes()) as fh:
                data = fh.read()
        except OSError:
            data = None
        except InputError:  # too large, or not a regular file: a session that reports it
            data, state = None, BROKEN
        if data is not None:
            try:
                doc = json.loads(data)
            except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
                doc, state = None, BROKEN
            if isinstance(doc, dict) and str(doc.get("schema_version", "")).startswith("ATIF"):
                state = IS_ATIF
                conts, subs = _doc_refs(doc)
    _REF_CACHE[path] = (key, state, conts, subs)
    if len(_REF_CACHE) > _REF_CACHE_MAX:  # bounded: watch calls this for every .json seen
        del _REF_CACHE[next(iter(_REF_CACHE))]
    return state, conts, subs


def atif_files(folder: str | Path, names: list[str]) -> tuple[list[str], set[str]]:
    """(roots, owned) among ``names`` in ``folder``: ``owned`` is every name ATIF owns (ATIF
    files, broken ATIF files, see :func:`_scan_file`, and files an ATIF file here names as
    its continuation or subagent, even when they are broken), ``roots`` the owned ATIF and
    broken ATIF files, in name order, that no ATIF file here references: each one session.
    A continuation ``<prefix>trajectory.cont-N.json`` whose root ``<prefix>trajectory.json``
    is here but broken (so its refs are unknown) is owned and not a root: it belongs to the
    broken root's session, which fails."""
    folder = Path(folder)
    cands = [n for n in sorted(names) if n.endswith(".json")]
    states = {n: _scan_file(str(folder / n)) for n in cands}
    atif = [n for n in cands if states[n][0] in (IS_ATIF, BROKEN)]
    if not atif:
        return [], set()
    referenced: set[str] = set()  # real paths of the files refs name, and names here of refs not followed
    here = os.path.abspath(folder)
    for n in atif:
        _, conts, subs = states[n]
        for r in (*conts, *subs):
            try:
                p = resolve_ref(folder / n, r, folder)
            except RefOutside:  # not followed; a name here that it names (a link leading out)
                # is still this file's part, not a session of its own
                named = map(os.path.abspath, ref_paths(folder / n, r))
                referenced.update(q for q in named if os.path.dirname(q) == here)
                continue
            if p is not None:
                referenced.add(os.path.realpath(p))
    owned = set(atif)
    roots = []
    for n in cands:
        m = CONT_NAME_RE.match(n)
        root_name = f"{m.group(1)}trajectory.json" if m else None
        if ({os.path.realpath(folder / n), os.path.join(here, n)} & referenced
                or (root_name in states and states[root_name][0] == BROKEN)):
            owned.add(n)
        elif n in atif:
            roots.append(n)
    return roots, owned


def continuation_chain(path: str | Path, root: str | Path | None = None) -> list[str]:
    """``path`` and the files its ``continued_trajectory_ref`` chain names that exist inside
    ``root`` (default: ``path``'s folder), for find(); never raises, stops at a cycle, a
    missing file or a ref outside ``root`` (never read)."""
    root = Path(path).parent if root is None else root
    chain = [str(path)]
    seen = {os.path.realpath(path)}
    cur = str(path)
    while True:
        _, conts, _ = _scan_file(cur)
        if not conts:
            return chain
        try:
            nxt = resolve_ref(cur, conts[0], root)
        except RefOutside:
            return chain
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


def _step(step: dict, i: int, path: str) -> Step:
    """One ATIF step as a canonical :class:`Step` (the model follows ATIF: the mapping is
    one to one). A result without ``source_call_id`` (terminus-2) is paired with the step's
    call of the same position."""
    where = f"steps[{i}]"
    source = require(step, "source", str, path, where=where)
    if source not in ("user", "system", "agent"):
        raise InputError(path, f"unknown step source {source!r} (expected user, agent or system)", field=f"{where}.source")
    calls: list[StepToolCall] = []
    if source == "agent":
        raw_calls = step.get("tool_calls") or []
        if not isinstance(raw_calls, list):
            raise InputError(path, "expected a list", field=f"{where}.tool_calls")
        for j, tc in enumerate(raw_calls):
            cw = f"{where}.tool_calls[{j}]"
            name = require(tc, "function_name", str, path, where=cw)
            cid = tc.get("tool_call_id")
            calls.append(StepToolCall(id=cid if isinstance(cid, str) and cid else f"call_{i}_{j}", name=name,
                                      arguments=arguments_of(tc.get("arguments", {}))))
    reasoning = step.get("reasoning_content")
    out = Step(source=source, message=_text(step.get("message")) or ("" if source != "agent" else None),
               reasoning=_text(reasoning) if reasoning and source == "agent" else None, tool_calls=calls,
               timestamp=step.get("timestamp") if isinstance(step.get("timestamp"), str) else None,
               model=step.get("model_name") if isinstance(step.get("model_name"), str) else None)
    obs = step.get("observation")
    if obs is None:
        return out
    if not isinstance(obs, dict):
        raise InputError(path, "expected an object", field=f"{where}.observation")
    results = obs.get("results") or []
    if not isinstance(results, list):
        raise InputError(path, "expected a list", field=f"{where}.observation.results")
    call_ids = [c.id for c in calls]
    for k, r in enumerate(results):
        if not isinstance(r, dict):
            raise InputError(path, "expected an object", field=f"{where}.observation.results[{k}]")
        content = _text(r.get("content"))
        if content is None:
            continue  # e.g. a result that only points at subagent trajectories
        cid = r.get("source_call_id")
        if not isinstance(cid, str) or not cid:
            cid = call_ids[min(k, len(call_ids) - 1)] if call_ids else None
        out.observations.append(Observation(content=content, source_call_id=cid))
    return out


def _parse_ts(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _check_sub_refs(step: dict, i: int, path: str, root: str | Path) -> None:
    """Raise InputError (:data:`OUTSIDE`) when a ``subagent_trajectory_ref`` of the step
    names a path outside ``root``. Subagent files are not read; a ref to a missing one
    inside is no error."""
    obs = step.get("observation")
    results = obs.get("results") if isinstance(obs, dict) else None
    for k, r in enumerate(results if isinstance(results, list) else ()):
        if isinstance(r, dict) and r.get(SUB_FIELD):
            if not all(ref_inside(Path(path), sub, root) for sub in _sub_ref_paths(r[SUB_FIELD])):
                raise InputError(path, OUTSIDE, field=f"steps[{i}].observation.results[{k}].{SUB_FIELD}")


def atif_steps(path: str | Path, tree: str | Path | None = None
               ) -> tuple[list[Step], dict, list[str], list[dict], list[Any]]:
    """Read an ATIF file and its ``continued_trajectory_ref`` chain; every ref must stay
    inside ``tree``, the session's folder (default: ``path``'s folder; see module docstring).

    Returns (the canonical steps, root document of ``path``, files read in order, every
    step read as it is in the file, each file's ``final_metrics``).
    Copied-context steps of a continuation (``is_copied_context``) that repeat a step
    already in the transcript (same source and message) are skipped. Raises InputError
    naming the file and field: not an ATIF object, ``steps`` missing or not a non-empty list,
    a bad step, a continuation or subagent ref outside ``tree`` (:data:`OUTSIDE`, checked
    before whether the file exists), a continuation file missing, or a continuation cycle."""
    path = str(path)
    tree = Path(path).parent if tree is None else tree
    canon: list[Step] = []
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
            _check_sub_refs(step, i, cur, tree)
            key = (str(step.get("source")), str(step.get("message")))
            if continuing and step.get("is_copied_context") and key in seen_keys:
                continue
            seen_keys.add(key)
            canon.append(_step(step, i, cur))
            all_steps.append(step)
        ref = doc.get(CONT_FIELD)
        if ref is None:
            break
        if not isinstance(ref, str) or not ref:
            raise InputError(cur, "expected a file name", field=CONT_FIELD)
        try:
            nxt = resolve_ref(cur, ref, tree)
        except RefOutside:
            raise InputError(cur, OUTSIDE, field=CONT_FIELD) from None
        if nxt is None:
            raise InputError(cur, f"continuation file {ref!r} is missing", field=CONT_FIELD)
        if os.path.realpath(nxt) in seen_paths:
            raise InputError(cur, f"continuation cycle: {ref!r} was already read", field=CONT_FIELD)
        cur = str(nxt)
    assert root is not None
    return canon, root, files, all_steps, finals


def _step_model(steps: list[dict]) -> str | None:
    """The model the steps themselves name most often (agent steps)."""
    c = Counter(s.get("model_name") for s in steps if s.get("source") == "agent" and isinstance(s.get("model_name"), str))
    return c.most_common(1)[0][0] if c else None


def _span(times: list[datetime]) -> float | None:
    """Seconds from the earliest to the latest of ``times``; None for fewer than two or when
    naive and aware times are mixed (a naive time's offset is unknown: nothing is guessed)."""
    if len(times) < 2 or len({t.tzinfo is None for t in times}) > 1:
        return None
    return round((max(times) - min(times)).total_seconds(), 3)


def _duration(steps: list[dict]) -> float | None:
    return _span([t for t in (_parse_ts(s.get("timestamp")) for s in steps) if t is not None])


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
        files = (str(folder / RESULT), *continuation_chain(traj, folder))
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
        canon, root, files, steps, _ = atif_steps(traj_path, folder)

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
        if a0 and a1:  # None when one has a UTC offset and the other not (see module docstring)
            duration = round((a1 - a0).total_seconds(), 3) if (a0.tzinfo is None) == (a1.tzinfo is None) else None
        else:
            duration = _duration(steps)
        task_id = result.get("task_name")
        if not isinstance(task_id, str):
            tid = result.get("task_id")
            task_id = tid.get("path") if isinstance(tid, dict) else (tid if isinstance(tid, str) else None)
        learning = folder / "agent" / "learning" / "trajectory.json"
        return Session(
            ref=ref,
            task=first_user(canon) or "",
            duration_s=duration,
            reward=reward,
            kind="agent",
            task_id=task_id,
            trial=result.get("trial_name") if isinstance(result.get("trial_name"), str) else folder.name,
            agent=f"{agent_name} {agent_version}".strip() if agent_name and agent_version else agent_name,
            model=model,
            steps=canon,
            transcript=chat_view(canon),
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
        a continuation or subagent of another ATIF file here is one session, and so is each
        broken ATIF file (see :func:`atif_files`): its assemble reports the error. Parses
        only files with an ATIF name or whose first 4 KB mention ATIF (cached by mtime and
        size); never raises."""
        folder = Path(folder)
        if not any(n.endswith(".json") for n in names) or _inside_harbor_trial(folder):
            return []
        roots, _ = atif_files(folder, names)
        out = []
        for n in roots:
            p = folder / n
            stem = n[: -len(".json")]
            files = tuple(continuation_chain(p, folder))
            out.append(SessionRef(session_id=f"{folder.name}.{stem}", format=ATIF, path=str(p), files=files))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the ATIF file and its continuations. Raises InputError naming the file and
        field."""
        canon, root, files, steps, finals = atif_steps(ref.path)
        root_agent = root.get("agent") if isinstance(root.get("agent"), dict) else {}
        name, version = root_agent.get("name"), root_agent.get("version")
        metrics = _final_metrics(finals)
        metrics["steps"] = float(len(steps))
        return Session(
            ref=ref,
            task=first_user(canon) or "",
            duration_s=_duration(steps),
            reward=None,
            kind="agent",
            task_id=None,
            trial=root.get("session_id") if isinstance(root.get("session_id"), str) else None,
            agent=f"{name} {version}".strip() if name and version else name,
            model=_step_model(steps) or root_agent.get("model_name"),
            steps=canon,
            transcript=chat_view(canon),
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
