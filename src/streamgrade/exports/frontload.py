"""Order a JSONL training file so that a reader inferring its schema from the first block
sees every field at once.

Hugging Face `datasets` (``load_dataset("json", ...)``, which TRL and most trainers use)
reads a JSON Lines file in 10 MB blocks, infers an Arrow schema from the first block and
casts every later block to it (``datasets.packaged_modules.json`` and
``ArrowWriter.write_table``). A later block may *lack* a nested field (it is filled with
nulls) but may not *add* one: a trajectory DPO file whose first 10 MB holds no tool call
fails with ``CastError`` on a later row that has one. Writing first the rows that bring a
field (or a non-empty list) no earlier row had makes the first block's schema the union of
all rows'. The other rows keep their order; one row per new field is held in memory, the
rest are spooled to a temporary file beside the destination.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any, BinaryIO

FRONT_LIMIT = 8 << 20
"""Bytes of front rows held in memory (below the 10 MB block `datasets` infers from);
past it rows are spooled in order, as if nothing were reordered."""


def key_paths(value: Any, prefix: str = "", into: set[str] | None = None) -> set[str]:
    """The paths of every non-null value in ``value`` (a decoded JSON row): ``a.b`` for
    object keys, ``a[]`` for the elements of a non-empty list, ``:type`` on leaves. An empty
    list or a null adds nothing, as Arrow infers a null type for it."""
    out = set() if into is None else into
    if isinstance(value, dict):
        for k, v in value.items():
            if v is not None:
                key_paths(v, f"{prefix}.{k}", out)
    elif isinstance(value, list):
        for v in value:
            if v is not None:
                key_paths(v, f"{prefix}[]", out)
    else:
        out.add(f"{prefix}:{type(value).__name__}")
    return out


class FrontLoaded:
    """A row writer over ``dest`` (a binary file) that puts first the rows bringing a key path
    no earlier row had. ``write(row, data)`` takes the decoded row and its encoded line;
    ``finish()`` writes everything to ``dest`` (call it once, before ``dest`` is closed).
    ``spool_dir`` is where the temporary file lives (the destination's folder, so it shares
    its disk). Raises OSError from the spool or the destination."""

    def __init__(self, dest: BinaryIO, spool_dir: str | Path | None = None, *, limit: int = FRONT_LIMIT) -> None:
        self._dest = dest
        self._spool = tempfile.TemporaryFile(dir=spool_dir, prefix=".streamgrade-spool.")
        self._seen: set[str] = set()
        self._front: list[bytes] = []
        self._front_bytes = 0
        self._limit = limit

    def write(self, row: Any, data: bytes) -> None:
        if self._front_bytes + len(data) <= self._limit:
            paths = key_paths(row)
            if not paths <= self._seen:
                self._seen |= paths
                self._front.append(data)
                self._front_bytes += len(data)
                return
        self._spool.write(data)

    def finish(self) -> None:
        try:
            for data in self._front:
                self._dest.write(data)
            self._spool.seek(0)
            shutil.copyfileobj(self._spool, self._dest, 1 << 20)
        finally:
            self.close()

    def close(self) -> None:
        """Drop the spool without writing (on an error, or after ``finish``)."""
        self._front.clear()
        self._spool.close()
