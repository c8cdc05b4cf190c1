"""The group commit: a batch of written sessions (:class:`Written`) becomes durable.

One :meth:`Committer.commit` per batch, from the pipeline's single sink actor (so commits
are serialised): the JSONL export lines the ledger has not seen yet are appended (one
append and one syncfs per batch, :meth:`.jsonl.ExportSet.append_batch`), then the ledger
commits the batch's results in one transaction, with the session store rows and any new
zstd dictionaries (:mod:`.session_store`). Exactly once across restarts: what a crash
leaves between the two is cut by the next run's recovery (:mod:`.jsonl`).

A session that cannot be written (its files: disk full, read-only output; the export
append; the ledger commit, whose export appends are then rolled back) is logged, its
record becomes ``failed`` and it stays pending in the ledger, to be graded again by the
next run. Once rows are stored, a stored session's older folder is cleaned of its result
files so that it cannot shadow the stored row (a failure there is only logged).
"""

from __future__ import annotations

import logging
import sqlite3
from dataclasses import dataclass
from typing import Callable

import anyio

from ..job import Job
from ..models import ScoreRecord
from .jsonl import ExportSet
from .layout import Layout
from .ledger import Ledger
from .records import drop_stale_files
from .session_store import StoredEntry, StoreEncoder

log = logging.getLogger("streamgrade.pipeline")


@dataclass
class Written:
    """A session whose files are written (or failed to be: ``error``), with its record and
    the export lines it adds, on its way to the committer."""

    job: Job
    record: ScoreRecord
    lines: list[tuple[str, bytes]]
    error: OSError | None = None
    stored: StoredEntry | None = None  # its session store row, when it got no folder


class Committer:
    """Commits batches of :class:`Written` under ``layout`` (module docstring) to ``ledger``
    and ``exports``; ``judge_kind`` is written to the ledger with each result. ``count`` is
    called with the record of each session that failed to be written, as it fails (the
    caller counts the committed ones). ``encoder`` is the session store's (its new
    dictionaries are committed with the rows); ``store_rows``: the session store may hold
    rows already (then a session committed with a folder has its row removed); ``folders``:
    session folders may exist (then a stored session's old folder is cleaned)."""

    def __init__(self, layout: Layout, ledger: Ledger, exports: ExportSet, judge_kind: str,
                 count: Callable[[ScoreRecord], None], *, encoder: StoreEncoder | None = None,
                 store_rows: bool = False, folders: bool = False):
        self.layout = layout
        self.ledger = ledger
        self.exports = exports
        self.judge_kind = judge_kind
        self.count = count
        self.encoder = encoder
        self.store_rows = store_rows
        self.folders = folders

    async def commit(self, batch: list[Written]) -> list[Written]:
        """Commit ``batch``; returns those committed (in batch order): all but the ones
        with an ``error``, or none when the export append or the ledger commit failed (then
        each was logged, marked failed and counted, and stays pending). Never raises for
        an OSError or sqlite3.Error of the output."""
        ok: list[Written] = []
        for w in batch:
            if w.error is None:
                ok.append(w)
            else:
                self.write_failed(w, w.error)
        done_before = self.ledger.appended_many([(w.job.ref.session_id, w.job.ref.fingerprint) for w in ok])
        todo = [{name for name in self.exports
                 if (w.job.ref.session_id, w.job.ref.fingerprint, name, w.record.status) not in done_before}
                for w in ok]
        lines = [[(n, line) for n, line in w.lines if n in t] for w, t in zip(ok, todo)]
        before = self.exports.sizes()
        try:
            committed = await anyio.to_thread.run_sync(self.exports.append_batch, lines) if ok else {}
        except OSError as exc:
            for w in ok:  # appends rolled back: these sessions stay pending for the next run
                self.write_failed(w, exc)
            return []
        stored = [w.stored for w in ok if w.stored is not None]
        new_dicts = self.encoder.pending_dicts() if self.encoder is not None else []
        try:
            self.ledger.commit_results(
                [(w.job.ref.session_id, w.job.ref.fingerprint, w.record.status, w.record.error, w.job.error_kind,
                  self.judge_kind, w.record.score, [n for n, _ in item_lines])
                 for w, item_lines in zip(ok, lines)],
                committed,
                stored=stored,
                unstored=[w.job.ref.session_id for w in ok if w.stored is None] if self.store_rows else (),
                dicts=new_dicts,
            )
        except sqlite3.Error as exc:  # the ledger cannot be written (disk full): undo the appends
            self.exports.rollback(before)
            err = OSError(f"ledger not written: {exc}")
            err.filename = str(self.ledger.path)
            for w in ok:
                self.write_failed(w, err)
            return []
        if new_dicts:
            self.encoder.dicts_committed([i for i, _ in new_dicts])  # type: ignore[union-attr]
        self.store_rows = self.store_rows or bool(stored)
        if stored and self.folders:  # an older version's folder must not shadow the stored one
            try:
                await anyio.to_thread.run_sync(drop_stale_files, self.layout, [e.session_id for e in stored])
            except OSError as exc:
                log.warning("old session files not removed: %s", exc, extra={"file": str(self.layout.sessions)})
        self.folders = self.folders or len(stored) < len(ok)
        return ok

    def write_failed(self, w: Written, exc: OSError) -> None:
        """Disk full, read-only output: nothing half-written stays; the session stays pending
        in the ledger and is graded again by the next run. Logs the error, marks ``w``'s
        record failed (naming the file, else the output folder) and counts it."""
        where = getattr(exc, "filename", None) or str(self.layout.out)
        log.error("cannot write results of %s: %s", w.job.ref.session_id, exc,
                  extra={"session": w.job.ref.session_id, "file": where})
        w.record.status, w.record.error = "failed", f"{where}: cannot write output: {exc.strerror or exc}"
        self.count(w.record)


__all__ = ["Committer", "Written"]
