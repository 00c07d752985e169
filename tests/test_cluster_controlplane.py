"""The cluster layer on a real Kubernetes control plane (kube-apiserver 1.20 + etcd + controller
manager, Tekton and BuildKit CRDs installed): apply, zero-write passes, exact writes, prune,
conflicts, faults, every auth method, exec plugins, health and the dry-run diff.

Requests are counted by a proxy in front of the API server (``FaultProxy``), independently of
the counters the cluster layer keeps itself.
"""

from __future__ import annotations

import base64
import json
import os
import time
import uuid
from pathlib import Path

import pytest

from reconciler.cluster import (ClusterSettings, ConnectFailed, ConnectionPool, Forbidden, Target, apply_objects,
                                check_all, check_health, connect, diff_objects, get_object, kinds_for, namespaces_of,
                                observe, prune_objects, sync, sync_all)
from reconciler.cluster.objects import key_of

from .test_cluster_support import (EXEC_PLUGINS, FaultProxy, build_set, job, kubeconfig_spec, labels, namespace,
                                   pipeline_run, spec, status_body, write_kubeconfig)

pytestmark = pytest.mark.controlplane

FAST = ClusterSettings(backoff_base=0.05, backoff_max=1.5, retries=3, request_timeout=20)
DAY = 86400.0


def _ns() -> str:
    return f"if-t-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def pool():
    p = ConnectionPool(FAST)
    yield p
    p.close()


@pytest.fixture
def admin(control_plane):
    return kubeconfig_spec(control_plane.kubeconfig, "admin")


@pytest.fixture
def proxy(control_plane, tmp_path):
    """(FaultProxy, Provider spec that reaches the API server through it as admin)"""
    with FaultProxy(control_plane.server, control_plane.ca_file) as p:
        path = write_kubeconfig(tmp_path / "proxied", p.url, token=control_plane.token)
        yield p, kubeconfig_spec(path)


def _set_status(cp, obj, status):
    key = key_of(obj)
    plural = {"PipelineRun": "pipelineruns", "Job": "jobs"}[key.kind]
    api = "/apis/tekton.dev/v1" if key.kind == "PipelineRun" else "/apis/batch/v1"
    code, body = cp.request("PATCH", f"{api}/namespaces/{key.namespace}/{plural}/{key.name}/status",
                            {"status": status}, content_type="application/merge-patch+json")
    assert code == 200, body


def _get(cp, path):
    code, body = cp.request("GET", path)
    return body if code == 200 else None


def _rendered_or_built(ns: str) -> list[dict]:
    """A rendered examples-repo set when rendering is there (the largest cluster's objects, moved
    into namespaces of this test's own, as the control plane is shared), else the same shapes
    built here."""
    try:
        from reconciler.rendering.building import render_snapshot
        from reconciler.source.loading import Loader
    except ImportError:
        return [namespace(ns), *build_set(ns, "web.one", 2), *build_set(ns, "web.two", 2), job(ns, "kaniko-1", "web.three")]
    result = render_snapshot(Loader().load_directory(str(Path(__file__).parent.parent / "examples-repo")))
    suffix = ns.rsplit("-", 1)[-1]
    moved = []
    for obj in json.loads(json.dumps(max(result.clusters.values(), key=len))):
        meta = obj["metadata"]
        if meta.get("namespace"):
            meta["namespace"] = f"{meta['namespace']}-{suffix}"
        if obj["kind"] == "Namespace":
            meta["name"] = f"{meta['name']}-{suffix}"
        for subject in obj.get("subjects") or ():
            if subject.get("namespace"):
                subject["namespace"] = f"{subject['namespace']}-{suffix}"
        moved.append(obj)
    return moved


# -- health -----------------------------------------------------------------------------------------

def test_health_of_the_test_control_plane(control_plane, pool, admin):
    health = check_health(pool.get("cp", admin), admin)
    assert health.version == "v1.20.2" and health.tekton_installed and health.buildkit_controller is True
    # No kubelet runs here: no nodes. Degraded by default (documented), Unhealthy when configured.
    assert health.state == "Degraded" and health.reason.startswith("no nodes")
    strict = ConnectionPool(FAST.replace(no_ready_nodes="Unhealthy"))
    try:
        assert check_health(strict.get("cp", admin), admin).state == "Unhealthy"
    finally:
        strict.close()
    assert health.to_selection().state == "Degraded"


