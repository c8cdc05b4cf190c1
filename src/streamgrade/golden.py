"""Golden-path verification: a run's tool calls against a reference action sequence.

Where a benchmark ships a reference action sequence (ground truth), the reader keeps it in
:attr:`~streamgrade.models.Session.reference_actions` (never in the task, transcript, steps
or ``meta``, so no judge and no export sees it) and :func:`evaluate` compares the run with it
deterministically. The result goes to the record's own ``golden`` field, apart from the
blind judge's score.

References read (:func:`reference_actions` normalises both to ``{name, arguments,
requestor, compare_args}``):

- tau-bench (sierra-research/tau-bench): ``info.task.actions``, a list of ``{name, kwargs}``
  (``tau_bench/types.py`` ``Action``); tau-bench's own reward replays them on a fresh
  database and compares the data hash (``tau_bench/envs/base.py`` ``calculate_reward``).
- tau2-bench (sierra-research/tau2-bench): the task's ``evaluation_criteria.actions``,
  ``{action_id, requestor, name, arguments, info, compare_args}``
  (``src/tau2/data_model/tasks.py`` ``Action``); its ``ActionEvaluator``
  (``src/tau2/evaluator/evaluator_action.py``) checks that every reference action is matched
  by some tool call (``Action.compare_with_tool_call``: same name, the ``compare_args`` keys
  equal after parsing JSON-text values; every key when ``compare_args`` is None).

Metrics (after the trajectory matcher of swink-agent-eval, SuperSwinkAI/Swink-Agent
``eval/src/match_.rs``: exact, in-order and any-order golden-path modes):

- ``exact``: the run's call names equal the reference's, in the same order and number;
- ``in_order``: the reference's names are a subsequence of the run's (extra calls allowed);
- ``any_order``: every reference name is present, counted as a multiset;
- ``arg_agreement``: over the reference actions paired with a run call of the same name
  (one-to-one, chosen to pair as many as possible and then to maximise agreement), the mean
  share of compared keys whose values agree after :func:`normalise` (compared keys:
  ``compare_args`` when given, else the reference's argument keys; unlike tau2, which
  takes the call's keys when ``compare_args`` is None, so that a call missing a reference
  key disagrees). None when no reference action has a same-name call;
- ``precision`` / ``recall``: a run call matches a reference action when the names agree and
  every compared key agrees; the matching is one-to-one and of maximum size (optimal, by
  :func:`scipy.optimize.linear_sum_assignment`); precision = matched / run calls (None with
  no calls), recall = matched / reference actions (None with an empty reference);
- ``n_reference``, ``n_calls``, ``n_matched``.

Which calls count: the agent's (steps with source "agent", requestor "assistant"); the
simulated user's own calls (dual-control tau2 runs) only when some reference action has
requestor "user", and then a reference action matches only calls of its requestor.
Names, sequences and multisets use (requestor, name).
"""

from __future__ import annotations

import json
import logging
import re
from collections import Counter
from typing import Any

from .models import Session

log = logging.getLogger("streamgrade.golden")

_NUMBER = re.compile(r"^-?\d+(\.\d+)?([eE][-+]?\d+)?$")
_SPACE = re.compile(r"\s+")
FIELDS = ("exact", "in_order", "any_order", "arg_agreement", "precision", "recall", "n_reference", "n_calls", "n_matched")
"""The keys of :func:`evaluate`'s result, in order."""


def reference_actions(raw: Any) -> list[dict[str, Any]] | None:
    """A reference action list (tau-bench ``[{name, kwargs}]`` or tau2 ``[{name, arguments,
    requestor?, compare_args?, ...}]``) as ``[{name, arguments, requestor, compare_args}]``
    (``requestor`` "assistant" unless "user"; ``compare_args`` a list of keys or None).
    None when ``raw`` is None or malformed (not a list, an item without a string name, or
    arguments that are not an object), so that no partial reference is ever scored; an empty
    list is a reference (the task needs no call)."""
    if not isinstance(raw, list):
        return None
    out: list[dict[str, Any]] = []
    for a in raw:
        if not isinstance(a, dict) or not isinstance(a.get("name"), str) or not a["name"]:
            return None
        args = a.get("arguments", a.get("kwargs"))
        args = {} if args is None else args
        if not isinstance(args, dict):
            return None
        keys = a.get("compare_args")
        if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            return None
        out.append({"name": a["name"], "arguments": args,
                    "requestor": "user" if a.get("requestor") == "user" else "assistant", "compare_args": keys})
    return out


