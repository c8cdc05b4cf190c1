"""Render training rows through real chat templates with transformers' ``apply_chat_template``.

The four templates live in tests/data/chat_templates/ (PROVENANCE.md there gives each
file's source repository, revision and licence): Qwen2.5-Instruct, Llama 3.3 Instruct,
DeepSeek-V3.1 and gpt-oss. Hub downloads are impossible here, so the tokenizer is built
locally: a ``PreTrainedTokenizerFast`` over a one-word ``tokenizers`` WordLevel model with
the model's bos/eos strings and the template set as ``chat_template``;
``apply_chat_template(..., tokenize=False)`` then runs the template exactly as it would
for the real model (transformers' sandboxed Jinja environment, its ``tojson``,
``raise_exception`` and ``strftime_now``).

Checks per conversation (:func:`check_conversation`): rendering does not raise, and every
assistant target appears in the output: its text (as the template transforms it: Llama
trims it, DeepSeek keeps what follows ``</think>``) and each tool call's name and
argument keys and values (templates reformat calls: Qwen wraps them in ``<tool_call>``,
Llama writes ``{"name", "parameters"}``, DeepSeek ``name<｜tool▁sep｜>arguments``, gpt-oss
``to=functions.name``).

Null content: transformers (5.x, ``chat_template_utils._normalize_chat_messages``) drops
the keys whose value is None before rendering, so ``content: null`` reaches a template as
a missing key; a template that reads ``message['content']`` then raises (kind
``null-content-breaks-template``).

Argument shape: OpenAI rows carry ``arguments`` as a JSON string. Qwen2.5, Llama 3.3 and
gpt-oss apply ``tojson`` to it, which double-encodes a string, so their callers pass an
object (google/minja ``chat-template.hpp``, the template engine of llama.cpp, probes each
template for this ``requires_object_arguments`` capability and converts); DeepSeek-V3.1
concatenates the string and fails on an object. :func:`check_conversation` converts for
the templates that want objects, as minja does, unless ``as_is=True`` (what TRL's
SFTTrainer does: it passes rows unchanged), where a double-encoded call is an
``arguments-double-encoded`` problem.

What a template drops by design is a :data:`~consumers.rows.LIMIT` problem, not an error:
Llama 3.3 renders one call per assistant message and no text beside it (more calls
raise); gpt-oss renders the first call only and drops the text of a tool-calling turn
when a later final answer exists (its "CoT is dropped" rule).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from .rows import ERROR, LIMIT, Problem, Row, text_of

TEMPLATE_DIR = Path(__file__).resolve().parent.parent / "data" / "chat_templates"


@dataclass(frozen=True)
class TemplateSpec:
    """A chat template: ``file`` under :data:`TEMPLATE_DIR`, the model's ``bos``/``eos``
    strings, and whether its tool calls want ``arguments`` as an object."""

    name: str
    file: str
    bos: str
    eos: str
    object_arguments: bool


TEMPLATES: dict[str, TemplateSpec] = {
    "qwen2.5": TemplateSpec("qwen2.5", "qwen2.5.jinja", "<|endoftext|>", "<|im_end|>", True),
    "llama-3.3": TemplateSpec("llama-3.3", "llama-3.3.jinja", "<|begin_of_text|>", "<|eot_id|>", True),
    "deepseek-v3.1": TemplateSpec("deepseek-v3.1", "deepseek-v3.1.jinja", "<｜begin▁of▁sentence｜>",
                                  "<｜end▁of▁sentence｜>", False),
    "gpt-oss": TemplateSpec("gpt-oss", "gpt-oss.jinja", "<|startoftext|>", "<|return|>", True),
}


@lru_cache(maxsize=None)
def tokenizer(name: str) -> Any:
    """A ``PreTrainedTokenizerFast`` carrying template ``name`` (cached per name)."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    spec = TEMPLATES[name]
    tok = PreTrainedTokenizerFast(tokenizer_object=Tokenizer(models.WordLevel({"<unk>": 0}, unk_token="<unk>")),
                                  bos_token=spec.bos, eos_token=spec.eos, unk_token="<unk>")
    tok.chat_template = (TEMPLATE_DIR / spec.file).read_text(encoding="utf-8")
    return tok


