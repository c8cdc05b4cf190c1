"""Which graded sessions go into an export."""

from __future__ import annotations

from typing import Any

import msgspec


class ExportFilter(msgspec.Struct, forbid_unknown_fields=True):
    """Filters on scores.jsonl fields; None (or empty) means no filter.

    ``min_score`` 0-100 (the quality threshold), ``min_reward``, ``min_achievements`` and
    ``min_progression`` (metrics of game episodes; a session without the metric fails the
    filter), ``max_turns``, ``require_termination`` (one of these termination reasons),
    ``formats`` (source_format in), ``models`` (model in), ``min_p_success`` 0-1 (the
    calibrated P(success) of ``grade --calibration``; a session without it fails the
    filter)."""

    min_score: float | None = None
    min_reward: float | None = None
    min_achievements: float | None = None
    min_progression: float | None = None
    max_turns: int | None = None
    require_termination: list[str] = []
    formats: list[str] = []
    models: list[str] = []
    min_p_success: float | None = None

    def reject_reason(self, rec: dict[str, Any]) -> str | None:
        """Why ``rec`` (a scores.jsonl record) is filtered out, or None when it passes."""
        metrics = rec.get("metrics") or {}
        checks = [
            (self.min_score, rec.get("score"), "score"),
            (self.min_reward, rec.get("reward"), "reward"),
            (self.min_achievements, metrics.get("achievements"), "achievements"),
            (self.min_progression, metrics.get("progression"), "progression"),
        ]
        for minimum, value, name in checks:
            if minimum is not None and (value is None or value < minimum):
                return f"{name} {value} below {minimum}"
        if self.min_p_success is not None:
            p = rec.get("p_success")
            if p is None:
                return "no p_success (graded without --calibration)"
            if p < self.min_p_success:
                return f"p_success {p} below {self.min_p_success}"
        if self.max_turns is not None and (rec.get("turns") or 0) > self.max_turns:
            return f"turns {rec.get('turns')} above {self.max_turns}"
        if self.require_termination and rec.get("termination") not in self.require_termination:
            return f"termination {rec.get('termination')!r} not in {self.require_termination}"
        if self.formats and rec.get("source_format") not in self.formats:
            return f"format {rec.get('source_format')!r} not selected"
        if self.models and rec.get("model") not in self.models:
            return f"model {rec.get('model')!r} not selected"
        return None
