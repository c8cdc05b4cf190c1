"""Terminal-Bench 1.0 trials (laude-institute/terminal-bench, the ``tb run`` harness).

Source: ``terminal_bench/harness/harness.py`` and ``harness/models.py`` (``TrialResults``,
``BenchmarkResults``, ``RunMetadata``), ``handlers/trial_handler.py`` (``TrialPaths``),
``terminal/tmux_session.py`` (recording), ``agents/failure_mode.py``, the Terminus agents and
the installed agents; schema notes in ../shared/corpus/terminal-bench/PROVENANCE.md.

Layout of a run ``<output>/<run_id>/``: ``results.json`` (``BenchmarkResults``: ``{id,
results: [TrialResults], pass_at_k, n_resolved, accuracy, ...}``), ``run_metadata.json``
(``{run_id, dataset_name, dataset_version, agent_name, model_name, ...}``), ``run.log``,
``tb.lock``, and per trial ``<task_id>/<trial_name>/`` (``<task>.<attempt>-of-<n>.<run_id>``)
holding ``results.json`` (``TrialResults``: ``{trial_name, task_id, instruction,
is_resolved, failure_mode, parser_results, recording_path, total_input_tokens,
total_output_tokens, n_commands?, trial_/agent_/test_started_at and _ended_at}``),
``sessions/agent.cast`` (asciinema v2 of the agent's tmux pane, keystrokes included),
``sessions/agent.log`` (the pane's raw output), ``sessions/tests.cast``/``tests.log``,
``panes/{pre-agent,post-agent,post-test}.txt``, ``commands.txt`` and ``agent-logs/``.

One session = one trial folder (``results.json`` beside ``sessions/``, ``panes/`` or
``commands.txt``), id = the folder name (the trial name, which holds the run id). The run
folder's own ``results.json`` and ``run_metadata.json`` are owned (see
:func:`run_files`), not sessions; ``run_metadata.json`` is read for the agent, model and
dataset but is not one of the session's files (it is rewritten when the run ends, which
must not make every trial be graded again).

* task: ``results.json`` ``instruction`` (the harness copies the task's ``task.yaml``
  instruction there; a trial without it fails).
* reward: ``is_resolved`` (all of the task's tests passed): 1.0 / 0.0, None when the tests
  were not run or not parsed (``null``).
* termination from ``failure_mode``: ``unset``/``none`` -> "completed" (the harness leaves
  ``unset`` when the agent returned normally), ``agent_timeout`` -> "timeout",
  ``context_length_exceeded``/``output_length_exceeded`` -> "context_length",
  ``test_timeout``/``parse_error`` -> "completed" (the agent finished; its tests did not),
  ``unknown`` -> None, anything else (``unknown_agent_error``, ``fatal_llm_parse_error``,
  ``agent_installation_failed``, docker failures) -> "error".
* metrics: ``input_tokens``/``output_tokens`` (when above 0: installed agents report 0),
  ``n_commands``, ``steps`` (agent steps), ``cost_usd`` (mini-swe-agent's last step header).

Steps, in order of preference:

1. Terminus episode logs in ``agent-logs/episode-N/`` (see :mod:`.tbench_agents`).
2. The agent's terminal (``sessions/agent.cast``; else ``sessions/agent.log``, output only;
   else ``panes/post-agent.txt``), rendered by :mod:`streamgrade.extract.asciicast`. Each
   keystroke input (``i`` event; consecutive ones until an Enter form one) is an agent
   step with a ``bash_command`` call ``{keystrokes}`` (the harness's ``; tmux wait -S done``
   suffix removed) and the output until the next input is its observation, bounded to
   :data:`MAX_OBSERVATION_CHARS`. The harness's own plumbing (``clear``, ``asciinema rec``,
   ``source /installed-agent/...`` and their output) is dropped. When the output of a
   command is a mini-swe-agent console, its steps replace that command
   (``bash`` calls ``{command}``, see :mod:`.tbench_agents`).

The judge never sees the tests: ``tests.cast``, ``tests.log``, ``parser_results`` and
``panes/post-test.txt`` are never read, and the agent recording is cut at the first
keystroke that runs ``/tests/run-tests.sh`` (tasks with ``run_tests_in_same_shell``) and at
the first keystroke after ``agent_ended_at`` (the harness stopping the recording).
"""

