"""``streamgrade hints``: group OUT's graded episodes by task, extract hints per episode
(cached), aggregate per task, write augmented tasks.

Flow: :func:`~.episodes.load_tasks` (scores.json and results.json of every session) ->
``--max-tasks`` first tasks in key order -> :func:`~.episodes.pick_episodes` (at most
``[hints] max_episodes`` each) -> per episode: the cache (:class:`~.cache.HintCache`), else
an extraction, offline (:func:`~.offline.offline_hints`, in a worker thread) or one LLM
request (:mod:`.llm`, ``[hints] concurrency`` at once through the judge client's limits) ->
:func:`~.aggregate.aggregate` per task -> :func:`~.write.write_rows` (atomically, all
tasks of this run) and, when asked, Harbor task folders.

Budget: once the judge's run budget (``openai.max_cost_usd``) is spent, no new request is
sent; the episodes left are counted in ``budget_pending`` and their tasks are not written
this run (the next run, with budget, finishes them: what was extracted is cached). A
request that fails for good (``JudgeError``) leaves its episode out of its task's hints,
listed in the row's ``episodes`` with the error, and it is tried again on the next run.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import anyio
import msgspec

from ..config import Config
from ..errors import BudgetExceeded, JudgeError
from ..models import Session, SessionRef, Usage
from ..sinks.layout import Layout
from .aggregate import aggregate
from .cache import HintCache
from .episodes import Episode, LoadReport, Task, load_tasks, pick_episodes
from .llm import HINTS_SCHEMA, HINTS_SYSTEM_PROMPT, PROMPT_VERSION, hints_prompt, parse_hints
from .offline import offline_hints
from .write import task_row, write_harbor_task, write_rows

log = logging.getLogger("streamgrade.hints")

#: Bump when the offline rules change: cached offline extractions are redone.
OFFLINE_VERSION = "hints-offline-3"
HINTS_FILE = "hints.jsonl"
CACHE_FILE = "cache.sqlite"


@dataclass
class HintsRun:
    """What a run did: ``tasks`` found, ``written`` rows, ``episodes`` selected, of them
    ``cached`` (no work), ``extracted`` (now), ``failed`` (session id, reason) and
    ``budget_pending`` (left for a later run: the budget was spent); ``requests`` sent,
    ``usage`` (tokens, USD); ``path`` of the JSONL; ``harbor`` task folders written;
    ``report`` what loading saw; ``mode`` llm or offline."""

    mode: str = "offline"
    tasks: int = 0
    written: int = 0
    episodes: int = 0
    cached: int = 0
    extracted: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    budget_pending: int = 0
    usage: Usage = field(default_factory=Usage)
    path: Path | None = None
    harbor: list[Path] = field(default_factory=list)
    report: LoadReport = field(default_factory=LoadReport)

    @property
    def done(self) -> int:
        return self.cached + self.extracted + len(self.failed)


def extraction_version(mode: str, ep: Episode, cfg: Config, model: str | None) -> str:
    """The cache's ``version`` of an extraction (see :mod:`.cache`): 16 hex digits."""
    if mode == "llm":
        parts = [PROMPT_VERSION, model or "", str(cfg.hints.evidence_tokens), ep.outcome()]
    else:
        parts = [OFFLINE_VERSION, str(ep.success)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _offline(ep: Episode) -> dict[str, Any]:
    messages, tools = ep.load()
    return offline_hints(messages, tools, ep.termination)


async def _llm(judge: Any, ep: Episode, cfg: Config, usage: Usage) -> dict[str, Any]:
    messages, tools = await anyio.to_thread.run_sync(ep.load)
    prompt = hints_prompt(ep.task, ep.outcome(), messages, tools, cfg.hints.evidence_tokens)
    shell = Session(ref=SessionRef(session_id=ep.session_id, format=ep.source_format, path=str(ep.folder), files=()),
                    task=ep.task, kind="agent")
    return await judge.ask(shell, prompt, HINTS_SCHEMA, parse_hints, usage, system=HINTS_SYSTEM_PROMPT)


def _episode_row(ep: Episode, source: str | None, error: str | None = None) -> dict[str, Any]:
    return {"session_id": ep.session_id, "trial": ep.trial, "success": ep.success, "decided_by": ep.decided_by,
            "reward": ep.reward, "score": ep.score, "turns": ep.turns, "source": source, "error": error}


async def run_hints(out: str | Path, cfg: Config, *, judge: Any = None, dest: Path | None = None,
                    max_tasks: int | None = None, harbor_dir: Path | None = None, harbor_source: Path | None = None,
                    on_progress: Callable[[HintsRun], None] | None = None) -> HintsRun:
    """Run ``hints`` over the output folder ``out`` (see the module docstring). ``judge``
    is an LLM judge (anything with :meth:`~streamgrade.judges.openai.OpenAIJudge.ask`) or
    None for offline extraction; ``dest`` the JSONL (default ``OUT/hints/hints.jsonl``);
    ``max_tasks`` the first N tasks only; ``harbor_dir`` writes Harbor task folders there,
    copying the original task folders from ``harbor_source`` when given;
    ``on_progress`` is called after each episode. Raises OSError when the output cannot be
    written."""
    layout = Layout(out)
    run = HintsRun(mode="llm" if judge is not None else "offline")
    tasks, run.report = await anyio.to_thread.run_sync(
        lambda: load_tasks(layout.out, cfg.hints.group_by, reward_pass=cfg.exports.reward_pass,
                           pass_score=cfg.exports.pass_score))
    run.tasks = len(tasks)
    if max_tasks is not None:
        tasks = tasks[:max_tasks]
    chosen: list[tuple[Task, list[Episode]]] = [(t, pick_episodes(t, cfg.hints.max_episodes)) for t in tasks]
    run.episodes = sum(len(eps) for _, eps in chosen)
    model = getattr(getattr(judge, "info", None), "model", None)
    cache = HintCache(layout.hints / CACHE_FILE)
    got: dict[str, tuple[dict[str, Any], str]] = {}
    errors: dict[str, str] = {}
    stopped = False
    limiter = anyio.CapacityLimiter(cfg.hints.concurrency)

    def progress() -> None:
        if on_progress is not None:
            on_progress(run)

    async def one(ep: Episode) -> None:
        nonlocal stopped
        version = extraction_version(run.mode, ep, cfg, model)
        hit = cache.get(ep.session_id, ep.fingerprint, version)
        if hit is not None:
            got[ep.session_id] = hit
            run.cached += 1
            progress()
            return
        async with limiter:
            if stopped:
                run.budget_pending += 1
                return
            usage = Usage()
            try:
                if judge is None:
                    hints = await anyio.to_thread.run_sync(_offline, ep)
                else:
                    hints = await _llm(judge, ep, cfg, usage)
            except BudgetExceeded as exc:
                if not stopped:
                    log.warning("%s; no new requests are sent", exc)
                stopped = True
                run.budget_pending += 1
                run.usage.add(usage)
                return
            except (JudgeError, OSError, ValueError) as exc:
                run.usage.add(usage)
                errors[ep.session_id] = str(exc)
                run.failed.append((ep.session_id, str(exc)))
                log.warning("episode %s: no hints: %s", ep.session_id, exc, extra={"session": ep.session_id})
                progress()
                return
            run.usage.add(usage)
            cache.put(ep.session_id, ep.fingerprint, version, run.mode, hints, msgspec.to_builtins(usage))
            got[ep.session_id] = (hints, run.mode)
            run.extracted += 1
            progress()

    try:
        async with anyio.create_task_group() as tg:
            for _, eps in chosen:
                for ep in eps:
                    tg.start_soon(one, ep)
    finally:
        cache.close()
    rows = []
    for task, eps in chosen:
        if any(e.session_id not in got and e.session_id not in errors for e in eps):
            continue  # budget spent before all its episodes were read: the next run writes it
        pairs = [(e, got[e.session_id][0]) for e in eps if e.session_id in got]
        if not pairs:
            continue
        offline = all(got[e.session_id][1] == "offline" for e, _ in pairs)
        # offline lines are templates that differ in a name or a value: only equal ones are one hint
        hints = aggregate(pairs, offline=offline, threshold=1.0 if offline else cfg.hints.similarity,
                          max_items=cfg.hints.max_items)
        rows.append(task_row(task, hints, [_episode_row(e, got[e.session_id][1] if e.session_id in got else None,
                                                         errors.get(e.session_id)) for e in eps]))
    run.path = dest or layout.hints / HINTS_FILE
    if rows or not run.path.exists():
        await anyio.to_thread.run_sync(write_rows, run.path, rows)
    run.written = len(rows)
    if harbor_dir is not None:
        from .write import harbor_folder_name

        for row in rows:
            src = harbor_source / harbor_folder_name(row) if harbor_source is not None else None
            run.harbor.append(await anyio.to_thread.run_sync(write_harbor_task, harbor_dir, row, src))
    return run


__all__ = ["HintsRun", "run_hints", "extraction_version", "OFFLINE_VERSION", "HINTS_FILE", "CACHE_FILE"]
