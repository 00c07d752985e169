"""The HTTP side of ``image-factory run``: health, readiness, metrics and webhooks.

stdlib ``ThreadingHTTPServer`` in a daemon thread; every request gets its own thread, so a
slow scrape never delays a webhook. Routes:

- ``GET /healthz``: 200 ``ok`` while ``alive()`` is true, else 503 (the kubelet restarts us);
- ``GET /readyz``: 200/503 from ``ready() -> (bool, details)``, the details as JSON;
- ``GET /metrics``: Prometheus text format of the loop's own registry;
- ``POST /hooks/git`` (provider detected from the headers), ``/hooks/github``,
  ``/hooks/gitlab``, ``/hooks/gitea`` (provider fixed by the path). 404 when no webhook
  secret is configured: an unauthenticated trigger endpoint is never served.

Requests without ``Content-Length`` get 411, bodies over the limit 413 (read no further),
idle connections are dropped after ``request_timeout`` seconds, and at most
``max_connections`` are served at once (503 beyond).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..logging import fields, get_logger
from .metrics import Metrics
from .webhooks import PROVIDERS, WebhookReceiver, WebhookResult

log = get_logger("server")

HOOK_PREFIX = "/hooks/"


def parse_listen(text: str) -> tuple[str, int]:
    """``ADDR:PORT``, ``:PORT`` (all interfaces), ``[::1]:PORT`` -> (host, port)."""
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"'{text}' is not ADDR:PORT")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type, app: HttpServer) -> None:
        if ":" in address[0]:
            import socket
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)
        self.app = app
        self._slots = threading.BoundedSemaphore(app.max_connections)

    def process_request(self, request: Any, client_address: Any) -> None:
        # One thread per connection, but never more than max_connections: a flood of idle or
        # slow connections must not exhaust threads. Over the cap: 503 and close, no thread.
        if not self._slots.acquire(blocking=False):
            try:
                request.sendall(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            except OSError:
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "image-factory"
    sys_version = ""
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        self.timeout = self.server.app.request_timeout
        super().setup()

    # -- routing -------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/healthz":
            alive = _call(app.alive, False)
            self._send(200 if alive else 503, b"ok\n" if alive else b"not alive\n", "text/plain; charset=utf-8")
        elif path == "/readyz":
            ready, details = _call(app.ready, (False, {"error": "readiness check failed"}))
            body = json.dumps({"ready": bool(ready), **details}, default=str).encode() + b"\n"
            self._send(200 if ready else 503, body, "application/json")
        elif path == "/metrics":
            self._send(200, app.metrics.exposition(), app.metrics.content_type)
        elif path.startswith(HOOK_PREFIX):
            self._send(405, b"use POST\n", "text/plain; charset=utf-8", extra={"Allow": "POST"})
        else:
            self._send(404, b"not found\n", "text/plain; charset=utf-8")

    def do_HEAD(self) -> None:  # noqa: N802
        self.do_GET()

    def do_POST(self) -> None:  # noqa: N802
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if not path.startswith(HOOK_PREFIX):
            self._drain_and(405 if path in ("/healthz", "/readyz", "/metrics") else 404, b"not found\n")
            return
        name = path[len(HOOK_PREFIX):]
        if name not in ("git", *PROVIDERS):
            self._drain_and(404, b"no such webhook endpoint\n")
            return
        receiver = app.webhooks
        if receiver is None:
            self._drain_and(404, b"webhooks are disabled: no webhook secret is configured\n")
            return
        length = self.headers.get("Content-Length")
        if length is None or not length.strip().isdigit():
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
            self._send(411, b"Content-Length required\n", "text/plain; charset=utf-8")
            return
        size = int(length)
        if size > receiver.max_body:
            self.close_connection = True  # do not read (or wait for) the rest
            result = WebhookResult(413, "too-large", f"body over {receiver.max_body} bytes")
            app.metrics.webhooks.labels("unknown", result.result).inc()
            self._send(413, result.body(), "application/json")
            return
        body = self.rfile.read(size)
        if len(body) < size:
            self.close_connection = True
            self._send(400, b"body shorter than Content-Length\n", "text/plain; charset=utf-8")
            return
        result = receiver.handle(dict(self.headers.items()), body, None if name == "git" else name)
        app.metrics.webhooks.labels(result.provider or "unknown", result.result).inc()
        self._send(result.status, result.body(), "application/json")

    # -- helpers -------------------------------------------------------------------------------

    def _drain_and(self, status: int, body: bytes) -> None:
        length = self.headers.get("Content-Length", "")
        if length.isdigit() and int(length) <= 64 * 1024:
            self.rfile.read(int(length))
        else:
            self.close_connection = True
        self._send(status, body, "text/plain; charset=utf-8")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for key, value in (extra or {}).items():
            self.send_header(key, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - http.server's signature
        log.debug(format % args, extra=fields(client=self.client_address[0]))

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        path = self.path.split("?", 1)[0]
        status = code.value if isinstance(code, HTTPStatus) else code
        if path in ("/healthz", "/readyz", "/metrics"):
            log.debug(f"{self.command} {path} {status}")
        else:
            log.info(f"{self.command} {path} {status}", extra=fields(client=self.client_address[0]))


def _call(fn: Callable[[], Any], default: Any) -> Any:
    try:
        return fn()
    except Exception:  # noqa: BLE001 - a probe that raises answers "no", and says why in the log
        log.exception("health/readiness check raised")
        return default


class HttpServer:
    """``HttpServer(("127.0.0.1", 0), metrics=m, alive=..., ready=..., webhooks=receiver).start()``;
    ``.port`` is the bound port (useful with port 0), ``.stop()`` closes it."""

    def __init__(self, address: tuple[str, int], *, metrics: Metrics,
                 alive: Callable[[], bool] = lambda: True,
                 ready: Callable[[], tuple[bool, dict[str, Any]]] = lambda: (True, {}),
                 webhooks: WebhookReceiver | None = None, request_timeout: float = 10.0,
                 max_connections: int = 64) -> None:
        self.metrics = metrics
        self.max_connections = max_connections
        self.alive = alive
        self.ready = ready
        self.webhooks = webhooks
        self.request_timeout = request_timeout
        self._httpd = _Server(address, _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.address[1]

    @property
    def url(self) -> str:
        host, port = self.address
        host = "127.0.0.1" if host in ("0.0.0.0", "") else (f"[{host}]" if ":" in host else host)
        return f"http://{host}:{port}"

    def start(self) -> HttpServer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05},
                                            name="http-server", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> HttpServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
