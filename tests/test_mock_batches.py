"""scripts/mock_batches*.py: the mock provider's OpenAI Files/Batch and Anthropic Message
Batches endpoints, driven for real over HTTP (the mock runs in a thread on 127.0.0.1) with a
manual clock, their JSON validated against the openai and anthropic SDKs' own types, and
both SDKs used as clients."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx
import openai
import pytest
from anthropic.types.messages import DeletedMessageBatch, MessageBatch, MessageBatchIndividualResponse
from openai.types import Batch, FileDeleted, FileObject
from openai.types.chat import ChatCompletion

SCRIPTS = Path(__file__).resolve().parent.parent / "scripts"
sys.path.insert(0, str(SCRIPTS))

from mock_batches import (  # noqa: E402
    draw_error,
    read_batch_results,
    read_batch_submissions,
    resubmitted_after_success,
)
from mock_provider import MockOptions, _argv, build_parser, main, serve_in_thread, start_mock_process  # noqa: E402

T0 = 1_800_000_000.0
AH = {"x-api-key": "sk-ant-local", "anthropic-version": "2023-06-01"}
EXPIRED = "This request could not be executed before the completion window expired."


class Clock:
    """A manual clock (Unix seconds) for the mock's batch store."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@contextlib.contextmanager
def mock(**options: Any) -> Iterator[tuple[Any, httpx.Client, Clock]]:
    options.setdefault("batch_start_delay_s", 0)
    options.setdefault("batch_rate", 0)
    options.setdefault("batch_finalize_s", 0)
    with serve_in_thread(**options) as url, httpx.Client(base_url=url, timeout=5) as client:
        clock = Clock()
        url.server.batches.clock = clock
        yield url, client, clock


def line(custom_id: str, text: str | None = None, **over: Any) -> dict[str, Any]:
    body = {"model": "gpt-mock", "messages": [{"role": "user", "content": text or f"hi {custom_id}"}]}
    return {"custom_id": custom_id, "method": "POST", "url": "/v1/chat/completions", "body": body, **over}


def jsonl(rows: list[Any]) -> bytes:
    return b"".join((r if isinstance(r, bytes) else json.dumps(r).encode()) + b"\n" for r in rows)


def upload(client: httpx.Client, data: bytes, purpose: str = "batch") -> dict[str, Any]:
    r = client.post("/files", files={"file": ("in.jsonl", data)}, data={"purpose": purpose})
    assert r.status_code == 200, r.text
    FileObject.model_validate(r.json())
    return r.json()


