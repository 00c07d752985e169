"""Every rendered object, applied to a real API server by server-side apply, comes back whole.

The control plane (tests/controlplane.py) is Kubernetes 1.20 with the Tekton and BuildKit
CRDs installed. 1.20 has no strict field validation: it silently prunes what a schema (or the
built-in types) does not know. So each object read back is compared with what was sent:
every field sent must be there with the same value (fields the server adds are ignored).
"""

from __future__ import annotations

import json
import uuid
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from reconciler.rendering import InMemoryCertStore, Renderer, render_snapshot
from reconciler.rendering.common import identity
from reconciler.source.loading import Loader

REPO = Path(__file__).parent / "golden" / "rendering" / "repo"
PLURALS = {
    "Namespace": "namespaces", "ServiceAccount": "serviceaccounts", "Role": "roles", "RoleBinding": "rolebindings",
    "Secret": "secrets", "Service": "services", "Deployment": "deployments",
    "HorizontalPodAutoscaler": "horizontalpodautoscalers", "BuildKitPool": "buildkitpools", "Pipeline": "pipelines",
    "PipelineRun": "pipelineruns", "Job": "jobs",
}
# Kubernetes 1.20 serves Job.spec.ttlSecondsAfterFinished only behind the alpha feature gate
# TTLAfterFinished (beta, on by default, from 1.21); the test control plane does not enable
# it, so 1.20 drops the field. Every later version keeps it.
GATED_ON_1_20 = {("Job", "spec.ttlSecondsAfterFinished")}


@pytest.fixture
def rendered():
    """The golden repository rendered into namespaces of its own (rt<random>-...), per test:
    namespaces deleted by one test may still be terminating when the next one starts."""
    snap = Loader().load_directory(str(REPO))
    prefix = f"rt{uuid.uuid4().hex[:6]}-"
    factory = snap.factory.model
    spec = factory.spec.model_copy(update={
        "defaults": factory.spec.defaults.model_copy(update={"namespacePrefix": prefix}),
        "teams": [t.model_copy(update={"namespace": f"{prefix}{t.namespace}" if t.namespace else None})
                  for t in factory.spec.teams]})
    snap = replace(snap, factory=replace(snap.factory, model=factory.model_copy(update={"spec": spec})))
    renderer = Renderer(certs=InMemoryCertStore())
    result = render_snapshot(snap, "0123456789abcdef0123456789abcdef01234567", renderer=renderer)
    assert not result.errors
    return snap, renderer, prefix, result


def all_objects(result) -> list[dict]:
    """Every cluster's objects on the one test API server (identical duplicates once)."""
    seen: dict[tuple, dict] = {}
    for objects in result.clusters.values():
        for obj in objects:
            key = identity(obj)
            assert seen.get(key, obj) == obj, f"{key} differs between clusters"
            seen[key] = obj
    from reconciler.rendering.common import order_objects
    return order_objects(seen.values())


def path_of(obj: dict) -> str:
    group_version = obj["apiVersion"]
    base = f"/api/{group_version}" if "/" not in group_version else f"/apis/{group_version}"
    meta = obj["metadata"]
    plural = PLURALS[obj["kind"]]
    if meta.get("namespace"):
        return f"{base}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    return f"{base}/{plural}/{meta['name']}"


def missing(sent, live, path: str = "") -> list[str]:
    """Paths of values sent that the live object lacks or holds differently."""
    if isinstance(sent, dict):
        if not isinstance(live, dict):
            return [path or "."]
        out = []
        for key, value in sent.items():
            where = f"{path}.{key}" if path else key
            if key not in live:
                out.append(where)
            else:
                out.extend(missing(value, live[key], where))
        return out
    if isinstance(sent, list):
        if not isinstance(live, list) or len(live) != len(sent):
            return [path]
        return [p for i, (a, b) in enumerate(zip(sent, live)) for p in missing(a, b, f"{path}[{i}]")]
    return [] if sent == live else [path]


def apply(control_plane, objects: list[dict], tmp_path: Path, *extra: str) -> None:
    """kubectl's server-side apply (kubectl also checks each object against the server's
    OpenAPI first, which is a second schema check of everything we render)."""
    manifest = tmp_path / f"objects-{uuid.uuid4().hex[:6]}.yaml"
    manifest.write_text(yaml.safe_dump_all(objects, sort_keys=False))
    control_plane.kubectl("apply", "--server-side", "--field-manager=image-factory", *extra, "-f", str(manifest),
                          timeout=300)