from __future__ import annotations

import os
import re
from datetime import datetime
from pathlib import Path
from typing import Any

from ..config import Config
from ..errors import InputError
from ..extract.asciicast import INPUT, OUTPUT, TermText, bounded, read_cast
from ..inputs import open_regular, read_regular
from ..models import Observation, Session, SessionRef, Step, StepToolCall
from .base import load_json
from .mapping import agent_session, as_text
from .tbench_agents import TOOL, episode_files, looks_like_mini, mini_steps, terminus_steps

NAME = "terminal-bench"
RESULTS = "results.json"
RUN_METADATA = "run_metadata.json"
CAST = os.path.join("sessions", "agent.cast")
LOG = os.path.join("sessions", "agent.log")
PANE = os.path.join("panes", "post-agent.txt")
LOGS = "agent-logs"
#: Most characters of one observation (head and tail kept around a marker).
MAX_OBSERVATION_CHARS = 20_000
#: Terminal-Bench's tmux pane (``tmux new-session -x 160 -y 40``).
WIDTH, HEIGHT = 160, 40
TMUX_DONE = "; tmux wait -S done"
TESTS = re.compile(r"(^|\s)(bash\s+)?/tests/run-tests\.sh")
PLUMBING = re.compile(r"^(clear|asciinema rec\b.*|source /installed-agent/.*)$")
ENTER = ("\r", "\n")
TERMINATION = {"unset": "completed", "none": "completed", "agent_timeout": "timeout",
               "context_length_exceeded": "context_length", "output_length_exceeded": "context_length",
               "test_timeout": "completed", "parse_error": "completed", "unknown": None}
#: Failure modes about the tests, not the agent: kept out of meta (the judge's side).
TEST_FAILURES = frozenset({"test_timeout", "parse_error"})


def _peek(path: Path, needle: bytes) -> bool | None:
    """Whether the first 4 KB of ``path`` hold ``needle``; None when it cannot be read."""
    try:
        with open_regular(path) as fh:
            return needle in fh.read(4096)
    except (OSError, InputError):
        return None


def _is_trial(folder: Path, names: list[str]) -> bool:
    if RESULTS not in names:
        return False
    if "commands.txt" in names or os.path.isfile(folder / CAST) or os.path.isfile(folder / LOG):
        return True  # the harness's own files: a trial, even when results.json is damaged
    if os.path.isdir(folder / "panes") or os.path.isdir(folder / LOGS):
        return _peek(folder / RESULTS, b'"trial_name"') is not False
    return False


def run_files(folder: Path, names: list[str]) -> set[str]:
    """The run folder's own files (``results.json`` and ``run_metadata.json`` beside task
    folders holding trial folders): owned by this format, not sessions."""
    if RUN_METADATA not in names and RESULTS not in names:
        return set()
    try:
        with os.scandir(folder) as it:
            tasks = [e.path for e in it if e.is_dir(follow_symlinks=False)]
    except OSError:
        return set()
    for t in tasks:
        try:
            with os.scandir(t) as it:
                if any(e.is_dir(follow_symlinks=False) and os.path.isfile(os.path.join(e.path, RESULTS))
                       and (os.path.isdir(os.path.join(e.path, "sessions")) or os.path.isdir(os.path.join(e.path, "panes")))
                       for e in it):
                    return {n for n in (RESULTS, RUN_METADATA) if n in names}
        except OSError:
            continue
    if RUN_METADATA in names and _peek(folder / RUN_METADATA, b'"run_id"'):
        return {n for n in (RESULTS, RUN_METADATA) if n in names}  # a run whose trials are not here
    return set()


def _trial_files(folder: Path) -> tuple[str, ...]:
    files = [str(folder / RESULTS)]
    episodes = episode_files(folder / LOGS)
    for _, prompt, resp in episodes:
        files.extend(str(p) for p in (prompt, resp) if p is not None and p.is_file())
    for rel in (CAST, LOG, PANE):
        if os.path.isfile(folder / rel):
            files.append(str(folder / rel))
            break
    return tuple(files)


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    if a is None or b is None or (a.tzinfo is None) != (b.tzinfo is None):
        return None
    return round((b - a).total_seconds(), 3)