def test_node_pools_are_discovered_from_node_labels(control_plane, pool):
    names = [f"node-{uuid.uuid4().hex[:6]}" for _ in range(3)]
    node_labels = [{"eks.amazonaws.com/nodegroup": "general", "kubernetes.io/arch": "amd64"},
                   {"eks.amazonaws.com/nodegroup": "general", "kubernetes.io/arch": "amd64"},
                   {"eks.amazonaws.com/nodegroup": "gpu-spot", "kubernetes.io/arch": "amd64"}]
    try:
        for name, lbl in zip(names, node_labels):
            code, body = control_plane.request("POST", "/api/v1/nodes", {"apiVersion": "v1", "kind": "Node",
                                                                         "metadata": {"name": name, "labels": lbl}})
            assert code == 201, body
            ready = "True" if name != names[1] else "False"
            code, body = control_plane.request(
                "PATCH", f"/api/v1/nodes/{name}/status", {"status": {"conditions": [
                    {"type": "Ready", "status": ready, "reason": "KubeletReady", "message": "test",
                     "lastHeartbeatTime": "2026-01-01T00:00:00Z", "lastTransitionTime": "2026-01-01T00:00:00Z"}]}},
                content_type="application/merge-patch+json")
            assert code == 200, body
        provider = kubeconfig_spec(control_plane.kubeconfig, "admin", nodePools=[
            {"name": "general", "labels": {"eks.amazonaws.com/nodegroup": "general"}, "architectures": ["amd64", "arm64"]},
            {"name": "arm", "labels": {"eks.amazonaws.com/nodegroup": "arm"}}])
        health = check_health(pool.get("cp-nodes", provider), provider)
        assert health.state == "Healthy" and health.ready_nodes == 2 and health.nodes == 3
        pools = {p.name: p for p in health.node_pools}
        assert (pools["general"].declared, pools["general"].nodes, pools["general"].ready) == (True, 2, 1)
        assert pools["gpu-spot"].declared is False and pools["arm"].nodes == 0
        notes = " | ".join(health.notes)
        assert "node pool arm: no node has its labels" in notes and "gpu-spot (1 node) is not declared" in notes
        assert "general: declares arm64" in notes
    finally:
        for name in names:
            control_plane.request("DELETE", f"/api/v1/nodes/{name}")


@pytest.fixture(scope="module")
def bare_control_plane(tmp_path_factory, control_plane):
    """A second control plane without any CRD: a cluster where Tekton is not installed."""
    from tests.controlplane import ControlPlane
    old = os.environ.get("CONTROL_PLANE_CRDS")
    os.environ["CONTROL_PLANE_CRDS"] = ""
    try:
        cp = ControlPlane().start(tmp_path_factory.mktemp("bare-control-plane"))
    finally:
        if old is None:
            os.environ.pop("CONTROL_PLANE_CRDS", None)
        else:
            os.environ["CONTROL_PLANE_CRDS"] = old
    try:
        yield cp
    finally:
        cp.stop()


def test_health_without_tekton_is_degraded_and_api_down_is_unhealthy(bare_control_plane, pool):
    provider = kubeconfig_spec(bare_control_plane.kubeconfig, "admin", buildkitController=True)
    conn = pool.get("bare", provider)
    health = check_health(conn, provider)
    assert health.state == "Degraded" and health.tekton_installed is False and health.buildkit_controller is False
    assert "Tekton CRDs are not installed" in health.reason and "buildkitController" in health.reason
    # a PipelineRun cannot go there: a clear per-object error, the rest still applies
    ns = _ns()
    report = apply_objects(conn, [namespace(ns), pipeline_run(ns, "r", "web.x")])
    assert [r.action for r in report.results] == ["created", "failed"]
    assert "does not serve tekton.dev/v1 PipelineRun" in report.results[1].message
    bare_control_plane.stop_apiserver()
    try:
        t0 = time.monotonic()
        down = check_health(conn, provider)
        assert down.state == "Unhealthy" and "unreachable" in down.reason and "4 attempts" not in down.reason
        assert time.monotonic() - t0 < 15
    finally:
        bare_control_plane.start_apiserver()
    assert check_health(conn, provider).state == "Degraded"


def test_check_all_reports_each_provider(control_plane, pool, admin):
    broken = spec(type="vks", endpoint="https://127.0.0.1:9", auth={"method": "api-token"},
                  credentials={"token": "sealed:v1:x"})
    results = check_all(pool.get, {"good": (admin, None), "no-creds": (broken, lambda f: None),
                                   "down": (broken, lambda f: b"tok-123456" if f == "token" else None)})
    assert results["good"].state == "Degraded"
    assert results["no-creds"].state == "Unhealthy" and "needs credentials.token" in results["no-creds"].reason
    assert results["down"].state == "Unhealthy" and "unreachable" in results["down"].reason


# -- apply: only what differs -----------------------------------------------------------------------------

