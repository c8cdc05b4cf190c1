"""The run ledger, OUT/state.sqlite: what was seen, graded and appended.

Tables:
- ``sessions``: one row per session id: format, path, fingerprint of the input files,
  status (pending, graded, ungradable, failed), attempts, error, error_kind (input or judge), judge,
  score, updated_at. A re-run skips a session whose fingerprint is unchanged and whose status
  is graded, or failed because of its input; judge failures are tried again.
- ``appends``: (session_id, fingerprint, export, status): the JSONL lines written, so that a
  line is never appended twice.
- ``exports``: for each JSONL export, ``committed_bytes``: its length after the last append
  whose ledger transaction committed. On start, bytes beyond it (an append whose commit was
  lost to kill -9) are truncated, and those sessions are still pending, so they are graded
  and appended again: every line lands exactly once, and no half line survives.
- ``session_data``: the session store (:mod:`.session_store`), the files of sessions
  that get no folder; a row is written or removed in the transaction that commits the
  session's outcome.

SQLite in WAL mode, synchronous=NORMAL: a commit survives a process crash (kill -9). After a
power loss the last commits may roll back; the truncation rule keeps the files consistent.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Iterable, NamedTuple

from .session_store import SCHEMA as STORE_SCHEMA, StoredEntry

SCHEMA = """
CREATE TABLE IF NOT EXISTS sessions (
    session_id TEXT PRIMARY KEY,
    format TEXT NOT NULL,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    error_kind TEXT,
    judge TEXT,
    score REAL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS appends (
    session_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    export TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (session_id, fingerprint, export, status)
);
CREATE TABLE IF NOT EXISTS exports (
    name TEXT PRIMARY KEY,
    committed_bytes INTEGER NOT NULL
);
""" + STORE_SCHEMA


class SessionRow(NamedTuple):
    """A ``sessions`` row."""

    session_id: str
    format: str
    path: str
    fingerprint: str
    status: str
    attempts: int
    error: str | None
    error_kind: str | None


class Ledger:
    """The ledger at ``path`` (created if absent). Not thread-safe: use it from one thread
    (the pipeline calls it from the event loop; commits are cheap in WAL mode)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get(self, session_id: str) -> SessionRow | None:
        row = self.db.execute(
            "SELECT session_id, format, path, fingerprint, status, attempts, error, error_kind FROM sessions WHERE session_id=?",
            (session_id,),
        ).fetchone()
        return SessionRow(*row) if row else None

    def get_many(self, session_ids: list[str]) -> dict[str, SessionRow]:
        """The rows of these sessions (those in the ledger), by id: one query per 500 ids."""
        out: dict[str, SessionRow] = {}
        for i in range(0, len(session_ids), 500):
            part = session_ids[i:i + 500]
            for row in self.db.execute(
                    "SELECT session_id, format, path, fingerprint, status, attempts, error, error_kind FROM sessions "
                    f"WHERE session_id IN ({','.join('?' * len(part))})", part):
                out[row[0]] = SessionRow(*row)
        return out

    def needs_grading(self, session_id: str, fingerprint: str) -> bool:
        """False when this fingerprint was already graded or found ungradable, or failed for
        its input."""
        row = self.get(session_id)
        if row is None or row.fingerprint != fingerprint:
            return True
        return not (row.status in ("graded", "ungradable") or (row.status == "failed" and row.error_kind == "input"))

    def mark_pending(self, session_id: str, fmt: str, path: str, fingerprint: str) -> None:
        """Record that this version of the session is on its way through the pipeline."""
        self.db.execute(
            """INSERT INTO sessions (session_id, format, path, fingerprint, status, updated_at)
               VALUES (?, ?, ?, ?, 'pending', ?)
               ON CONFLICT(session_id) DO UPDATE SET format=excluded.format, path=excluded.path,
               fingerprint=excluded.fingerprint, status='pending', updated_at=excluded.updated_at""",
            (session_id, fmt, path, fingerprint, time.time()),
        )

    def mark_pending_many(self, rows: list[tuple[str, str, str, str]]) -> None:
        """:meth:`mark_pending` for (session_id, format, path, fingerprint) rows, in one
        transaction."""
        if not rows:
            return
        now = time.time()
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                """INSERT INTO sessions (session_id, format, path, fingerprint, status, updated_at)
                   VALUES (?, ?, ?, ?, 'pending', ?)
                   ON CONFLICT(session_id) DO UPDATE SET format=excluded.format, path=excluded.path,
                   fingerprint=excluded.fingerprint, status='pending', updated_at=excluded.updated_at""",
                [(*row, now) for row in rows],
            )

    def appended_many(self, keys: list[tuple[str, str]]) -> set[tuple[str, str, str, str]]:
        """The (session_id, fingerprint, export, status) lines already appended for these
        (session_id, fingerprint) versions."""
        out: set[tuple[str, str, str, str]] = set()
        for i in range(0, len(keys), 400):
            part = keys[i:i + 400]
            sql = ("SELECT session_id, fingerprint, export, status FROM appends WHERE "
                   + " OR ".join(["(session_id=? AND fingerprint=?)"] * len(part)))
            out.update(self.db.execute(sql, [v for k in part for v in k]).fetchall())
        return out

    def appended(self, session_id: str, fingerprint: str, export: str, status: str) -> bool:
        """Whether this line was already appended to ``export``."""
        return self.db.execute(
            "SELECT 1 FROM appends WHERE session_id=? AND fingerprint=? AND export=? AND status=?",
            (session_id, fingerprint, export, status),
        ).fetchone() is not None

    def committed_bytes(self, export: str) -> int | None:
        row = self.db.execute("SELECT committed_bytes FROM exports WHERE name=?", (export,)).fetchone()
        return row[0] if row else None

    def set_committed_bytes(self, export: str, size: int) -> None:
        self.db.execute(
            "INSERT INTO exports (name, committed_bytes) VALUES (?, ?) ON CONFLICT(name) DO UPDATE SET committed_bytes=excluded.committed_bytes",
            (export, size),
        )

    def commit_result(
        self,
        *,
        session_id: str,
        fingerprint: str,
        status: str,
        error: str | None,
        error_kind: str | None,
        judge: str | None,
        score: float | None,
        appends: Iterable[tuple[str, int]],
    ) -> None:
        """In one transaction: the session's outcome, the lines appended (export name, new
        committed size of that export)."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(
                """UPDATE sessions SET status=?, attempts=attempts+1, error=?, error_kind=?, judge=?, score=?, updated_at=?
                   WHERE session_id=? AND fingerprint=?""",
                (status, error, error_kind, judge, score, time.time(), session_id, fingerprint),
            )
            for export, size in appends:
                self.db.execute(
                    "INSERT OR IGNORE INTO appends (session_id, fingerprint, export, status) VALUES (?, ?, ?, ?)",
                    (session_id, fingerprint, export, status),
                )
                self.set_committed_bytes(export, size)

    def commit_results(self, results: Iterable[tuple], committed: dict[str, int], *,
                       stored: Iterable[StoredEntry] = (), unstored: Iterable[str] = (),
                       dicts: Iterable[tuple[int, bytes]] = ()) -> None:
        """In one transaction, for a batch: each (session_id, fingerprint, status, error,
        error_kind, judge, score, appended exports) result, the new committed length of
        every export appended to, the session store's new zstd dictionaries ``dicts``
        ((id, bytes)), the rows of ``stored`` (written or replaced) and of ``unstored``
        session ids (removed: their folder holds them now)."""
        now = time.time()
        stored, unstored = list(stored), list(unstored)
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany("INSERT OR REPLACE INTO store_dicts (id, data) VALUES (?, ?)", list(dicts))
            if stored:
                self.db.executemany("INSERT OR REPLACE INTO session_data (session_id, fingerprint, status, graded_at, "
                                    "record, data, dict_id) VALUES (?, ?, ?, ?, ?, ?, ?)", [e.row() for e in stored])
            if unstored:
                self.db.executemany("DELETE FROM session_data WHERE session_id=?", [(sid,) for sid in unstored])
            for session_id, fingerprint, status, error, error_kind, judge, score, exports in results:
                self.db.execute(
                    """UPDATE sessions SET status=?, attempts=attempts+1, error=?, error_kind=?, judge=?, score=?,
                       updated_at=? WHERE session_id=? AND fingerprint=?""",
                    (status, error, error_kind, judge, score, now, session_id, fingerprint),
                )
                self.db.executemany(
                    "INSERT OR IGNORE INTO appends (session_id, fingerprint, export, status) VALUES (?, ?, ?, ?)",
                    [(session_id, fingerprint, export, status) for export in exports],
                )
            for export, size in committed.items():
                self.set_committed_bytes(export, size)

    def current_fingerprint(self, session_id: str) -> str | None:
        row = self.get(session_id)
        return row.fingerprint if row else None

    def has_stored(self) -> bool:
        """Whether the session store holds any row."""
        return self.db.execute("SELECT EXISTS (SELECT 1 FROM session_data)").fetchone()[0] == 1

    def counts(self) -> dict[str, int]:
        """Sessions by status."""
        return dict(self.db.execute("SELECT status, count(*) FROM sessions GROUP BY status").fetchall())
