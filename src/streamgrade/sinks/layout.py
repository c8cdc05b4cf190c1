"""The output folder's layout: every path under OUT is named here, and nowhere else.

    OUT/
      .streamgrade.lock            held (flock) by the one process writing OUT (sinks/lock.py)
      .streamgrade.holder          who holds it: {pid, host, command, since}
      state.sqlite                 the ledger (sinks/ledger.py)
      index.html                   the run's HTML index (sinks/html.py)
      agreement/                   `streamgrade agreement`: agreement.json, roc.png,
                                   reliability.png (agreement_report.py); judge-<kind>/ the
                                   labelled sessions regraded by another judge (--judge)
      hints/                       `streamgrade hints`: hints.jsonl (one augmented task a line),
                                   cache.sqlite (episodes extracted), tasks/ (Harbor task folders)
      sessions/<folder>/           one per session: scores.json, results.json, sft.json,
                                   results.html, sft.html, frames/<t_ms>.jpg
      exports/scores.jsonl         one line per graded or failed version, appended exactly once
                                   (sinks/jsonl.py)
      exports/sft.chatml.jsonl     training files, rebuilt from the session folders at the end
      exports/sharegpt.jsonl       of each grade run and when watch is idle (exports/build.py;
      exports/dpo.jsonl            [exports] training)

Session folder names (:func:`session_folder`) are one-to-one with session ids and at most
:data:`MAX_NAME_BYTES` bytes: an id made only of ASCII letters, digits, ``.``, ``_`` and
``-`` (not starting with ``.``) and at most that long is its own folder name; any other id
becomes its sanitised prefix, ``~`` and 16 hex digits of the SHA-256 of the whole id. ``~``
never appears in a kept name, so an escaped name cannot equal a kept one, and two escaped
names are equal only if their 64-bit hashes collide. Records (scores.jsonl, scores.json,
the ledger) always hold the full id, whatever its length.
(On a case-insensitive filesystem, macOS or Windows, ids that differ only in case still
share a folder.)
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

SESSIONS = "sessions"
EXPORTS = "exports"
LEDGER = "state.sqlite"
LOCK = ".streamgrade.lock"
LOCK_HOLDER = ".streamgrade.holder"
INDEX_HTML = "index.html"
AGREEMENT = "agreement"
AGREEMENT_JSON = "agreement.json"
FRAMES = "frames"
HINTS = "hints"

SCORES_JSONL = "scores.jsonl"
SFT_JSONL = "sft.chatml.jsonl"
SHAREGPT_JSONL = "sharegpt.jsonl"
#: The run-level JSONL files appended exactly once (the training files are rebuilt instead).
APPENDED_EXPORTS = (SCORES_JSONL,)

#: Longest session folder name, in bytes (most filesystems allow 255).
MAX_NAME_BYTES = 150
_HASH_HEX = 16
_KEPT = re.compile(r"[A-Za-z0-9._-]+")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def session_folder(session_id: str) -> str:
    """The folder name of ``session_id`` under ``OUT/sessions/`` (see the module docstring
    for the rule): ``gpt-4o-airline.task3.trial0`` stays as it is, ``sess 1`` becomes
    ``sess_1~<16 hex>``, a 5,000-character id ``<its first 133 characters>~<16 hex>``."""
    if (len(session_id) <= MAX_NAME_BYTES and _KEPT.fullmatch(session_id)
            and not session_id.startswith(".")):
        return session_id
    digest = hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:_HASH_HEX]
    prefix = _UNSAFE.sub("_", session_id).lstrip(".")[: MAX_NAME_BYTES - 1 - _HASH_HEX]
    return f"{prefix}~{digest}"


class Layout:
    """The paths of one output folder ``out`` (nothing is created here)."""

    def __init__(self, out: str | Path):
        self.out = Path(out)

    @property
    def sessions(self) -> Path:
        return self.out / SESSIONS

    @property
    def exports(self) -> Path:
        return self.out / EXPORTS

    @property
    def ledger(self) -> Path:
        return self.out / LEDGER

    @property
    def lock(self) -> Path:
        return self.out / LOCK

    @property
    def lock_holder(self) -> Path:
        return self.out / LOCK_HOLDER

    @property
    def index_html(self) -> Path:
        return self.out / INDEX_HTML

    @property
    def agreement(self) -> Path:
        return self.out / AGREEMENT

    @property
    def hints(self) -> Path:
        """``OUT/hints``: what ``streamgrade hints`` writes (see :mod:`streamgrade.hints`)."""
        return self.out / HINTS

    def session_dir(self, session_id: str) -> Path:
        """``OUT/sessions/<folder>`` of a session (see :func:`session_folder`)."""
        return self.sessions / session_folder(session_id)

    def frames_dir(self, session_id: str) -> Path:
        """``OUT/sessions/<folder>/frames``: the session's cached video frames."""
        return self.session_dir(session_id) / FRAMES

    def export(self, name: str) -> Path:
        """``OUT/exports/<name>``."""
        return self.exports / name


__all__ = ["Layout", "session_folder", "APPENDED_EXPORTS", "SCORES_JSONL", "SFT_JSONL", "SHAREGPT_JSONL",
           "MAX_NAME_BYTES"]
