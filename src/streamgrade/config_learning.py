"""The learning sections of the configuration: ``[hints]`` (per-task hints learned from many
episodes, ``streamgrade hints``) and ``[augment]`` (captions, state transitions and hints
for recordings, ``streamgrade augment`` or ``grade`` with ``enabled = true``).
:mod:`streamgrade.config` builds them into :class:`~streamgrade.config.Config`;
configs/streamgrade.toml documents every key."""

from __future__ import annotations

from typing import Literal

import msgspec

#: Fields a task group may be keyed on (``[hints] group_by``), besides ``meta.<path>``.
HINT_GROUP_FIELDS = ("source_format", "source_dir", "source_file", "task_id", "trial", "task", "model", "agent")


class HintsConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[hints]``: ``group_by`` the fields that make a task (:data:`HINT_GROUP_FIELDS`, or
    ``meta.<dotted path>`` into the session's meta; ``task_id`` falls back on the task
    text when a session has none); ``mode`` auto (the LLM when an API key or base URL is
    set, else offline), llm or offline; ``max_episodes`` episodes read per task at most
    (successes and failures alternated, shortest first); ``concurrency`` episodes extracted
    at once (the judge's RPM/TPM limits apply on top); ``evidence_tokens`` the budget of an
    episode's selected steps in its extraction prompt (characters / 4); ``similarity``
    (0-1) the difflib ratio of two normalised lines at or above which they are one hint;
    ``max_items`` the longest list of each hint part in an aggregated task."""

    group_by: list[str] = msgspec.field(default_factory=lambda: ["source_format", "task_id"])
    mode: Literal["auto", "llm", "offline"] = "auto"
    max_episodes: int = 8
    concurrency: int = 16
    evidence_tokens: int = 6000
    similarity: float = 0.85
    max_items: int = 12


class AugmentConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[augment]``: ``enabled`` augments every recording a grade run reads, before it is
    judged (captions join the judge's evidence); ``mode`` auto (the LLM when the run's judge
    is one, else offline templates), llm or offline; ``batch_steps`` steps (each with its
    frames before and after) captioned in one request; ``max_requests`` requests a session
    may send at most, its structured-hints request included (steps beyond the cap get
    template captions); ``after_ms`` how long after a step's last action its "after" frame
    is taken (never past the next step's start); ``session_hints`` asks for structured
    hints per session."""

    enabled: bool = False
    mode: Literal["auto", "llm", "offline"] = "auto"
    batch_steps: int = 4
    max_requests: int = 8
    after_ms: int = 300
    session_hints: bool = True


__all__ = ["AugmentConfig", "HintsConfig", "HINT_GROUP_FIELDS"]
