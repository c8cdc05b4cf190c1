"""The judging sections of the configuration: ``[rubric]``, ``[openai]`` (with its
``prices``), ``[judge]`` (the LLM judge's verdict protocol and ensembles) and
``[calibration]``. :mod:`streamgrade.config` builds them into :class:`~streamgrade.config.Config`
and re-exports them; configs/streamgrade.toml documents every key."""

from __future__ import annotations

from typing import Literal

import msgspec


class RubricConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[rubric]``: weights of the components in the final score (normalised by their sum)."""

    outcome: float = 60.0
    process: float = 30.0
    efficiency: float = 10.0

    def weights(self) -> dict[str, float]:
        return {"outcome": self.outcome, "process": self.process, "efficiency": self.efficiency}


class Price(msgspec.Struct, forbid_unknown_fields=True):
    """USD per million tokens. ``cached_input``: prompt tokens read from a prompt cache
    (OpenAI's automatic prefix cache, Anthropic's cache reads); ``cache_write``: prompt
    tokens written to Anthropic's cache; None: charged at ``input``."""

    input: float = 0.0
    output: float = 0.0
    cached_input: float | None = None
    cache_write: float | None = None


def _default_prices() -> dict[str, Price]:
    return {
        "gpt-4o-mini": Price(0.15, 0.60, 0.075),
        "gpt-4o": Price(2.50, 10.00, 1.25),
        "gpt-4.1-mini": Price(0.40, 1.60, 0.10),
        "gpt-4.1": Price(2.00, 8.00, 0.50),
    }


def _anthropic_prices() -> dict[str, Price]:
    """Anthropic's list prices, USD per 1M tokens (https://platform.claude.com/docs/en/about-claude/pricing,
    "Model pricing", read 2026-12): cache hits at 0.1x input, 5-minute cache writes at
    1.25x input. Batch mode takes ``[batch] price_factor`` (0.5, "Batch processing") of these."""
    return {
        "claude-sonnet-4-5": Price(3.00, 15.00, 0.30, 3.75),
        "claude-haiku-4-5": Price(1.00, 5.00, 0.10, 1.25),
        "claude-opus-4-5": Price(5.00, 25.00, 0.50, 6.25),
        "claude-opus-4-1": Price(15.00, 75.00, 1.50, 18.75),
    }


class OpenAIConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[openai]``: the OpenAI-compatible Chat Completions judge.

    ``base_url`` ends in /v1; ``timeout_s`` per request; retries are capped exponential
    backoff with full jitter from ``backoff_base_s`` to ``backoff_max_s``, honouring
    Retry-After; ``rpm``/``tpm`` the provider's requests and tokens per minute (0 = unknown:
    learned from its x-ratelimit headers, or searched adaptively from ``adaptive_start_rps``,
    see judges/limits.py); ``max_concurrency`` requests in flight (halved on 429 while limits
    are unknown); ``cache_dir`` an opt-in on-disk response cache keyed by request hash, so a
    re-run never pays twice; ``max_cost_usd`` a run budget: once spent, no new request is sent
    and the remaining sessions stay pending; ``max_tokens_field`` the request field that
    carries ``max_tokens`` (newer OpenAI models, o-series and gpt-5, take only
    ``max_completion_tokens``); ``prices`` USD per million tokens by model
    (unknown model: cost 0); ``http_client`` the HTTP transport under httpx's API:
    ``aiohttp`` (httpx-aiohttp, ~10x the requests/s of httpx's own pool at 50 in flight,
    see scripts/bench_dispatch.py) or ``httpx``; ``mode`` ``sync`` (one HTTP request per
    judge request) or ``batch`` (the provider's Batch API at half price, for ``grade``; see
    ``[batch]`` and judges/batch.py).
    """

    base_url: str | None = None
    model: str = "gpt-4o-mini"
    timeout_s: float = 60.0
    max_retries: int = 5
    backoff_base_s: float = 0.5
    backoff_max_s: float = 30.0
    max_retry_after_s: float = 120.0
    rpm: int = 0
    tpm: int = 0
    adaptive_start_rps: float = 5.0
    adaptive_increase: float = 0.02
    max_concurrency: int = 16
    cache_dir: str | None = None
    max_cost_usd: float | None = None
    temperature: float = 0.0
    seed: int = 7
    max_tokens: int = 1024
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    http_client: Literal["aiohttp", "httpx"] = "aiohttp"
    mode: Literal["sync", "batch"] = "sync"
    prices: dict[str, Price] = msgspec.field(default_factory=_default_prices)


class AnthropicConfig(OpenAIConfig, forbid_unknown_fields=True):
    """``[anthropic]``: the native Anthropic Messages judge (judges/anthropic.py,
    ``POST {base_url}/v1/messages``). The same keys as ``[openai]`` with Anthropic's
    defaults (``seed``, ``max_tokens_field`` and ``http_client``'s choice are shared but
    the Messages API has no seed); the key comes from ``ANTHROPIC_API_KEY`` only."""

    base_url: str | None = "https://api.anthropic.com"
    model: str = "claude-sonnet-4-5"
    prices: dict[str, Price] = msgspec.field(default_factory=_anthropic_prices)


class BatchConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[batch]``: batch mode (``[openai] mode = "batch"``, ``[anthropic] mode = "batch"``
    or ``grade --batch``; judges/batch.py, batch_collector.py).

    ``max_sessions_in_flight`` sessions are graded at once (replacing
    ``pipeline.grade_workers``), so that their requests share batches; memory grows with it
    (each holds its session and its request body: lower it for sessions with many frames).
    A batch is sent when no new request came for ``quiet_s`` seconds, ``max_wait_s``
    seconds after its first request, or when it reaches ``max_requests`` requests or
    ``max_bytes`` bytes (0: the provider's limit less a margin: OpenAI 49,000 / 180 MB of
    its 50,000 / 200 MB, Anthropic 98,000 / 230 MB of its 100,000 / 256 MB). Batches are
    polled from ``poll_min_s`` to ``poll_max_s`` seconds apart (growing while nothing
    changes). ``price_factor`` multiplies the synchronous prices: both providers bill batch
    tokens at 50% (OpenAI Batch API FAQ, help.openai.com/en/articles/9197833: "50% cost
    discount vs. the synchronous APIs"; Anthropic "Batch processing": "reducing costs by
    50%"). ``upload_timeout_s`` bounds an upload or a download of results; ``keep_days``
    how long the ledger keeps the rows of ended batches."""

    max_sessions_in_flight: int = 2000
    quiet_s: float = 2.0
    max_wait_s: float = 60.0
    max_requests: int = 0
    max_bytes: int = 0
    poll_min_s: float = 5.0
    poll_max_s: float = 60.0
    price_factor: float = 0.5
    upload_timeout_s: float = 600.0
    keep_days: float = 30.0


class CalibrationConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[calibration]``: ``file`` a model written by ``streamgrade calibrate`` (``grade
    --calibration FILE``); when set, every graded record gets ``p_success`` (0-1, 4
    decimals). A missing or broken file stops the run at start (exit 2)."""

    file: str | None = None


class EnsembleMember(msgspec.Struct, forbid_unknown_fields=True):
    """One member of ``judge.ensemble``: ``model`` (None: ``openai.model``) and ``prompt``
    (``default``: the rubric's system prompt; ``strict``: the same rubric told to demand
    evidence for success and to answer failure when unsure; see judges/rubric.py)."""

    model: str | None = None
    prompt: Literal["default", "strict"] = "default"


class JudgeConfig(msgspec.Struct, forbid_unknown_fields=True):
    """``[judge]``: the LLM judge's verdict protocol (judges/judgement.py, ensemble.py,
    evidence.py). ``samples`` verdict requests per ensemble member (at ``openai.temperature``;
    raise it above 0 for varied samples); ``ensemble`` the members (prompt and/or model;
    empty: one member, the configured model with the default prompt); ``aggregate`` how the
    members' answers combine: ``mean`` (mean success probability >= 0.5), ``majority``
    (more than half say success) or ``unanimous`` (success only when every member says so,
    CUARewardBench's Unanimous Prompt Ensemble); ``evidence_tokens`` the budget (estimated
    tokens, chars / 4) of the steps selected for the verdict request; ``max_images`` the
    frames sent with it (the last frames and those around key steps)."""

    samples: int = 1
    ensemble: list[EnsembleMember] = msgspec.field(default_factory=list)
    aggregate: Literal["mean", "majority", "unanimous"] = "mean"
    evidence_tokens: int = 6000
    max_images: int = 6
