"""The sessions of an output folder, read back wherever they are: the session folders
(``OUT/sessions/<shard>/<folder>/``, and the flat ``OUT/sessions/<folder>/`` of older
outputs) and the session store (:mod:`.session_store`, the sessions ``[sinks]
session_files`` gave no folder). Exports, stats, reports and repair read through here.

Each session is read once, in its latest version: the pipeline keeps a session in one place
(a folder write removes its store row in the same commit; a store write removes the older
folder's files right after). Should both hold it (a crash between those two steps), the
one with the later ``graded_at`` wins.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator

import msgspec

from .layout import Layout
from .session_store import StoreReader, open_reader


def read_json(path: str | Path) -> Any:
    """A JSON file's value, or None when it is missing or not valid JSON (msgspec: fast)."""
    try:
        with open(path, "rb") as f:
            return msgspec.json.decode(f.read())
    except (OSError, msgspec.DecodeError):
        return None


class SessionsReader:
    """The sessions of the output folder ``out``, read-only: :meth:`entries`,
    :meth:`records`, :meth:`files`. Holds a read-only connection to the session store
    while open (``with SessionsReader(out) as s: ...``, or :meth:`close`); one thread at a
    time. Raises OSError naming the ledger when the store cannot be read."""

    def __init__(self, out: str | Path):
        self.out = Path(out)
        self.layout = Layout(self.out)
        self.store: StoreReader | None = open_reader(self.layout.ledger)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
            self.store = None

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def entries(self, on_broken: Callable[[Path], None] | None = None) -> Iterator[tuple[Path, dict[str, Any], bool]]:
        """(folder, scores.json, stored) of every session (graded, ungradable or failed),
        streamed: the folders in directory order, then the store's rows in insertion
        order. A stored session's folder is where its frames would be (it may not exist).
        ``on_broken`` is called with each folder whose scores.json is there but unreadable
        (skipped)."""
        store = self.store if self.store is not None and not self.store.empty else None
        folders = 0  # folders holding a result: only then may a stored row have a newer copy in one
        for folder in self.layout.session_dirs():
            path = os.path.join(folder, "scores.json")
            rec = read_json(path)
            if not isinstance(rec, dict) or not isinstance(rec.get("session_id"), str):
                if on_broken is not None and os.path.exists(path):
                    on_broken(folder)
                continue  # no result here (a recording's frames alone), or a foreign file
            if store is not None:
                newer = store.graded_at(rec["session_id"])
                if newer is not None and newer > str(rec.get("graded_at") or ""):
                    continue
            folders += 1
            yield folder, rec, False
        if store is None:
            return
        for sid, rec in store.records():
            found = self.layout.find_session_dir(sid) if folders else None
            if found is not None:
                frec = read_json(found / "scores.json")
                if isinstance(frec, dict) and frec.get("session_id") == sid \
                        and str(frec.get("graded_at") or "") >= str(rec.get("graded_at") or ""):
                    continue  # its folder holds it (yielded above)
            yield self.layout.session_dir(sid), rec, True

    def records(self) -> Iterator[dict[str, Any]]:
        """Every session's scores.json (see :meth:`entries`)."""
        for _, rec, _ in self.entries():
            yield rec

    def files(self, session_id: str, folder: Path | None, stored: bool, *,
              sft: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None] | None:
        """(results.json, sft.json) of a session, from its ``folder`` or (``stored``) the
        store; None when they are missing or broken (sft.json may be None alone, and is not
        read from a folder with ``sft=False``)."""
        if stored:
            if self.store is None:
                return None
            try:
                return self.store.files(session_id)
            except Exception:  # a damaged row: as a broken file
                return None
        folder = folder or self.layout.find_session_dir(session_id) or self.layout.session_dir(session_id)
        results = read_json(folder / "results.json")
        if not isinstance(results, dict):
            return None
        sft_doc = read_json(folder / "sft.json") if sft else None
        return results, sft_doc if isinstance(sft_doc, dict) else None


__all__ = ["SessionsReader", "read_json"]
