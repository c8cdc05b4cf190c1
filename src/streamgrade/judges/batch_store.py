"""What batch mode keeps in the run ledger (OUT/state.sqlite), so that a kill -9 at any
moment loses no paid work and never resubmits a request that succeeded.

Two tables, next to the ledger's own (:mod:`streamgrade.sinks.ledger`), in the same SQLite
file (WAL mode, one connection of its own; the pipeline's output lock guards the folder):

- ``batch_submissions``: one row per batch this folder asked a provider for: ``id`` (local,
  autoincrement), ``provider`` (openai | anthropic), ``token`` (a random hex string written
  into the batch's metadata where the provider has metadata, to find a batch whose id was
  lost), ``file_id`` (OpenAI's uploaded input file), ``batch_id`` (the provider's),
  ``status`` (``submitting``: the intent, recorded before the create call; ``submitted``:
  the provider's id is known; ``ended``: its results are stored; ``abandoned``: no batch was
  found for the intent, its requests are resubmitted), ``requests`` (count), ``created``
  and ``updated`` (unix seconds), ``error`` (why it ended without results).
- ``batch_requests``: one row per request, by ``custom_id`` (deterministic: a hash of the
  endpoint and the request body, see :func:`streamgrade.judges.batch.custom_id`):
  ``submission`` (the last submission it went into), ``state`` (submitted | succeeded |
  errored | expired | canceled), ``attempts`` (submissions so far, all runs), ``result``
  (the endpoint's response body, JSON, for succeeded requests), ``error`` and
  ``retryable`` (for the others), ``updated``.

The rules the collector (:mod:`.batch_collector`) follows: a ``succeeded`` row is answered
from ``result`` with no HTTP at all; a ``submitted`` row is waited for by polling its
submission (never resubmitted); an ``errored``, ``expired`` or ``canceled`` row is
resubmitted. The intent (a ``submitting`` submission and its requests set to
``submitted``) commits before the create call; the id commits right after it.

Rows are small (a custom_id, and for succeeded requests the response body, about 1-2 KB
for a verdict); :meth:`BatchStore.prune` drops those of submissions ended more than
``keep_days`` ago.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterable, NamedTuple

SCHEMA = """
CREATE TABLE IF NOT EXISTS batch_submissions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    provider TEXT NOT NULL,
    token TEXT NOT NULL,
    file_id TEXT,
    batch_id TEXT,
    status TEXT NOT NULL,
    requests INTEGER NOT NULL,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    error TEXT
);
CREATE TABLE IF NOT EXISTS batch_requests (
    custom_id TEXT PRIMARY KEY,
    submission INTEGER NOT NULL,
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    result BLOB,
    error TEXT,
    retryable INTEGER NOT NULL DEFAULT 1,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS batch_requests_submission ON batch_requests (submission);
"""

#: Request states after which the request is sent again in a new batch.
RESUBMIT = frozenset({"errored", "expired", "canceled"})


class Submission(NamedTuple):
    """A ``batch_submissions`` row."""

    id: int
    provider: str
    token: str
    file_id: str | None
    batch_id: str | None
    status: str
    requests: int
    created: float


class RequestRow(NamedTuple):
    """A ``batch_requests`` row (``result``: the stored response body, JSON bytes)."""

    custom_id: str
    submission: int
    state: str
    attempts: int
    result: bytes | None
    error: str | None
    retryable: bool


class Outcome(NamedTuple):
    """What to store for one request of an ended batch: ``state`` (succeeded | errored |
    expired | canceled), ``result`` (JSON bytes of the response body when succeeded),
    ``error`` (text) and ``retryable``."""

    custom_id: str
    state: str
    result: bytes | None = None
    error: str | None = None
    retryable: bool = True


class BatchStore:
    """The batch tables in the SQLite file at ``path`` (created if absent). Use it from
    one thread (the event loop); every method commits before it returns."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    # -- reads ---------------------------------------------------------------------------
    def request(self, custom_id: str) -> RequestRow | None:
        row = self.db.execute(
            "SELECT custom_id, submission, state, attempts, result, error, retryable FROM batch_requests "
            "WHERE custom_id=?", (custom_id,)).fetchone()
        return RequestRow(*row[:6], bool(row[6])) if row else None

    def open_submissions(self, provider: str) -> list[Submission]:
        """Submissions of ``provider`` not ended: ``submitting`` (the id may be lost) and
        ``submitted`` (to be polled), oldest first."""
        rows = self.db.execute(
            "SELECT id, provider, token, file_id, batch_id, status, requests, created FROM batch_submissions "
            "WHERE provider=? AND status IN ('submitting', 'submitted') ORDER BY id", (provider,)).fetchall()
        return [Submission(*r) for r in rows]

    def submission(self, sub_id: int) -> Submission | None:
        row = self.db.execute("SELECT id, provider, token, file_id, batch_id, status, requests, created "
                              "FROM batch_submissions WHERE id=?", (sub_id,)).fetchone()
        return Submission(*row) if row else None

    def waiting_ids(self, sub_id: int) -> list[str]:
        """The custom_ids still ``submitted`` in this submission."""
        return [r[0] for r in self.db.execute(
            "SELECT custom_id FROM batch_requests WHERE submission=? AND state='submitted'", (sub_id,))]

    def known_batch_ids(self, provider: str) -> set[str]:
        return {r[0] for r in self.db.execute(
            "SELECT batch_id FROM batch_submissions WHERE provider=? AND batch_id IS NOT NULL", (provider,))}

    def counts(self) -> dict[str, int]:
        """Requests by state (all providers)."""
        return dict(self.db.execute("SELECT state, count(*) FROM batch_requests GROUP BY state").fetchall())

    # -- writes --------------------------------------------------------------------------
    def begin(self, provider: str, token: str, custom_ids: list[str], now: float | None = None) -> int:
        """Record the intent to submit ``custom_ids`` in one new batch (before the create
        call): a ``submitting`` submission, and each request set to ``submitted`` in it with
        one more attempt. Returns the submission's local id."""
        now = time.time() if now is None else now
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            cur = self.db.execute(
                "INSERT INTO batch_submissions (provider, token, status, requests, created, updated) "
                "VALUES (?, ?, 'submitting', ?, ?, ?)", (provider, token, len(custom_ids), now, now))
            sub_id = int(cur.lastrowid)
            self.db.executemany(
                """INSERT INTO batch_requests (custom_id, submission, state, attempts, updated)
                   VALUES (?, ?, 'submitted', 1, ?)
                   ON CONFLICT(custom_id) DO UPDATE SET submission=excluded.submission, state='submitted',
                   attempts=attempts+1, result=NULL, error=NULL, retryable=1, updated=excluded.updated""",
                [(cid, sub_id, now) for cid in custom_ids])
        return sub_id

    def set_file(self, sub_id: int, file_id: str) -> None:
        """The uploaded input file of a submission (OpenAI)."""
        self.db.execute("UPDATE batch_submissions SET file_id=?, updated=? WHERE id=?", (file_id, time.time(), sub_id))

    def set_batch(self, sub_id: int, batch_id: str) -> None:
        """The provider's batch id: the submission is ``submitted``."""
        self.db.execute("UPDATE batch_submissions SET batch_id=?, status='submitted', updated=? WHERE id=?",
                        (batch_id, time.time(), sub_id))

    def finish(self, sub_id: int, outcomes: Iterable[Outcome], *, status: str = "ended",
               missing_error: str = "no result for this request", missing_retryable: bool = True) -> int:
        """In one transaction: each outcome of this submission's requests (a result line
        for a request no longer in this submission, or unknown, is ignored), every request
        still ``submitted`` in it set ``errored`` with ``missing_error``, and the submission
        set to ``status`` (ended | abandoned). Returns the number of outcomes stored."""
        now = time.time()
        stored = 0
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            for o in outcomes:
                cur = self.db.execute(
                    "UPDATE batch_requests SET state=?, result=?, error=?, retryable=?, updated=? "
                    "WHERE custom_id=? AND submission=? AND state='submitted'",
                    (o.state, o.result, o.error, int(o.retryable), now, o.custom_id, sub_id))
                stored += cur.rowcount
            self.db.execute(
                "UPDATE batch_requests SET state='errored', error=?, retryable=?, updated=? "
                "WHERE submission=? AND state='submitted'", (missing_error, int(missing_retryable), now, sub_id))
            self.db.execute("UPDATE batch_submissions SET status=?, error=?, updated=? WHERE id=?",
                            (status, None if status == "ended" else missing_error, now, sub_id))
        return stored

    def prune(self, keep_days: float) -> int:
        """Drop ended or abandoned submissions older than ``keep_days`` and their request
        rows that went into no later submission; returns the request rows dropped."""
        cutoff = time.time() - keep_days * 86400
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            old = "SELECT id FROM batch_submissions WHERE status IN ('ended', 'abandoned') AND updated < ?"
            cur = self.db.execute(f"DELETE FROM batch_requests WHERE submission IN ({old})", (cutoff,))
            self.db.execute("DELETE FROM batch_submissions WHERE status IN ('ended', 'abandoned') AND updated < ?",
                            (cutoff,))
        return cur.rowcount


__all__ = ["BatchStore", "Submission", "RequestRow", "Outcome", "RESUBMIT", "SCHEMA"]
