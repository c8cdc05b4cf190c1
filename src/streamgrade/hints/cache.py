"""The episode cache of ``streamgrade hints``: ``OUT/hints/cache.sqlite``.

One table, ``episodes``: ``(session_id, fingerprint, version)`` -> the episode's hints
(JSON), how they were made (``llm`` or ``offline``), the usage spent
(``{prompt_tokens, completion_tokens, cost_usd, requests}``) and when. ``fingerprint`` is
the graded version of the session (scores.json); ``version`` names the extraction (the
prompt version, the model, the evidence budget and the episode's outcome for the LLM; the
rules' version and the outcome offline), so a changed session, prompt, model or outcome is
extracted again and anything else never is: a re-run sends no request for what it already
has. Each extraction is committed as soon as it arrives, so an interrupted run keeps its
work. SQLite in WAL mode: a ``grade`` or ``watch`` writing the same OUT is not disturbed
(this file is not the ledger).
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS episodes (
    session_id TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    version TEXT NOT NULL,
    mode TEXT NOT NULL,
    hints TEXT NOT NULL,
    usage TEXT NOT NULL,
    created_at REAL NOT NULL,
    PRIMARY KEY (session_id, fingerprint, version)
);
"""


class HintCache:
    """The cache at ``path`` (created with its folder if absent). Use from one thread."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(self.path, isolation_level=None)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)

    def close(self) -> None:
        self.db.close()

    def get(self, session_id: str, fingerprint: str, version: str) -> tuple[dict[str, Any], str] | None:
        """(hints, mode) stored for this episode version and extraction, or None."""
        row = self.db.execute("SELECT hints, mode FROM episodes WHERE session_id=? AND fingerprint=? AND version=?",
                              (session_id, fingerprint, version)).fetchone()
        if row is None:
            return None
        try:
            return json.loads(row[0]), row[1]
        except json.JSONDecodeError:
            return None

    def put(self, session_id: str, fingerprint: str, version: str, mode: str, hints: dict[str, Any],
            usage: dict[str, Any]) -> None:
        """Store an extraction (replacing one of the same key), committed at once."""
        self.db.execute("INSERT OR REPLACE INTO episodes VALUES (?, ?, ?, ?, ?, ?, ?)",
                        (session_id, fingerprint, version, mode, json.dumps(hints, ensure_ascii=False),
                         json.dumps(usage), time.time()))

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM episodes").fetchone()[0]


__all__ = ["HintCache"]
