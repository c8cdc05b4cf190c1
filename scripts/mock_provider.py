#!/usr/bin/env python3
"""A local, deterministic OpenAI-compatible Chat Completions server for streamgrade.

Standard library only. It listens on 127.0.0.1 and serves:

- ``POST /v1/chat/completions``: when ``response_format.json_schema.name`` is
  ``streamgrade_verdict`` it answers a schema-valid verdict (``summary`` plus ``outcome``,
  ``process`` and ``efficiency``, each ``{score 0-100, confidence 0-1, reason}``), whose
  numbers are derived from a sha256 of the request's messages (same prompt, same verdict);
  for ``streamgrade_chunk`` it answers ``{summary, progress, problems}``; otherwise it echoes
  the last user message as plain text. The response has OpenAI's shape: ``id``
  ("chatcmpl-..."), ``object`` "chat.completion", ``created``, ``model`` (the request's),
  ``choices[0]`` ``{index, message {role, content}, finish_reason "stop"}`` and ``usage``
  ``{prompt_tokens (characters of the messages / 4), completion_tokens, total_tokens}``.
  Malformed requests get a 400 with OpenAI's error shape ``{"error": {message, type, ...}}``.
- ``GET /v1/models``: a model list with one model, ``mock-judge``.

Command line::

    python scripts/mock_provider.py [--port 0] [--latency-ms 0] [--max-seconds 3600]

prints exactly one line, ``mock provider listening on http://127.0.0.1:PORT/v1``, once it
listens (port 0 picks a free port), then serves until ``--max-seconds`` elapse or it gets
SIGINT/SIGTERM, and exits 0. Point streamgrade at it with
``STREAMGRADE_BASE_URL=http://127.0.0.1:PORT/v1`` (no API key needed).

From Python (tests add ``scripts/`` to ``sys.path``)::

    from mock_provider import serve_in_thread

    with serve_in_thread(latency_ms=0) as base_url:
        ...  # base_url == "http://127.0.0.1:PORT/v1" (a str)
        base_url.requests  # live count of requests served (all paths)
        base_url.chat_requests  # chat completions only

The server stops when the ``with`` block exits. ``fail_first=N`` makes the first N chat
requests fail with ``fail_status`` (default 429, with ``Retry-After: 0``) to exercise
client retries.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import signal
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = ["MockProvider", "MockURL", "serve_in_thread", "answer", "main"]

HOST = "127.0.0.1"
MODEL_ID = "mock-judge"
COMPONENTS = ("outcome", "process", "efficiency")


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


def _verdict(digest: bytes) -> dict[str, Any]:
    out: dict[str, Any] = {"summary": f"Mock verdict {digest[:4].hex()}: the session was reviewed."}
    for i, name in enumerate(COMPONENTS):
        score = digest[2 * i] % 101  # 0-100
        confidence = round(0.5 + (digest[2 * i + 1] % 51) / 100, 2)  # 0.50-1.00
        out[name] = {"score": score, "confidence": confidence, "reason": f"mock {name} {score}"}
    return out


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


def answer(request: dict[str, Any]) -> dict[str, Any]:
    """The chat.completion response for a parsed request body (pure; raises ValueError when
    the body lacks a ``messages`` list)."""
    messages = request.get("messages")
    if not isinstance(messages, list) or not messages:
        raise ValueError("'messages' must be a non-empty array")
    digest = _digest(messages)
    prompt = _last_user_text(messages)
    fmt = request.get("response_format") or {}
    schema_name = (fmt.get("json_schema") or {}).get("name") if isinstance(fmt, dict) else None
    if schema_name == "streamgrade_verdict":
        content = json.dumps(_verdict(digest))
    elif schema_name == "streamgrade_chunk":
        content = json.dumps(_chunk(digest, prompt))
    else:
        content = "echo: " + prompt
    prompt_chars = sum(len(m.get("content") or "") if isinstance(m, dict) and isinstance(m.get("content"), str) else 0 for m in messages)
    prompt_tokens = max(1, prompt_chars // 4)
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


def _error(message: str, type_: str = "invalid_request_error", code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


# --- server ----------------------------------------------------------------------------


class MockProvider(ThreadingHTTPServer):
    """The HTTP server. ``latency_ms`` delays every answer; ``requests`` counts requests
    served (all paths), ``chat_requests`` chat completions; ``fail_first`` chat requests
    fail with ``fail_status``."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, port: int = 0, latency_ms: float = 0, *, fail_first: int = 0, fail_status: int = 429, verbose: bool = False):
        super().__init__((HOST, port), _Handler)
        self.latency_ms = latency_ms
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.verbose = verbose
        self.requests = 0
        self.chat_requests = 0
        self._lock = threading.Lock()

    @property
    def base_url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/v1"

    def count(self, chat: bool) -> int:
        """Count one request; returns the chat request's 1-based number (0 for others)."""
        with self._lock:
            self.requests += 1
            if chat:
                self.chat_requests += 1
                return self.chat_requests
            return 0


