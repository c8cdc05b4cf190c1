"""Two runs of one task, compared for a preference pair: where they diverge, what each side
is, and which side wins.

Comparing (:func:`canon`): two messages are the same when their role, their content and
their tool calls (function name, arguments as parsed JSON) are, modulo

- ids: tool-call ids are not compared (``call_abc`` vs ``toolu_01...`` vs ``call_3``); a
  tool result is compared by which call of its run it answers (its ordinal), not by id;
- whitespace, where it carries no meaning: line endings, trailing spaces on a line, space
  at the start and end of a message, and runs of blank lines. Indentation and spaces inside
  a line are kept (they matter in code and commands);
- other keys (timestamps, ``name`` on tool results): not compared.

So two runs that differ only in ids give no pair, and the shared prefix of two runs is the
longest run of messages that are the same in this sense.

Cutting (:func:`cut`), on OpenAI chat messages (system first):

- ``step``: the prompt is the shared prefix and each side is the one assistant message at
  which the runs first differ. When the runs first differ at another turn (a simulated
  user rewording its line, as in tau-bench; another first observation, as with Crafter's
  seeds; a tool answering differently), there is no step pair from that point: the reason
  says at which role they diverged. The prompt must hold a user message.
- ``trajectory``: the prompt is the shared prefix and each side is its whole continuation,
  trailing non-assistant messages dropped (each side ends on the model's turn, as ETO
  requires). The continuation may start with a user or tool turn; ``train`` flags say which
  messages are the model's (see :mod:`.dpo`). The prompt must not be empty.

Tool-call ids in the rows are renumbered ``call_0``, ``call_1``... in order of appearance
over prompt + side (:func:`renumber`): the prompt's ids are then the same for both sides,
and unique within a row (OpenAI's rule).

Ranking (:func:`rank`), ``by="reward"`` (the default): where both runs have a reward, the
higher reward wins; equal rewards (within 1e-9, relative) are a tie that the judge score
breaks when its gap is at least ``min_gap``; where a run has no reward, the score decides
(gap at least ``min_gap``). ``by="score"``: the score decides (gap at least ``min_gap``),
but never against the reward: when both runs have rewards that rank them the other way,
there is no pair. Either way the chosen side's reward is never below the rejected one's.
``pairwise`` (opt-in, the DPO export's ``--rank-by pairwise``) is decided in
:mod:`.dpo` by an LLM judge asked in both orders (:mod:`streamgrade.judges.pairwise`)
where the rewards do not decide.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

Message = dict[str, Any]
Key = tuple[str, str, tuple[tuple[str, str], ...], "int | None"]
Mode = Literal["step", "trajectory"]
RankBy = Literal["reward", "score", "pairwise"]

_BLANK_RUNS = re.compile(r"\n{3,}")
_TIE = 1e-9


class PairError(ValueError):
    """Why two runs (or a task) give no pair; the text is the reason counted in the report."""


def norm_text(value: Any) -> str:
    """``value`` as text with meaningless whitespace removed (see the module docstring);
    a non-string content (a list of parts) as canonical JSON."""
    if value is None:
        return ""
    if not isinstance(value, str):
        value = json.dumps(value, ensure_ascii=False, sort_keys=True)
    lines = value.replace("\r\n", "\n").replace("\r", "\n").strip().split("\n")
    return _BLANK_RUNS.sub("\n\n", "\n".join(line.rstrip() for line in lines))


def _norm_args(raw: Any) -> str:
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return norm_text(raw)
    return json.dumps(raw, ensure_ascii=False, sort_keys=True)


def canon(messages: list[Message]) -> list[Key]:
    """One comparable key per message: (role, normalised content, ((function, arguments),
    ...), ordinal of the call a tool result answers or None)."""
    ids: dict[str, int] = {}
    n = 0
    out: list[Key] = []
    for m in messages:
        role = str(m.get("role") or "")
        calls = []
        for tc in m.get("tool_calls") or []:
            tc = tc if isinstance(tc, dict) else {}
            fn = tc.get("function") if isinstance(tc.get("function"), dict) else {}
            if tc.get("id") is not None:
                ids[str(tc["id"])] = n
            n += 1
            calls.append((str(fn.get("name") or ""), _norm_args(fn.get("arguments"))))
        answers = ids.get(str(m.get("tool_call_id"))) if role == "tool" else None
        out.append((role, norm_text(m.get("content")), tuple(calls), answers))
    return out


def renumber(messages: list[Message]) -> list[Message]:
    """Copies of ``messages`` with tool-call ids ``call_0``, ``call_1``... in order of
    appearance; a tool result points to the new id of its call (the latest call with its
    old id); a result whose id matches no call keeps it."""
    ids: dict[str, str] = {}
    n = 0
    out = []
    for m in messages:
        m = dict(m)
        if m.get("tool_calls"):
            calls = []
            for tc in m["tool_calls"]:
                if isinstance(tc, dict):
                    tc = dict(tc)
                    if tc.get("id") is not None:
                        ids[str(tc["id"])] = f"call_{n}"
                    tc["id"] = f"call_{n}"
                n += 1
                calls.append(tc)
            m["tool_calls"] = calls
        if m.get("role") == "tool" and m.get("tool_call_id") is not None:
            m["tool_call_id"] = ids.get(str(m["tool_call_id"]), m["tool_call_id"])
        out.append(m)
    return out


def digest(keys: list[Key]) -> str:
    """A short stable hash of canonical messages (to find duplicate and contradicting pairs)."""
    return hashlib.sha1(json.dumps(keys, ensure_ascii=False).encode()).hexdigest()[:16]


def diverge(a: list[Key], b: list[Key]) -> int:
    """The length of the shared prefix of two canonical runs."""
    k, n = 0, min(len(a), len(b))
    while k < n and a[k] == b[k]:
        k += 1
    return k


def _trim(keys: list[Key], start: int) -> int:
    """The end (exclusive) of ``keys[start:]`` once trailing non-assistant turns are dropped."""
    end = len(keys)
    while end > start and keys[end - 1][0] != "assistant":
        end -= 1
    return end


@dataclass(frozen=True)
class Cut:
    """Where a pair is cut: the prompt is ``chosen[:at]``; the chosen side is
    ``chosen[at:chosen_end]``, the rejected side ``rejected[at:rejected_end]``; ``turn``
    the 1-based number of the assistant turn at the divergence (step) or of the first
    assistant turn of the continuations (trajectory)."""

    at: int
    chosen_end: int
    rejected_end: int
    turn: int


def cut(chosen: list[Key], rejected: list[Key], mode: Mode) -> Cut:
    """Where the pair of two canonical runs is cut (see the module docstring); PairError
    with the reason when they give no pair in ``mode``. Symmetric: with the runs swapped,
    only ``chosen_end`` and ``rejected_end`` swap."""
    k = diverge(chosen, rejected)
    turn = 1 + sum(1 for key in chosen[:k] if key[0] == "assistant")
    if k == len(chosen) and k == len(rejected):
        raise PairError("identical up to ids and whitespace: no preference to learn")
    if mode == "step":
        if k == len(chosen) or k == len(rejected):
            raise PairError(f"a run ends before the divergence (message {k}): one run is a prefix of the other")
        rc, rr = chosen[k][0], rejected[k][0]
        if rc != "assistant" or rr != "assistant":
            raise PairError(_why(rc, rr, k))
        if not any(key[0] == "user" for key in chosen[:k]):
            raise PairError(f"no user message before the divergence at message {k}")
        return Cut(k, k + 1, k + 1, turn)
    if k == 0:
        raise PairError("no shared prefix: the runs differ from their first message")
    ce, re_ = _trim(chosen, k), _trim(rejected, k)
    if ce == k or re_ == k:
        raise PairError(f"a side has no assistant turn after the shared prefix of {k} messages")
    if chosen[k:ce] == rejected[k:re_]:
        raise PairError("identical up to ids and whitespace: the sides differ only in trailing non-assistant turns")
    return Cut(k, ce, re_, turn)


def _why(rc: str, rr: str, k: int) -> str:
    if rc == rr == "user":
        return (f"diverge at a user turn (message {k}), not an assistant one: the user, a simulated user "
                "or the first observation says something else")
    if rc == rr == "tool":
        return f"diverge at a tool result (message {k}), not an assistant turn: the environment answered differently"
    if rc == rr:
        return f"diverge at a {rc} message (message {k}), not an assistant turn"
    return f"diverge where only one side is the assistant's turn (message {k}: {rc} vs {rr})"


def side_messages(messages: list[Message], c: Cut, end: int) -> tuple[list[Message], list[Message]]:
    """(prompt, side) of one run's messages, ids renumbered (see :func:`renumber`)."""
    msgs = renumber(messages[:end])
    return msgs[: c.at], msgs[c.at:]


