"""Result lines of both providers' batch APIs (judges/batch_api.py), in their documented
shapes: OpenAI's output/error file lines and Anthropic's results lines."""

from __future__ import annotations

import json

import pytest

from streamgrade.judges.batch_api import parse_anthropic_line, parse_openai_line

BODY = {"choices": [{"message": {"content": "{}"}}], "usage": {"prompt_tokens": 3, "completion_tokens": 1}}


def test_openai_succeeded_line_keeps_the_response_body():
    o = parse_openai_line({"id": "batch_req_1", "custom_id": "sg-1", "error": None,
                           "response": {"status_code": 200, "request_id": "r", "body": BODY}})
    assert o.custom_id == "sg-1" and o.state == "succeeded" and json.loads(o.result) == BODY


@pytest.mark.parametrize("status,retryable", [(400, False), (401, False), (404, False), (429, True), (500, True),
                                              (503, True)])
def test_openai_error_status_lines(status, retryable):
    o = parse_openai_line({"custom_id": "sg-2", "error": None, "response": {
        "status_code": status, "request_id": "r", "body": {"error": {"message": "Invalid 'messages'", "type": "x"}}}})
    assert o.state == "errored" and o.retryable is retryable
    assert f"HTTP {status}" in o.error and "Invalid 'messages'" in o.error


@pytest.mark.parametrize("code,state", [("batch_expired", "expired"), ("batch_cancelled", "canceled"),
                                        ("request_timeout", "errored")])
def test_openai_error_code_lines(code, state):
    o = parse_openai_line({"custom_id": "sg-3", "response": None, "error": {"code": code, "message": "m"}})
    assert o.state == state and o.retryable and code in o.error


def test_openai_lines_without_custom_id_or_content():
    assert parse_openai_line({"response": {"status_code": 200, "body": BODY}}) is None
    assert parse_openai_line(["not", "an", "object"]) is None
    o = parse_openai_line({"custom_id": "sg-4"})
    assert o.state == "errored" and o.retryable


def test_anthropic_result_types():
    msg = {"id": "msg_1", "type": "message", "content": [], "usage": {"input_tokens": 1, "output_tokens": 1}}
    o = parse_anthropic_line({"custom_id": "a", "result": {"type": "succeeded", "message": msg}})
    assert o.state == "succeeded" and json.loads(o.result) == msg
    for kind in ("expired", "canceled"):
        o = parse_anthropic_line({"custom_id": "a", "result": {"type": kind}})
        assert o.state == kind and o.retryable
    bad = parse_anthropic_line({"custom_id": "a", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "invalid_request_error", "message": "max_tokens: too large"}}}})
    assert bad.state == "errored" and not bad.retryable and "max_tokens: too large" in bad.error
    flaky = parse_anthropic_line({"custom_id": "a", "result": {"type": "errored", "error": {
        "type": "error", "error": {"type": "api_error", "message": "internal"}}}})
    assert flaky.state == "errored" and flaky.retryable
    assert parse_anthropic_line({"result": {"type": "succeeded"}}) is None
    odd = parse_anthropic_line({"custom_id": "a", "result": {"type": "succeeded"}})  # no message
    assert odd.state == "errored" and odd.retryable
