"""The two providers' batch APIs, in their documented shapes: request lines, create, poll,
results and finding a batch whose id was lost.

OpenAI Batch (platform.openai.com/docs/api-reference/batch, "Files" and "Batch"):
  the input is a JSONL file of ``{"custom_id", "method": "POST", "url":
  "/v1/chat/completions", "body"}`` lines, at most 50,000 requests and 200 MB, uploaded
  with ``POST /v1/files`` (multipart, ``purpose=batch``); ``POST /v1/batches`` with
  ``{input_file_id, endpoint, completion_window: "24h", metadata}`` creates the batch;
  ``GET /v1/batches/{id}`` gives ``status`` (validating, in_progress, finalizing,
  completed, failed, expired, cancelling, cancelled), ``request_counts {total, completed,
  failed}``, ``output_file_id`` and ``error_file_id``, whose content (``GET
  /v1/files/{id}/content``) holds one line per request: ``{id, custom_id, response:
  {status_code, request_id, body} | null, error: {code, message} | null}``; the error
  codes ``batch_expired`` and ``batch_cancelled`` mark requests not run before the window
  ended or the batch was cancelled. ``GET /v1/batches?limit=&after=`` lists batches, newest
  first (``{data, has_more, last_id}``).

Anthropic Message Batches (docs.anthropic.com "Batch processing", API "Message Batches"):
  ``POST /v1/messages/batches`` with ``{"requests": [{"custom_id", "params"}]}``, at most
  100,000 requests or 256 MB; ``GET /v1/messages/batches/{id}`` gives
  ``processing_status`` (in_progress, canceling, ended), ``request_counts {processing,
  succeeded, errored, canceled, expired}`` and, once ended, ``results_url``: JSONL lines
  ``{custom_id, result: {type: succeeded, message} | {type: errored, error: {type: "error",
  error: {type, message}}} | {type: canceled} | {type: expired}}``. ``GET
  /v1/messages/batches?limit=&after_id=`` lists batches, newest first (``{data, has_more,
  last_id}``). A custom_id matches ``^[a-zA-Z0-9_-]{1,64}$``.

Results come in any order and are matched by custom_id. Every HTTP failure is a
:class:`BatchHTTPError` saying whether trying again may help (429, 408, 409, 5xx, timeouts
and transport errors) and the server's Retry-After.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, AsyncIterator, Callable

import anyio
import httpx
import msgspec

from .batch_store import Outcome
from .retry import is_retryable_status, parse_retry_after

_SNIPPET = 300
#: Anthropic error types after which the same request cannot succeed ("Errors").
_ANTHROPIC_FINAL = frozenset({"invalid_request_error", "authentication_error", "permission_error",
                              "not_found_error", "request_too_large"})


class BatchHTTPError(Exception):
    """A batch API call failed: ``message`` (redacted), ``status`` (0: no HTTP answer),
    ``retry_after`` (seconds or None) and ``retryable``."""

    def __init__(self, message: str, status: int = 0, retry_after: float | None = None, retryable: bool = True):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after
        self.retryable = retryable


@dataclass
class BatchStatus:
    """A polled batch: ``state`` the provider's status word, ``ended`` whether its results
    can be read, ``total``/``done``/``failed`` request counts, ``raw`` the object."""

    batch_id: str
    state: str
    ended: bool
    total: int = 0
    done: int = 0
    failed: int = 0
    raw: dict[str, Any] = field(default_factory=dict)


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


def _cut(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _SNIPPET else text[:_SNIPPET - 3] + "..."


def _retry_after(headers: httpx.Headers) -> float | None:
    ms = parse_retry_after(headers.get("retry-after-ms"))
    return ms / 1000.0 if ms is not None else parse_retry_after(headers.get("retry-after"))


def _time(value: Any) -> float | None:
    """Unix seconds of an int/float timestamp (OpenAI) or an RFC 3339 string (Anthropic)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def parse_openai_line(obj: Any) -> Outcome | None:
    """One line of an OpenAI output or error file as an :class:`Outcome`; None when it
    has no custom_id. 2xx responses succeed (``result`` is the response body); other
    statuses are errored (retryable for 408/409/429/5xx); ``error.code`` batch_expired and
    batch_cancelled give expired and canceled."""
    if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
        return None
    cid = obj["custom_id"]
    resp, err = obj.get("response"), obj.get("error")
    if isinstance(resp, dict) and isinstance(resp.get("status_code"), int):
        status, body = resp["status_code"], resp.get("body")
        if 200 <= status < 300 and isinstance(body, dict):
            return Outcome(cid, "succeeded", result=msgspec.json.encode(body))
        inner = body.get("error") if isinstance(body, dict) else None
        message = inner.get("message") if isinstance(inner, dict) else None
        return Outcome(cid, "errored", error=_cut(f"HTTP {status}: {message or body}"),
                       retryable=is_retryable_status(status) or 200 <= status < 300)
    if isinstance(err, dict):
        code, message = err.get("code"), err.get("message") or ""
        state = {"batch_expired": "expired", "batch_cancelled": "canceled"}.get(code, "errored")
        return Outcome(cid, state, error=_cut(f"{code}: {message}"), retryable=True)
    return Outcome(cid, "errored", error="result line has neither response nor error", retryable=True)