class TerminalBenchTrial:
    """A Terminal-Bench 1.0 trial folder (see the module docstring)."""

    name = NAME
    exclusive = True
    #: Every file under a trial folder is the trial's (agent-logs/episode-N/debug.json holds
    #: litellm's message log, which must not become an openai-chat session of its own).
    owns_tree = True

    def find(self, folder: Path, names: list[str]) -> list[SessionRef]:
        """The trial folder ``folder`` as one session when it is one (see
        :func:`_is_trial`); never raises."""
        folder = Path(folder)
        try:
            if not _is_trial(folder, names):
                return []
            files = _trial_files(folder)
        except OSError:
            return []
        return [SessionRef(session_id=folder.name, format=NAME, path=str(folder), files=files)]

    def assemble(self, ref: SessionRef, config: Config) -> Session:
        """Read the trial's results.json and its agent's steps. Raises InputError naming the
        file and field or line."""
        folder = Path(ref.path)
        rpath = str(folder / RESULTS)
        res = load_json(rpath)
        if not isinstance(res, dict):
            raise InputError(rpath, f"expected a JSON object (TrialResults), got {type(res).__name__}")
        instruction = res.get("instruction")
        if not isinstance(instruction, str) or not instruction.strip():
            raise InputError(rpath, "missing or empty" if instruction in (None, "") else
                             f"expected a string, got {type(instruction).__name__}", field="instruction")
        resolved = res.get("is_resolved")
        if resolved is not None and not isinstance(resolved, bool):
            raise InputError(rpath, f"expected true, false or null, got {type(resolved).__name__}", field="is_resolved")
        mode = res.get("failure_mode", "unset")
        if mode is not None and not isinstance(mode, str):
            raise InputError(rpath, f"expected a string, got {type(mode).__name__}", field="failure_mode")
        metrics: dict[str, float] = {}
        for key, name in (("total_input_tokens", "input_tokens"), ("total_output_tokens", "output_tokens"),
                          ("n_commands", "n_commands")):
            v = res.get(key)
            if v is not None and (not isinstance(v, int) or isinstance(v, bool)):
                raise InputError(rpath, f"expected an integer or null, got {type(v).__name__}", field=key)
            if v:
                metrics[name] = float(v)
        a0, a1 = _time(res.get("agent_started_at")), _time(res.get("agent_ended_at"))
        run = _run_metadata(folder)
        meta: dict[str, Any] = {
            "run_id": run.get("run_id"), "dataset": run.get("dataset_name"),
            "dataset_version": run.get("dataset_version"), "agent_name": run.get("agent_name"),
            "failure_mode": mode if mode not in TEST_FAILURES else None,
            "agent_started_at": a0.isoformat() if a0 else None, "agent_ended_at": a1.isoformat() if a1 else None,
        }
        model = run.get("model_name") if isinstance(run.get("model_name"), str) else None

        episodes = episode_files(folder / LOGS)
        steps: list[Step] = []
        if episodes:
            steps = terminus_steps(episodes, MAX_OBSERVATION_CHARS)
            meta["source"] = "terminus episodes"
        if not any(s.source == "agent" for s in steps):
            steps, facts = _terminal_steps(folder, res, a0, a1, meta)
            if facts.get("cost_usd") is not None:
                metrics["cost_usd"] = facts["cost_usd"]
            model = model or facts.get("model")
        if not steps or steps[0].source not in ("system", "user"):
            steps.insert(0, Step(source="user", message=instruction))
        metrics["steps"] = float(sum(1 for s in steps if s.source == "agent"))
        agent, seen = meta["agent_name"], meta.get("detected_agent")
        if not isinstance(agent, str) or (seen and seen.startswith(agent)):
            agent = seen or (agent if isinstance(agent, str) else None)
        return agent_session(
            ref, steps, task=instruction,
            fail=lambda field, msg: InputError(rpath, msg, field=field or None),
            reward=None if resolved is None else (1.0 if resolved else 0.0),
            task_id=as_text(res.get("task_id")),
            trial=as_text(res.get("trial_name")) or folder.name,
            agent=agent, model=model,
            termination=TERMINATION.get(mode, "error") if mode else None,
            duration_s=_seconds(a0, a1), metrics=metrics,
            meta={k: v for k, v in meta.items() if v is not None},
        )


