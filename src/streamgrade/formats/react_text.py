"""Plain-text ReAct transcripts (FireAct and the ReAct prompting family): ``Thought:`` /
``Action:`` / ``Observation:`` lines (numbered ``Thought 1:`` or not), inside JSON/JSONL
rows, one session per transcript.

Source: anchen1011/FireAct: ``generation.py`` (how runs are written: ``trajs/<task>_...json``
is ``{question_id: {reward, em, f1, gt, pred, prompt, traj, traj_by_line?}}``, ``traj`` a
string, or a list of chat messages with ``--chatgpt_format``; a finished run ends with
``Observation: Episode finished, reward = <em>``), ``tasks/hotpotqa.py`` (the
``evaluate`` fields), ``prompts/react_hotpotqa_google.txt`` and
``data/finetune/{alpaca_format/*.json, gpt_format/*.jsonl}``; the numbered form is the
original ReAct prompts' (``Thought 1:``, ``Action 1: Search[...]``), and ``Action: tool``
+ ``Action Input: ...`` / ``Final Answer:`` LangChain's ReAct agent text.

Rows (a JSON list, JSONL lines, a single object, or an object keyed by question id):

- a transcript string: the first of ``traj``, ``trajectory``, ``transcript``, ``response``,
  ``completion``, ``output``, ``text`` that holds ReAct lines (or the row itself, a string);
- Alpaca records ``{instruction, input, output}``, and transcripts in the Alpaca prompt
  format (``### Instruction:`` / ``### Input:`` / ``### Response:``, FireAct's fine-tuned
  Llama runs): the instruction (and input) is the task, the response the transcript;
- chat messages (``messages``, ``traj``, ``conversations``, ``trajectory``, ``history``;
  OpenAI or ShareGPT shape) whose assistant turns are ReAct text and whose
  ``Observation:`` user turns are tool results (FireAct's gpt format).

Steps: a Thought starts an agent step (its text is the message); an Action is a tool call:
``name[arg]`` (``search[entity]``, ``lookup[keyword]``, ``finish[answer]``) and
``name(args)`` give the name and the argument text, a JSON object its ``name``/``action``/
``tool`` and ``arguments``/``args``/``action_input``/``input``/``parameters``, a bare
name takes the following ``Action Input``; any other text is a call named ``action`` with
the text as argument. An Observation is the result of the step's next unanswered call
(else environment feedback); ``Final Answer:`` is an agent message. Text of a response
before its first label (FireAct multi-choice options) opens the first agent message.

Task: the row's ``question``/``query``/``instruction`` (+ ``input``), else the Alpaca
instruction, else the transcript's ``Question:``, else its text before the first label
(FireAct writes the question there), else the first user message. A row's
``prompt`` is the task prompt (its Alpaca instruction, or its last ``Question:`` when it
holds examples) when the row has neither a ``traj`` nor a question field, else a system
step (FireAct's few-shot prompt, a string or a message list).

Ground truth: ``reward`` is the first of the row's ``reward``, ``em``, ``correct``,
``is_correct``, ``success`` (bool or number), else the ``reward = X`` of the
``Episode finished`` observation; every ``, reward = X`` is cut from the text the judge
sees (``Episode finished``), and ``gt``/``pred``/``f1`` never reach the steps or ``meta``
(``f1`` is ``metrics["f1"]``). termination: "stop" after a finish/answer call or a Final
Answer, else "unknown".

Finding: ``.json``/``.jsonl`` files not owned by another format (openai_chat's
``owned_elsewhere``: Clones, Harbor, BALROG names) whose first 64 KiB show an ``Action``
label and a ``Thought`` or ``Observation`` label at a line start are parsed; a file is claimed when at least half of its rows (values of a
keyed object) hold ReAct transcripts, so an OpenAI-chat dump with a stray ``Action:`` stays
the generic reader's; a file that looks like ReAct but does not parse is one session whose
assemble reports the error and its line. Ids ``<stem>.<question id>`` (keyed) or ``<stem>.row<i>``; the
fingerprint hashes the row's JSON.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

import msgspec

from ..config import Config
from ..errors import InputError
from ..models import Observation, Session, SessionRef, Step, StepToolCall
from ._rows import file_stem, load_rows, looks_like_json, peek, sanitise
from .mapping import AGENT_ROLES, Fail, agent_session, as_float, as_text, first_user, messages_to_steps, role_of, text_of
from .openai_chat import clones_desktop_folder, owned_elsewhere

NAME = "react-text"
TEXT_FIELDS = ("traj", "trajectory", "transcript", "response", "completion", "output", "text")
MESSAGE_FIELDS = ("messages", "traj", "conversations", "trajectory", "history")
TASK_FIELDS = ("question", "query", "instruction")
REWARD_FIELDS = ("reward", "em", "correct", "is_correct", "success")
ID_FIELDS = ("id", "qid", "question_id", "task_id", "idx")
FINISH = frozenset({"finish", "final_answer", "answer", "submit"})
_LABEL = re.compile(r"^[ \t]*(Thought|Action[ \t]+Input|Action|Observation|Final[ \t]+Answer|Question)"
                    r"(?:[ \t]+(\d+))?[ \t]*:[ \t]*", re.I | re.M)
_ALPACA = re.compile(r"###[ \t]*Instruction:[ \t]*\n?(?P<ins>.*?)(?:\n[ \t]*###[ \t]*Input:[ \t]*\n?(?P<inp>.*?))?"
                     r"\n[ \t]*###[ \t]*Response:[ \t]*\n?(?P<resp>.*)\Z", re.S)
_REWARD = re.compile(r"(Episode finished)\s*,?\s*reward\s*=\s*([^\s,]+)", re.I)
_PEEK_ACTION = re.compile(rb'(?:\\n|")[ \t]*Action(?: \d+)?:')
_PEEK_OTHER = re.compile(rb'(?:\\n|")[ \t]*(?:Thought|Observation)(?: \d+)?:')
_NAMED = re.compile(r"^([A-Za-z_][\w.\-]*)\s*(?:\[(.*)\]|\((.*)\))\s*$", re.S)
_NUMBERED = re.compile(r"^[ \t]*(?:Thought|Action|Observation)[ \t]+\d+[ \t]*:", re.I | re.M)


def blocks(text: str) -> tuple[str, list[tuple[str, str]]]:
    """(text before the first label, [(label, body)]): labels lower-cased, ``action input``
    and ``final answer`` with one space, numbers dropped."""
    ms = list(_LABEL.finditer(text))
    pre = text[: ms[0].start()] if ms else text
    out = [(" ".join(m[1].lower().split()), text[m.end(): ms[i + 1].start() if i + 1 < len(ms) else len(text)].strip())
           for i, m in enumerate(ms)]
    return pre.strip(), out


def is_react(text: Any) -> bool:
    """A string with an Action line and a Thought or Observation line."""
    if not isinstance(text, str) or "ction" not in text:
        return False
    labels = {b[0] for b in blocks(text)[1]}
    return "action" in labels and bool(labels & {"thought", "observation"})


def redact(text: str) -> tuple[str, float | None]:
    """``text`` without ``, reward = X`` after ``Episode finished``, and X as a float."""
    m = _REWARD.search(text)
    return (_REWARD.sub(r"\1", text), as_float(m[2].strip(".")) if m else None)


def parse_action(body: str, call_id: str) -> StepToolCall:
    """An Action's text as a tool call (see module docstring)."""
    m = _NAMED.match(body)
    if m:
        return StepToolCall(id=call_id, name=m[1], arguments=m[2] if m[2] is not None else m[3])
    if body.startswith("{"):
        try:
            obj = json.loads(body)
        except ValueError:
            obj = None
        name = next((obj[k] for k in ("name", "action", "tool") if isinstance(obj, dict) and isinstance(obj.get(k), str)), None)
        if name:
            args = next((obj[k] for k in ("arguments", "args", "action_input", "input", "parameters") if k in obj), {})
            return StepToolCall(id=call_id, name=name, arguments=args if isinstance(args, (dict, str)) else json.dumps(args))
    if re.fullmatch(r"[A-Za-z_][\w.\-]*", body):
        return StepToolCall(id=call_id, name=body, arguments={})
    return StepToolCall(id=call_id, name="action", arguments=body)


