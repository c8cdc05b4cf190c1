"""OpenHands (ex-OpenDevin) evaluation outputs: ``output.jsonl`` (any ``.jsonl``/``.json``
file of such rows), one session per row.

Source: All-Hands-AI/OpenHands ``evaluation/utils/shared.py`` (``EvalOutput``,
``EvalMetadata``, ``compatibility_for_eval_history_pairs``), the benchmarks' ``run_infer.py``
(``evaluation/benchmarks/gorilla``, ``swe_bench``), ``swe_bench/eval_infer.py`` and
``scripts/eval/update_output_with_eval.py`` (where verdicts are written), OpenDevin's 2024
``output.merged.jsonl`` (``fine_grained_report``); event mapping in :mod:`.openhands_events`.

A row is ``EvalOutput.model_dump_json()``: ``{instance_id, instruction?, instance?,
test_result, metadata {agent_class, llm_config {model, ...}, max_iterations, git_commit,
dataset, ...}, history, metrics {accumulated_cost, accumulated_token_usage, costs,
response_latencies, token_usages, ...}, error}``; OpenDevin's rows (May 2024, Gorilla) are
``{question_id, text, correct, hallucination, metadata {agent_class, model_name, ...},
history, error}``; OpenHands/benchmarks rows (``benchmarks/utils/models.py``, on the
software-agent-sdk) are ``{instance_id, attempt, test_result, instruction, metadata {llm
{model, ...}, dataset, max_iterations, ...}, history, metrics, error, instance,
runtime_runs}``. ``history`` is a flat event list (V0 events, or V1 events with a ``kind``)
or a list of ``[action, observation]`` pairs.

Finding: a ``.jsonl``/``.json`` file (not owned by another format) is claimed when one of its
rows holds a ``history`` list and either ``metadata.agent_class``, both ``instance_id`` and
``test_result``, or OpenHands events (``"action"``/``"observation"`` keys) in it; rows are
peeked at their top-level keys only (``"action":`` / ``"observation":`` keys looked for in the
first 4 KB of the history). Then every row is a session (a row without history, as
the harness writes for a run that timed out, fails with its ``error``). An ``output*.jsonl``
that does not parse is one session whose assemble reports the error. Session id
``<stem>.<instance_id>`` (``question_id`` for OpenDevin rows; ``.row<i>`` appended when it
repeats, ``<stem>.row<i>`` without one); locator = the row index; fingerprint = the row's own
bytes. The files an evaluation writes beside its output (``metadata*.json``, ``config.json``,
``patch.jsonl``, ``report.json``, ``*.swebench_eval.jsonl``, ``*.jsonl.bak``, ``README.md``,
and the logs under ``infer_logs/``, ``logs/``, ``eval_outputs/``) are owned
(:func:`owned_beside`), not sessions.

A saved trajectory (``save_trajectory_path``: ``openhands/core/main.py`` writes
``controller.get_trajectory()``, a JSON list of ``event_to_trajectory`` events) is one
session too: a ``.json`` file whose first item is an event (an ``action`` or ``observation``
string and a ``source``); id ``<stem>``, locator ``trajectory``, task = its first user message,
no reward.

Fields: task = ``instruction``, else the first user message; task_id = ``instance_id`` (or
``question_id``); trial = ``attempt``; agent = ``metadata.agent_class``; model =
``metadata.llm_config.model`` (``llm.model``, ``model_name``); tools = the system event's
tool definitions. reward, never shown to the judge
and never put in the task, steps or meta (``instance`` and ``test_result`` hold gold patches,
tests and answers and are never read except for the verdict): the first boolean of
``test_result.report.resolved`` (SWE-bench ``eval_infer.py``), ``report.resolved``
(``update_output_with_eval.py``), ``fine_grained_report.resolved`` (OpenDevin
``output.merged.jsonl``), ``test_result.resolved``, ``test_result.correct`` (Gorilla
APIBench) and ``correct`` (OpenDevin's Gorilla rows), as 1.0/0.0; else None (the raw
``output.jsonl`` of SWE-bench holds only ``git_patch``). Other ``test_result`` keys
(``hallucination``, scores whose meaning varies by benchmark) are not rewards.
termination: from ``error`` when set (``max_steps`` for the iteration limit, ``budget``,
``stuck`` for a loop, ``timeout``, else ``error``), else ``finish`` / ``reject`` when the last
agent action is one, ``stop`` when it is a message, else ``unknown``. metrics: ``cost_usd``
(``accumulated_cost``), ``prompt_tokens``, ``completion_tokens``, ``cache_read_tokens``,
``cache_write_tokens`` (``accumulated_token_usage``, else the sum of ``token_usages``),
``llm_calls`` and ``llm_latency_s`` (``response_latencies``), ``events``. duration_s: first
to last event timestamp.
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config
from ..errors import InputError
from ..inputs import open_regular
from ..models import Session, SessionRef
from ._rows import file_stem, load_rows, looks_like_json, row_at, sanitise, unique_id
from .mapping import agent_session, as_text, get
from .openai_chat import owned_elsewhere
from .openhands_events import History, history_steps

NAME = "openhands"

VERDICTS = ("test_result.report.resolved", "report.resolved", "fine_grained_report.resolved",
            "test_result.resolved", "test_result.correct", "correct")
OUTPUT_NAME = re.compile(r"^output.*\.jsonl$")
TRAJECTORY = "trajectory"
SIDE_FILES = re.compile(r"^(metadata(_.*)?\.json|config\.json|patch\.jsonl|report\.json|README\.md"
                        r"|.*\.swebench_eval\.(jsonl|md)|.*\.jsonl\.bak)$")
LOG_FOLDERS = frozenset({"infer_logs", "logs", "eval_outputs"})

_TOP = msgspec.json.Decoder(dict[str, msgspec.Raw])
_EVENT_KEY = re.compile(rb'"(action|observation)"\s*:')
_seen: dict[tuple[str, int, int], bool] = {}  # (path, size, mtime_ns) -> holds OpenHands rows


def _peek(raw: Any) -> dict[str, msgspec.Raw] | None:
    """A row's top-level keys with their raw values, or None when it is not an object."""
    if isinstance(raw, InputError):
        return None
    try:
        return _TOP.decode(bytes(raw))
    except (msgspec.DecodeError, RecursionError):
        return None