def _reward(rec: dict[str, Any]) -> float | None:
    r = rec.get("reward")
    if isinstance(r, (int, float)) and not isinstance(r, bool) and math.isfinite(r):
        return float(r)
    return None


def _score(rec: dict[str, Any]) -> float | None:
    s = rec.get("score")
    if isinstance(s, (int, float)) and not isinstance(s, bool) and math.isfinite(s):
        return float(s)
    return None


def same_reward(x: float, y: float) -> bool:
    """Rewards equal within 1e-9 (relative): 12.1 and 12.100000000000001 are a tie."""
    return abs(x - y) <= _TIE * max(1.0, abs(x), abs(y))


def rank(a: dict[str, Any], b: dict[str, Any], by: RankBy = "reward", min_gap: float = 10.0) -> tuple[int, str]:
    """Which of two records (scores.jsonl fields ``reward``, ``score`` 0-100) is chosen:
    ``(0 or 1, what decided: "reward", "score" or "score, rewards equal")``; PairError
    with the reason when neither may be (see the module docstring)."""
    ra, rb = _reward(a), _reward(b)
    both = ra is not None and rb is not None
    if by == "reward" and both and not same_reward(ra, rb):
        return (0 if ra > rb else 1), "reward"
    sa, sb = _score(a), _score(b)
    if sa is None or sb is None:
        raise PairError("a side has no judge score and the rewards do not decide")
    gap = abs(sa - sb)
    if gap < min_gap or gap == 0:
        if both and same_reward(ra, rb):
            raise PairError(f"equal rewards and score gap {gap:.1f} below {min_gap:g}")
        if both:
            raise PairError(f"score gap {gap:.1f} below {min_gap:g}")
        raise PairError(f"unrewarded side and score gap {gap:.1f} below {min_gap:g}")
    winner = 0 if sa > sb else 1
    if both and not same_reward(ra, rb):
        if (ra > rb) != (winner == 0):
            raise PairError(f"score contradicts the reward: the higher score has the lower reward "
                            f"({max(ra, rb):g} vs {min(ra, rb):g})")
        return winner, "score"
    return winner, "score, rewards equal" if both else "score"


__all__ = ["PairError", "Cut", "canon", "renumber", "digest", "diverge", "cut", "side_messages", "rank",
           "same_reward", "norm_text", "Mode", "RankBy"]
