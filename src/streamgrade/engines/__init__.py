"""Engines: where the assemble and grade stages of a ``grade`` run execute.

- ``local`` (default): the actors of :mod:`streamgrade.pipeline`, in this process.
- ``ray``: a Ray Data actor pool, on a private single-node Ray or a cluster
  (:mod:`.ray_engine`, :mod:`.ray_cluster`, :mod:`.ray_udf`; the optional extra
  ``streamgrade[ray]``). The driver (this process) still scans, admits through the
  ledger, writes every file under OUT and commits, so the output and its exactly-once
  guarantees are those of the local engine.

Nothing here imports Ray: ``import streamgrade`` works without the extra.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

ENGINES = ("local", "ray")

__all__ = ["ENGINES", "make_pipeline"]


def make_pipeline(engine: str, config: Any, out_dir: str | Path, judge: Any, **kwargs: Any) -> Any:
    """A :class:`~streamgrade.pipeline.Pipeline` for ``engine`` (one of :data:`ENGINES`);
    ``kwargs`` go to its constructor. Raises ValueError for an unknown engine; the Ray
    engine raises :class:`~streamgrade.errors.ConfigError` from ``open()`` when Ray is not
    installed or cannot be reached."""
    if engine == "local":
        from ..pipeline import Pipeline

        return Pipeline(config, out_dir, judge, **kwargs)
    if engine == "ray":
        from .ray_engine import RayPipeline

        return RayPipeline(config, out_dir, judge, **kwargs)
    raise ValueError(f"unknown engine {engine!r} (one of {', '.join(ENGINES)})")
