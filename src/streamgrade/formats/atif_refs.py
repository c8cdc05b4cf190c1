"""Resolving the file references of ATIF trajectories (``continued_trajectory_ref``,
``subagent_trajectory_ref``) inside the session's folder.

A ref is resolved relative to the referencing file's folder. Harbor's golden fixtures are
stored renamed with a prefix (``X.trajectory.json`` references ``trajectory.cont-1.json``,
stored as ``X.trajectory.cont-1.json``), so when the plain path is absent the prefixed one
is tried (source: harbor-framework/harbor tests/golden, see
../shared/corpus/harbor/PROVENANCE.md).

Every path a ref may name must lie inside the session's folder, lexically and after
resolving symlinks (:func:`streamgrade.formats.base.within`), and this is checked before
whether the file exists: a document could otherwise pull any file into the transcript, and
an error saying "missing" would tell whether a path outside exists. A ref that leaves the
folder gets the one message :data:`OUTSIDE`.
"""

from __future__ import annotations

import os
from pathlib import Path

from .base import within

#: The one error message of a ref that leaves the session's folder: the same whether or not
#: its target exists, and without the target, so it tells nothing about the files outside.
OUTSIDE = "points outside the session's folder"


class RefOutside(Exception):
    """A ref names a path outside the session's folder."""


def ref_paths(base: Path, ref: str) -> list[Path]:
    """The paths ``ref`` may name, relative to ``base``'s folder: plain, then prefixed."""
    paths = [base.parent / ref]
    name = base.name
    if name.endswith("trajectory.json") and ref.startswith("trajectory."):
        paths.append(base.parent / (name[: -len("trajectory.json")] + ref))
    return paths


def ref_inside(base: Path, ref: str, root: str | Path) -> bool:
    """Whether every path ``ref`` may name lies inside ``root``. A ref holding a NUL byte
    names no file, so it is not outside (it resolves to nothing)."""
    return "\0" in ref or all(within(p, root) for p in ref_paths(base, ref))


def resolve_ref(base: str | Path, ref: str, root: str | Path | None = None) -> Path | None:
    """The existing file ``ref`` names, relative to ``base``'s folder, or None. Raises
    :class:`RefOutside`, before looking at whether anything exists, when a path it may name
    is not inside ``root`` (default: ``base``'s folder) lexically or after resolving
    symlinks."""
    base = Path(base)
    if not ref_inside(base, ref, base.parent if root is None else root):
        raise RefOutside(ref)
    for path in ref_paths(base, ref):
        if os.path.isfile(path):  # False (never an error) for a name too long or holding NUL
            return path
    return None
