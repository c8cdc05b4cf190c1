"""Per-task hints learned from many episodes (``streamgrade hints OUT``).

Graded agent episodes are grouped by task (:mod:`.episodes`), each episode's hints are
extracted once, by an LLM through the judge client (:mod:`.llm`) or offline from the
transcript's structure (:mod:`.offline`), and cached (:mod:`.cache`); a task's hints are
aggregated from its episodes (:mod:`.aggregate`) and written as augmented tasks: JSONL rows
and optionally Harbor task folders (:mod:`.write`). :mod:`.run` wires them.

Four parts, after the trace-hints pipelines this replaces: tools (purpose and an example
call), strategy steps, pitfalls (attributed to the failed episodes they come from) and
success criteria. A hint is built only from the task, the transcript the agent saw and
wrote, and the tool definitions: never from the ground-truth grader's internals or
reference actions (see :mod:`.episodes`).
"""

from .run import HintsRun, run_hints

__all__ = ["HintsRun", "run_hints"]
