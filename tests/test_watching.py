"""Cluster watches on the real API server: run state changes arrive as events, Tekton's
status chatter does not, a 410 Gone re-lists, an API server restart reconnects."""

from __future__ import annotations

import queue
import time
import uuid

import pytest

from reconciler.cluster import ClusterSettings, apply_objects, connect, observe
from reconciler.cluster.watching import KindWatch, RunEvent, Watches, WatchSettings

from .test_cluster_support import kubeconfig_spec, namespace, pipeline_run

pytestmark = pytest.mark.controlplane

FAST = ClusterSettings(backoff_base=0.05, backoff_max=1.0, retries=2, request_timeout=20)
QUICK = WatchSettings(timeout_seconds=30, backoff_base=0.1, backoff_max=1.0)


@pytest.fixture
def conn(control_plane):
    c = connect("local", kubeconfig_spec(control_plane.kubeconfig, "admin"), settings=FAST)
    yield c
    c.close()


@pytest.fixture
def ns(control_plane, conn):
    name = f"if-w-{uuid.uuid4().hex[:8]}"
    apply_objects(conn, [namespace(name)], observe(conn, [("v1", "Namespace")]))
    yield name
    control_plane.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _status(cp, ns: str, name: str, status: str, reason: str, message: str = "") -> None:
    body = {"status": {"conditions": [{"type": "Succeeded", "status": status, "reason": reason,
                                       "message": message or f"Tekton says {reason}",
                                       "lastTransitionTime": "2026-11-23T10:00:00Z"}]}}
    code, answer = cp.request("PATCH", f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/{name}/status", body,
                              content_type="application/merge-patch+json")
    assert code == 200, answer


def _events(seen: queue.Queue, want: int, timeout: float = 5.0) -> list[RunEvent]:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        try:
            out.append(seen.get(timeout=max(0.01, deadline - time.monotonic())))
        except queue.Empty:
            break
    return out


def _watch(conn, ns, **kwargs) -> tuple[KindWatch, queue.Queue]:
    seen: queue.Queue = queue.Queue()
    watch = KindWatch(conn, "tekton.dev/v1", "PipelineRun",
                      lambda e: seen.put(e) if e.namespace == ns else None, settings=QUICK, **kwargs).start()
    assert _wait(watch.streaming.is_set), "the watch never opened"
    return watch, seen


def _wait(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return False


def test_run_state_changes_arrive_within_a_second_and_chatter_does_not(control_plane, conn, ns):
    watch, seen = _watch(conn, ns)
    try:
        apply_objects(conn, [pipeline_run(ns, "app-1", "web-app")], observe(conn, [("tekton.dev/v1", "PipelineRun")]))
        created = _events(seen, 1)
        assert [(e.name, e.build, e.phase) for e in created] == [("app-1", "web-app", "Pending")]

        sent = time.monotonic()
        _status(control_plane, ns, "app-1", "Unknown", "Running", "Tasks Completed: 0")
        running = _events(seen, 1)
        assert [e.phase for e in running] == ["Running"] and time.monotonic() - sent < 1.0

        # Tekton rewrites the status with the same state (a new lastTransitionTime-free write, a
        # label): not an event.
        code, _ = control_plane.request("PATCH", f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/app-1",
                                        {"metadata": {"annotations": {"chatter": "1"}}},
                                        content_type="application/merge-patch+json")
        assert code == 200
        assert _events(seen, 1, timeout=0.7) == []

        _status(control_plane, ns, "app-1", "True", "Succeeded")
        assert [e.phase for e in _events(seen, 1)] == ["Succeeded"]
        assert [(k.name, s.phase) for k, s in watch.states().items() if k.namespace == ns] == [("app-1", "Succeeded")]

        control_plane.kubectl("delete", "pipelinerun", "-n", ns, "app-1")
        gone = _events(seen, 1)
        assert [(e.name, e.phase, e.as_detail()["phase"]) for e in gone] == [("app-1", None, "Deleted")]
    finally:
        watch.stop()
    assert not watch.running


def test_a_version_the_server_no_longer_keeps_is_410_then_a_fresh_list(control_plane, conn, ns):
    """A watch resumed from an ancient resourceVersion gets 410 Gone from the real API server,
    lists again, reports what differs from what it knew, and watches on."""
    apply_objects(conn, [pipeline_run(ns, "app-1", "web-app")], observe(conn, [("tekton.dev/v1", "PipelineRun")]))
    _status(control_plane, ns, "app-1", "Unknown", "Running")
    watch, seen = _watch(conn, ns, known={}, resource_version="1")
    try:
        # (the server answers 200 and then an ERROR event: the stream opens before the 410)
        assert _wait(lambda: watch.counts["expired"] == 1 and watch.counts["lists"] == 1), watch.counts
        # It knew nothing of app-1: the LIST after the 410 reports it.
        assert [(e.name, e.phase) for e in _events(seen, 1)] == [("app-1", "Running")]
        _status(control_plane, ns, "app-1", "False", "Failed")
        assert [e.phase for e in _events(seen, 1)] == ["Failed"]
    finally:
        watch.stop()


def test_an_api_server_restart_is_survived(control_plane, conn, ns):
    apply_objects(conn, [pipeline_run(ns, "app-1", "web-app")], observe(conn, [("tekton.dev/v1", "PipelineRun")]))
    watch, seen = _watch(conn, ns, known=None)
    try:
        control_plane.restart_apiserver()
        assert _wait(lambda: watch.counts["reconnects"] + watch.counts["watches"] >= 2, 20)
        assert _wait(watch.streaming.is_set, 30), "the watch did not come back after the restart"
        _status(control_plane, ns, "app-1", "True", "Succeeded")
        assert [e.phase for e in _events(seen, 1, timeout=10)] == ["Succeeded"]
    finally:
        watch.stop()


def test_watches_follow_the_providers_they_are_given(control_plane, conn, ns):
    seen: queue.Queue = queue.Queue()
    watches = Watches(lambda e: seen.put(e) if e.namespace == ns else None, settings=QUICK)
    try:
        watches.ensure({"local": conn})
        first = watches.watches("local")
        assert [w.kind for w in first] == ["PipelineRun", "Job"]
        assert _wait(lambda: all(w.streaming.is_set() for w in first))
        watches.ensure({"local": conn})  # unchanged: the same watches go on
        assert watches.watches("local") == first
        watches.ensure({}, keep=["local"])  # unreachable this pass: kept
        assert watches.watches("local") == first
        watches.ensure({})
        assert watches.providers() == [] and not any(w.running for w in first)
    finally:
        watches.stop()