def parse_anthropic_line(obj: Any) -> Outcome | None:
    """One line of an Anthropic results file as an :class:`Outcome`; None without a
    custom_id. ``succeeded``: ``result`` is the message; ``errored``: retryable unless the
    error type says the request itself is wrong (invalid_request_error and the like);
    ``expired``/``canceled`` as they are."""
    if not isinstance(obj, dict) or not isinstance(obj.get("custom_id"), str):
        return None
    cid, result = obj["custom_id"], obj.get("result")
    kind = result.get("type") if isinstance(result, dict) else None
    if kind == "succeeded" and isinstance(result.get("message"), dict):
        return Outcome(cid, "succeeded", result=msgspec.json.encode(result["message"]))
    if kind in ("expired", "canceled"):
        return Outcome(cid, kind, error=f"request {kind}", retryable=True)
    outer = result.get("error") if isinstance(result, dict) else None
    inner = outer.get("error") if isinstance(outer, dict) and isinstance(outer.get("error"), dict) else outer
    etype = inner.get("type") if isinstance(inner, dict) else None
    message = inner.get("message") if isinstance(inner, dict) else None
    return Outcome(cid, "errored", error=_cut(f"{etype or kind}: {message or ''}"),
                   retryable=etype not in _ANTHROPIC_FINAL)


