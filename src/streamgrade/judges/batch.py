"""Batch mode of the LLM judges: the same judge, with the provider's Batch API as transport.

:class:`OpenAIBatchJudge` and :class:`AnthropicBatchJudge` are :class:`.openai.OpenAIJudge`
and :class:`.anthropic.AnthropicJudge` with one step replaced: instead of POSTing a request
(:meth:`OpenAIJudge._send`), the request body goes to a :class:`.batch_collector.BatchCollector`
under a deterministic ``custom_id`` and the judge awaits its result. The judge's own
``_content`` and ``_add_usage`` read the result, so prompts, chunk summaries, verdicts,
ensembles, parsing, records and sinks are exactly those of the synchronous judge.

Rounds: a session of several chunks awaits chunk k's summary before it can ask for chunk
k+1, so with many sessions in flight (``batch.max_sessions_in_flight``) the first batch holds
chunk 1 of every session (and the verdict request of every one-chunk session), the next
holds chunk 2 of those that have one, and so on; each session's verdict request comes after
its last chunk. A session of n chunks thus waits for n + 1 batches.

Retries: a request that comes back errored, expired or canceled is resubmitted (same
custom_id) in a later batch; one whose answer does not parse (or lacks the content) is asked
again under a new custom_id (the hash with ``#retry k``), so no custom_id that succeeded is
ever submitted again. At most ``max_retries + 1`` results per request, as the synchronous
judge's attempts. A request refused for good (an HTTP 4xx line, Anthropic's
invalid_request_error) fails its session with a :class:`JudgeError` at once.

Cost: tokens of every answer at ``batch.price_factor`` (default 0.5) times the section's
prices; ``usage.requests`` counts batch results received (answers recovered from the ledger
after a restart included: they were paid once).

The collector must run: :meth:`serve` (the pipeline starts it in its task group when the
judge has one, see :mod:`streamgrade.pipeline`). Batch mode is for ``grade``; ``watch``
refuses it.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Callable, TypeVar

import httpx
import msgspec

from ..config import Config
from ..errors import BudgetExceeded, JudgeError
from ..models import Usage
from .anthropic import AnthropicJudge
from .batch_api import AnthropicBatchAPI, BatchAPI, OpenAIBatchAPI
from .batch_collector import BatchCollector, BatchSettings, describe
from .openai import OpenAIJudge, _Failure

__all__ = ["OpenAIBatchJudge", "AnthropicBatchJudge", "custom_id", "describe"]

log = logging.getLogger("streamgrade.judge")
T = TypeVar("T")


def custom_id(endpoint: str, body: bytes, retry: int = 0) -> str:
    """The request's custom_id: ``sg-`` and 40 hex characters of the sha256 of ``endpoint``
    (provider and path, not the host: a restart against another address finds the same
    rows) and the exact request ``body``; ``retry`` k > 0 (a new answer asked for after one
    that did not parse) hashes ``#retry k`` in. 43 characters of ``[a-z0-9-]``: valid for
    both providers (Anthropic: ``^[a-zA-Z0-9_-]{1,64}$``)."""
    h = hashlib.sha256(endpoint.encode() + b"\0" + body)
    if retry:
        h.update(b"#retry %d" % retry)
    return "sg-" + h.hexdigest()[:40]


class _BatchMode:
    """The batch transport, mixed in before a judge class (see the module docstring).

    ``store_path`` is the ledger (default ``OUT/state.sqlite`` of ``run.output``); other
    arguments are the judge's (``transport`` serves tests)."""

    API: type[BatchAPI] = BatchAPI

    def __init__(self, config: Config, api_key: str | None = None, *, store_path: str | Path | None = None,
                 **kwargs: Any):
        super().__init__(config, api_key, **kwargs)  # type: ignore[call-arg]
        from ..sinks.layout import Layout

        bc, oc = config.batch, self._settings()
        self._price_factor = bc.price_factor
        #: Sessions the pipeline grades at once in batch mode.
        self.grade_workers = bc.max_sessions_in_flight
        api = self.API(self._client, self.base_url, redact=self._redact, timeout_s=oc.timeout_s,
                       upload_timeout_s=bc.upload_timeout_s)
        settings = BatchSettings(quiet_s=bc.quiet_s, max_wait_s=bc.max_wait_s, poll_min_s=bc.poll_min_s,
                                 poll_max_s=bc.poll_max_s, max_requests=bc.max_requests, max_bytes=bc.max_bytes,
                                 max_retries=oc.max_retries, backoff_base_s=oc.backoff_base_s,
                                 backoff_max_s=oc.backoff_max_s, keep_days=bc.keep_days)
        self.collector = BatchCollector(api, store_path or Layout(Path(config.run.output)).ledger, settings)
        self._endpoint = f"{self.KIND}:{self.PATH}"

    async def serve(self) -> None:
        """Run the collector until cancelled (the pipeline's service task)."""
        await self.collector.serve()

    def snapshot(self) -> dict[str, Any]:
        """The collector's state for progress and the summary (see
        :meth:`BatchCollector.snapshot`)."""
        return self.collector.snapshot()

    async def _send(self, sid: str, body: bytes, parse: Callable[[str], T], usage: Usage, est: int,
                    model: str) -> tuple[str, T]:
        """One request through the batch collector; returns (content, parsed) or raises
        JudgeError (see the module docstring for the retries), BudgetExceeded when the run
        budget is spent before it is queued."""
        oc = self._settings()
        attempts = oc.max_retries + 1
        last, tries, k = "no attempt made", 0, 0
        while tries < attempts:
            if oc.max_cost_usd is not None and self.spent_usd >= oc.max_cost_usd:
                raise BudgetExceeded(f"run budget of ${oc.max_cost_usd:g} spent (${self.spent_usd:.4f}); "
                                     f"session {sid} left pending", attempts=tries)
            cid = custom_id(self._endpoint, body, k)
            outcome = await self.collector.request(cid, body)
            tries += 1
            usage.requests += 1
            if outcome.state == "succeeded" and outcome.result is not None:
                try:
                    data = msgspec.json.decode(outcome.result)
                except msgspec.DecodeError:
                    data = None
                if isinstance(data, dict):
                    self._add_usage(usage, data.get("usage"), model)
                try:
                    content = self._content(data, httpx.Response(200, content=outcome.result))
                    return content, parse(content)
                except _Failure as failure:
                    last = self._redact(failure.reason)
                except ValueError as exc:
                    last = self._redact(f"invalid answer: {exc}")
                k += 1  # ask again under a new custom_id
            else:
                last = self._redact(f"{outcome.state}: {outcome.error or ''}".strip())
                if not outcome.retryable:
                    raise JudgeError(f"judge request for session {sid} failed in batch {cid}: {last} (not retried)",
                                     attempts=tries)
            if tries < attempts:
                log.warning("session %s: batch request %s: %s; asking again in a later batch (%d/%d)", sid, cid, last,
                            tries, attempts, extra={"session": sid})
        raise JudgeError(f"judge request for session {sid} failed after {tries} batch attempts: last error {last}",
                         attempts=tries)


class OpenAIBatchJudge(_BatchMode, OpenAIJudge):
    """:class:`OpenAIJudge` over OpenAI's Batch API (``[openai] mode = "batch"``)."""

    API = OpenAIBatchAPI


class AnthropicBatchJudge(_BatchMode, AnthropicJudge):
    """:class:`AnthropicJudge` over Anthropic's Message Batches (``[anthropic] mode = "batch"``)."""

    API = AnthropicBatchAPI