def render(name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None = None) -> str:
    """The text template ``name`` renders for ``messages`` and ``tools`` (no generation
    prompt: a training row ends on the model's turn). Raises what the template raises."""
    return tokenizer(name).apply_chat_template(messages, tools=tools or None, tokenize=False)


def _parse_args(arguments: Any) -> Any:
    if isinstance(arguments, str):
        try:
            return json.loads(arguments)
        except json.JSONDecodeError:
            return None
    return arguments


def _leaves(value: Any, path: str = "") -> list[tuple[str, Any]]:
    if isinstance(value, dict):
        out = []
        for k, v in value.items():
            out.append((f"{path}.{k}" if path else str(k), _KEY(k)))
            out += _leaves(v, f"{path}.{k}" if path else str(k))
        return out
    if isinstance(value, list):
        return [leaf for i, v in enumerate(value) for leaf in _leaves(v, f"{path}[{i}]")]
    return [(path, value)]


class _KEY(str):
    """An argument name (looked up as a JSON key or a bare word)."""


def _forms(value: Any) -> list[str]:
    """How a template may print a leaf value: raw, and JSON-encoded with or without
    ASCII escapes (strings without their quotes)."""
    if isinstance(value, str):
        forms = {value, json.dumps(value, ensure_ascii=False)[1:-1], json.dumps(value)[1:-1]}
        return [f for f in forms if f] or ['""']
    if value is None:
        return ["null", "None"]
    return [json.dumps(value), str(value)]


def _has_later_final(messages: list[dict[str, Any]], i: int) -> bool:
    return any(m.get("role") == "assistant" and "tool_calls" not in m for m in messages[i + 1:])


