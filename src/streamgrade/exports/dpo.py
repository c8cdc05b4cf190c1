"""Preference pairs from runs of the same task, in TRL's conversational shape (``dpo``) and
in OpenAI's preference fine-tuning shape (``openai-dpo``).

Which runs pair: runs of one task (:func:`group_key`: by default the same source format,
task id (else task text) and model; ``[exports] dpo_group_by`` changes the fields). Every
two runs of a task are a candidate pair; :func:`.pairs.rank` says which side is chosen
(ground-truth reward first, ``--rank-by``) and :func:`.pairs.cut` where the pair is cut
(``--pairs step|trajectory``). Both sides always share one prompt: the runs' shared prefix.
Candidates that give the same pair again are dropped as duplicates, and pairs of a task
that rank the same two turns both ways (after the same prompt) are dropped as
contradicting. Every dropped candidate is counted with its reason.

TRL (``trl`` 1.16 ``DPOTrainer``; its ``tokenize_fn`` in trl/trainer/dpo_trainer.py renders
``prompt`` with ``add_generation_prompt=True`` and ``prompt + chosen`` / ``prompt +
rejected`` with the chat template and the row's ``tools`` (a list, or a JSON string it
``json.loads``), and scores every token after the prompt)::

    {"prompt": [messages], "chosen": [messages], "rejected": [messages],
     "tools"?: [the source's tool list], "metadata"?: {"chosen": {...}, "rejected": {...},
     "pair": {"mode", "ranked_by", "diverge_at", "turn"}},
     "chosen_train"?: [bool], "rejected_train"?: [bool]}

- step rows: ``chosen`` and ``rejected`` are one assistant message each.
- trajectory rows (ETO-style trajectory preference: Song et al. 2024, "Trial and Error:
  Exploration-Based Trajectory Optimization for LLM Agents", ACL; their
  construct_preference.py in Yifan-Song793/ETO pairs whole continuations after a shared
  prompt, each ending on the model's turn, and their trainer masks the other turns): each
  side is its whole continuation, with the environment's and the user's turns inside it.
  ``chosen_train`` / ``rejected_train`` hold one flag per message of ``chosen`` /
  ``rejected``: true for the model's (assistant) turns, which a trainer scores, false for
  user, tool and system turns, which it must mask. TRL's DPOTrainer 1.16 has no such mask
  (it scores the whole completion), so a trainer needs either these flags or the token mask
  that ``apply_chat_template(..., return_assistant_tokens_mask=True)`` gives with a chat
  template holding ``{% generation %}`` markers (TRL ships such templates,
  trl/chat_templates/*_training.jinja; SFTTrainer's ``assistant_only_loss`` uses them). A
  continuation may start with a user or tool turn (the runs diverged there: another seed,
  a reworded user line); the prompt rendered with its generation prompt is then not a
  prefix of prompt + side, and TRL starts the completion where the two token sequences
  part (``common_prefix_length``) with a one-time warning. Such a prompt may end on a
  system message (only the system prompt is shared: tau-bench, Crafter): DPOTrainer's text
  path takes it, but TRL's ``apply_chat_template`` helper (trl/data_utils.py, used to
  pre-render rows and by the vision collator) refuses a prompt whose last role is system.
- ``tools``: the union of both runs' source lists (:class:`.tools.SourceTools`), present
  whenever the source declares or calls tools.
- ``metadata`` (not with ``--no-metadata``): :func:`.training.row_metadata` of each side,
  and how the pair was made: ``mode``, ``ranked_by`` (reward, score, or "score, rewards
  equal"), ``diverge_at`` (the prompt's length in messages) and ``turn`` (the 1-based
  assistant turn at the divergence).

OpenAI (fine-tuning guide "Direct preference optimization" and the API reference's
preference input: ``{"input": {"messages", "tools"?, "parallel_tool_calls"?},
"preferred_output": [one assistant message], "non_preferred_output": [one assistant
message]}``, the guide's shape; one assistant message per side, so only step pairs; OpenAI
rejects unknown keys, so no metadata): the input follows the strict chat rules of
:mod:`.openai_sft`, and :func:`check_openai_dpo` checks every row before it is written.

Memory stays flat: each run adds one row (group key, id, folder, record) to a private
temporary SQLite table on disk, and the pairs are made one task at a time from one ordered
query, so a pass holds one task's runs, never all of them.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

from .filters import ExportFilter
from .openai_sft import _row_tools, check_openai_sft, to_openai_sft
from .pairs import Cut, Mode, PairError, RankBy, canon, cut, digest, rank, side_messages
from .store import GradedSession, Sessions, fill, load_graded
from .tools import SourceTools, calls_of, source_key
from .training import Built, Rejections, chat_messages, row_metadata

#: A pairwise preference between two runs of one task: (0 or 1: the chosen run, how it
#: was decided); raises PairError when there is none (see :mod:`.pairwise_rank`).
Prefer = Callable[[GradedSession, GradedSession], tuple[int, str]]

#: Fields a task group may be keyed on (``[exports] dpo_group_by``).
GROUP_FIELDS = ("source_format", "source_dir", "source_file", "task_id", "task", "model", "agent")
DEFAULT_GROUP_BY = ("source_format", "task_id", "model")


def group_key(gs: GradedSession, fields: tuple[str, ...] | list[str] = DEFAULT_GROUP_BY) -> tuple[str, ...]:
    """The task of a run: ``fields`` of its record (``task_id`` falls back on the task text;
    ``source_dir`` / ``source_file`` are the folder / path of its source)."""
    rec = gs.record
    path = str(rec.get("source_path") or "")
    values = {"source_format": rec.get("source_format"), "source_dir": os.path.dirname(path),
              "source_file": path, "task_id": rec.get("task_id") or gs.task, "task": gs.task,
              "model": rec.get("model"), "agent": rec.get("agent")}
    return tuple(str(values[f] or "") for f in fields)


class TaskGroups:
    """Runs grouped by task on disk (see the module docstring): :meth:`add` each run, then
    iterate (key, runs) in key order, each run holding its record (messages not loaded)."""

    _SEP = "\x1f"

    def __init__(self, fields: tuple[str, ...] | list[str] = DEFAULT_GROUP_BY) -> None:
        bad = [f for f in fields if f not in GROUP_FIELDS]
        if bad or not fields:
            raise ValueError(f"dpo_group_by: unknown fields {bad}; choose from {', '.join(GROUP_FIELDS)}")
        self.fields = tuple(fields)
        self.db = sqlite3.connect("")
        self.db.execute("CREATE TABLE r (key TEXT, id TEXT, folder TEXT, stored INTEGER, record TEXT)")
        self._rows: list[tuple[str, str, str, int, str]] = []

    def add(self, gs: GradedSession) -> None:
        self._rows.append((self._SEP.join(group_key(gs, self.fields)), gs.session_id, str(gs.folder or ""),
                           int(gs.stored), json.dumps(gs.record)))
        if len(self._rows) >= 1000:
            self._flush()

    def _flush(self) -> None:
        self.db.executemany("INSERT INTO r VALUES (?, ?, ?, ?, ?)", self._rows)
        self._rows.clear()

    def __iter__(self) -> Iterator[tuple[tuple[str, ...], list[GradedSession]]]:
        self._flush()
        try:
            rows = self.db.execute("SELECT key, id, folder, stored, record FROM r ORDER BY key, id")
            for key, group in itertools.groupby(rows, key=lambda row: row[0]):
                yield tuple(key.split(self._SEP)), [
                    GradedSession(sid, json.loads(rec), folder=Path(folder) if folder else None, stored=bool(stored))
                    for _, sid, folder, stored, rec in group]
        finally:
            self.db.close()


class PairGrouper:
    """The runs of the preference pairs, grouped by task as they come (:meth:`add` each
    graded session with its record and task): the ``[exports]`` filter ``flt`` rejects some
    (counted in ``rejected``, the format's :class:`~.training.Rejections`); the others go
    into ``groups`` (:class:`TaskGroups`); ``considered`` counts them all."""

    def __init__(self, flt: ExportFilter, group_by: tuple[str, ...] | list[str], rejected: Rejections):
        self.flt = flt
        self.groups = TaskGroups(group_by)
        self.considered = 0
        self.rejected = rejected

    def add(self, gs: GradedSession) -> None:
        self.considered += 1
        reason = self.flt.reject_reason(gs.record)
        if reason:
            self.rejected.add(gs.session_id, reason)
        else:
            self.groups.add(gs)


def pair_tools(tools: SourceTools, sides: list[GradedSession], messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The tool list of a pair: the union, by name, of both runs' source lists (plus any
    function ``messages`` call that they lack); empty when neither source has tools."""
    out: dict[str, dict[str, Any]] = {}
    for gs in sides:
        key = source_key(gs.record)
        if tools.declared.get(key) or tools.called.get(key) or calls_of(messages):
            for t in tools.tools_for(key, messages):
                out.setdefault(t["function"]["name"], t)
    return [out[n] for n in sorted(out)]


def trl_row(prompt: list[dict[str, Any]], chosen: list[dict[str, Any]], rejected: list[dict[str, Any]],
            tools: list[dict[str, Any]], mode: Mode) -> dict[str, Any]:
    """A TRL conversational preference row (see the module docstring), without metadata."""
    row: dict[str, Any] = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if tools:
        row["tools"] = tools
    if mode == "trajectory":
        row["chosen_train"] = [m.get("role") == "assistant" for m in chosen]
        row["rejected_train"] = [m.get("role") == "assistant" for m in rejected]
    return row


def openai_row(prompt: list[dict[str, Any]], chosen: dict[str, Any], rejected: dict[str, Any],
               tools: list[dict[str, Any]]) -> dict[str, Any]:
    """An OpenAI preference row of one step pair (see the module docstring); PairError when
    the strict rules leave no valid row."""
    c, r = to_openai_sft(prompt + [chosen], tools), to_openai_sft(prompt + [rejected], tools)
    if c is None or r is None or len(c["messages"]) < 2:
        raise PairError("invalid OpenAI preference row (strict rules): no assistant turn left")
    cm, rm = c["messages"], r["messages"]
    if cm[:-1] != rm[:-1]:
        raise PairError("invalid OpenAI preference row (strict rules): a side says and calls nothing")
    listed = {t["function"]["name"]: t for t in _row_tools(tools, {}) + c.get("tools", []) + r.get("tools", [])}
    inp: dict[str, Any] = {"messages": cm[:-1]}
    if listed:
        inp["tools"] = [listed[n] for n in sorted(listed)]
    row = {"input": inp, "preferred_output": [cm[-1]], "non_preferred_output": [rm[-1]]}
    problems = check_openai_dpo(row)
    if problems:
        raise PairError(f"invalid OpenAI preference row (strict rules): {'; '.join(problems[:3])}")
    return row


def check_openai_dpo(row: dict[str, Any]) -> list[str]:
    """The rules an OpenAI preference row breaks (empty when it passes): keys ``input``,
    ``preferred_output``, ``non_preferred_output`` only; input keys ``messages``, ``tools``,
    ``parallel_tool_calls``; one assistant message per output; input + each output obeys
    the strict chat rules of :func:`.openai_sft.check_openai_sft`."""
    problems = []
    extra = set(row) - {"input", "preferred_output", "non_preferred_output"}
    if extra:
        problems.append(f"unknown top-level keys {sorted(extra)}")
    inp = row.get("input")
    if not isinstance(inp, dict) or not isinstance(inp.get("messages"), list) or not inp["messages"]:
        return problems + ["input has no messages"]
    if set(inp) - {"messages", "tools", "parallel_tool_calls"}:
        problems.append(f"unknown input keys {sorted(set(inp) - {'messages', 'tools', 'parallel_tool_calls'})}")
    for side in ("preferred_output", "non_preferred_output"):
        out = row.get(side)
        if not (isinstance(out, list) and len(out) == 1 and isinstance(out[0], dict) and out[0].get("role") == "assistant"):
            problems.append(f"{side} is not one assistant message")
            continue
        chat = {"messages": inp["messages"] + out, **({"tools": inp["tools"]} if "tools" in inp else {})}
        problems += [f"{side}: {p}" for p in check_openai_sft(chat)]
    return problems


def write_pairs(out: "str | Path | Sessions", fmt: str, write: Callable[[dict[str, Any]], None], built: Built, *,
                tools: SourceTools, flt: ExportFilter, mode: Mode = "step", rank_by: RankBy = "reward",
                min_gap: float = 10.0, metadata: bool = True,
                group_by: tuple[str, ...] | list[str] = DEFAULT_GROUP_BY,
                prefer: Prefer | None = None, grouped: "PairGrouper | None" = None) -> int:
    """Write the ``fmt`` (dpo or openai-dpo) pairs of the graded runs under ``out`` with
    ``write``, counting rows and dropped candidates (with reasons) in ``built``; the
    ``[exports]`` filters ``flt`` choose the runs (the SFT pass rule does not apply: a
    rejected side fails by design). openai-dpo is always ``step``. ``rank_by`` "pairwise"
    (opt-in, needs ``prefer``, e.g. :func:`.pairwise_rank.pairwise_preferer`): where both
    runs have different rewards the reward decides; otherwise ``prefer(a, b)`` (an LLM
    judge asked in both orders) returns (0 or 1, how) or raises PairError for a tie.
    ``grouped``: the runs already grouped by a :class:`PairGrouper` fed in another pass
    (the training files' first pass), so the sessions are not read once more. Returns the
    runs considered."""
    if fmt not in ("dpo", "openai-dpo"):
        raise ValueError(f"not a preference format: {fmt!r}")
    if mode not in ("step", "trajectory"):
        raise ValueError(f"dpo_pairs: {mode!r} is not step or trajectory")
    if rank_by not in ("reward", "score", "pairwise"):
        raise ValueError(f"dpo_rank_by: {rank_by!r} is not reward, score or pairwise")
    if rank_by == "pairwise" and prefer is None:
        raise ValueError("rank_by pairwise needs a pairwise judge (prefer)")
    if fmt == "openai-dpo":
        mode = "step"
    if not isinstance(out, Sessions):
        with Sessions(out) as sessions:
            return write_pairs(sessions, fmt, write, built, tools=tools, flt=flt, mode=mode, rank_by=rank_by,
                               min_gap=min_gap, metadata=metadata, group_by=group_by, prefer=prefer, grouped=grouped)
    if grouped is None:
        grouped = PairGrouper(flt, group_by, built.rejected)
        for gs in load_graded(out, with_messages=False, with_task=True):
            grouped.add(gs)
    groups, considered = grouped.groups, grouped.considered
    for key, runs in groups:
        _task_pairs(out, fmt, _label(key), runs, write, built, tools=tools,
                    mode=mode, rank_by=rank_by, min_gap=min_gap, metadata=metadata, prefer=prefer)
    return considered


def _label(key: tuple[str, ...]) -> str:
    """A task key as one short line for the report (a long task text is cut at 60 chars)."""
    parts = [" ".join(k.split()) for k in key if k]
    return " / ".join(p if len(p) <= 60 else p[:57] + "..." for p in parts) or "(no task)"


def _task_pairs(out: Sessions, fmt: str, label: str, runs: list[GradedSession], write: Callable[[dict[str, Any]], None],
                built: Built, *, tools: SourceTools, mode: Mode, rank_by: RankBy, min_gap: float, metadata: bool,
                prefer: Prefer | None = None) -> None:
    """The pairs of one task (its runs' messages are in memory only here)."""
    if len(runs) < 2:
        built.rejected.add(label, "a task with one graded run gives no pair")
        return
    loaded = []
    for gs in runs:
        if not fill(out, gs):
            built.rejected.add(f"{label}: {gs.session_id}", "a run's files missing or broken")
        elif not any(m.get("role") == "assistant" for m in gs.messages):
            built.rejected.add(f"{label}: {gs.session_id}", "a run has no assistant turn (no pair with it)")
        else:
            loaded.append(gs)
    msgs = [chat_messages(gs) for gs in loaded]
    keys = [canon(m) for m in msgs]
    cands: list[tuple[int, int, Cut, str, str]] = []
    for i, j in itertools.combinations(range(len(loaded)), 2):
        what = f"{label}: {loaded[i].session_id} vs {loaded[j].session_id}"
        try:  # where they diverge first (it does not depend on the order), then which side wins
            ct = cut(keys[i], keys[j], mode)
            if rank_by == "pairwise":
                w, how = _pairwise(loaded[i], loaded[j], prefer)  # type: ignore[arg-type]
            else:
                w, how = rank(loaded[i].record, loaded[j].record, rank_by, min_gap)
            if w == 0:
                cands.append((i, j, ct, how, what))
            else:
                cands.append((j, i, Cut(ct.at, ct.rejected_end, ct.chosen_end, ct.turn), how, what))
        except PairError as exc:
            built.rejected.add(what, str(exc))
    for c, r, ct, how, what in _unique(cands, keys, built):
        try:
            prompt, chosen = side_messages(msgs[c], ct, ct.chosen_end)
            _, rejected = side_messages(msgs[r], ct, ct.rejected_end)
            row_tools = pair_tools(tools, [loaded[c], loaded[r]], prompt + chosen + rejected)
            if fmt == "openai-dpo":
                row = openai_row(prompt, chosen[0], rejected[0], row_tools)
            else:
                row = trl_row(prompt, chosen, rejected, row_tools, mode)
                if metadata:
                    row["metadata"] = {"chosen": row_metadata(loaded[c].record), "rejected": row_metadata(loaded[r].record),
                                       "pair": {"mode": mode, "ranked_by": how, "diverge_at": ct.at, "turn": ct.turn}}
        except PairError as exc:
            built.rejected.add(what, str(exc))
            continue
        write(row)
        built.rows += 1


def _pairwise(a: GradedSession, b: GradedSession, prefer: Prefer) -> tuple[int, str]:
    """Rewards first when both runs have different ones; else the pairwise judge."""
    try:
        return rank(a.record, b.record, "reward", min_gap=math.inf)
    except PairError:
        return prefer(a, b)


def _unique(cands: list[tuple[int, int, Cut, str, str]], keys: list[list[Any]],
            built: Built) -> Iterator[tuple[int, int, Cut, str, str]]:
    """The candidates of a task less duplicates (the same prompt, chosen and rejected again)
    and contradictions (the same two sides after the same prompt, ranked both ways)."""
    sig = []
    for c, r, ct, _, _ in cands:
        sig.append((digest(keys[c][: ct.at]), digest(keys[c][ct.at: ct.chosen_end]),
                    digest(keys[r][ct.at: ct.rejected_end])))
    orientations: dict[tuple[str, frozenset[str]], set[str]] = {}
    for p, x, y in sig:
        orientations.setdefault((p, frozenset((x, y))), set()).add(x)
    seen: set[tuple[str, str, str]] = set()
    for cand, (p, x, y) in zip(cands, sig):
        if len(orientations[(p, frozenset((x, y)))]) > 1:
            built.rejected.add(cand[4], "contradicted by another pair (the same two sides ranked the other "
                                        "way after the same prompt)")
        elif (p, x, y) in seen:
            built.rejected.add(cand[4], "duplicate of another pair (the same prompt and sides)")
        else:
            seen.add((p, x, y))
            yield cand


__all__ = ["GROUP_FIELDS", "DEFAULT_GROUP_BY", "PairError", "TaskGroups", "group_key", "pair_tools", "trl_row",
           "openai_row", "check_openai_dpo", "write_pairs"]
