"""Structural signals of agent runs and game episodes, as one normalised feature vector.

What the offline judge (:mod:`.heuristic`) reads from a transcript (OpenAI chat view,
:attr:`streamgrade.models.Session.transcript`) and its canonical steps, never from the
reward, the reader's scores (``metrics`` such as ``score_*``, ``episode_return``,
``achievements``) or reference actions. Every feature is a share, a boolean or a capped
log length so that it means the same in every format, and none names the format.

No feature reads the wording of assistant turns: an agent cannot raise its grade by saying
"Sorry, I cannot" or "Task completed successfully!" (tests/test_heuristic_gaming.py). Tool
results are read only for their structure: the source's ``is_error`` flag, an exit code
(a leading ``<returncode>N</returncode>``, or ``exit code N`` on the last line) and a line
starting a Python traceback or with an ``Error:``/``ERROR:``/``ValueError:`` prefix within
the first 300 characters. User turns are read only for the ``unanswered`` flag (a question
mark or a long request after the last assistant turn; weight 0 in the shipped fit).
"""

from __future__ import annotations

import math
import re
from collections import Counter

from ..models import ChatMessage, Session

#: Feature names, in the order of the weights file (judges/heuristic_weights.json).
#: ``SIGNS`` gives each one's expected direction (+1 success, -1 failure), the constraint
#: the fit keeps (scripts/lodo_heuristic.py); features in ``EXCLUDED`` are computed and
#: shown in reasons but get no weight: they mark a format's shape more than a run's
#: quality (every Gorilla row ends on an empty ``finish`` call, every Crafter turn is
#: text, mini-swe-agent turns never end on text).
FEATURES = (
    "length_credit",      # episodes: survival L; agent runs: brevity 1 - L; L = log1p(turns)/log1p(1e4)
    "task_length",        # log1p(task chars) / log1p(20000), capped at 1: harder tasks
    "tool_call_rate",     # tool calls per assistant turn, capped at 1 (after /3)
    "tool_error_share",   # share of tool results that are errors
    "last_result_error",  # the last tool result / observation of the run is an error
    "final_exit_nonzero", # the last exit code shown in a result is not 0
    "repeat_call_share",  # 1 - distinct calls / calls (same name and arguments)
    "repeat_error",       # one error text came back 2+ times
    "longest_repeat",     # longest run of one identical action, / turns
    "ends_with_answer",   # the last assistant turn has text and no tool call
    "final_empty",        # the last assistant turn has no text (only a call or nothing)
    "unanswered",         # a user message after the last assistant turn asks something
    "stopped_bad",        # termination names a limit, timeout or error
    "invalid_share",      # steps flagged as no valid action by the reader
    "tool_variety",       # distinct tool names / 10, capped at 1: broader tasks fail more
    "user_share",         # share of the transcript's messages that are user turns
    "call_stretch",       # log1p(longest run of tool-calling turns with no user turn) / log1p(100)
)

SIGNS = {name: -1 for name in FEATURES} | {"length_credit": 1, "ends_with_answer": 1, "user_share": 1}
EXCLUDED = ("ends_with_answer", "final_empty")

_RETURNCODE = re.compile(r"\s*<returncode>\s*(-?\d+)\s*</returncode>")
_EXIT_LINE = re.compile(r"\bexit(?:ed with)?[ _]?code[:= ]+(-?\d+)", re.I)
_ERROR_HEAD = re.compile(r"^\s*(?:Traceback \(most recent call last\)|(?:\w*Error|ERROR|Error|error)\b\s*:)", re.M)
_BAD_END = re.compile(r"limit|timeout|timed.?out|max.?(?:steps|iter|turn)|error|exceed|abort|crash|cancel", re.I)
#: A user turn that is only a harness prompt ("If you are done ..."), not a question, ends
#: with a period or is an acknowledgement; ``unanswered`` counts a question mark or length.
_UNANSWERED_CHARS = 400


def _is_error(m: ChatMessage) -> bool:
    """A tool result that reads as an error from its structure (see the module docstring)."""
    text = m.content or ""
    if _ERROR_HEAD.search(text[:300]):
        return True
    codes = exit_codes(text)
    return bool(codes) and codes[-1] != 0


def exit_codes(text: str) -> list[int]:
    """The exit code a tool result shows, as a list of 0 or 1 item: the harness's leading
    ``<returncode>N</returncode>`` tag (mini-swe-agent), else an ``exit code N`` on the
    last non-empty line (shells, OpenHands' ``[Command finished with exit code N]``). Only
    these places count: text the command printed elsewhere cannot change the code."""
    head = _RETURNCODE.match(text)
    if head:
        return [int(head.group(1))]
    lines = [line for line in text[-500:].splitlines() if line.strip()]
    tail = _EXIT_LINE.search(lines[-1]) if lines else None
    return [int(tail.group(1))] if tail else []


