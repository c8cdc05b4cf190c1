"""The LLM judge's opt-in response cache (``openai.cache_dir``): one JSON file per request
key (the sha256 of the request body), ``<dir>/<key[:2]>/<key[2:]>.json`` holding
``{"content", "model"}``, written atomically. A re-run of the same request (same session,
prompt and model) costs nothing."""

from __future__ import annotations

import logging
from pathlib import Path

import msgspec

from ..sinks.atomic import write_atomic

log = logging.getLogger("streamgrade.judges.openai")


class ResponseCache:
    """Answers by request key under ``root`` (None: caching off, every call a miss).
    Read errors and broken files count as misses; a failed write is logged, never raised."""

    def __init__(self, root: Path | None, model: str | None):
        self.root = root
        self.model = model

    def _path(self, key: str) -> Path | None:
        return self.root / key[:2] / f"{key[2:]}.json" if self.root is not None else None

    def get(self, key: str) -> str | None:
        """The cached answer content of a request, or None."""
        path = self._path(key)
        if path is None:
            return None
        try:
            content = msgspec.json.decode(path.read_bytes()).get("content")
        except (OSError, msgspec.DecodeError, AttributeError):
            return None
        return content if isinstance(content, str) else None

    def put(self, key: str, content: str) -> None:
        """Store ``content`` for ``key`` (no-op when caching is off)."""
        path = self._path(key)
        if path is None:
            return
        try:
            write_atomic(path, msgspec.json.encode({"content": content, "model": self.model}))
        except OSError as exc:
            log.warning("response cache %s not written: %s", path, exc)
