"""``streamgrade report OUT``: the HTML pages of an output folder, built when asked for.

Rendering a session's results.html and sft.html costs about 2 ms of CPU, more than the
rest of its trip through the pipeline; grading no longer pays it (``[reports]
session_pages = "report"``, the default). This command builds, for every session (in its
folder, or from the session store into the folder its id names), the pages that are
missing or older than the session's result, then ``OUT/index.html``. Running it again
builds only what changed since; ``force`` rebuilds everything.

It reads the output folder without taking its lock (a ``watch`` may run meanwhile): every
page is written atomically, and the ledger and exports are never touched.
"""

from __future__ import annotations

import logging
import os
from calendar import timegm
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

from .html import render_index, render_session
from .reader import SessionsReader

log = logging.getLogger("streamgrade.sinks")


@dataclass
class ReportResult:
    """What :func:`build_reports` did: pages ``built`` and ``up_to_date`` (sessions),
    ``failed`` (session id, error), ``bytes`` written, and the ``index`` path."""

    built: int = 0
    up_to_date: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    bytes: int = 0
    index: Path | None = None


def _epoch(rfc3339: str) -> float | None:
    """Seconds since the epoch of an RFC 3339 UTC time (``2026-11-25T07:23:33.123Z``)."""
    import time

    try:
        head, _, frac = rfc3339.rstrip("Z").partition(".")
        return timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) + (float(f"0.{frac}") if frac else 0.0)
    except (ValueError, OverflowError):
        return None


def _fresh(folder: Path, stored: bool, rec: dict) -> bool:
    """Whether the session's pages are there and newer than its result."""
    try:
        page = os.stat(folder / "results.html").st_mtime
        if not os.path.exists(folder / "sft.html"):
            return False
        if stored:
            t = _epoch(str(rec.get("graded_at") or ""))
            return t is not None and page >= t
        return page >= os.stat(folder / "scores.json").st_mtime
    except OSError:
        return False


def build_reports(out: str | Path, *, session_ids: Iterable[str] | None = None, force: bool = False,
                  index: bool = True) -> ReportResult:
    """Build the session pages of ``out`` that are missing or out of date (all of them with
    ``force``; only ``session_ids`` when given), then index.html (unless ``index`` is
    False). A session whose pages cannot be written is counted in ``failed`` with the
    error and the others go on. Raises OSError when the output folder cannot be read."""
    out = Path(out)
    res = ReportResult()
    wanted = set(session_ids) if session_ids is not None else None
    with SessionsReader(out) as reader:
        for folder, rec, stored in reader.entries():
            sid = rec["session_id"]
            if wanted is not None and sid not in wanted:
                continue
            if not force and _fresh(folder, stored, rec):
                res.up_to_date += 1
                continue
            try:
                if stored:
                    files = reader.files(sid, None, True)
                    results, sft = files if files is not None else (None, None)
                    res.bytes += render_session(folder, (rec, results, sft))
                else:
                    res.bytes += render_session(folder)
            except OSError as exc:
                res.failed.append((sid, f"{folder}: {exc.strerror or exc}"))
                continue
            res.built += 1
    if index:
        render_index(out)
        res.index = out / "index.html"
        res.bytes += res.index.stat().st_size
    return res


__all__ = ["build_reports", "ReportResult"]
