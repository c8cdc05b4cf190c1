"""The LLM judge over any OpenAI-compatible Chat Completions server.

Protocol (OpenAI API reference, "Chat Completions: Create", ``POST {base_url}/chat/completions``):
the request body holds ``model``, ``messages`` ([{role, content}]), ``response_format``,
``temperature``, ``seed`` and ``max_tokens``; the answer is
``{"choices": [{"message": {"content": "..."}}], "usage": {"prompt_tokens", "completion_tokens"}}``.
Answers are constrained with Structured Outputs (OpenAI guide "Structured Outputs":
``response_format = {"type": "json_schema", "json_schema": {"name", "strict": true, "schema"}}``)
and checked again in code by :mod:`streamgrade.judges.rubric`, so any compatible server
(vLLM, llama.cpp, Ollama, LiteLLM, a mock) works, with or without schema enforcement.

Grading a session: with more than one chunk, one request per chunk in order carries the
running summary forward (:data:`rubric.CHUNK_SCHEMA`); then one final request asks for the
verdict (:data:`rubric.VERDICT_SCHEMA`). Every request is retried on transient failures
(see :meth:`OpenAIJudge._call` and :mod:`streamgrade.judges.retry`).

The API key is sent only in the ``Authorization`` header. It is never logged, never part of
an exception message and never part of ``repr()``: every text from the server or the
transport is passed through :class:`streamgrade.redact.Redactor` (any 8 or more characters
of the key count as the key) before it is cut to a snippet.
"""

from __future__ import annotations

import hashlib
import logging
import random
import re
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import httpx
import msgspec

from ..config import Config, EnsembleMember
from ..errors import BudgetExceeded, JudgeError
from ..models import Chunk, JudgeInfo, Session, Usage, Verdict
from ..redact import Redactor
from . import rubric
from .cache import ResponseCache
from .ensemble import aggregate
from .evidence import select_evidence
from .judgement import Judgement, parse_judgement
from .judgement import extras as judgement_extras
from .limits import AdaptiveConcurrency, RateLimiter, estimate_tokens

#: Tokens an image costs at OpenAI's detail levels (low: a flat 85; high/auto: a typical
#: 1280x720 screenshot, 4 tiles of 170 + 85).
IMAGE_TOKENS = {"low": 85, "high": 765, "auto": 765}
from .retry import backoff_delay, is_retryable_status, parse_retry_after
from .transport import network_transport as _network_transport

__all__ = ["OpenAIJudge", "DEFAULT_BASE_URL"]

DEFAULT_BASE_URL = "https://api.openai.com/v1"

log = logging.getLogger("streamgrade.judge")

T = TypeVar("T")

#: Characters of a server's error body kept in a JudgeError message.
_SNIPPET_CHARS = 300
#: Bytes of a server's body (or characters of a transport's error text) read for a snippet:
#: all of it is redacted before the snippet is cut (:meth:`OpenAIJudge._snippet`).
_READ_BYTES = 64 * 1024
_USER_AGENT = "streamgrade/0.1"
_OMITTED = re.compile(r"^\[\.\.\. ([\d,]+) steps omitted \.\.\.\]$")


