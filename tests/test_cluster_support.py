"""Helpers for the cluster tests (no tests here): object builders, provider specs, and a small
HTTP proxy in front of the real API server that counts requests and injects faults.

The proxy listens on plain HTTP on 127.0.0.1 and forwards to the API server over TLS, so it
sees every request the cluster layer sends: method, path, query, status. Faults are chosen per
request by a callable: return ``None`` to forward, ``(status, headers, body)`` to answer
instead, or ``"drop"`` to close the connection without an answer.
"""

from __future__ import annotations

import http.client
import json
import ssl
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qs, urlsplit

from reconciler.models.provider import ProviderSpec

MANAGED = {"app.kubernetes.io/managed-by": "image-factory"}
FIXTURES = Path(__file__).parent / "fixtures"
EXEC_PLUGINS = FIXTURES / "exec-plugins"


def labels(build: str, pool: str = "general") -> dict[str, str]:
    return {**MANAGED, "imagefactory.dev/build": build, "imagefactory.dev/pool": pool}


def namespace(name: str, build: str = "shared") -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels(build)}}


def service_account(ns: str, name: str, build: str) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": ns, "labels": labels(build)}}


def role_binding(ns: str, name: str, build: str, sa: str) -> dict[str, Any]:
    return {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
            "metadata": {"name": name, "namespace": ns, "labels": labels(build)},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "edit"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": ns}]}


def pipeline_run(ns: str, name: str, build: str, image: str = "registry.example.com/web/app:1",
                 revision: str = "0123abc", **spec: Any) -> dict[str, Any]:
    return {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
            "metadata": {"name": name, "namespace": ns, "labels": labels(build),
                         "annotations": {"imagefactory.dev/revision": revision}},
            "spec": {"pipelineRef": {"name": "kaniko-build"},
                     "params": [{"name": "image", "value": image}, {"name": "context", "value": "."}],
                     "taskRunTemplate": {"serviceAccountName": "builder"},
                     "timeouts": {"pipeline": "1h0m0s"}, **spec}}


def job(ns: str, name: str, build: str) -> dict[str, Any]:
    return {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name, "namespace": ns, "labels": labels(build)},
            "spec": {"backoffLimit": 0, "template": {"metadata": {"labels": labels(build)}, "spec": {
                "restartPolicy": "Never", "serviceAccountName": "builder",
                "containers": [{"name": "kaniko", "image": "gcr.io/kaniko-project/executor:v1.23.0",
                                "args": ["--destination=registry.example.com/web/app:1"],
                                "resources": {"requests": {"memory": "1024Mi", "cpu": "500m"}}}]}}}}


def build_set(ns: str, build: str, runs: int = 1) -> list[dict[str, Any]]:
    """What rendering makes for one build: its ServiceAccount, RoleBinding and PipelineRun(s)."""
    return [service_account(ns, f"{build}-builder", build), role_binding(ns, f"{build}-builder", build, f"{build}-builder"),
            *(pipeline_run(ns, f"{build}-{i}", build) for i in range(runs))]


def spec(**data: Any) -> ProviderSpec:
    data.setdefault("type", "kubernetes")
    data.setdefault("nodePools", [{"name": "default"}])
    return ProviderSpec.model_validate(data)


def kubeconfig_spec(path: Path | str, context: str | None = None, **extra: Any) -> ProviderSpec:
    return spec(auth={"method": "kubeconfig", "kubeconfig": str(path), **({"context": context} if context else {})},
                **extra)


def write_kubeconfig(path: Path, server: str, *, token: str, ca_file: Path | None = None) -> Path:
    cluster: dict[str, Any] = {"server": server}
    if ca_file is not None:
        import base64
        cluster["certificate-authority-data"] = base64.b64encode(Path(ca_file).read_bytes()).decode()
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "c",
              "clusters": [{"name": "c", "cluster": cluster}], "users": [{"name": "u", "user": {"token": token}}],
              "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}]}
    path.write_text(json.dumps(config))
    return path


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    status: int | None

    @property
    def write(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH", "DELETE") and "dryRun" not in self.query


Fault = Callable[[str, str], "None | str | tuple[int, dict[str, str], bytes]"]


class FaultProxy:
    """``http://127.0.0.1:PORT`` -> the API server; records every request; injects faults."""

    def __init__(self, upstream: str, ca_file: Path | str) -> None:
        parts = urlsplit(upstream)
        self._host, self._port = parts.hostname, parts.port or 443
        self._ctx = ssl.create_default_context(cafile=str(ca_file))
        self.seen: list[Seen] = []
        self.fault: Fault | None = None
        self._lock = threading.Lock()
        self._local = threading.local()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_HEAD = _any

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> "FaultProxy":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- what was seen ---------------------------------------------------------------------------

    def reset(self) -> None:
        with self._lock:
            self.seen.clear()

    def writes(self) -> list[Seen]:
        with self._lock:
            return [s for s in self.seen if s.write]

    def count(self, method: str | None = None) -> int:
        with self._lock:
            return sum(1 for s in self.seen if method is None or s.method == method)

    # -- forwarding -------------------------------------------------------------------------------

    def _upstream(self) -> http.client.HTTPSConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = http.client.HTTPSConnection(self._host, self._port, context=self._ctx, timeout=60)
            self._local.conn = conn
        return conn

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        method = handler.command
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else None
        fault = self.fault(method, parts.path) if self.fault else None
        if fault == "drop":
            self._record(method, parts, None)
            handler.close_connection = True
            handler.connection.close()
            return
        if fault is not None:
            status, headers, payload = fault  # type: ignore[misc]
            self._record(method, parts, status)
            handler.send_response(status)
            for k, v in {"Content-Type": "application/json", **headers}.items():
                handler.send_header(k, v)
            handler.send_header("Content-Length", str(len(payload)))
            handler.end_headers()
            handler.wfile.write(payload)
            return
        headers = {k: v for k, v in handler.headers.items() if k.lower() not in ("host", "connection", "content-length")}
        for attempt in range(2):
            conn = self._upstream()
            try:
                conn.request(method, handler.path, body=body, headers=headers)
                resp = conn.getresponse()
                data = resp.read()
                break
            except (http.client.HTTPException, OSError):
                conn.close()
                self._local.conn = None
                if attempt:
                    self._record(method, parts, 502)
                    handler.send_response(502)
                    handler.send_header("Content-Length", "0")
                    handler.end_headers()
                    return
        self._record(method, parts, resp.status)
        handler.send_response(resp.status)
        for k, v in resp.getheaders():
            if k.lower() not in ("transfer-encoding", "connection", "content-length"):
                handler.send_header(k, v)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def _record(self, method: str, parts: Any, status: int | None) -> None:
        with self._lock:
            self.seen.append(Seen(method, parts.path, parse_qs(parts.query), status))


def status_body(code: int, reason: str, message: str) -> bytes:
    return json.dumps({"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": code, "reason": reason,
                       "message": message}).encode()
