"""Input formats, each behind the :class:`~streamgrade.formats.base.Format` protocol."""

from __future__ import annotations

import logging

from ..errors import ConfigError
from .adp import ADPTrajectories
from .base import Format, fingerprint
from .claude_code import ClaudeCode
from .clones_desktop import ClonesDesktop
from .clones_web import ClonesWeb
from .codex_cli import CodexCLI
from .crafter import CrafterEpisode
from .ducktrack import DuckTrack
from .harbor import AtifFile, HarborTrial
from .mini_swe_agent import MiniSWEAgentTrajectory
from .inspect_ai import InspectLog
from .openai_chat import OpenAIChat
from .openhands import OpenHandsOutput
from .openhands_completions import OpenHandsCompletions
from .react_text import ReactText
from .owa import OWACapture
from .registry import plugin_formats, register_format, unregister_format
from .swe_agent import SWEAgentTrajectory
from .tau2 import Tau2Results
from .terminal_bench import TerminalBenchTrial
from .trace_rows import TraceRows

log = logging.getLogger("streamgrade.formats")

#: The built-in readers, in the order scan asks them: readers of specific formats first (an
#: ``exclusive`` one hides the files it takes from those after it), the generic row readers
#: (trace rows, then OpenAI-chat dumps) last.
BUILTIN: tuple[Format, ...] = (
    ClonesDesktop(),
    ClonesWeb(),
    HarborTrial(),
    AtifFile(),
    CrafterEpisode(),
    OWACapture(),
    SWEAgentTrajectory(),
    MiniSWEAgentTrajectory(),
    Tau2Results(),
    InspectLog(),
    TerminalBenchTrial(),
    ClaudeCode(),
    CodexCLI(),
    OpenHandsCompletions(),
    OpenHandsOutput(),
    ADPTrajectories(),
    ReactText(),
    DuckTrack(),
    # the generic row readers last
    TraceRows(),
    OpenAIChat(),
)

#: Every format of this run: the config's ``[[formats.mappings]]`` first, then readers of
#: other packages (entry points, :func:`register_format`), then the built-in readers (set
#: by :func:`configure_formats`).
FORMATS: dict[str, Format] = {f.name: f for f in BUILTIN}

__all__ = ["FORMATS", "BUILTIN", "Format", "configure_formats", "fingerprint", "get_format", "register_format",
           "unregister_format"]


def get_format(name: str) -> Format:
    """The format registered under ``name``; KeyError if none."""
    return FORMATS[name]


def configure_formats(config) -> None:
    """Register the config's ``[[formats.mappings]]`` (first in the registry), give formats
    that detect sessions by configurable fields (openai-chat's mapping) the run's config,
    and the readers its ``[limits]``; the pipeline calls it before the first scan. Raises
    ConfigError when a mapping takes a built-in format's name."""
    from ..inputs import configure_limits
    from .mapped import mapped_formats

    configure_limits(max_session_bytes=config.limits.max_session_bytes, max_file_bytes=config.limits.max_file_bytes)
    ordered = {f.name: f for f in mapped_formats(config)}
    builtin = {f.name for f in BUILTIN}
    clash = sorted(set(ordered) & builtin)
    if clash:
        raise ConfigError(f"formats.mappings: {', '.join(clash)} is the name of a built-in format; choose another")
    for f in plugin_formats():
        if f.name in builtin or f.name in ordered:
            log.warning("reader plugin %s not used: a mapping or built-in reader has that name", f.name)
            continue
        ordered[f.name] = f
    ordered.update((f.name, f) for f in BUILTIN)
    FORMATS.clear()
    FORMATS.update(ordered)
    for fmt in FORMATS.values():
        configure = getattr(fmt, "configure", None)
        if configure is not None:
            configure(config)
