"""Build an export file from the graded results in an output folder, without regrading.

Formats: ``sft`` (ChatML, sft.chatml.jsonl), ``sharegpt`` (LLaMA-Factory, sharegpt.jsonl),
``dpo`` (TRL conversational preference pairs, dpo.jsonl) and ``openai-dpo`` (OpenAI
preference fine-tuning, dpo.openai.jsonl). Rows are written atomically; when nothing passes
the filters :class:`NothingToExport` is raised and no file is written, never an empty file
that looks like success.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from ..sinks.atomic import atomic_writer
from ..sinks.layout import Layout
from .chatml import agent_chatml, infer_tools
from .dpo import PairError, PairPicker, openai_pair, trl_pair
from .filters import ExportFilter
from .sharegpt import ShareGPTError, to_sharegpt
from .store import GradedSession, fill, load_graded

log = logging.getLogger("streamgrade.exports")

FILE_NAMES = {"sft": "sft.chatml.jsonl", "sharegpt": "sharegpt.jsonl", "dpo": "dpo.jsonl",
              "openai-dpo": "dpo.openai.jsonl"}


class NothingToExport(Exception):
    """No session (or pair) passed the filters; the message says how many were considered
    and the most common reasons."""


@dataclass
class ExportResult:
    """``rows`` written to ``path``; ``considered`` sessions; ``rejected`` (id, reason)."""

    path: Path
    rows: int
    considered: int
    rejected: list[tuple[str, str]] = field(default_factory=list)


def session_row(fmt: str, s: GradedSession) -> dict[str, Any]:
    """One session's row in ``fmt`` (sft or sharegpt); ValueError with a reason if none."""
    if fmt == "sft":
        row = agent_chatml(s.messages, s.tools)
        if row is None:
            raise ValueError("no assistant turn")
        return row
    if fmt == "sharegpt":
        return to_sharegpt(s.messages, s.tools or infer_tools(s.messages))
    raise ValueError(f"unknown session format {fmt!r}")


class _Rejections:
    """Why sessions or groups were left out: counts by reason, the first 1,000 in full."""

    def __init__(self) -> None:
        self.items: list[tuple[str, str]] = []
        self.count = 0
        self.by_reason: dict[str, int] = defaultdict(int)

    def add(self, what: str, reason: str) -> None:
        self.count += 1
        self.by_reason[reason.split(" ")[0]] += 1
        if len(self.items) < 1000:
            self.items.append((what, reason))


def _rows(fmt: str, out: Path, flt: ExportFilter, min_gap: float, rejected: _Rejections,
          counter: list[int]) -> Iterator[dict[str, Any]]:
    """Rows of ``fmt``, streamed: SFT and ShareGPT read one session at a time; DPO groups
    records (and task texts) first and reads messages only for the two sessions of a pair."""
    if fmt in ("sft", "sharegpt"):
        for s in load_graded(out):
            counter[0] += 1
            reason = flt.reject_reason(s.record)
            if reason:
                rejected.add(s.session_id, reason)
                continue
            try:
                yield session_row(fmt, s)
            except (ValueError, ShareGPTError) as exc:
                rejected.add(s.session_id, str(exc))
        return
    picker = PairPicker()
    for s in load_graded(out, with_messages=False, with_task=True):
        counter[0] += 1
        reason = flt.reject_reason(s.record)
        if reason:
            rejected.add(s.session_id, reason)
        else:
            picker.add(s)
    make: Callable[[GradedSession, GradedSession], dict[str, Any]] = trl_pair if fmt == "dpo" else openai_pair
    for key, picked in picker.pairs(min_gap):
        try:
            if isinstance(picked, PairError):
                raise picked
            best, worst = picked
            if not (fill(out, best) and fill(out, worst)):
                raise PairError("a session's files are missing")
            yield make(best, worst)
            best.messages = worst.messages = []  # keep memory flat
        except PairError as exc:
            rejected.add("/".join(key), str(exc))


def build_export(out: str | Path, fmt: str, flt: ExportFilter, *, min_gap: float = 10.0,
                 dest: str | Path | None = None) -> ExportResult:
    """Write ``fmt`` rows of the graded sessions under ``out`` that pass ``flt`` to ``dest``
    (default OUT/exports/rebuilt/<file name>), streamed to a temporary file and renamed into
    place. Raises NothingToExport (no file is written), or ValueError for an unknown format."""
    if fmt not in FILE_NAMES:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FILE_NAMES)}")
    dest = Path(dest) if dest else Layout(out).export(f"rebuilt/{FILE_NAMES[fmt]}")
    rejected = _Rejections()
    considered = [0]
    rows = 0
    try:
        with atomic_writer(dest) as f:
            for row in _rows(fmt, Path(out), flt, min_gap, rejected, considered):
                f.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
                rows += 1
            if not rows:
                raise _Empty
    except _Empty:
        common = ", ".join(f"{k} ({n})" for k, n in sorted(rejected.by_reason.items(), key=lambda kv: -kv[1])[:3])
        raise NothingToExport(f"nothing to export as {fmt}: {considered[0]} graded sessions considered, none passed"
                              + (f"; most common reasons: {common}" if common else "")) from None
    return ExportResult(path=dest, rows=rows, considered=considered[0], rejected=rejected.items)


class _Empty(Exception):
    pass


def write_dpo(out: str | Path, flt: ExportFilter, min_gap: float) -> int:
    """Rewrite OUT/exports/dpo.jsonl (TRL pairs) from all graded results under ``out``; a
    pair needs its whole task group, so the file is rebuilt rather than appended. Returns
    the number of pairs (0 when none: the old file, if any, is removed rather than left
    stale)."""
    dest = Layout(out).export(FILE_NAMES["dpo"])
    try:
        return build_export(out, "dpo", flt, min_gap=min_gap, dest=dest).rows
    except NothingToExport as exc:
        log.info("%s", exc)
        dest.unlink(missing_ok=True)
        return 0
