"""What a finished session leaves behind: its :class:`ScoreRecord`, its per-session files
(``scores.json``, ``results.json``, ``sft.json`` under ``OUT/sessions/<shard>/<folder>/``,
see :mod:`.layout`, or the same documents as a session store row when ``[sinks]
session_files`` gives it no folder, see :mod:`.session_store`) and its scores.jsonl line.
(Training rows are built from these at the end of a run: :mod:`streamgrade.exports.build`.)

:func:`write_session` is blocking (the pipeline's file writers call it in worker threads);
the files are written atomically but not fsynced: the committer's one ``syncfs`` per batch
makes them durable before the ledger names the session done.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import msgspec

from ..calibration.model import CalibrationModel
from ..config import Config
from ..golden import evaluate as golden_path
from ..job import Job
from ..judges.rubric import final_confidence, final_score
from ..models import JudgeInfo, ScoreRecord
from .atomic import write_files_atomic
from .layout import PAGE_FILES, RESULT_FILES, SCORES_JSONL, Layout
from .session_store import StoredEntry, StoreEncoder, encode_entry_raw, raw_documents

log = logging.getLogger("streamgrade.sinks")


def rfc3339_now() -> str:
    """Current UTC time as RFC 3339 with milliseconds, e.g. 2026-11-25T07:23:33.123Z."""
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def build_record(job: Job, judge: JudgeInfo, weights: dict[str, float],
                 calibration: CalibrationModel | None = None) -> ScoreRecord:
    """The ScoreRecord of a finished job (graded; ungradable when the verdict says so, with
    no score and the reason in ``error``; or failed with ``job.error``); ``weights`` are the
    rubric weights the final score is computed with; with a ``calibration`` model a graded
    record gets ``p_success`` (0-1, 4 decimals), computed from the record's own fields
    (:mod:`streamgrade.calibration`)."""
    s, v = job.session, job.verdict
    usage = v.usage if v else job.usage
    ungradable = v is not None and job.error is None and v.ungradable is not None
    graded = v is not None and job.error is None and not ungradable
    record = ScoreRecord(
        session_id=job.ref.session_id,
        source_format=job.ref.format,
        source_path=job.ref.path,
        status="graded" if graded else "ungradable" if ungradable else "failed",
        score=final_score(v.components, weights) if graded else None,
        components={k: c.score for k, c in v.components.items()} if graded else {},
        confidence=final_confidence(v.components, weights) if graded else None,
        judge=JudgeInfo(judge.kind, judge.model),
        reward=round(s.reward, 9) if s and s.reward is not None else None,  # float noise of summed rewards
        n_actions=len(s.actions) if s else 0,
        task_id=s.task_id if s else None,
        trial=s.trial if s else None,
        agent=s.agent if s else None,
        model=s.model if s else None,
        turns=s.turns if s else 0,
        tool_calls=s.n_tool_calls if s else 0,
        termination=s.termination if s else None,
        metrics=dict(s.metrics) if s else {},
        golden=golden_path(s) if s else None,  # against the reference actions; never in the score
        duration_s=s.duration_s if s else None,
        usage={
            "prompt_tokens": usage.prompt_tokens if usage else 0,
            "completion_tokens": usage.completion_tokens if usage else 0,
            "cost_usd": round(usage.cost_usd, 6) if usage else 0.0,
            "requests": usage.requests if usage else 0,
            "cached_tokens": usage.cached_tokens if usage else 0,
        },
        error=f"ungradable: {v.ungradable}" if ungradable else job.error,
        graded_at=rfc3339_now(),
        fingerprint=job.ref.fingerprint,
        success=v.extras.get("success") if graded else None,
        p_success_judge=v.extras.get("p_success") if graded else None,
        failure_cause=v.extras.get("failure_cause") if graded else None,
    )
    if calibration is not None and graded:
        try:
            p = calibration.predict(msgspec.to_builtins(record))
        except Exception as exc:  # a bug must not stop the daemon: the record goes without p_success
            log.warning("no p_success for %s: %r", record.session_id, exc, extra={"session": record.session_id})
            p = None
        if p is not None:
            record.p_success = round(p, 4)
    return record


def session_docs(job: Job, record: ScoreRecord, config: Config) -> dict[str, Any]:
    """The session's documents, as objects msgspec encodes: ``scores.json`` always;
    ``results.json`` and ``sft.json`` when the session was read (a session that failed on
    its input has only scores.json)."""
    scores = msgspec.to_builtins(record)
    if job.verdict:
        scores["summary"] = job.verdict.summary
        scores["reasons"] = {k: {"score": c.score, "confidence": c.confidence, "reason": c.reason}
                             for k, c in job.verdict.components.items()}
        scores["weights"] = config.rubric.weights()
        if job.verdict.extras:
            scores["judgement"] = job.verdict.extras
    docs: dict[str, Any] = {"scores.json": scores}
    s = job.session
    if s is None:
        return docs
    docs["results.json"] = {
        "session": {
            "session_id": job.ref.session_id, "format": job.ref.format, "path": job.ref.path,
            "kind": s.kind, "task_id": s.task_id, "trial": s.trial, "agent": s.agent, "model": s.model,
            "termination": s.termination, "metrics": s.metrics, "task": s.task, "objectives": s.objectives,
            "app": s.app, "duration_s": s.duration_s, "reward": s.reward, "meta": s.meta,
        },
        "actions": s.actions,
        "frames": job.frames,
        "video": job.video,
        "steps": job.steps,
        **({"augment": job.augment} if job.augment is not None else {}),
        "chunks": [
            {"index": c.index, "start_ms": c.start_ms, "end_ms": c.end_ms, "tokens": c.tokens,
             "line_chars": c.line_chars, "omitted": c.omitted,
             "summary": (job.verdict.chunk_summaries[c.index]
                         if job.verdict and c.index < len(job.verdict.chunk_summaries) else None)}
            for c in job.chunks
        ],
        "verdict": job.verdict,
        "score": record.score,
        "status": record.status,
        "error": record.error,
    }
    sft: dict = {"messages": job.messages}
    if s.has_transcript:
        sft["tools"] = s.tools
    docs["sft.json"] = sft
    return docs


def session_files(job: Job, record: ScoreRecord, config: Config, enc: msgspec.json.Encoder) -> dict[str, bytes]:
    """The session folder's JSON files (see :func:`session_docs`), indented."""
    return {name: msgspec.json.format(enc.encode(doc), indent=2)
            for name, doc in session_docs(job, record, config).items()}