def server_minor(control_plane) -> str:
    status, version = control_plane.request("GET", "/version")
    assert status == 200
    return f"{version['major']}.{version['minor'].rstrip('+')}"


def test_every_rendered_object_applies_and_nothing_is_pruned(control_plane, rendered, tmp_path):
    snap, renderer, prefix, result = rendered
    objects = all_objects(result)
    kinds = {o["kind"] for o in objects}
    assert {"Namespace", "ServiceAccount", "Role", "RoleBinding", "Secret", "Service", "Deployment",
            "HorizontalPodAutoscaler", "BuildKitPool", "Pipeline", "PipelineRun", "Job"} <= kinds
    try:
        apply(control_plane, objects, tmp_path)
        allowed = GATED_ON_1_20 if server_minor(control_plane) == "1.20" else set()
        problems = {}
        for obj in objects:
            status, live = control_plane.request("GET", path_of(obj))
            assert status == 200, (path_of(obj), live)
            lost = [p for p in missing(obj, live) if (obj["kind"], p) not in allowed]
            if lost:
                problems[f"{obj['kind']} {obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"] = lost
            managers = {(m["manager"], m["operation"]) for m in live["metadata"].get("managedFields", ())}
            assert ("image-factory", "Apply") in managers
        assert not problems, json.dumps(problems, indent=2)
    finally:
        _delete_namespaces(control_plane, objects)


def test_a_second_pass_changes_nothing_on_the_server(control_plane, rendered, tmp_path):
    snap, renderer, prefix, result = rendered
    objects = all_objects(result)
    try:
        apply(control_plane, objects, tmp_path)
        before = {identity(o): _version(control_plane, o) for o in objects}
        again = render_snapshot(snap, "fedcba9876543210fedcba9876543210fedcba98", renderer=renderer)
        # Only the revision annotation differs; re-stamp it to see that nothing else does.
        second = all_objects(again)
        assert [identity(o) for o in second] == [identity(o) for o in objects]
        for old, new in zip(objects, second):
            assert {**new, "metadata": {**new["metadata"], "annotations": {**new["metadata"]["annotations"],
                    "imagefactory.dev/revision": old["metadata"]["annotations"]["imagefactory.dev/revision"]}}} == old
        apply(control_plane, objects, tmp_path)
        after = {identity(o): _version(control_plane, o) for o in objects}
        if server_minor(control_plane) == "1.20":
            # Each apply re-sends the Job TTL that 1.20 drops (GATED_ON_1_20), so a Job is
            # written again; nothing else may be.
            after = {k: v for k, v in after.items() if k[1] != "Job"}
            before = {k: v for k, v in before.items() if k[1] != "Job"}
        assert after == before
    finally:
        _delete_namespaces(control_plane, objects)


def _version(control_plane, obj: dict) -> str:
    """What our apply last wrote: the generation (where the kind has one) and our manager's
    managedFields entry (a no-op apply writes nothing, so its time stays). Not resourceVersion:
    the Job controller keeps writing a Job's status."""
    meta = control_plane.request("GET", path_of(obj))[1]["metadata"]
    ours = [m for m in meta.get("managedFields", ()) if m["manager"] == "image-factory" and m["operation"] == "Apply"]
    return json.dumps([meta.get("generation"), ours], sort_keys=True)


def _delete_namespaces(control_plane, objects) -> None:
    for obj in objects:
        if obj["kind"] == "Namespace":
            control_plane.request("DELETE", f"/api/v1/namespaces/{obj['metadata']['name']}")


def test_the_comparison_sees_a_pruned_field(control_plane, rendered, tmp_path):
    """Control: a field the CRD does not know is pruned by 1.20 without an error, and caught."""
    snap, renderer, prefix, result = rendered
    objects = [o for o in all_objects(result) if o["kind"] in ("Namespace", "ServiceAccount", "Pipeline", "PipelineRun")]
    run = json.loads(json.dumps([o for o in objects if o["kind"] == "PipelineRun"][0]))
    run["metadata"]["name"] = "pruning-control"
    run["spec"]["notATektonField"] = {"x": 1}
    run["spec"]["timeouts"]["pipline"] = "1h"  # a typo
    try:
        # --validate=false: kubectl itself would refuse the unknown fields; the server does not.
        apply(control_plane, [o for o in objects if o["kind"] != "PipelineRun"] + [run], tmp_path, "--validate=false")
        status, live = control_plane.request("GET", path_of(run))
        assert status == 200
        assert sorted(missing(run, live)) == ["spec.notATektonField", "spec.timeouts.pipline"]
    finally:
        _delete_namespaces(control_plane, objects)