def _action_key(m: ChatMessage) -> str:
    """What an assistant turn did: its tool calls (name and arguments), else the text after
    the last ``Action:`` (game episodes), else the whole text."""
    if m.tool_calls:
        return "|".join(f"{tc.function.name}:{tc.function.arguments}" for tc in m.tool_calls)
    text = m.content or ""
    return text.rsplit("Action:", 1)[-1].strip().lower() if "Action:" in text else text.strip().lower()


def features(session: Session) -> dict[str, float]:
    """The feature vector of an agent run or game episode: ``{name: value}`` for every name
    of :data:`FEATURES`, each in [0, 1]. An empty transcript gives all zeros (callers mark
    such sessions ungradable first)."""
    tr = session.transcript
    assistant = [m for m in tr if m.role == "assistant"]
    n = len(assistant)
    results = [m for m in tr if m.role == "tool"]
    if session.kind == "episode":  # observations come back as user turns
        results = [m for m in tr[1:] if m.role == "user"]
    errors = [m for m in results if _is_error(m)]
    # the source's own error flags count too
    flagged = sum(1 for st in session.steps for o in st.observations if o.is_error)
    calls = [tc for m in assistant for tc in (m.tool_calls or [])]
    distinct = {(tc.function.name, tc.function.arguments) for tc in calls}
    keys = [_action_key(m) for m in assistant]
    longest = run = 0
    for prev, cur in zip([None, *keys], keys):
        run = run + 1 if cur == prev else 1
        longest = max(longest, run)
    err_counts = Counter((m.content or "")[:300] for m in errors)
    codes = [c for m in results for c in exit_codes(m.content or "")]
    last_a = max((i for i, m in enumerate(tr) if m.role == "assistant"), default=-1)
    last_msg = assistant[-1] if assistant else None
    after = [m for m in tr[last_a + 1:] if m.role == "user" and last_a >= 0]
    unanswered = any("?" in (m.content or "") or len(m.content or "") > _UNANSWERED_CHARS for m in after)
    if "invalid_actions" in session.metrics:
        total = n + session.metrics.get("dropped_invalid_actions", 0.0)
        invalid = session.metrics["invalid_actions"] / total if total else 0.0
    else:
        invalid = sum(1 for st in session.steps if st.extra.get("invalid_action")) / n if n else 0.0
    stretch = best = 0
    for m in tr:
        if m.role == "user":
            stretch = 0
        elif m.role == "assistant" and m.tool_calls:
            stretch += 1
            best = max(best, stretch)
    length = min(1.0, math.log1p(n) / math.log1p(10_000))  # L: capped log length of the run
    return {
        "length_credit": length if session.kind == "episode" else 1.0 - length,
        "task_length": min(1.0, math.log1p(len(session.task or "")) / math.log1p(20_000)),
        "tool_call_rate": min(1.0, len(calls) / n / 3) if n else 0.0,
        "tool_error_share": min(1.0, (len(errors) + flagged) / len(results)) if results else 0.0,
        "last_result_error": 1.0 if results and (_is_error(results[-1])) else 0.0,
        "final_exit_nonzero": 1.0 if codes and codes[-1] != 0 else 0.0,
        "repeat_call_share": 1 - len(distinct) / len(calls) if calls else 0.0,
        "repeat_error": 1.0 if err_counts and max(err_counts.values()) >= 2 else 0.0,
        "longest_repeat": longest / n if n else 0.0,
        "ends_with_answer": 1.0 if last_msg is not None and (last_msg.content or "").strip() and not last_msg.tool_calls else 0.0,
        "final_empty": 1.0 if last_msg is not None and not (last_msg.content or "").strip() else 0.0,
        "unanswered": 1.0 if unanswered else 0.0,
        "stopped_bad": 1.0 if session.termination and _BAD_END.search(session.termination) else 0.0,
        "invalid_share": min(1.0, invalid),
        "tool_variety": min(1.0, len({tc.function.name for tc in calls}) / 10),
        "user_share": sum(1 for m in tr if m.role == "user") / len(tr) if tr else 0.0,
        "call_stretch": min(1.0, math.log1p(best) / math.log1p(100)),
    }


def ungradable_reason(session: Session) -> str | None:
    """Why a session cannot be judged from what it shows, or None: no transcript (agent runs,
    episodes), no assistant turn, no task (recordings), or no action (recordings)."""
    if session.has_transcript:
        if not session.transcript:
            return "empty transcript: no steps were recorded"
        if not any(m.role == "assistant" for m in session.transcript):
            return "no assistant turn: the run never acted"
        return None
    if not (session.task or "").strip() and not session.objectives:
        return "no task: nothing to judge the actions against"
    if not session.actions:
        return "no actions were recorded"
    return None
