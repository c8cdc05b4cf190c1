"""The LLM judge's verdict protocol: reasoning first, then scores, then an explicit verdict.

The answer schema (:data:`VERDICT_SCHEMA`, strict Structured Outputs) follows the best
published trajectory judges:

- **Reasoning before the score.** Each component is ``{evidence_steps, reasoning, score,
  confidence}`` in that order, so an autoregressive judge writes its argument before it
  commits to a number (G-Eval, Liu et al. 2023, arXiv:2303.16634: chain-of-thought then
  form-filling; Zheng et al. 2023, arXiv:2306.05685, §3.4 on reference/CoT judging).
- **Key points and key steps.** The answer opens with ``key_points`` (what the task
  requires) and every component names the step indices it rests on (``evidence_steps``),
  after WebJudge's three stages: key-point identification, key screenshot/step
  selection, outcome judgement (Xue et al. 2025, "An Illusion of Progress? Assessing the
  Current State of Web Agents", arXiv:2504.01382, github.com/OSU-NLP-Group/Online-Mind2Web).
- **Explicit success, with a probability.** The answer ends in ``success`` (bool) and
  ``success_probability`` (0-1), the trajectory-level outcome label of an outcome reward
  model (CUARewardBench, arXiv:2510.18596: ORM predicts s in {0, 1}); the probability is
  what AUROC and ECE are measured on (SWE-RM, Shum et al. 2025, arXiv:2512.21919: report
  discrimination (AUC) and calibration (ECE), not only accuracy).
- **Agent-caused vs environment-caused failure.** ``failure_cause`` is one of ``none``,
  ``agent``, ``environment``, ``unclear`` with non-overlapping definitions, after
  Microsoft's Universal Verifier (Rosset et al. 2026, "The Art of Building Verifiers for
  Computer Use Agents", arXiv:2604.06240, github.com/microsoft/fara): separate process from
  outcome, and controllable from uncontrollable failures. An environment-caused failure is
  not charged to ``process`` (the rubric says so) but the run still did not succeed.

Parsing also accepts the legacy answer ``{summary, outcome, process, efficiency}`` with
``{score, confidence, reason}`` components (older caches and mock servers); such a
judgement has ``success`` None.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from ..models import Component

COMPONENTS = ("outcome", "process", "efficiency")
FAILURE_CAUSES = ("none", "agent", "environment", "unclear")

_COMPONENT = {
    "type": "object",
    "properties": {
        "evidence_steps": {"type": "array", "items": {"type": "integer"},
                           "description": "indices of the steps this component rests on"},
        "reasoning": {"type": "string", "description": "the argument, written before the score"},
        "score": {"type": "number", "description": "0 to 100"},
        "confidence": {"type": "number", "description": "0 to 1"},
    },
    "required": ["evidence_steps", "reasoning", "score", "confidence"],
    "additionalProperties": False,
}

#: The verdict's strict JSON schema (OpenAI Structured Outputs), fields in answer order.
VERDICT_SCHEMA: dict[str, Any] = {
    "name": "streamgrade_verdict",
    "strict": True,
    "schema": {
        "type": "object",
        "properties": {
            "key_points": {"type": "array", "items": {"type": "string"},
                           "description": "what the task requires, one requirement each"},
            "summary": {"type": "string"},
            **{name: _COMPONENT for name in COMPONENTS},
            "failure_cause": {"type": "string", "enum": list(FAILURE_CAUSES)},
            "success": {"type": "boolean"},
            "success_probability": {"type": "number", "description": "0 to 1"},
        },
        "required": ["key_points", "summary", *COMPONENTS, "failure_cause", "success", "success_probability"],
        "additionalProperties": False,
    },
}


class _Comp(msgspec.Struct, forbid_unknown_fields=True):
    evidence_steps: list[int]
    reasoning: str
    score: float
    confidence: float


class _Answer(msgspec.Struct, forbid_unknown_fields=True):
    key_points: list[str]
    summary: str
    outcome: _Comp
    process: _Comp
    efficiency: _Comp
    failure_cause: Literal["none", "agent", "environment", "unclear"]
    success: bool
    success_probability: float


class _LegacyComp(msgspec.Struct, forbid_unknown_fields=True):
    score: float
    confidence: float
    reason: str


class _LegacyAnswer(msgspec.Struct, forbid_unknown_fields=True):
    summary: str
    outcome: _LegacyComp
    process: _LegacyComp
    efficiency: _LegacyComp


class Judgement(msgspec.Struct):
    """One judge answer, checked: ``components`` (0-100 scores, 0-1 confidences, the
    reasoning as ``reason``), ``evidence`` {component: step indices}, ``key_points``,
    ``failure_cause`` (``none|agent|environment|unclear``, or None for a legacy answer),
    ``success`` (None for a legacy answer) and ``p_success`` (0-1, or None)."""

    summary: str
    components: dict[str, Component]
    evidence: dict[str, list[int]] = {}
    key_points: list[str] = []
    failure_cause: str | None = None
    success: bool | None = None
    p_success: float | None = None


def _check(name: str, score: float, confidence: float) -> None:
    if not 0 <= score <= 100:
        raise ValueError(f"verdict {name}.score {score} outside 0-100")
    if not 0 <= confidence <= 1:
        raise ValueError(f"verdict {name}.confidence {confidence} outside 0-1")


def parse_judgement(text: str) -> Judgement:
    """Parse and check a verdict answer (:data:`VERDICT_SCHEMA`, or the legacy shape).

    Normalisation (documented, deterministic): ``success`` true forces ``failure_cause``
    "none"; ``success`` false with cause "none" becomes "unclear". Raises ValueError when
    the text is not JSON, matches neither shape, or a number is out of range (score 0-100,
    confidence and success_probability 0-1): the caller retries."""
    try:
        ans = msgspec.json.decode(text, type=_Answer)
    except msgspec.DecodeError as exc:
        try:
            old = msgspec.json.decode(text, type=_LegacyAnswer)
        except msgspec.DecodeError:
            raise ValueError(f"verdict does not match the schema: {exc}") from None
        comps = {}
        for name in COMPONENTS:
            c: _LegacyComp = getattr(old, name)
            _check(name, c.score, c.confidence)
            comps[name] = Component(score=float(c.score), confidence=float(c.confidence), reason=c.reason)
        return Judgement(summary=old.summary, components=comps)
    comps, evidence = {}, {}
    for name in COMPONENTS:
        c: _Comp = getattr(ans, name)
        _check(name, c.score, c.confidence)
        comps[name] = Component(score=float(c.score), confidence=float(c.confidence), reason=c.reasoning)
        evidence[name] = sorted({int(i) for i in c.evidence_steps if i >= 0})
    if not 0 <= ans.success_probability <= 1:
        raise ValueError(f"verdict success_probability {ans.success_probability} outside 0-1")
    cause = "none" if ans.success else ("unclear" if ans.failure_cause == "none" else ans.failure_cause)
    return Judgement(summary=ans.summary, components=comps, evidence=evidence, key_points=list(ans.key_points),
                     failure_cause=cause, success=ans.success, p_success=float(ans.success_probability))


def extras(j: Judgement) -> dict[str, Any]:
    """The judgement's fields beyond the rubric components, as stored in
    :attr:`streamgrade.models.Verdict.extras`: ``success``, ``p_success``,
    ``failure_cause``, ``key_points``, ``evidence_steps``; empty for a legacy answer."""
    if j.success is None:
        return {}
    return {"success": j.success, "p_success": j.p_success, "failure_cause": j.failure_cause,
            "key_points": j.key_points, "evidence_steps": j.evidence}