def _run_metadata(trial: Path) -> dict:
    """The run's run_metadata.json (two folders up), or {} when absent or unreadable: it is
    context, not the trial's data, so it never fails the trial."""
    path = trial.parent.parent / RUN_METADATA
    try:
        doc = load_json(path, 4 * 1024 * 1024)
    except InputError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _terminal_steps(folder: Path, res: dict, a0: datetime | None, a1: datetime | None,
                    meta: dict) -> tuple[list[Step], dict]:
    """Steps from the agent's terminal recording (see the module docstring)."""
    facts: dict = {}
    if os.path.isfile(folder / CAST):
        cast = read_cast(folder / CAST)
        meta.update(recording=CAST, cast_version=cast.version, terminal=f"{cast.width}x{cast.height}")
        if cast.truncated:
            meta["cast_truncated"] = True
        start = cast.timestamp
        end = (a1.timestamp() - start + 1.0) if (a1 is not None and start is not None) else None
        segments = _segments(cast.events, end)
        width, height = cast.width, cast.height
    else:
        rel = LOG if os.path.isfile(folder / LOG) else PANE
        path = folder / rel
        data = read_regular(path)
        text = data.decode("utf-8", errors="replace")
        m = TESTS.search(text)
        if m:  # tests run in the agent's shell: nothing from there on
            text = text[: text.rfind("\n", 0, m.start()) + 1]
        meta["recording"] = rel
        segments = [(None, [text])]
        width, height = WIDTH, HEIGHT
    steps: list[Step] = []
    for k, (keys, outputs) in enumerate(segments):
        term = TermText(height, head_lines=10**7, tail_lines=10**7, max_line_chars=20_000)
        for piece in outputs:
            term.feed(piece)
        text = term.text()
        if looks_like_mini(text):
            sub, facts = mini_steps(term.lines, width, MAX_OBSERVATION_CHARS)
            if any(s.source == "agent" for s in sub):
                meta["detected_agent"] = "mini-swe-agent" + (f" {facts['version']}" if facts.get("version") else "")
                if facts.get("noise_lines"):
                    meta["terminal_noise_lines"] = facts["noise_lines"]
                m = re.search(r"(?:^|\s)(?:-m|--model)[ =](\S+)", keys or "")
                if m:
                    facts["model"] = m.group(1).strip("'\"")
                steps.extend(sub)
                continue
        obs = bounded(text, MAX_OBSERVATION_CHARS)
        if keys is None:
            if obs.strip() and (k > 0 or obs.count("\n") > 0):
                steps.append(Step(source="environment", message=obs))
            continue
        call = StepToolCall(id=f"call_{k}_0", name=TOOL, arguments={"keystrokes": keys})
        steps.append(Step(source="agent", tool_calls=[call],
                          observations=[Observation(content=obs, source_call_id=call.id)]))
    return steps, facts


def _segments(events: list, end: float | None) -> list[tuple[str | None, list[str]]]:
    """(keystrokes or None for output before any, output pieces) in order: consecutive
    inputs until one holding Enter form one command; cut at the first input that runs the
    tests or comes after ``end`` (seconds); the harness's plumbing commands and their output
    are dropped."""
    segs: list[tuple[str | None, list[str]]] = [(None, [])]
    pending = ""
    echo: list[str] = []  # output while keys are being typed (their echo) opens the next segment
    for ev in events:
        if ev.code == INPUT:
            if TESTS.search(ev.data) or (end is not None and ev.t > end):
                break
            pending += ev.data
            if any(c in ev.data for c in ENTER) or ev.data[:1] in ("\x03", "\x04"):
                segs.append((pending.replace(TMUX_DONE, ""), echo))
                pending, echo = "", []
        elif ev.code == OUTPUT:
            (echo if pending else segs[-1][1]).append(ev.data)
    if pending:  # keys typed without Enter before the recording ended
        segs.append((pending.replace(TMUX_DONE, ""), echo))
    out = []
    for keys, outputs in segs:
        if keys is not None and PLUMBING.match(keys.strip()):
            continue
        if keys is None and not outputs:
            continue
        out.append((keys, outputs))
    return out


__all__ = ["TerminalBenchTrial", "run_files", "NAME", "MAX_OBSERVATION_CHARS"]
