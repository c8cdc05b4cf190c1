"""Judges: the offline heuristic baseline and the OpenAI-compatible LLM judge."""

from __future__ import annotations

from ..config import Config, api_key, check_api_key
from ..errors import ConfigError
from .base import Judge
from .heuristic import HeuristicJudge

__all__ = ["Judge", "HeuristicJudge", "check_judge", "make_judge", "resolve_kind"]


def resolve_kind(config: Config) -> str:
    """``auto`` is ``openai`` when an API key or a base URL is configured, else
    ``heuristic``; other choices are returned as they are."""
    kind = config.run.judge
    if kind == "auto":
        return "openai" if (api_key() or config.openai.base_url) else "heuristic"
    return kind


def check_judge(config: Config) -> None:
    """Raise ConfigError when the configured judge cannot work: ``openai`` without a key
    and a base URL (OpenAI's own API needs a key), or with a key that cannot be sent
    (:func:`~streamgrade.config.check_api_key`). Cheap: call it before anything starts."""
    if resolve_kind(config) != "openai":
        return
    check_api_key()
    if not (api_key() or config.openai.base_url):
        raise ConfigError("judge 'openai' needs STREAMGRADE_API_KEY/OPENAI_API_KEY or openai.base_url")


def make_judge(config: Config) -> Judge:
    """Build the configured judge. Raises ConfigError as :func:`check_judge` does."""
    check_judge(config)
    if resolve_kind(config) == "heuristic":
        return HeuristicJudge(config)
    from .openai import OpenAIJudge

    return OpenAIJudge(config, api_key=api_key())
