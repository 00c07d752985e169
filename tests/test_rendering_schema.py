"""Every rendered custom resource validates against its CRD's openAPIV3Schema (Tekton v1.15.0,
BuildKit controller), including the task specs Tekton leaves open; the validator itself is
checked to catch what the API server would prune or reject."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.rendering import Renderer, render_snapshot
from reconciler.rendering.validating import embedded_task_schema, load_crds, validate
from reconciler.source.loading import Loader

ROOT = Path(__file__).resolve().parent.parent
CRDS = ROOT / "tests" / "fixtures" / "crds"
REPOS = {"golden": ROOT / "tests" / "golden" / "rendering" / "repo", "examples": ROOT / "examples-repo"}


@pytest.fixture(scope="module")
def schemas():
    found = load_crds([CRDS])
    assert ("tekton.dev/v1", "PipelineRun") in found and ("buildkit.smrt-devops.net/v1alpha1", "BuildKitPool") in found
    return found


def rendered_objects(repo: Path):
    snap = Loader().load_directory(str(repo))
    result = render_snapshot(snap, "0" * 40, renderer=Renderer())
    assert not result.errors, result.errors
    return [obj for objects in result.clusters.values() for obj in objects]


def schema_errors(obj: dict, schemas: dict) -> list[str]:
    schema = schemas.get((obj["apiVersion"], obj["kind"]))
    if schema is None:
        return []
    errors = validate(obj, schema)
    if obj["kind"] == "Pipeline":
        task = embedded_task_schema(schemas[("tekton.dev/v1", "Task")])
        for i, pipeline_task in enumerate(obj["spec"]["tasks"]):
            errors += validate(pipeline_task["taskSpec"], task, f"$.spec.tasks[{i}].taskSpec")
    return errors


@pytest.mark.parametrize("repo", sorted(REPOS))
def test_every_custom_resource_matches_its_crd(repo, schemas):
    checked = {}
    for obj in rendered_objects(REPOS[repo]):
        errors = schema_errors(obj, schemas)
        assert not errors, f"{obj['kind']} {obj['metadata']['name']}: {errors}"
        if (obj["apiVersion"], obj["kind"]) in schemas:
            checked[obj["kind"]] = checked.get(obj["kind"], 0) + 1
    assert {"Pipeline", "PipelineRun", "BuildKitPool"} <= set(checked), checked


def test_buildkit_pool_has_every_required_field(schemas):
    schema = schemas[("buildkit.smrt-devops.net/v1alpha1", "BuildKitPool")]
    pool = [o for o in rendered_objects(REPOS["golden"]) if o["kind"] == "BuildKitPool"][0]

    def walk(value, node, path):
        for name in node.get("required", ()):
            assert name in value, f"{path}.{name}"
        for key, item in value.items():
            sub = node.get("properties", {}).get(key)
            if isinstance(item, dict) and sub:
                walk(item, sub, f"{path}.{key}")

    walk(pool["spec"], schema["properties"]["spec"], "spec")
    assert set(schema["properties"]["spec"]["required"]) <= set(pool["spec"])


def test_the_validator_catches_what_the_server_would_prune_or_reject(schemas):
    run = [o for o in rendered_objects(REPOS["golden"]) if o["kind"] == "PipelineRun"][0]
    schema = schemas[("tekton.dev/v1", "PipelineRun")]
    broken = {**run, "spec": {**run["spec"], "timeout": "1h", "timeouts": {"pipeline": 5}}}
    errors = validate(broken, schema)
    assert any("spec.timeout: unknown field" in e for e in errors)
    assert any("timeouts.pipeline: expected string" in e for e in errors)
    spec = dict(run["spec"])
    spec["params"] = [{"value": "x"}]
    assert any(e.endswith(".name: required") for e in validate({**run, "spec": spec}, schema))
    pool_schema = schemas[("buildkit.smrt-devops.net/v1alpha1", "BuildKitPool")]
    assert any("spec.tls: required" in e for e in validate({"spec": {}}, pool_schema))
    assert any("is not one of" in e for e in validate({"spec": {"scaling": {"mode": "sometimes"}}}, pool_schema))