def test_apply_rendered_set_then_an_unchanged_pass_writes_nothing(control_plane, proxy, pool):
    p, provider = proxy
    desired = _rendered_or_built(_ns())
    conn = pool.get("proxied", provider)
    first = sync(conn, desired, namespaces=namespaces_of(desired))
    assert first.error is None
    assert all(r.action == "created" for r in first.applied.results), \
        [r.describe() for r in first.applied.results if r.action != "created"]
    assert len(p.writes()) == len(desired) == first.writes
    # Namespaces first, then RBAC, then the rest
    order = [s.path.split("/")[-2] for s in p.writes()]
    phase = [0 if kind == "namespaces" else 1 if kind in ("serviceaccounts", "roles", "rolebindings") else 2
             for kind in order]
    assert phase == sorted(phase)

    p.reset()
    second = sync(conn, desired, namespaces=namespaces_of(desired))
    assert p.writes() == [] and second.writes == 0
    assert all(r.action in ("unchanged", "failed") for r in second.applied.results)
    # one LIST per kind (per namespace, as this pass is scoped to its namespaces on a shared
    # cluster), nothing else: discovery is cached on the pooled connection
    lists = [s for s in p.seen if s.method == "GET"]
    types = [conn.resource(*k) for k in kinds_for(desired)]
    scope = namespaces_of(desired)
    assert len(lists) == len(p.seen) == sum(len(scope) if t.namespaced else 1 for t in types if t is not None)
    assert all(s.query.get("labelSelector") == ["app.kubernetes.io/managed-by=image-factory"] for s in lists)
    for name in scope:
        control_plane.request("DELETE", f"/api/v1/namespaces/{name}")


def test_changing_one_build_writes_exactly_its_objects(control_plane, proxy, pool):
    p, provider = proxy
    ns = _ns()
    desired = [namespace(ns), *build_set(ns, "web.one", 2), *build_set(ns, "web.two", 2), *build_set(ns, "web.three")]
    conn = pool.get("proxied", provider)
    assert sync(conn, desired, namespaces=namespaces_of(desired)).ok
    changed = [pipeline_run(ns, o["metadata"]["name"], "web.two", image="registry.example.com/web/app:2")
               if o["kind"] == "PipelineRun" and o["metadata"]["labels"]["imagefactory.dev/build"] == "web.two" else o
               for o in desired]
    p.reset()
    report = sync(conn, changed, namespaces=namespaces_of(changed))
    assert report.ok
    assert sorted(s.path.rsplit("/", 1)[-1] for s in p.writes()) == ["web.two-0", "web.two-1"]
    assert {str(k) for k in report.applied.written()} == {f"PipelineRun {ns}/web.two-0", f"PipelineRun {ns}/web.two-1"}
    live = _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.two-0")
    assert live["spec"]["params"][0]["value"] == "registry.example.com/web/app:2"
    # a field removed from the desired object is removed from live (containment alone would miss it)
    with_status = [dict(o, spec={**o["spec"], "status": "PipelineRunPending"}) if o["kind"] == "PipelineRun" and
                   o["metadata"]["name"] == "web.three-0" else o for o in changed]
    assert sync(conn, with_status, namespaces=namespaces_of(with_status)).applied.written() and \
        _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.three-0")["spec"]["status"] == "PipelineRunPending"
    p.reset()
    report = sync(conn, changed, namespaces=namespaces_of(changed))
    assert [s.path.rsplit("/", 1)[-1] for s in p.writes()] == ["web.three-0"]
    assert "status" not in _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.three-0")["spec"]


def test_a_field_the_schema_drops_is_reported_and_not_resent(control_plane, proxy, pool):
    p, provider = proxy
    ns = _ns()
    desired = [namespace(ns), pipeline_run(ns, "r", "web.x", notInSchema={"a": 1})]
    conn = pool.get("proxied", provider)
    first = apply_objects(conn, desired)
    assert first.results[1].action == "created" and first.results[1].pruned_fields == ("spec.notInSchema",)
    assert not first.ok and "dropped fields its schema does not know" in first.results[1].message
    p.reset()
    again = apply_objects(conn, desired)
    assert p.writes() == [] and again.results[1].pruned_fields == ("spec.notInSchema",)


def test_failed_namespace_skips_its_objects_and_others_go_on(control_plane, pool, admin):
    ns = _ns()
    bad = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "Not_A_Valid_Name", "labels": labels("x")}}
    desired = [bad, namespace(ns), service_account_in("Not_A_Valid_Name"), *build_set(ns, "web.ok")]
    report = apply_objects(pool.get("cp", admin), desired)
    actions = {str(r.key): r.action for r in report.results}
    assert actions["Namespace Not_A_Valid_Name"] == "failed"
    assert actions["ServiceAccount Not_A_Valid_Name/sa"] == "skipped"
    assert actions[f"PipelineRun {ns}/web.ok-0"] == "created"
    failed = report.by_key()[key_of(bad)]
    assert failed.error is not None and not failed.error.transient and "HTTP 422" in failed.message