class _Handler(BaseHTTPRequestHandler):
    server: MockProvider
    protocol_version = "HTTP/1.1"
    server_version = "streamgrade-mock/1.0"
    timeout = 30  # seconds an idle keep-alive connection may stay open
    # Headers and body go out in separate writes; without TCP_NODELAY, Nagle plus the
    # client's delayed ACK add ~40 ms to every keep-alive response.
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        if self.server.verbose:
            super().log_message(format, *args)

    def _send(self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def _delay(self) -> None:
        if self.server.latency_ms > 0:
            time.sleep(self.server.latency_ms / 1000)

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.server.count(chat=False)
        self._delay()
        path = self.path.split("?", 1)[0].rstrip("/")
        if path == "/v1/models":
            model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "streamgrade-mock"}
            self._send(200, {"object": "list", "data": [model]})
        else:
            self._send(404, _error(f"unknown path {path}", code="not_found"))

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self.path.split("?", 1)[0].rstrip("/")
        number = self.server.count(chat=path == "/v1/chat/completions")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        raw = self.rfile.read(length) if length > 0 else b""
        self._delay()
        if path != "/v1/chat/completions":
            self._send(404, _error(f"unknown path {path}", code="not_found"))
            return
        if number <= self.server.fail_first:
            status = self.server.fail_status
            headers = {"Retry-After": "0"} if status in (429, 503) else {}
            self._send(status, _error(f"mock failure {number}", type_="mock_error"), headers)
            return
        try:
            body = json.loads(raw)
            if not isinstance(body, dict):
                raise ValueError("request body must be a JSON object")
            payload = answer(body)
        except ValueError as exc:  # JSONDecodeError is a ValueError
            self._send(400, _error(f"invalid request: {exc}"))
            return
        self._send(200, payload)


class MockURL(str):
    """The base URL (``http://127.0.0.1:PORT/v1``) of a running mock; a ``str`` with live
    ``requests`` and ``chat_requests`` counters and the ``server`` itself."""

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


@contextlib.contextmanager
def serve_in_thread(latency_ms: float = 0, *, fail_first: int = 0, fail_status: int = 429) -> Iterator[MockURL]:
    """Run the mock on a free port in a background thread; yields its base URL (a
    :class:`MockURL`, i.e. a ``str`` ending in ``/v1`` with request counters) and shuts the
    server down on exit."""
    server = MockProvider(0, latency_ms, fail_first=fail_first, fail_status=fail_status)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield MockURL(server)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point (see the module docstring)."""
    ap = argparse.ArgumentParser(description="Local OpenAI-compatible mock for streamgrade.")
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = any free port)")
    ap.add_argument("--latency-ms", type=float, default=0, help="delay added to every answer, ms")
    ap.add_argument("--max-seconds", type=float, default=3600, help="stop after this many seconds")
    ap.add_argument("--fail-first", type=int, default=0, help="fail the first N chat requests")
    ap.add_argument("--fail-status", type=int, default=429, help="status of those failures")
    ap.add_argument("--verbose", action="store_true", help="log requests to stderr")
    args = ap.parse_args(argv)

    server = MockProvider(args.port, args.latency_ms, fail_first=args.fail_first, fail_status=args.fail_status, verbose=args.verbose)
    stop = threading.Event()

    def _on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
    thread.start()
    print(f"mock provider listening on {server.base_url}", flush=True)
    try:
        stop.wait(args.max_seconds)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
