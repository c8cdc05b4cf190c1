"""The HTTP transport under the LLM judge's httpx client (``openai.http_client``)."""

from __future__ import annotations

import logging

import httpx

log = logging.getLogger("streamgrade.judge")


def network_transport(kind: str, max_concurrency: int) -> httpx.AsyncBaseTransport | None:
    """The HTTP transport under the judge's httpx client (``openai.http_client``).

    ``"aiohttp"`` (default): httpx's API over aiohttp's connection pool (the httpx-aiohttp
    package's ``AiohttpTransport``). httpx's own pool (httpcore) spends CPU per request that
    grows with the number of requests in flight (encode/httpx#3215): measured here against
    the local mock at concurrency 50 it tops out at 200-300 requests/s, where the aiohttp
    transport does about 3,000 (scripts/bench_dispatch.py). ``"httpx"``: httpx's own
    transport (None here). Falls back to ``"httpx"`` with a warning when httpx-aiohttp is
    not installed."""
    if kind != "aiohttp":
        return None
    try:
        import aiohttp
        from httpx_aiohttp import AiohttpTransport
    except ImportError:
        log.warning("openai.http_client = 'aiohttp' needs the httpx-aiohttp package; using httpx's own transport")
        return None

    class _Transport(AiohttpTransport):
        """AiohttpTransport whose aiohttp errors all surface as httpx errors (a malformed
        response is an ``httpx.RemoteProtocolError``, so the judge retries it as it would
        with httpx), with a pool as large as the judge's concurrency. (Request mocks that
        patch httpx's own pool, like respx, need ``http_client = "httpx"``.)

        The proxy of a host comes from the environment (HTTP(S)_PROXY, NO_PROXY: aiohttp's
        own rules) once, not per request: aiohttp's ``trust_env`` looked it up on every
        request and also read ~/.netrc in a worker thread each time, a thread hand-off per
        request measured at ~5% of the event loop's time at 150 requests/s (httpx does
        not read .netrc unless asked)."""

        _proxies: dict[tuple[str, str], httpx.Proxy | None] = {}

        async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
            key = (request.url.scheme, request.url.host)
            if key not in self._proxies:
                self._proxies[key] = _env_proxy(request.url)
            self.proxy = self._proxies[key]  # read before the request's first await
            try:
                return await super().handle_async_request(request)
            except aiohttp.ClientError as exc:
                raise httpx.RemoteProtocolError(f"{type(exc).__name__}: {exc}", request=request) from exc

    size = max(100, max_concurrency)

    def session() -> aiohttp.ClientSession:
        # the environment's proxies are applied per host by _Transport (see its docstring)
        connector = aiohttp.TCPConnector(limit=size, keepalive_timeout=5.0, ssl=httpx.create_ssl_context())
        return aiohttp.ClientSession(connector=connector, trust_env=False)

    return _Transport(limits=httpx.Limits(max_connections=size, max_keepalive_connections=size), client=session)


def _env_proxy(url: httpx.URL) -> httpx.Proxy | None:
    """The proxy the environment names for ``url`` (HTTP_PROXY, HTTPS_PROXY, NO_PROXY, as
    aiohttp's ``trust_env`` reads them), or None."""
    from aiohttp.helpers import get_env_proxy_for_url
    from yarl import URL

    try:
        proxy, auth = get_env_proxy_for_url(URL(str(url)))
    except LookupError:
        return None
    return httpx.Proxy(str(proxy), auth=(auth.login, auth.password) if auth else None)


__all__ = ["network_transport"]