def service_account_in(ns):
    return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "sa", "namespace": ns, "labels": labels("x")}}


# -- prune ------------------------------------------------------------------------------------------------

def test_removed_build_cancels_running_prunes_finished_after_retention_and_never_touches_others(control_plane, pool, admin):
    ns = _ns()
    conn = pool.get("cp", admin)
    keep = build_set(ns, "web.keep")
    gone = [*build_set(ns, "web.gone", 2)]
    desired = [namespace(ns), *keep, *gone]
    assert sync(conn, desired, namespaces=namespaces_of(desired)).ok
    running, finished = gone[2], gone[3]
    _set_status(control_plane, running, {"conditions": [{"type": "Succeeded", "status": "Unknown", "reason": "Running",
                                                         "lastTransitionTime": "2026-01-01T00:00:00Z"}],
                                         "startTime": "2026-01-01T00:00:00Z"})
    done_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _set_status(control_plane, finished, {"conditions": [{"type": "Succeeded", "status": "True", "reason": "Succeeded",
                                                          "lastTransitionTime": done_at}],
                                          "startTime": done_at, "completionTime": done_at})
    # objects without our labels, in the same namespace, even one that looks like ours
    foreign = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "theirs", "namespace": ns}},
               {"apiVersion": "tekton.dev/v1", "kind": "PipelineRun",
                "metadata": {"name": "their-run", "namespace": ns, "labels": {"imagefactory.dev/build": "web.gone"}},
                "spec": {"pipelineRef": {"name": "x"}}}]
    for obj in foreign:
        api = "/api/v1" if obj["kind"] == "ConfigMap" else "/apis/tekton.dev/v1"
        plural = "configmaps" if obj["kind"] == "ConfigMap" else "pipelineruns"
        code, body = control_plane.request("POST", f"{api}/namespaces/{ns}/{plural}", obj)
        assert code == 201, body

    remaining = [namespace(ns), *keep]
    report = sync(conn, remaining, namespaces=namespaces_of(remaining), now=time.time())
    outcome = {str(r.key): r.action for r in report.pruned.results}
    assert outcome[f"PipelineRun {ns}/web.gone-0"] == "cancelled"
    assert outcome[f"PipelineRun {ns}/web.gone-1"] == "kept"
    assert outcome[f"ServiceAccount {ns}/web.gone-builder"] == "kept"  # its run is still stopping
    assert f"ConfigMap {ns}/theirs" not in outcome and f"PipelineRun {ns}/their-run" not in outcome
    live = _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.gone-0")
    assert live["spec"]["status"] == "Cancelled"
    # Tekton would now stop it; play its controller
    _set_status(control_plane, running, {"conditions": [{"type": "Succeeded", "status": "False", "reason": "Cancelled",
                                                         "lastTransitionTime": done_at}], "completionTime": done_at})
    later = sync(conn, remaining, namespaces=namespaces_of(remaining), now=time.time() + 2 * DAY)  # past the 24 h retention
    outcome = {str(r.key): r.action for r in later.pruned.results}
    assert outcome == {f"PipelineRun {ns}/web.gone-0": "deleted", f"PipelineRun {ns}/web.gone-1": "deleted",
                       f"ServiceAccount {ns}/web.gone-builder": "deleted",
                       f"RoleBinding {ns}/web.gone-builder": "deleted"}
    assert _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.gone-1") is None
    assert _get(control_plane, f"/api/v1/namespaces/{ns}/configmaps/theirs") is not None
    assert _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/their-run") is not None
    assert _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.keep-0") is not None


def test_empty_or_unloaded_desired_set_prunes_nothing(control_plane, pool, admin):
    ns = _ns()
    conn = pool.get("cp", admin)
    desired = [namespace(ns), *build_set(ns, "web.a")]
    assert sync(conn, desired, namespaces=namespaces_of(desired)).ok
    observed = observe(conn, kinds_for(desired), namespaces=[ns])
    before = conn.stats["writes"]
    assert "empty" in prune_objects(conn, [], observed).skipped
    assert "did not load" in prune_objects(conn, [namespace(ns)], observed, source_ok=False).skipped
    assert conn.stats["writes"] == before
    assert _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.a-0") is not None


# -- conflicts ----------------------------------------------------------------------------------------------

