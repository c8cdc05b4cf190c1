"""The output folder's layout: every path under OUT is named here, and nowhere else.

    OUT/
      .streamgrade.lock            held (flock) by the one process writing OUT (sinks/lock.py)
      .streamgrade.holder          who holds it: {pid, host, command, since}
      state.sqlite                 the ledger (sinks/ledger.py) and the session store: the
                                   compressed files of sessions that have no folder
                                   (sinks/session_store.py)
      index.html                   the run's HTML index (sinks/html.py)
      agreement/                   `streamgrade agreement`: agreement.json, roc.png,
                                   reliability.png (agreement_report.py); judge-<kind>/ the
                                   labelled sessions regraded by another judge (--judge)
      hints/                       `streamgrade hints`: hints.jsonl (one augmented task a line),
                                   cache.sqlite (episodes extracted), tasks/ (Harbor task folders)
      sessions/<shard>/<folder>/   one per session ([sinks] session_files): scores.json,
                                   results.json, sft.json, frames/<t_ms>.jpg; results.html
                                   and sft.html (`streamgrade report OUT`, or live with
                                   [reports] session_pages = "live"); <shard> is 2 hex digits
                                   of the id's SHA-256 (256 subfolders: 100,000 sessions
                                   make ~390 entries a folder). Outputs of older versions
                                   held sessions/<folder>/ directly: they are read as they
                                   are, and moved into their shards by the next grade or
                                   watch on the folder (:func:`migrate_flat_folders`).
      exports/scores.jsonl         one line per graded or failed version, appended exactly once
                                   (sinks/jsonl.py)
      exports/sft.chatml.jsonl     training files, rebuilt from the session folders and the
      exports/sharegpt.jsonl       session store at the end of each grade run and when watch
      exports/dpo.jsonl            is idle (exports/build.py; [exports] training)

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
import logging
import os
import re
from pathlib import Path
from typing import Iterator

log = logging.getLogger("streamgrade.sinks")

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


_SHARD = re.compile(r"[0-9a-f]{2}")
#: The files of a session folder that make up its result (frames/ and the pages aside).
RESULT_FILES = ("scores.json", "results.json", "sft.json")
PAGE_FILES = ("results.html", "sft.html")


def shard_of(session_id: str) -> str:
    """The shard of ``session_id``'s folder under ``OUT/sessions/``: the first 2 hex digits
    of the SHA-256 of the id (UTF-8), e.g. ``"3f"``."""
    return hashlib.sha256(session_id.encode("utf-8", "surrogatepass")).hexdigest()[:2]


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
        self._sessions = os.path.join(self.out, SESSIONS)

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
        """``OUT/sessions/<shard>/<folder>`` of a session (see :func:`shard_of` and
        :func:`session_folder`), where it is written."""
        return Path(self._session_path(session_id))

    def _session_path(self, session_id: str) -> str:
        return os.path.join(self._sessions, shard_of(session_id), session_folder(session_id))

    def flat_session_dir(self, session_id: str) -> Path:
        """``OUT/sessions/<folder>``: where versions before sharding wrote a session."""
        return self.sessions / session_folder(session_id)

    def find_session_dir(self, session_id: str) -> Path | None:
        """The folder holding ``session_id``'s scores.json: its shard's, else the flat one
        of an older output not migrated yet; None when neither has it."""
        for folder in (self._session_path(session_id), os.path.join(self._sessions, session_folder(session_id))):
            if os.path.isfile(os.path.join(folder, "scores.json")):
                return Path(folder)
        return None

    def session_dirs(self) -> Iterator[Path]:
        """Every session folder under ``OUT/sessions/``, sharded (``<shard>/<folder>``) or
        flat (``<folder>``, older outputs), streamed with os.scandir (no list of 100K
        names), in directory order; names starting with ``.`` are skipped. A folder is
        yielded whether or not it holds a scores.json (a recording's frames may be alone)."""
        try:
            top = os.scandir(self.sessions)
        except FileNotFoundError:
            return
        with top:
            for entry in top:
                if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                    continue
                path = Path(entry.path)
                if not _SHARD.fullmatch(entry.name):
                    yield path  # a flat folder of an older output
                    continue
                if os.path.isfile(os.path.join(entry.path, "scores.json")):
                    yield path  # a flat folder named like a shard ("ab"): a session of its own
                try:
                    inner = os.scandir(entry.path)
                except OSError:
                    continue
                with inner:
                    for sub in inner:
                        if not sub.name.startswith(".") and sub.name != FRAMES and sub.is_dir(follow_symlinks=False):
                            yield Path(sub.path)

    def frames_dir(self, session_id: str) -> Path:
        """``OUT/sessions/<shard>/<folder>/frames``: the session's cached video frames (kept
        whatever ``[sinks] session_files`` says: the judge and the computer-use export read
        them)."""
        return self.session_dir(session_id) / FRAMES

    def export(self, name: str) -> Path:
        """``OUT/exports/<name>``."""
        return self.exports / name


def migrate_flat_folders(layout: Layout) -> int:
    """Move the flat session folders of an older output (``OUT/sessions/<folder>``) into
    their shards (``OUT/sessions/<shard>/<folder>``), one rename each (the shard of the id
    its scores.json names; a folder without one is placed by its own name, which is its
    id's folder name). A flat folder named like a shard (a session ``ab``) is told from a
    shard by its scores.json and moved first, so no shard is made inside it. (No id is its
    own shard: the 256 two-hex ids were checked.) Idempotent: a run stopped half way is
    finished by the next. Returns the folders moved. Raises OSError naming the folder when
    one cannot be moved (the caller stops: a session must not live in two places)."""
    try:
        names = [e.name for e in os.scandir(layout.sessions)
                 if not e.name.startswith(".") and e.is_dir(follow_symlinks=False)]
    except FileNotFoundError:
        return 0
    flat = [n for n in names if not _SHARD.fullmatch(n) or (layout.sessions / n / "scores.json").is_file()]
    flat.sort(key=lambda n: not _SHARD.fullmatch(n))  # the shard-like names first
    for name in flat:
        src = layout.sessions / name
        dest = layout.sessions / shard_of(_folder_id(src) or name) / name
        dest.parent.mkdir(exist_ok=True)
        try:
            os.rename(src, dest)
        except OSError as exc:
            raise OSError(exc.errno, f"cannot move the session folder {src} to {dest}: {exc.strerror}") from None
    if flat:
        log.info("moved %d session folders of an older output into shards", len(flat),
                 extra={"file": str(layout.sessions)})
    return len(flat)


def _folder_id(folder: Path) -> str | None:
    """The session id a folder's scores.json names, or None."""
    import json

    try:
        with open(folder / "scores.json", "rb") as f:
            sid = json.loads(f.read()).get("session_id")
    except (OSError, ValueError, AttributeError):
        return None
    return sid if isinstance(sid, str) else None


__all__ = ["Layout", "session_folder", "shard_of", "migrate_flat_folders", "RESULT_FILES", "PAGE_FILES",
           "APPENDED_EXPORTS", "SCORES_JSONL", "SFT_JSONL", "SHAREGPT_JSONL", "MAX_NAME_BYTES"]
