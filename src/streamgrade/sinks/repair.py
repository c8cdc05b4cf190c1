"""``streamgrade repair OUT``: make the JSONL exports and the ledger agree again.

A run refuses to start when an export and the ledger disagree (see
:meth:`~streamgrade.sinks.jsonl.JsonlExport.recover`): a folder written by two processes at
once before the output lock existed, an edited or truncated export, a deleted ledger.
Repair rebuilds the exports from what is certain, under the output lock:

- ``scores.jsonl`` keeps every complete line once (the first of lines with the same
  session, fingerprint and status; a half line is dropped). A session the ledger records
  as graded, ungradable or failed whose line is missing gets it back from its ``scores.json``
  (in its folder or the session store) when that holds the same version; otherwise the
  session is set back to pending, so the next run grades it again.
- The ledger's ``appends`` rows and committed lengths are rewritten to match.
- The training files (``[exports] training``) are rebuilt from the session folders and the
  session store, as at the end of a run.

Nothing is deleted: the old files move to ``OUT/exports/backup-<UTC time>/``.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ..config import Config
from ..models import ScoreRecord
from .atomic import atomic_writer, fsync_dir
from .layout import APPENDED_EXPORTS, SCORES_JSONL, Layout
from .ledger import Ledger
from .lock import OutputLock
from .session_store import StoreReader


@dataclass
class RepairReport:
    """What :func:`repair` did: scores.jsonl lines ``kept``, ``duplicates`` and ``broken``
    lines dropped, lines ``restored`` from scores.json; sessions ``reset`` to pending;
    ``rows`` written per rebuilt export; the ``backup`` folder of the old files."""

    kept: int = 0
    duplicates: int = 0
    broken: int = 0
    restored: int = 0
    reset: list[str] = field(default_factory=list)
    rows: dict[str, int] = field(default_factory=dict)
    backup: Path | None = None


def _legacy_folder(session_id: str) -> str:
    """The folder name older versions gave a session (not one-to-one; checked by id)."""
    name = "".join(c if c.isalnum() or c in "-_." else "_" for c in session_id).strip(".")
    return name or "_"


def _read_json(path: Path) -> dict | None:
    try:
        value = msgspec.json.decode(path.read_bytes())
    except (OSError, msgspec.DecodeError):
        return None
    return value if isinstance(value, dict) else None


def _scores_of(layout: Layout, store: StoreReader, sid: str, fingerprint: str, status: str) -> dict | None:
    """The scores.json of ``sid`` in this version (``fingerprint``, ``status``): from the
    session store, its folder, or the flat folders older versions named; None when none
    holds it."""
    candidates = [store.record(sid)]
    for folder in (layout.session_dir(sid), layout.flat_session_dir(sid), layout.sessions / _legacy_folder(sid)):
        candidates.append(_read_json(folder / "scores.json"))
    for scores in candidates:
        if isinstance(scores, dict) and scores.get("session_id") == sid and scores.get("fingerprint") == fingerprint \
                and scores.get("status") == status:
            return scores
    return None


def repair(out: str | Path, config: Config) -> RepairReport:
    """Repair the output folder ``out`` (see the module docstring). Raises
    :class:`~streamgrade.sinks.lock.OutputLocked` when another process holds it,
    FileNotFoundError when it has no ledger, OSError when a file cannot be written."""
    layout = Layout(out)
    if not layout.ledger.is_file():
        raise FileNotFoundError(f"{layout.ledger}: no ledger here; is {out} a streamgrade output folder?")
    with OutputLock(out, "repair"):
        ledger = Ledger(layout.ledger)
        try:
            return _repair(layout, ledger, config)
        finally:
            ledger.close()


def _repair(layout: Layout, ledger: Ledger, config: Config) -> RepairReport:
    rep = RepairReport()
    done = {sid: (fp, status) for sid, fp, status in ledger.db.execute(
        "SELECT session_id, fingerprint, status FROM sessions WHERE status IN ('graded', 'ungradable', 'failed') "
        "ORDER BY updated_at, rowid")}
    enc = msgspec.json.Encoder()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    new = {name: layout.export(f".{name}.repair-{os.getpid()}.tmp") for name in APPENDED_EXPORTS}
    appends: list[tuple[str, str, str, str]] = []

    # scores.jsonl: complete lines once each, then the missing ones from scores.json
    seen: set[tuple[str, str, str]] = set()
    with atomic_writer(new[SCORES_JSONL]) as f:
        try:
            src = open(layout.export(SCORES_JSONL), "rb")
        except FileNotFoundError:
            src = None
        if src is not None:
            with src:
                for line in src:
                    try:
                        rec = msgspec.json.decode(line) if line.endswith(b"\n") else None
                    except msgspec.DecodeError:
                        rec = None
                    if not isinstance(rec, dict) or not isinstance(rec.get("session_id"), str):
                        rep.broken += 1
                        continue
                    key = (rec["session_id"], str(rec.get("fingerprint", "")), str(rec.get("status")))
                    if key in seen:
                        rep.duplicates += 1
                        continue
                    seen.add(key)
                    f.write(line)
                    rep.kept += 1
        fields = set(ScoreRecord.__struct_fields__)
        store = StoreReader(ledger.db, ledger.path, owned=False)
        for sid, (fp, status) in done.items():
            if (sid, fp, status) in seen:
                continue
            scores = _scores_of(layout, store, sid, fp, status)
            if scores is None:
                rep.reset.append(sid)
                continue
            record = msgspec.convert({k: v for k, v in scores.items() if k in fields}, ScoreRecord)
            f.write(enc.encode(record) + b"\n")
            seen.add((sid, fp, status))
            rep.restored += 1
    appends += [(sid, fp, SCORES_JSONL, status) for sid, fp, status in seen]

    rep.rows = {SCORES_JSONL: len(seen)}

    # swap the files in (the old ones into the backup folder), then the ledger
    rep.backup = layout.export(f"backup-{stamp}")
    rep.backup.mkdir(parents=True, exist_ok=True)
    for name in APPENDED_EXPORTS:
        if layout.export(name).exists():
            os.replace(layout.export(name), rep.backup / name)
        os.replace(new[name], layout.export(name))
    fsync_dir(layout.exports)
    fsync_dir(rep.backup)
    with ledger.db:
        ledger.db.execute("BEGIN IMMEDIATE")
        ledger.db.execute(f"DELETE FROM appends WHERE export IN ({','.join('?' * len(APPENDED_EXPORTS))})",
                          APPENDED_EXPORTS)
        ledger.db.executemany("INSERT OR IGNORE INTO appends (session_id, fingerprint, export, status) "
                              "VALUES (?, ?, ?, ?)", appends)
        ledger.db.executemany("UPDATE sessions SET status='pending' WHERE session_id=?", [(s,) for s in rep.reset])
        for name in APPENDED_EXPORTS:
            ledger.set_committed_bytes(name, layout.export(name).stat().st_size)
    # the training files are derived from the session folders: rebuilt whole
    from ..exports.build import ExportOptions, rebuild_training

    for fmt, res in rebuild_training(layout.out, list(config.exports.training), ExportOptions.from_config(config.exports)).items():
        rep.rows[fmt] = res.rows
    return rep


__all__ = ["repair", "RepairReport"]
