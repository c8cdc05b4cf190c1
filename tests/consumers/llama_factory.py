"""Load ShareGPT rows with LLaMA-Factory 0.9.5's own dataset code, and find assistant text
the ShareGPT rows lost against the ChatML rows of the same sessions.

LLaMA-Factory is not installed in streamgrade's virtualenv: it pins its own transformers,
datasets and torch (measured: ``pip install llamafactory==0.9.5`` into a fresh venv takes
about 105 s and 6.6 GB here, under the 5-minute budget, so the real package is used and
nothing is vendored). ``.ci/run`` installs it into ``.venv-llamafactory`` and sets
``STREAMGRADE_LLAMAFACTORY_PYTHON``; :func:`run_converter` runs
``llamafactory_runner.py`` with that interpreter (about 10 s per file, mostly importing
torch).

The dataset_info.json entry to register a streamgrade ShareGPT file with LLaMA-Factory
(its data/README.md, "sharegpt" format; the tags are LLaMA-Factory's defaults):
:data:`DATASET_INFO` for text rows, :data:`DATASET_INFO_MM` for multimodal rows (an
``images`` column, one ``<image>`` tag per image, paths relative to the JSONL's folder).
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from .rows import Problem, Row, read_rows, row_label, text_of

RUNNER = Path(__file__).resolve().parent / "llamafactory_runner.py"
REPO = Path(__file__).resolve().parents[2]
COLUMNS = {"messages": "conversations", "system": "system", "tools": "tools"}
DATASET_INFO = {"streamgrade_sharegpt": {"file_name": "sharegpt.jsonl", "formatting": "sharegpt", "columns": COLUMNS}}
# computer-use rows carry no tools column, and a mapped column the file lacks is a KeyError
DATASET_INFO_MM = {"streamgrade_sharegpt_mm": {"file_name": "sharegpt.mm.jsonl", "formatting": "sharegpt",
                                               "columns": {"messages": "conversations", "system": "system",
                                                           "images": "images"}}}


def python() -> str | None:
    """The interpreter of LLaMA-Factory's virtualenv: ``STREAMGRADE_LLAMAFACTORY_PYTHON``,
    else ``.venv-llamafactory/bin/python`` in the repository; None when neither exists."""
    env = os.environ.get("STREAMGRADE_LLAMAFACTORY_PYTHON")
    for cand in ([env] if env else []) + [str(REPO / ".venv-llamafactory" / "bin" / "python")]:
        if cand and Path(cand).exists():
            return cand
    return None


def run_converter(path: str | Path, info: dict[str, Any] | None = None, *, interpreter: str | None = None,
                  timeout: float = 300) -> tuple[int, list[Problem]]:
    """Rows of ShareGPT file ``path`` that LLaMA-Factory's converter read, and the problems
    it found (kinds: ``load-error``, ``converter-error``, ``row-skipped``,
    ``function-call-unparsed``, ``tools-unformatted``, ``image-count``, ``image-missing``,
    ``image-unreadable``; consumer ``llamafactory``). ``info`` is a one-entry dataset_info
    mapping (default :data:`DATASET_INFO`). Raises RuntimeError when the runner itself fails
    (LLaMA-Factory missing or broken), naming its exit status and last error lines."""
    path = Path(path)
    info = info or DATASET_INFO
    py = interpreter or python()
    if py is None:
        raise RuntimeError("LLaMA-Factory's virtualenv not found: set STREAMGRADE_LLAMAFACTORY_PYTHON")
    (name,) = info
    res = subprocess.run([py, str(RUNNER), str(path), json.dumps(info), name], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, "DISABLE_VERSION_CHECK": "1"})
    if res.returncode != 0:
        raise RuntimeError(f"llamafactory_runner.py exited {res.returncode}: {res.stderr.strip()[-800:]}")
    labels = {r.line: r.label for r in read_rows(path, "llamafactory")[0]}
    problems: list[Problem] = []
    count = 0
    for text in res.stdout.splitlines():
        if not text.startswith("LFROW "):
            continue
        d = json.loads(text[6:])
        count += d["line"] > 0
        for kind, detail in d["problems"]:
            problems.append(Problem("llamafactory", kind, labels.get(d["line"], f"row {d['line']}"),
                                    f"{path.name}:{d['line']}", detail))
    return count, problems


def _key(turns: list[dict[str, Any]], sharegpt: bool) -> str:
    """A join key for rows without metadata: every user turn's text, in order (ShareGPT
    merges consecutive human turns with a newline, so the joined texts agree)."""
    if sharegpt:
        return "\n".join(str(t.get("value") or "") for t in turns if t.get("from") == "human")
    return "\n".join(text_of(m.get("content")) for m in turns if m.get("role") == "user")


def dropped_assistant_text(sft_rows: list[Row], sharegpt_rows: list[Row]) -> tuple[int, list[Problem]]:
    """Assistant texts of ChatML rows that their session's ShareGPT row does not hold.

    Rows join on ``metadata.session_id``, else on their user texts (equal keys pair up in
    file order: both files list sessions in the same order). Returns (assistant
    texts compared, ``assistant-text-dropped`` problems, consumer ``sharegpt``); a detail
    gives the characters lost."""
    index: dict[str, list[Row]] = {}
    for r in sharegpt_rows:
        lab = row_label(r.data, r.line)
        key = lab if not lab.startswith("row ") else "key:" + _key(r.data.get("conversations") or [], True)
        index.setdefault(key, []).append(r)  # rows with equal keys pair up in file order
    compared = 0
    problems: list[Problem] = []
    for r in sft_rows:
        lab = r.label
        same = index.get(lab if not lab.startswith("row ") else "key:" + _key(r.data.get("messages") or [], False))
        sg = same.pop(0) if same else None
        if sg is None:
            continue  # no ShareGPT row for this session: the export's own rejection, counted elsewhere
        held = "\n".join(t.get("value", "") for t in sg.data.get("conversations") or [] if isinstance(t, dict))
        held += "\n" + str(sg.data.get("system") or "")
        for i, m in enumerate(r.data.get("messages") or []):
            if m.get("role") != "assistant":
                continue
            text = text_of(m.get("content")).strip()
            if not text:
                continue
            compared += 1
            if text not in held and json.dumps(text, ensure_ascii=False)[1:-1] not in held:
                problems.append(Problem("sharegpt", "assistant-text-dropped", lab, r.at(f"messages[{i}]"),
                                        f"{len(text)} characters{' beside a tool call' if m.get('tool_calls') else ''} "
                                        f"not in {sg.at()}: {text[:80]!r}"))
    return compared, problems
