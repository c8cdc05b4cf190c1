"""The records that flow through the pipeline, as msgspec Structs.

Flow: a source finds a :class:`SessionRef` (where a session lives and a fingerprint of its
files), a format assembles it into a :class:`Session` (task, raw metadata and the extracted
:class:`Action` list, times in ms from the session's first event), the formatter renders
:class:`Message` objects (Clones' sft.json shape), chunking cuts them into :class:`Chunk`
objects, a judge returns a :class:`Verdict`, and the sinks write a :class:`ScoreRecord`.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

Status = Literal["graded", "failed", "ungradable"]


class ToolFunction(msgspec.Struct):
    """The function of an OpenAI tool call: ``name`` and ``arguments`` as a JSON string."""

    name: str
    arguments: str = "{}"


class ToolCall(msgspec.Struct):
    """An OpenAI-shaped tool call (Chat Completions API): ``{id, type: "function",
    function: {name, arguments}}``; arguments always a JSON string."""

    id: str
    function: ToolFunction
    type: str = "function"


class ChatMessage(msgspec.Struct, omit_defaults=True):
    """One message of an agent trajectory in OpenAI chat shape: ``role`` (system, user,
    assistant, tool), ``content`` (text or None when an assistant only calls tools),
    ``tool_calls`` (assistant), ``tool_call_id`` and ``name`` (tool results),
    ``reasoning_content`` (the model's reasoning when the trace has it; ATIF)."""

    role: str
    content: str | None = None
    tool_calls: list[ToolCall] | None = None
    tool_call_id: str | None = None
    name: str | None = None
    reasoning_content: str | None = None


class StepToolCall(msgspec.Struct, omit_defaults=True):
    """A tool call of an agent step (ATIF ``tool_calls[]``): ``id`` (ATIF ``tool_call_id``;
    ``call_<step>_<k>`` when the source gives none), ``name`` (``function_name``) and
    ``arguments`` as the source gave them: an object, or a string (a JSON text that did not
    decode to an object, a shell command, a ReAct action's argument)."""

    id: str
    name: str
    arguments: dict[str, Any] | str = msgspec.field(default_factory=dict)


class Observation(msgspec.Struct, omit_defaults=True):
    """What the environment returned (ATIF ``observation.results[]``): ``content`` as text;
    ``source_call_id`` the tool call it answers, or None for feedback that answers no call
    (a terminal's output, a game's next state); ``is_error`` when the source says so."""

    content: str
    source_call_id: str | None = None
    is_error: bool | None = None


class Step(msgspec.Struct, omit_defaults=True):
    """One step of an agent trajectory: the canonical model every reader produces, after
    ATIF (Harbor's Agent Trajectory Interchange Format v1.x, ``steps[]``).

    ``source`` is ``system``, ``user`` or ``agent`` (ATIF's three), or ``environment`` for
    feedback that belongs to no agent step (a game's first observation); ``message`` the
    text; ``reasoning`` the model's reasoning when the trace has it; ``tool_calls`` the
    agent's calls; ``observations`` the results, each linked to its call by
    ``source_call_id``; ``metrics`` per-step figures (``prompt_tokens``,
    ``completion_tokens``, ``cost_usd``, ...); ``timestamp`` ISO 8601 as given; ``model``
    the model that produced an agent step, when the trace names it; ``extra`` format-specific
    flags of the step (ATIF's step ``extra``), e.g. BALROG Crafter's ``{"invalid_action":
    True, "executed_action": "Noop"}`` on a kept step whose output was no valid action."""

    source: str
    message: str | None = None
    reasoning: str | None = None
    tool_calls: list[StepToolCall] = []
    observations: list[Observation] = []
    metrics: dict[str, float] = {}
    timestamp: str | None = None
    model: str | None = None
    extra: dict[str, Any] = {}


class SessionRef(msgspec.Struct, frozen=True):
    """Where one session lives, before it is read.

    ``session_id`` is unique within a run (the Clones folder or file stem); ``path`` is the
    folder or file that names the session (``source_path`` in scores.jsonl); ``files`` are
    every file the session is read from, for fingerprinting and settle checks; ``fingerprint``
    is a hex digest of the files' names, sizes and modification times (ns), so a changed
    session gets a new fingerprint and is graded again.
    """

    session_id: str
    format: str
    path: str
    files: tuple[str, ...]
    fingerprint: str = ""
    locator: str = ""


class Action(msgspec.Struct, omit_defaults=True):
    """One user action extracted from raw events.

    ``kind`` is one of click, double_click, press_hold, drag, scroll, type, key, hotkey,
    app_focus (more kinds come with later formats). ``t_ms`` is the start in milliseconds
    from the session start, ``end_ms`` the end. ``x``/``y`` are screen coordinates in the
    recording's logical points (Clones desktop: macOS points, not physical pixels).
    ``button`` is left/right/middle; ``dx``/``dy`` the summed scroll delta in recorder units;
    ``ticks`` the number of raw wheel events coalesced; ``text`` typed text, app name;
    ``keys`` the keys of a key/hotkey action; ``path`` the downsampled drag path.
    """

    kind: str
    t_ms: int
    end_ms: int | None = None
    x: int | None = None
    y: int | None = None
    button: str | None = None
    dx: float | None = None
    dy: float | None = None
    ticks: int | None = None
    text: str | None = None
    keys: list[str] | None = None
    path: list[tuple[int, int]] | None = None


class Message(msgspec.Struct):
    """One SFT message, compatible with Clones' sft.json entries: ``role`` (user, assistant
    or system), ``content`` (text; actions as a Python call in a fenced code block) and
    ``timestamp`` in ms from the session start. A frame is a user message whose content is
    Clones' image entry ``{"type": "image", "data": "frames/<t_ms>.jpg"}`` (a path relative
    to the session's output folder instead of inline base64)."""

    role: str
    content: str | dict[str, str]
    timestamp: int = 0


class Session(msgspec.Struct):
    """A session as read from its files, ready to format and grade.

    ``task`` is the instruction the human or agent was given (Clones: the quest);
    ``objectives`` its listed sub-goals; ``actions`` the extracted actions in time order;
    ``events`` extra context events (web sessions' hints), ``duration_s`` seconds from the
    first to the last event; ``reward`` the input's own ground truth when the format has one
    (0-1 for most; Crafter's episode_return, -1 to ~20), else None (judges never see it); ``meta`` format-specific fields.

    Agent trajectories (``kind`` "agent") also carry: ``task_id``, ``trial``, ``agent`` and
    ``model`` when known; ``steps`` the canonical trajectory (:class:`Step`, after ATIF);
    ``transcript`` its OpenAI chat view (built from the steps by
    :func:`streamgrade.formats.mapping.chat_view`; what judges and exports read); ``tools`` the tool
    (function) definitions when the trace has them; ``termination`` why the run ended
    (e.g. "stop", "max_steps", "timeout", "error") when known; ``metrics`` typed extra
    figures (achievements, progression, episode_return, tokens, cost_usd, ...). Recorded
    human demonstrations have ``kind`` "demonstration"; game episodes (observation/action
    loops with no user, e.g. BALROG Crafter) have ``kind`` "episode" and a transcript too.
    ``video`` is the screen recording's path when there is one; a session time t (ms) is
    video time ``t + video_offset_ms``. ``reference_actions`` is the benchmark's reference
    action sequence when it ships one (ground truth: tau-bench ``info.task.actions``, tau2
    ``evaluation_criteria.actions``), as :func:`streamgrade.golden.reference_actions` gives
    it, else None: only :mod:`streamgrade.golden` reads it; no judge, file or export shows it.
    """

    ref: SessionRef
    task: str
    objectives: list[str] = []
    app: str | None = None
    actions: list[Action] = []
    events: list[Message] = []
    duration_s: float | None = None
    reward: float | None = None
    meta: dict[str, Any] = {}
    kind: str = "demonstration"
    task_id: str | None = None
    trial: str | None = None
    agent: str | None = None
    model: str | None = None
    transcript: list[ChatMessage] = []
    steps: list[Step] = []
    tools: list[dict[str, Any]] = []
    termination: str | None = None
    metrics: dict[str, float] = {}
    success: bool | None = None
    p_success_judge: float | None = None
    failure_cause: str | None = None
    video: str | None = None
    video_offset_ms: float = 0.0
    reference_actions: list[dict[str, Any]] | None = None

    @property
    def has_transcript(self) -> bool:
        """Agent trajectories and game episodes are graded from their transcript."""
        return self.kind in ("agent", "episode")

    @property
    def turns(self) -> int:
        """Assistant turns in the transcript (agents), else the number of actions."""
        if self.transcript:
            return sum(1 for m in self.transcript if m.role == "assistant")
        return len(self.actions)

    @property
    def n_tool_calls(self) -> int:
        """Tool calls made in the transcript."""
        return sum(len(m.tool_calls or []) for m in self.transcript)


class Chunk(msgspec.Struct):
    """A contiguous slice of a session's action messages, sized to the chunk budget.

    ``index`` counts from 0 of ``total``; ``start_ms``/``end_ms`` bound the slice; ``lines``
    are the rendered actions ("[12.3s] click(640, 320)"); ``tokens`` the estimate used for
    the budget (chars / 4, plus the tokens of its frames); ``frames`` the JPEG paths of the
    screen frames taken within it (sent to the judge as images). When the session was
    condensed to fit ``chunking.max_chunks`` (see :mod:`streamgrade.chunking`):
    ``line_chars`` the length (chars) its lines were cut to, and ``omitted`` the lines left
    out at the marker line this chunk holds; both 0 otherwise."""

    index: int
    total: int
    start_ms: int
    end_ms: int
    lines: list[str]
    tokens: int
    frames: list[str] = []
    line_chars: int = 0
    omitted: int = 0


class Component(msgspec.Struct):
    """One rubric component: ``score`` 0-100, ``confidence`` 0-1, and a one-line reason."""

    score: float
    confidence: float
    reason: str


class Usage(msgspec.Struct):
    """Judge usage for one session: tokens as reported by the server, cost in USD from the
    configured price table, and the number of HTTP requests sent (retries included)."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost_usd: float = 0.0
    requests: int = 0
    cached_tokens: int = 0  # of prompt_tokens, read from the provider's prompt cache

    def add(self, other: Usage) -> None:
        """Add ``other`` into this usage in place."""
        self.prompt_tokens += other.prompt_tokens
        self.completion_tokens += other.completion_tokens
        self.cost_usd += other.cost_usd
        self.requests += other.requests
        self.cached_tokens += other.cached_tokens


class Verdict(msgspec.Struct):
    """What a judge returns for one session: the three rubric components (outcome, process,
    efficiency), a summary of the whole session, the running summaries of every chunk, and
    the usage spent. The final score is computed from the components by
    :func:`streamgrade.judges.rubric.final_score`, not by the judge. ``extras`` holds what a
    judge says beyond the rubric (the LLM judge: ``success``, ``p_success``,
    ``failure_cause``, ``key_points``, ``evidence_steps``, and for an ensemble
    ``agreement`` and ``members``; see :mod:`streamgrade.judges.judgement`). ``ungradable`` is the
    reason the judge could not judge the session (nothing to judge: an empty transcript, a
    capture with no task); the record is then ``ungradable``, with no score."""

    components: dict[str, Component]
    summary: str
    chunk_summaries: list[str] = []
    usage: Usage = msgspec.field(default_factory=Usage)
    extras: dict[str, Any] = {}
    ungradable: str | None = None


class JudgeInfo(msgspec.Struct):
    """Which judge graded: ``kind`` heuristic or openai, and the model name (or None)."""

    kind: str
    model: str | None = None


class ScoreRecord(msgspec.Struct):
    """One line of OUT/exports/scores.jsonl, and the body of a session's scores.json.

    Fields (all always present): ``session_id``; ``source_format`` (clones-desktop,
    clones-web, ...); ``source_path``; ``status`` "graded", "failed" or "ungradable" (the
    judge found nothing to judge; never retried, not a failure); ``score`` 0-100 or
    None when failed or ungradable; ``components`` {outcome, process, efficiency} scores 0-100 (empty when
    failed); ``confidence`` 0-1 or None; ``judge`` {kind, model}; ``reward`` the input's ground
    truth or None; ``n_actions``; ``duration_s``; ``usage`` {prompt_tokens,
    completion_tokens, cost_usd}; ``error`` a message naming the file and line or field (the
    reason when ungradable), or None; ``graded_at`` RFC 3339 UTC time; ``fingerprint`` of the input files; for agent
    trajectories also ``task_id``, ``trial``, ``agent``, ``model`` (None when unknown),
    ``turns`` (assistant turns; actions for recordings), ``tool_calls``, ``termination`` and
    ``metrics`` (achievements, progression, ...); ``golden`` the golden-path metrics
    against the reference action sequence (:func:`streamgrade.golden.evaluate`: exact,
    in_order, any_order, arg_agreement, precision, recall, n_reference, n_calls, n_matched),
    None when there is none. Never part of ``score``. ``p_success`` (0-1, 4 decimals) is there
    only when the run had a calibration model (``grade --calibration``) and the session was
    graded; records without it have no such key. From an LLM judge with the verdict
    protocol also ``success`` (its explicit verdict), ``p_success_judge`` (its probability
    of success, 0-1) and ``failure_cause`` (none, agent, environment, unclear); None else.
    """

    session_id: str
    source_format: str
    source_path: str
    status: Status
    score: float | None
    components: dict[str, float]
    confidence: float | None
    judge: JudgeInfo | None
    reward: float | None
    n_actions: int
    duration_s: float | None
    usage: dict[str, float]
    error: str | None
    graded_at: str
    fingerprint: str = ""
    task_id: str | None = None
    trial: str | None = None
    agent: str | None = None
    model: str | None = None
    turns: int = 0
    tool_calls: int = 0
    termination: str | None = None
    metrics: dict[str, float] = {}
    golden: dict[str, Any] | None = None
    success: bool | None = None
    p_success_judge: float | None = None
    failure_cause: str | None = None
    p_success: float | msgspec.UnsetType = msgspec.UNSET  # only with a calibration model: no key otherwise
