"""Anthropic's Message Batches API for the mock provider: ``/v1/messages/batches``.

Shapes, validation, timeline and log: see the docstring of scripts/mock_batches.py
(sources: Anthropic's "Batch processing" guide and Message Batches API reference;
anthropic-sdk-python's ``MessageBatch``, ``MessageBatchIndividualResponse`` and
``DeletedMessageBatch`` types).
"""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

from aiohttp import web

from mock_batches import BatchStore, Job, new_id

PROVIDER = "anthropic"
#: Documented pattern of a request's custom_id (Create a Message Batch, ``custom_id``).
CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")


def _error(status: int, type_: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": type_, "message": message}}, status=status)


def _headers(request: web.Request) -> web.Response | None:
    """401 without ``x-api-key`` (as ``POST /v1/messages`` of the mock) or ``Authorization:
    Bearer`` (what anthropic-sdk-python 2.x sends), 400 without ``anthropic-version`` (the API
    requires it); None when both are there."""
    if not request.headers.get("x-api-key") and not request.headers.get("authorization", "").startswith("Bearer "):
        return _error(401, "authentication_error", "x-api-key header is required")
    if not request.headers.get("anthropic-version"):
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    return None


def rfc3339(t: float | None) -> str | None:
    """Unix seconds as RFC 3339 UTC with microseconds, ``2024-08-20T18:37:24.100435Z``."""
    if t is None:
        return None
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _invalid(params: dict[str, Any]) -> bool:
    """Params the Messages API would refuse (checked when processed, as documented)."""
    messages = params.get("messages")
    max_tokens = params.get("max_tokens")
    return (not isinstance(messages, list) or not messages or not isinstance(params.get("model"), str)
            or not isinstance(max_tokens, int) or isinstance(max_tokens, bool) or max_tokens < 1)


async def create_batch(store: BatchStore, request: web.Request) -> web.Response:
    refused = _headers(request)
    if refused is not None:
        return refused
    o = store.options
    raw = await request.read()
    if len(raw) > o.anthropic_batch_max_bytes:
        store.rejected(PROVIDER, "request_too_large")
        return _error(413, "request_too_large", f"Request exceeds the maximum allowed number of bytes: {len(raw)} > "
                      f"{o.anthropic_batch_max_bytes} for a Message Batch.")
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    problem = None
    requests: list[tuple[str, dict[str, Any]]] = []
    items = body.get("requests") if isinstance(body, dict) else None
    if not isinstance(items, list):
        problem = "requests: Field required (a list of {custom_id, params})"
    elif not items:
        problem = "requests: List should have at least 1 item"
    elif len(items) > o.anthropic_batch_max_requests:
        problem = f"requests: List should have at most {o.anthropic_batch_max_requests} items, got {len(items)}"
    else:
        seen: set[str] = set()
        for k, item in enumerate(items):
            cid = item.get("custom_id") if isinstance(item, dict) else None
            params = item.get("params") if isinstance(item, dict) else None
            if not isinstance(cid, str) or not CUSTOM_ID.match(cid):
                problem = f"requests.{k}.custom_id: String should match pattern '^[a-zA-Z0-9_-]{{1,64}}$'"
            elif cid in seen:
                problem = f"requests.{k}: Duplicate custom_id {cid!r}; custom_id must be unique within a batch"
            elif not isinstance(params, dict):
                problem = f"requests.{k}.params: Input should be a valid object"
            if problem:
                break
            seen.add(cid)
            requests.append((cid, params))
    if problem:
        store.rejected(PROVIDER, problem)
        return _error(400, "invalid_request_error", problem)
    job = store.submit(PROVIDER, requests, invalid=[_invalid(p) for _, p in requests])
    job.extra["origin"] = f"{request.scheme}://{request.host}"
    return web.json_response(batch_object(store, job))


def batch_object(store: BatchStore, job: Job) -> dict[str, Any]:
    """The MessageBatch object of ``job`` now (anthropic.types.messages.MessageBatch)."""
    status, _, since = store.phase(job)
    ended = job.final is not None
    if ended:
        counts = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        for _, kind, _ in job.final or ():
            counts[kind] += 1
    else:  # documented: requests stay "processing" until the whole batch has ended
        counts = {"processing": len(job.requests), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
    return {
        "id": job.id, "type": "message_batch",
        "processing_status": "ended" if ended else ("canceling" if status == "cancelling" else "in_progress"),
        "request_counts": counts, "ended_at": rfc3339(since) if ended else None,
        "created_at": rfc3339(job.created), "expires_at": rfc3339(job.expires), "archived_at": None,
        "cancel_initiated_at": rfc3339(job.cancel_at),
        "results_url": f"{job.extra['origin']}/v1/messages/batches/{job.id}/results" if ended else None,
    }


def render(store: BatchStore, job: Job) -> None:
    """Build the results JSONL of an ended job (mock_batches calls this once)."""
    assert job.final is not None
    lines: list[bytes] = []
    for i, kind, status in job.final:
        custom_id, params = job.requests[i]
        result: dict[str, Any] = {"type": kind}
        if kind == "succeeded":
            result["message"] = store.anthropic_answer(params)
        elif kind == "errored":
            if status == 400:
                err = {"type": "invalid_request_error", "message": ("messages, model and max_tokens are required"
                                                                    if _invalid(params) else
                                                                    "Invalid request (simulated by the mock).")}
            else:
                err = {"type": "api_error", "message": "Internal server error (simulated by the mock)."}
            result["error"] = {"type": "error", "error": err, "request_id": new_id("req_", 24)}
        lines.append(json.dumps({"custom_id": custom_id, "result": result}).encode() + b"\n")
    job.extra["results"] = b"".join(lines)


def _job(store: BatchStore, request: web.Request) -> Job | web.Response:
    refused = _headers(request)
    if refused is not None:
        return refused
    ident = request.match_info["batch_id"]
    job = store.jobs.get(ident)
    if job is None or job.provider != PROVIDER:
        return _error(404, "not_found_error", f"Message Batch {ident!r} not found")
    return job


async def get_batch(store: BatchStore, request: web.Request) -> web.Response:
    job = _job(store, request)
    return job if isinstance(job, web.Response) else web.json_response(batch_object(store, job))


async def results(store: BatchStore, request: web.Request) -> web.Response:
    job = _job(store, request)
    if isinstance(job, web.Response):
        return job
    store.phase(job)
    if job.final is None:
        return _error(400, "invalid_request_error", f"Message Batch {job.id} has not ended; its results are "
                      "available once processing_status is 'ended'")
    return web.Response(body=job.extra["results"], content_type="application/x-jsonl")


async def cancel_batch(store: BatchStore, request: web.Request) -> web.Response:
    job = _job(store, request)
    if isinstance(job, web.Response):
        return job
    store.phase(job)
    if job.final is not None:
        return _error(400, "invalid_request_error", f"Message Batch {job.id} has ended and cannot be canceled")
    if job.cancel_at is None:
        job.cancel_at = store.clock()
    return web.json_response(batch_object(store, job))


async def delete_batch(store: BatchStore, request: web.Request) -> web.Response:
    job = _job(store, request)
    if isinstance(job, web.Response):
        return job
    store.phase(job)
    if job.final is None:
        return _error(400, "invalid_request_error", f"Message Batch {job.id} is still processing; cancel it first")
    del store.jobs[job.id]
    return web.json_response({"id": job.id, "type": "message_batch_deleted"})


async def list_batches(store: BatchStore, request: web.Request) -> web.Response:
    refused = _headers(request)
    if refused is not None:
        return refused
    raw = request.query.get("limit", "20")
    limit = int(raw) if raw.isdigit() else 0
    if not 1 <= limit <= 1000:
        return _error(400, "invalid_request_error", f"limit: Input should be from 1 to 1000, got {raw!r}")
    jobs = store.listing(PROVIDER)  # newest first
    ids = [j.id for j in jobs]
    before, after = request.query.get("before_id"), request.query.get("after_id")
    for cursor in (before, after):
        if cursor is not None and cursor not in ids:
            return _error(400, "invalid_request_error", f"Message Batch {cursor!r} not found for pagination")
    if before is not None:  # the page just before the cursor (newer ones)
        end = ids.index(before)
        start = max(0, end - limit)
        more = start > 0
    else:
        start = ids.index(after) + 1 if after is not None else 0
        end = start + limit
        more = end < len(ids)
    data = [batch_object(store, j) for j in jobs[start:end]]
    return web.json_response({"data": data, "has_more": more, "first_id": data[0]["id"] if data else None,
                              "last_id": data[-1]["id"] if data else None})


#: (method, path, request-log kind, handler) registered by mock_batches.register
ROUTES = [
    ("POST", "/v1/messages/batches", "message_batches", create_batch),
    ("GET", "/v1/messages/batches", "message_batches", list_batches),
    ("GET", "/v1/messages/batches/{batch_id}", "message_batches", get_batch),
    ("GET", "/v1/messages/batches/{batch_id}/results", "message_batch_results", results),
    ("POST", "/v1/messages/batches/{batch_id}/cancel", "message_batches", cancel_batch),
    ("DELETE", "/v1/messages/batches/{batch_id}", "message_batches", delete_batch),
]
