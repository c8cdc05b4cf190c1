"""Rows of an export file, the problems a consumer finds in them, and how they are counted.

A row is named by its session: ``metadata.session_id`` (SFT, ShareGPT, openai-sft rows),
``metadata.chosen.session_id / metadata.rejected.session_id`` (DPO rows), else
``row N`` (1-based line number), since exports before issue 11 carry no metadata.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# Problems that come from a consumer's documented design, not from the row: reported and
# counted, but no defect of the export (e.g. Llama 3.x renders one tool call per message).
LIMIT = "limit"
ERROR = "error"


@dataclass(frozen=True)
class Problem:
    """One thing a consumer rejects or loses in one row.

    ``consumer`` (e.g. ``qwen2.5``, ``llamafactory``, ``openai-sft``), ``kind`` (a short
    stable slug, e.g. ``render-error``), ``row`` (the session, see the module docstring),
    ``where`` (``file:line`` and, where known, the message index or field), ``detail`` (a
    human sentence), ``severity`` (:data:`ERROR`, or :data:`LIMIT` for a consumer's own
    documented limit)."""

    consumer: str
    kind: str
    row: str
    where: str
    detail: str
    severity: str = ERROR

    def __str__(self) -> str:
        return f"[{self.consumer}] {self.kind} in {self.row} ({self.where}): {self.detail}"


@dataclass
class Row:
    """A decoded JSONL row: ``data`` (the object), ``line`` (1-based), ``path``."""

    path: Path
    line: int
    data: dict[str, Any]

    @property
    def label(self) -> str:
        """The row's session (see the module docstring)."""
        return row_label(self.data, self.line)

    def at(self, field: str = "") -> str:
        """``file:line`` and an optional field path, for :attr:`Problem.where`."""
        return f"{self.path.name}:{self.line}" + (f" {field}" if field else "")


def row_label(data: Any, line: int) -> str:
    """``metadata.session_id`` (or chosen/rejected ids for a pair), else ``row <line>``."""
    meta = data.get("metadata") if isinstance(data, dict) else None
    if isinstance(meta, dict):
        if isinstance(meta.get("session_id"), str):
            return meta["session_id"]
        ids = [meta[k].get("session_id") for k in ("chosen", "rejected") if isinstance(meta.get(k), dict)]
        if ids and all(isinstance(i, str) for i in ids):
            return " / ".join(ids)
    return f"row {line}"


def read_rows(path: str | Path, consumer: str) -> tuple[list[Row], list[Problem]]:
    """The rows of a JSONL file, and a ``bad-json`` problem for each line that is not a
    JSON object (blank lines are skipped)."""
    path = Path(path)
    rows: list[Row] = []
    problems: list[Problem] = []
    with path.open(encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if not text.strip():
                continue
            try:
                data = json.loads(text)
            except json.JSONDecodeError as exc:
                problems.append(Problem(consumer, "bad-json", f"row {n}", f"{path.name}:{n}", str(exc)))
                continue
            if not isinstance(data, dict):
                problems.append(Problem(consumer, "bad-json", f"row {n}", f"{path.name}:{n}",
                                        f"a row is a {type(data).__name__}, not an object"))
                continue
            rows.append(Row(path, n, data))
    return rows, problems


def text_of(content: Any) -> str:
    """The text of an OpenAI message ``content``: a string as is, the ``text`` of text
    parts of a list joined with newlines, else empty."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def tally(problems: Iterable[Problem]) -> dict[str, dict[str, int]]:
    """``{consumer: {kind: count}}``, the figures a report gives."""
    out: dict[str, Counter[str]] = {}
    for p in problems:
        out.setdefault(p.consumer, Counter())[p.kind + (" (limit)" if p.severity == LIMIT else "")] += 1
    return {c: dict(sorted(k.items())) for c, k in sorted(out.items())}


def errors(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that are defects of the rows (not a consumer's documented limit)."""
    return [p for p in problems if p.severity == ERROR]


def summary(problems: list[Problem], limit: int = 12) -> str:
    """A short multi-line text for an assertion message: the tally and the first problems."""
    lines = [f"{len(problems)} problems: {json.dumps(tally(problems))}"]
    lines += [f"  {p}"[:400] for p in problems[:limit]]
    return "\n".join(lines)


def iter_kinds(problems: Iterable[Problem], *kinds: str) -> Iterator[Problem]:
    """The problems of the given kinds."""
    return (p for p in problems if p.kind in kinds)
