#!/usr/bin/env python3
"""A local, deterministic OpenAI-compatible Chat Completions server for streamgrade.

Built on ``aiohttp.web`` (one event loop; ~5,000+ requests/s at 0 ms latency on one core, so
it is never the bottleneck of a benchmark). It listens on 127.0.0.1 only and serves:

- ``POST /v1/chat/completions``: when ``response_format.json_schema.name`` is
  ``streamgrade_verdict`` it answers a schema-valid verdict (``summary`` plus ``outcome``,
  ``process`` and ``efficiency``, each ``{score 0-100, confidence 0-1, reason}``; when the
  schema asks for ``success``, the reasoning-first protocol of
  ``streamgrade.judges.judgement`` instead: ``key_points``, components ``{evidence_steps,
  reasoning, score, confidence}``, ``failure_cause``, ``success``,
  ``success_probability`` = outcome / 100, success when outcome >= 50), whose
  numbers are derived from a sha256 of the request's messages (same prompt, same verdict);
  for ``streamgrade_chunk`` it answers ``{summary, progress, problems}``; for any other
  ``json_schema`` a value valid for it (:func:`from_schema`: hints, captions); otherwise it
  echoes the last user message as plain text. The response has OpenAI's shape: ``id``
  ("chatcmpl-..."), ``object`` "chat.completion", ``created``, ``model`` (the request's),
  ``choices[0]`` ``{index, message {role, content}, finish_reason "stop"}`` and ``usage``
  ``{prompt_tokens (characters of the messages / 4), completion_tokens (characters of the
  answer / 4), total_tokens}``. Malformed requests get a 400 with OpenAI's error shape
  ``{"error": {message, type, param, code}}``.
- ``POST /v1/messages``: Anthropic's Messages API (needs an ``x-api-key`` header, else 401):
  a ``tool_use`` block calling the forced tool with the same verdict or chunk summary
  (:func:`anthropic_answer`), usage with simulated prompt-cache reads; no faults or limits.
- ``GET /v1/models``: a model list with one model, ``mock-judge``.
- Batch APIs (scripts/mock_batches.py documents them in full): OpenAI's ``/v1/files`` and
  ``/v1/batches`` and Anthropic's ``/v1/messages/batches`` in their documented shapes, with a
  start delay, a completion rate, seeded per-request errors that a resubmission redraws,
  expiry, cancel, validation limits, a log of submissions and results and ``batches``
  counters in the stats. Flags: ``--batch-start-delay-s``, ``--batch-rate``,
  ``--batch-finalize-s``, ``--batch-expiry-s``, ``--batch-error-rate``,
  ``--batch-error-status 500|400``, ``--batch-max-requests``, ``--batch-max-bytes``,
  ``--anthropic-batch-max-requests``, ``--anthropic-batch-max-bytes``, ``--batch-log``.
- ``GET /_mock/stats``: the counters below as JSON (``/_mock/*`` requests are not counted).

Behaviour knobs (CLI flag / keyword argument of :func:`serve_in_thread`,
:func:`start_mock_process` and :class:`MockOptions`):

Latency
    ``--latency-ms`` (median, ms; default 0) and ``--latency-dist fixed|uniform|lognormal``
    with ``--latency-jitter``: for ``uniform`` the half-width in ms (delay uniform in
    ``[median - j, median + j]``, clipped at 0; default ``median / 2``), for ``lognormal``
    the sigma of ``log(delay)`` (``delay = median * exp(sigma * N(0, 1))``; default 0.5).
    Draws come from a ``random.Random`` seeded by ``--seed`` (default 0). Latency is added
    after the rate-limit check (429s and 400s answer at once, as OpenAI's do).

Rate limits (``--rpm N``, ``--tpm N``; 0 = unlimited)
    Token buckets, like OpenAI's limits which "replenish continuously": capacity N,
    refilled at N/60 per second, full at start. A chat request that passes validation costs
    1 request and ``prompt_tokens + max_completion_tokens`` tokens, where ``prompt_tokens``
    is ``chars of the messages // 4`` (the ``usage`` figure) and ``max_completion_tokens``
    is the request's ``max_completion_tokens`` or ``max_tokens`` when given, else the
    answer's own ``completion_tokens`` (OpenAI also charges ``max_tokens`` up front). A
    request over a limit is not charged and gets 429 with body ``{"error": {"message":
    "Rate limit reached for MODEL ... on requests per min (RPM): Limit L, Used U,
    Requested 1. Please try again in 1.2s. ...", "type": "requests" | "tokens", "param":
    null, "code": "rate_limit_exceeded"}}`` and headers ``Retry-After`` (whole seconds,
    ceil) and ``retry-after-ms``. A request costing more tokens than the whole TPM gets 429
    ``"Request too large ..."`` (type ``tokens``) *without* Retry-After: it can never pass.
    Every response (all paths but ``/_mock/*``) carries, for each configured limit,
    ``x-ratelimit-limit-requests``, ``x-ratelimit-remaining-requests`` (floor of the
    bucket), ``x-ratelimit-reset-requests`` (time until the bucket is full again, in
    OpenAI's format: ``120ms``, ``1s``, ``2.394s``, ``6m0s``, ``1h0m0s``) and the
    ``-tokens`` equivalents. ``--hide-limits`` omits those headers (still enforcing).

Faults (rates in [0, 1], summing to at most 1; one seeded draw per chat request that
passed the rate limits, so the fractions are exact in expectation)
    ``--fault-500`` (500 ``server_error``), ``--fault-503`` (503 with ``Retry-After: 1``),
    ``--fault-stall`` (holds the response ``--stall-s`` seconds, default 30, then answers
    normally if the client is still there), ``--fault-truncate`` (200 whose headers declare
    the full Content-Length but the connection closes after half the body),
    ``--fault-invalid-json`` (200, ``Content-Type: application/json``, an HTML body),
    ``--fault-schema`` (200, a valid chat completion whose content is JSON violating the
    requested schema: a verdict missing ``process`` or with ``outcome.score`` 150, a chunk
    answer missing ``problems``).

Curator's probe
    Bespoke Curator POSTs ``{"model": ..., "messages": []}`` once to read the
    ``x-ratelimit-limit-*`` headers: it gets 400 (``invalid_request_error``, code
    ``empty_array``) with the rate-limit headers (unless hidden), and is not charged.

``--fail-first N`` / ``--fail-status S``
    The first N chat requests fail with status S (default 429) and ``Retry-After: 0``
    before anything else (no body parsing, no charge).

Stats and log
    Counters: ``requests`` (all paths), ``chat_requests``, ``status`` (count per status),
    ``image_parts`` / ``requests_with_images`` (vision input received), ``answered`` (clean
    200 answers), ``rate_limited`` (+ ``_requests``/``_tokens``),
    ``faults`` per kind, ``fail_first``, ``probes``, ``bad_requests``, ``not_found``,
    ``duplicates`` (chat bodies whose sha256 was seen before), ``prompt_tokens``,
    ``completion_tokens``, ``total_tokens`` (usage of every 200 chat completion sent),
    ``charged_tokens`` (what the TPM bucket was charged), ``uptime_s``, ``batches`` (the
    batch counters of scripts/mock_batches.py). ``--log FILE`` appends one JSON line per
    request: ``{t, method, path, status, kind, sha256, ms}`` (and the batch events, unless
    ``--batch-log`` names another file).

Command line::

    python scripts/mock_provider.py [--port 0] [--latency-ms 0] [--max-seconds 3600] ...

prints ``mock provider listening on http://127.0.0.1:PORT/v1`` once it listens (port 0
picks a free port), serves until ``--max-seconds`` elapse or it gets SIGINT/SIGTERM, then
prints the stats as one JSON line and exits 0. Point streamgrade at it with
``STREAMGRADE_BASE_URL=http://127.0.0.1:PORT/v1`` (no API key needed).

From Python (tests add ``scripts/`` to ``sys.path``)::

    from mock_provider import serve_in_thread, start_mock_process

    with serve_in_thread(latency_ms=0, rpm=60) as base_url:   # same process, own thread
        base_url.requests, base_url.chat_requests, base_url.stats()

    with start_mock_process(latency_ms=200, fault_500=0.05) as base_url:  # own process/core
        base_url.stats()          # GET /_mock/stats
    base_url.final_stats          # the JSON line the process printed at exit
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import hashlib
import json
import math
import queue
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from aiohttp import web

import mock_batches

__all__ = [
    "MockOptions",
    "MockProvider",
    "MockURL",
    "MockProcess",
    "serve_in_thread",
    "start_mock_process",
    "answer",
    "openai_duration",
    "main",
]

HOST = "127.0.0.1"
MODEL_ID = "mock-judge"
COMPONENTS = ("outcome", "process", "efficiency")
CHAT_PATH = "/v1/chat/completions"
MESSAGES_PATH = "/v1/messages"
FAULTS = ("500", "503", "stall", "truncate", "invalid_json", "schema")
SCRIPT = Path(__file__).resolve()


# --- answers ---------------------------------------------------------------------------


def _digest(messages: Any) -> bytes:
    canonical = json.dumps(messages, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).digest()


def _last_user_text(messages: list[dict[str, Any]]) -> str:
    for m in reversed(messages):
        if isinstance(m, dict) and m.get("role") == "user":
            content = m.get("content")
            if isinstance(content, str):
                return content
            if isinstance(content, list):  # content parts: [{"type": "text", "text": ...}]
                return " ".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def _verdict(digest: bytes, protocol: bool = False) -> dict[str, Any]:
    """A verdict derived from ``digest``. ``protocol``: the reasoning-first shape with an
    explicit verdict (key_points, summary, components ``{evidence_steps, reasoning, score,
    confidence}``, failure_cause, success, success_probability), answered when the
    requested schema asks for ``success``; else the legacy ``{score, confidence, reason}``
    components."""
    out: dict[str, Any] = {"summary": f"Mock verdict {digest[:4].hex()}: the session was reviewed."}
    if protocol:
        out = {"key_points": ["mock key point"], **out}
    for i, name in enumerate(COMPONENTS):
        score = digest[2 * i] % 101  # 0-100
        confidence = round(0.5 + (digest[2 * i + 1] % 51) / 100, 2)  # 0.50-1.00
        if protocol:
            out[name] = {"evidence_steps": [0], "reasoning": f"mock {name} {score}", "score": score,
                         "confidence": confidence}
        else:
            out[name] = {"score": score, "confidence": confidence, "reason": f"mock {name} {score}"}
    if protocol:
        success = out["outcome"]["score"] >= 50
        out["failure_cause"] = "none" if success else ("agent", "environment", "unclear")[digest[6] % 3]
        out["success"] = success
        out["success_probability"] = round(out["outcome"]["score"] / 100, 2)
    return out


def _wants_protocol(request: dict[str, Any]) -> bool:
    """Whether the requested verdict schema is the reasoning-first protocol (has ``success``)."""
    try:
        return "success" in request["response_format"]["json_schema"]["schema"]["properties"]
    except (KeyError, TypeError):
        return False


def _chunk(digest: bytes, prompt: str) -> dict[str, Any]:
    where = "chunk"
    n_actions = 0
    lines = prompt.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("Actions of chunk "):
            where = line.rstrip(":").removeprefix("Actions of ")
            for nxt in lines[i + 1 :]:
                if not nxt.startswith("["):
                    break
                n_actions += 1
            break
    return {
        "summary": f"Mock summary {digest[:4].hex()} of {where} ({n_actions} actions).",
        "progress": [f"{n_actions} actions reviewed"],
        "problems": [] if digest[0] % 2 else ["mock problem"],
    }


def from_schema(schema: Any, digest: bytes, name: str = "value", depth: int = 0) -> Any:
    """A value valid for the JSON schema ``schema`` (the subset strict Structured Outputs
    use: object, array with minItems/maxItems, string, number, integer, boolean, enum,
    anyOf/type lists), derived from ``digest``: strings read ``mock <path> <hex>`` (``path``
    the property names from the top, ``a3.caption``), arrays
    hold their minItems (at least 1, at most maxItems) items. Answers every schema name the
    mock does not know (hints, captions, ...)."""
    if not isinstance(schema, dict):
        return None
    if "enum" in schema and schema["enum"]:
        return schema["enum"][digest[depth % len(digest)] % len(schema["enum"])]
    if "anyOf" in schema and schema["anyOf"]:
        return from_schema(schema["anyOf"][0], digest, name, depth)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return {k: from_schema(v, digest, k if name == "value" else f"{name}.{k}", depth + 1)
                for k, v in (schema.get("properties") or {}).items()}
    if kind == "array":
        n = max(1, int(schema.get("minItems") or 0))
        if schema.get("maxItems") is not None:
            n = min(n, int(schema["maxItems"]))
        return [from_schema(schema.get("items") or {}, digest, name, depth + 1 + i) for i in range(n)]
    if kind == "string":
        return f"mock {name} {digest[depth % 28:depth % 28 + 4].hex()}"
    if kind in ("number", "integer"):
        lo, hi = schema.get("minimum", 0), schema.get("maximum")
        v = lo if hi is None else (lo + hi) / 2
        return int(v) if kind == "integer" else float(v)
    if kind == "boolean":
        return digest[depth % len(digest)] % 2 == 0
    return None


def _schema_name(request: dict[str, Any]) -> str | None:
    fmt = request.get("response_format") or {}
    if not isinstance(fmt, dict):
        return None
    js = fmt.get("json_schema") or {}
    return js.get("name") if isinstance(js, dict) else None


def _prompt_tokens(messages: list[Any]) -> int:
    chars = sum(len(m["content"]) for m in messages if isinstance(m, dict) and isinstance(m.get("content"), str))
    return max(1, chars // 4)


def _completion(request: dict[str, Any], content: str, prompt_tokens: int) -> dict[str, Any]:
    completion_tokens = max(1, len(content) // 4)
    return {
        "id": "chatcmpl-" + uuid.uuid4().hex[:24],
        "object": "chat.completion",
        "created": int(time.time()),
        "model": request.get("model") or MODEL_ID,
        "system_fingerprint": "fp_mock",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": None},
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The chat.completion response for a parsed request body (pure apart from ``id`` and
    ``created``; raises ValueError when the body lacks a non-empty ``messages`` list)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty array")
    digest = _digest(messages)
    prompt = _last_user_text(messages)
    schema_name = _schema_name(request)
    if schema_name == "streamgrade_verdict":
        content = json.dumps(_verdict(digest, _wants_protocol(request)))
    elif schema_name == "streamgrade_chunk":
        content = json.dumps(_chunk(digest, prompt))
    elif schema_name:  # any other json_schema: a schema-valid answer
        content = json.dumps(from_schema(request["response_format"]["json_schema"].get("schema"), digest))
    else:
        content = "echo: " + prompt
    return _completion(request, content, _prompt_tokens(messages))


def anthropic_answer(request: dict[str, Any]) -> dict[str, Any]:
    """The Anthropic Messages response (docs.anthropic.com "Messages") for a parsed request
    body: a ``tool_use`` block calling the forced tool (``tool_choice.name``) with a verdict
    (``submit_verdict``; the protocol shape when its input_schema has ``success``) or a chunk
    summary; plain text when no tool is forced. ``usage`` reports the system prompt as a cache
    read after the first time the mock sees it. Raises ValueError without ``messages``."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty array")
    digest = _digest(messages)
    prompt = _last_user_text(messages)
    choice = request.get("tool_choice") or {}
    name = choice.get("name") if isinstance(choice, dict) else None
    tools = {t.get("name"): t for t in request.get("tools") or [] if isinstance(t, dict)}
    if name == "submit_verdict":
        props = (tools.get(name, {}).get("input_schema") or {}).get("properties") or {}
        block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name,
                 "input": _verdict(digest, "success" in props)}
    elif name == "submit_chunk":
        block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name,
                 "input": _chunk(digest, prompt)}
    elif name:  # another forced tool (hints, captions): a value valid for its input schema
        block = {"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name,
                 "input": from_schema(tools.get(name, {}).get("input_schema"), digest)}
    else:
        block = {"type": "text", "text": "echo: " + prompt}
    system = request.get("system") or []
    sys_chars = sum(len(b.get("text", "")) for b in system if isinstance(b, dict)) if isinstance(system, list) else 0
    sys_tokens = sys_chars // 4
    key = hashlib.sha256(json.dumps(system, sort_keys=True).encode()).digest()
    cached = key in _ANTHROPIC_CACHE
    _ANTHROPIC_CACHE.add(key)
    return {"id": "msg_" + uuid.uuid4().hex[:24], "type": "message", "role": "assistant",
            "model": request.get("model") or MODEL_ID, "content": [block],
            "stop_reason": "tool_use" if name else "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": max(1, len(prompt) // 4), "output_tokens": max(1, len(json.dumps(block)) // 4),
                      "cache_creation_input_tokens": 0 if cached else sys_tokens,
                      "cache_read_input_tokens": sys_tokens if cached else 0}}


