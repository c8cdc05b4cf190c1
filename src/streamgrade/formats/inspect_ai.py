"""Inspect AI evaluation logs (UKGovernmentBEIS/inspect_ai): ``.eval`` zips and ``.json``
logs, one session per sample and epoch.

Built from the project's source: ``src/inspect_ai/log/_log.py`` (``EvalLog``, ``EvalSpec``,
``EvalSample``, ``EvalSampleLimit``, the legacy ``score``/``transcript`` migrations),
``log/_recorders/eval.py`` and ``json.py`` (file layouts, see :mod:`._inspect_log`),
``log/_condense.py`` (``attachment://<hash>`` references, formerly ``tc://``),
``model/_chat_message.py`` (system/user/assistant/tool messages; ``<think>`` blocks and the
legacy ``reasoning`` field; legacy ``tool_error``), ``_util/content.py`` (content parts),
``tool/_tool_call.py`` (``{id, function, arguments, parse_error?}``, ``ToolCallError``) and
``scorer/_metric.py`` (``Score``, ``value_to_float``).

Finding: every ``*.eval`` file (the zip's central directory and its header member are read,
never a sample) and every ``*.json`` file whose first bytes are an object starting with a
numeric ``version`` and naming ``eval`` (Inspect writes ``version`` first). A log that
cannot be read (not a zip, truncated, not JSON, over the size limits) is one session
(``<stem>``) whose assemble reports why; a log without samples yet (a running eval:
``_journal/start.json`` only) has no session and is not reported as unrecognised
(:func:`owned`).

Session id ``<task>.<eval_id>.<sample id>.epoch<n>`` (``eval_id``, else ``task_id`` or
``run_id`` of older logs; the file stem when the log names none); ``locator`` the zip member
(``samples/3_epoch_1.json``) or the index in ``samples``; ``fingerprint`` from the member's
CRC-32 and size, or a hash of the sample's JSON text, so a sample is graded again only when
it changes.

A session: ``steps`` from the sample's ``messages`` (attachments resolved) through the
mapping layer; when a sample has none (it failed before the first message), its ``input``
and its ``output`` message. ``task`` = the sample's ``input`` (a string, or the first user
message of a message list). ``model`` = ``eval.model``, else ``output.model``; ``agent`` =
``eval.solver``, else the plan's solvers joined by ``+``; ``task_id`` = ``<task>/<sample
id>``; ``trial`` = the epoch. ``reward``: when a sample has several scores, the first scorer
in ``eval.scorers`` order (then ``results.scores``, then the sample's own order) whose value
is a scalar wins: ``C`` 1, ``I`` 0, ``P`` 0.5, ``N`` 0, ``yes``/``true`` 1, ``no``/``false`` 0,
numbers (and numeric strings) as they are, bools 1/0; ``null``/NaN (unscored) is no reward.
Every score is in ``metrics`` as ``score_<scorer>`` (``score_<scorer>.<key>`` for list and
dict values). ``termination``: ``error`` when the sample has an ``error``, ``<type>_limit``
for a ``limit`` (message, token, time, working, context, cost, operator, custom), else the
output's ``stop_reason`` (stop, max_tokens, model_length, tool_calls, content_filter,
unknown), else None. Metrics also hold the tokens of ``model_usage`` summed over models
(``input_tokens``, ``output_tokens``, ``total_tokens``, ``cache_read_tokens``,
``cache_write_tokens``, ``reasoning_tokens``, ``cost_usd``), ``working_time_s`` and
``retries``; ``duration_s`` is ``total_time``. ``tools`` are the first model event's tools.

Never read into the task, steps or meta: the sample's ``target``, ``scores`` (values,
answers, explanations, the grader's chat in their metadata), ``metadata`` and ``store``
(benchmarks keep reference solutions there), ``choices`` and ``events`` (score events
repeat the target).
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Any, Callable

from ..config import Config
from ..errors import InputError
from ..models import SessionRef, Session
from ._inspect_log import LogIndex, json_sample, load_index, looks_like_json_log, read_member
from ._rows import sanitise
from .mapping import Fail, agent_session, as_text, first_user, messages_to_steps

NAME = "inspect-ai"
_ATTACHMENT = re.compile(r"^(?:attachment|tc)://(.+)$")
_THINK = re.compile(r"\s*<think>(.*?)</think>\s*(.*)\Z", re.S)
_LETTERS = {"C": 1.0, "I": 0.0, "P": 0.5, "N": 0.0}
_WORDS = {"yes": 1.0, "true": 1.0, "no": 0.0, "false": 0.0}
_USAGE = {"input_tokens": "input_tokens", "output_tokens": "output_tokens", "total_tokens": "total_tokens",
          "input_tokens_cache_read": "cache_read_tokens", "input_tokens_cache_write": "cache_write_tokens",
          "reasoning_tokens": "reasoning_tokens", "total_cost": "cost_usd"}


def is_candidate(folder: Path, name: str) -> bool:
    """A file this format reads: any ``.eval``, a ``.json`` that starts like an Inspect log."""
    return name.endswith(".eval") or (name.endswith(".json") and looks_like_json_log(str(folder / name)))


def owned(folder: Path, names: list[str]) -> set[str]:
    """Inspect logs in ``folder`` that hold no sample yet (a running eval): not sessions, not
    unrecognised either."""
    return {n for n in names if is_candidate(folder, n)
            and (ix := load_index(str(folder / n))).error is None and not ix.entries}


def _part(text: Any) -> str:
    s = sanitise(text).strip(".") if isinstance(text, str) else ""
    return "" if s in ("", "_") else s


class InspectLog:
    """The Inspect AI log format (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per sample and epoch of each log in ``folder``; one failing ref for a log
        that cannot be read. Never raises."""
        out: list[SessionRef] = []
        for n in sorted(names):
            if not is_candidate(folder, n):
                continue
            path = str(folder / n)
            index = load_index(path)
            stem = _part(Path(n).stem) or "log"
            if index.error is not None:
                out.append(SessionRef(session_id=stem, format=NAME, path=path, files=(path,)))
                continue
            ev = index.header.get("eval") if isinstance(index.header.get("eval"), dict) else {}
            ident = next((p for p in map(_part, (ev.get("eval_id"), ev.get("task_id"), ev.get("run_id"))) if p), "")
            base = f"{_part(ev.get('task'))}.{ident}" if _part(ev.get("task")) and ident else stem
            seen: set[str] = set()
            for k, e in enumerate(index.entries):
                sid = f"{base}.{_part(e.id)}.epoch{e.epoch}" if _part(e.id) and e.epoch is not None else f"{base}.sample{k}"
                if sid in seen:
                    sid = f"{sid}.n{k}"
                seen.add(sid)
                out.append(SessionRef(session_id=sid, format=NAME, path=path, files=(path,), locator=e.locator,
                                      fingerprint=e.fingerprint))
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the sample at ``ref.locator``. Raises InputError naming the file and the zip
        member (``x.eval: samples/1_epoch_1.json: messages[2].tool_calls[0]...``) or the
        sample's field (``x.json: samples[0].messages[2]...``)."""
        index = load_index(ref.path)
        if index.error is not None:
            raise index.error
        entry = index.entry(ref.locator)
        if entry is None:
            raise InputError(ref.path, f"sample {ref.locator!r} not found: the log changed since it was scanned")
        fail: Fail
        if index.kind == "eval":
            member = entry.locator
            if entry.chunked:
                raise InputError(ref.path, "a sample in Inspect's chunked layout (samples/<id>_epoch_<n>/), "
                                           "which this reader does not read", field=member)
            if index.header_error is not None:
                raise index.header_error
            sample = read_member(index, member)
            fail = lambda f, msg: InputError(ref.path, msg, field=f"{member}: {f}" if f else member)  # noqa: E731
            where: dict[str, Any] = {"member": member}
        else:
            i = int(entry.locator)
            sample = json_sample(index, i)
            fail = lambda f, msg: InputError(ref.path, msg, field=f"samples[{i}].{f}" if f else f"samples[{i}]")  # noqa: E731
            where = {"index": i}
        return sample_session(ref, index, sample, fail, where)


# -- one sample ---------------------------------------------------------------------------
def sample_session(ref: SessionRef, index: LogIndex, sample: Any, fail: Fail, where: dict[str, Any]) -> Session:
    """The session of one ``EvalSample`` (see the module docstring for what is read)."""
    if not isinstance(sample, dict):
        raise fail("", f"expected a sample object, got {type(sample).__name__}")
    header = index.header
    ev = header.get("eval") if isinstance(header.get("eval"), dict) else {}
    resolve = _resolver(sample, fail)
    messages = sample.get("messages")
    if messages is not None and not isinstance(messages, list):
        raise fail("messages", f"expected a list of messages, got {type(messages).__name__}")
    steps = messages_to_steps([_normal(m, resolve) for m in messages or []], fail, "messages")
    output = sample.get("output") if isinstance(sample.get("output"), dict) else {}
    choices = output.get("choices") if isinstance(output.get("choices"), list) else []
    choice = choices[0] if choices and isinstance(choices[0], dict) else {}
    if not steps:  # no conversation logged: the input, and the output's message
        first = sample.get("input")
        msgs = [{"role": "user", "content": first}] if isinstance(first, str) else first if isinstance(first, list) else []
        if isinstance(choice.get("message"), dict):
            msgs = [*msgs, choice["message"]]
        steps = messages_to_steps([_normal(m, resolve) for m in msgs], fail, "input")
    reward, scorer, metrics = _scores(sample, header, fail)
    metrics.update(_usage(sample.get("model_usage"), fail))
    for key, name in (("working_time", "working_time_s"),):
        if _finite(sample.get(key)) is not None:
            metrics[name] = float(sample[key])
    if isinstance(sample.get("error_retries"), list) and sample["error_retries"]:
        metrics["retries"] = float(len(sample["error_retries"]))
    termination, error = _termination(sample, choice, output)
    meta = {"log": index.kind, "log_version": header.get("version"), "eval_id": ev.get("eval_id"),
            "run_id": ev.get("run_id"), "task": ev.get("task"), "sample_id": sample.get("id"),
            "epoch": sample.get("epoch"), "uuid": sample.get("uuid"), **where,
            "n_messages": len(messages or []), "reward_scorer": scorer, "error": error,
            "stop_reason": choice.get("stop_reason") or output.get("stop_reason"), "output_model": output.get("model")}
    plan = header.get("plan") if isinstance(header.get("plan"), dict) else {}
    solvers = [s.get("solver") for s in _list(plan.get("steps")) if isinstance(s, dict) and isinstance(s.get("solver"), str)]
    sid, task = as_text(sample.get("id")), as_text(ev.get("task"))
    return agent_session(
        ref, steps, task=_task(sample.get("input"), resolve, fail), fail=fail,
        task_id=(f"{task}/{sid}" if task and sid is not None else sid), trial=as_text(sample.get("epoch")),
        model=as_text(ev.get("model")) or as_text(output.get("model")),
        agent=as_text(ev.get("solver")) or ("+".join(solvers) or None),
        reward=reward, termination=termination, metrics=metrics, tools=_tools(sample, resolve),
        duration_s=_finite(sample.get("total_time")),
        meta={k: v for k, v in meta.items() if v is not None and (isinstance(v, (str, int, float)))})


def _resolver(sample: dict, fail: Fail) -> Callable[[Any], Any]:
    """``attachment://<hash>`` (and the older ``tc://``) strings to their text in the sample's
    ``attachments`` (``transcript.content`` in logs before 0.3.4x); other values as they are."""
    atts = sample.get("attachments")
    if atts is None and isinstance(sample.get("transcript"), dict):
        atts = sample["transcript"].get("content")
    if atts is None:
        return lambda v: v
    if not isinstance(atts, dict):
        raise fail("attachments", f"expected an object of attachments, got {type(atts).__name__}")

    def resolve(v: Any) -> Any:
        if isinstance(v, str) and (m := _ATTACHMENT.match(v)) and isinstance(atts.get(m[1]), str):
            return atts[m[1]]
        return v
    return resolve


def _deep(value: Any, resolve: Callable[[Any], Any]) -> Any:
    """``value`` with every string in it resolved (iterative: no nesting depth exhausts the
    stack)."""
    if not isinstance(value, (dict, list)):
        return resolve(value)
    out: Any = {} if isinstance(value, dict) else []
    stack = [(value, out)]
    while stack:
        src, dst = stack.pop()
        for k, v in (src.items() if isinstance(src, dict) else enumerate(src)):
            nv = ({} if isinstance(v, dict) else []) if isinstance(v, (dict, list)) else resolve(v)
            if isinstance(v, (dict, list)):
                stack.append((v, nv))
            if isinstance(dst, dict):
                dst[k] = nv
            else:
                dst.append(nv)
    return out


def _normal(m: Any, resolve: Callable[[Any], Any]) -> Any:
    """An Inspect message with its attachments resolved and an assistant's leading
    ``<think>...</think>`` block split off as a reasoning part (as Inspect reads it)."""
    if not isinstance(m, dict):
        return m
    m = dict(m)
    content = m.get("content")
    if isinstance(content, str):
        content = resolve(content)
        think = _THINK.match(content) if m.get("role") == "assistant" else None
        m["content"] = ([{"type": "reasoning", "reasoning": think[1]}, {"type": "text", "text": think[2]}]
                        if think else content)
    elif isinstance(content, list):
        m["content"] = [{k: (resolve(v) if k in ("text", "reasoning", "summary", "result", "arguments", "image") else v)
                         for k, v in p.items()} if isinstance(p, dict) else p for p in content]
    if isinstance(m.get("tool_calls"), list):
        m["tool_calls"] = [{**c, "arguments": _deep(c["arguments"], resolve)} if isinstance(c, dict) and "arguments" in c
                           else c for c in m["tool_calls"]]
    return m


def _task(value: Any, resolve: Callable[[Any], Any], fail: Fail) -> str | None:
    """The sample's input as the task: a string, or the first user message of a list."""
    if value is None:
        return None
    if isinstance(value, str):
        text = resolve(value)
        return text if isinstance(text, str) and text.strip() else None
    if not isinstance(value, list):
        raise fail("input", f"expected a string or a list of messages, got {type(value).__name__}")
    steps = messages_to_steps([_normal(m, resolve) for m in value], fail, "input")
    return first_user(steps) or next((s.message for s in steps if s.message and s.message.strip()), None)


def score_value(value: Any) -> float | None:
    """A score value as a number (Inspect's ``value_to_float``), or None for a value that
    is not a scalar, not finite (unscored) or a string that names no number."""
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return _finite(value)
    if isinstance(value, str):
        if value in _LETTERS:
            return _LETTERS[value]
        low = value.strip().lower()
        if low in _WORDS:
            return _WORDS[low]
        try:
            return _finite(float(low))
        except ValueError:
            return None
    return None


def _list(value: Any) -> list:
    return value if isinstance(value, list) else []


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value) if math.isfinite(value) else None


