"""The metrics endpoint of ``watch``: a small HTTP server in a daemon thread.

- ``GET /metrics``: the Prometheus text format (or OpenMetrics when the scraper asks for it
  in ``Accept``; gzip when it accepts it), by prometheus-client's WSGI app over the
  pipeline's own registry (:class:`~streamgrade.ops.metrics.PipelineMetrics`).
- ``GET /healthz``: ``200`` with ``ok: <reason>`` while the pipeline makes progress or is
  idle, ``503`` with ``stuck: <reason>`` when sessions are in flight and nothing was found
  or finished for longer than the watchdog's bound
  (:class:`~streamgrade.daemon.ProgressWatch`, the same check that stops the systemd
  watchdog pings). Plain text, one line.
- anything else: 404; methods other than GET: 405.

A thread of its own (not the event loop) so that it answers even when the loop is wedged,
which is when ``/healthz`` matters. It binds ``host`` (default 127.0.0.1: this machine
only) and ``port`` (0: a free port, see :attr:`MetricsServer.port`). No request is logged.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from ..daemon import Health


class _QuietHandler(WSGIRequestHandler):
    """No access log on stderr (the daemon's stderr is its JSON log)."""

    def log_message(self, format: str, *args: object) -> None:
        pass


def make_app(registry: CollectorRegistry, health: Callable[[], Health]) -> Callable:
    """The WSGI app: ``/metrics`` from ``registry``, ``/healthz`` from ``health()``."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path, method = environ.get("PATH_INFO", "/"), environ.get("REQUEST_METHOD", "GET")
        if method != "GET":
            start_response("405 Method Not Allowed", [("Allow", "GET"), ("Content-Type", "text/plain")])
            return [b"use GET\n"]
        if path == "/metrics":
            return metrics_app(environ, start_response)
        if path == "/healthz":
            h = health()
            body = f"{'ok' if h.healthy else 'stuck'}: {h.reason}\n".encode()
            start_response("200 OK" if h.healthy else "503 Service Unavailable",
                           [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")])
            return [body]
        if path == "/":
            start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"streamgrade watch: /metrics (Prometheus), /healthz\n"]
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found; try /metrics or /healthz\n"]

    return app


class MetricsServer:
    """Serve :func:`make_app` on ``host:port`` in a daemon thread from :meth:`start` to
    :meth:`close` (also a context manager). :meth:`start` raises OSError when the address
    cannot be bound (port in use, address not on this machine); ``host`` may be an IPv4
    or IPv6 address or a name."""

    def __init__(self, registry: CollectorRegistry, health: Callable[[], Health], *, host: str = "127.0.0.1",
                 port: int = 0):
        self.registry = registry
        self.health = health
        self.host = host
        self.port = port
        self._httpd: ThreadingWSGIServer | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> "MetricsServer":
        family, addr = _family(self.host, self.port)

        class Server(ThreadingWSGIServer):
            address_family = family

        self._httpd = make_server(addr, self.port, make_app(self.registry, self.health), Server,
                                  handler_class=_QuietHandler)
        self.port = self._httpd.server_port
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="streamgrade-metrics", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def close(self) -> None:
        """Stop serving and free the port (idempotent)."""
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "MetricsServer":
        return self.start() if self._httpd is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _family(host: str, port: int) -> tuple[socket.AddressFamily, str]:
    """The address family and address to bind for ``host`` (IPv6 when it is one)."""
    info = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, _, _, _, sockaddr = info[0]
    return family, sockaddr[0]


__all__ = ["MetricsServer", "make_app"]