def _messages(row: dict) -> tuple[str, list] | None:
    for f in MESSAGE_FIELDS:
        v = row.get(f)
        if isinstance(v, list) and v and all(isinstance(m, dict) for m in v):
            return f, v
    return None


def _react_messages(msgs: list) -> bool:
    said = [m.get("content", m.get("value")) for m in msgs if role_of(m) in AGENT_ROLES]
    heard = [m.get("content", m.get("value")) for m in msgs if role_of(m) not in AGENT_ROLES]
    acts = [t for t in said if isinstance(t, str) and any(b[0] == "action" for b in blocks(t)[1])]
    return bool(acts) and (any(is_react(t) for t in acts) or any(
        isinstance(t, str) and t.lstrip().lower().startswith("observation") for t in heard))


def transcript_of(row: Any) -> tuple[str, Any] | None:
    """(shape, transcript) of a row holding a ReAct transcript: ("text", str) or
    ("messages", (field, list)); None otherwise."""
    if isinstance(row, str):
        return ("text", row) if is_react(row) else None
    if not isinstance(row, dict):
        return None
    for f in TEXT_FIELDS:
        if is_react(row.get(f)):
            return "text", row[f]
    msgs = _messages(row)
    if msgs is not None and _react_messages(msgs[1]):
        return "messages", msgs
    return None


