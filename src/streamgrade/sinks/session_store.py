"""The session store: what a session folder would hold (scores.json, results.json,
sft.json) for the sessions that get no folder (``[sinks] session_files = "failed"`` or
``"none"``), one row each in the ledger's database (``OUT/state.sqlite``, see
:mod:`.ledger`), compressed with zstd.

Table ``session_data``: ``session_id`` (primary key), ``fingerprint`` and ``status`` of the
version it holds, ``graded_at`` (RFC 3339, the record's), ``record`` (zstd of scores.json
as compact JSON), ``data`` (zstd of ``{"results": results.json, "sft": sft.json}``; NULL
for a session that failed before it was read, which has only scores.json) and ``dict_id``
(the zstd dictionary both blobs were compressed with, or NULL). A regraded session's row is
replaced, so the store holds one version per session, like a folder.

Table ``store_dicts``: zstd dictionaries (``id``, ``data``). Sessions of one output look
alike (the same keys, system prompts, tool lists), so a dictionary trained on the first
:data:`TRAIN_SAMPLES` sessions an output stores (:class:`StoreEncoder`) shrinks the rows
after them about 5x: a synthetic agent session (4 KB of JSON) takes ~1.2 KB compressed
alone, ~0.25 KB with the dictionary. Rows written before it, or by a run that could not
train one, have no dictionary.

Rows (and dictionaries) are written by the pipeline's committer in the same SQLite
transaction as the sessions' ledger outcome (:meth:`.ledger.Ledger.commit_results`): a row
exists exactly when the ledger names the session done, whatever crash happens. Encoding and
compression run in the file writers' threads; readers (exports, stats, reports, repair) use
:class:`StoreReader`, read-only.
"""

from __future__ import annotations

import itertools
import logging
import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator
from urllib.parse import quote

import msgspec
import zstandard

log = logging.getLogger("streamgrade.sinks")

LEVEL = 3  # zstd level: level 9 or 19 saves ~2% on these sizes, at several times the CPU
TRAIN_SAMPLES = 200  # sessions a dictionary is trained on
DICT_BYTES = 16384  # dictionary size
MAX_TRAIN_TRIES = 3

SCHEMA = """
CREATE TABLE IF NOT EXISTS session_data (
    session_id TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL,
    graded_at TEXT NOT NULL,
    record BLOB NOT NULL,
    data BLOB,
    dict_id INTEGER
);
CREATE TABLE IF NOT EXISTS store_dicts (
    id INTEGER PRIMARY KEY,
    data BLOB NOT NULL
);
"""

_local = threading.local()
_SERIAL = itertools.count()


@dataclass(slots=True)
class StoredEntry:
    """One session's row, encoded: ``record`` (zstd of scores.json) and ``data`` (zstd of
    results.json and sft.json, or None) compressed with dictionary ``dict_id`` (or none),
    with the key fields of the row."""

    session_id: str
    fingerprint: str
    status: str
    graded_at: str
    record: bytes
    data: bytes | None
    dict_id: int | None = None

    @property
    def size(self) -> int:
        """Bytes of the two blobs."""
        return len(self.record) + (len(self.data) if self.data else 0)

    def row(self) -> tuple[str, str, str, str, bytes, bytes | None, int | None]:
        return (self.session_id, self.fingerprint, self.status, self.graded_at, self.record, self.data, self.dict_id)