def _count(value: Any) -> int:
    """A reported token count: a positive int, else 0."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


class _Secret:
    """Holds the API key so that it never shows in ``repr``/``vars`` dumps or tracebacks."""

    __slots__ = ("_value",)

    def __init__(self, value: str):
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


class _Failure(Exception):
    """Internal: one attempt failed in a retryable way; ``reason`` is log-safe text and
    ``retry_after`` the server-requested delay in seconds (or None)."""

    def __init__(self, reason: str, retry_after: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.retry_after = retry_after



class OpenAIJudge:
    """Judge sessions with an OpenAI-compatible Chat Completions server.

    ``config.openai`` supplies ``base_url`` (default ``https://api.openai.com/v1``),
    ``model``, ``timeout_s`` (seconds per HTTP attempt), ``max_retries`` (retries after the
    first attempt), ``backoff_base_s``/``backoff_max_s`` (full-jitter backoff, seconds),
    ``max_retry_after_s`` (cap on a server's Retry-After, seconds), ``rpm`` (requests per
    minute across this judge, 0 = unlimited), ``max_concurrency`` (HTTP attempts in flight),
    ``temperature``, ``seed``, ``max_tokens``, ``prices`` (USD per 1M tokens by model) and
    ``http_client`` (``"aiohttp"``: httpx over aiohttp's pool, the fast default; ``"httpx"``:
    httpx's own pool; see :func:`_network_transport`).

    ``api_key`` is sent as ``Authorization: Bearer <key>`` when given (local servers often
    need none). ``transport`` replaces httpx's network transport (tests); ``sleep`` is
    awaited with each retry delay in seconds (tests record it); ``rng`` drives the backoff
    jitter (seed it for reproducible delays).

    One instance is safe to share between concurrent :meth:`grade` calls: the rate limiter
    and concurrency limit are per instance. Close it with :meth:`aclose` (or ``async with``).

    ``on_attempt`` (None, or set by the metrics, :mod:`streamgrade.ops.metrics`) is called
    after every HTTP attempt with (seconds from sending to the answer or the failure, the
    HTTP status or 0 when none came (timeout, transport error), the attempt number: 1 for
    the first, 2 and up for retries). It must not raise.
    """

    def __init__(
        self,
        config: Config,
        api_key: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.config = config
        oc = self._settings()
        self.info = JudgeInfo(kind=self.KIND, model=oc.model)
        self.base_url = (oc.base_url or self.DEFAULT_BASE_URL).rstrip("/")
        self._url = self.base_url + self.PATH
        self._key = _Secret(api_key) if api_key else None
        self._redactor = Redactor([api_key])
        headers = {"Accept": "application/json", "User-Agent": _USER_AGENT}
        headers.update(self._auth_headers())
        if transport is None:
            transport = _network_transport(oc.http_client, oc.max_concurrency)
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(oc.timeout_s),
            transport=transport,
            follow_redirects=False,
        )
        self._sleep = sleep
        self._rng = rng if rng is not None else random.Random()
        self.limits = RateLimiter(oc.rpm, oc.tpm, adaptive_start_rps=oc.adaptive_start_rps,
                                  adaptive_increase=oc.adaptive_increase, sleep=sleep, clock=clock)
        self._slots: AdaptiveConcurrency | None = None  # created on first use, inside a loop
        self._inflight: dict[str, tuple[anyio.Event, list[Any]]] = {}
        self._cache = ResponseCache(Path(oc.cache_dir) if oc.cache_dir else None, self.info.model)
        self.spent_usd = 0.0  # every request of this judge, for the run budget
        self.on_attempt: Callable[[float, int, int], None] | None = None

    #: ``JudgeInfo.kind``, the default base URL and the endpoint path (subclasses change them).
    KIND = "openai"
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    PATH = "/chat/completions"
    #: Multiplies every price (the batch judges: ``batch.price_factor``).
    _price_factor = 1.0

    def _settings(self) -> Any:
        """The provider's config section (``[openai]``; the Anthropic judge: ``[anthropic]``)."""
        return self.config.openai

    def _auth_headers(self) -> dict[str, str]:
        """Headers that carry the key: ``Authorization: Bearer <key>`` when a key is set."""
        return {"Authorization": f"Bearer {self._key.reveal()}"} if self._key is not None else {}

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(model={self.info.model!r}, base_url={self.base_url!r}, "
            f"api_key={'set' if self._key else 'none'})"
        )

    async def __aenter__(self) -> OpenAIJudge:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP client (idempotent)."""
        await self._client.aclose()

    # --- grading -----------------------------------------------------------------------

    async def grade(self, session: Session, chunks: list[Chunk]) -> Verdict:
        """Grade ``session`` whose rendered actions are ``chunks``.

        With more than one chunk: one request per chunk, in order, with
        :func:`rubric.chunk_prompt` and :data:`rubric.CHUNK_SCHEMA`, each carrying the
        previous running summary. Then the verdict: the evidence is selected once
        (:func:`.evidence.select_evidence`: key steps within ``judge.evidence_tokens``,
        frames around key steps and the last frames, at most ``judge.max_images``) and
        :func:`rubric.final_prompt` is sent with :data:`rubric.VERDICT_SCHEMA` to every
        ensemble member (``judge.ensemble``, default one: ``openai.model``, default prompt)
        ``judge.samples`` times (sample k with ``seed + k``, so samples are distinct
        requests), one after the other; the answers are combined by
        :func:`.ensemble.aggregate` (``judge.aggregate``).

        Returns a :class:`Verdict` with the three components (scores 0-100, confidences
        0-1, scaled by the ensemble's agreement), the summary, the chunk summaries, the
        :class:`Usage` of every HTTP attempt (tokens from the server's ``usage``, cost in
        USD from ``config.openai.prices`` by each request's model) and ``extras``
        (:func:`.judgement.extras`, plus ``agreement`` and ``members`` for an ensemble,
        and ``evidence``: steps shown, steps omitted, images). Raises
        :class:`JudgeError` when a request fails for good (non-retryable status, or
        retries exhausted); its ``attempts`` counts that request's HTTP attempts.
        """
        jc = self.config.judge
        usage = Usage()
        summaries: list[str] = []
        answers: list[Judgement] = []
        members = jc.ensemble or [EnsembleMember()]
        try:
            if len(chunks) > 1:
                previous = ""
                for chunk in chunks:
                    prompt = rubric.chunk_prompt(session, chunk, previous)
                    previous = await self._call(session, prompt, rubric.CHUNK_SCHEMA, rubric.parse_chunk, usage,
                                                images=chunk.frames)
                    summaries.append(previous)
            lines, images = select_evidence(session, chunks, jc.evidence_tokens, jc.max_images)
            prompt = rubric.final_prompt(session, chunks, summaries, evidence=lines)
            for member in members:
                for k in range(jc.samples):
                    answers.append(await self._call(session, prompt, rubric.VERDICT_SCHEMA, parse_judgement, usage,
                                                    images=images, model=member.model, variant=member.prompt,
                                                    sample=k))
        except JudgeError as exc:
            exc.usage = usage  # what this session spent before failing
            raise
        j, agreement = aggregate(answers, jc.aggregate)
        extras = judgement_extras(j)
        if extras:
            omitted = sum(int(m.group(1).replace(",", "")) for line in lines if (m := _OMITTED.match(line)))
            extras["evidence"] = {"steps_shown": sum(1 for line in lines if not _OMITTED.match(line)),
                                  "steps_omitted": omitted, "images": len(images)}
            if len(answers) > 1:
                extras["agreement"] = agreement
                extras["members"] = [
                    {"model": m.model or self.info.model, "prompt": m.prompt, "sample": k,
                     "success": a.success, "p_success": a.p_success, "failure_cause": a.failure_cause}
                    for (m, k), a in zip(((m, k) for m in members for k in range(jc.samples)), answers)]
        return Verdict(components=j.components, summary=j.summary, chunk_summaries=summaries, usage=usage,
                       extras=extras)

    async def ask(self, session: Session, prompt: str, schema: dict[str, Any], parse: Callable[[str], T],
                  usage: Usage, *, system: str, model: str | None = None, sample: int = 0,
                  images: list[str] = ()) -> T:
        """One structured request with its own ``system`` prompt (the pairwise judge,
        :mod:`.pairwise`; hints, :mod:`streamgrade.hints`; captions, :mod:`streamgrade.augment`),
        with this judge's retries, limits, cache and usage accounting (see :meth:`_call`);
        ``images`` (JPEG paths) go after the text as image parts; ``session`` names the
        request in logs and errors."""
        return await self._call(session, prompt, schema, parse, usage, images, model=model, sample=sample,
                                system=system)

    def _body(self, session: Session, prompt: str, schema: dict[str, Any], images: list[str] = (), *,
              model: str | None = None, variant: str = "default", sample: int = 0,
              system: str | None = None) -> dict[str, Any]:
        """The request body; ``images`` (JPEG paths of the chunk's frames) go after the text
        as ``image_url`` content parts with data URLs (OpenAI vision input), in time order.
        ``model`` (None: ``openai.model``), the system prompt ``variant`` and ``sample``
        (added to the seed) serve ensembles; ``system`` replaces the rubric's system prompt
        (the pairwise judge's)."""
        oc = self._settings()
        content: str | list[dict[str, Any]] = prompt
        if images:
            from ..extract.frames import image_data_url

            detail = self.config.frames.detail
            content = [{"type": "text", "text": prompt}] + [
                {"type": "image_url", "image_url": {"url": image_data_url(p), "detail": detail}} for p in images]
        return {
            "model": model or oc.model,
            "messages": [
                {"role": "system", "content": system if system is not None else rubric.system_prompt(session, variant)},
                {"role": "user", "content": content},
            ],
            "response_format": {"type": "json_schema", "json_schema": schema},
            "temperature": oc.temperature,
            "seed": oc.seed + sample,
            oc.max_tokens_field: oc.max_tokens,
        }

    async def _call(
        self,
        session: Session,
        prompt: str,
        schema: dict[str, Any],
        parse: Callable[[str], T],
        usage: Usage,
        images: list[str] = (),
        *,
        model: str | None = None,
        variant: str = "default",
        sample: int = 0,
        system: str | None = None,
    ) -> T:
        """Send one chat completion and return ``parse(content)``, retrying transient failures.

        Each HTTP attempt waits for the rpm limiter (when ``rpm > 0``) and the concurrency
        semaphore, and is bounded by ``timeout_s``. Retried, up to ``max_retries`` times:
        429/408/409/5xx statuses, timeouts and transport errors, a body that is not JSON or
        lacks ``choices[0].message.content``, and content that ``parse`` rejects with
        ValueError. The delay is the server's ``retry-after-ms``/``Retry-After`` (capped at
        ``max_retry_after_s``) when present, else :func:`backoff_delay`; it is awaited with
        the injected ``sleep``. Every attempt is counted in ``usage.requests``; tokens and
        cost of every 2xx answer that reports ``usage`` are added (the server billed them).

        Raises :class:`JudgeError` at once for other statuses (400, 401, 403, 404, 422 ...)
        with the status and a redacted snippet of the error body, and after the last attempt
        naming the number of attempts and the last error.
        """
        model = model or self.info.model
        body = msgspec.json.encode(self._body(session, prompt, schema, images, model=model, variant=variant,
                                              sample=sample, system=system))
        # tokens: the text (chars / 4) plus each image at its detail's price, not its base64
        est = estimate_tokens(body) if not images else (
            estimate_tokens(prompt) + 200 + len(images) * IMAGE_TOKENS.get(self.config.frames.detail, 85))
        key = hashlib.sha256(self._url.encode() + b"\0" + body).hexdigest()
        shared = self._inflight.get(key)
        if shared is not None:  # the same request is in flight: wait for its answer
            event, box = shared
            await event.wait()
            if isinstance(box[0], BaseException):
                raise box[0]
            return parse(box[0])
        event, box = anyio.Event(), [JudgeError("identical request was cancelled")]
        self._inflight[key] = (event, box)
        try:
            content = self._cache.get(key)
            if content is not None:
                try:
                    result = parse(content)
                    box[0] = content
                    return result
                except ValueError:
                    pass  # a bad cached answer is asked again
            content, result = await self._send(session.ref.session_id, body, parse, usage, est, model)
            box[0] = content
            self._cache.put(key, content)
            return result
        except BaseException as exc:
            box[0] = exc
            raise
        finally:
            del self._inflight[key]
            event.set()

    async def _send(self, sid: str, body: bytes, parse: Callable[[str], T], usage: Usage, est: int,
                    model: str) -> tuple[str, T]:
        """The retry loop of one request (see :meth:`_call`); returns (content, parsed)."""
        oc = self._settings()
        attempts = oc.max_retries + 1
        last = "no attempt made"
        for attempt in range(attempts):
            try:
                content = await self._attempt(sid, body, usage, attempt + 1, est, model)
                try:
                    return content, parse(content)
                except ValueError as exc:
                    raise _Failure(f"invalid answer: {exc}") from None
            except _Failure as failure:
                last = self._redact(failure.reason)
                if attempt + 1 >= attempts:
                    break
                # A server-given delay is enforced by the shared pause gate (every request
                # waits, not only this one); otherwise back off here.
                gated = failure.retry_after is not None
                if gated:
                    delay = min(failure.retry_after, oc.max_retry_after_s)
                else:
                    delay = backoff_delay(attempt, oc.backoff_base_s, oc.backoff_max_s, self._rng)
                log.warning(
                    "session %s: judge attempt %d/%d failed: %s; retrying in %.2f s",
                    sid,
                    attempt + 1,
                    attempts,
                    last,
                    delay,
                    extra={"session": sid},
                )
                if not gated:
                    await self._sleep(delay)
        raise JudgeError(
            f"judge request for session {sid} failed after {attempts} attempts: last error {last}",
            attempts=attempts,
        )

    async def _attempt(self, sid: str, body: bytes, usage: Usage, number: int, prompt_est: int, model: str) -> str:
        """One HTTP attempt: returns the message content or raises _Failure (retryable) or
        JudgeError (not retryable)."""
        oc = self._settings()
        if oc.max_cost_usd is not None and self.spent_usd >= oc.max_cost_usd:
            raise BudgetExceeded(f"run budget of ${oc.max_cost_usd:g} spent (${self.spent_usd:.4f}); "
                                 f"session {sid} left pending", attempts=number - 1)
        if self._slots is None:
            self._slots = AdaptiveConcurrency(oc.max_concurrency, adaptive=oc.rpm <= 0)
        await self.limits.acquire(prompt_est + oc.max_tokens)
        await self._slots.acquire()
        resp: httpx.Response | None = None
        sent = time.monotonic()
        try:
            usage.requests += 1
            try:
                # httpx's timeout bounds each connect/read/write; fail_after bounds the
                # whole attempt, so a server that trickles bytes cannot hold it forever.
                with anyio.fail_after(oc.timeout_s):
                    resp = await self._client.post(
                        self._url, content=body, headers={"Content-Type": "application/json"}
                    )
            except (httpx.TimeoutException, TimeoutError) as exc:
                raise _Failure(f"timeout after {oc.timeout_s:g} s ({type(exc).__name__})") from None
            except httpx.UnsupportedProtocol as exc:
                raise JudgeError(f"judge request for session {sid} failed: {self._redact(str(exc))}",
                                 attempts=number) from None
            except httpx.RequestError as exc:  # TransportError (connect, read, protocol), DecodingError
                raise _Failure(f"{type(exc).__name__}: {self._redact(str(exc)) or 'transport error'}") from None
        finally:
            status = resp.status_code if resp is not None else 0
            if resp is not None:
                wait = self._retry_after(resp.headers) if is_retryable_status(status) else None
                self.limits.observe(status, resp.headers, None if wait is None else min(wait, oc.max_retry_after_s))
            await self._slots.release(ok=200 <= status < 300, rate_limited=status == 429)
            if self.on_attempt is not None:
                self.on_attempt(time.monotonic() - sent, status, number)

        if not 200 <= status < 300:
            snippet = self._snippet(resp)
            if is_retryable_status(status):
                raise _Failure(f"HTTP {status}: {snippet}", self._retry_after(resp.headers))
            raise JudgeError(
                f"judge request for session {sid} failed: HTTP {status} (not retried): {snippet}",
                attempts=number,
            )
        try:
            data = msgspec.json.decode(resp.content)
        except msgspec.DecodeError:
            raise _Failure(f"response body is not JSON: {self._snippet(resp)}") from None
        if isinstance(data, dict):
            prompt_tokens = self._add_usage(usage, data.get("usage"), model)
            self.limits.settle(prompt_est, prompt_tokens)
        return self._content(data, resp)

    def _content(self, data: Any, resp: httpx.Response) -> str:
        """The answer text of a decoded 2xx body, or raise _Failure (retryable)."""
        try:
            message = data["choices"][0]["message"]
            content = message["content"]
        except (KeyError, IndexError, TypeError):
            raise _Failure(f"response lacks choices[0].message.content: {self._snippet(resp)}") from None
        if not isinstance(content, str):
            refusal = message.get("refusal") if isinstance(message, dict) else None
            why = f"refusal: {refusal}" if refusal else f"content is {type(content).__name__}"
            raise _Failure(f"response has no text content ({self._redact(str(why))[:_SNIPPET_CHARS]})")
        return content

    # --- helpers -----------------------------------------------------------------------

    def _add_usage(self, usage: Usage, reported: Any, model: str) -> int | None:
        """Add a 2xx answer's reported tokens and their cost at ``model``'s price; return
        the prompt tokens reported (None: no usage). ``usage.prompt_tokens_details.
        cached_tokens`` (OpenAI's automatic prefix caching) is counted in
        ``usage.cached_tokens`` and priced at ``price.cached_input`` when set (else input)."""
        if not isinstance(reported, dict):
            return None
        p, c = _count(reported.get("prompt_tokens")), _count(reported.get("completion_tokens"))
        details = reported.get("prompt_tokens_details")
        cached = min(p, _count(details.get("cached_tokens"))) if isinstance(details, dict) else 0
        self._charge(usage, model, prompt=p, completion=c, cached=cached)
        return p

    def _charge(self, usage: Usage, model: str, *, prompt: int, completion: int, cached: int = 0,
                cache_write: int = 0) -> None:
        """Count tokens and their cost at ``model``'s price (USD per 1M tokens): ``prompt``
        includes ``cached`` (read from a prompt cache, at ``cached_input``, else ``input``)
        and ``cache_write`` (written to it, at ``cache_write``, else ``input``), all times
        ``_price_factor`` (1; batch mode: ``batch.price_factor``)."""
        price = self._settings().prices.get(model)
        cost = 0.0
        if price:
            read_rate = price.cached_input if price.cached_input is not None else price.input
            write_rate = price.cache_write if price.cache_write is not None else price.input
            plain = prompt - cached - cache_write
            cost = (plain * price.input + cached * read_rate + cache_write * write_rate
                    + completion * price.output) / 1e6 * self._price_factor
        usage.prompt_tokens += prompt
        usage.completion_tokens += completion
        usage.cached_tokens += cached
        usage.cost_usd += cost
        self.spent_usd += cost

    def _retry_after(self, headers: httpx.Headers) -> float | None:
        """Server-requested delay in seconds: ``retry-after-ms`` (OpenAI/Azure) wins over
        ``Retry-After`` (RFC 9110 §10.2.3); None when neither parses."""
        ms = parse_retry_after(headers.get("retry-after-ms"))
        if ms is not None:
            return ms / 1000.0
        return parse_retry_after(headers.get("retry-after"))

    def _snippet(self, resp: httpx.Response) -> str:
        """The first :data:`_SNIPPET_CHARS` characters of the body, whitespace collapsed,
        for an error message: the first :data:`_READ_BYTES` are redacted first, then cut (a
        key cut by the read bound leaves at most 7 characters, which is not the key)."""
        text = self._redact(resp.content[:_READ_BYTES].decode("utf-8", "replace"))
        text = self._redact(" ".join(text.split()))  # again: a key may hold a space
        if len(text) > _SNIPPET_CHARS:
            text = text[: _SNIPPET_CHARS - 3] + "..."
        return text or "(empty body)"

    def _redact(self, text: str) -> str:
        """``text`` (a server's body, a transport's error, a refusal) bounded to
        :data:`_READ_BYTES` characters, with every 8 or more characters of the API key
        replaced (see :mod:`streamgrade.redact`). Redact first, cut after."""
        return self._redactor(text[:_READ_BYTES])
