"""Scan folders (or single files) for sessions of every known format."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
from typing import Iterable, Iterator

from ..formats import FORMATS, Format, fingerprint
from ..models import SessionRef


def with_fingerprint(ref: SessionRef) -> SessionRef:
    """``ref`` with the fingerprint of its files as they are now."""
    return msgspec.structs.replace(ref, fingerprint=fingerprint(ref.files))


def find_in_folder(folder: Path, names: list[str], formats: Iterable[Format] | None = None) -> list[SessionRef]:
    """Sessions of every format named by files in ``folder`` (no fingerprint yet)."""
    out: list[SessionRef] = []
    for fmt in formats or FORMATS.values():
        out.extend(fmt.find(folder, names))
    return out


def scan(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = ()) -> Iterator[SessionRef]:
    """Every session under ``paths`` (folders walked recursively in name order, hidden
    folders and ``exclude`` skipped; a file path yields the sessions it names), with
    fingerprints. Ids are not made unique here (that needs memory per session): the pipeline's
    admit stage does it against the ledger."""
    skip = {os.path.realpath(p) for p in exclude}
    for root in paths:
        root = Path(os.path.abspath(root))
        if root.is_file():
            refs = [r for r in find_in_folder(root.parent, sorted(os.listdir(root.parent))) if r.path in (str(root), str(root.parent))]
            yield from (with_fingerprint(r) for r in refs)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) not in skip)
            for ref in find_in_folder(Path(dirpath), sorted(filenames)):
                yield with_fingerprint(ref)