class StoreEncoder:
    """Encodes session store rows (:meth:`encode`, from any thread) and trains the output's
    zstd dictionary on the first :data:`TRAIN_SAMPLES` sessions when it has none
    (``dicts``: the dictionaries already in the database, id -> bytes). A new dictionary
    stays in :meth:`pending_dicts` until the committer has written it
    (:meth:`dicts_committed`), in the same transaction as (or before) the first rows
    compressed with it: a commit that fails leaves it pending for the next."""

    def __init__(self, dicts: dict[int, bytes] | None = None):
        self._lock = threading.Lock()
        self._dicts = {i: zstandard.ZstdCompressionDict(d) for i, d in (dicts or {}).items()}
        self._current: int | None = max(self._dicts) if self._dicts else None
        self._next_id = (max(self._dicts) + 1) if self._dicts else 1
        self._samples: list[bytes] | None = [] if self._current is None else None
        self._want = TRAIN_SAMPLES
        self._tries = 0
        self._new: list[tuple[int, bytes]] = []
        self._serial = next(_SERIAL)  # keys this encoder's compressors in each thread's cache

    def pending_dicts(self) -> list[tuple[int, bytes]]:
        """The dictionaries trained and not committed yet, (id, bytes)."""
        with self._lock:
            return list(self._new)

    def dicts_committed(self, ids: list[int]) -> None:
        """The committer wrote these dictionaries."""
        with self._lock:
            self._new = [d for d in self._new if d[0] not in ids]

    def _compressor(self, dict_id: int | None) -> zstandard.ZstdCompressor:
        cache = getattr(_local, "compressors", None)  # one per thread: a ZstdCompressor is not thread-safe
        if cache is None:
            cache = _local.compressors = {}
        key = (self._serial, dict_id)
        c = cache.get(key)
        if c is None:
            c = cache[key] = zstandard.ZstdCompressor(level=LEVEL, dict_data=self._dicts.get(dict_id)) \
                if dict_id is not None else zstandard.ZstdCompressor(level=LEVEL)
        return c

    def encode(self, session_id: str, fingerprint: str, status: str, graded_at: str, docs: dict[str, Any],
               enc: msgspec.json.Encoder | None = None) -> StoredEntry:
        """A session's row from its documents (``{"scores.json": ..., "results.json": ...,
        "sft.json": ...}``, objects msgspec encodes; the last two may be missing).
        Blocking (compression; now and then a dictionary's training, ~70 ms)."""
        return self.encode_raw(session_id, fingerprint, status, graded_at, *raw_documents(docs, enc))

    def encode_raw(self, session_id: str, fingerprint: str, status: str, graded_at: str, record_raw: bytes,
                   data_raw: bytes | None) -> StoredEntry:
        """A session's row from its documents already encoded as compact JSON: ``record_raw``
        (scores.json) and ``data_raw`` (``{"results": ..., "sft": ...}``, or None). Blocking,
        as :meth:`encode`."""
        dict_id = self._current
        if dict_id is None:
            self._sample(record_raw, data_raw)
        z = self._compressor(dict_id)
        return StoredEntry(session_id, fingerprint, status, graded_at, z.compress(record_raw),
                           z.compress(data_raw) if data_raw is not None else None, dict_id)

    def _sample(self, record_raw: bytes, data_raw: bytes | None) -> None:
        with self._lock:
            if self._samples is None:
                return
            self._samples.append(record_raw)
            if data_raw is not None:
                self._samples.append(data_raw)
            if len(self._samples) < 2 * self._want:
                return
            samples, self._samples = self._samples, None  # one thread trains; the others go on without
        try:
            trained = zstandard.train_dictionary(DICT_BYTES, samples, level=LEVEL)
        except zstandard.ZstdError as exc:  # too little or too uniform data: try again on more
            log.debug("session store: no zstd dictionary from %d samples: %s", len(samples), exc)
            with self._lock:
                self._tries += 1
                if self._tries < MAX_TRAIN_TRIES:
                    self._want *= 4
                    self._samples = samples
            return
        with self._lock:
            dict_id, self._next_id = self._next_id, self._next_id + 1
            self._dicts[dict_id] = trained
            self._new.append((dict_id, trained.as_bytes()))
            self._current = dict_id


def raw_documents(docs: dict[str, Any], enc: msgspec.json.Encoder | None = None) -> tuple[bytes, bytes | None]:
    """A session's documents (``{"scores.json": ..., "results.json": ..., "sft.json": ...}``,
    the last two may be missing) as the row holds them before compression: (``record``,
    scores.json as compact JSON; ``data``, ``{"results": ..., "sft": ...}`` as compact JSON,
    or None for a session that was never read)."""
    enc = enc or msgspec.json.Encoder()
    data_raw = enc.encode({"results": docs["results.json"], "sft": docs.get("sft.json")}) \
        if "results.json" in docs else None
    return enc.encode(docs["scores.json"]), data_raw


def encode_entry_raw(session_id: str, fingerprint: str, status: str, graded_at: str, record_raw: bytes,
                     data_raw: bytes | None) -> StoredEntry:
    """A row compressed without a dictionary (see :meth:`StoreEncoder.encode_raw`)."""
    return _PLAIN.encode_raw(session_id, fingerprint, status, graded_at, record_raw, data_raw)


class _Plain(StoreEncoder):
    def _sample(self, record_raw: bytes, data_raw: bytes | None) -> None:
        return None


_PLAIN = _Plain()


