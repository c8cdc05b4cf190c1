"""``export OUT --format scores``: the latest record of every session (the scores.jsonl fields,
graded, failed and ungradable alike) that passes the filters, one JSON object a line, written
atomically; with ``--parquet`` converted by :mod:`.parquet`. Unlike ``exports/scores.jsonl``
(every version of a session, appended exactly once), a regraded session appears once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ..sinks.atomic import atomic_writer
from .build import ExportResult, NothingToExport
from .store import load_records
from .training import Rejections

#: The file name under OUT/exports/rebuilt/.
SCORES_NAME = "scores.jsonl"


def write_scores(out: str | Path, dest: str | Path, flt: Any = None) -> ExportResult:
    """Write the records of OUT's sessions that ``flt`` (an ExportFilter, or None) keeps to
    ``dest``. Raises NothingToExport when none is kept (no file is written)."""
    dest = Path(dest)
    rejected = Rejections()
    rows = considered = 0
    with atomic_writer(dest) as f:
        for rec in load_records(out):
            considered += 1
            reason = flt.reject_reason(rec) if flt is not None else None
            if reason:
                rejected.add(str(rec.get("session_id")), reason)
                continue
            f.write(json.dumps(rec, ensure_ascii=False).encode() + b"\n")
            rows += 1
        if not rows:
            raise NothingToExport(f"nothing to export as scores: {considered} sessions considered, none passed"
                                  + (f"; most common reasons: {rejected.common()}" if rejected.count else ""))
    return ExportResult(path=dest, rows=rows, considered=considered, rejected=rejected.items,
                        reasons=dict(rejected.by_reason))


__all__ = ["write_scores", "SCORES_NAME"]