def check_conversation(name: str, messages: list[dict[str, Any]], tools: list[dict[str, Any]] | None,
                       row: Row, field: str = "messages", *, as_is: bool = False) -> list[Problem]:
    """Problems template ``name`` has with one conversation of ``row`` (see the module
    docstring); ``field`` names the conversation in :attr:`Problem.where` (e.g.
    ``prompt+chosen``). Never raises."""
    spec = TEMPLATES[name]
    label = row.label
    problems: list[Problem] = []

    def add(kind: str, where: str, detail: str, severity: str = ERROR) -> None:
        problems.append(Problem(name, kind, label, row.at(f"{field}{where}"), detail, severity))

    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        add("bad-shape", "", "messages is not a list of objects")
        return problems
    msgs = copy.deepcopy(messages)
    for i, m in enumerate(msgs):
        calls = m.get("tool_calls") if m.get("role") == "assistant" else None
        if not isinstance(calls, list):
            continue
        if name == "llama-3.3" and len(calls) > 1:
            add("parallel-calls-unsupported", f"[{i}]",
                f"{len(calls)} tool calls in one message; the Llama 3.3 template raises on more than one",
                LIMIT)
            return problems  # nothing renders: the template raises on this row
        for c in calls:
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict):
                continue
            if spec.object_arguments and not as_is and isinstance(fn.get("arguments"), str):
                parsed = _parse_args(fn["arguments"])
                if isinstance(parsed, dict):
                    fn["arguments"] = parsed
                else:
                    add("arguments-not-object", f"[{i}].tool_calls", f"arguments of {fn.get('name')!r} are "
                        f"not a JSON object text: {str(fn.get('arguments'))[:80]!r}")
    try:
        out = render(name, msgs, tools)
    except Exception as exc:  # noqa: BLE001 - whatever the template raises is the finding
        nulls = [i for i, m in enumerate(messages) if m.get("content") is None]
        if nulls and ("content" in str(exc) or "NoneType" in str(exc)):
            add("null-content-breaks-template", f"{nulls[:5]}", f"{type(exc).__name__}: {str(exc)[:200]}; "
                f"{len(nulls)} messages have content null or missing (transformers drops None-valued keys "
                "before rendering, and this template reads message['content'])")
        else:
            add("render-error", "", f"{type(exc).__name__}: {str(exc)[:300]}")
        return problems

    for i, m in enumerate(messages):
        if m.get("role") != "assistant":
            continue
        calls = m.get("tool_calls") if isinstance(m.get("tool_calls"), list) else []
        text = text_of(m.get("content")).strip()
        if name == "deepseek-v3.1" and not calls and "</think>" in text:
            text = text.split("</think>", 1)[1].strip()
        dropped = ""
        if text and "tool_calls" in m and name == "llama-3.3":
            dropped = "Llama 3.3 renders only the call of a tool-calling message, not its text"
        elif text and "tool_calls" in m and name == "gpt-oss" and _has_later_final(messages, i):
            dropped = "gpt-oss drops the text of a tool-calling turn before a final answer"
        if text and text not in out:
            if dropped:
                add("text-dropped-by-template", f"[{i}].content", dropped, LIMIT)
            else:
                add("assistant-text-missing", f"[{i}].content", f"not in the rendered text: {text[:120]!r}")
        for k, c in enumerate(calls):
            fn = c.get("function") if isinstance(c, dict) else None
            if not isinstance(fn, dict):
                add("bad-tool-call", f"[{i}].tool_calls[{k}]", "a tool call without a function object")
                continue
            if k > 0 and name == "gpt-oss":
                add("parallel-calls-dropped", f"[{i}].tool_calls[{k}]",
                    "the gpt-oss template renders the first tool call of a message only", LIMIT)
                continue
            fname = str(fn.get("name") or "")
            if not fname or fname not in out:
                add("tool-call-missing", f"[{i}].tool_calls[{k}]", f"function name {fname!r} not rendered")
            args = _parse_args(fn.get("arguments"))
            if as_is and spec.object_arguments and isinstance(fn.get("arguments"), str) \
                    and json.dumps(fn["arguments"], ensure_ascii=False)[1:-1] in out and isinstance(args, dict) and args:
                add("arguments-double-encoded", f"[{i}].tool_calls[{k}]",
                    f"{name} applies tojson to the arguments string: the model would learn escaped JSON")
            for where, leaf in _leaves(args) if isinstance(args, (dict, list)) else []:
                forms = [f'"{leaf}"', str(leaf)] if isinstance(leaf, _KEY) else _forms(leaf)
                if not any(f in out for f in forms):
                    add("tool-arguments-missing", f"[{i}].tool_calls[{k}].arguments.{where}",
                        f"{leaf!r} of {fname!r} not in the rendered text")
    return problems


def conversations(row: Row) -> list[tuple[str, list[dict[str, Any]], list[dict[str, Any]] | None]]:
    """The conversations a trainer renders from ``row``: ``(field, messages, tools)``.

    SFT/openai-sft rows: ``messages``. TRL preference rows: ``prompt+chosen`` and
    ``prompt+rejected``. OpenAI preference rows: ``input.messages`` followed by
    ``preferred_output`` and by ``non_preferred_output`` (tools from ``input.tools``)."""
    d = row.data
    if "messages" in d:
        return [("messages", d["messages"], d.get("tools"))]
    if "prompt" in d:
        prompt = d.get("prompt") or []
        return [(f"prompt+{side}", list(prompt) + list(d.get(side) or []), d.get("tools"))
                for side in ("chosen", "rejected")]
    if "input" in d:
        inp = d.get("input") or {}
        return [(f"input+{side}", list(inp.get("messages") or []) + list(d.get(side) or []), inp.get("tools"))
                for side in ("preferred_output", "non_preferred_output")]
    return []


def check_rows(rows: list[Row], names: list[str] | None = None, *, as_is: bool = False) -> list[Problem]:
    """Every conversation of every row through every template in ``names`` (default all
    four); a row with no conversation at all is a ``bad-shape`` problem."""
    problems: list[Problem] = []
    for row in rows:
        convs = conversations(row)
        if not convs:
            problems.append(Problem("templates", "bad-shape", row.label, row.at(),
                                    "no messages, prompt/chosen/rejected or input field"))
        for field, msgs, tools in convs:
            for name in names or list(TEMPLATES):
                problems += check_conversation(name, msgs, tools, row, field, as_is=as_is)
    return problems
