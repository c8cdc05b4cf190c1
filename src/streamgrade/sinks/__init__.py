"""Sinks: atomic per-session files, exactly-once JSONL exports, and the ledger."""

from .atomic import write_atomic
from .jsonl import JsonlExport
from .ledger import Ledger

__all__ = ["JsonlExport", "Ledger", "write_atomic"]