#: System prompts the mock has "cached" (Anthropic prompt caching, simulated).
_ANTHROPIC_CACHE: set[bytes] = set()


def _schema_violation(request: dict[str, Any]) -> dict[str, Any]:
    """Like :func:`answer` but the content is JSON that violates the requested schema."""
    messages = request["messages"]
    digest = _digest(messages)
    schema_name = _schema_name(request)
    if schema_name == "streamgrade_chunk":
        bad: dict[str, Any] = _chunk(digest, _last_user_text(messages))
        del bad["problems"]
    else:
        bad = _verdict(digest, _wants_protocol(request))
        if digest[0] % 2:
            del bad["process"]
        else:
            bad["outcome"]["score"] = 150
    return _completion(request, json.dumps(bad), _prompt_tokens(messages))


def _error(message: str, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": param, "code": code}}


def openai_duration(seconds: float) -> str:
    """A duration in OpenAI's ``x-ratelimit-reset-*`` format (Go's): ``0s``, ``120ms``,
    ``1s``, ``2.394s``, ``6m0s``, ``1h2m3.5s`` (rounded up to the millisecond)."""
    ms = math.ceil(seconds * 1000 - 1e-9) if seconds > 0 else 0
    if ms <= 0:
        return "0s"
    if ms < 1000:
        return f"{ms}ms"
    hours, rest = divmod(ms, 3_600_000)
    minutes, sec_ms = divmod(rest, 60_000)
    sec = f"{sec_ms / 1000:.3f}".rstrip("0").rstrip(".")
    if hours:
        return f"{hours}h{minutes}m{sec}s"
    if minutes:
        return f"{minutes}m{sec}s"
    return f"{sec}s"


# --- options ---------------------------------------------------------------------------


@dataclasses.dataclass
class MockOptions(mock_batches.BatchOptions):
    """Every knob of the mock (see the module docstring; the ``batch_*`` ones, inherited,
    in scripts/mock_batches.py); CLI flags are these names with ``-`` for ``_``."""

    latency_ms: float = 0
    latency_dist: str = "fixed"
    latency_jitter: float | None = None
    seed: int = 0
    rpm: int = 0
    tpm: int = 0
    hide_limits: bool = False
    fault_500: float = 0.0
    fault_503: float = 0.0
    fault_stall: float = 0.0
    fault_truncate: float = 0.0
    fault_invalid_json: float = 0.0
    fault_schema: float = 0.0
    stall_s: float = 30.0
    fail_first: int = 0
    fail_status: int = 429
    log: str | None = None
    verbose: bool = False

    def __post_init__(self) -> None:
        if self.latency_dist not in ("fixed", "uniform", "lognormal"):
            raise ValueError(f"latency_dist must be fixed, uniform or lognormal, not {self.latency_dist!r}")
        if self.latency_ms < 0 or (self.latency_jitter is not None and self.latency_jitter < 0):
            raise ValueError("latency_ms and latency_jitter must be >= 0")
        if self.rpm < 0 or self.tpm < 0:
            raise ValueError("rpm and tpm must be >= 0 (0 = unlimited)")
        rates = self.fault_rates()
        for name, rate in rates.items():
            if not 0 <= rate <= 1:
                raise ValueError(f"fault rate {name} must be in [0, 1], not {rate}")
        if sum(rates.values()) > 1 + 1e-9:
            raise ValueError("fault rates must sum to at most 1")
        if self.stall_s < 0:
            raise ValueError("stall_s must be >= 0")
        self.check_batch_options()

    def fault_rates(self) -> dict[str, float]:
        return {
            "500": self.fault_500,
            "503": self.fault_503,
            "stall": self.fault_stall,
            "truncate": self.fault_truncate,
            "invalid_json": self.fault_invalid_json,
            "schema": self.fault_schema,
        }


class _Bucket:
    """A token bucket of ``capacity`` refilled at ``capacity / 60`` per second."""

    __slots__ = ("capacity", "rate", "level", "stamp")

    def __init__(self, capacity: int):
        self.capacity = capacity
        self.rate = capacity / 60.0
        self.level = float(capacity)
        self.stamp = time.monotonic()

    def refill(self, now: float) -> None:
        if now > self.stamp:
            self.level = min(self.capacity, self.level + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait_for(self, cost: float) -> float:
        """Seconds until ``cost`` is available (0 when it is now)."""
        return max(0.0, (cost - self.level) / self.rate)

    def headers(self, kind: str, out: dict[str, str]) -> None:
        out[f"x-ratelimit-limit-{kind}"] = str(self.capacity)
        out[f"x-ratelimit-remaining-{kind}"] = str(max(0, int(self.level)))
        out[f"x-ratelimit-reset-{kind}"] = openai_duration((self.capacity - self.level) / self.rate)


# --- server ----------------------------------------------------------------------------


class MockProvider:
    """The mock's state and aiohttp application (one event loop). ``requests`` counts
    requests served (all paths but ``/_mock/*``), ``chat_requests`` chat completions;
    :meth:`stats` returns every counter."""

    def __init__(self, options: MockOptions | None = None, **kwargs: Any):
        self.options = opts = options or MockOptions(**kwargs)
        self.port = 0
        self.requests = 0
        self.chat_requests = 0
        self.status: dict[str, int] = {}
        self.counts: dict[str, int] = dict.fromkeys(
            ("answered", "rate_limited", "rate_limited_requests", "rate_limited_tokens", "fail_first",
             "probes", "bad_requests", "not_found", "duplicates", "prompt_tokens", "completion_tokens",
             "total_tokens", "charged_tokens", "image_parts", "requests_with_images"), 0)
        self.faults: dict[str, int] = dict.fromkeys(FAULTS, 0)
        self._seen: set[bytes] = set()
        self._started = time.monotonic()
        self._latency_rng = random.Random(f"{opts.seed}:latency")
        self._fault_rng = random.Random(f"{opts.seed}:faults")
        rates = opts.fault_rates()
        self._fault_cdf: list[tuple[float, str]] = []
        acc = 0.0
        for name in FAULTS:
            if rates[name] > 0:
                acc += rates[name]
                self._fault_cdf.append((acc, name))
        self._rpm = _Bucket(opts.rpm) if opts.rpm > 0 else None
        self._tpm = _Bucket(opts.tpm) if opts.tpm > 0 else None
        self._log: IO[str] | None = open(opts.log, "a", encoding="utf-8") if opts.log else None  # noqa: SIM115
        self.app = web.Application(client_max_size=max(64 * 1024 * 1024, opts.max_body_bytes()))
        self.app.router.add_get("/_mock/stats", self._handle_stats)
        self.batches = mock_batches.register(self, answer, anthropic_answer)
        self.app.router.add_route("*", "/{tail:.*}", self._handle)

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    # -- bookkeeping

    def stats(self) -> dict[str, Any]:
        out: dict[str, Any] = {"requests": self.requests, "chat_requests": self.chat_requests,
                               "status": dict(self.status)}
        out.update(self.counts)
        out["faults"] = dict(self.faults)
        out["unique_bodies"] = len(self._seen)
        out["uptime_s"] = round(time.monotonic() - self._started, 3)
        out["batches"] = self.batches.stats()
        return out

    def close_log(self) -> None:
        self.batches.close()
        if self._log is not None:
            self._log.close()
            self._log = None

    def _record(self, request: web.Request, status: int, kind: str, sha: str | None, t0: float) -> None:
        key = str(status)
        self.status[key] = self.status.get(key, 0) + 1
        if self._log is not None:
            rec = {"t": round(time.time(), 3), "method": request.method, "path": request.path, "status": status,
                   "kind": kind, "sha256": sha, "ms": round((time.monotonic() - t0) * 1000, 2)}
            self._log.write(json.dumps(rec) + "\n")
        if self.options.verbose:
            print(f"{request.method} {request.path} {status} {kind}", file=sys.stderr, flush=True)

    def _limit_headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self.options.hide_limits or (self._rpm is None and self._tpm is None):
            return headers
        now = time.monotonic()
        if self._rpm is not None:
            self._rpm.refill(now)
            self._rpm.headers("requests", headers)
        if self._tpm is not None:
            self._tpm.refill(now)
            self._tpm.headers("tokens", headers)
        return headers

    def _latency_s(self) -> float:
        o = self.options
        if o.latency_ms <= 0:
            return 0.0
        if o.latency_dist == "uniform":
            j = o.latency_ms / 2 if o.latency_jitter is None else o.latency_jitter
            ms = max(0.0, self._latency_rng.uniform(o.latency_ms - j, o.latency_ms + j))
        elif o.latency_dist == "lognormal":
            sigma = 0.5 if o.latency_jitter is None else o.latency_jitter
            ms = o.latency_ms * math.exp(sigma * self._latency_rng.gauss(0.0, 1.0))
        else:
            ms = o.latency_ms
        return ms / 1000

    def _draw_fault(self) -> str | None:
        if not self._fault_cdf:
            return None
        r = self._fault_rng.random()
        for edge, name in self._fault_cdf:
            if r < edge:
                return name
        return None

    def _rate_limit(self, body: dict[str, Any], cost: int) -> tuple[str, web.Response] | None:
        """Charge the buckets, or return (kind, 429 response) without charging."""
        now = time.monotonic()
        model = body.get("model") or MODEL_ID
        over: tuple[str, _Bucket, float, str] | None = None
        if self._rpm is not None:
            self._rpm.refill(now)
            if self._rpm.level < 1:
                over = ("requests", self._rpm, 1, "requests per min (RPM)")
        if over is None and self._tpm is not None:
            self._tpm.refill(now)
            if cost > self._tpm.capacity:
                msg = (f"Request too large for {model} in organization org-mock on tokens per min (TPM): "
                       f"Limit {self._tpm.capacity}, Requested {cost}. The input or output tokens must be "
                       "reduced in order to run successfully.")
                headers = self._limit_headers()
                return "rate_limit_tokens", self._json(429, _error(msg, "tokens", "rate_limit_exceeded"), headers)
            if self._tpm.level < cost:
                over = ("tokens", self._tpm, cost, "tokens per min (TPM)")
        if over is None:
            if self._rpm is not None:
                self._rpm.level -= 1
            if self._tpm is not None:
                self._tpm.level -= cost
            self.counts["charged_tokens"] += cost
            return None
        kind, bucket, requested, label = over
        wait = bucket.wait_for(requested)
        used = bucket.capacity - max(0, int(bucket.level))
        msg = (f"Rate limit reached for {model} in organization org-mock on {label}: Limit {bucket.capacity}, "
               f"Used {used}, Requested {requested}. Please try again in {openai_duration(wait)}. "
               "Visit https://platform.openai.com/account/rate-limits to learn more.")
        headers = {**self._limit_headers(),
                   "Retry-After": str(max(1, math.ceil(wait))), "retry-after-ms": str(max(1, math.ceil(wait * 1000)))}
        return f"rate_limit_{kind}", self._json(429, _error(msg, kind, "rate_limit_exceeded"), headers)

    @staticmethod
    def _json(status: int, payload: Any, headers: dict[str, str] | None = None) -> web.Response:
        return web.Response(status=status, body=json.dumps(payload).encode(), content_type="application/json",
                            headers=headers)

    # -- handlers

    async def _handle_stats(self, request: web.Request) -> web.Response:
        return self._json(200, self.stats())

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        t0 = time.monotonic()
        self.requests += 1
        path = request.path.rstrip("/")
        if path == CHAT_PATH and request.method == "POST":
            return await self._chat(request, t0)
        if path == MESSAGES_PATH and request.method == "POST":
            return await self._messages(request, t0)
        headers = self._limit_headers()
        if request.method == "GET" and path == "/v1/models":
            latency = self._latency_s()
            if latency:
                await asyncio.sleep(latency)
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "streamgrade-mock"}
            self._record(request, 200, "models", None, t0)
            return self._json(200, {"object": "list", "data": [model]}, headers)
        self.counts["not_found"] += 1
        self._record(request, 404, "not_found", None, t0)
        return self._json(404, _error(f"unknown path {request.method} {path}", code="not_found"), headers)

    async def _messages(self, request: web.Request, t0: float) -> web.StreamResponse:
        """``POST /v1/messages`` (Anthropic): 401 without ``x-api-key``, 400 on a bad body,
        else :func:`anthropic_answer`. No faults or limits are simulated here."""
        self.chat_requests += 1
        raw = await request.read()
        sha = hashlib.sha256(raw).hexdigest()
        if not request.headers.get("x-api-key"):
            self._record(request, 401, "messages", sha, t0)
            return self._json(401, {"type": "error", "error": {"type": "authentication_error",
                                                              "message": "x-api-key header is required"}})
        try:
            payload = anthropic_answer(json.loads(raw))
        except (ValueError, AttributeError, TypeError) as exc:
            self._record(request, 400, "messages", sha, t0)
            return self._json(400, {"type": "error", "error": {"type": "invalid_request_error", "message": str(exc)}})
        self._record(request, 200, "messages", sha, t0)
        return self._json(200, payload, self._limit_headers())

    async def _chat(self, request: web.Request, t0: float) -> web.StreamResponse:
        o = self.options
        self.chat_requests += 1
        number = self.chat_requests
        raw = await request.read()
        digest = hashlib.sha256(raw).digest()
        sha = digest.hex()
        if digest in self._seen:
            self.counts["duplicates"] += 1
        else:
            self._seen.add(digest)
        if b'"image_url"' in raw:  # vision input: count the image parts the client sent
            images = raw.count(b'"type":"image_url"') + raw.count(b'"type": "image_url"')
            self.counts["image_parts"] += images
            self.counts["requests_with_images"] += 1

        if number <= o.fail_first:
            status = o.fail_status
            self.counts["fail_first"] += 1
            self._record(request, status, "fail_first", sha, t0)
            headers = {**self._limit_headers(), "Retry-After": "0", "retry-after-ms": "0"}
            return self._json(status, _error(f"mock failure {number}", type_="mock_error"), headers)

        try:
            body = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            body, problem = None, f"invalid request: {exc}"
        else:
            problem = None if isinstance(body, dict) else "invalid request: the body must be a JSON object"
        if body is not None and problem is None:
            messages = body.get("messages")
            if messages == []:  # Bespoke Curator's rate-limit probe
                self.counts["probes"] += 1
                self._record(request, 400, "probe", sha, t0)
                msg = ("Invalid 'messages': empty array. Expected an array with minimum length 1, "
                       "but got an empty array instead.")
                return self._json(400, _error(msg, code="empty_array", param="messages"), self._limit_headers())
            if not isinstance(messages, list):
                problem = "invalid request: 'messages' must be a non-empty array"
        if problem is not None:
            self.counts["bad_requests"] += 1
            self._record(request, 400, "bad_request", sha, t0)
            return self._json(400, _error(problem), self._limit_headers())

        payload = answer(body)
        usage = payload["usage"]
        max_out = body.get("max_completion_tokens") or body.get("max_tokens")
        cost = usage["prompt_tokens"] + (max_out if isinstance(max_out, int) and max_out > 0 else usage["completion_tokens"])
        limited = self._rate_limit(body, cost)
        if limited is not None:
            kind, resp = limited
            self.counts["rate_limited"] += 1
            self.counts[kind.replace("rate_limit_", "rate_limited_")] += 1
            self._record(request, 429, kind, sha, t0)
            return resp
        headers = self._limit_headers()
        fault = self._draw_fault()
        if fault == "schema":
            payload = _schema_violation(body)
            usage = payload["usage"]

        latency = self._latency_s()
        if fault is not None:
            self.faults[fault] += 1
        if fault == "500":
            self._record(request, 500, "fault_500", sha, t0)
            if latency:
                await asyncio.sleep(latency)
            msg = "The server had an error while processing your request. Sorry about that!"
            return self._json(500, _error(msg, "server_error"), headers)
        if fault == "503":
            self._record(request, 503, "fault_503", sha, t0)
            if latency:
                await asyncio.sleep(latency)
            msg = "The engine is currently overloaded, please try again later."
            return self._json(503, _error(msg, "server_error"), {**headers, "Retry-After": "1"})
        if fault == "invalid_json":
            self._record(request, 200, "invalid_json", sha, t0)
            if latency:
                await asyncio.sleep(latency)
            html = b"<html><head><title>502 Bad Gateway</title></head><body>mock: not JSON</body></html>"
            return web.Response(status=200, body=html, content_type="application/json", headers=headers)

        data = json.dumps(payload).encode()
        self.counts["prompt_tokens"] += usage["prompt_tokens"]
        self.counts["completion_tokens"] += usage["completion_tokens"]
        self.counts["total_tokens"] += usage["total_tokens"]
        if fault == "stall":
            self._record(request, 200, "stall", sha, t0)
            latency += o.stall_s
        elif fault == "truncate":
            self._record(request, 200, "truncate", sha, t0)
        elif fault == "schema":
            self._record(request, 200, "schema", sha, t0)
        else:
            self.counts["answered"] += 1
            self._record(request, 200, "ok", sha, t0)
        if latency:
            await asyncio.sleep(latency)
        if fault == "truncate":
            return await self._truncated(request, data, headers)
        return web.Response(status=200, body=data, content_type="application/json", headers=headers)

    @staticmethod
    async def _truncated(request: web.Request, data: bytes, headers: dict[str, str]) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers=headers)
        resp.content_type = "application/json"
        resp.content_length = len(data)
        resp.force_close()
        await resp.prepare(request)
        await resp.write(data[: max(1, len(data) // 2)])
        transport = request.transport
        if transport is not None:
            transport.close()  # flushes the half body, then closes: the client sees a short read
        raise asyncio.CancelledError  # aiohttp drops the connection without logging an error

    # -- running

    async def start(self, port: int = 0) -> web.AppRunner:
        runner = web.AppRunner(self.app, access_log=None, handle_signals=False, shutdown_timeout=0.25,
                               handler_cancellation=True)
        await runner.setup()
        site = web.TCPSite(runner, HOST, port, reuse_address=True, backlog=1024)
        await site.start()
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        self.port = sockets[0].getsockname()[1] if sockets else port
        self._started = time.monotonic()
        return runner


class MockURL(str):
    """The base URL (``http://127.0.0.1:PORT/v1``) of a mock running in this process; a
    ``str`` with live ``requests`` and ``chat_requests`` counters, :meth:`stats` and the
    ``server`` (:class:`MockProvider`) itself."""

    server: MockProvider

    def __new__(cls, server: MockProvider) -> MockURL:
        self = super().__new__(cls, server.base_url)
        self.server = server
        return self

    @property
    def requests(self) -> int:
        return self.server.requests

    @property
    def chat_requests(self) -> int:
        return self.server.chat_requests

    def stats(self) -> dict[str, Any]:
        return self.server.stats()


@contextlib.contextmanager
def serve_in_thread(latency_ms: float = 0, *, fail_first: int = 0, fail_status: int = 429, **options: Any) -> Iterator[MockURL]:
    """Run the mock on a free port in a background thread (its own event loop); yields its
    base URL (a :class:`MockURL`) and shuts the server down on exit. ``options`` are any
    other :class:`MockOptions` fields (``rpm=``, ``fault_500=``, ...)."""
    provider = MockProvider(MockOptions(latency_ms=latency_ms, fail_first=fail_first, fail_status=fail_status, **options))
    ready = threading.Event()
    state: dict[str, Any] = {}

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        state["stop"] = lambda: loop.call_soon_threadsafe(stop.set)
        try:
            runner = await provider.start(0)
        except BaseException as exc:  # surfaced in the caller's thread
            state["error"] = exc
            ready.set()
            return
        ready.set()
        try:
            await stop.wait()
        finally:
            await runner.cleanup()

    thread = threading.Thread(target=asyncio.run, args=(run(),), name="mock-provider", daemon=True)
    thread.start()
    ready.wait(10)
    if "error" in state or not provider.port:
        thread.join(timeout=5)
        raise RuntimeError(f"mock provider failed to start: {state.get('error')!r}")
    try:
        yield MockURL(provider)
    finally:
        state["stop"]()
        thread.join(timeout=5)
        provider.close_log()


# --- separate process ------------------------------------------------------------------


def _argv(options: dict[str, Any]) -> list[str]:
    names = {f.name for f in dataclasses.fields(MockOptions)} | {"max_seconds", "port"}
    argv: list[str] = []
    for key, value in options.items():
        if key not in names:
            raise TypeError(f"unknown mock option {key!r}")
        flag = "--" + key.replace("_", "-")
        if value is None or value is False:
            continue
        if value is True:
            argv.append(flag)
        else:
            argv += [flag, str(value)]
    return argv


class MockProcess(str):
    """The base URL of a mock running in another process (see :func:`start_mock_process`);
    :meth:`stats` GETs ``/_mock/stats``; ``final_stats`` is the JSON line the process
    printed when it exited (None before that); ``proc`` is the ``Popen``."""

    proc: subprocess.Popen[str]
    final_stats: dict[str, Any] | None

    def __new__(cls, url: str, proc: subprocess.Popen[str]) -> MockProcess:
        self = super().__new__(cls, url)
        self.proc = proc
        self.final_stats = None
        return self

    def stats(self, timeout: float = 5.0) -> dict[str, Any]:
        root = self.removesuffix("/v1")
        with urllib.request.urlopen(root + "/_mock/stats", timeout=timeout) as resp:  # noqa: S310 - 127.0.0.1
            return json.load(resp)


@contextlib.contextmanager
def start_mock_process(*, python: str | None = None, startup_timeout: float = 10.0, **options: Any) -> Iterator[MockProcess]:
    """Launch ``python scripts/mock_provider.py --port 0 ...`` (keyword arguments become
    flags: ``rpm=60`` -> ``--rpm 60``, ``hide_limits=True`` -> ``--hide-limits``) as a
    separate process, wait up to ``startup_timeout`` s for its URL line, yield a
    :class:`MockProcess`, and stop it at exit (SIGTERM, then SIGKILL after 5 s)."""
    options.setdefault("port", 0)
    argv = [python or sys.executable, str(SCRIPT), *_argv(options)]
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    lines: queue.Queue[str] = queue.Queue()
    assert proc.stdout is not None
    reader = threading.Thread(target=lambda: lines.put(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        try:
            line = lines.get(timeout=startup_timeout)
        except queue.Empty:
            line = ""
        prefix = "mock provider listening on "
        if not line.startswith(prefix):
            raise RuntimeError(f"mock provider did not start within {startup_timeout} s (got {line!r}, exit {proc.poll()})")
        mock = MockProcess(line[len(prefix) :].strip(), proc)
        yield mock
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        rest = proc.stdout.read() if proc.stdout else ""
        if proc.stdout:
            proc.stdout.close()
    for text in reversed(rest.splitlines()):
        with contextlib.suppress(ValueError):
            mock.final_stats = json.loads(text)
            break


# --- command line ----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    d = MockOptions()
    ap = argparse.ArgumentParser(description="Local OpenAI-compatible mock for streamgrade (see the module docstring).")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--max-seconds", type=float, default=3600, help="stop after this many seconds")
    ap.add_argument("--latency-ms", type=float, default=d.latency_ms, help="median delay added to answers, ms")
    ap.add_argument("--latency-dist", choices=("fixed", "uniform", "lognormal"), default=d.latency_dist)
    ap.add_argument("--latency-jitter", type=float, default=None,
                    help="uniform: half-width in ms (default median/2); lognormal: sigma (default 0.5)")
    ap.add_argument("--seed", type=int, default=d.seed, help="seed of the latency and fault draws")
    ap.add_argument("--rpm", type=int, default=0, help="requests per minute (token bucket; 0 = unlimited)")
    ap.add_argument("--tpm", type=int, default=0, help="tokens per minute (token bucket; 0 = unlimited)")
    ap.add_argument("--hide-limits", action="store_true", help="enforce limits but send no x-ratelimit-* headers")
    for name in FAULTS:
        ap.add_argument(f"--fault-{name.replace('_', '-')}", type=float, default=0.0, metavar="RATE",
                        help=f"fraction of chat requests answered with the {name} fault")
    ap.add_argument("--stall-s", type=float, default=d.stall_s, help="how long a stalled response is held")
    ap.add_argument("--fail-first", type=int, default=0, help="fail the first N chat requests")
    ap.add_argument("--fail-status", type=int, default=429, help="status of those failures")
    ap.add_argument("--log", default=None, help="append one JSON line per request to this file")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    mock_batches.add_batch_arguments(ap)
    return ap


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = build_parser()
    args = vars(ap.parse_args(argv))
    port, max_seconds = args.pop("port"), args.pop("max_seconds")
    try:
        options = MockOptions(**args)
    except ValueError as exc:
        ap.error(str(exc))
    provider = MockProvider(options)

    async def run() -> None:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, stop.set)
        runner = await provider.start(port)
        print(f"mock provider listening on {provider.base_url}", flush=True)
        try:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=max_seconds)
        finally:
            await runner.cleanup()

    try:
        asyncio.run(run())
    finally:
        provider.close_log()
        if provider.port:
            print(json.dumps(provider.stats()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
