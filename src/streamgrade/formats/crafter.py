"""BALROG Crafter episodes: ``<track>/<submission>/crafter/<task>/<task>_run_NN.json`` (the episode
summary) with ``<task>_run_NN.csv`` beside it (one row per step).

Source: the BALROG leaderboard (balrog-ai/experiments); schema in
../shared/corpus/crafter-balrog/PROVENANCE.md. The JSON holds ``{task, episode_return,
progression (0-1), achievements {name: count}, num_steps, done, input_tokens,
output_tokens, agent {type, ...}, client {model_id, ...}, failed_candidates, ...}``; the CSV
has columns ``Step, Observation, Action, Reasoning, Reward, Done`` (submissions up to
2024-11-03) or ``Step, Action, Reasoning, Observation, Reward, Done`` (from 2024-11-15); cells
may hold newlines and commas.
An episode JSON without its CSV (DeepSeek-R1 submissions have summaries only) is still a
session, with an empty transcript. The record's ``reward`` is ``episode_return`` (the sum of
step rewards; not confined to [0, 1]; ``progression`` is the 0-1 figure). Per-step
``Reward`` and ``Done`` are never put in the steps: judges never see the reward.

**What a row means** (balrog-ai/BALROG ``balrog/evaluator.py``, ``Evaluator.run_episode``
at 22c950ea and earlier): ``obs = env.reset()``; then per step ``response =
agent.act(obs)``, ``action = env.check_action_validity(response.completion)``, ``obs, reward,
... = env.step(action)``, and only then ``csv_writer.writerow([step, action, reasoning,
obs["text"]["long_term_context"], reward, done])``. So row N's Observation is the state
**after** Action N, and the observation the agent saw before Action N is row N-1's. The
reset observation (before Action 0) is never written, nor is the ``short_term_context``
(vitals and inventory, ``describe_inventory`` in ``balrog/environments/crafter/env.py``)
that BALROG's prompt builder (``balrog/prompt_builder/history.py``) puts before the
current observation. In the older CSVs (Observation second) Action is the validated action
(an invalid output became ``Noop``, the raw text going to ``failed_candidates``); in the
newer ones it is the raw completion, and BALROG ran ``Noop`` when it is not one of the 17
action names (``Strings.contains``: an exact match), optionally prefixing the next
observation with "Your previous output ... Defaulted to action: Noop" feedback. On the
corpus, the rows whose Action is not an action name equal ``len(failed_candidates)`` in
every newer episode.

**The steps**: a system step holding BALROG's Crafter instruction prompt
(:data:`INSTRUCTION_PROMPT`: the action list with descriptions, the 22 achievements and the
goal), then an environment step with the observation the agent saw before its first kept
action, then one agent step per kept action (the reasoning, then ``Action: <action>``; just
the action without reasoning) whose observation is what the agent saw next (the
observation before the next kept action, or the episode's final state). Action 0 has no
recorded observation before it, so it is left out (``meta["first_action"]`` keeps it).
Rows whose Action is no valid action (empty: shown as "(no valid action)", or not an action
name) are dropped with the observation before them unless ``[formats.crafter]
keep_invalid_actions`` is true (then kept, the agent step flagged ``extra =
{"invalid_action": True, "executed_action": "Noop"}``); the invalid-action feedback is
taken off an observation whose action is not in the trajectory. Every agent step has
``extra["step"]``: BALROG's Step number of its action.
``metrics["invalid_actions"]`` counts such rows, ``metrics["dropped_invalid_actions"]``
those left out (neither counts action 0); ``meta["invalid_actions"]`` has ``{empty,
unparsed, kept, unlocated}`` over all rows (``unlocated``: entries of ``failed_candidates``
with no row to point at, the older CSVs' hidden ``Noop`` fallbacks). ``failed_candidates``
that is not a list is ignored.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from pathlib import Path

from ..config import Config
from ..errors import InputError
from ..models import Observation, Session, SessionRef, Step
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

ACTIONS = (
    "Noop", "Move West", "Move East", "Move North", "Move South", "Do", "Sleep", "Place Stone",
    "Place Table", "Place Furnace", "Place Plant", "Make Wood Pickaxe", "Make Stone Pickaxe",
    "Make Iron Pickaxe", "Make Wood Sword", "Make Stone Sword", "Make Iron Sword",
)
"""BALROG's Crafter action names, in its order (``ACTIONS`` in balrog-ai/BALROG
``balrog/environments/crafter/env.py``); an output is a valid action only if it is one of
them exactly."""

INSTRUCTION_PROMPT = """\
You are an agent playing Crafter. The following are the only valid actions you can take in the game, followed by a short description of each action:

Noop: do nothing,
Move West: move west on flat ground,
Move East: move east on flat ground,
Move North: move north on flat ground,
Move South: move south on flat ground,
Do: Multiuse action to collect material, drink from lake and hit creature in front,
Sleep: sleep when energy level is below maximum,
Place Stone: place a stone in front,
Place Table: place a table,
Place Furnace: place a furnace,
Place Plant: place a plant,
Make Wood Pickaxe: craft a wood pickaxe with a nearby table and wood in inventory,
Make Stone Pickaxe: craft a stone pickaxe with a nearby table, wood, and stone in inventory,
Make Iron Pickaxe: craft an iron pickaxe with a nearby table and furnace, wood, coal, and iron in inventory,
Make Wood Sword: craft a wood sword with a nearby table and wood in inventory,
Make Stone Sword: craft a stone sword with a nearby table, wood, and stone in inventory,
Make Iron Sword: craft an iron sword with a nearby table and furnace, wood, coal, and iron in inventory.

These are the game achievements you can get:
1. Collect Wood
2. Place Table
3. Eat Cow
4. Collect Sampling
5. Collect Drink
6. Make Wood Pickaxe
7. Make Wood Sword
8. Place Plant
9. Defeat Zombie
10. Collect Stone
11. Place Stone
12. Eat Plant
13. Defeat Skeleton
14. Make Stone Pickaxe
15. Make Stone Sword
16. Wake Up
17. Place Furnace
18. Collect Coal
19. Collect Iron
20. Make Iron Pickaxe
21. Make Iron Sword
22. Collect Diamond

In a moment I will present a history of actions and observations from the game.
Your goal is to get as far as possible by completing all the achievements.

PLAY!"""
"""The instruction BALROG gives a Crafter agent (``get_instruction_prompt`` in
``balrog/environments/crafter/__init__.py``, the text its action descriptions and list of
achievements expand to; the same for every task). BALROG (MIT licence, (c) the BALROG
authors, github.com/balrog-ai/BALROG) sends it as the first message of every prompt, in the
user role; here it is the system step. The balrog-ai copy of that file is not in our source
index: the text is the one of its forks synth-laboratories/BALROG (fba89e2b) and
suning-git/BALROG_expt (0d736df9), "Collect Sampling" (sic) included; one later copy reads
"Collect Sapling". BALROG also appends an agent-specific answer instruction to the latest
observation (naive: "You always have to output one of the above actions at a time and no
other text. ..."); the CSV does not say which version ran, so it is not added."""

NO_VALID_ACTION = "(no valid action)"
FEEDBACK_RE = re.compile(r"\A\s*Your previous output\b.*?\bDefaulted to action: [^\n]*\n(?:\nObservation:\n)?", re.S)
"""BALROG's invalid-action feedback before an observation (``feedback_on_invalid_action``),
in the corpus's two wordings: "\\n\\nYour previous output did not contain a valid action.
Defaulted to action: Noop\\n\\nObservation:\\n" (2025 runs) and "\\n\\nYour previous
output action: '<the output, which may span lines>' is not a valid action. Defaulted to
action: Noop\\n" (2024-11 to 2025-01 runs)."""

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
        rows: list[_Row] = []
        if csv_path.is_file():
            rows = _read_csv(csv_path)
        keep = config.formats.crafter.keep_invalid_actions
        steps, first_action = episode_steps(rows, keep_invalid=keep)
        invalid = [r for r in rows[1:] if not r.valid]
        dropped = 0 if keep else len(invalid)
        located = sum(not r.valid for r in rows)
        failed = doc.get("failed_candidates")
        if rows:
            metrics["invalid_actions"] = float(len(invalid))
            metrics["dropped_invalid_actions"] = float(dropped)
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
            "csv_rows": len(rows),
        }
        if rows:
            meta["first_action"] = first_action
            meta["invalid_actions"] = {
                "empty": sum(not r.action.strip() for r in rows),
                "unparsed": sum(bool(r.action.strip()) and not r.valid for r in rows),
                "kept": keep,
                "unlocated": max(0, len(failed) - located) if isinstance(failed, list) else None,
            }
        if len(rows) > MAX_ROWS_NOTE:
            meta["long_transcript"] = f"{len(rows)} CSV rows (> {MAX_ROWS_NOTE}); all kept"
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


