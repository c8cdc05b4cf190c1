"""The judge's aiohttp transport (openai.http_client = "aiohttp") takes its proxy from the
environment once per host (HTTP_PROXY, NO_PROXY), not per request, and never reads
~/.netrc: a proxy on 127.0.0.1 that the test starts sees the absolute-URI request."""

from __future__ import annotations

import http.server
import threading

import anyio
import httpx
import pytest

from streamgrade.judges.transport import _env_proxy, network_transport


class _Proxy(http.server.BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = b'{"ok": true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy():
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Proxy)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    _Proxy.seen = []
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_env_proxy_follows_no_proxy(monkeypatch: pytest.MonkeyPatch):
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy", "ALL_PROXY",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    assert _env_proxy(httpx.URL("https://api.example.com/v1")) is None
    monkeypatch.setenv("HTTPS_PROXY", "http://user:secret@proxy.example:3128")
    p = _env_proxy(httpx.URL("https://api.example.com/v1"))
    assert p is not None and str(p.url) == "http://proxy.example:3128" and p.auth == ("user", "secret")
    monkeypatch.setenv("NO_PROXY", "api.example.com")
    assert _env_proxy(httpx.URL("https://api.example.com/v1")) is None


def test_requests_go_through_the_environment_proxy(proxy: str, monkeypatch: pytest.MonkeyPatch):
    pytest.importorskip("httpx_aiohttp")
    for name in ("HTTPS_PROXY", "NO_PROXY", "https_proxy", "no_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy)
    monkeypatch.setenv("http_proxy", proxy)

    async def go() -> list[int]:
        transport = network_transport("aiohttp", 4)
        assert transport is not None
        async with httpx.AsyncClient(transport=transport, timeout=10) as client:
            codes = []
            for _ in range(3):
                resp = await client.post("http://judge.invalid/v1/chat/completions", content=b"{}")
                codes.append(resp.status_code)
            return codes

    assert anyio.run(go) == [200, 200, 200]
    assert _Proxy.seen == ["http://judge.invalid/v1/chat/completions"] * 3  # the proxy got them, by absolute URI