def normalise(value: Any) -> Any:
    """A value as compared: strings that hold JSON objects, arrays, numbers, booleans or null
    are parsed; numbers become floats (booleans stay apart from numbers); other strings are case-folded with their
    whitespace collapsed; objects and arrays are normalised item by item."""
    if isinstance(value, str):
        s = value.strip()
        if s[:1] in ("{", "[") or _NUMBER.match(s) or s in ("true", "false", "null"):
            try:
                return normalise(json.loads(s))
            except ValueError:
                pass
        return _SPACE.sub(" ", s).casefold()
    if isinstance(value, bool):
        return ("bool", value)  # True == 1.0 in Python: keep booleans apart from numbers
    if value is None:
        return value
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, dict):
        return {str(k): normalise(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [normalise(v) for v in value]
    return value


def run_calls(session: Session, with_user: bool) -> list[dict[str, Any]]:
    """The run's tool calls in order as ``{name, arguments, requestor}``: the agent steps'
    calls, and the user steps' own calls when ``with_user``. Arguments that are not an
    object (a JSON text that did not decode to one) are parsed when they can be, else ``{}``."""
    out = []
    for step in session.steps:
        if step.source == "agent" or (with_user and step.source == "user"):
            for c in step.tool_calls:
                args = c.arguments
                if isinstance(args, str):
                    try:
                        args = json.loads(args)
                    except ValueError:
                        args = {}
                out.append({"name": c.name, "arguments": args if isinstance(args, dict) else {},
                            "requestor": "assistant" if step.source == "agent" else "user"})
    return out


def agreement(ref: dict[str, Any], call: dict[str, Any]) -> float | None:
    """Share (0-1) of the reference action's compared keys (``compare_args``, else its
    argument keys) whose normalised values equal the call's; 1.0 with no key to compare;
    None when the (requestor, name) differ."""
    if (ref["requestor"], ref["name"]) != (call["requestor"], call["name"]):
        return None
    keys = ref["compare_args"] if ref["compare_args"] is not None else list(ref["arguments"])
    if not keys:
        return 1.0
    missing = object()  # a key absent from both sides agrees, as in tau2's dict comparison
    same = sum(1 for k in keys if normalise(call["arguments"].get(k, missing)) == normalise(ref["arguments"].get(k, missing)))
    return same / len(keys)


def _subsequence(want: list, have: list) -> bool:
    it = iter(have)
    return all(any(w == h for h in it) for w in want)


def _assign(weights: list[list[float]]) -> list[tuple[int, int]]:
    """The (row, column) pairs of a maximum-weight one-to-one assignment with positive weight."""
    if not weights or not weights[0]:
        return []
    from scipy.optimize import linear_sum_assignment  # only sessions with a reference pay the import

    rows, cols = linear_sum_assignment(weights, maximize=True)
    return [(int(r), int(c)) for r, c in zip(rows, cols) if weights[r][c] > 0]


def compare(reference: list[dict[str, Any]], calls: list[dict[str, Any]]) -> dict[str, Any]:
    """The golden-path metrics (see the module docstring) of ``calls`` against ``reference``
    (both as :func:`reference_actions` / :func:`run_calls` give them)."""
    ref_names = [(r["requestor"], r["name"]) for r in reference]
    run_names = [(c["requestor"], c["name"]) for c in calls]
    agree = [[agreement(r, c) for c in calls] for r in reference]
    big = len(reference) + 1.0  # pair as many same-name calls as possible, then maximise agreement
    named = _assign([[big + a if a is not None else 0.0 for a in row] for row in agree])
    full = _assign([[1.0 if a == 1.0 else 0.0 for a in row] for row in agree])
    shares = [agree[r][c] for r, c in named]
    return {
        "exact": ref_names == run_names,
        "in_order": _subsequence(ref_names, run_names),
        "any_order": not (Counter(ref_names) - Counter(run_names)),
        "arg_agreement": round(sum(shares) / len(shares), 6) if shares else None,  # type: ignore[arg-type]
        "precision": round(len(full) / len(calls), 6) if calls else None,
        "recall": round(len(full) / len(reference), 6) if reference else None,
        "n_reference": len(reference),
        "n_calls": len(calls),
        "n_matched": len(full),
    }


def evaluate(session: Session) -> dict[str, Any] | None:
    """The golden-path metrics of a session (keys :data:`FIELDS`), or None when it has no
    reference action sequence. Never raises: the record builder calls it in the pipeline,
    so an unexpected error is logged with the session and gives None."""
    reference = session.reference_actions
    if reference is None:
        return None
    try:
        with_user = any(r["requestor"] == "user" for r in reference)
        return compare(reference, run_calls(session, with_user))
    except Exception:  # a bug here must not stop the daemon: the record goes out without golden
        log.exception("golden-path evaluation failed for %s", session.ref.session_id,
                      extra={"session": session.ref.session_id, "file": session.ref.path})
        return None


__all__ = ["FIELDS", "reference_actions", "normalise", "run_calls", "agreement", "compare", "evaluate"]
