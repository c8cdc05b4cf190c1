"""Scan folders (or single files) for sessions of every known format, and account for every
file: each one is part of a session, or is counted as not recognised, with the reason.

Only regular files (and symlinks to them) are given to the formats: a FIFO, socket, device
or broken symlink is reported, never opened, so it cannot hang the scan. Folders are walked
in name order without recursion (no nesting depth exhausts the stack); hidden folders
(``.git``) and excluded ones (the output folder) are not entered, and a hidden folder is
reported once. A file inside a session's folder (a Harbor trial's logs, a Clones
recording's video) belongs to that session.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

import msgspec

from ..formats import FORMATS, Format, fingerprint
from ..formats.explain import explain, owned
from ..inputs import file_kind
from ..models import SessionRef

log = logging.getLogger("streamgrade.scan")


@dataclass
class ScanReport:
    """What a scan did not take: ``unrecognised`` files (and folders not entered), with
    (path, reason) for the first ``keep`` of them in ``examples``. With ``verbose`` every
    one is logged with its reason as it is found (``-v``); with ``once`` a path is counted
    and logged only the first time (watch sees a file on each of its changes; the last
    10,000 paths are remembered)."""

    keep: int = 5
    verbose: bool = False
    once: bool = False
    unrecognised: int = 0
    examples: list[tuple[str, str]] = field(default_factory=list)
    _seen: dict[str, None] = field(default_factory=dict, repr=False)

    def add(self, path: str, reason: Callable[[], str]) -> None:
        if self.once:
            if path in self._seen:
                return
            self._seen[path] = None
            if len(self._seen) > 10_000:
                del self._seen[next(iter(self._seen))]
        self.unrecognised += 1
        if self.verbose or len(self.examples) < self.keep:
            why = reason()
            if len(self.examples) < self.keep:
                self.examples.append((path, why))
            if self.verbose:
                log.info("not recognised: %s", why, extra={"file": path})


def with_fingerprint(ref: SessionRef) -> SessionRef:
    """``ref`` with its fingerprint: the content fingerprint its format gave (rows of a
    multi-session file), else the fingerprint of its files as they are now."""
    if ref.fingerprint:
        return ref
    return msgspec.structs.replace(ref, fingerprint=fingerprint(ref.files))


def find_in_folder(folder: Path, names: list[str], formats: Iterable[Format] | None = None) -> list[SessionRef]:
    """Sessions of every format named by files in ``folder`` (no fingerprint yet), the
    formats asked in registry order. A format with ``exclusive = True`` owns what it finds:
    later formats (the generic row readers come last) are not shown those files, nor the
    files its optional ``withhold(folder, names)`` names (files of its layout that it does
    not read, e.g. an ADP dataset's raw sample: they are reported as not recognised, with
    the reason :func:`~streamgrade.formats.explain.explain` gives)."""
    out: list[SessionRef] = []
    taken: set[str] = set()
    for fmt in formats or FORMATS.values():
        avail = [n for n in names if str(folder / n) not in taken] if taken else names
        refs = fmt.find(folder, avail)
        out.extend(refs)
        if getattr(fmt, "exclusive", False):
            taken.update(f for r in refs for f in (r.path, *r.files))
            withhold = getattr(fmt, "withhold", None)
            if withhold is not None:
                taken.update(str(folder / n) for n in withhold(folder, avail))
    return out


def iter_in_folder(folder: Path, names: list[str]) -> Iterator[SessionRef]:
    """:func:`find_in_folder`, streamed: the refs of a format that is not exclusive and
    finds them one at a time (``iter_find``, e.g. the rows of 1,000 OpenAI-chat dump files)
    are never held in one list, so a folder of 100,000 sessions costs no more memory than
    one of 1,000."""
    taken: set[str] = set()
    for fmt in FORMATS.values():
        avail = [n for n in names if str(folder / n) not in taken] if taken else names
        if getattr(fmt, "exclusive", False):
            refs = fmt.find(folder, avail)
            yield from refs
            taken.update(f for r in refs for f in (r.path, *r.files))
            withhold = getattr(fmt, "withhold", None)
            if withhold is not None:
                taken.update(str(folder / n) for n in withhold(folder, avail))
        else:
            finder = getattr(fmt, "iter_find", None)
            yield from (finder(folder, avail) if finder is not None else fmt.find(folder, avail))


def owns_tree(ref: SessionRef) -> bool:
    """Whether ``ref``'s format owns every file under the session's folder (``owns_tree =
    True``, e.g. a Terminal-Bench trial): formats are then not asked about its sub-folders,
    whose files (an agent's own logs) would otherwise be read as sessions of their own."""
    return bool(getattr(FORMATS.get(ref.format), "owns_tree", False)) and os.path.isdir(ref.path)


def in_owned_tree(folder: Path, levels: int = 3) -> bool:
    """Whether ``folder`` lies inside (up to ``levels`` folders below) the folder of a
    session whose format owns its whole tree (see :func:`owns_tree`). Lists the parent
    folders; never raises. For single files and watch events (a walk tracks this itself)."""
    fmts = [f for f in FORMATS.values() if getattr(f, "owns_tree", False)]
    p = Path(folder)
    for _ in range(levels if fmts else 0):
        parent = p.parent
        if parent == p:
            break
        try:
            _, names, _ = list_folder(parent)
        except OSError:
            names = []
        if any(r.path == str(parent) for f in fmts for r in f.find(parent, names)):
            return True
        p = parent
    return False


def claimed_in_folder(folder: Path, names: list[str], refs: list[SessionRef]) -> set[str]:
    """Paths of the files in ``folder`` that belong to ``refs`` or that a format owns
    without making them a session (an ATIF continuation, a Harbor job's summary)."""
    claimed = {f for r in refs for f in r.files}
    claimed.update(r.path for r in refs)
    claimed.update(str(folder / n) for n in owned(folder, names))
    return claimed


def list_folder(folder: Path) -> tuple[list[str], list[str], list[tuple[str, str]]]:
    """(sub-folders, regular files, other entries with what they are) of ``folder``, each
    by name in name order. Symlinks to regular files count as files; symlinks to folders are
    not followed. Raises OSError when the folder cannot be listed."""
    dirs, files, other = [], [], []
    with os.scandir(folder) as it:
        entries = sorted(it, key=lambda e: e.name)
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                dirs.append(e.name)
            elif e.is_file():
                files.append(e.name)
            elif e.is_symlink():
                try:
                    target = os.stat(e.path).st_mode
                    other.append((e.name, f"a symlink to {file_kind(target)} (not followed)"))
                except OSError:
                    other.append((e.name, "a broken symlink"))
            else:
                other.append((e.name, f"not a regular file: {file_kind(e.stat(follow_symlinks=False).st_mode)}"))
        except OSError as exc:
            other.append((e.name, f"cannot be read: {exc.strerror}"))
    return dirs, files, other


def scan(paths: Iterable[str | Path], *, exclude: Iterable[str | Path] = (),
         report: ScanReport | None = None) -> Iterator[SessionRef]:
    """Every session under ``paths`` (folders walked in name order; a file path yields the
    sessions it names), with fingerprints; files no format took are added to ``report``.
    Ids are not made unique here (that needs memory per session): the pipeline's admit
    stage does it against the ledger."""
    report = report if report is not None else ScanReport()
    skip = {os.path.realpath(p) for p in exclude}
    for root in paths:
        root = Path(os.path.abspath(root))
        try:
            mode = os.stat(root).st_mode
        except OSError as exc:
            report.add(str(root), lambda exc=exc: f"cannot be read: {exc.strerror}")
            continue
        if stat.S_ISDIR(mode):
            yield from _walk(root, skip, report)
        elif stat.S_ISREG(mode):
            yield from _one_file(root, report)
        else:
            report.add(str(root), lambda mode=mode: f"not a regular file: {file_kind(mode)}")


def _one_file(path: Path, report: ScanReport) -> Iterator[SessionRef]:
    if in_owned_tree(path.parent):
        return  # a file of a session's tree (read by that session, never one of its own)
    try:
        _, names, _ = list_folder(path.parent)
    except OSError:
        names = [path.name]
    refs = [r for r in find_in_folder(path.parent, names)
            if r.path in (str(path), str(path.parent)) or str(path) in r.files]
    if not refs and str(path) not in claimed_in_folder(path.parent, names, []):
        report.add(str(path), lambda: explain(path.parent, path.name, names))
    for r in refs:
        yield with_fingerprint(r)


def _walk(root: Path, skip: set[str], report: ScanReport) -> Iterator[SessionRef]:
    covered: set[str] = set()  # session folders: every file under them belongs to the session
    trees: set[str] = set()  # session folders whose format owns every folder below them
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            dirs, names, other = list_folder(folder)
        except OSError as exc:
            report.add(str(folder), lambda exc=exc: f"folder cannot be listed: {exc.strerror}")
            continue
        owned_below = _under(os.path.dirname(str(folder)), trees) if trees else False
        claimed: set[str] = set()  # the files of the folder's sessions, kept by path (not the refs)
        for r in () if owned_below else iter_in_folder(folder, names):
            claimed.update(r.files)
            claimed.add(r.path)
            if os.path.isdir(r.path):
                covered.add(r.path)
                if owns_tree(r):
                    trees.add(r.path)
            yield with_fingerprint(r)
        inside = _under(str(folder), covered)
        if not inside:
            claimed.update(str(folder / n) for n in owned(folder, names))
            for n in names:
                if str(folder / n) not in claimed:
                    report.add(str(folder / n), lambda n=n: explain(folder, n, names))
            for n, what in other:
                report.add(str(folder / n), lambda what=what: what)
        subs = []
        for d in dirs:
            path = folder / d
            if os.path.realpath(path) in skip:
                continue
            if d.startswith("."):
                if not inside:
                    report.add(str(path), lambda: "a hidden folder (not scanned)")
                continue
            subs.append(path)
        stack.extend(reversed(subs))


def _under(path: str, roots: set[str]) -> bool:
    """Whether ``path`` is one of ``roots`` or inside one."""
    if not roots:
        return False
    p = path
    while True:
        if p in roots:
            return True
        parent = os.path.dirname(p)
        if parent == p:
            return False
        p = parent


__all__ = ["scan", "ScanReport", "with_fingerprint", "find_in_folder", "iter_in_folder", "list_folder", "claimed_in_folder",
           "owns_tree", "in_owned_tree"]