def create(client: httpx.Client, ids: list[str], **extra: Any) -> dict[str, Any]:
    f = upload(client, jsonl([line(i) for i in ids]))
    r = client.post("/batches", json={"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                      "completion_window": "24h", **extra})
    assert r.status_code == 200, r.text
    return r.json()


def get(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    r = client.get(f"/batches/{batch_id}")
    assert r.status_code == 200, r.text
    Batch.model_validate(r.json())
    return r.json()


def content(client: httpx.Client, file_id: str | None) -> list[dict[str, Any]]:
    if file_id is None:
        return []
    r = client.get(f"/files/{file_id}/content")
    assert r.status_code == 200
    return [json.loads(x) for x in r.content.splitlines()]


def messages_params(text: str) -> dict[str, Any]:
    return {"model": "claude-mock", "max_tokens": 64, "messages": [{"role": "user", "content": text}]}


def create_anthropic(client: httpx.Client, ids: list[str]) -> dict[str, Any]:
    reqs = [{"custom_id": i, "params": messages_params(f"hello {i}")} for i in ids]
    r = client.post("/messages/batches", json={"requests": reqs}, headers=AH)
    assert r.status_code == 200, r.text
    MessageBatch.model_validate(r.json())
    return r.json()


def get_anthropic(client: httpx.Client, batch_id: str) -> dict[str, Any]:
    r = client.get(f"/messages/batches/{batch_id}", headers=AH)
    assert r.status_code == 200, r.text
    MessageBatch.model_validate(r.json())
    return r.json()


def results_anthropic(client: httpx.Client, batch: dict[str, Any]) -> dict[str, dict[str, Any]]:
    r = client.get(batch["results_url"], headers=AH)
    assert r.status_code == 200, r.text
    rows = [json.loads(x) for x in r.content.splitlines()]
    for row in rows:
        MessageBatchIndividualResponse.model_validate(row)
    out = {row["custom_id"]: row["result"] for row in rows}
    assert len(out) == len(rows)
    return out


# --- OpenAI ------------------------------------------------------------------------------


def test_openai_lifecycle_validating_in_progress_finalizing_completed():
    ids = [f"req-{i}" for i in range(6)]
    with mock(batch_start_delay_s=10, batch_rate=2, batch_finalize_s=5) as (url, client, clock):
        b = create(client, ids, metadata={"run": "t1"})
        Batch.model_validate(b)
        assert b["id"].startswith("batch_") and b["object"] == "batch" and b["status"] == "validating"
        assert b["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
        assert b["created_at"] == int(T0) and b["expires_at"] == int(T0) + 86_400 and b["metadata"] == {"run": "t1"}
        assert b["in_progress_at"] is None and b["output_file_id"] is None and b["model"] == "gpt-mock"
        clock.advance(10)
        b = get(client, b["id"])
        assert b["status"] == "in_progress" and b["in_progress_at"] == int(T0) + 10
        assert b["request_counts"] == {"total": 6, "completed": 0, "failed": 0}
        clock.advance(1.5)  # 2 requests/s: 3 done
        assert get(client, b["id"])["request_counts"] == {"total": 6, "completed": 3, "failed": 0}
        clock.advance(1.5)
        b = get(client, b["id"])
        assert b["status"] == "finalizing" and b["finalizing_at"] == int(T0) + 13 and b["output_file_id"] is None
        clock.advance(5)
        b = get(client, b["id"])
        assert b["status"] == "completed" and b["completed_at"] == int(T0) + 18
        assert b["request_counts"] == {"total": 6, "completed": 6, "failed": 0} and b["error_file_id"] is None
        meta = client.get(f"/files/{b['output_file_id']}").json()
        FileObject.model_validate(meta)
        assert meta["purpose"] == "batch_output" and meta["status"] == "processed"
        rows = content(client, b["output_file_id"])
        assert meta["bytes"] == len(client.get(f"/files/{b['output_file_id']}/content").content)
    assert sorted(r["custom_id"] for r in rows) == sorted(ids)
    assert [r["custom_id"] for r in rows] != ids  # processed in a seeded order, not the input order
    prompt = completion = 0
    for r in rows:
        assert r["id"].startswith("batch_req_") and r["error"] is None and r["response"]["status_code"] == 200
        assert r["response"]["request_id"].startswith("req_")
        chat = ChatCompletion.model_validate(r["response"]["body"])
        assert chat.model == "gpt-mock" and chat.choices[0].message.content == f"echo: hi {r['custom_id']}"
        prompt += chat.usage.prompt_tokens
        completion += chat.usage.completion_tokens
    assert b["usage"]["input_tokens"] == prompt and b["usage"]["output_tokens"] == completion
    assert b["usage"]["total_tokens"] == prompt + completion


@pytest.mark.parametrize("status,type_", [(500, "server_error"), (400, "invalid_request_error")])
def test_openai_partial_failures_then_resubmission_redraws(tmp_path: Path, status: int, type_: str):
    log = tmp_path / "batches.jsonl"
    ids = [f"s{i}" for i in range(40)]
    with mock(batch_error_rate=0.3, batch_error_status=status, seed=7, batch_log=str(log)) as (url, client, clock):
        first = get(client, create(client, ids)["id"])
        failed = {i for i in ids if draw_error(7, i, 1, 0.3)}
        assert 0 < len(failed) < len(ids)
        assert first["status"] == "completed"
        assert first["request_counts"] == {"total": 40, "completed": 40 - len(failed), "failed": len(failed)}
        errors = content(client, first["error_file_id"])
        assert {r["custom_id"] for r in errors} == failed
        for r in errors:
            assert r["error"] is None and r["response"]["status_code"] == status
            assert r["response"]["body"]["error"]["type"] == type_
        assert {r["custom_id"] for r in content(client, first["output_file_id"])} == set(ids) - failed
        # the client resubmits only the errored ones: attempt 2 draws again
        retry = sorted(failed)
        second = get(client, create(client, retry)["id"])
        still = {i for i in retry if draw_error(7, i, 2, 0.3)}
        assert still != failed and {r["custom_id"] for r in content(client, second["error_file_id"])} == still
        assert url.stats()["batches"]["resubmitted_after_success"] == 0
        # a client that lost a batch id resubmits while that batch still runs
        delay = url.server.batches.options.batch_start_delay_s  # 0 here: batches end at once
        url.server.batches.options.batch_start_delay_s = 5
        lost = create(client, ["late"])
        dup = create(client, ["late"])
        url.server.batches.options.batch_start_delay_s = delay
        assert url.stats()["batches"]["resubmitted_while_pending"] == 1
        clock.advance(5)
        # a buggy client resubmits one that had succeeded
        ok = sorted(set(ids) - failed)[0]
        third = get(client, create(client, [ok])["id"])
        stats = url.stats()["batches"]
    assert stats["resubmitted_after_success"] == 1 and stats["openai"]["created"] == 5
    assert stats["requests_submitted"] == 40 + len(retry) + 2 + 1
    late = sum(draw_error(7, "late", k, 0.3) for k in (1, 2))
    assert stats["errored"] == len(failed) + len(still) + late
    assert stats["succeeded"] == 40 - len(failed) + len(retry) - len(still) + 2 - late + 1
    results = read_batch_results(log)
    some = retry[0]
    assert results[some][0] == (first["id"], "errored")
    assert results[some][1] == (second["id"], "errored" if some in still else "succeeded")
    assert results[ok] == [(first["id"], "succeeded"), (third["id"], "succeeded")]
    assert resubmitted_after_success(log) == {ok: [third["id"]]}
    assert read_batch_submissions(log)[ok] == [first["id"], third["id"]]
    assert read_batch_submissions(log)["late"] == [lost["id"], dup["id"]]
    submitted = [json.loads(x) for x in log.read_text().splitlines() if '"batch_submitted"' in x]
    assert [r["resubmitted_while_pending"] for r in submitted if r["batch_id"] == dup["id"]] == [["late"]]
    assert read_batch_results(log, provider="anthropic") == {}


def test_openai_expiry_keeps_done_results_and_expires_the_rest(tmp_path: Path):
    ids = [f"e{i}" for i in range(6)]
    with mock(batch_rate=1, batch_expiry_s=3.5, batch_finalize_s=1) as (url, client, clock):
        b = create(client, ids)
        clock.advance(3.2)
        assert get(client, b["id"])["request_counts"]["completed"] == 3
        clock.advance(0.3)
        b = get(client, b["id"])
        assert b["status"] == "expired" and b["expired_at"] == int(T0 + 3.5) and b["completed_at"] is None
        assert b["request_counts"] == {"total": 6, "completed": 3, "failed": 0}
        done = content(client, b["output_file_id"])
        gone = content(client, b["error_file_id"])
        stats = url.stats()["batches"]
    assert len(done) == 3 and len(gone) == 3 and {r["custom_id"] for r in done + gone} == set(ids)
    for r in gone:
        assert r["response"] is None and r["error"] == {"code": "batch_expired", "message": EXPIRED}
    assert stats["expired"] == 3 and stats["succeeded"] == 3


def test_openai_cancel_goes_through_cancelling():
    ids = [f"c{i}" for i in range(5)]
    with mock(batch_rate=1, batch_finalize_s=2) as (url, client, clock):
        b = create(client, ids)
        clock.advance(2.5)
        r = client.post(f"/batches/{b['id']}/cancel")
        assert r.status_code == 200 and r.json()["status"] == "cancelling"
        assert r.json()["cancelling_at"] == int(T0 + 2.5)
        clock.advance(1)
        assert get(client, b["id"])["status"] == "cancelling"
        clock.advance(1)
        b = get(client, b["id"])
        assert b["status"] == "cancelled" and b["cancelled_at"] == int(T0 + 4.5)
        assert b["request_counts"] == {"total": 5, "completed": 2, "failed": 0}
        done, rest = content(client, b["output_file_id"]), content(client, b["error_file_id"])
        again = client.post(f"/batches/{b['id']}/cancel")
        assert url.stats()["batches"]["canceled"] == 3
    assert len(done) == 2 and len(rest) == 3 and {r["error"]["code"] for r in rest} == {"batch_cancelled"}
    assert again.status_code == 400 and again.json()["error"]["type"] == "invalid_request_error"


BAD_FILES = [
    ("invalid_json", [line("a"), b"{not json"], {}, "invalid_json_line", 2, None),
    ("missing_custom_id", [line("a"), {k: v for k, v in line("b").items() if k != "custom_id"}], {},
     "missing_required_parameter", 2, "custom_id"),
    ("duplicate", [line("a"), line("b"), line("a")], {}, "duplicate_custom_id", 3, "custom_id"),
    ("url", [line("a", url="/v1/embeddings")], {}, "url_mismatch", 1, "url"),
    ("model", [line("a"), {**line("b"), "body": {"model": "other", "messages": []}}], {}, "model_mismatch", 2,
     "body.model"),
    ("empty", [], {}, "empty_file", None, None),
    ("too_many", [line("a"), line("b"), line("c")], {"batch_max_requests": 2}, "too_many_tasks", None, None),
    ("too_big", [line("a"), line("b")], {"batch_max_bytes": 200}, "file_too_large", None, None),
]


@pytest.mark.parametrize("name,rows,opts,code,line_no,param", BAD_FILES, ids=[x[0] for x in BAD_FILES])
def test_openai_input_validation_fails_the_batch(tmp_path: Path, name, rows, opts, code, line_no, param):
    log = tmp_path / "b.jsonl"
    with mock(batch_start_delay_s=1, batch_log=str(log), **opts) as (url, client, clock):
        f = upload(client, jsonl(rows))
        b = client.post("/batches", json={"input_file_id": f["id"], "endpoint": "/v1/chat/completions",
                                          "completion_window": "24h"}).json()
        assert b["status"] == "validating"
        clock.advance(1)
        b = get(client, b["id"])
        stats = url.stats()["batches"]
    assert b["status"] == "failed" and b["failed_at"] == int(T0) + 1 and b["in_progress_at"] is None
    assert b["errors"]["object"] == "list" and b["request_counts"] == {"total": 0, "completed": 0, "failed": 0}
    first = b["errors"]["data"][0]
    assert (first["code"], first["line"], first["param"]) == (code, line_no, param) and first["message"]
    assert stats["rejected"] == 1 and stats["created"] == 0 and stats["requests_submitted"] == 0
    events = [json.loads(x)["event"] for x in log.read_text().splitlines()]
    assert events == ["batch_rejected", "batch_ended"] and read_batch_submissions(log) == {}


def test_openai_create_and_file_errors():
    with mock() as (url, client, clock):
        good = upload(client, jsonl([line("a")]))
        other = upload(client, b"{}", purpose="fine-tune")
        base = {"input_file_id": good["id"], "endpoint": "/v1/chat/completions", "completion_window": "24h"}
        cases = [
            ({**base, "input_file_id": "file-nope"}, 404),
            ({**base, "endpoint": "/v1/embeddings"}, 400),
            ({**base, "completion_window": "1h"}, 400),
            ({**base, "input_file_id": other["id"]}, 400),
            ({k: v for k, v in base.items() if k != "endpoint"}, 400),
            ({**base, "metadata": {"k": 1}}, 400),
        ]
        for body, status in cases:
            r = client.post("/batches", json=body)
            assert r.status_code == status, body
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
        assert client.post("/files", data={"purpose": "batch"}, files={"x": ("a", b"1")}).status_code == 400
        assert client.post("/files", data={"purpose": "nope"}, files={"file": ("a", b"1")}).status_code == 400
        assert client.get("/batches/batch_nope").status_code == 404
        assert client.get("/files/file-nope/content").status_code == 404
        r = client.delete(f"/files/{good['id']}")
        assert FileDeleted.model_validate(r.json()).deleted and client.get(f"/files/{good['id']}").status_code == 404
        assert client.get("/files", params={"purpose": "fine-tune"}).json()["data"] == [other]


def test_openai_list_is_newest_first_with_cursor_pages():
    with mock() as (url, client, clock):
        made = []
        for k in range(5):
            made.append(create(client, [f"l{k}"])["id"])
            clock.advance(1)
        pages, after = [], None
        while True:
            params = {"limit": 2, **({"after": after} if after else {})}
            page = client.get("/batches", params=params).json()
            assert page["object"] == "list" and page["first_id"] == page["data"][0]["id"]
            for b in page["data"]:
                Batch.model_validate(b)
            pages.append([b["id"] for b in page["data"]])
            after = page["last_id"]
            if not page["has_more"]:
                break
        assert client.get("/batches", params={"limit": 0}).status_code == 400
        assert client.get("/batches", params={"after": "batch_nope"}).status_code == 400
    assert pages == [made[4:2:-1], made[2:0:-1], made[:1]]


# --- Anthropic ---------------------------------------------------------------------------


def test_anthropic_lifecycle_in_progress_then_ended_with_results():
    ids = [f"a_{i}" for i in range(4)]
    with mock(batch_start_delay_s=1, batch_rate=2, batch_finalize_s=0.5) as (url, client, clock):
        b = create_anthropic(client, ids)
        assert b["id"].startswith("msgbatch_") and b["type"] == "message_batch"
        assert b["processing_status"] == "in_progress" and b["results_url"] is None and b["ended_at"] is None
        assert b["request_counts"] == {"processing": 4, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        assert b["created_at"] == "2027-01-15T08:00:00.000000Z" and b["expires_at"] == "2027-01-16T08:00:00.000000Z"
        clock.advance(2)  # 2 of 4 done: counts stay "processing" until the end, as documented
        b = get_anthropic(client, b["id"])
        assert b["processing_status"] == "in_progress" and b["request_counts"]["processing"] == 4
        early = client.get(f"/messages/batches/{b['id']}/results", headers=AH)
        assert early.status_code == 400 and early.json()["error"]["type"] == "invalid_request_error"
        clock.advance(1)  # all done at 3 s, but finalizing lasts 0.5 s
        assert get_anthropic(client, b["id"])["processing_status"] == "in_progress"
        clock.advance(0.5)
        b = get_anthropic(client, b["id"])
        assert b["processing_status"] == "ended" and b["ended_at"] == "2027-01-15T08:00:03.500000Z"
        assert b["results_url"] == f"{url.removesuffix('/v1')}/v1/messages/batches/{b['id']}/results"
        assert b["request_counts"] == {"processing": 0, "succeeded": 4, "errored": 0, "canceled": 0, "expired": 0}
        results = results_anthropic(client, b)
    assert sorted(results) == sorted(ids)
    for cid, result in results.items():
        assert result["type"] == "succeeded" and result["message"]["content"][0]["text"] == f"echo: hello {cid}"


def test_anthropic_errors_expiry_and_cancel(tmp_path: Path):
    log = tmp_path / "requests.jsonl"  # no --batch-log: the events go to the request log
    ids = [f"x{i}" for i in range(30)]
    with mock(batch_error_rate=0.4, batch_error_status=500, log=str(log)) as (url, client, clock):
        results = results_anthropic(client, get_anthropic(client, create_anthropic(client, ids)["id"]))
        failed = {i for i in ids if draw_error(0, i, 1, 0.4)}
        assert 0 < len(failed) < 30 and {c for c, r in results.items() if r["type"] == "errored"} == failed
        err = results[sorted(failed)[0]]["error"]
        assert err["type"] == "error" and err["error"]["type"] == "api_error"
    with mock(batch_rate=1, batch_expiry_s=2.5, batch_finalize_s=1) as (url, client, clock):
        expiring = create_anthropic(client, ["p", "q", "r", "s"])
        cancelled = create_anthropic(client, ["t", "u", "v"])
        clock.advance(1.5)
        r = client.post(f"/messages/batches/{cancelled['id']}/cancel", headers=AH)
        assert r.status_code == 200 and r.json()["processing_status"] == "canceling"
        assert r.json()["cancel_initiated_at"] == "2027-01-15T08:00:01.500000Z"
        clock.advance(1)
        e, c = get_anthropic(client, expiring["id"]), get_anthropic(client, cancelled["id"])
        counts = url.stats()["batches"]["anthropic"]
        assert client.post(f"/messages/batches/{c['id']}/cancel", headers=AH).status_code == 400
        e_results, c_results = results_anthropic(client, e), results_anthropic(client, c)
    assert e["processing_status"] == "ended" and e["ended_at"] == "2027-01-15T08:00:02.500000Z"
    assert e["request_counts"] == {"processing": 0, "succeeded": 2, "errored": 0, "canceled": 0, "expired": 2}
    assert c["request_counts"] == {"processing": 0, "succeeded": 1, "errored": 0, "canceled": 2, "expired": 0}
    assert sorted(r["type"] for r in e_results.values()) == ["expired", "expired", "succeeded", "succeeded"]
    assert sorted(r["type"] for r in c_results.values()) == ["canceled", "canceled", "succeeded"]
    assert counts["expired"] == 2 and counts["canceled"] == 2 and counts["succeeded"] == 3
    logged = read_batch_results(log, provider="anthropic")
    assert {c for c, v in logged.items() if v[0][1] == "errored"} == failed
    kinds = {json.loads(x).get("kind") for x in log.read_text().splitlines()}
    assert {"message_batches", "message_batch_results"} <= kinds  # request-log lines sit beside the events


def test_anthropic_validation_and_headers(tmp_path: Path):
    one = [{"custom_id": "ok", "params": messages_params("x")}]
    with mock(anthropic_batch_max_requests=2, anthropic_batch_max_bytes=2000) as (url, client, clock):
        r = client.post("/messages/batches", json={"requests": one}, headers={"anthropic-version": "2023-06-01"})
        assert r.status_code == 401 and r.json() == {"type": "error", "error": {
            "type": "authentication_error", "message": "x-api-key header is required"}}
        r = client.post("/messages/batches", json={"requests": one}, headers={"x-api-key": "k"})
        assert r.status_code == 400
        bad = [
            {"requests": []},
            {"requests": one * 2},  # duplicate custom_id
            {"requests": [{"custom_id": "has space", "params": messages_params("x")}]},
            {"requests": [{"custom_id": "a", "params": "x"}]},
            {"requests": [{"custom_id": c, "params": messages_params("x")} for c in "abc"]},  # over 2
            {"nothing": 1},
        ]
        for body in bad:
            r = client.post("/messages/batches", json=body, headers=AH)
            assert r.status_code == 400 and r.json()["error"]["type"] == "invalid_request_error", body
        assert "Duplicate custom_id 'ok'" in client.post("/messages/batches", json=bad[1], headers=AH).text
        big = [{"custom_id": "big", "params": messages_params("y" * 3000)}]
        r = client.post("/messages/batches", json={"requests": big}, headers=AH)
        assert r.status_code == 413 and r.json()["error"]["type"] == "request_too_large"
        # params are checked when processed: a bad one errors with invalid_request_error
        mixed = [{"custom_id": "good", "params": messages_params("x")},
                 {"custom_id": "nomax", "params": {"model": "m", "messages": [{"role": "user", "content": "x"}]}}]
        b = client.post("/messages/batches", json={"requests": mixed}, headers=AH).json()
        results = results_anthropic(client, get_anthropic(client, b["id"]))
        stats = url.stats()["batches"]["anthropic"]
        assert client.get("/messages/batches/msgbatch_nope", headers=AH).status_code == 404
    assert results["good"]["type"] == "succeeded" and results["nomax"]["type"] == "errored"
    assert results["nomax"]["error"]["error"]["type"] == "invalid_request_error"
    assert stats["rejected"] == 8 and stats["created"] == 1


def test_anthropic_list_pages_and_delete():
    with mock() as (url, client, clock):
        made = []
        for k in range(5):
            made.append(create_anthropic(client, [f"m{k}"])["id"])
            clock.advance(1)
        newest = made[::-1]
        first = client.get("/messages/batches", params={"limit": 2}, headers=AH).json()
        assert [b["id"] for b in first["data"]] == newest[:2] and first["has_more"] is True
        assert first["first_id"] == newest[0] and first["last_id"] == newest[1]
        nxt = client.get("/messages/batches", params={"limit": 2, "after_id": first["last_id"]}, headers=AH).json()
        assert [b["id"] for b in nxt["data"]] == newest[2:4] and nxt["has_more"] is True
        last = client.get("/messages/batches", params={"limit": 2, "after_id": nxt["last_id"]}, headers=AH).json()
        assert [b["id"] for b in last["data"]] == newest[4:] and last["has_more"] is False
        back = client.get("/messages/batches", params={"limit": 2, "before_id": last["first_id"]}, headers=AH).json()
        assert [b["id"] for b in back["data"]] == newest[2:4] and back["has_more"] is True
        top = client.get("/messages/batches", params={"limit": 5, "before_id": newest[1]}, headers=AH).json()
        assert [b["id"] for b in top["data"]] == newest[:1] and top["has_more"] is False
        assert client.get("/messages/batches", params={"limit": 1001}, headers=AH).status_code == 400
        r = client.delete(f"/messages/batches/{made[0]}", headers=AH)
        assert DeletedMessageBatch.model_validate(r.json()).id == made[0]
        assert client.get(f"/messages/batches/{made[0]}", headers=AH).status_code == 404


# --- the SDKs as clients, the CLI, the log -------------------------------------------------


def test_openai_and_anthropic_sdks_drive_the_mock():
    with mock(batch_start_delay_s=1, batch_finalize_s=0.5, batch_error_rate=0.5, seed=3) as (url, client, clock):
        oc = openai.OpenAI(base_url=url, api_key="sk-local", max_retries=0)
        f = oc.files.create(file=("in.jsonl", jsonl([line(f"o{i}") for i in range(8)])), purpose="batch")
        b = oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
        assert b.status == "validating"
        clock.advance(1)
        assert oc.batches.retrieve(b.id).status == "finalizing"
        clock.advance(0.5)
        b = oc.batches.retrieve(b.id)
        assert b.status == "completed" and b.request_counts.total == 8
        out = [json.loads(x) for x in oc.files.content(b.output_file_id).text.splitlines()]
        errs = [json.loads(x) for x in oc.files.content(b.error_file_id).text.splitlines()]
        assert len(out) == b.request_counts.completed and len(errs) == b.request_counts.failed > 0
        more = [oc.batches.create(input_file_id=f.id, endpoint="/v1/chat/completions", completion_window="24h")
                for _ in range(3)]
        assert [x.id for x in oc.batches.list(limit=2)] == [m.id for m in more[::-1]] + [b.id]  # auto-paginated
        assert oc.batches.cancel(more[0].id).status == "cancelling"

        ac = anthropic.Anthropic(base_url=url.removesuffix("/v1"), api_key="sk-ant-local", max_retries=0)
        mb = ac.messages.batches.create(requests=[{"custom_id": f"n{i}", "params": messages_params("x")}
                                                  for i in range(6)])
        assert mb.processing_status == "in_progress"
        clock.advance(1.5)
        mb = ac.messages.batches.retrieve(mb.id)
        assert mb.processing_status == "ended" and mb.results_url
        got = {r.custom_id: r.result.type for r in ac.messages.batches.results(mb.id)}
        assert len(got) == 6 and set(got.values()) <= {"succeeded", "errored"}
        assert sum(v == "errored" for v in got.values()) == mb.request_counts.errored
        assert [x.id for x in ac.messages.batches.list(limit=1)] == [mb.id]


def test_cli_flags_reach_the_options_and_a_process(tmp_path: Path):
    args = vars(build_parser().parse_args(["--batch-rate", "0", "--batch-error-status", "400",
                                           "--batch-expiry-s", "2.5", "--anthropic-batch-max-requests", "7"]))
    args.pop("port"), args.pop("max_seconds")
    o = MockOptions(**args)
    assert (o.batch_rate, o.batch_error_status, o.batch_expiry_s, o.anthropic_batch_max_requests) == (0, 400, 2.5, 7)
    assert _argv({"batch_start_delay_s": 0.1, "batch_log": "x"}) == ["--batch-start-delay-s", "0.1", "--batch-log", "x"]
    with pytest.raises(ValueError, match="batch_error_rate"):
        MockOptions(batch_error_rate=1.5)
    with pytest.raises(SystemExit):
        main(["--batch-rate", "-1"])
    log = tmp_path / "b.jsonl"
    with start_mock_process(batch_start_delay_s=0, batch_rate=0, batch_finalize_s=0, batch_log=str(log),
                            max_seconds=30) as url:
        with httpx.Client(base_url=url, timeout=5) as client:
            b = create(client, ["p1", "p2"])
            assert get(client, b["id"])["status"] == "completed"
    assert url.final_stats["batches"]["succeeded"] == 2 and url.final_stats["batches"]["files_uploaded"] == 1
    assert read_batch_results(log) == {"p1": [(b["id"], "succeeded")], "p2": [(b["id"], "succeeded")]}


def test_log_reader_names_a_bad_line(tmp_path: Path):
    log = tmp_path / "bad.jsonl"
    log.write_text('{"event": "batch_result", "provider": "openai", "batch_id": "b", "custom_id": "c", '
                   '"type": "succeeded"}\n{"t": 1, "kind": "ok"}\nnot json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:3"):
        read_batch_results(log)
    log.write_text(log.read_text().replace("not json\n", ""))
    assert read_batch_results(log) == {"c": [("b", "succeeded")]}