def test_another_managers_edit_is_reported_and_forced_only_when_configured(control_plane, pool, admin):
    ns = _ns()
    conn = pool.get("cp", admin)
    desired = [namespace(ns), *build_set(ns, "web.c")]
    assert sync(conn, desired, namespaces=namespaces_of(desired)).ok
    path = f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.c-0"
    theirs = [{"name": "image", "value": "registry.example.com/evil:1"}, {"name": "context", "value": "."}]
    code, body = control_plane.request("PATCH", path + "?fieldManager=kubectl-edit", {"spec": {"params": theirs}},
                                       content_type="application/merge-patch+json")
    assert code == 200, body
    report = apply_objects(conn, desired)
    result = report.by_key()[key_of(desired[-1])]
    assert result.action == "conflict" and not report.ok
    assert [(c.field, c.manager) for c in result.conflicts] == [(".spec.params", "kubectl-edit")]
    assert "not forced" in result.message
    assert _get(control_plane, path)["spec"]["params"] == theirs  # untouched
    forced = apply_objects(conn, desired, force=True)
    assert forced.by_key()[key_of(desired[-1])].action == "updated"
    assert _get(control_plane, path)["spec"]["params"][0]["value"] == "registry.example.com/web/app:1"
    assert apply_objects(conn, desired).writes == 0


# -- faults ------------------------------------------------------------------------------------------------

def test_faults_are_retried_then_reported_and_other_providers_go_on(control_plane, tmp_path):
    token = control_plane.token

    def proxied(name, fault):
        proxy = FaultProxy(control_plane.server, control_plane.ca_file)
        proxy.fault = fault
        return proxy, kubeconfig_spec(write_kubeconfig(tmp_path / name, proxy.url, token=token))

    calls = {"flaky": 0, "throttled": 0}

    def flaky(method, path):  # the first two requests fail with 500
        calls["flaky"] += 1
        return (500, {}, status_body(500, "InternalError", "etcd leader changed")) if calls["flaky"] <= 2 else None

    def throttled(method, path):  # one 429 with Retry-After: 1
        calls["throttled"] += 1
        return (429, {"Retry-After": "1"}, status_body(429, "TooManyRequests", "slow down")) \
            if calls["throttled"] == 1 else None

    flaky_proxy, flaky_spec = proxied("flaky", flaky)
    broken_proxy, broken_spec = proxied("broken", lambda m, p: (500, {}, status_body(500, "InternalError", "boom")))
    dropping_proxy, dropping_spec = proxied("dropping", lambda m, p: "drop")
    throttled_proxy, throttled_spec = proxied("throttled", throttled)
    down_spec = kubeconfig_spec(write_kubeconfig(tmp_path / "down", "https://127.0.0.1:9", token=token,
                                                 ca_file=control_plane.ca_file))
    good_spec = kubeconfig_spec(control_plane.kubeconfig, "admin")
    targets = {}
    for name, provider in (("good", good_spec), ("flaky", flaky_spec), ("broken", broken_spec),
                           ("dropping", dropping_spec), ("throttled", throttled_spec), ("down", down_spec)):
        ns = _ns()
        targets[name] = Target(name, provider, [namespace(ns), *build_set(ns, f"web.{name}")], namespaces=[ns])
    pool = ConnectionPool(FAST)
    try:
        t0 = time.monotonic()
        reports = sync_all(pool, targets.values(), workers=6)
        elapsed = time.monotonic() - t0
    finally:
        pool.close()
        for p in (flaky_proxy, broken_proxy, dropping_proxy, throttled_proxy):
            p.close()
    assert reports["good"].ok and len(reports["good"].applied.written()) == 4
    assert reports["flaky"].ok and len(reports["flaky"].applied.written()) == 4
    assert reports["throttled"].ok
    for name in ("broken", "dropping", "down"):
        assert not reports[name].ok and reports[name].transient, name
    assert "HTTP 500 InternalError: boom (after 4 attempts)" in reports["broken"].error
    assert broken_proxy.count() == len(kinds_for(targets["broken"].desired)) * 4  # each kind's request tried 4 times
    assert "unreachable" in reports["down"].error and "unreachable" in reports["dropping"].error
    assert elapsed < 30


def test_per_object_failures_do_not_stop_the_others(control_plane, proxy, pool):
    p, provider = proxy
    ns = _ns()
    desired = [namespace(ns), *build_set(ns, "web.a"), *build_set(ns, "web.b")]
    p.fault = lambda method, path: (403, {}, status_body(403, "Forbidden", "no")) \
        if method == "PATCH" and path.endswith("/web.a-0") else None
    report = apply_objects(pool.get("proxied", provider), desired)
    result = {str(r.key): r for r in report.results}
    assert isinstance(result[f"PipelineRun {ns}/web.a-0"].error, Forbidden)
    assert result[f"PipelineRun {ns}/web.b-0"].action == "created"
    assert report.failures() == [result[f"PipelineRun {ns}/web.a-0"]]
    assert report.for_build("web.a")[-1].action == "failed"


# -- auth methods --------------------------------------------------------------------------------------------

def _creds(**values):
    return lambda field: values.get(field)


def _ca(cp):
    return cp.ca_file.read_bytes()