@dataclass(slots=True)
class SessionOutput:
    """What :func:`write_session` did: the ``(export name, line)`` pairs the session adds;
    its store row (``stored``, to commit with the ledger) when it got no folder; ``bytes``
    written to files (its folder)."""

    lines: list[tuple[str, bytes]]
    stored: StoredEntry | None = None
    bytes: int = 0


@dataclass(slots=True)
class EncodedSession:
    """A session's outputs as bytes, ready to be written (:func:`encode_session`): its
    ``(export name, line)`` pairs; and either ``files``, its folder's files (name -> indented
    JSON), or, for a session the session store keeps, ``record_raw`` (scores.json as compact
    JSON) and ``data_raw`` (``{"results": ..., "sft": ...}`` as compact JSON, None for a
    session that was never read). Built where the session was graded (a Ray actor, or the
    file writer's thread) and written by :func:`write_session`."""

    lines: list[tuple[str, bytes]]
    files: dict[str, bytes] | None = None
    record_raw: bytes | None = None
    data_raw: bytes | None = None


def wants_folder(mode: str, status: str) -> bool:
    """Whether a session of ``status`` gets a folder under ``[sinks] session_files = mode``
    (all, failed or none); the others go to the session store."""
    return mode == "all" or (mode == "failed" and status == "failed")


def encode_session(job: Job, record: ScoreRecord, config: Config) -> EncodedSession:
    """The session's outputs as bytes (:class:`EncodedSession`): its scores.jsonl line, and
    its documents (:func:`session_docs`) encoded for a folder or for the session store, as
    ``[sinks] session_files`` says for ``record``'s status. Pure CPU, no I/O."""
    enc = msgspec.json.Encoder()
    lines = [(SCORES_JSONL, enc.encode(record))]
    docs = session_docs(job, record, config)
    if wants_folder(config.sinks.session_files, record.status):
        return EncodedSession(lines, {name: msgspec.json.format(enc.encode(doc), indent=2)
                                      for name, doc in docs.items()})
    return EncodedSession(lines, None, *raw_documents(docs, enc))


def write_session(layout: Layout, job: Job, record: ScoreRecord, config: Config,
                  store: StoreEncoder | None = None, encoded: EncodedSession | None = None) -> SessionOutput:
    """Blocking: a session's files, in its folder (written atomically, no fsync, see the
    module docstring) or as a session store row (:mod:`.session_store`; committed later
    with the ledger), and the (export name, line) pairs it adds. ``encoded``: its outputs
    already encoded (:func:`encode_session`, e.g. by a Ray actor); by default they are
    encoded here. ``store`` compresses the row (default: no zstd dictionary). Raises
    OSError (disk full, read-only output) with nothing half-written left behind."""
    if encoded is None:
        encoded = encode_session(job, record, config)
    if encoded.files is not None:
        write_files_atomic(layout.session_dir(job.ref.session_id), encoded.files, fsync=False, kind="session files")
        return SessionOutput(encoded.lines, None, sum(map(len, encoded.files.values())))
    assert encoded.record_raw is not None, "an EncodedSession has files or record_raw"
    encode = store.encode_raw if store is not None else encode_entry_raw
    entry = encode(record.session_id, record.fingerprint or job.ref.fingerprint, record.status, record.graded_at or "",
                   encoded.record_raw, encoded.data_raw)
    return SessionOutput(encoded.lines, entry, 0)


def drop_stale_files(layout: Layout, session_ids: list[str]) -> int:
    """Blocking: remove the result files and pages (never the frames) that an older
    version of each session left in its folder, once its newer version is committed to the
    session store; returns the folders cleaned. A file already gone is no error."""
    cleaned = 0
    for sid in session_ids:
        folder = layout.find_session_dir(sid)
        if folder is None:
            continue
        for name in (*RESULT_FILES, *PAGE_FILES):
            try:
                os.unlink(folder / name)
            except FileNotFoundError:
                pass
        cleaned += 1
    return cleaned


__all__ = ["build_record", "write_session", "session_files", "session_docs", "rfc3339_now", "SessionOutput",
           "EncodedSession", "encode_session", "wants_folder", "drop_stale_files"]
