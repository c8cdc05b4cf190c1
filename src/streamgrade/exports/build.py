"""Build training files from the graded results in an output folder, without regrading:
``streamgrade export OUT --format F`` one file at a time, and :func:`rebuild_training` for
the files a grade run rebuilds at its end (``[exports] training``).

Formats: ``sft`` (ChatML, TRL's conversational "messages" datasets), ``sharegpt``
(LLaMA-Factory), ``openai-sft`` (strict OpenAI chat fine-tuning rows, :mod:`.openai_sft`),
``dpo`` (TRL conversational preference pairs) and ``openai-dpo`` (OpenAI preference
fine-tuning). Rows come from :mod:`.training` (metadata, one tool list per source, the pass
filter) and :mod:`.dpo`. Files are written atomically and readable by others (0644 less
the umask); when nothing passes, :class:`NothingToExport` is raised and no file is written,
never an empty file that looks like success. Rows that bring a field no earlier row had
come first (:mod:`.frontload`), so `datasets` infers the whole schema from the first block.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from ..sinks.atomic import atomic_writer
from ..sinks.layout import Layout
from .dpo import DEFAULT_GROUP_BY, PairGrouper, write_pairs
from .filters import ExportFilter
from .frontload import FrontLoaded
from .store import Sessions
from .tools import SourceTools
from .training import FILE_NAMES, SESSION_FORMATS, Built, PassRule, build_session_exports, encode, first_pass

log = logging.getLogger("streamgrade.exports")

__all__ = ["FILE_NAMES", "NothingToExport", "ExportResult", "build_export", "rebuild_training", "ExportOptions"]


class NothingToExport(Exception):
    """No session (or pair) passed the filters; the message says how many were considered
    and the most common reasons."""


@dataclass
class ExportOptions:
    """How rows are chosen and written: ``flt`` the ``[exports]`` filters; ``pass_only``
    keeps only passing sessions (False: ``--all``); ``reward_pass`` / ``pass_score`` the
    pass marks; ``metadata`` adds row metadata. Preference pairs (:mod:`.dpo`): ``pairs``
    step or trajectory, ``rank_by`` reward or score, ``min_gap`` the least score gap
    (points) where the score ranks a pair, ``group_by`` the record fields of a task."""

    flt: ExportFilter = field(default_factory=ExportFilter)
    pass_only: bool = True
    reward_pass: float | None = None
    pass_score: float = 50.0
    metadata: bool = True
    min_gap: float = 10.0
    pairs: str = "step"
    rank_by: str = "reward"
    group_by: tuple[str, ...] = DEFAULT_GROUP_BY
    prefer: Any = None  # rank_by "pairwise": the pairwise judge (exports/pairwise_rank.py)

    @classmethod
    def from_config(cls, ex: Any, **overrides: Any) -> "ExportOptions":
        """From an ``[exports]`` config section, with ``overrides``."""
        base = cls(flt=ex.filter(), pass_only=ex.pass_only, reward_pass=ex.reward_pass, pass_score=ex.pass_score,
                   metadata=ex.metadata, min_gap=ex.dpo_min_gap, pairs=ex.dpo_pairs, rank_by=ex.dpo_rank_by,
                   group_by=tuple(ex.dpo_group_by))
        for k, v in overrides.items():
            if v is not None:
                setattr(base, k, v)
        return base

    def rule(self) -> PassRule | None:
        return PassRule(self.reward_pass, self.pass_score) if self.pass_only else None


@dataclass
class ExportResult:
    """``rows`` written to ``path``; ``considered`` sessions; ``rejected`` (id, reason) and
    the counts by reason."""

    path: Path
    rows: int
    considered: int
    rejected: list[tuple[str, str]] = field(default_factory=list)
    reasons: dict[str, int] = field(default_factory=dict)


def _pairs(fmt: str, out: Sessions, opts: ExportOptions, tools: SourceTools, write: Callable[[dict[str, Any]], None],
           built: Built, grouped: PairGrouper | None = None) -> int:
    """Write the preference pairs of ``fmt`` (:func:`.dpo.write_pairs`; ``grouped``: its
    runs, grouped in the first pass); returns the sessions considered."""
    return write_pairs(out, fmt, write, built, tools=tools, flt=opts.flt, mode=opts.pairs,  # type: ignore[arg-type]
                       rank_by=opts.rank_by, min_gap=opts.min_gap, metadata=opts.metadata,  # type: ignore[arg-type]
                       group_by=opts.group_by, prefer=opts.prefer, grouped=grouped)


def _write_all(out: Path, dests: dict[str, Path], opts: ExportOptions) -> tuple[dict[str, Built], int]:
    """Build every format of ``dests`` (format -> file), each file atomically; formats that
    get no row leave no file (an old one is removed). Returns (built, considered)."""
    with Sessions(out) as sessions:  # one read-only view of the folders and the store for every pass
        return _write_all_from(sessions, dests, opts)


def _write_all_from(out: Sessions, dests: dict[str, Path], opts: ExportOptions) -> tuple[dict[str, Built], int]:
    rule = opts.rule()
    built: dict[str, Built] = {}
    # the preference pairs group their runs in the first pass: one pass less over the sessions
    grouped = {f: PairGrouper(opts.flt, opts.group_by, built.setdefault(f, Built(f)).rejected)
               for f in dests if f not in SESSION_FORMATS}
    tools, _ = first_pass(out, opts.flt, rule,
                          (lambda gs: [g.add(gs) for g in grouped.values()]) if grouped else None)
    considered = 0
    files: dict[str, FrontLoaded] = {}
    writers: list[Any] = []
    try:
        for fmt, dest in dests.items():
            w = atomic_writer(dest, kind="exports")
            writers.append(w)
            files[fmt] = FrontLoaded(w.__enter__(), dest.parent)

        def put(fmt: str) -> Callable[[dict], None]:
            return lambda row: files[fmt].write(row, encode(row))
        session = {f: put(f) for f in dests if f in SESSION_FORMATS}
        if session:
            b, considered = build_session_exports(out, session, opts.flt, rule=rule, metadata=opts.metadata, tools=tools)
            built.update(b)
        for fmt in (f for f in dests if f not in SESSION_FORMATS):
            considered = max(considered, _pairs(fmt, out, opts, tools, put(fmt), built[fmt], grouped[fmt]))
        for f in files.values():
            f.finish()
    except BaseException as exc:
        for f in files.values():
            f.close()
        for w in writers:
            w.__exit__(type(exc), exc, exc.__traceback__)
        raise
    for w, fmt in zip(writers, dests):
        if built[fmt].rows:
            w.__exit__(None, None, None)
        else:  # no row: no file (an empty file would look like success)
            w.__exit__(_Empty, _Empty(), None)
            dests[fmt].unlink(missing_ok=True)
    return built, considered


class _Empty(Exception):
    pass


def build_export(out: str | Path, fmt: str, flt: ExportFilter | None = None, *, min_gap: float = 10.0,
                 dest: str | Path | None = None, options: ExportOptions | None = None) -> ExportResult:
    """Write ``fmt`` rows of the graded sessions under ``out`` to ``dest`` (default
    OUT/exports/rebuilt/<file name>). ``options`` (or ``flt`` and ``min_gap``) choose the
    rows. Raises NothingToExport (no file is written), or ValueError for an unknown format."""
    if fmt not in FILE_NAMES:
        raise ValueError(f"unknown export format {fmt!r}; choose from {', '.join(FILE_NAMES)}")
    opts = options or ExportOptions(flt=flt or ExportFilter(), min_gap=min_gap)
    dest = Path(dest) if dest else Layout(out).export(f"rebuilt/{FILE_NAMES[fmt]}")
    built, considered = _write_all(Path(out), {fmt: dest}, opts)
    b = built[fmt]
    if not b.rows:
        common = b.rejected.common()
        raise NothingToExport(f"nothing to export as {fmt}: {considered} graded sessions considered, none passed"
                              + (f"; most common reasons: {common}" if common else ""))
    return ExportResult(path=dest, rows=b.rows, considered=considered, rejected=b.rejected.items,
                        reasons=dict(b.rejected.by_reason))


def rebuild_training(out: str | Path, formats: list[str], opts: ExportOptions) -> dict[str, ExportResult]:
    """Rebuild the training files ``formats`` under OUT/exports/ (what a grade run does at
    its end); a format with no row leaves no file. Returns each format's result."""
    layout = Layout(out)
    dests = {f: layout.export(FILE_NAMES[f]) for f in formats if f in FILE_NAMES}
    built, considered = _write_all(Path(out), dests, opts)
    return {f: ExportResult(path=dests[f], rows=b.rows, considered=considered, rejected=b.rejected.items,
                            reasons=dict(b.rejected.by_reason)) for f, b in ((f, built[f]) for f in dests)}
