"""Judges: the offline heuristic baseline, the OpenAI-compatible LLM judge and the native
Anthropic Messages judge."""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..config import Config, api_key, check_api_key
from ..errors import ConfigError
from .base import Judge
from .heuristic import HeuristicJudge

__all__ = ["Judge", "HeuristicJudge", "anthropic_key", "batch_mode", "check_judge", "make_judge", "resolve_kind"]

#: The only place the Anthropic judge's key is read from (never from the config).
ANTHROPIC_KEY_ENV = "ANTHROPIC_API_KEY"


def anthropic_key(env: Mapping[str, str] | None = None) -> str | None:
    """The Anthropic API key from ``ANTHROPIC_API_KEY``, or None. Never store or log it."""
    env = os.environ if env is None else env
    return env.get(ANTHROPIC_KEY_ENV) or None


def resolve_kind(config: Config) -> str:
    """``auto`` is ``openai`` when an OpenAI key (STREAMGRADE_API_KEY/OPENAI_API_KEY) or
    ``openai.base_url`` is configured, else ``anthropic`` when only ANTHROPIC_API_KEY is
    set, else ``heuristic``; other choices are returned as they are."""
    kind = config.run.judge
    if kind == "auto":
        if api_key() or config.openai.base_url:
            return "openai"
        return "anthropic" if anthropic_key() else "heuristic"
    return kind


def check_judge(config: Config) -> None:
    """Raise ConfigError when the configured judge cannot work: ``openai`` without a key
    and a base URL (OpenAI's own API needs a key), or with a key that cannot be sent
    (:func:`~streamgrade.config.check_api_key`); ``anthropic`` without ANTHROPIC_API_KEY,
    or with one holding whitespace, control or non-ASCII characters (the message never
    shows the key). Cheap: call it before anything starts."""
    kind = resolve_kind(config)
    if kind == "anthropic":
        key = anthropic_key()
        if not key:
            raise ConfigError(f"judge 'anthropic' needs {ANTHROPIC_KEY_ENV}")
        if key.strip() != key or any(ord(c) < 0x21 or ord(c) > 0x7E for c in key):
            raise ConfigError(f"{ANTHROPIC_KEY_ENV} holds whitespace, a control or a non-ASCII character; fix it")
        return
    if kind != "openai":
        return
    check_api_key()
    if not (api_key() or config.openai.base_url):
        raise ConfigError("judge 'openai' needs STREAMGRADE_API_KEY/OPENAI_API_KEY or openai.base_url")


def batch_mode(config: Config) -> bool:
    """Whether the configured judge runs in batch mode (``[openai] mode`` or ``[anthropic]
    mode`` = ``"batch"`` for the judge :func:`resolve_kind` picks; never the heuristic)."""
    kind = resolve_kind(config)
    return kind in ("openai", "anthropic") and getattr(config, kind).mode == "batch"


def make_judge(config: Config) -> Judge:
    """Build the configured judge: in batch mode (:func:`batch_mode`) its batch variant
    (judges/batch.py), whose collector the pipeline runs. Raises ConfigError as
    :func:`check_judge` does."""
    check_judge(config)
    kind = resolve_kind(config)
    if kind == "heuristic":
        return HeuristicJudge(config)
    batch = batch_mode(config)
    if kind == "anthropic":
        if batch:
            from .batch import AnthropicBatchJudge

            return AnthropicBatchJudge(config, api_key=anthropic_key())
        from .anthropic import AnthropicJudge

        return AnthropicJudge(config, api_key=anthropic_key())
    if batch:
        from .batch import OpenAIBatchJudge

        return OpenAIBatchJudge(config, api_key=api_key())
    from .openai import OpenAIJudge

    return OpenAIJudge(config, api_key=api_key())
