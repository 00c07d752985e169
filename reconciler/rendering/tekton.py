"""The ``tekton`` backend: a Pipeline per method and version, and a PipelineRun per build.

**pipelineRef to a Pipeline applied alongside, not an embedded pipelineSpec.** Reasons:

- The API server checks a Pipeline against its CRD schema (tasks, params, workspaces,
  runAfter...) and prunes unknown fields, which we detect; ``PipelineRun.spec.pipelineSpec``
  is ``x-kubernetes-preserve-unknown-fields``, so a mistake there would go unnoticed until run.
- Runs stay small (a few hundred bytes of params instead of ~10 KB of steps each), which
  matters with thousands of runs in etcd, in ``kubectl get -o yaml`` and in our diffs.
- It is what Tekton users expect: ``tkn pipeline list``, runs grouped by pipeline (Tekton
  labels each run with ``tekton.dev/pipeline``), the dashboard's pipeline view.
- Clusters may set ``disable-inline-spec: pipeline``; a reference works everywhere.
- Rendering is cheaper: the Pipeline is rendered once per method and version.

The costs, and how they are covered: the Pipeline must exist before the run starts (objects
are returned in apply order: Pipeline before PipelineRun); and editing a Pipeline in place
would change runs that have not started yet, so Pipelines are named by version
(``if-docker-1-0-0``), a build can pin a version, and the template's digest is part of the
PipelineRun's name hash -- a template edited without a version bump still re-runs builds.
Tekton copies the resolved spec into ``status.pipelineSpec`` when a run starts, so a later
change never alters a running build.

Steps are written inline (``taskSpec``) rather than ``taskRef`` to catalog tasks through
resolvers: the Hub and the git resolver need network access that air-gapped pools lack, the
catalog's kaniko and git-init tasks pin images that are no longer maintained, and inline steps
keep every image pinned in the template version.
"""

from __future__ import annotations

from typing import Any

from .common import (annotations, digest, hashed_name, labels, metadata, plain_copy)
from .context import DEFAULT_REGISTRY_SECRET, BuildFacts, cache_image, pod_security_context
from .quoting import encode_build_args
from .templates import TemplateStore, TemplateVersion


def pipeline_object(store: TemplateStore, tv: TemplateVersion, namespace: str, revision: str) -> dict:
    pipeline, pipeline_digest = store.pipeline(tv)
    obj = plain_copy(pipeline)
    obj["metadata"] = metadata(tv.pipeline_name, namespace, labels(component="pipeline"),
                               annotations(revision, tv.ref, digest=pipeline_digest))
    return obj


def task_run_specs(tv: TemplateVersion, facts: BuildFacts) -> list[dict] | None:
    meta = tv.metadata
    specs: dict[str, dict] = {}
    for i, task in enumerate((meta.get("resources") or {}).get("tasks", ())):
        # facts.resources is fresh per build: the first task may have it, others get copies.
        specs.setdefault(task, {"pipelineTaskName": task})["computeResources"] = \
            facts.resources if i == 0 else plain_copy(facts.resources)
    for task, extra in (meta.get("taskMetadata") or {}).items():
        entry = specs.setdefault(task, {"pipelineTaskName": task})
        entry["metadata"] = plain_copy(extra)
    return list(specs.values()) or None


def run_values(tv: TemplateVersion, facts: BuildFacts) -> tuple[dict, dict[str, dict[str, Any]]]:
    """(shape, values) for a PipelineRun template: what it may branch on, and the build's values."""
    values: dict[str, dict[str, Any]] = {
        "build": {
            "name": facts.name,
            "team": facts.team,
            "image": facts.image,
            "platforms": ",".join(facts.platforms),
            "platform": facts.platforms[0],
            "buildArgs": encode_build_args(facts.build_args),
            "pushSecret": facts.push_secret or DEFAULT_REGISTRY_SECRET,
            "pushSecretOptional": facts.push_secret is None,
            "cacheImage": cache_image(facts.image),
        },
        "source": {
            "git": facts.git,
            "revision": facts.revision,
            "contextDir": facts.context_dir,
            "dockerfile": facts.dockerfile,
            "template": facts.template,
            "flake": facts.flake,
            "builder": facts.builder,
        },
        "run": {
            "namespace": facts.namespace,
            "serviceAccount": facts.service_account,
            "timeout": facts.timeout,
            "workspaceSize": str((tv.metadata.get("workspace") or {}).get("size", "5Gi")),
            "podSecurityContext": pod_security_context(),
            "taskRunSpecs": task_run_specs(tv, facts),
        },
        "placement": {
            "provider": facts.provider,
            "pool": facts.pool,
            "nodeSelector": facts.node_selector,
            "tolerations": plain_copy(facts.tolerations),
            "affinity": plain_copy(facts.affinity),
        },
    }
    # What templates may branch on (never a user value itself).
    shape = {"multiPlatform": len(facts.platforms) > 1, "gpu": "nvidia.com/gpu" in facts.resources["limits"]}
    return shape, values


def pipeline_run(store: TemplateStore, tv: TemplateVersion, facts: BuildFacts, revision: str) -> dict:
    _, pipeline_digest = store.pipeline(tv)
    shape, values = run_values(tv, facts)
    run = store.render_run(tv, shape, values)
    spec = run.setdefault("spec", {})
    # A param the build leaves unset (e.g. no builder image) takes the Pipeline's default.
    if "params" in spec:
        spec["params"] = [p for p in spec["params"] if "value" in p]
    # Same spec, same name; any change (a value, the template, its Pipeline) gives a new name.
    run_hash = digest({"namespace": facts.namespace, "build": facts.name, "spec": spec,
                       "pipeline": pipeline_digest}, 10)
    template_meta = run.get("metadata") or {}
    run["metadata"] = metadata(
        hashed_name(facts.name, run_hash), facts.namespace,
        {**(template_meta.get("labels") or {}),
         **labels(build=facts.name, pool=facts.pool, team=facts.team, component="run")},
        {**(template_meta.get("annotations") or {}),
         **annotations(revision, tv.ref, source=facts.source_path, digest=pipeline_digest)})
    return run
