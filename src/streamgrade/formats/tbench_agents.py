"""The agents' own step records inside a Terminal-Bench 1.0 trial, as canonical steps.

* mini-swe-agent (SWE-agent/mini-swe-agent, ``minisweagent/agents/interactive.py``; run by
  Terminal-Bench as ``mini -m MODEL -t INSTRUCTION -y --exit-immediately``): its console
  prints each message under a header line: ``System:``, ``User:`` (``Assistant:`` in some
  versions) or ``mini-swe-agent (step N, $COST):`` for the model's turns, messages separated
  by a rule line of ``─``. An assistant turn holds a THOUGHT and exactly one
  ````` ```bash ````` block (the action, as mini's ``parse_action`` reads it); the next
  ``User:`` message is its observation, ``<returncode>N</returncode>`` then ``<output>``
  (or ``<warning>``, ``<output_head>``, ``<elided_chars>``, ``<output_tail>`` for long
  output). The console wraps lines at the terminal width (160 columns in Terminal-Bench);
  :func:`unwrap` joins the wrapped lines again (a line as wide as the terminal, or one the
  next line's first word would not have fitted on).
* Terminus (terminal-bench ``terminal_bench/agents/terminus_1.py`` and ``terminus_2/``):
  one folder ``agent-logs/episode-N/`` per model call with ``prompt.txt`` (the prompt sent:
  the instruction and terminal state at episode 0, the terminal output of the previous
  commands later) and ``response.json`` (Terminus 1: ``{state_analysis, explanation,
  commands: [{keystrokes, is_blocking, timeout_sec}], is_task_complete}``) or
  ``response.txt`` (Terminus 2: the raw reply, JSON ``{analysis, plan, commands:
  [{keystrokes, duration}], task_complete}`` or the same in XML tags). Each command is a
  ``bash_command`` tool call with the source's fields as arguments (as Harbor's ATIF export
  of Terminus 2 names it); the next episode's prompt is the observation of the batch,
  linked to its last call. A reply that does not parse is an agent step with the raw text
  and no call (the next prompt is then the parse-error feedback, a user step).
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path

from wcwidth import wcswidth

from ..errors import InputError
from ..extract.asciicast import bounded
from ..inputs import read_regular
from ..models import Observation, Step, StepToolCall
from .mapping import attach

MINI_STEP = re.compile(r"^mini-swe-agent \(step (\d+), \$(\d+(?:\.\d+)?)\):\s*$")
MINI_ROLE = re.compile(r"^(System|User|Assistant):\s*$")
MINI_VERSION = re.compile(r"This is mini-swe-agent version ([0-9][\w.]*\w)")
BASH_BLOCK = re.compile(r"```bash\s*\n(.*?)\n```", re.DOTALL)
RULE = re.compile(r"^─{8,}\s*$")
OUT_OPEN = re.compile(r"^<(output|output_head|output_tail|warning|elided_chars)>\s*$")
OUT_CLOSE = re.compile(r"</(output|output_head|output_tail|warning|elided_chars)>\s*$")
EPISODE = re.compile(r"^episode-(\d+)$")
#: The first line of text that another process logged on the same terminal (Python logging's
#: "HH:MM:SS - name:LEVEL", a traceback), after the agent's message was printed; it may
#: follow a spinner's text on the same line.
NOISE = re.compile(r"(\d\d:\d\d:\d\d(?:[.,]\d+)? - \S+:(?:DEBUG|INFO|WARNING|ERROR|CRITICAL)\b|Traceback \(most recent call last\):)")
TOOL = "bash_command"
SAVED = "Saved trajectory to "
MAX_PROMPT_CHARS = 200_000


def _cells(text: str) -> int:
    n = wcswidth(text)
    return n if n >= 0 else len(text)


def unwrap(lines: list[str], width: int) -> list[str]:
    """Lines wrapped by a console at ``width`` columns joined again: a line exactly
    ``width`` cells wide continues on the next line as is (a word folded, or the space kept at
    the end); a shorter non-blank line continues after one space when the next line's first
    word would not have fitted on it. Rule lines, header lines, blank lines, lines wider than
    ``width`` (not written by the console) and indented next lines are never joined."""
    out: list[str] = []
    last = ""  # the last physical line
    for line in lines:
        if out and _continues(last, line, width):
            # as is after a kept trailing space or inside a folded word (a full line without
            # a space); after one space when the console dropped it at the line end
            joined = last.endswith(" ") or (_cells(last) >= width and " " not in last.strip())
            out[-1] = out[-1] + line if joined else out[-1].rstrip() + " " + line
        else:
            out.append(line)
        last = line
    return out


def _continues(prev: str, line: str, width: int) -> bool:
    if not prev.strip() or not line.strip() or line[0] == " " or RULE.match(prev) or RULE.match(line):
        return False
    if MINI_STEP.match(line) or MINI_ROLE.match(line) or MINI_STEP.match(prev) or MINI_ROLE.match(prev):
        return False
    w = _cells(prev)
    if w == width:
        return True  # filled to the edge: a folded word, or a word that fitted exactly
    if w > width:
        return False  # not written by the console (a traceback on stderr)
    first = line.split(" ", 1)[0]
    return _cells(prev.rstrip()) + 1 + _cells(first) > width


def looks_like_mini(text: str) -> bool:
    """Whether rendered terminal text holds a mini-swe-agent console transcript."""
    return any(MINI_STEP.match(ln) for ln in text.splitlines()) or "This is mini-swe-agent version" in text


def mini_steps(lines: list[str], width: int, max_obs: int) -> tuple[list[Step], dict]:
    """Steps from the rendered console lines of a ``mini`` run (as drawn, trailing spaces
    kept; see the module docstring), each observation bounded to ``max_obs`` characters, and
    facts about the run: ``version``, ``cost_usd`` (the last step header's), ``steps``,
    ``noise_lines``. Terminal text around an observation that is not the agent's (another
    process's log on stderr, interleaved by the terminal) is left out and counted in
    ``noise_lines``, except after the last message, where it is an environment step (how the
    run ended: "Saved trajectory to ...", a crash)."""
    lines = unwrap(lines, width)
    version = next((m.group(1) for m in map(MINI_VERSION.search, lines[:20]) if m), None)
    messages: list[list] = []  # [role, lines, cost, observation started]
    in_out = False
    for line in lines:
        s = line.rstrip()
        step = MINI_STEP.match(s)
        role = None if in_out else MINI_ROLE.match(s)
        if step or role:
            in_out = False
            messages.append(["assistant" if step or role.group(1) == "Assistant" else role.group(1).lower(), [],
                             float(step.group(2)) if step else None, False])
            continue
        if not messages or RULE.match(s):
            continue
        msg = messages[-1]
        if msg[0] == "user":
            if s.startswith("<returncode>"):
                msg[3] = True
            elif msg[3] and OUT_OPEN.match(s):
                in_out = True
            if msg[3] and OUT_CLOSE.search(s):
                in_out = False
        msg[1].append(s)
    steps: list[Step] = []
    cost = None
    noise = 0
    for k, (role, body, c, _) in enumerate(messages):
        content = "\n".join(body).strip("\n")
        if role == "system":
            steps.append(Step(source="system", message=content))
        elif role == "assistant":
            cost = c if c is not None else cost
            fence = content.rfind("```")
            content, dropped = _cut_noise(content, fence + 3 if fence >= 0 else 0)
            noise += dropped
            blocks = BASH_BLOCK.findall(content)
            calls = [StepToolCall(id=f"call_{k}_0", name="bash", arguments={"command": blocks[0]})] if len(blocks) == 1 else []
            steps.append(Step(source="agent", message=content or None, tool_calls=calls,
                              metrics={"cost_usd": c} if c is not None else {}))
        else:
            obs, rest = _split_observation(content)
            if not obs.startswith("<returncode>"):
                obs, dropped = _cut_noise(obs, 0)
                noise += dropped
            prev = steps[-1] if steps else None
            if prev is not None and prev.source == "agent" and prev.tool_calls and not prev.observations:
                prev.observations.append(Observation(content=bounded(obs, max_obs), source_call_id=prev.tool_calls[0].id))
                if rest and k == len(messages) - 1:  # after the agent's last turn: how the run ended
                    steps.append(Step(source="environment", message=bounded(rest, max_obs)))
                elif rest:  # printed on the terminal between turns (a library's log on stderr),
                    noise += rest.count("\n") + 1  # never seen by the agent: counted, not kept
            else:
                steps.append(Step(source="user", message=bounded(content, max(max_obs, MAX_PROMPT_CHARS))))
    facts = {"version": version, "cost_usd": cost, "steps": sum(1 for s in steps if s.source == "agent"),
             "noise_lines": noise}
    return steps, facts


def _cut_noise(text: str, start: int) -> tuple[str, int]:
    """``text`` up to the first :data:`NOISE` line at or after offset ``start``, and the
    number of lines cut (everything from that line on: another process's output printed
    after the message, before the console's next header)."""
    at = start
    for line in text[start:].split("\n"):
        if NOISE.search(line):
            cut = text[at:]
            return text[:at].rstrip("\n"), cut.count("\n") + 1
        at += len(line) + 1
    return text, 0


def _split_observation(content: str) -> tuple[str, str]:
    """(observation: from the ``<returncode>`` line to the last closing tag, what else the
    message holds: output printed around the agent's turn, e.g. a library's log on stderr or
    the agent's exit)."""
    lines = content.split("\n")
    saved = next((i for i, ln in enumerate(lines) if ln.startswith(SAVED)), None)
    if saved is not None:  # the agent has exited: what follows is the terminal's
        obs, rest = _split_observation("\n".join(lines[:saved]))
        return obs, "\n".join(x for x in (rest, "\n".join(lines[saved:]).strip("\n")) if x)
    first = next((i for i, ln in enumerate(lines) if ln.startswith("<returncode>")), None)
    if first is None:
        return content, ""
    last = max((i for i, ln in enumerate(lines) if i >= first and OUT_CLOSE.search(ln)), default=len(lines) - 1)
    rest = "\n".join(lines[:first] + lines[last + 1:]).strip("\n")
    return "\n".join(lines[first: last + 1]), rest


# --------------------------------------------------------------------------- Terminus

def episode_files(logs: Path) -> list[tuple[int, Path, Path | None]]:
    """(episode number, prompt.txt, response file or None) of each ``episode-N`` folder of
    ``agent-logs`` in episode order; never raises (no folder: no episodes)."""
    try:
        dirs = [(int(m.group(1)), logs / d) for d in sorted(p.name for p in logs.iterdir() if p.is_dir())
                if (m := EPISODE.match(d))]
    except OSError:
        return []
    out = []
    for n, d in sorted(dirs):
        resp = next((d / r for r in ("response.json", "response.txt") if (d / r).is_file()), None)
        if (d / "prompt.txt").is_file() or resp is not None:
            out.append((n, d / "prompt.txt", resp))
    return out


def _text(path: Path, max_chars: int = MAX_PROMPT_CHARS) -> str:
    data = read_regular(path)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(str(path), f"invalid UTF-8 byte 0x{data[exc.start]:02x} at byte offset {exc.start}",
                         line=data.count(b"\n", 0, exc.start) + 1) from None
    return bounded(text, max_chars)


def _reply(raw: str) -> dict | None:
    """A Terminus reply as ``{message, commands, complete}``, or None when it does not parse."""
    doc = None
    try:
        doc = json.loads(raw)
    except ValueError:
        start, end = raw.find("{"), raw.rfind("}")
        if 0 <= start < end:
            try:
                doc = json.loads(raw[start:end + 1])
            except ValueError:
                doc = None
    if isinstance(doc, dict) and isinstance(doc.get("commands", []), list):
        parts = [("State analysis", doc.get("state_analysis")), ("Explanation", doc.get("explanation")),
                 ("Analysis", doc.get("analysis")), ("Plan", doc.get("plan"))]
        cmds = [c for c in doc.get("commands") or [] if isinstance(c, dict) and isinstance(c.get("keystrokes"), str)]
        done = doc.get("is_task_complete", doc.get("task_complete"))
        return {"message": "\n".join(f"{k}: {v}" for k, v in parts if isinstance(v, str) and v),
                "commands": cmds, "complete": done is True}
    if "<response>" in raw or "<commands>" in raw:
        get = lambda tag: (m.group(1).strip() if (m := re.search(rf"<{tag}>(.*?)</{tag}>", raw, re.S)) else None)  # noqa: E731
        cmds = []
        for attrs, keys in re.findall(r"<keystrokes([^>]*)>(.*?)</keystrokes>", raw, re.S):
            cmd: dict = {"keystrokes": html.unescape(keys)}
            dur = re.search(r'duration\s*=\s*"([\d.]+)"', attrs)
            if dur:
                cmd["duration"] = float(dur.group(1))
            cmds.append(cmd)
        parts = [("Analysis", get("analysis")), ("Plan", get("plan"))]
        return {"message": "\n".join(f"{k}: {html.unescape(v)}" for k, v in parts if v),
                "commands": cmds, "complete": (get("task_complete") or "").lower() == "true"}
    return None


def terminus_steps(episodes: list[tuple[int, Path, Path | None]], max_obs: int) -> list[Step]:
    """Steps from Terminus episode logs (see the module docstring). Raises InputError naming
    a file that cannot be read."""
    steps: list[Step] = []
    for k, (n, prompt, resp) in enumerate(episodes):
        if prompt.is_file():
            text = _text(prompt, MAX_PROMPT_CHARS if k == 0 else max_obs)
            if k == 0:
                steps.append(Step(source="user", message=text))
            else:
                attach(steps, Observation(content=text))
        if resp is None:
            continue
        raw = _text(resp)
        reply = _reply(raw)
        if reply is None:
            steps.append(Step(source="agent", message=raw))
            continue
        calls = [StepToolCall(id=f"call_{n}_{j}", name=TOOL, arguments=c) for j, c in enumerate(reply["commands"])]
        msg = reply["message"] + ("\nTask complete: true" if reply["complete"] else "")
        steps.append(Step(source="agent", message=msg.strip() or None, tool_calls=calls))
    # attach() links an observation to the first unanswered call; a batch's one observation
    # belongs after its last command
    for s in steps:
        if s.source == "agent" and len(s.tool_calls) > 1:
            for o in s.observations:
                o.source_call_id = s.tool_calls[-1].id
    return steps


__all__ = ["unwrap", "looks_like_mini", "mini_steps", "episode_files", "terminus_steps", "TOOL"]