def is_eval_row(top: dict[str, msgspec.Raw] | None) -> bool:
    """A row holding an OpenHands history (see the module docstring)."""
    if not top or "history" not in top:
        return False
    hist = bytes(top["history"]).lstrip()
    if not hist.startswith(b"["):
        return False
    if "instance_id" in top and "test_result" in top:
        return True
    if "metadata" in top and b'"agent_class"' in bytes(top["metadata"]):
        return True
    return _EVENT_KEY.search(hist[:4096]) is not None


def _key(path: str) -> tuple[str, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return path, st.st_size, st.st_mtime_ns


def holds_eval_rows(path: str) -> bool:
    """Whether the file is a row dump with at least one OpenHands evaluation row (cached by
    path, size and mtime)."""
    key = _key(path)
    if key is None:
        return False
    hit = _seen.get(key)
    if hit is None:
        hit = False
        if looks_like_json(path):
            rows = load_rows(path)
            hit = rows.error is None and any(is_eval_row(_peek(r)) for r in rows.raws)
        if len(_seen) >= 4096:
            _seen.pop(next(iter(_seen)))
        _seen[key] = hit
    return hit


def _candidate(name: str) -> bool:
    return name.endswith((".jsonl", ".json")) and not owned_elsewhere(name) and not SIDE_FILES.match(name)


def owned_beside(folder: Path, names: list[str]) -> set[str]:
    """The files an OpenHands evaluation writes beside its output rows (see the module
    docstring): owned, not sessions. Logs count when the evaluation folder above
    (``infer_logs/``, ``logs/``, ``eval_outputs/<instance>/``) holds an ``output*.jsonl``
    of OpenHands rows."""
    if any(_candidate(n) and holds_eval_rows(str(folder / n)) for n in names):
        return {n for n in names if SIDE_FILES.match(n)}
    if folder.name in LOG_FOLDERS:
        eval_dir = folder.parent
    elif folder.parent.name in LOG_FOLDERS:
        eval_dir = folder.parent.parent
    else:
        return set()
    try:
        outputs = [n for n in os.listdir(eval_dir) if OUTPUT_NAME.match(n)]
    except OSError:
        return set()
    return set(names) if any(holds_eval_rows(str(eval_dir / n)) for n in outputs) else set()


class OpenHandsOutput:
    """OpenHands evaluation output rows (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per row of each file holding OpenHands evaluation rows."""
        out: list[SessionRef] = []
        for n in sorted(names):
            if not _candidate(n):
                continue
            path = str(folder / n)
            if not looks_like_json(path):
                continue
            rows = load_rows(path)
            stem = sanitise(file_stem(n))
            if rows.error is not None:
                if OUTPUT_NAME.match(n):
                    out.append(SessionRef(session_id=stem, format=NAME, path=path, files=(path,), locator=""))
                continue
            tops = [_peek(r) for r in rows.raws]
            found = any(is_eval_row(t) for t in tops)
            key = _key(path)
            if key is not None:
                _seen[key] = found
            if not found:
                if _is_event(tops[0] if tops else None) and _starts_with(path, b"["):
                    out.append(SessionRef(session_id=stem, format=NAME, path=path, files=(path,), locator=TRAJECTORY))
                continue
            seen: set[str] = set()
            for i, top in enumerate(tops):
                tid = _task_id(top)
                sid = f"{stem}.{sanitise(tid)}" if tid else f"{stem}.row{i}"
                sid = unique_id(seen, sid, i)
                out.append(SessionRef(session_id=sid, format=NAME, path=path, files=(path,), locator=str(i),
                                      fingerprint=rows.fingerprint(i)))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Row ``int(ref.locator)`` as a session. Raises InputError naming the file and the
        line and field (``history[3][0].args``)."""
        if ref.locator == TRAJECTORY:
            rows = load_rows(ref.path)
            if rows.error is not None:
                raise rows.error
            return _trajectory(ref, rows)
        rows, index, row = row_at(ref.path, ref.locator)
        fail = lambda f, msg: rows.fail(index, f, msg)  # noqa: E731 - errors name this row
        if not isinstance(row, dict):
            raise fail("", f"expected a row object, got {type(row).__name__}")
        error = row.get("error")
        if error is not None and not isinstance(error, str):
            raise fail("error", f"expected a string, got {type(error).__name__}")
        if row.get("history") is None:
            raise fail("history", "no history" + (f": the run ended with the error {error!r}" if error else ""))
        h = history_steps(row["history"], fail)
        metadata = row.get("metadata")
        if metadata is not None and not isinstance(metadata, dict):
            raise fail("metadata", f"expected an object, got {type(metadata).__name__}")
        metadata = metadata or {}
        instruction = row.get("instruction")
        if instruction is not None and not isinstance(instruction, str):
            raise fail("instruction", f"expected a string, got {type(instruction).__name__}")
        finish = h.finish or {}
        meta = {"row": index, "history": _shape(row["history"]),
                "events": h.events, "skipped_events": h.skipped, "agent_class": metadata.get("agent_class"),
                "max_iterations": metadata.get("max_iterations"), "git_commit": metadata.get("git_commit"),
                "dataset": metadata.get("dataset"), "openhands_version": h.version, "error": error,
                "task_completed": finish.get("task_completed")}
        return agent_session(
            ref, h.steps, task=instruction, fail=fail,
            reward=reward(row),
            task_id=_task_id_of(row),
            agent=as_text(metadata.get("agent_class")),
            trial=as_text(row.get("attempt")),
            model=as_text(get(metadata, "llm_config.model")) or as_text(get(metadata, "llm.model"))
            or as_text(metadata.get("model_name")),
            tools=h.tools,
            termination=termination(error or _str_at(row, "test_result.error"), h),
            metrics=metrics(row.get("metrics"), h),
            meta={k: v for k, v in meta.items() if v is not None},
            duration_s=duration(h.first_ts, h.last_ts),
        )


def _is_event(top: dict[str, msgspec.Raw] | None) -> bool:
    """An ``event_to_dict`` object: an ``action`` or ``observation`` string, and ``source``."""
    if not top or "source" not in top:
        return False
    kind = top.get("action", top.get("observation"))
    return kind is not None and bytes(kind).lstrip().startswith(b'"')


def _starts_with(path: str, prefix: bytes) -> bool:
    try:
        with open_regular(path) as fh:
            return fh.read(64).lstrip().startswith(prefix)
    except (OSError, InputError):
        return False


def _trajectory(ref: SessionRef, rows: Any) -> Session:
    """A saved trajectory (a JSON list of events) as one session; errors name ``[i].field``."""
    fail = lambda f, msg: InputError(ref.path, msg, field=f or None)  # noqa: E731
    h = history_steps([rows.row(i) for i in range(len(rows))], fail, "")
    finish = h.finish or {}
    meta = {"history": "trajectory", "events": h.events, "skipped_events": h.skipped, "openhands_version": h.version,
            "task_completed": finish.get("task_completed")}
    return agent_session(ref, h.steps, fail=fail, tools=h.tools, termination=termination(None, h),
                         model=next((s.model for s in h.steps if s.model), None), metrics=metrics(None, h),
                         meta={k: v for k, v in meta.items() if v is not None}, duration_s=duration(h.first_ts, h.last_ts))


def _shape(history: list) -> str:
    """"pairs" (OpenDevin), "v1" (software-agent-sdk events) or "events"."""
    if any(isinstance(x, list) for x in history):
        return "pairs"
    return "v1" if any(isinstance(x, dict) and isinstance(x.get("kind"), str) for x in history) else "events"


def _task_id(top: dict[str, msgspec.Raw] | None) -> str | None:
    if not top:
        return None
    for k in ("instance_id", "question_id"):
        if k in top:
            try:
                value = as_text(msgspec.json.decode(bytes(top[k])))
            except msgspec.DecodeError:
                value = None
            if value:
                return value
    return None


def _task_id_of(row: dict[str, Any]) -> str | None:
    return as_text(row.get("instance_id")) or as_text(row.get("question_id"))


def _str_at(row: dict[str, Any], path: str) -> str | None:
    value = get(row, path)
    return value if isinstance(value, str) and value else None


def reward(row: dict[str, Any]) -> float | None:
    """The run's verdict as 1.0/0.0: the first boolean of :data:`VERDICTS`, else None."""
    for path in VERDICTS:
        value = get(row, path)
        if isinstance(value, bool):
            return 1.0 if value else 0.0
    return None


def termination(error: str | None, h: History) -> str:
    """Why the run ended (see the module docstring)."""
    if error:
        low = error.lower()
        if "iteration" in low and ("max" in low or "limit" in low):
            return "max_steps"
        if "budget" in low:
            return "budget"
        if "stuck" in low and "loop" in low:
            return "stuck"
        if "timeout" in low or "timed out" in low:
            return "timeout"
        return "error"
    return {"finish": "finish", "reject": "reject", "message": "stop"}.get(h.last_action or "", "unknown")


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def metrics(m: Any, h: History) -> dict[str, float]:
    """Typed figures of the row's ``metrics`` (see the module docstring); anything of the
    wrong type is left out."""
    out: dict[str, float] = {"events": float(h.events)}
    if not isinstance(m, dict):
        return out
    cost = _num(m.get("accumulated_cost"))
    if cost is not None:
        out["cost_usd"] = cost
    fields = ("prompt_tokens", "completion_tokens", "cache_read_tokens", "cache_write_tokens")
    usage, per_call = m.get("accumulated_token_usage"), m.get("token_usages")
    if isinstance(usage, dict):
        usages = [usage]
    else:
        usages = [u for u in per_call if isinstance(u, dict)] if isinstance(per_call, list) else []
    for f in fields:
        values = [v for v in (_num(u.get(f)) for u in usages) if v is not None]
        if values:
            out[f] = sum(values)
    lat = m.get("response_latencies")
    if isinstance(lat, list) and lat:
        out["llm_calls"] = float(len(lat))
        secs = [v for v in (_num(x.get("latency")) for x in lat if isinstance(x, dict)) if v is not None]
        if secs:
            out["llm_latency_s"] = sum(secs)
    return out


def duration(first: str | None, last: str | None) -> float | None:
    """Seconds from ``first`` to ``last`` (ISO 8601), None when either does not parse or
    only one has a UTC offset."""
    try:
        a, b = datetime.fromisoformat(first or ""), datetime.fromisoformat(last or "")
    except ValueError:
        return None
    if (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return max(0.0, (b - a).total_seconds())


__all__ = ["OpenHandsOutput", "owned_beside", "holds_eval_rows", "is_eval_row", "reward", "termination"]
