"""Input formats, each behind the :class:`~streamgrade.formats.base.Format` protocol."""

from __future__ import annotations

from .adp import ADPTrajectories
from .base import Format, fingerprint
from .clones_desktop import ClonesDesktop
from .clones_web import ClonesWeb
from .crafter import CrafterEpisode
from .ducktrack import DuckTrack
from .harbor import AtifFile, HarborTrial
from .openai_chat import OpenAIChat
from .react_text import ReactText
from .owa import OWACapture
from .trace_rows import TraceRows

#: Every format, in the order scan asks them: readers of specific formats first (an
#: ``exclusive`` one hides the files it takes from those after it), the generic row readers
#: (trace rows, then OpenAI-chat dumps) last.
FORMATS: dict[str, Format] = {
    f.name: f
    for f in (ClonesDesktop(), ClonesWeb(), HarborTrial(), AtifFile(), CrafterEpisode(), OWACapture(),
              ADPTrajectories(), ReactText(), DuckTrack(),
              TraceRows(), OpenAIChat())
}

__all__ = ["FORMATS", "Format", "configure_formats", "fingerprint", "get_format"]


def get_format(name: str) -> Format:
    """The format registered under ``name``; KeyError if none."""
    return FORMATS[name]


def configure_formats(config) -> None:
    """Give formats that detect sessions by configurable fields (openai-chat's mapping) the
    run's config, and the readers its ``[limits]``; the pipeline calls it before the first
    scan."""
    from ..inputs import configure_limits

    configure_limits(max_session_bytes=config.limits.max_session_bytes, max_file_bytes=config.limits.max_file_bytes)
    for fmt in FORMATS.values():
        configure = getattr(fmt, "configure", None)
        if configure is not None:
            configure(config)
