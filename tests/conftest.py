"""Shared fixtures. No autouse fixtures here: each test asks for what it uses."""

from __future__ import annotations

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
