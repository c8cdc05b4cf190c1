"""The LLM judge over Anthropic's native Messages API.

Protocol (docs.anthropic.com, "Messages", ``POST {base_url}/v1/messages``): headers
``x-api-key``, ``anthropic-version: 2023-06-01`` and ``content-type: application/json``; the
body holds ``model``, ``max_tokens``, ``temperature``, ``system`` (a list of text blocks),
``messages`` ([{role: "user", content: [blocks]}]), ``tools`` and ``tool_choice``.

Structured output ("Tool use", forced tool choice): the request declares one tool,
``submit_verdict`` (or ``submit_chunk`` for chunk summaries), whose ``input_schema`` is the
rubric's JSON schema (:data:`rubric.VERDICT_SCHEMA`, :data:`rubric.CHUNK_SCHEMA`), and
forces it with ``tool_choice = {"type": "tool", "name": ...}``; the answer is a ``tool_use``
content block whose ``input`` is the object. It is re-encoded as JSON and checked by the
same parsers as the OpenAI judge's (:func:`.judgement.parse_judgement`,
:func:`rubric.parse_chunk`).

Prompt caching ("Prompt caching"): the system block (the rubric and the data rule, the long
prefix shared by every request; with the tools before it, as the API orders the prefix)
carries ``cache_control = {"type": "ephemeral"}``. ``usage`` reports ``input_tokens`` (not
cached), ``cache_creation_input_tokens`` and ``cache_read_input_tokens``: the three add up to
the prompt; reads are priced at ``price.cached_input``, writes at ``price.cache_write``
(``[anthropic.prices]``, defaults from Anthropic's price list: 0.1x and 1.25x input).

Rate limits and errors ("Rate limits", "Errors"): ``retry-after`` and the
``anthropic-ratelimit-{requests,tokens}-{remaining,reset}`` headers feed the shared limiter
(:mod:`.limits`: remaining 0 pauses every request until the RFC 3339 reset time); 429, 529
(overloaded) and other 5xx are retried with backoff; 400/401/403/404 fail at once. Everything
else (retries, the response cache, in-flight de-duplication, ensembles, evidence, budget,
redaction of the key in every error) is :class:`.openai.OpenAIJudge`'s.
"""

from __future__ import annotations

from typing import Any

import httpx
import msgspec

from ..models import Session
from ..models import Usage
from . import rubric
from .openai import OpenAIJudge, _count, _Failure

__all__ = ["AnthropicJudge", "ANTHROPIC_VERSION", "DEFAULT_BASE_URL", "tool_name"]

DEFAULT_BASE_URL = "https://api.anthropic.com"
#: The ``anthropic-version`` header value (docs.anthropic.com "Versions").
ANTHROPIC_VERSION = "2023-06-01"
_EPHEMERAL = {"type": "ephemeral"}


def tool_name(schema: dict[str, Any]) -> str:
    """The forced tool's name for a rubric schema: ``submit_verdict`` for the verdict,
    ``submit_<name>`` otherwise (tool names match ``^[a-zA-Z0-9_-]{1,64}$``)."""
    if schema is rubric.VERDICT_SCHEMA:
        return "submit_verdict"
    name = str(schema.get("name", "answer")).removeprefix("streamgrade_")
    return ("submit_" + "".join(c if c.isalnum() or c in "_-" else "_" for c in name))[:64]


def _image_block(path: str) -> dict[str, Any]:
    """A JPEG frame as a base64 ``image`` content block. Raises FrameError naming the file
    (:func:`..extract.frames.image_data_url`)."""
    from ..extract.frames import image_data_url

    data = image_data_url(path).split(",", 1)[1]
    return {"type": "image", "source": {"type": "base64", "media_type": "image/jpeg", "data": data}}


class AnthropicJudge(OpenAIJudge):
    """Judge sessions with Anthropic's Messages API (``config.anthropic``; the same keys
    and the same behaviour as :class:`.openai.OpenAIJudge`, see the module docstring).

    ``api_key`` (from ``ANTHROPIC_API_KEY``) is sent only as ``x-api-key``; ``transport``,
    ``sleep``, ``rng`` and ``clock`` are injected as for the OpenAI judge (tests).
    """

    KIND = "anthropic"
    DEFAULT_BASE_URL = DEFAULT_BASE_URL
    PATH = "/v1/messages"

    def _settings(self) -> Any:
        return self.config.anthropic

    def _auth_headers(self) -> dict[str, str]:
        headers = {"anthropic-version": ANTHROPIC_VERSION}
        if self._key is not None:
            headers["x-api-key"] = self._key.reveal()
        return headers

    def _body(self, session: Session, prompt: str, schema: dict[str, Any], images: list[str] = (), *,
              model: str | None = None, variant: str = "default", sample: int = 0,
              system: str | None = None) -> dict[str, Any]:
        """The Messages request body: the cached system block, the user's text (the rubric's
        prompt with the session data delimited) then the frames as base64 image blocks, and
        the forced tool whose input schema is ``schema["schema"]``. ``sample`` has no seed to
        go to: samples differ only at ``temperature > 0`` (and are distinct cache keys)."""
        ac = self._settings()
        name = tool_name(schema)
        text = system if system is not None else rubric.system_prompt(session, variant)
        body: dict[str, Any] = {
            "model": model or ac.model,
            "max_tokens": ac.max_tokens,
            "temperature": ac.temperature,
            "system": [{"type": "text", "text": text, "cache_control": _EPHEMERAL}],
            "messages": [{"role": "user",
                          "content": [{"type": "text", "text": prompt}] + [_image_block(p) for p in images]}],
            "tools": [{"name": name, "description": f"Submit the {name.removeprefix('submit_')} as the rubric asks.",
                       "input_schema": schema["schema"]}],
            "tool_choice": {"type": "tool", "name": name},
        }
        if sample:
            body["metadata"] = {"user_id": f"streamgrade-sample-{sample}"}
        return body

    def _content(self, data: Any, resp: httpx.Response) -> str:
        """The ``input`` of the first ``tool_use`` block, as JSON text; _Failure (retried)
        when there is none (a refusal or plain text)."""
        blocks = data.get("content") if isinstance(data, dict) else None
        for block in blocks if isinstance(blocks, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_use" and isinstance(block.get("input"), dict):
                return msgspec.json.encode(block["input"]).decode()
        stop = data.get("stop_reason") if isinstance(data, dict) else None
        raise _Failure(f"response has no tool_use block (stop_reason {stop!r}): {self._snippet(resp)}")

    def _add_usage(self, usage: Usage, reported: Any, model: str) -> int | None:
        """Count ``input_tokens + cache_creation_input_tokens + cache_read_input_tokens`` as
        the prompt (reads also in ``usage.cached_tokens``) and ``output_tokens``; return the
        prompt tokens (None: no usage)."""
        if not isinstance(reported, dict):
            return None
        fresh = _count(reported.get("input_tokens"))
        written = _count(reported.get("cache_creation_input_tokens"))
        read = _count(reported.get("cache_read_input_tokens"))
        prompt = fresh + written + read
        self._charge(usage, model, prompt=prompt, completion=_count(reported.get("output_tokens")),
                     cached=read, cache_write=written)
        return prompt
