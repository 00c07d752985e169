"""/healthz, /readyz and /metrics through the real HTTP server, fed by a real loop."""

from __future__ import annotations

import http.client
import json
import time
import types

from reconciler.loop.metrics import Metrics
from reconciler.loop.running import Loop
from reconciler.loop.server import HttpServer, parse_listen


def get(srv: HttpServer, path: str) -> tuple[int, str, str]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.getheader("Content-Type"), resp.read().decode()
    finally:
        conn.close()


def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not predicate():
        time.sleep(0.01)
    return predicate()


def test_probes_and_metrics_of_a_running_loop():
    def run_pass(triggers, ctx):
        ctx.metrics.observe_git("fetch", 0.03, True)
        ctx.mark_applied()
        return types.SimpleNamespace(
            exit_code=0, revision="a" * 40, applied=["o1", "o2", "o3"], pruned=[], errors=[{"kind": "apply"}],
            git=[("push", 0.2, True)], provider_health={"eks-prod": "Healthy", "aks-dev": "Degraded"},
            phases={"Running": 3, "Succeeded": 5})

    metrics = Metrics()
    loop = Loop(run_pass, metrics=metrics, ready_max_age=60)
    loop.server = HttpServer(("127.0.0.1", 0), metrics=metrics, alive=loop.alive, ready=loop.ready)
    loop.start()
    try:
        assert wait_for(lambda: loop.last_outcome == "ok")
        status, ctype, body = get(loop.server, "/healthz")
        assert (status, body) == (200, "ok\n")
        status, ctype, body = get(loop.server, "/readyz")
        data = json.loads(body)
        assert status == 200 and ctype == "application/json"
        assert data["ready"] is True and data["role"] == "leader" and data["revision"] == "a" * 40
        assert data["git_reachable"] is True and data["passes"] == 1
        status, ctype, text = get(loop.server, "/metrics")
        assert status == 200 and ctype.startswith("text/plain; version=")
        for line in [
            'image_factory_passes_total{outcome="ok"} 1.0',
            'image_factory_pass_duration_seconds_count{outcome="ok"} 1.0',
            "image_factory_objects_applied_total 3.0",
            "image_factory_objects_pruned_total 0.0",
            'image_factory_errors_total{kind="apply"} 1.0',
            'image_factory_git_operations_total{operation="fetch",outcome="ok"} 1.0',
            'image_factory_git_operations_total{operation="push",outcome="ok"} 1.0',
            'image_factory_git_operation_duration_seconds_count{operation="push"} 1.0',
            'image_factory_trigger_to_apply_seconds_count{reason="start"} 1.0',
            'image_factory_provider_health{provider="eks-prod",state="Healthy"} 1.0',
            'image_factory_provider_health{provider="eks-prod",state="Unhealthy"} 0.0',
            'image_factory_provider_health{provider="aks-dev",state="Degraded"} 1.0',
            'image_factory_builds{phase="Running"} 3.0',
            'image_factory_builds{phase="Succeeded"} 5.0',
            'image_factory_builds{phase="Failed"} 0.0',
            "image_factory_leader 1.0",
            "image_factory_pass_running 0.0",
        ]:
            assert line in text, line
        assert "# TYPE image_factory_pass_duration_seconds histogram" in text
        assert "python_gc_objects_collected_total" not in text  # our own registry, not the global one
        assert get(loop.server, "/nowhere")[0] == 404
    finally:
        loop.request_stop("test")
        loop.shutdown()


def test_probe_failures_give_503():
    srv = HttpServer(("127.0.0.1", 0), metrics=Metrics(), alive=lambda: False,
                     ready=lambda: (False, {"reason": "no pass completed"})).start()
    try:
        assert get(srv, "/healthz")[0] == 503
        status, _, body = get(srv, "/readyz")
        assert status == 503 and json.loads(body) == {"ready": False, "reason": "no pass completed"}
    finally:
        srv.stop()


def test_a_probe_that_raises_answers_no():
    def broken():
        raise RuntimeError("boom")

    srv = HttpServer(("127.0.0.1", 0), metrics=Metrics(), alive=broken, ready=broken).start()
    try:
        assert get(srv, "/healthz")[0] == 503
        assert get(srv, "/readyz")[0] == 503
    finally:
        srv.stop()


def test_parse_listen():
    assert parse_listen("127.0.0.1:8080") == ("127.0.0.1", 8080)
    assert parse_listen(":9000") == ("0.0.0.0", 9000)
    assert parse_listen("[::1]:0") == ("::1", 0)
    for bad in ("8080", "host:", "host:99999", "host:x"):
        try:
            parse_listen(bad)
        except ValueError:
            continue
        raise AssertionError(bad)


def test_connections_over_the_cap_get_503_and_the_server_recovers():
    import socket

    srv = HttpServer(("127.0.0.1", 0), metrics=Metrics(), max_connections=2, request_timeout=5).start()
    idle = []
    try:
        for _ in range(2):  # two idle connections hold both slots
            s = socket.create_connection(("127.0.0.1", srv.port))
            idle.append(s)
        time.sleep(0.2)
        extra = socket.create_connection(("127.0.0.1", srv.port))
        extra.settimeout(5)
        assert extra.recv(100).startswith(b"HTTP/1.1 503")
        extra.close()
        for s in idle:
            s.close()
        assert wait_for(lambda: _status(srv) == 200, 5)
    finally:
        for s in idle:
            s.close()
        srv.stop()


def _status(srv):
    try:
        return get(srv, "/healthz")[0]
    except OSError:
        return None