class StoreReader:
    """Read access to the session store of a ledger database ``db``. Use
    :func:`open_reader` (read-only, its own connection), or wrap an open connection (then
    :meth:`close` leaves it open). Not thread-safe: one reader per thread."""

    def __init__(self, db: sqlite3.Connection, path: Path, *, owned: bool = True):
        self.db = db
        self.path = path
        self.owned = owned
        self.empty = db.execute("SELECT NOT EXISTS (SELECT 1 FROM session_data)").fetchone()[0] == 1
        self._dz: dict[int | None, zstandard.ZstdDecompressor] = {None: zstandard.ZstdDecompressor()}
        for dict_id, data in db.execute("SELECT id, data FROM store_dicts"):
            self._dz[dict_id] = zstandard.ZstdDecompressor(dict_data=zstandard.ZstdCompressionDict(data))

    def close(self) -> None:
        if self.owned:
            self.db.close()

    def __enter__(self) -> "StoreReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def decode(self, blob: bytes, dict_id: int | None) -> Any:
        """A blob's JSON value. Raises ValueError when it cannot be decoded (a damaged row,
        or a dictionary missing)."""
        dz = self._dz.get(dict_id)
        if dz is None:
            raise ValueError(f"{self.path}: session store dictionary {dict_id} missing")
        try:
            return msgspec.json.decode(dz.decompress(blob))
        except (zstandard.ZstdError, msgspec.DecodeError) as exc:
            raise ValueError(f"{self.path}: a session store row does not decode: {exc}") from None

    def records(self) -> Iterator[tuple[str, dict[str, Any]]]:
        """(session id, scores.json) of every stored session, streamed in insertion order; a
        row whose record cannot be decoded is logged and skipped (rows are written whole, in
        a transaction: only a damaged database has one)."""
        if self.empty:
            return
        for sid, blob, dict_id in self.db.execute("SELECT session_id, record, dict_id FROM session_data ORDER BY rowid"):
            try:
                rec = self.decode(blob, dict_id)
            except ValueError as exc:
                log.warning("session %s skipped: %s", sid, exc, extra={"session": sid, "file": str(self.path)})
                continue
            if isinstance(rec, dict):
                yield sid, rec

    def graded_at(self, session_id: str) -> str | None:
        """The stored version's graded_at, or None when the session is not stored."""
        if self.empty:
            return None
        row = self.db.execute("SELECT graded_at FROM session_data WHERE session_id=?", (session_id,)).fetchone()
        return row[0] if row else None

    def record(self, session_id: str) -> dict[str, Any] | None:
        """The stored scores.json of ``session_id``, or None (not stored, or it does not decode)."""
        row = self.db.execute("SELECT record, dict_id FROM session_data WHERE session_id=?", (session_id,)).fetchone()
        try:
            value = self.decode(*row) if row else None
        except ValueError:
            return None
        return value if isinstance(value, dict) else None

    def files(self, session_id: str) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """(results.json, sft.json) of a stored session, or None when it has none (not
        stored, or failed before it was read). Raises ValueError when the row does not
        decode."""
        row = self.db.execute("SELECT data, dict_id FROM session_data WHERE session_id=?", (session_id,)).fetchone()
        if not row or row[0] is None:
            return None
        value = self.decode(*row)
        if not isinstance(value, dict) or not isinstance(value.get("results"), dict):
            return None
        sft = value.get("sft")
        return value["results"], sft if isinstance(sft, dict) else None

    def count(self) -> int:
        return self.db.execute("SELECT count(*) FROM session_data").fetchone()[0]


def replace_results(db: sqlite3.Connection, path: Path, session_id: str, results: dict[str, Any]) -> bool:
    """Write ``results`` as a stored session's results.json (its sft.json kept), compressed
    with the row's dictionary, in one transaction (``streamgrade augment`` on a stored
    recording; the caller holds OUT's lock). Returns False when the session has no stored
    files. Raises ValueError when the row does not decode, sqlite3.Error when it cannot be
    written."""
    row = db.execute("SELECT data, dict_id FROM session_data WHERE session_id=?", (session_id,)).fetchone()
    if not row or row[0] is None:
        return False
    value = StoreReader(db, path, owned=False).decode(row[0], row[1])
    value = value if isinstance(value, dict) else {}
    value["results"] = results
    dicts = load_dicts(db)
    z = zstandard.ZstdCompressor(level=LEVEL, dict_data=zstandard.ZstdCompressionDict(dicts[row[1]])) \
        if row[1] is not None else zstandard.ZstdCompressor(level=LEVEL)
    with db:
        db.execute("UPDATE session_data SET data=? WHERE session_id=?", (z.compress(msgspec.json.encode(value)), session_id))
    return True


def load_dicts(db: sqlite3.Connection) -> dict[int, bytes]:
    """The zstd dictionaries of a ledger database, id -> bytes."""
    return dict(db.execute("SELECT id, data FROM store_dicts").fetchall())


def open_reader(ledger_path: str | Path) -> StoreReader | None:
    """A read-only :class:`StoreReader` on the ledger at ``ledger_path``, or None when
    there is no ledger or it has no store (an output written before the store existed).
    Raises OSError naming the file when the database cannot be read."""
    path = Path(ledger_path)
    if not path.is_file():
        return None
    try:
        db = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True, check_same_thread=False)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if not {"session_data", "store_dicts"} <= tables:
                db.close()
                return None
            return StoreReader(db, path)
        except BaseException:
            db.close()
            raise
    except sqlite3.Error as exc:
        raise OSError(f"cannot read the session store in {path}: {exc}") from None


__all__ = ["StoredEntry", "StoreEncoder", "StoreReader", "encode_entry_raw", "raw_documents", "open_reader",
           "load_dicts", "SCHEMA", "replace_results", "LEVEL", "TRAIN_SAMPLES"]