def _scores(sample: dict, header: dict, fail: Fail) -> tuple[float | None, str | None, dict[str, float]]:
    """(reward, the scorer it came from, every score as metrics); see the module docstring."""
    scores = sample.get("scores")
    if scores is None and isinstance(sample.get("score"), dict):  # logs before multiple scorers
        results = header.get("results") if isinstance(header.get("results"), dict) else {}
        first = (results.get("scores") or [None])[0] if isinstance(results.get("scores"), list) else results.get("scorer")
        scores = {(first.get("name") if isinstance(first, dict) and isinstance(first.get("name"), str) else "score"):
                  sample["score"]}
    if scores is None:
        return None, None, {}
    if not isinstance(scores, dict):
        raise fail("scores", f"expected an object of scores, got {type(scores).__name__}")
    metrics: dict[str, float] = {}
    for name, score in scores.items():
        if not isinstance(score, dict):
            raise fail(f"scores.{name}", f"expected a score object, got {type(score).__name__}")
        value = score.get("value")
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else [(None, value)]
        for key, v in items:
            if (x := score_value(v)) is not None:
                metrics[f"score_{name}" if key is None else f"score_{name}.{key}"] = x
    ev = header.get("eval") if isinstance(header.get("eval"), dict) else {}
    results = header.get("results") if isinstance(header.get("results"), dict) else {}
    named = [s.get("name") for s in _list(ev.get("scorers")) if isinstance(s, dict)]
    named += [s.get(k) for s in _list(results.get("scores")) if isinstance(s, dict) for k in ("scorer", "name")]
    order: list[str] = []
    for n in [x for x in named if isinstance(x, str)] + list(scores):
        hit = n if n in scores else next((k for k in scores if n.rsplit("/", 1)[-1] == k), None)
        if hit is not None and hit not in order:
            order.append(hit)
    for n in order:
        if (x := score_value(scores[n].get("value"))) is not None:
            return x, n, metrics
    return None, None, metrics


