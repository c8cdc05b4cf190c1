"""OpenAI's Files and Batch APIs for the mock provider: ``/v1/files`` and ``/v1/batches``.

Shapes, validation codes, timeline and log: see the docstring of scripts/mock_batches.py
(sources: OpenAI's Batch API guide and API reference; openai-python's ``Batch``,
``BatchError``, ``FileObject`` and ``FileDeleted`` types).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import BodyPartReader, web

from mock_batches import BatchStore, Job, new_id

PROVIDER = "openai"
ENDPOINT = "/v1/chat/completions"
FILE_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
MAX_ERRORS = 1000
EXPIRED_MESSAGE = "This request could not be executed before the completion window expired."
CANCELLED_MESSAGE = "This request was not executed because the batch was cancelled."


def _error(status: int, message: str, type_: str = "invalid_request_error", code: str | None = None,
           param: str | None = None) -> web.Response:
    body = {"error": {"message": message, "type": type_, "param": param, "code": code}}
    return web.json_response(body, status=status)


def _not_found(kind: str, ident: str) -> web.Response:
    return _error(404, f"No such {kind}: '{ident}'", code="not_found")


def _limit(request: web.Request, high: int) -> int | web.Response:
    raw = request.query.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        limit = 0
    if not 1 <= limit <= high:
        return _error(400, f"Invalid 'limit': expected an integer from 1 to {high}, got {raw!r}.", param="limit")
    return limit


def _page(items: list[dict[str, Any]], after: str | None, limit: int) -> dict[str, Any] | None:
    """OpenAI's cursor page (``after`` = id of the last item seen), or None if the cursor is
    unknown."""
    start = 0
    if after:
        ids = [x["id"] for x in items]
        if after not in ids:
            return None
        start = ids.index(after) + 1
    data = items[start : start + limit]
    return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
            "last_id": data[-1]["id"] if data else None, "has_more": start + limit < len(items)}


# --- files -----------------------------------------------------------------------------


def add_file(store: BatchStore, data: bytes, filename: str, purpose: str) -> dict[str, Any]:
    """Store ``data`` as a file; returns its File object."""
    meta = {"id": new_id("file-", 22), "object": "file", "bytes": len(data), "created_at": int(store.clock()),
            "filename": filename, "purpose": purpose, "status": "processed", "expires_at": None,
            "status_details": None}
    store.files[meta["id"]] = {"meta": meta, "data": data}
    return meta


async def create_file(store: BatchStore, request: web.Request) -> web.Response:
    fields: dict[str, tuple[bytes, str | None]] = {}
    try:
        reader = await request.multipart()
        async for part in reader:
            if isinstance(part, BodyPartReader) and part.name:
                fields[part.name] = (bytes(await part.read()), part.filename)
    except (ValueError, AssertionError, KeyError) as exc:  # not multipart, or malformed
        return _error(400, f"Invalid multipart body: {exc}")
    purpose = fields.get("purpose", (b"", None))[0].decode("utf-8", "replace")
    if "file" not in fields:
        return _error(400, "Missing required parameter: 'file'.", code="missing_required_parameter", param="file")
    if purpose not in FILE_PURPOSES:
        return _error(400, f"Invalid value for 'purpose': {purpose!r}. Expected one of {', '.join(FILE_PURPOSES)}.",
                      code="invalid_value", param="purpose")
    data, filename = fields["file"]
    store.counts[PROVIDER]["files_uploaded"] += 1
    return web.json_response(add_file(store, data, filename or "upload.jsonl", purpose))


async def list_files(store: BatchStore, request: web.Request) -> web.Response:
    limit = _limit(request, 10_000)
    if isinstance(limit, web.Response):
        return limit
    purpose = request.query.get("purpose")
    items = [f["meta"] for f in reversed(store.files.values()) if purpose in (None, f["meta"]["purpose"])]
    page = _page(items, request.query.get("after"), limit)
    if page is None:
        return _error(400, f"Invalid 'after': no file {request.query['after']!r}.", param="after")
    return web.json_response(page)


async def get_file(store: BatchStore, request: web.Request) -> web.Response:
    ident = request.match_info["file_id"]
    f = store.files.get(ident)
    return web.json_response(f["meta"]) if f else _not_found("File", ident)


async def file_content(store: BatchStore, request: web.Request) -> web.Response:
    ident = request.match_info["file_id"]
    f = store.files.get(ident)
    if f is None:
        return _not_found("File", ident)
    return web.Response(body=f["data"], content_type="application/octet-stream")


async def delete_file(store: BatchStore, request: web.Request) -> web.Response:
    ident = request.match_info["file_id"]
    if store.files.pop(ident, None) is None:
        return _not_found("File", ident)
    return web.json_response({"id": ident, "object": "file", "deleted": True})


# --- batches ---------------------------------------------------------------------------


def validate_input(data: bytes, endpoint: str, max_requests: int, max_bytes: int
                   ) -> tuple[list[tuple[str, dict[str, Any]]], list[dict[str, Any]]]:
    """Parse a batch input file: ``(requests, errors)`` with ``requests`` ``[(custom_id,
    body)]`` and ``errors`` OpenAI BatchError dicts ``{code, message, param, line}`` (line
    1-based; at most ``MAX_ERRORS``). Any error fails the whole batch."""
    errors: list[dict[str, Any]] = []

    def err(code: str, message: str, line: int | None = None, param: str | None = None) -> None:
        if len(errors) < MAX_ERRORS:
            errors.append({"code": code, "message": message, "param": param, "line": line})

    if len(data) > max_bytes:
        err("file_too_large", f"The input file is {len(data)} bytes; a batch input file may be at most {max_bytes} bytes.")
        return [], errors
    requests: list[tuple[str, dict[str, Any]]] = []
    seen: set[str] = set()
    model: Any = None
    for number, raw in enumerate(data.split(b"\n"), 1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except ValueError:
            line = None
        if not isinstance(line, dict):
            err("invalid_json_line", "This line is not parseable as valid JSON.", number)
            continue
        missing = [k for k in ("custom_id", "method", "url", "body") if k not in line]
        if missing:
            err("missing_required_parameter", f"Missing required parameter: '{missing[0]}'.", number, missing[0])
            continue
        custom_id, body = line["custom_id"], line["body"]
        if not isinstance(custom_id, str) or not custom_id:
            err("invalid_value", "'custom_id' must be a non-empty string.", number, "custom_id")
        elif custom_id in seen:
            err("duplicate_custom_id", f"The custom_id '{custom_id}' is used more than once in this file.", number,
                "custom_id")
        elif line["method"] != "POST":
            err("invalid_value", f"Invalid 'method': {line['method']!r}; only POST is supported.", number, "method")
        elif line["url"] != endpoint:
            err("url_mismatch", f"The url '{line['url']}' does not match the batch endpoint '{endpoint}'.", number,
                "url")
        elif not isinstance(body, dict):
            err("invalid_value", "'body' must be a JSON object.", number, "body")
        elif model is not None and body.get("model") != model:
            err("model_mismatch", f"The model '{body.get('model')}' differs from '{model}' of earlier lines; a "
                "batch input file may hold requests for one model only.", number, "body.model")
        else:
            model = body.get("model") if model is None else model
            seen.add(custom_id)
            requests.append((custom_id, body))
            continue
    if not requests and not errors:
        err("empty_file", "The input file holds no request.")
    if len(requests) > max_requests:
        err("too_many_tasks", f"The input file holds {len(requests)} requests; a batch may hold at most "
            f"{max_requests}.")
    return requests, errors


def _invalid(body: dict[str, Any]) -> bool:
    messages = body.get("messages")
    return not isinstance(messages, list) or not messages


async def create_batch(store: BatchStore, request: web.Request) -> web.Response:
    try:
        body = await request.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return _error(400, "The body must be a JSON object.")
    for key in ("input_file_id", "endpoint", "completion_window"):
        if key not in body:
            return _error(400, f"Missing required parameter: '{key}'.", code="missing_required_parameter", param=key)
    if body["endpoint"] != ENDPOINT:
        return _error(400, f"Invalid 'endpoint': the mock supports {ENDPOINT} only, got {body['endpoint']!r}.",
                      code="invalid_value", param="endpoint")
    if body["completion_window"] != "24h":
        return _error(400, f"Invalid 'completion_window': {body['completion_window']!r}; only '24h' is supported.",
                      code="invalid_value", param="completion_window")
    metadata = body.get("metadata")
    if metadata is not None and (not isinstance(metadata, dict) or len(metadata) > 16
                                 or not all(isinstance(v, str) for v in metadata.values())):
        return _error(400, "Invalid 'metadata': at most 16 string values.", code="invalid_value", param="metadata")
    f = store.files.get(body["input_file_id"])
    if f is None:
        return _not_found("File", str(body["input_file_id"]))
    if f["meta"]["purpose"] != "batch":
        return _error(400, f"File {f['meta']['id']} has purpose {f['meta']['purpose']!r}; a batch input file "
                      "must have purpose 'batch'.", param="input_file_id")
    o = store.options
    requests, errors = validate_input(f["data"], ENDPOINT, o.batch_max_requests, o.batch_max_bytes)
    if errors:
        job = store.submit(PROVIDER, [], failure=errors)
    else:
        job = store.submit(PROVIDER, requests, invalid=[_invalid(b) for _, b in requests])
    model = requests[0][1].get("model") if requests else None
    job.extra.update(endpoint=ENDPOINT, input_file_id=f["meta"]["id"], completion_window="24h", metadata=metadata,
                     model=model, output_file_id=None, error_file_id=None, usage=None)
    return web.json_response(batch_object(store, job))


def batch_object(store: BatchStore, job: Job) -> dict[str, Any]:
    """The Batch object of ``job`` now (openai.types.Batch)."""
    status, done, since = store.phase(job)
    o = store.options
    x = job.extra
    n = len(job.requests)
    started = status not in ("validating", "failed") and (job.cancel_at is None or job.cancel_at >= job.start)
    all_done = job.start + (n / o.batch_rate if o.batch_rate > 0 else 0.0)
    finalized = status in ("finalizing", "completed")
    if job.final is not None:
        completed = sum(1 for _, kind, _ in job.final if kind == "succeeded")
        failed = sum(1 for _, kind, _ in job.final if kind == "errored")
    else:
        completed, failed = job.counts(done)
    counts = {"total": 0 if status in ("validating", "failed") else n, "completed": completed, "failed": failed}

    def ts(t: float | None) -> int | None:
        return None if t is None else int(t)

    return {
        "id": job.id, "object": "batch", "endpoint": x["endpoint"], "model": x["model"],
        "errors": {"object": "list", "data": job.failure} if job.failure and status == "failed" else None,
        "input_file_id": x["input_file_id"], "completion_window": x["completion_window"], "status": status,
        "output_file_id": x["output_file_id"], "error_file_id": x["error_file_id"], "created_at": ts(job.created),
        "in_progress_at": ts(job.start) if started else None, "expires_at": ts(job.expires),
        "finalizing_at": ts(all_done) if finalized else None,
        "completed_at": ts(since) if status == "completed" else None,
        "failed_at": ts(since) if status == "failed" else None,
        "expired_at": ts(since) if status == "expired" else None,
        "cancelling_at": ts(job.cancel_at), "cancelled_at": ts(since) if status == "cancelled" else None,
        "request_counts": counts, "metadata": x["metadata"], "usage": x["usage"],
    }


def render(store: BatchStore, job: Job) -> None:
    """Write the output and error files of an ended job (mock_batches calls this once)."""
    assert job.final is not None
    out: list[bytes] = []
    bad: list[bytes] = []
    prompt = completion = 0
    for i, kind, status in job.final:
        custom_id, body = job.requests[i]
        line: dict[str, Any] = {"id": new_id("batch_req_"), "custom_id": custom_id, "response": None, "error": None}
        request_id = new_id("req_", 32)
        if kind == "succeeded":
            answer = store.answer(body)
            prompt += answer["usage"]["prompt_tokens"]
            completion += answer["usage"]["completion_tokens"]
            line["response"] = {"status_code": 200, "request_id": request_id, "body": answer}
        elif kind == "errored" and status == 400:
            msg = ("'messages' must be a non-empty array" if _invalid(body)
                   else "Invalid request (simulated by the mock).")
            line["response"] = {"status_code": 400, "request_id": request_id, "body": {"error": {
                "message": msg, "type": "invalid_request_error", "param": None, "code": None}}}
        elif kind == "errored":
            line["response"] = {"status_code": status, "request_id": request_id, "body": {"error": {
                "message": "The server had an error while processing your request. Sorry about that!",
                "type": "server_error", "param": None, "code": None}}}
        elif kind == "expired":
            line["error"] = {"code": "batch_expired", "message": EXPIRED_MESSAGE}
        else:
            line["error"] = {"code": "batch_cancelled", "message": CANCELLED_MESSAGE}
        (out if kind == "succeeded" else bad).append(json.dumps(line).encode() + b"\n")
    x = job.extra
    if out:
        x["output_file_id"] = add_file(store, b"".join(out), f"{job.id}_output.jsonl", "batch_output")["id"]
    if bad:
        x["error_file_id"] = add_file(store, b"".join(bad), f"{job.id}_error.jsonl", "batch_output")["id"]
    x["usage"] = {"input_tokens": prompt, "input_tokens_details": {"cached_tokens": 0}, "output_tokens": completion,
                  "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": prompt + completion}


def _job(store: BatchStore, request: web.Request) -> Job | None:
    job = store.jobs.get(request.match_info["batch_id"])
    return job if job is not None and job.provider == PROVIDER else None


async def get_batch(store: BatchStore, request: web.Request) -> web.Response:
    job = _job(store, request)
    if job is None:
        return _not_found("batch", request.match_info["batch_id"])
    return web.json_response(batch_object(store, job))


async def cancel_batch(store: BatchStore, request: web.Request) -> web.Response:
    job = _job(store, request)
    if job is None:
        return _not_found("batch", request.match_info["batch_id"])
    status, _, _ = store.phase(job)
    if status in ("failed", "completed", "expired", "cancelled"):
        return _error(400, f"Cannot cancel a batch with status '{status}'.", code="invalid_state")
    if job.cancel_at is None:
        job.cancel_at = store.clock()
    return web.json_response(batch_object(store, job))


async def list_batches(store: BatchStore, request: web.Request) -> web.Response:
    limit = _limit(request, 100)
    if isinstance(limit, web.Response):
        return limit
    page = _page([batch_object(store, j) for j in store.listing(PROVIDER)], request.query.get("after"), limit)
    if page is None:
        return _error(400, f"Invalid 'after': no batch {request.query['after']!r}.", param="after")
    return web.json_response(page)


#: (method, path, request-log kind, handler) registered by mock_batches.register
ROUTES = [
    ("POST", "/v1/files", "files", create_file),
    ("GET", "/v1/files", "files", list_files),
    ("GET", "/v1/files/{file_id}", "files", get_file),
    ("GET", "/v1/files/{file_id}/content", "file_content", file_content),
    ("DELETE", "/v1/files/{file_id}", "files", delete_file),
    ("POST", "/v1/batches", "batches", create_batch),
    ("GET", "/v1/batches", "batches", list_batches),
    ("GET", "/v1/batches/{batch_id}", "batches", get_batch),
    ("POST", "/v1/batches/{batch_id}/cancel", "batches", cancel_batch),
]