def test_service_account_token_from_the_token_request_api(control_plane, pool):
    ns = _ns()
    admin_conn = connect("admin", kubeconfig_spec(control_plane.kubeconfig, "admin"), settings=FAST)
    sa = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "factory", "namespace": ns, "labels": labels("x")}}
    role = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
            "metadata": {"name": "factory", "namespace": ns, "labels": labels("x")},
            "rules": [{"apiGroups": ["tekton.dev"], "resources": ["pipelineruns"], "verbs": ["*"]}]}
    binding = {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": "factory", "namespace": ns, "labels": labels("x")},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "factory"},
               "subjects": [{"kind": "ServiceAccount", "name": "factory", "namespace": ns}]}
    assert apply_objects(admin_conn, [namespace(ns), sa, role, binding]).ok
    code, body = control_plane.request("POST", f"/api/v1/namespaces/{ns}/serviceaccounts/factory/token",
                                       {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
                                        "spec": {"expirationSeconds": 3600}})
    assert code == 201, body
    token = body["status"]["token"].encode()
    provider = spec(endpoint=control_plane.server, auth={"method": "service-account-token", "serviceAccount": f"{ns}/factory"},
                    credentials={"token": "sealed:v1:t", "caCert": "sealed:v1:c"})
    conn = pool.get("sa", provider, _creds(token=token, caCert=_ca(control_plane)))
    # it may not list PipelineRuns cluster-wide: live is unknown, so it applies (idempotent)
    report = apply_objects(conn, [pipeline_run(ns, "as-sa", "web.sa")])
    assert report.ok, report.results
    assert report.results[0].action == "created"
    # the same token cannot write elsewhere: 403 is terminal and names no credential
    other = apply_objects(conn, [pipeline_run("default", "as-sa", "web.sa")])
    assert isinstance(other.results[0].error, Forbidden) and not other.results[0].error.transient
    assert token.decode() not in other.results[0].message


@pytest.mark.parametrize("provider_type,method", [("vks", "api-token"), ("rancher", "api-token"),
                                                  ("openshift", "openshift-oauth")])
def test_api_and_openshift_tokens(control_plane, pool, provider_type, method):
    provider = spec(type=provider_type, endpoint=control_plane.server, auth={"method": method},
                    credentials={"token": "sealed:v1:t", "caCert": "sealed:v1:c"})
    conn = pool.get(provider_type, provider, _creds(token=control_plane.token.encode(), caCert=_ca(control_plane)))
    assert conn.version()["gitVersion"] == "v1.20.2"
    tester = connect("tester", provider, _creds(token=control_plane.tester_token.encode(), caCert=_ca(control_plane)),
                     FAST)
    with pytest.raises(Forbidden):
        tester.get_json("/api/v1/namespaces")


def test_client_certificate(control_plane, pool):
    ns = _ns()
    cert, key = control_plane.mint_client_cert("image-factory", "system:masters")
    provider = spec(endpoint=control_plane.server, auth={"method": "certificate"},
                    credentials={"clientCert": "sealed:v1:a", "clientKey": "sealed:v1:b", "caCert": "sealed:v1:c"})
    conn = pool.get("cert", provider, _creds(clientCert=cert, clientKey=key, caCert=_ca(control_plane)))
    assert apply_objects(conn, [namespace(ns), *build_set(ns, "web.cert")]).ok
    nobody = control_plane.mint_client_cert("nobody")
    conn = connect("nobody", provider, _creds(clientCert=nobody[0], clientKey=nobody[1], caCert=_ca(control_plane)), FAST)
    with pytest.raises(Forbidden, match="HTTP 403"):
        conn.get_json("/api/v1/namespaces")
    with pytest.raises(ConnectFailed, match="valid PEM pair"):
        connect("bad", provider, _creds(clientCert=cert, clientKey=nobody[1], caCert=_ca(control_plane)), FAST)


def test_wrong_ca_is_a_terminal_tls_error(control_plane, pool):
    other_ca = control_plane.client_ca_file.read_bytes()  # a CA, but not the one that signed the server
    provider = spec(type="vks", endpoint=control_plane.server, auth={"method": "api-token"},
                    credentials={"token": "sealed:v1:t", "caCert": "sealed:v1:c"})
    conn = connect("tls", provider, _creds(token=control_plane.token.encode(), caCert=other_ca), FAST)
    with pytest.raises(ConnectFailed, match="TLS failed") as err:
        conn.version()
    assert not err.value.transient and control_plane.token not in str(err.value)