def _usage(usage: Any, fail: Fail) -> dict[str, float]:
    """Token counts (and cost) of ``model_usage`` ``{model: ModelUsage}``, summed over models."""
    if usage is None:
        return {}
    if not isinstance(usage, dict):
        raise fail("model_usage", f"expected an object of usage by model, got {type(usage).__name__}")
    out: dict[str, float] = {}
    for u in usage.values():
        for key, name in _USAGE.items():
            if isinstance(u, dict) and (x := _finite(u.get(key))) is not None:
                out[name] = out.get(name, 0.0) + x
    return out


def _termination(sample: dict, choice: dict, output: dict) -> tuple[str | None, str | None]:
    """(why the sample ended, the error message when it failed)."""
    error = sample.get("error")
    if error:
        message = error.get("message") if isinstance(error, dict) else error
        return "error", message[:2000] if isinstance(message, str) else None
    limit = sample.get("limit")
    kind = limit.get("type") if isinstance(limit, dict) else limit
    if isinstance(kind, str) and kind:
        return f"{kind}_limit", None
    stop = choice.get("stop_reason") or output.get("stop_reason")
    return (stop if isinstance(stop, str) and stop else None), None


def _tools(sample: dict, resolve: Callable[[Any], Any]) -> list[dict[str, Any]]:
    """The tools offered to the model (the first model event's ``tools``: ``ToolInfo``
    ``{name, description, parameters}``), in OpenAI function shape."""
    events = sample.get("events")
    if events is None and isinstance(sample.get("transcript"), dict):
        events = sample["transcript"].get("events")
    for e in events if isinstance(events, list) else []:
        if isinstance(e, dict) and e.get("event") == "model" and isinstance(e.get("tools"), list) and e["tools"]:
            return [{"type": "function", "function": {
                        "name": t["name"], "description": _text(resolve(t.get("description"))),
                        "parameters": t.get("parameters") if isinstance(t.get("parameters"), dict) else {}}}
                    for t in e["tools"] if isinstance(t, dict) and isinstance(t.get("name"), str)]
    return []


__all__ = ["InspectLog", "NAME", "owned", "is_candidate", "score_value", "sample_session"]