class BatchAPI:
    """Shared HTTP plumbing of a provider's batch API over the judge's httpx ``client``
    (its auth headers); ``base_url`` as the judge's; ``redact`` scrubs the key from any
    text; ``timeout_s`` bounds each call, ``upload_timeout_s`` an upload or a download."""

    provider = ""
    #: The documented limits of one batch (requests, bytes).
    MAX_REQUESTS = 0
    MAX_BYTES = 0
    #: Status words after which the results can be read.
    ENDED: frozenset[str] = frozenset()

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, redact: Callable[[str], str],
                 timeout_s: float = 60.0, upload_timeout_s: float = 600.0):
        self.client = client
        self.base = base_url.rstrip("/")
        self.redact = redact
        self.timeout_s = timeout_s
        self.upload_timeout_s = upload_timeout_s

    async def _call(self, method: str, url: str, *, timeout: float | None = None, **kw: Any) -> httpx.Response:
        timeout = timeout or self.timeout_s
        try:
            with anyio.fail_after(timeout):
                resp = await self.client.request(method, url, timeout=timeout, **kw)
        except (httpx.TimeoutException, TimeoutError):
            raise BatchHTTPError(f"{method} {url}: timeout after {timeout:g} s") from None
        except httpx.UnsupportedProtocol as exc:
            raise BatchHTTPError(f"{method} {url}: {self.redact(str(exc))}", retryable=False) from None
        except httpx.RequestError as exc:
            raise BatchHTTPError(f"{method} {url}: {type(exc).__name__}: {self.redact(str(exc))}") from None
        if not 200 <= resp.status_code < 300:
            text = _cut(self.redact(resp.content[:65536].decode("utf-8", "replace")))
            raise BatchHTTPError(f"{method} {url}: HTTP {resp.status_code}: {text}", resp.status_code,
                                 _retry_after(resp.headers), is_retryable_status(resp.status_code))
        return resp

    async def _json(self, method: str, url: str, **kw: Any) -> dict[str, Any]:
        resp = await self._call(method, url, **kw)
        try:
            data = msgspec.json.decode(resp.content)
        except msgspec.DecodeError:
            raise BatchHTTPError(f"{method} {url}: answer is not JSON") from None
        if not isinstance(data, dict):
            raise BatchHTTPError(f"{method} {url}: answer is not a JSON object")
        return data

    async def _lines(self, url: str) -> AsyncIterator[Any]:
        """The decoded lines of a JSONL download (a line that does not parse is skipped:
        its request then has no result and is resubmitted)."""
        resp = await self._call("GET", url, timeout=self.upload_timeout_s)
        for raw in resp.content.splitlines():
            if raw.strip():
                try:
                    yield msgspec.json.decode(raw)
                except msgspec.DecodeError:
                    continue

    async def _list(self, url: str, cursor: str, stop_before: float, max_pages: int = 100) -> AsyncIterator[dict]:
        """Batches from a newest-first list, until one created before ``stop_before``."""
        after: str | None = None
        for _ in range(max_pages):
            params: dict[str, Any] = {"limit": 100}
            if after:
                params[cursor] = after
            page = await self._json("GET", url, params=params)
            data = page.get("data") if isinstance(page.get("data"), list) else []
            for item in data:
                if isinstance(item, dict):
                    created = _time(item.get("created_at"))
                    if created is not None and created < stop_before:
                        return
                    yield item
            after = page.get("last_id") or (data[-1].get("id") if data and isinstance(data[-1], dict) else None)
            if not page.get("has_more") or not after:
                return

    # -- per provider ---------------------------------------------------------------------
    def line(self, custom_id: str, body: bytes) -> bytes:  # pragma: no cover - abstract
        raise NotImplementedError

    async def create(self, token: str, lines: list[bytes], *, file_id: str | None,
                     on_file: Callable[[str], None]) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    async def status(self, batch_id: str) -> BatchStatus:  # pragma: no cover - abstract
        raise NotImplementedError

    async def results(self, status: BatchStatus) -> list[Outcome]:  # pragma: no cover - abstract
        raise NotImplementedError

    async def find(self, token: str, created: float, custom_ids: list[str],
                   known: set[str]) -> str | None:  # pragma: no cover - abstract
        raise NotImplementedError


class OpenAIBatchAPI(BatchAPI):
    """OpenAI's Files + Batch API under ``base_url`` (ending in ``/v1``)."""

    provider = "openai"
    MAX_REQUESTS = 50_000
    MAX_BYTES = 200 * 1000 * 1000
    ENDED = frozenset({"completed", "failed", "expired", "cancelled"})
    ENDPOINT = "/v1/chat/completions"

    def line(self, custom_id: str, body: bytes) -> bytes:
        return (b'{"custom_id":"' + custom_id.encode() + b'","method":"POST","url":"' + self.ENDPOINT.encode()
                + b'","body":' + body + b"}\n")

    async def create(self, token: str, lines: list[bytes], *, file_id: str | None,
                     on_file: Callable[[str], None]) -> str:
        """Upload the JSONL (unless ``file_id`` was uploaded already; ``on_file`` gets the
        new id) and create the batch, its metadata naming the submission's ``token``."""
        if file_id is None:
            up = await self._json("POST", self.base + "/files", timeout=self.upload_timeout_s,
                                  data={"purpose": "batch"},
                                  files={"file": (f"streamgrade-{token[:12]}.jsonl", b"".join(lines),
                                                  "application/jsonl")})
            file_id = up.get("id")
            if not isinstance(file_id, str):
                raise BatchHTTPError("POST /files: answer has no id")
            on_file(file_id)
        batch = await self._json("POST", self.base + "/batches", json={
            "input_file_id": file_id, "endpoint": self.ENDPOINT, "completion_window": "24h",
            "metadata": {"streamgrade_submission": token, "streamgrade_requests": str(len(lines))}})
        if not isinstance(batch.get("id"), str):
            raise BatchHTTPError("POST /batches: answer has no id")
        return batch["id"]

    async def status(self, batch_id: str) -> BatchStatus:
        b = await self._json("GET", f"{self.base}/batches/{batch_id}")
        counts = b.get("request_counts") if isinstance(b.get("request_counts"), dict) else {}
        state = str(b.get("status"))
        done, failed = _int(counts.get("completed")), _int(counts.get("failed"))
        return BatchStatus(batch_id, state, state in self.ENDED, _int(counts.get("total")), done + failed, failed, b)

    async def results(self, status: BatchStatus) -> list[Outcome]:
        out: list[Outcome] = []
        for key in ("output_file_id", "error_file_id"):
            fid = status.raw.get(key)
            if isinstance(fid, str) and fid:
                async for obj in self._lines(f"{self.base}/files/{fid}/content"):
                    if (o := parse_openai_line(obj)) is not None:
                        out.append(o)
        return out

    async def find(self, token: str, created: float, custom_ids: list[str], known: set[str]) -> str | None:
        """The batch whose metadata names ``token`` (listed newest first, back to an hour
        before the intent), or None."""
        async for b in self._list(self.base + "/batches", "after", created - 3600):
            meta = b.get("metadata")
            if isinstance(meta, dict) and meta.get("streamgrade_submission") == token and isinstance(b.get("id"), str):
                return b["id"]
        return None


