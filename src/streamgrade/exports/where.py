"""``export --where "SQL predicate"``: the ``[exports]`` filters plus a DuckDB condition on the
``scores`` view of :mod:`streamgrade.query` (``metrics.progression > 0.3 and model like
'%llama%'``), for what the filter flags do not cover."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .filters import ExportFilter


class WhereFilter(ExportFilter, forbid_unknown_fields=True):
    """An :class:`ExportFilter` that also keeps only the sessions in ``allowed``: those whose
    latest record matched ``where`` (see :func:`where_filter`)."""

    where: str | None = None
    allowed: frozenset[str] = frozenset()

    def reject_reason(self, rec: dict[str, Any]) -> str | None:
        reason = ExportFilter.reject_reason(self, rec)
        if reason is None and self.where is not None and rec.get("session_id") not in self.allowed:
            return f"not matched by --where {self.where!r}"
        return reason


def where_filter(out: str | Path, base: ExportFilter, where: str | None) -> tuple[ExportFilter, list[str]]:
    """(``base`` with the ``--where`` condition, notes from the query). ``where`` None returns
    ``base`` itself. Raises :class:`streamgrade.query.QueryError` when the SQL fails."""
    if where is None:
        return base, []
    from ..query import matching_sessions

    ids, notes = matching_sessions(out, where)
    fields = {k: getattr(base, k) for k in ExportFilter.__struct_fields__}
    return WhereFilter(**fields, where=where, allowed=frozenset(ids)), notes


__all__ = ["WhereFilter", "where_filter"]
