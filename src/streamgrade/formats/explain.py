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
from ._tau2_run import owned_names as tau2_owned
from .claude_code import owned_names as claude_owned
from .harbor import RESULT, TRAJECTORY, _inside_harbor_trial, _scan_file, atif_files, IS_ATIF
from . import inspect_ai
from .swebench_labels import run_files
from .terminal_bench import RESULTS as TB_RESULTS, run_files as tb_run_files
from .openhands import owned_beside as openhands_owned

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
    "swe-agent": "SWE-agent <instance>.traj (JSON; SWE-bench labels beside it give the reward)",
    "mini-swe-agent": "mini-swe-agent <instance>.traj.json (SWE-bench labels beside it give the reward)",
    "tau2": "a tau2-bench results .json (an object with tasks and simulations lists), or a dir-format "
            "run's results.json with simulations/<id>.json",
    "inspect-ai": "Inspect AI eval logs: <log>.eval (zip) or <log>.json, one session per sample and epoch",
    "terminal-bench": "a Terminal-Bench trial folder: results.json with sessions/agent.cast (or agent.log), panes/ or commands.txt",
    "claude-code": "Claude Code transcripts ~/.claude/projects/<project>/<session>.jsonl (subagents folded in)",
    "codex-cli": "Codex CLI rollouts ~/.codex/sessions/YYYY/MM/DD/rollout-*.jsonl",
    "openhands": "OpenHands evaluation output.jsonl rows (instance_id, metadata, history of events or [action, observation] pairs),"
                 " or a saved trajectory .json (a list of events)",
    "openhands-completions": "a folder of OpenHands LLM completion logs <model>-<epoch seconds>.json ({messages, response, kwargs})",
    "react-text": ".json/.jsonl rows holding ReAct text (Thought:/Action:/Observation: lines; FireAct trajs, Alpaca records, chat turns)",
    "ducktrack": "a folder with events.jsonl (time_stamp, action) and metadata.json (DuckTrack recordings)",
    "adp": ".json/.jsonl Agent Data Protocol trajectories {id, content: [{class_: ..._action|..._observation}], details}",
}

_HARBOR_JOB_FILES = ("result.json", "config.json", "job.log")


def owned(folder: Path, names: list[str]) -> set[str]:
    """Names in ``folder`` that belong to sessions without being found as one: ATIF
    continuation and subagent files, a Harbor job folder's own summary files
    (``result.json``, ``config.json``, ``job.log`` beside its trial folders), an agent
    run's labels, predictions, configs, patches and logs beside its SWE-agent or
    mini-swe-agent trajectories (:func:`.swebench_labels.run_files`), and tau2-bench
    results files that hold no simulation (none run yet; a dir-format run's results.json),
    Inspect AI logs without samples yet (a running eval), a Terminal-Bench run folder's
    ``results.json`` and ``run_metadata.json``, Claude Code subagent transcripts,
    summary-only files and ``tool-results/`` files, and the files an OpenHands evaluation
    writes beside its output rows and in its log folders
    (:func:`~streamgrade.formats.openhands.owned_beside`), and an ADP dataset folder's
    config (``metadata.json``, ``schema_raw.json``)."""
    out: set[str] = (run_files(folder, names) | set(tau2_owned(folder, names)) | inspect_ai.owned(folder, names)
                     | tb_run_files(folder, names) | openhands_owned(folder, names) | adp.owned_config(folder, names))
    if folder.name == "tool-results" or any(n.endswith(".jsonl") for n in names):
        out |= claude_owned(folder, names)
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
    reasons = ["openai-chat: no row holds a messages list", "trace-rows: no row has trial_name and episode",
               "tau2: not an object with tasks and simulations lists",
               "openhands: no row holds an OpenHands history"]
    if path.suffix == ".json" and _scan_file(str(path))[0] != IS_ATIF:
        reasons.append("atif: no ATIF schema_version")
    if path.suffix == ".json":
        reasons.append("inspect-ai: does not start with a log's version and eval")
    return ["JSON without session rows (" + "; ".join(reasons) + ")"]


def explain(folder: Path, name: str, names: list[str]) -> str:
    """Why no format took ``folder/name`` (a regular file), in one line."""
    path = Path(folder) / name
    low = name.lower()
    if low.endswith(".traj"):
        return "swe-agent: a .traj file that does not start like JSON"
    if low.endswith(".traj.json"):
        return "mini-swe-agent: a .traj.json file that does not start like JSON"
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
        if name == TB_RESULTS:
            return "terminal-bench: results.json without sessions/, panes/ or commands.txt beside it (not a trial folder)"
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
