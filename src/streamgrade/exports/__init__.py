"""Exports: training-data rows built from graded sessions."""

from .chatml import to_chatml

__all__ = ["to_chatml"]