class AnthropicBatchAPI(BatchAPI):
    """Anthropic's Message Batches API under ``base_url`` (``https://api.anthropic.com``)."""

    provider = "anthropic"
    MAX_REQUESTS = 100_000
    MAX_BYTES = 256 * 1000 * 1000
    ENDED = frozenset({"ended"})

    def line(self, custom_id: str, body: bytes) -> bytes:
        return b'{"custom_id":"' + custom_id.encode() + b'","params":' + body + b"}"

    async def create(self, token: str, lines: list[bytes], *, file_id: str | None,
                     on_file: Callable[[str], None]) -> str:
        payload = b'{"requests":[' + b",".join(lines) + b"]}"
        batch = await self._json("POST", self.base + "/v1/messages/batches", timeout=self.upload_timeout_s,
                                 content=payload, headers={"Content-Type": "application/json"})
        if not isinstance(batch.get("id"), str):
            raise BatchHTTPError("POST /v1/messages/batches: answer has no id")
        return batch["id"]

    async def status(self, batch_id: str) -> BatchStatus:
        b = await self._json("GET", f"{self.base}/v1/messages/batches/{batch_id}")
        counts = b.get("request_counts") if isinstance(b.get("request_counts"), dict) else {}
        finished = [_int(counts.get(k)) for k in ("succeeded", "errored", "canceled", "expired")]
        state = str(b.get("processing_status"))
        return BatchStatus(batch_id, state, state in self.ENDED, sum(finished) + _int(counts.get("processing")),
                           sum(finished), sum(finished[1:]), b)

    async def results(self, status: BatchStatus) -> list[Outcome]:
        url = status.raw.get("results_url")
        if not isinstance(url, str) or not url:
            url = f"{self.base}/v1/messages/batches/{status.batch_id}/results"
        return [o async for obj in self._lines(url) if (o := parse_anthropic_line(obj)) is not None]

    async def find(self, token: str, created: float, custom_ids: list[str], known: set[str]) -> str | None:
        """Message batches have no metadata: the earliest batch created since the intent
        (five minutes of clock skew allowed) that this folder does not know and that holds
        as many requests as the intent; when it has ended, its results must hold the
        intent's custom_ids. None when there is none. Residual window: another client's
        batch of the same size created in that window may be taken for ours; its results
        then lack our custom_ids, which are resubmitted (no loss, no duplicate record)."""
        want = set(custom_ids)
        found: list[tuple[float, dict]] = []
        async for b in self._list(self.base + "/v1/messages/batches", "after_id", created - 300):
            counts = b.get("request_counts") if isinstance(b.get("request_counts"), dict) else {}
            total = sum(_int(v) for v in counts.values())
            if b.get("id") not in known and isinstance(b.get("id"), str) and total == len(want):
                found.append((_time(b.get("created_at")) or 0.0, b))
        for _, b in sorted(found, key=lambda t: t[0]):
            if b.get("processing_status") == "ended":
                status = BatchStatus(b["id"], "ended", True, raw=b)
                if not want & {o.custom_id for o in await self.results(status)}:
                    continue
            return b["id"]
        return None


def new_token() -> str:
    """A fresh submission token (32 hex characters)."""
    return uuid.uuid4().hex


__all__ = ["BatchAPI", "BatchHTTPError", "BatchStatus", "OpenAIBatchAPI", "AnthropicBatchAPI", "parse_openai_line",
           "parse_anthropic_line", "new_token"]