@dataclass(frozen=True)
class _Row:
    """One CSV row: ``action`` the Action cell as written (the raw completion in the newer
    CSVs), ``reasoning``, ``observation`` (the state after the action), ``step`` BALROG's
    Step number (the row's index when the cell is not an integer)."""

    step: int
    action: str
    reasoning: str
    observation: str

    @property
    def valid(self) -> bool:
        """Whether BALROG ran this action (an exact action name), not its Noop fallback."""
        return self.action in ACTIONS

    def agent_text(self) -> str:
        """The assistant turn: the reasoning, then ``Action: <action>``; the action alone
        without reasoning; :data:`NO_VALID_ACTION` for an empty action."""
        action = self.action.strip() or NO_VALID_ACTION
        reasoning = self.reasoning.strip()
        return f"{reasoning}\nAction: {action}" if reasoning else action


def episode_steps(rows: list[_Row], *, keep_invalid: bool = False) -> tuple[list[Step], str | None]:
    """The steps of an episode's rows (see the module docstring) and the text of its first
    action (which has no recorded observation before it, so is not a step), or ([], None)
    for no rows. The observation shown before a kept action with index i is row j's, j the
    index just before i (i - 1 when no row between is dropped): what the agent saw."""
    if not rows:
        return [], None
    kept = [i for i in range(1, len(rows)) if keep_invalid or rows[i].valid]
    shown = set(kept)

    def seen(j: int) -> str:
        """Row j's observation (after action j); without the invalid-action feedback when
        action j is not in the trajectory (the feedback would answer a turn not shown)."""
        text = rows[j].observation
        return text if j in shown else FEEDBACK_RE.sub("", text, count=1)

    steps = [Step(source="system", message=INSTRUCTION_PROMPT)]
    before_first = kept[0] - 1 if kept else len(rows) - 1
    steps.append(Step(source="environment", message=seen(before_first)))
    for k, i in enumerate(kept):
        nxt = kept[k + 1] - 1 if k + 1 < len(kept) else len(rows) - 1
        r = rows[i]
        extra: dict = {"step": r.step}
        if not r.valid:
            extra.update(invalid_action=True, executed_action="Noop")
        steps.append(Step(source="agent", message=r.agent_text(), observations=[Observation(content=seen(nxt))],
                          extra=extra))
    return steps, rows[0].agent_text()


def _read_csv(path: Path) -> list[_Row]:
    """The rows of a step CSV. InputError naming the line of a row that lacks a column (the
    line is where the row starts; cells may span lines). Lines are physical
    ``\\n``-terminated lines: the text is split only at ``\\n`` (a stream with
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
    out: list[_Row] = []
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
        cell = row[idx["Step"]].strip() if "Step" in idx else ""
        out.append(_Row(step=int(cell) if cell.isdigit() else len(out), action=row[idx["Action"]],
                        reasoning=row[idx["Reasoning"]] if "Reasoning" in idx else "",
                        observation=row[idx["Observation"]]))
    return out
