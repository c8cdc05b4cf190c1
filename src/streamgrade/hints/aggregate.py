"""One task's hints from its episodes' hints.

- **tools**: the union by name of the tools of the successful episodes (of every episode,
  flagged ``seen_in_failures_only``, when none succeeded); a tool's purpose and example
  come from the first successful episode that has them; ``episodes`` counts the episodes
  that used it.
- **strategy**: offline (:mod:`.offline`), the steps of the shortest successful episode
  (fewest turns); from an LLM, the steps of every successful episode, shortest first,
  de-duplicated. Empty when no episode succeeded.
- **pitfalls**: those of the failed episodes, de-duplicated, each attributed to the
  episodes it came from (``episodes``: session ids), most frequent first.
- **success_criteria**: those of the successful episodes (from an LLM, of every episode
  when none succeeded: it reads them from the task too), de-duplicated, most frequent first.

De-duplication (:func:`dedupe`): two lines are one hint when their normalised texts
(lower case, punctuation and extra spaces dropped, numbers and quoted values kept) are
equal or their similarity reaches ``[hints] similarity`` (difflib's
``SequenceMatcher.ratio``, the Ratcliff/Obershelp measure: 2 x matches / total length, Python
standard library); the first wording seen is kept. Offline hints are templates that differ in
a tool name or a value, so :mod:`.run` merges only equal ones there (threshold 1).
"""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher
from typing import Any, Iterable

from .episodes import Episode

_PUNCT = re.compile(r"[^\w\s'\"=()./:-]+")


def normalise(text: str) -> str:
    """``text`` compared for de-duplication: NFKC, case-folded, punctuation other than
    what code needs dropped, whitespace collapsed."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCT.sub(" ", text).split())


def similar(a: str, b: str, threshold: float) -> bool:
    """Whether two normalised lines are one hint (see the module docstring)."""
    if a == b:
        return True
    m = SequenceMatcher(None, a, b, autojunk=False)
    # cheap upper bounds first: most pairs are far apart
    return m.real_quick_ratio() >= threshold and m.quick_ratio() >= threshold and m.ratio() >= threshold


def dedupe(items: Iterable[tuple[str, str]], threshold: float) -> list[tuple[str, list[str]]]:
    """(text, sources) for ``(text, source)`` items, near-duplicates merged into the first
    wording seen, in first-seen order; each hint's sources in order, without repeats."""
    kept: list[tuple[str, str, list[str]]] = []  # (text, normalised, sources)
    for text, source in items:
        norm = normalise(text)
        if not norm:
            continue
        for k_text, k_norm, srcs in kept:
            if similar(norm, k_norm, threshold):
                if source not in srcs:
                    srcs.append(source)
                break
        else:
            kept.append((text, norm, [source]))
    return [(t, s) for t, _, s in kept]


def aggregate(pairs: list[tuple[Episode, dict[str, Any]]], *, offline: bool, threshold: float,
              max_items: int) -> dict[str, Any]:
    """The task's hints ``{tools, strategy, pitfalls, success_criteria}`` (see the module
    docstring) from (episode, its hints) pairs; ``offline`` picks the strategy rule;
    each list is cut to ``max_items``."""
    wins = sorted([(e, h) for e, h in pairs if e.success], key=lambda p: (p[0].turns, p[0].session_id))
    losses = [(e, h) for e, h in pairs if not e.success]
    tool_src = wins or pairs
    tools: dict[str, dict[str, Any]] = {}
    for e, h in tool_src:
        for t in h.get("tools") or []:
            name = str(t.get("name") or "").strip()
            if not name:
                continue
            cur = tools.setdefault(name, {"name": name, "purpose": "", "example": "", "episodes": 0})
            cur["episodes"] += 1
            cur["purpose"] = cur["purpose"] or str(t.get("purpose") or "")
            cur["example"] = cur["example"] or str(t.get("example") or "")
            if not wins:
                cur["seen_in_failures_only"] = True
    tool_list = sorted(tools.values(), key=lambda t: -t["episodes"])[:max_items]
    if offline:
        strategy = list(wins[0][1].get("strategy") or []) if wins else []
    else:
        strategy = [t for t, _ in dedupe(((s, e.session_id) for e, h in wins for s in h.get("strategy") or []),
                                         threshold)]
    pit = dedupe(((p, e.session_id) for e, h in losses for p in h.get("pitfalls") or []), threshold)
    pit.sort(key=lambda p: -len(p[1]))  # stable: first seen first among equals
    # offline criteria are what a successful run did: none without one; an LLM's also come
    # from the task's own statement, so failed episodes give them too
    crit = dedupe(((c, e.session_id) for e, h in (wins if offline else wins or pairs)
                   for c in h.get("success_criteria") or []), threshold)
    crit.sort(key=lambda c: -len(c[1]))
    return {
        "tools": tool_list,
        "strategy": strategy[:max_items],
        "pitfalls": [{"text": t, "episodes": s} for t, s in pit[:max_items]],
        "success_criteria": [t for t, _ in crit[:max_items]],
    }


__all__ = ["aggregate", "dedupe", "normalise", "similar"]
