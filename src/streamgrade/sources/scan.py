"""Scan folders (or single files) for sessions of every known format."""

from __future__ import annotations

import hashlib
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
    fingerprints. Session ids are made unique within the scan: a second session with the same
    id at another path gets ``-<8 hex of its path>`` appended."""
    skip = {os.path.realpath(p) for p in exclude}
    seen: dict[str, int] = {}
    for root in paths:
        root = Path(os.path.abspath(root))
        if root.is_file():
            refs = [r for r in find_in_folder(root.parent, sorted(os.listdir(root.parent))) if r.path in (str(root), str(root.parent))]
            yield from (_unique(with_fingerprint(r), seen) for r in refs)
            continue
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and os.path.realpath(os.path.join(dirpath, d)) not in skip)
            for ref in find_in_folder(Path(dirpath), sorted(filenames)):
                yield _unique(with_fingerprint(ref), seen)


def _unique(ref: SessionRef, seen: dict[str, int]) -> SessionRef:
    # ``seen`` maps each id to a hash of where it lives (not the path itself), so a scan of
    # 100K sessions keeps a few MB, not the paths.
    where = f"{ref.path}#{ref.locator}"
    owner = seen.setdefault(ref.session_id, hash(where))
    if owner == hash(where):
        return ref
    sid = f"{ref.session_id}-{hashlib.sha256(where.encode()).hexdigest()[:8]}"
    seen[sid] = hash(where)
    return msgspec.structs.replace(ref, session_id=sid)
