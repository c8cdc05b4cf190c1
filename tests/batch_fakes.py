"""An in-memory fake of OpenAI's Files + Batch API and Anthropic's Message Batches, as an
httpx.MockTransport handler, for the batch tests. Answers come from the mock provider's
pure answer functions (scripts/mock_provider.py), so they are schema-valid verdicts and
chunk summaries. Shapes as documented (see streamgrade.judges.batch_api)."""

from __future__ import annotations

import itertools
import json
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

import anyio
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
from mock_provider import answer, anthropic_answer  # noqa: E402

#: ``override(custom_id, body) -> None | "errored" | "errored-final" | "expired" | "canceled" | "bad"``
Override = Callable[[str, dict], str | None]


class FakeBatchProvider:
    """``provider`` openai | anthropic; a batch ends after ``polls_to_end`` status polls;
    ``override`` picks the fate of a request (default: succeeded). Records ``batches``
    (id -> {"custom_ids", "bodies", "created", "metadata", "polls"}), ``created`` (ids in
    order), ``submitted_after_success`` (custom_ids sent again after they succeeded) and
    every ``calls`` (method, path)."""

    def __init__(self, provider: str = "openai", *, polls_to_end: int = 1, override: Override | None = None,
                 fail_create: int = 0, hang_after_create: bool = False):
        self.provider = provider
        self.hang_after_create = hang_after_create
        self.polls_to_end = polls_to_end
        self.override = override or (lambda cid, body: None)
        self.fail_create = fail_create
        self.files: dict[str, bytes] = {}
        self.batches: dict[str, dict[str, Any]] = {}
        self.created: list[str] = []
        self.calls: list[tuple[str, str]] = []
        self.succeeded: set[str] = set()
        self.submitted_after_success: list[str] = []
        self._ids = itertools.count(1)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handler)

    # -- helpers --------------------------------------------------------------------------
    def _new_batch(self, requests: list[tuple[str, dict]], metadata: dict | None = None) -> dict[str, Any]:
        bid = ("batch_" if self.provider == "openai" else "msgbatch_") + f"{next(self._ids):04d}"
        for cid, _ in requests:
            if cid in self.succeeded:
                self.submitted_after_success.append(cid)
        b = {"id": bid, "custom_ids": [c for c, _ in requests], "bodies": dict(requests),
             "created": datetime.now(timezone.utc), "metadata": metadata or {}, "polls": 0, "results": None}
        self.batches[bid] = b
        self.created.append(bid)
        return b

    def _fate(self, cid: str, body: dict) -> tuple[str, Any]:
        fate = self.override(cid, body)
        if fate is None or fate == "bad":
            data = answer(body) if self.provider == "openai" else anthropic_answer(body)
            if fate == "bad":
                if self.provider == "openai":
                    data["choices"][0]["message"]["content"] = "not json"
                else:
                    data["content"] = [{"type": "text", "text": "no tool"}]
            self.succeeded.add(cid)
            return "succeeded", data
        return fate, None

    def _finish(self, b: dict) -> None:
        if b["results"] is None:
            b["results"] = [(cid, *self._fate(cid, b["bodies"][cid])) for cid in b["custom_ids"]]

    def _openai_view(self, b: dict) -> dict:
        ended = b["polls"] >= self.polls_to_end
        if ended:
            self._finish(b)
        view = {"id": b["id"], "object": "batch", "endpoint": "/v1/chat/completions", "input_file_id": b["file"],
                "completion_window": "24h", "status": "completed" if ended else "in_progress",
                "created_at": int(b["created"].timestamp()), "metadata": b["metadata"],
                "output_file_id": None, "error_file_id": None,
                "request_counts": {"total": len(b["custom_ids"]), "completed": 0, "failed": 0}}
        if ended:
            ok, bad = [], []
            for i, (cid, fate, data) in enumerate(b["results"]):
                if fate == "succeeded":
                    ok.append({"id": f"req_{i}", "custom_id": cid, "error": None,
                               "response": {"status_code": 200, "request_id": f"r{i}", "body": data}})
                elif fate in ("errored", "errored-final"):
                    status = 500 if fate == "errored" else 400
                    bad.append({"id": f"req_{i}", "custom_id": cid, "error": None,
                                "response": {"status_code": status, "request_id": f"r{i}",
                                             "body": {"error": {"message": f"fake {status}", "type": "x"}}}})
                else:
                    code = {"expired": "batch_expired", "canceled": "batch_cancelled"}[fate]
                    bad.append({"id": f"req_{i}", "custom_id": cid, "response": None,
                                "error": {"code": code, "message": f"fake {fate}"}})
            for key, rows in (("output_file_id", ok), ("error_file_id", bad)):
                if rows:
                    fid = f"file-out{next(self._ids)}"
                    self.files[fid] = b"".join(json.dumps(r).encode() + b"\n" for r in rows)
                    view[key] = fid
            view["request_counts"] = {"total": len(b["custom_ids"]), "completed": len(ok), "failed": len(bad)}
        return view

    def _anthropic_view(self, b: dict, base: str) -> dict:
        ended = b["polls"] >= self.polls_to_end
        counts = {"processing": len(b["custom_ids"]), "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if ended:
            self._finish(b)
            counts["processing"] = 0
            for _, fate, _ in b["results"]:
                counts[{"errored-final": "errored"}.get(fate, fate)] += 1
        return {"id": b["id"], "type": "message_batch", "processing_status": "ended" if ended else "in_progress",
                "request_counts": counts, "created_at": b["created"].isoformat().replace("+00:00", "Z"),
                "results_url": f"{base}/v1/messages/batches/{b['id']}/results" if ended else None}

    def _anthropic_results(self, b: dict) -> bytes:
        out = []
        for cid, fate, data in b["results"]:
            if fate == "succeeded":
                result = {"type": "succeeded", "message": data}
            elif fate in ("errored", "errored-final"):
                etype = "api_error" if fate == "errored" else "invalid_request_error"
                result = {"type": "errored", "error": {"type": "error", "error": {"type": etype, "message": "fake"}}}
            else:
                result = {"type": fate}
            out.append(json.dumps({"custom_id": cid, "result": result}).encode())
        return b"\n".join(out) + b"\n"

    # -- the handler ------------------------------------------------------------------------
    async def handler(self, request: httpx.Request) -> httpx.Response:
        """The fake's answer; with ``hang_after_create`` a create call makes the batch and
        then never answers (a kill or a lost response after the provider took it)."""
        resp = self._handle(request)
        if self.hang_after_create and request.method == "POST" and request.url.path.endswith("batches"):
            await anyio.sleep_forever()
        return resp

    def _handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.calls.append((method, path))
        base = f"{request.url.scheme}://{request.url.host}"
        if self.provider == "openai":
            if method == "POST" and path == "/v1/files":
                lines = [ln for ln in request.content.replace(b"\r\n", b"\n").split(b"\n")
                         if ln.startswith(b'{"custom_id"')]
                fid = f"file-in{next(self._ids)}"
                self.files[fid] = b"\n".join(lines)
                return httpx.Response(200, json={"id": fid, "object": "file", "purpose": "batch",
                                                 "bytes": len(self.files[fid])})
            if method == "POST" and path == "/v1/batches":
                if self.fail_create:
                    self.fail_create -= 1
                    return httpx.Response(500, json={"error": {"message": "fake create failure"}})
                req = json.loads(request.content)
                lines = [json.loads(ln) for ln in self.files[req["input_file_id"]].split(b"\n") if ln]
                b = self._new_batch([(ln["custom_id"], ln["body"]) for ln in lines], req.get("metadata"))
                b["file"] = req["input_file_id"]
                return httpx.Response(200, json=self._openai_view(b))
            if method == "GET" and path == "/v1/batches":
                data = [self._openai_view(self.batches[i]) for i in reversed(self.created)]
                return httpx.Response(200, json={"object": "list", "data": data, "has_more": False,
                                                 "last_id": data[-1]["id"] if data else None})
            if method == "GET" and path.startswith("/v1/batches/"):
                b = self.batches.get(path.rsplit("/", 1)[1])
                if b is None:
                    return httpx.Response(404, json={"error": {"message": "no such batch"}})
                b["polls"] += 1
                return httpx.Response(200, json=self._openai_view(b))
            if method == "GET" and path.startswith("/v1/files/") and path.endswith("/content"):
                return httpx.Response(200, content=self.files[path.split("/")[3]])
        else:
            if method == "POST" and path == "/v1/messages/batches":
                if self.fail_create:
                    self.fail_create -= 1
                    return httpx.Response(500, json={"type": "error", "error": {"type": "api_error", "message": "x"}})
                req = json.loads(request.content)
                b = self._new_batch([(r["custom_id"], r["params"]) for r in req["requests"]])
                return httpx.Response(200, json=self._anthropic_view(b, base))
            if method == "GET" and path == "/v1/messages/batches":
                data = [self._anthropic_view(self.batches[i], base) for i in reversed(self.created)]
                return httpx.Response(200, json={"data": data, "has_more": False,
                                                 "first_id": data[0]["id"] if data else None,
                                                 "last_id": data[-1]["id"] if data else None})
            if method == "GET" and path.endswith("/results"):
                return httpx.Response(200, content=self._anthropic_results(self.batches[path.split("/")[4]]))
            if method == "GET" and path.startswith("/v1/messages/batches/"):
                b = self.batches.get(path.rsplit("/", 1)[1])
                if b is None:
                    return httpx.Response(404, json={"type": "error", "error": {"type": "not_found_error"}})
                b["polls"] += 1
                return httpx.Response(200, json=self._anthropic_view(b, base))
        return httpx.Response(404, json={"error": {"message": f"fake: no route {method} {path}"}})