def test_sealed_kubeconfig_and_in_cluster(control_plane, pool, tmp_path):
    content = control_plane.write_kubeconfig(tmp_path / "k", token=control_plane.token).read_bytes()
    provider = spec(auth={"method": "kubeconfig"}, credentials={"kubeconfig": "sealed:v1:k"})
    assert pool.get("sealed", provider, _creds(kubeconfig=content)).version()["major"] == "1"
    sa_dir = tmp_path / "serviceaccount"
    sa_dir.mkdir()
    (sa_dir / "token").write_text(control_plane.token)
    (sa_dir / "ca.crt").write_bytes(_ca(control_plane))
    port = control_plane.server.rsplit(":", 1)[1]
    conn = connect("in-cluster", spec(auth={"method": "in-cluster"}), settings=FAST, in_cluster_dir=str(sa_dir),
                   environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": port})
    assert conn.version()["gitVersion"] == "v1.20.2"


# -- exec plugins (the clouds' identities), with stub executables on PATH -------------------------------------

@pytest.fixture
def stubs(monkeypatch, tmp_path, control_plane):
    monkeypatch.setenv("PATH", f"{EXEC_PLUGINS}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("STUB_LOG", str(tmp_path / "stub.log"))
    monkeypatch.setenv("STUB_TOKEN", control_plane.token)
    monkeypatch.setenv("STUB_EXPIRY", "900")
    return tmp_path / "stub.log"


CLOUDS = {
    "eks": ({"method": "aws-iam", "clusterName": "prod-east", "roleArn": "arn:aws:iam::123456789012:role/factory"},
            "aws", ["eks", "get-token", "--cluster-name", "prod-east", "--role-arn", "arn:aws:iam::123456789012:role/factory",
                    "--region", "us-east-1", "--output", "json"]),
    "gke": ({"method": "gcp-workload-identity", "project": "acme-builds", "location": "europe-west4", "clusterName": "builds"},
            "gke-gcloud-auth-plugin", []),
    "aks": ({"method": "azure-managed-identity", "loginMode": "msi", "clientId": "11111111-2222-3333-4444-555555555555"},
            "kubelogin", ["get-token", "--login", "msi", "--server-id", "6dae42f8-4368-4678-94ff-3960e28e3630",
                          "--client-id", "11111111-2222-3333-4444-555555555555"]),
    "oke": ({"method": "oci-instance-principal", "clusterId": "ocid1.cluster.oc1.iad.aaaa", "region": "us-ashburn-1"},
            "oci", ["ce", "cluster", "generate-token", "--cluster-id", "ocid1.cluster.oc1.iad.aaaa", "--region",
                    "us-ashburn-1", "--auth", "instance_principal"]),
}


@pytest.mark.parametrize("cloud", sorted(CLOUDS))
def test_cloud_exec_plugins(control_plane, pool, stubs, cloud):
    auth, plugin, args = CLOUDS[cloud]
    provider = spec(type=cloud, endpoint=control_plane.server, region="us-east-1", auth=auth,
                    credentials={"caCert": "sealed:v1:c"})
    ns = _ns()
    conn = pool.get(cloud, provider, _creds(caCert=_ca(control_plane)))
    assert apply_objects(conn, [namespace(ns), *build_set(ns, f"web.{cloud}")]).ok
    runs = [json.loads(line) for line in stubs.read_text().splitlines()]
    assert len(runs) == 1  # the token is cached until shortly before it expires
    assert runs[0]["plugin"] == plugin and runs[0]["args"] == args
    assert runs[0]["exec_info"]["kind"] == "ExecCredential"


def test_exec_plugin_token_is_refreshed_after_401(control_plane, pool, stubs, monkeypatch, tmp_path):
    token_file = tmp_path / "token"
    token_file.write_text("expired-token-123456")
    monkeypatch.setenv("STUB_TOKEN_FILE", str(token_file))
    provider = spec(type="eks", endpoint=control_plane.server, auth={"method": "aws-iam", "clusterName": "c"},
                    credentials={"caCert": "sealed:v1:c"})
    conn = connect("eks", provider, _creds(caCert=_ca(control_plane)), FAST)
    token_file.write_text(control_plane.token)  # the cloud now hands out a valid one
    assert conn.version()["gitVersion"] == "v1.20.2"
    assert len(stubs.read_text().splitlines()) == 2


def test_kubeconfig_exec_plugin_with_client_certificate(control_plane, pool, stubs, monkeypatch, tmp_path):
    cert, key = control_plane.mint_client_cert("exec-user", "system:masters")
    (tmp_path / "c.pem").write_bytes(cert)
    (tmp_path / "k.pem").write_bytes(key)
    monkeypatch.setenv("STUB_MODE", "cert")
    monkeypatch.setenv("STUB_CERT_FILE", str(tmp_path / "c.pem"))
    monkeypatch.setenv("STUB_KEY_FILE", str(tmp_path / "k.pem"))
    config = {"apiVersion": "v1", "kind": "Config", "current-context": "x",
              "clusters": [{"name": "c", "cluster": {"server": control_plane.server, "certificate-authority-data":
                                                     base64.b64encode(_ca(control_plane)).decode()}}],
              "users": [{"name": "u", "user": {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1",
                                                        "command": "kubelogin", "args": ["get-token", "--login", "azurecli"],
                                                        "provideClusterInfo": True}}}],
              "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}]}
    sealed = json.dumps(config).encode()
    provider = spec(type="aks", auth={"method": "kubeconfig"}, credentials={"kubeconfig": "sealed:v1:k"})
    conn = pool.get("exec-cert", provider, _creds(kubeconfig=sealed))
    assert conn.version()["gitVersion"] == "v1.20.2"
    run = json.loads(stubs.read_text().splitlines()[0])
    assert run["exec_info"]["spec"]["cluster"]["server"] == control_plane.server
    assert run["kubeconfig"]["dir_mode"] == "0o700" and not Path(run["kubeconfig"]["path"]).exists()


# -- dry-run diff -----------------------------------------------------------------------------------------------

def test_dry_run_diff_shows_only_changes_masks_secrets_and_writes_nothing(control_plane, proxy, pool):
    p, provider = proxy
    ns = _ns()

    def secret(value):
        return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "registry", "namespace": ns,
                                                                   "labels": labels("web.a")},
                "type": "Opaque", "data": {"token": base64.b64encode(value).decode(),
                                           "user": base64.b64encode(b"robot").decode()}}

    desired = [namespace(ns), *build_set(ns, "web.a"), *build_set(ns, "web.b"), secret(b"old-registry-token")]
    conn = pool.get("proxied", provider)
    assert sync(conn, desired, namespaces=namespaces_of(desired)).ok
    changed = [pipeline_run(ns, "web.a-0", "web.a", image="registry.example.com/web/app:9")
               if o["kind"] == "PipelineRun" and o["metadata"]["name"] == "web.a-0" else o for o in desired]
    changed[-1] = secret(b"new-registry-token")
    changed = [o for o in changed if o["metadata"]["name"] != "web.b-0"] + [pipeline_run(ns, "web.c-0", "web.c")]
    p.reset()
    report = diff_objects(conn, changed, namespaces=[ns])
    assert p.writes() == [] and report.writes == 0 and report.changed
    by = {str(d.key): d for d in report.diffs}
    assert by[f"PipelineRun {ns}/web.a-0"].action == "update"
    assert "-    value: registry.example.com/web/app:1\n+    value: registry.example.com/web/app:9\n" in \
        by[f"PipelineRun {ns}/web.a-0"].diff
    assert by[f"PipelineRun {ns}/web.c-0"].action == "create"
    assert by[f"PipelineRun {ns}/web.b-0"].action == "cancel"  # not started yet, but no longer desired
    assert by[f"ServiceAccount {ns}/web.b-builder"].action == "unchanged"
    text = report.text()
    for leaked in ("old-registry-token", "new-registry-token", base64.b64encode(b"old-registry-token").decode(),
                   base64.b64encode(b"new-registry-token").decode(), base64.b64encode(b"robot").decode()):
        assert leaked not in text
    assert "-  token: '*** (before)'" in text and "+  token: '*** (after)'" in text and "   user: '***'" in text
    assert "managedFields" not in text and "resourceVersion" not in text
    # only the three changed objects were sent to the server (dry run); unchanged ones cost nothing
    dry = [s for s in p.seen if s.method == "PATCH"]
    assert len(dry) == 3 and all(s.query.get("dryRun") == ["All"] for s in dry)
    assert _get(control_plane, f"/apis/tekton.dev/v1/namespaces/{ns}/pipelineruns/web.a-0")["spec"]["params"][0]["value"] \
        == "registry.example.com/web/app:1"
    assert get_object(conn, "tekton.dev/v1", "PipelineRun", "web.c-0", ns) is None


def test_sealed_credentials_opened_by_the_keyring(control_plane, pool):
    from reconciler import sealing
    from reconciler.cluster import sealed_credentials

    key = sealing.generate_private_key()
    keyring = sealing.Keyring([key])
    credentials = {"token": sealing.seal(key.public_key(), "vks-sealed", "token", control_plane.token),
                   "caCert": sealing.seal(key.public_key(), "vks-sealed", "caCert", _ca(control_plane))}
    provider = spec(type="vks", endpoint=control_plane.server, auth={"method": "api-token"}, credentials=credentials)
    conn = pool.get("vks-sealed", provider, sealed_credentials(keyring, "vks-sealed", provider))
    assert conn.version()["gitVersion"] == "v1.20.2"
    # sealed for another provider: refused, naming the field, never a value
    with pytest.raises(ConnectFailed, match="credentials.token could not be opened") as err:
        connect("other", provider, sealed_credentials(keyring, "other", provider), FAST)
    assert control_plane.token not in str(err.value) and credentials["token"] not in str(err.value)