def _rows_of(doc: Any) -> list[tuple[str | None, Any]]:
    """A keyed object's values by key, when it is one (FireAct trajs); else the document."""
    if isinstance(doc, dict) and transcript_of(doc) is None and doc and all(isinstance(v, dict) for v in doc.values()):
        return [(str(k), v) for k, v in doc.items()]
    return [(None, doc)]


class ReactText:
    """The plain-text ReAct transcript format (see module docstring)."""

    name = NAME
    exclusive = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """One ref per transcript of each claimed file (see module docstring)."""
        out: list[SessionRef] = []
        if clones_desktop_folder(names):
            return out
        for n in sorted(names):
            path = str(folder / n)
            if not n.endswith((".json", ".jsonl")) or owned_elsewhere(n) or not looks_like_json(path):
                continue
            head = peek(path)
            if not (_PEEK_ACTION.search(head) and _PEEK_OTHER.search(head)):
                continue
            rows = load_rows(path)
            stem = sanitise(file_stem(n))
            if rows.error is not None:  # looks like ReAct but does not parse: one session that fails
                out.append(SessionRef(session_id=stem, format=NAME, path=path, files=(path,)))
                continue
            if len(rows) == 1 and rows.lines is None:
                keyed = _rows_of(rows.try_row(0))
                if keyed[0][0] is not None:
                    if 2 * sum(transcript_of(v) is not None for _, v in keyed) >= len(keyed) > 0:
                        out += [SessionRef(session_id=f"{stem}.{sanitise(k)}", format=NAME, path=path, files=(path,),
                                           locator=f"key:{k}", fingerprint=_hash(v)) for k, v in keyed]
                    continue
            decoded = [rows.try_row(i) for i in range(len(rows))]
            if 2 * sum(transcript_of(r) is not None for r in decoded) < len(decoded):
                continue
            out += [SessionRef(session_id=f"{stem}.row{i}" if len(rows) > 1 or rows.lines else stem, format=NAME,
                               path=path, files=(path,), locator=str(i), fingerprint=rows.fingerprint(i))
                    for i in range(len(rows))]
        return out

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the transcript at ``ref.locator`` (a row index, or ``key:<question id>``);
        InputError naming the file and the line or field."""
        rows = load_rows(ref.path)
        if rows.error is not None:
            raise rows.error
        if ref.locator.startswith("key:"):
            key = ref.locator[4:]
            try:
                raws = msgspec.json.decode(bytes(rows.raws[0]), type=dict[str, msgspec.Raw])
            except (msgspec.DecodeError, IndexError, TypeError):
                raise InputError(ref.path, "expected an object keyed by question id") from None
            if key not in raws:
                raise InputError(ref.path, "question not found", field=key)
            row = msgspec.json.decode(bytes(raws[key]))
            fail: Fail = lambda f, msg: InputError(ref.path, msg, field=f"{key}.{f}" if f else key)  # noqa: E731
            where: dict[str, Any] = {"key": key}
        else:
            try:
                index = int(ref.locator)
            except ValueError:
                raise InputError(ref.path, f"bad row locator {ref.locator!r}") from None
            if not 0 <= index < len(rows):
                raise InputError(ref.path, f"row {index} not found: the file has {len(rows)} rows")
            row = rows.row(index)
            fail = lambda f, msg: rows.fail(index, f, msg)  # noqa: E731 - errors name this row
            key, where = None, {"row": index}
        return _session(ref, row, key, fail, where)


def _hash(value: Any) -> str:
    return hashlib.sha256(msgspec.json.encode(value)).hexdigest()[:16]


def _str(row: dict, field: str, fail: Fail) -> str | None:
    v = row.get(field)
    if v is not None and not isinstance(v, str):
        raise fail(field, f"expected a string, got {type(v).__name__}")
    return v if v and v.strip() else None


def _alpaca(text: str) -> tuple[str | None, str]:
    """(instruction + input, response) of an Alpaca-format prompt, else (None, text)."""
    m = _ALPACA.search(text)
    if not m:
        return None, text
    inp = (m["inp"] or "").strip()
    return m["ins"].strip() + (f"\n\n{inp}" if inp else ""), m["resp"]


def _prompt_task(prompt: str) -> str:
    task, _ = _alpaca(prompt)
    if task:
        return task
    questions = [b for label, b in blocks(prompt)[1] if label == "question"]
    return questions[-1] if questions else prompt.strip()


def _session(ref: SessionRef, row: Any, key: str | None, fail: Fail, where: dict[str, Any]) -> Session:
    if not isinstance(row, (dict, str)):
        raise fail("", f"expected a row object or a transcript string, got {type(row).__name__}")
    found = transcript_of(row)
    d = row if isinstance(row, dict) else {}
    task = next((t for f in TASK_FIELDS if (t := _str(d, f, fail))), None)
    if task and d.get("instruction") == task and (inp := _str(d, "input", fail)):
        task = f"{task}\n\n{inp}"
    b = _Builder(fail)
    prompt = d.get("prompt")
    if isinstance(prompt, str) and prompt.strip() and not task and "traj" not in d:
        task = _prompt_task(prompt)  # a prompt/response row: the prompt asks the question
    elif prompt:
        b.system(prompt)  # FireAct's few-shot prompt, or instructions beside a question field
    if found is None:  # a row of a claimed file without a ReAct transcript: plain text or messages
        text = row if isinstance(row, str) else next((d[f] for f in TEXT_FIELDS if isinstance(d.get(f), str) and d[f].strip()), None)
        msgs = _messages(d)
        if text is None and msgs is None:
            raise fail("", "no ReAct transcript: no text field (" + ", ".join(TEXT_FIELDS) + ") or messages list")
        found = ("text", text) if text is not None else ("messages", msgs)
    if found[0] == "text":
        shape, (atask, body) = "text", _alpaca(found[1])
        shape = "alpaca" if atask or "instruction" in d else shape
        pre, bl = blocks(body)
        question = next((body_ for label, body_ in bl if label == "question"), None)
        task = task or atask or question or (pre or None)
        if task is None:
            raise fail("", "no task: no question field, Question: line or text before the first Thought")
        b.steps.append(Step(source="user", message=redact(task)[0]))
        b.text(bl, lead=pre if pre and " ".join(pre.split()) != " ".join(task.split()) else None, skip_question=question)
        numbered = bool(_NUMBERED.search(body))
    else:
        shape = "messages"
        field, msgs = found[1]
        for s in messages_to_steps(msgs, fail, field):
            b.add(s)
        task = task or first_user(b.steps)
        if task is None:
            raise fail(field, "no task: no question field and no user message")
        numbered = any(isinstance(m.get("content"), str) and _NUMBERED.search(m["content"]) for m in msgs)
    reward = next((r for f in REWARD_FIELDS if (r := _label(d.get(f))) is not None), b.reward)
    metrics = {"steps": float(len(b.steps))}
    if isinstance(d.get("f1"), (int, float)) and not isinstance(d.get("f1"), bool):
        metrics["f1"] = float(d["f1"])
    model = d.get("model")
    return agent_session(
        ref, b.steps, task=task, fail=fail, reward=reward, metrics=metrics,
        task_id=key or next((t for f in ID_FIELDS if (t := as_text(d.get(f)))), None),
        model=model if isinstance(model, str) and model else None,
        termination="stop" if b.finished else "unknown",
        meta={**where, "shape": shape, "numbered": numbered, "fewshot_prompt": b.fewshot},
    )


def _label(value: Any) -> float | None:
    return as_float(value) if isinstance(value, (bool, int, float)) else None


class _Builder:
    """ReAct blocks and chat steps to canonical steps (the rules of the module docstring)."""

    def __init__(self, fail: Fail) -> None:
        self.fail = fail
        self.steps: list[Step] = []
        self.n = 0
        self.reward: float | None = None
        self.finished = False
        self.fewshot = False

    def system(self, prompt: Any) -> None:
        if isinstance(prompt, list):
            prompt = "\n\n".join(f"{role_of(m) or '?'}: {text_of(m.get('content', m.get('value')), self.fail, f'prompt[{i}].content')}"
                                 for i, m in enumerate(prompt) if isinstance(m, dict))
        if isinstance(prompt, str) and prompt.strip():
            self.steps.append(Step(source="system", message=redact(prompt)[0]))
            self.fewshot = True

    def add(self, step: Step) -> None:
        """A chat step: assistant ReAct text is parsed, user ``Observation:`` turns answer calls."""
        text = step.message or ""
        if step.source == "agent" and not step.tool_calls and _LABEL.search(text):
            pre, bl = blocks(text)
            self.text(bl, lead=pre or None, new_turn=True)
        elif step.source in ("user", "environment") and text.lstrip().lower().startswith("observation"):
            self.text(blocks(text)[1])
        else:
            self.steps.append(step)

    def text(self, bl: list[tuple[str, str]], lead: str | None = None, skip_question: str | None = None,
             new_turn: bool = False) -> None:
        cur: Step | None = None
        if lead:
            cur = Step(source="agent", message=lead)
            self.steps.append(cur)
        elif not new_turn and self.steps and self.steps[-1].source == "agent":
            cur = self.steps[-1]
        for label, body in bl:
            if label == "question":
                if body != skip_question:
                    self.steps.append(Step(source="user", message=body))
                skip_question, cur = None, None
            elif label in ("thought", "final answer"):
                body = f"Final Answer: {body}" if label == "final answer" else body
                self.finished |= label == "final answer"
                if cur is None or cur.tool_calls or cur.observations:
                    cur = Step(source="agent", message=body or None)
                    self.steps.append(cur)
                else:
                    cur.message = f"{cur.message}\n{body}" if cur.message else body
            elif label == "action":
                if cur is None or cur.observations:
                    cur = Step(source="agent")
                    self.steps.append(cur)
                self.n += 1
                call = parse_action(body, f"call_{self.n}")
                cur.tool_calls.append(call)
                self.finished |= call.name.lower() in FINISH
            elif label == "action input":
                if cur is not None and cur.tool_calls and cur.tool_calls[-1].arguments in ({}, ""):
                    cur.tool_calls[-1].arguments = body
            else:  # observation
                content, r = redact(body)
                self.reward = r if r is not None else self.reward
                self.observe(content)
                cur = self.steps[-1] if self.steps and self.steps[-1].source == "agent" else None

    def observe(self, content: str) -> None:
        last = self.steps[-1] if self.steps else None
        if last is not None and last.source == "agent":
            answered = {o.source_call_id for o in last.observations}
            free = next((c for c in last.tool_calls if c.id not in answered), None)
            if free is not None:
                last.observations.append(Observation(content=content, source_call_id=free.id))
                return
        self.steps.append(Step(source="environment", message=content))

