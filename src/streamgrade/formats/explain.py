"""Why a file is not a session: the files formats own without making them sessions, and
the reason each format gives for a file that none took (for the run summary and ``-v``).

Reasons are cheap: names and extensions first, and for ``.json``/``.jsonl`` files what the
row and ATIF formats found in them (parsed once, from the row cache).
"""

from __future__ import annotations

import os
from pathlib import Path

from . import adp
from ._rows import load_rows, looks_like_json
from .harbor import RESULT, TRAJECTORY, _inside_harbor_trial, _scan_file, atif_files, IS_ATIF

#: What each format reads, as a user would look for it.
EXPECTS: dict[str, str] = {
    "clones-desktop": "a folder with input_log.jsonl and meta.json",
    "clones-web": "<id>.events.json (with a *race_sessions*.json export beside it)",
    "openai-chat": ".json/.jsonl rows holding OpenAI chat messages ([formats.openai_chat] messages_fields)",
    "trace-rows": ".json/.jsonl rows with trial_name, episode and conversations (Harbor trace export)",
    "harbor": "a trial folder with result.json and agent/trajectory.json",
    "atif": "an ATIF trajectory .json (schema_version ATIF-v1.x)",
    "balrog-crafter": "<task>_run_NN.json with <task>_run_NN.csv (BALROG episodes)",
    "owa": "<stem>.mcap (with <stem>.mkv)",
    "react-text": ".json/.jsonl rows holding ReAct text (Thought:/Action:/Observation: lines; FireAct trajs, Alpaca records, chat turns)",
    "ducktrack": "a folder with events.jsonl (time_stamp, action) and metadata.json (DuckTrack recordings)",
    "adp": ".json/.jsonl Agent Data Protocol trajectories {id, content: [{class_: ..._action|..._observation}], details}",
}

_HARBOR_JOB_FILES = ("result.json", "config.json", "job.log")


def owned(folder: Path, names: list[str]) -> set[str]:
    """Names in ``folder`` that belong to sessions without being found as one: ATIF
    continuation and subagent files, and a Harbor job folder's own summary files
    (``result.json``, ``config.json``, ``job.log`` beside its trial folders), an ADP dataset
    folder's config (``metadata.json``, ``schema_raw.json``)."""
    out: set[str] = set()
    out |= adp.owned_config(folder, names)
    if any(n.endswith(".json") for n in names) and not _inside_harbor_trial(folder):
        out |= atif_files(folder, names)[1]
    if RESULT in names and not os.path.isfile(folder / TRAJECTORY) and _has_trial(folder):
        out.update(n for n in _HARBOR_JOB_FILES if n in names)
    return out


def _has_trial(folder: Path) -> bool:
    try:
        with os.scandir(folder) as it:
            return any(e.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(e.path, RESULT))
                       and os.path.isfile(os.path.join(e.path, TRAJECTORY)) for e in it)
    except OSError:
        return False


def _json_reasons(path: Path) -> list[str]:
    if not looks_like_json(path):
        return ["does not start like JSON"]
    rows = load_rows(path)
    if rows.error is not None:
        return [str(rows.error)]
    reasons = ["openai-chat: no row holds a messages list", "trace-rows: no row has trial_name and episode"]
    if path.suffix == ".json" and _scan_file(str(path))[0] != IS_ATIF:
        reasons.append("atif: no ATIF schema_version")
    return ["JSON without session rows (" + "; ".join(reasons) + ")"]


def explain(folder: Path, name: str, names: list[str]) -> str:
    """Why no format took ``folder/name`` (a regular file), in one line."""
    path = Path(folder) / name
    low = name.lower()
    if low.endswith((".json", ".jsonl")):
        withheld = adp.withheld_reason(Path(folder), name, names)
        if withheld:
            return withheld
        if name in ("meta.json", "input_log.jsonl"):
            other = "input_log.jsonl" if name == "meta.json" else "meta.json"
            return f"clones-desktop: {name} without {other} in its folder"
        if name == "events.jsonl":
            return "ducktrack: the first line has no time_stamp and action, and no DuckTrack metadata.json is beside it; " \
                + "; ".join(_json_reasons(path))
        if name == RESULT:
            return "harbor: result.json without agent/trajectory.json"
        if low.endswith(".events.json"):
            return "clones-web: not read"
        return "; ".join(_json_reasons(path))
    if low.endswith(".csv"):
        return "balrog-crafter: a CSV without its <task>_run_NN.json episode summary beside it"
    if low.endswith((".mkv", ".mp4", ".m4v")):
        return "a video without the events it belongs to (owa: <stem>.mcap; clones-desktop: input_log.jsonl)"
    if low.endswith(".guac"):
        return "clones-web: a Guacamole recording without its <id>.events.json"
    suffix = Path(name).suffix or "(no extension)"
    return f"no format reads {suffix} files"


def formats_help() -> str:
    """The supported formats and what each reads, one per line (for a run that found none)."""
    return "\n".join(f"  {name}: {what}" for name, what in EXPECTS.items())


__all__ = ["owned", "explain", "formats_help", "EXPECTS"]
