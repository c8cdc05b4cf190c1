"""BALROG Crafter episodes: ``<track>/<submission>/crafter/<task>/<task>_run_NN.json`` (the episode
summary) with ``<task>_run_NN.csv`` beside it (one row per step).

Source: the BALROG leaderboard (balrog-ai/experiments); schema in
../shared/corpus/crafter-balrog/PROVENANCE.md. The JSON holds ``{task, episode_return,
progression (0-1), achievements {name: count}, num_steps, done, input_tokens,
output_tokens, agent {type, ...}, client {model_id, ...}, ...}``; the CSV has columns
``Step, Observation, Action, Reasoning, Reward, Done`` (cells may hold newlines and commas).
An episode JSON without its CSV (DeepSeek-R1 submissions have summaries only) is still a
session, with an empty transcript. ``failed_candidates`` only feeds ``meta``'s
``n_failed_candidates`` (its length): a value that is not a list is ignored (None), not an
error.

The transcript alternates a user message (the observation text) and an assistant message
(the reasoning, then ``Action: <action>``; just the action when there is no reasoning) per
CSV row. The record's ``reward`` is ``episode_return`` (the sum of step rewards; it is not
confined to [0, 1]; ``progression`` is the 0-1 figure).
"""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from ..config import Config
from ..errors import InputError
from ..models import Session, SessionRef, Step
from .base import check_utf8, load_json, read_bytes, require
from .mapping import chat_view

NAME = "balrog-crafter"
RUN_RE = re.compile(r"^.+_run_\d+\.json$")
COLUMNS = ("Step", "Observation", "Action", "Reasoning", "Reward", "Done")
MAX_ROWS_NOTE = 2000
MAX_EPISODE_STEPS = 10000  # Crafter's default episode length
N_ACHIEVEMENTS = 22

GOAL = (
    "survive in an open 2D world (keep health, food, drink and energy up; avoid or defeat "
    "zombies and skeletons) and unlock as many of the 22 achievements as possible (collect "
    "wood, place a table, make pickaxes and swords, mine stone, coal, iron and diamond, ...)"
)

csv.field_size_limit(1 << 30)


def _submission_name(folder: Path) -> str:
    """``<track>.<date>_<agent>``: the submission folder (the parent of the ``crafter``
    folder above the episode, else the episode folder's grandparent) prefixed by its parent
    (LLM or VLM: the same submission name exists in both tracks)."""
    for p in (folder, *folder.parents):
        if p.name == "crafter":
            sub = p.parent
            break
    else:
        sub = folder.parent.parent
    return f"{sub.parent.name}.{sub.name}" if sub.parent.name else sub.name


