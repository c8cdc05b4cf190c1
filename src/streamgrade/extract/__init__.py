"""Extraction: from raw recorded events to actions (frames come in a later stage)."""

from .actions import RawEvent, extract_actions

__all__ = ["RawEvent", "extract_actions"]
