"""OpenHands LLM completion logs (``log_completions``): a folder of one JSON file per LLM
call, one session per folder.

Source: All-Hands-AI/OpenHands ``openhands/llm/llm.py`` (the completion wrapper: with
``LLMConfig.log_completions`` every call is written to
``<log_completions_folder>/<model with / as __>-<time.time()>.json``) and
``evaluation/utils/shared.py`` (``update_llm_config_for_completions_logging``: an evaluation
logs each instance to ``<eval_output_dir>/llm_completions/<instance_id>/``). A file is
``{messages, response, args, kwargs {tools, tool_choice, ...}, timestamp, cost}``;
``messages`` are the request's OpenAI chat messages (content as a string or a list of parts
``{type: text, text, cache_control?}``, assistant ``tool_calls``, ``tool`` results with
``tool_call_id``), ``response`` the litellm ``ModelResponse`` (``{id, model, choices
[{message, finish_reason}], usage}``). When OpenHands emulated tool calling for a model
without it (``mock_function_calling``), ``messages``/``response`` are the plain-text prompt
and answer and ``fncall_messages``/``fncall_response`` the tool-calling ones, which are read
instead; ``args``, ``cost`` and ``timestamp`` are not needed (the time is in the name).

Finding: in a folder, the ``*-<epoch seconds>.json`` files whose first bytes are
``{"messages"``; one session per folder (``<folder name>``, the instance id under
``llm_completions/``; ref path = the folder, files = every completion file, so a new call
changes the fingerprint). Only names and the first bytes are looked at.

Assembling: each call's messages hold the whole conversation so far, so the run is read from
the latest call of the agent: the files are grouped by the model in their name (the metric model name:
another LLM's calls, an editor's or a condenser's, may share the folder) and the group with
the most calls is the agent's (ties: the group of the latest file); its latest
file by the time in the name gives the steps, its ``messages`` followed by the response's
message, through :func:`~.mapping.messages_to_steps`. A folder holding several runs (the
default ``logs/completions`` of an interactive OpenHands, or a retried instance) gives the
latest run. Fields: task = the first user message; task_id = the folder name under
``llm_completions/``, else None; model = the model in the file name (``__`` as ``/``), else
``response.model``; tools = ``kwargs.tools``; reward None (the logs hold no verdict);
termination ``finish`` when the final response calls ``finish``, ``stop`` when it calls
nothing, else ``unknown`` (the run may have hit its iteration limit: the logs do not say);
metrics ``llm_calls`` (files of the agent's model), ``context_tokens`` (the final call's
``usage.prompt_tokens``); duration_s from the first to the latest call time of the agent.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..inputs import open_regular
from ..models import Session, SessionRef, Step
from ._rows import sanitise
from .base import load_json
from .mapping import Fail, agent_session, messages_to_steps

NAME = "openhands-completions"
FILE = re.compile(r"^(?P<model>.+)-(?P<t>\d{9,}(?:\.\d+)?)\.json$")
HEAD = re.compile(rb'^\s*\{\s*"messages"\s*:')


def _is_log(path: Path) -> bool:
    try:
        with open_regular(path) as fh:
            head = fh.read(64)
    except (OSError, InputError):
        return False
    return HEAD.match(head) is not None


def _calls(names: list[str]) -> list[tuple[float, str, str]]:
    """(time, model, name) of the completion-log names, oldest first."""
    out = []
    for n in names:
        m = FILE.match(n)
        if m:
            out.append((float(m["t"]), m["model"], n))
    return sorted(out)


def agent_calls(names: list[str]) -> list[tuple[float, str, str]]:
    """The calls of the agent's model (the model with the most calls; ties go to the model
    of the latest call), oldest first."""
    calls = _calls(names)
    if not calls:
        return []
    counts = Counter(model for _, model, _ in calls)
    most = max(counts.values())
    model = next(m for _, m, _ in reversed(calls) if counts[m] == most)
    return [c for c in calls if c[1] == model]


class OpenHandsCompletions:
    """OpenHands completion-log folders (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per folder holding completion logs (names and first bytes only)."""
        logs = [n for _, _, n in _calls(names) if _is_log(folder / n)]
        if not logs:
            return []
        files = tuple(str(folder / n) for n in sorted(logs))
        return [SessionRef(session_id=sanitise(folder.name), format=NAME, path=str(folder), files=files)]

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """The run of the agent's latest call. Raises InputError naming the file and field
        (``messages[3].tool_calls[0].function.name``)."""
        calls = agent_calls([Path(f).name for f in ref.files])
        if not calls:
            raise InputError(ref.path, "no completion log files (<model>-<epoch seconds>.json)")
        first_t, model, latest = calls[0][0], calls[-1][1], calls[-1][2]
        path = str(Path(ref.path) / latest)
        fail: Fail = lambda f, msg: InputError(path, msg, field=f or None)  # noqa: E731
        doc = load_json(path)
        if not isinstance(doc, dict):
            raise fail("", f"expected a JSON object, got {type(doc).__name__}")
        key = "fncall_messages" if doc.get("fncall_messages") is not None else "messages"
        rkey = "fncall_response" if key == "fncall_messages" and doc.get("fncall_response") is not None else "response"
        if doc.get(key) is None:
            raise fail(key, "missing field")
        steps = messages_to_steps(doc[key], fail, key)
        response = doc.get(rkey)
        steps += _response_steps(response, fail, rkey)
        kwargs = doc.get("kwargs")
        tools = kwargs.get("tools") if isinstance(kwargs, dict) else None
        if tools is not None and (not isinstance(tools, list) or not all(isinstance(t, dict) for t in tools)):
            raise fail("kwargs.tools", "expected a list of tool definition objects")
        last = calls[-1][0]
        usage = response.get("usage") if isinstance(response, dict) else None
        ctx = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        metrics = {"llm_calls": float(len(calls))}
        if isinstance(ctx, (int, float)) and not isinstance(ctx, bool):
            metrics["context_tokens"] = float(ctx)
        rmodel = response.get("model") if isinstance(response, dict) else None
        folder = Path(ref.path)
        return agent_session(
            ref, steps, fail=fail,
            task_id=folder.name if folder.parent.name == "llm_completions" else None,
            model=model.replace("__", "/") or (rmodel if isinstance(rmodel, str) else None),
            tools=tools or [],
            termination=_termination(steps),
            metrics=metrics,
            meta={"file": latest, "calls_in_folder": len(ref.files), "mock_function_calling": key == "fncall_messages"},
            duration_s=max(0.0, last - first_t),
        )


def _response_steps(response: Any, fail: Fail, field: str) -> list[Step]:
    """The step of the response's first choice message (role ``assistant`` when missing)."""
    if not isinstance(response, dict):
        raise fail(field, "missing field" if response is None else f"expected an object, got {type(response).__name__}")
    choices = response.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise fail(f"{field}.choices", "expected a non-empty list of choice objects")
    message = choices[0].get("message")
    where = f"{field}.choices[0].message"
    if not isinstance(message, dict):
        raise fail(where, "missing field" if message is None else f"expected an object, got {type(message).__name__}")
    message = message if message.get("role") else {**message, "role": "assistant"}
    steps = messages_to_steps([message], lambda f, msg: fail(where + f[len("m[0]"):], msg), "m")
    model = response.get("model")
    for s in steps:
        s.model = model if isinstance(model, str) else None
    return steps


def _termination(steps: list[Step]) -> str:
    last = steps[-1] if steps else None
    if last is None or last.source != "agent":
        return "unknown"
    if any(c.name == "finish" for c in last.tool_calls):
        return "finish"
    return "unknown" if last.tool_calls else "stop"


__all__ = ["OpenHandsCompletions", "agent_calls"]
