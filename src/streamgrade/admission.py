"""The admit actor: which sessions a run takes in.

For each batch of :class:`~streamgrade.models.SessionRef` (what is waiting, up to
``pipeline.sink_batch``, so that the pending marks commit together), one ledger query:

- one id, one place: a session whose id the ledger (or this batch) already has at another
  path (two folders named alike) gets ``-<8 hex of sha256(path#locator)>`` appended;
- a version already in flight (``current``: session id -> fingerprint; watch sees it
  again) is dropped;
- a session the ledger has graded (or found ungradable) with this fingerprint is skipped
  (``stats.skipped``); one it failed on this unchanged input is skipped too
  (``stats.failed_earlier``);
- the rest are marked pending in the ledger, entered in ``current`` and sent on as
  :class:`~streamgrade.job.Job` objects. When the ledger cannot be written, they are
  counted failed and logged, not taken in.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3

import msgspec
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from .formats import fingerprint
from .job import Job
from .models import SessionRef
from .run_stats import RunStats
from .sinks.ledger import Ledger
from .streams import waiting

log = logging.getLogger("streamgrade.pipeline")


def where(ref: SessionRef) -> str:
    """The ledger's path of a session: its file, plus ``#locator`` inside multi-session files."""
    return f"{ref.path}#{ref.locator}" if ref.locator else ref.path


def disambiguate(ref: SessionRef) -> SessionRef:
    """``ref`` with ``-<first 8 hex of sha256(path#locator)>`` added to its session id."""
    sid = f"{ref.session_id}-{hashlib.sha256(f'{ref.path}#{ref.locator}'.encode()).hexdigest()[:8]}"
    return msgspec.structs.replace(ref, session_id=sid)


def select(refs: list[SessionRef], ledger: Ledger, stats: RunStats, current: dict[str, str]) -> list[SessionRef]:
    """The refs of one batch to take in (module docstring), ids disambiguated; counts
    ``stats.found`` and the skipped ones. Reads the ledger, changes nothing in it. Raises
    sqlite3.Error when the ledger cannot be read."""
    admitted: list[SessionRef] = []
    owners: dict[str, str] = {}  # ids taken within this batch (not yet in the ledger)
    known = ledger.get_many([r.session_id for r in refs])  # one query for the batch
    for ref in refs:
        # One id, one place: a second session with the same id elsewhere (two
        # folders named alike) gets "-<8 hex of its path>"; the ledger remembers.
        row = known.get(ref.session_id)
        owner = row.path if row is not None else owners.get(ref.session_id)
        if owner is not None and owner != where(ref):
            ref = disambiguate(ref)
            row = ledger.get(ref.session_id)
        if current.get(ref.session_id) == ref.fingerprint or any(
                a.session_id == ref.session_id and a.fingerprint == ref.fingerprint for a in admitted):
            continue  # this very version is in flight already (watch sees it again)
        stats.found += 1
        owners[ref.session_id] = where(ref)
        if (row is not None and ref.locator and row.fingerprint != ref.fingerprint
                and row.fingerprint == fingerprint(ref.files)):
            # graded by a streamgrade before row fingerprints (it took the whole
            # file's): the file is unchanged since, so this row is too
            row = row._replace(fingerprint=ref.fingerprint)
        if row is not None and row.fingerprint == ref.fingerprint:
            ctx = {"session": ref.session_id, "file": ref.path}
            if row.status in ("graded", "ungradable"):
                stats.skipped += 1
                stats.by_format["skipped", ref.format] += 1
                log.debug("skip %s: unchanged since graded", ref.session_id, extra=ctx)
                continue
            if row.status == "failed" and row.error_kind == "input":
                stats.failed_earlier += 1
                stats.by_format["failed_earlier", ref.format] += 1
                if len(stats.earlier_failures) < 1000:
                    stats.earlier_failures.append((ref.session_id, row.error or ""))
                log.debug("skip %s: failed earlier on its unchanged input", ref.session_id, extra=ctx)
                continue
        admitted.append(ref)
    return admitted


async def admit(recv: ObjectReceiveStream[SessionRef], send: ObjectSendStream[Job], *, ledger: Ledger,
                stats: RunStats, current: dict[str, str], batch: int) -> None:
    """The admit actor: refs from ``recv``, in batches of up to ``batch`` (what is waiting),
    to ``send`` as Jobs once marked pending in ``ledger`` (module docstring). Each admitted
    session is entered in ``current`` and counted in ``stats.in_flight``. Closes both
    streams when ``recv`` ends."""
    async with recv, send:
        async for ref in recv:
            # Take what else is waiting, so that the pending marks commit together.
            refs = [ref, *waiting(recv, batch - 1)]
            admitted = select(refs, ledger, stats, current)
            try:
                ledger.mark_pending_many([(r.session_id, r.format, where(r), r.fingerprint) for r in admitted])
            except sqlite3.Error as exc:  # the ledger cannot be written: these are not taken in
                for ref in admitted:
                    stats.failed += 1
                    stats.by_format["failed", ref.format] += 1
                    if len(stats.failures) < 1000:
                        stats.failures.append((ref.session_id, f"{ledger.path}: ledger not written: {exc}"))
                    log.error("cannot record %s in the ledger %s: %s", ref.session_id, ledger.path, exc,
                              extra={"session": ref.session_id, "file": str(ledger.path)})
                continue
            for ref in admitted:
                current[ref.session_id] = ref.fingerprint
                stats.in_flight += 1
                await send.send(Job(ref))


__all__ = ["admit", "select", "where", "disambiguate"]