class CrafterEpisode:
    """A BALROG Crafter episode (see module docstring)."""

    name = NAME

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """Each ``*_run_NN.json`` in ``folder`` is one episode; its files are the JSON and the
        CSV of the same stem (which may be absent)."""
        folder = Path(folder)
        out = []
        sub = None
        for n in sorted(names):
            if not RUN_RE.match(n):
                continue
            sub = sub or _submission_name(folder)
            stem = n[: -len(".json")]
            files = (str(folder / n), str(folder / f"{stem}.csv"))
            out.append(SessionRef(session_id=f"{sub}.{stem}", format=NAME, path=str(folder / n), files=files))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the episode JSON and, when present, its CSV. Raises InputError naming the file
        and the field, or the CSV line, of bad input."""
        path = ref.path
        doc = load_json(path)
        if not isinstance(doc, dict):
            raise InputError(path, "expected a JSON object")
        ret = float(require(doc, "episode_return", (int, float), path))
        metrics: dict[str, float] = {"episode_return": ret}
        prog = doc.get("progression")
        if prog is not None:
            if not isinstance(prog, (int, float)) or isinstance(prog, bool):
                raise InputError(path, f"expected a number, got {type(prog).__name__}", field="progression")
            metrics["progression"] = float(prog)
        ach = doc.get("achievements")
        unlocked: list[str] = []
        if ach is not None:
            if not isinstance(ach, dict):
                raise InputError(path, "expected an object", field="achievements")
            unlocked = sorted(k for k, v in ach.items() if isinstance(v, (int, float)) and v > 0)
            metrics["achievements"] = float(len(unlocked))
        for k in ("num_steps", "input_tokens", "output_tokens"):
            v = doc.get(k)
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                metrics[k] = float(v)
        done = doc.get("done")
        num_steps = doc.get("num_steps")
        if done is True:
            termination = "max_steps" if isinstance(num_steps, int) and num_steps >= MAX_EPISODE_STEPS else "done"
        else:
            termination = "unknown"
        agent = doc.get("agent") if isinstance(doc.get("agent"), dict) else {}
        client = doc.get("client") if isinstance(doc.get("client"), dict) else {}
        task_name = doc.get("task") if isinstance(doc.get("task"), str) else "default"

        csv_path = Path(path).with_suffix(".csv")
        steps: list[Step] = []
        rows = 0
        if csv_path.is_file():
            steps, rows = _read_csv(csv_path)
        meta = {
            "task": task_name,
            "submission": ref.session_id.rsplit(".", 1)[0].split(".", 1)[-1],
            "seed": doc.get("seed"),
            "score": doc.get("score"),
            "done": done,
            "unlocked": unlocked,
            "action_frequency": doc.get("action_frequency"),
            # informational only: a value that is not a list (or null) is ignored (None)
            "n_failed_candidates": _count(doc.get("failed_candidates")),
            "client": client.get("client_name"),
            "has_csv": csv_path.is_file(),
            "csv_rows": rows,
        }
        if rows > MAX_ROWS_NOTE:
            meta["long_transcript"] = f"{rows} CSV rows (> {MAX_ROWS_NOTE}); all kept"
        return Session(
            ref=ref,
            task=f"Crafter: {task_name}. Goal: {GOAL}.",
            reward=ret,
            kind="episode",
            task_id=f"crafter/{task_name}",
            trial=Path(path).stem,
            agent=agent.get("type") if isinstance(agent.get("type"), str) else None,
            model=client.get("model_id") if isinstance(client.get("model_id"), str) else None,
            steps=steps,
            transcript=chat_view(steps),
            termination=termination,
            metrics=metrics,
            meta=meta,
        )


def _count(value: object) -> int | None:
    """The length of a list; 0 for None; None for anything else."""
    if value is None:
        return 0
    return len(value) if isinstance(value, list) else None


def _read_csv(path: Path) -> tuple[list[Step], int]:
    """The steps of a step CSV (the observation as a user step, the action as an agent
    step with its reasoning) and its row count. InputError naming the line of a row
    that lacks a column (the line is where the row starts; cells may span lines). Lines are
    physical ``\\n``-terminated lines: the text is split only at ``\\n`` (a stream with
    ``newline="\\n"``), never at ``\\r``, ``\\x0b``, ``\\x0c``, ``\\x1c``-``\\x1e``,
    ``\\x85``, U+2028 or U+2029 inside a cell (a lone ``\\r`` outside quotes is a CSV error
    on its line)."""
    data = read_bytes(path)
    check_utf8(path, data)
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline="\n"))
    try:
        header = next(reader)
    except StopIteration:
        raise InputError(str(path), "file is empty") from None
    except csv.Error as exc:
        raise InputError(str(path), f"invalid CSV: {exc}", line=1) from None
    header = [h.strip().lstrip("\ufeff") for h in header]
    missing = [c for c in ("Observation", "Action") if c not in header]
    if missing:
        raise InputError(str(path), f"header lacks column(s) {', '.join(missing)}", line=1)
    idx = {c: header.index(c) for c in COLUMNS if c in header}
    out: list[Step] = []
    rows = 0
    line = reader.line_num + 1
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise InputError(str(path), f"invalid CSV: {exc}", line=line) from None
        start, line = line, reader.line_num + 1
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        if len(row) != len(header):
            raise InputError(str(path), f"row has {len(row)} columns, header has {len(header)}", line=start)
        # an empty Action is real data: the model's output held no valid action (Noop)
        action = row[idx["Action"]].strip() or "(no valid action)"
        reasoning = row[idx["Reasoning"]].strip() if "Reasoning" in idx else ""
        out.append(Step(source="user", message=row[idx["Observation"]]))
        out.append(Step(source="agent", message=f"{reasoning}\nAction: {action}" if reasoning else action))
        rows += 1
    return out, rows
