"""Shared fixtures. No autouse fixtures here: each test asks for what it uses."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Callable

import pytest

from streamgrade.config import Config, load_config
from streamgrade.formats import FORMATS
from streamgrade.models import Session
from streamgrade.sources.scan import scan

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "examples" / "clones"


def assemble_path(path: str | Path, config: Config) -> Session:
    """The one session found at ``path`` (a session folder or a file naming a session),
    located with :func:`scan` and read by its format's ``assemble``."""
    refs = list(scan([path]))
    assert len(refs) == 1, f"expected exactly one session at {path}, scan found {refs}"
    ref = refs[0]
    return FORMATS[ref.format].assemble(ref, config)


@pytest.fixture(scope="session")
def examples_dir() -> Path:
    """The bundled real Clones sessions (examples/clones/ in the repository)."""
    return EXAMPLES_DIR


@pytest.fixture
def config() -> Config:
    """The default configuration, independent of the environment."""
    return load_config(env={})


@pytest.fixture
def assemble(config: Config) -> Callable[..., Session]:
    """``assemble(path, cfg=None)``: the session at ``path`` (folder or file), assembled
    with ``cfg`` or the default ``config``."""

    def _assemble(path: str | Path, cfg: Config | None = None) -> Session:
        return assemble_path(path, cfg if cfg is not None else config)

    return _assemble


def grade_cli_against_mock(data: Path, out: Path, **mock_options) -> tuple[subprocess.CompletedProcess, dict]:
    """Run ``streamgrade grade DATA -o OUT`` as a user would, with the openai judge against
    the mock provider (scripts/mock_provider.py, in a thread on 127.0.0.1, a generous known
    RPM); returns the finished process and the mock's request-log stats."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    from mock_provider import serve_in_thread

    env = {k: v for k, v in os.environ.items() if not k.startswith(("STREAMGRADE_", "OPENAI_", "ANTHROPIC_"))}
    with serve_in_thread(**mock_options) as url:
        env.update(STREAMGRADE_BASE_URL=url, STREAMGRADE_OPENAI__RPM="600000")
        res = subprocess.run([sys.executable, "-m", "streamgrade", "grade", str(data), "-o", str(out), "--no-progress"],
                             capture_output=True, text=True, env=env)
        stats = url.stats()
    return res, stats


def schema_answerer(bodies: list, verdict: dict, chunk: dict):
    """A respx side effect answering the judge: records each request body in ``bodies`` and
    returns ``chunk`` for chunk requests and ``verdict`` for verdict requests."""
    import json

    import httpx

    def answer(request):
        body = json.loads(request.content)
        bodies.append(body)
        name = body["response_format"]["json_schema"]["name"]
        content = chunk if name == "streamgrade_chunk" else verdict
        return httpx.Response(200, json={"choices": [{"message": {"role": "assistant", "content": json.dumps(content)}}],
                                         "usage": {"prompt_tokens": 10, "completion_tokens": 5}})

    return answer


def session_dir(out: str | Path, session_id: str) -> Path:
    """``OUT/sessions/<shard>/<folder>`` of a session (see streamgrade.sinks.layout)."""
    from streamgrade.sinks.layout import Layout

    return Layout(out).session_dir(session_id)


def session_dirs(out: str | Path) -> list[Path]:
    """Every session folder under OUT/sessions (sharded or flat), sorted by name."""
    from streamgrade.sinks.layout import Layout

    return sorted(Layout(out).session_dirs(), key=lambda p: p.name)
