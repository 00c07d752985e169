"""Rendering: goldens for every method, backend and BuildKit form; names, labels, placement,
resources, template versions, certificates, and the ``render`` command.

Goldens live in tests/golden/rendering/ (input repository: tests/golden/rendering/repo/).
Rewrite them deliberately with ``UPDATE_GOLDEN=1 python3 -m pytest tests/test_rendering.py``
and review the diff.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import os
import re
import shutil
from pathlib import Path

import pytest
import yaml

from reconciler.rendering import (InMemoryCertStore, LookupCertStore, RenderError, Renderer, TemplateStore,
                                  choose_placement, mask_secret_data, render_snapshot)
from reconciler.rendering.buildkit import service_dns_names
from reconciler.rendering.common import hashed_name
from reconciler.rendering.templates import DEFAULT_ROOT
from reconciler.source.loading import Loader
from tests.helpers import cli

GOLDEN = Path(__file__).parent / "golden" / "rendering"
REPO = GOLDEN / "repo"
REVISION = "0123456789abcdef0123456789abcdef01234567"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
MASK = "<masked: differs on every issue>"


@pytest.fixture(scope="module")
def snap():
    snapshot = Loader().load_directory(str(REPO))
    assert snapshot.valid, snapshot.problems
    return snapshot


@pytest.fixture(scope="module")
def result(snap):
    return render_snapshot(snap, REVISION, renderer=Renderer())


def entities(snap, build):
    b = snap.builds[build]
    pool = snap.pools[b.spec.placement.pool]
    return b, pool, snap.providers[pool.spec.provider], snap.factory.model


def goldenize(obj: dict) -> dict:
    """Masks what is random per issue (key material, the certificate digest that rolls pods)."""
    obj = mask_secret_data(obj)
    if obj.get("kind") == "Deployment":
        obj = json.loads(json.dumps(obj))
        annotations = obj["spec"]["template"]["metadata"].get("annotations", {})
        if "imagefactory.dev/tls-digest" in annotations:
            annotations["imagefactory.dev/tls-digest"] = MASK
    return obj


def dump(objects) -> str:
    return yaml.safe_dump_all([goldenize(o) for o in objects], sort_keys=False, default_flow_style=False,
                              allow_unicode=True, width=100)


def check_golden(name: str, text: str) -> None:
    path = GOLDEN / f"{name}.yaml"
    if UPDATE or not path.exists():
        if not UPDATE:
            pytest.fail(f"{path} is missing: run with UPDATE_GOLDEN=1 to create it, then review it")
        path.write_text(text)
        return
    assert text == path.read_text(), f"{path} differs; if the change is intended, rerun with UPDATE_GOLDEN=1 and review"


# -- goldens ---------------------------------------------------------------------------------------

BUILD_CASES = {
    "storefront": "docker method, tekton",
    "checkout": "kaniko method, tekton, push secret, short timeout",
    "gateway": "buildx method, tekton, two platforms, ssh git URL",
    "golden-ami": "packer method, tekton, team with its own namespace",
    "features": "nix method, tekton, GPU node pool with taints",
    "docs": "paketo method, tekton, custom builder",
    "base-ubi": "kaniko-job backend on OpenShift",
    "search": "buildkit backend, standalone buildkitd (mTLS)",
    "edge-proxy": "buildkit backend, BuildKit controller",
}


@pytest.mark.parametrize("build", sorted(BUILD_CASES))
def test_build_golden(result, build):
    check_golden(f"build-{build}", dump(result.builds[build].objects))


@pytest.mark.parametrize("pool", ["cloud-buildkit", "edge-buildkit"])
def test_pool_golden(result, pool):
    check_golden(f"pool-{pool}", dump(result.pools[pool].objects))


def test_goldens_hold_no_key_material():
    for path in GOLDEN.glob("*.yaml"):
        text = path.read_text()
        assert "PRIVATE KEY" not in text and "LS0tLS1CRUdJTi" not in text, path


def test_rendered_objects_share_no_mutable_parts(result):
    # Shared sub-objects would show as YAML anchors, and a change to one object would change another.
    for name, rendered in result.builds.items():
        run = rendered.run
        assert "&id" not in yaml.safe_dump(run), name


def test_every_case_is_covered(result):
    backends = {b.backend for b in result.builds.values()}
    methods = {b.template.split("@")[0] for b in result.builds.values() if b.backend == "tekton"}
    forms = {p.form for p in result.pools.values()}
    assert backends == {"tekton", "kaniko-job", "buildkit"}
    assert methods == {"docker", "kaniko", "buildx", "packer", "nix", "paketo"}
    assert forms == {"controller", "standalone"}
    assert not result.errors


# -- labels, annotations, order --------------------------------------------------------------------

def test_every_object_carries_the_contract(result):
    for cluster, objects in result.clusters.items():
        for obj in objects:
            meta = obj["metadata"]
            labels, annotations = meta["labels"], meta["annotations"]
            assert labels["app.kubernetes.io/managed-by"] == "image-factory", obj["kind"]
            assert "imagefactory.dev/build" in labels and "imagefactory.dev/pool" in labels
            assert annotations["imagefactory.dev/revision"] == REVISION
            assert re.fullmatch(r"[a-z-]+@\d+\.\d+\.\d+", annotations["imagefactory.dev/template"])
            assert len(meta["name"]) <= 63


def test_runs_name_their_build_and_pool(result):
    for name, rendered in result.builds.items():
        labels = rendered.run["metadata"]["labels"]
        assert labels["imagefactory.dev/build"] == name
        assert labels["imagefactory.dev/pool"] == rendered.pool
        assert labels["imagefactory.dev/team"] == rendered.team


def test_objects_come_in_apply_order(result):
    for rendered in result.builds.values():
        kinds = [o["kind"] for o in rendered.objects]
        assert kinds[0] == "Namespace" and kinds[-1] in ("PipelineRun", "Job")
        if rendered.backend == "tekton":
            assert kinds.index("Pipeline") < kinds.index("PipelineRun")
    for objects in result.clusters.values():
        kinds = [o["kind"] for o in objects]
        assert kinds.index("Namespace") == 0
        assert all(kinds.index(k) > kinds.index("Namespace") for k in kinds if k != "Namespace")


def test_shared_objects_are_identical_and_deduplicated(result):
    storefront, checkout = result.builds["storefront"], result.builds["checkout"]
    ns = [o for o in storefront.objects if o["kind"] == "Namespace"][0]
    assert ns in checkout.objects
    names = [(o["kind"], o["metadata"].get("namespace"), o["metadata"]["name"]) for o in result.clusters["cloud"]]
    assert len(names) == len(set(names))


# -- run names -------------------------------------------------------------------------------------

def test_run_name_is_stable_and_ignores_the_revision(snap):
    b, pool, provider, factory = entities(snap, "storefront")
    first = Renderer().render_build(b, pool, provider, factory, "rev-1")
    again = Renderer().render_build(b, pool, provider, factory, "rev-2")
    assert first.run_name == again.run_name
    assert first.run_name.startswith("storefront-")
    assert first.run["metadata"]["annotations"]["imagefactory.dev/revision"] == "rev-1"


def test_run_name_changes_when_the_spec_changes(snap):
    b, pool, provider, factory = entities(snap, "storefront")
    base = Renderer().render_build(b, pool, provider, factory, REVISION).run_name
    changed_image = b.model.model_copy(update={"spec": b.spec.model_copy(update={"image": "registry.example.com/web/storefront:2.15.0"})})
    other = Renderer().render_build(_entity(b, changed_image), pool, provider, factory, REVISION).run_name
    assert other != base
    gpu_pool = snap.pools["cloud-gpu"]
    moved = Renderer().render_build(b, gpu_pool, provider, factory, REVISION)
    assert moved.run_name != base  # placement is part of the spec


def test_run_name_changes_when_the_template_changes_without_a_version_bump(snap, tmp_path):
    root = _copy_templates(tmp_path)
    pipeline = root / "docker" / "pipeline.yaml.j2"
    pipeline.write_text(pipeline.read_text().replace("--frontend dockerfile.v0", "--frontend=dockerfile.v0"))
    b, pool, provider, factory = entities(snap, "storefront")
    before = Renderer().render_build(b, pool, provider, factory, REVISION)
    after = Renderer(templates=TemplateStore(root)).render_build(b, pool, provider, factory, REVISION)
    assert before.template == after.template == "docker@1.0.0"
    assert before.run_name != after.run_name


def test_long_build_names_stay_valid_kubernetes_names(snap):
    b, pool, provider, factory = entities(snap, "storefront")
    long_name = "a" * 30 + "-" + "b" * 32  # 63 characters, the models' limit
    model = b.model.model_copy(update={"metadata": b.model.metadata.model_copy(update={"name": long_name})})
    rendered = Renderer().render_build(_entity(b, model, name=long_name), pool, provider, factory, REVISION)
    name = rendered.run_name
    assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name)
    assert hashed_name("x" * 52 + "-", "0123456789") == "x" * 52 + "-0123456789"
    assert hashed_name("y" * 51 + "--z", "0123456789") == "y" * 51 + "-0123456789"


# -- placement, resources, the rest of the PipelineRun ---------------------------------------------

def test_node_pool_becomes_node_selector_and_tolerations(result):
    spec = result.builds["features"].run["spec"]
    pod = spec["taskRunTemplate"]["podTemplate"]
    assert pod["nodeSelector"] == {"node.example.com/pool": "gpu", "nvidia.com/gpu.present": "true"}
    assert pod["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"},
        {"key": "dedicated", "operator": "Exists", "effect": "NoExecute"},
    ]
    assert "tolerations" not in result.builds["storefront"].run["spec"]["taskRunTemplate"]["podTemplate"]


def test_requirements_become_compute_resources(result):
    features = result.builds["features"].run["spec"]["taskRunSpecs"]
    assert features == [{"pipelineTaskName": "build", "computeResources": {
        "requests": {"cpu": "500m", "memory": "64Gi"},
        "limits": {"cpu": "1", "memory": "64Gi", "nvidia.com/gpu": "2"}}}]
    storefront = result.builds["storefront"].run["spec"]["taskRunSpecs"][0]["computeResources"]
    assert storefront == {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}
    job = result.builds["base-ubi"].run["spec"]["template"]["spec"]["containers"][0]["resources"]
    assert job == {"requests": {"cpu": "4", "memory": "8Gi"}, "limits": {"cpu": "4", "memory": "8Gi"}}


def test_multi_arch_becomes_platform_params(result):
    params = {p["name"]: p["value"] for p in result.builds["gateway"].run["spec"]["params"]}
    assert params["platforms"] == "linux/amd64,linux/arm64"
    assert params["cache-image"] == "registry.example.com/web/gateway:buildcache"
    # A mixed-architecture node pool: no arch pin for a multi-platform build ...
    assert "kubernetes.io/arch" not in result.builds["gateway"].run["spec"]["taskRunTemplate"]["podTemplate"]["nodeSelector"]
    edge = result.builds["edge-proxy"].run["spec"]["template"]["spec"]
    assert "platform=linux/amd64,linux/arm64" in edge["containers"][0]["args"]


def test_single_platform_build_on_mixed_node_pool_is_pinned_to_its_architecture(snap):
    b, pool, provider, factory = entities(snap, "storefront")
    arm = b.model.model_copy(update={"spec": b.spec.model_copy(update={"platforms": ["linux/arm64"]})})
    mixed = _pool_on(snap, "cloud-tekton", "mixed")
    run = Renderer().render_build(_entity(b, arm), mixed, provider, factory, REVISION).run
    assert run["spec"]["taskRunTemplate"]["podTemplate"]["nodeSelector"]["kubernetes.io/arch"] == "arm64"


def test_single_platform_tools_refuse_several_platforms(snap):
    b, pool, provider, factory = entities(snap, "checkout")
    two = b.model.model_copy(update={"spec": b.spec.model_copy(update={"platforms": ["linux/amd64", "linux/arm64"]})})
    with pytest.raises(RenderError, match="one platform"):
        Renderer().render_build(_entity(b, two), pool, provider, factory, REVISION)


def test_workspaces_timeouts_service_account_security(result):
    spec = result.builds["checkout"].run["spec"]
    source, registry = spec["workspaces"]
    assert source["volumeClaimTemplate"]["spec"]["resources"]["requests"]["storage"] == "5Gi"
    assert registry["secret"] == {"secretName": "web-registry", "optional": False,
                                  "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}
    assert spec["timeouts"] == {"pipeline": "20m0s"}
    assert result.builds["storefront"].run["spec"]["timeouts"] == {"pipeline": "45m0s"}  # factory default
    assert spec["taskRunTemplate"]["serviceAccountName"] == "image-factory-builder"
    assert spec["taskRunTemplate"]["podTemplate"]["securityContext"]["fsGroup"] == 65532
    default_registry = result.builds["storefront"].run["spec"]["workspaces"][1]["secret"]
    assert default_registry["secretName"] == "image-factory-registry" and default_registry["optional"] is True


def test_pipelines_run_non_root_where_the_tool_allows(result):
    for name in ("storefront", "checkout", "golden-ami", "features", "docs", "gateway"):
        pipeline = [o for o in result.builds[name].objects if o["kind"] == "Pipeline"][0]
        for task in pipeline["spec"]["tasks"]:
            for step in task["taskSpec"]["steps"]:
                ctx = step["securityContext"]
                if step["image"].startswith(("ghcr.io/osscontainertools/kaniko", "docker.io/nixos/nix")):
                    assert ctx["runAsUser"] == 0 and ctx["allowPrivilegeEscalation"] is False
                    assert ctx["capabilities"]["drop"] == ["ALL"]
                else:
                    assert ctx["runAsNonRoot"] is True, (name, step["name"])


def test_kaniko_job(result):
    job = result.builds["base-ubi"].run
    spec = job["spec"]
    assert job["apiVersion"] == "batch/v1"
    assert spec["activeDeadlineSeconds"] == 45 * 60
    assert spec["backoffLimit"] == 1
    assert spec["ttlSecondsAfterFinished"] == 72 * 3600
    pod = spec["template"]["spec"]
    kaniko = pod["containers"][0]
    assert kaniko["image"].startswith("ghcr.io/osscontainertools/kaniko:v")
    assert "--build-arg=NOTE=cost $$$$5 (or $$(echo more))" in kaniko["args"]
    assert {"name": "registry", "secret": {"secretName": "lab-registry", "optional": False,
                                          "items": [{"key": ".dockerconfigjson", "path": "config.json"}]}} in pod["volumes"]
    clone = pod["initContainers"][0]["securityContext"]
    assert clone == {"runAsNonRoot": True, "runAsUser": 65532, "runAsGroup": 65532, "allowPrivilegeEscalation": False,
                     "readOnlyRootFilesystem": True, "capabilities": {"drop": ["ALL"]},
                     "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["tolerations"] == [{"key": "lab.example/builds", "operator": "Equal", "value": "only", "effect": "NoSchedule"}]


def test_openshift_team_gets_the_anyuid_binding(result):
    lab = result.builds["base-ubi"].objects
    bindings = [o for o in lab if o["kind"] == "RoleBinding"]
    assert any(b["roleRef"]["name"] == "system:openshift:scc:anyuid" for b in bindings)
    cloud = result.builds["storefront"].objects
    assert not any(o["kind"] == "RoleBinding" and o["roleRef"]["kind"] == "ClusterRole" for o in cloud)


def test_team_namespace_objects(result):
    objects = result.builds["golden-ami"].objects
    ns = objects[0]
    assert ns["metadata"]["name"] == "platform-builds"  # declared by the team in factory.yaml
    sa = [o for o in objects if o["kind"] == "ServiceAccount"][0]
    assert sa["automountServiceAccountToken"] is False
    binding = [o for o in objects if o["kind"] == "RoleBinding"][0]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "image-factory-builder", "namespace": "platform-builds"}]


# -- BuildKit ----------------------------------------------------------------------------------

def test_buildkit_pool_for_the_controller(result):
    objects = result.pools["edge-buildkit"].objects
    pool = [o for o in objects if o["kind"] == "BuildKitPool"][0]
    spec = pool["spec"]
    assert set(spec) >= {"auth", "cache", "networking", "observability", "resources", "scaling", "tls"}
    assert spec["scaling"]["min"] == 0 and spec["scaling"]["max"] == 4 and spec["scaling"]["scaleDownDelay"] == "10m"
    assert spec["resources"]["buildkit"] == {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "4", "memory": "4Gi"}}
    assert spec["tls"]["enabled"] is True
    assert spec["auth"]["rbac"]["rules"][0]["users"] == ["system:serviceaccount:if-*:image-factory-builder",
                                                         "system:serviceaccount:platform-builds:image-factory-builder"]
    job = result.builds["edge-proxy"].run["spec"]["template"]["spec"]
    assert [c["name"] for c in job["initContainers"]] == ["clone", "allocate"]
    assert job["containers"][0]["args"][:2] == ["--addr", "tcp://edge-buildkit.if-buildkit.svc:1235"]


def test_standalone_buildkitd_with_mtls(result):
    objects = result.pools["cloud-buildkit"].objects
    kinds = [o["kind"] for o in objects]
    assert {"Secret", "Service", "Deployment", "HorizontalPodAutoscaler"} <= set(kinds)
    secrets = {(o["metadata"]["namespace"], o["metadata"]["name"]): o for o in objects if o["kind"] == "Secret"}
    server = secrets[("if-buildkit", "cloud-buildkit-buildkitd-tls")]
    client = secrets[("if-web", "cloud-buildkit-buildkit-client")]
    ca = secrets[("if-buildkit", "cloud-buildkit-buildkit-ca")]
    ca_cert = _cert(ca["data"]["ca.crt"])
    server_cert = _cert(server["data"]["tls.crt"])
    client_cert = _cert(client["data"]["tls.crt"])
    sans = _sans(server_cert)
    assert sans == sorted(service_dns_names("cloud-buildkit-buildkitd", "if-buildkit"))
    assert "cloud-buildkit-buildkitd.if-buildkit.svc" in sans
    for leaf in (server_cert, client_cert):
        _verify(ca_cert, leaf)
    deployment = [o for o in objects if o["kind"] == "Deployment"][0]
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["securityContext"]["runAsNonRoot"] is True and container["image"].endswith("-rootless")
    assert "--tlscacert" in container["args"]
    assert "replicas" not in deployment["spec"]  # the autoscaler owns it
    job = result.builds["search"].run["spec"]["template"]["spec"]
    buildctl = job["containers"][0]
    assert buildctl["args"][:4] == ["--addr", "tcp://cloud-buildkit-buildkitd.if-buildkit.svc:1234",
                                    "--tlsservername", "cloud-buildkit-buildkitd.if-buildkit.svc"]
    assert {"name": "certs", "secret": {"secretName": "cloud-buildkit-buildkit-client"}} in job["volumes"]


def test_certificates_are_stable_across_passes(snap):
    renderer = Renderer(certs=InMemoryCertStore())
    pool, provider = snap.pools["cloud-buildkit"], snap.providers["cloud"]
    first = renderer.render_pool_infrastructure(pool, provider, snap.factory, "r1", teams=["web"]).objects
    second = renderer.render_pool_infrastructure(pool, provider, snap.factory, "r2", teams=["web"]).objects
    assert _secrets(first) == _secrets(second)
    other = Renderer(certs=InMemoryCertStore()).render_pool_infrastructure(pool, provider, snap.factory, "r1", teams=["web"])
    assert _secrets(other.objects) != _secrets(first)


def test_certificates_found_again_through_a_lookup(snap):
    pool, provider = snap.pools["cloud-buildkit"], snap.providers["cloud"]
    live: dict = {}
    first = Renderer(certs=LookupCertStore(lambda c, ns, n: live.get((c, ns, n))))
    objects = first.render_pool_infrastructure(pool, provider, snap.factory, "r1", teams=["web"]).objects
    for obj in objects:  # "apply": what the cluster layer would read back next pass
        if obj["kind"] == "Secret":
            live[("cloud", obj["metadata"]["namespace"], obj["metadata"]["name"])] = obj["data"]
    again = Renderer(certs=LookupCertStore(lambda c, ns, n: live.get((c, ns, n))))
    assert _secrets(again.render_pool_infrastructure(pool, provider, snap.factory, "r2", teams=["web"]).objects) == _secrets(objects)


def test_certificates_rotate_before_expiry(snap):
    store = InMemoryCertStore()
    start = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
    clock = {"now": start}
    pool, provider = snap.pools["cloud-buildkit"], snap.providers["cloud"]

    def render():
        renderer = Renderer(certs=store, now=lambda: clock["now"])
        return _secrets(renderer.render_pool_infrastructure(pool, provider, snap.factory, "r", teams=["web"]).objects)

    first = render()
    clock["now"] = start + dt.timedelta(days=50)  # validity 90 days, rotate 30 days before: keep
    assert render() == first
    clock["now"] = start + dt.timedelta(days=61)  # inside the rotation window: new server and client certs
    rotated = render()
    server = ("if-buildkit", "cloud-buildkit-buildkitd-tls")
    assert rotated[server]["tls.crt"] != first[server]["tls.crt"]
    assert rotated[("if-web", "cloud-buildkit-buildkit-client")]["tls.crt"] != first[("if-web", "cloud-buildkit-buildkit-client")]["tls.crt"]
    assert rotated[("if-buildkit", "cloud-buildkit-buildkit-ca")] == first[("if-buildkit", "cloud-buildkit-buildkit-ca")]
    assert _cert(rotated[server]["tls.crt"]).not_valid_after_utc > clock["now"] + dt.timedelta(days=80)


def test_leaf_certificates_follow_a_new_ca(snap):
    store = InMemoryCertStore()
    pool, provider = snap.pools["cloud-buildkit"], snap.providers["cloud"]
    first = _secrets(Renderer(certs=store).render_pool_infrastructure(pool, provider, snap.factory, "r", teams=["web"]).objects)
    del store.secrets[("cloud", "if-buildkit", "cloud-buildkit-buildkit-ca")]  # someone deleted the CA
    second = _secrets(Renderer(certs=store).render_pool_infrastructure(pool, provider, snap.factory, "r", teams=["web"]).objects)
    ca = _cert(second[("if-buildkit", "cloud-buildkit-buildkit-ca")]["ca.crt"])
    for key in (("if-buildkit", "cloud-buildkit-buildkitd-tls"), ("if-web", "cloud-buildkit-buildkit-client")):
        assert second[key]["tls.crt"] != first[key]["tls.crt"]
        _verify(ca, _cert(second[key]["tls.crt"]))


def test_tampered_certificate_material_is_replaced(snap):
    store = InMemoryCertStore()
    pool, provider = snap.pools["cloud-buildkit"], snap.providers["cloud"]
    Renderer(certs=store).render_pool_infrastructure(pool, provider, snap.factory, "r", teams=["web"])
    key = ("cloud", "if-buildkit", "cloud-buildkit-buildkitd-tls")
    store.secrets[key] = {**store.secrets[key], "tls.key": base64.b64encode(b"not a key").decode()}
    objects = Renderer(certs=store).render_pool_infrastructure(pool, provider, snap.factory, "r", teams=["web"]).objects
    server = _secrets(objects)[("if-buildkit", "cloud-buildkit-buildkitd-tls")]
    assert b"PRIVATE KEY" in base64.b64decode(server["tls.key"])


# -- template versions -------------------------------------------------------------------------

def test_templates_record_their_version_and_can_be_pinned(snap, tmp_path):
    root = _copy_templates(tmp_path)
    old = root / "docker" / "versions" / "0.9.0"
    old.mkdir(parents=True)
    for name in ("pipeline.yaml.j2", "pipelinerun.yaml.j2"):
        shutil.copy(root / "docker" / name, old / name)
    (old / "metadata.yaml").write_text((root / "docker" / "metadata.yaml").read_text().replace("version: 1.0.0", "version: 0.9.0"))
    store = TemplateStore(root)
    assert store.versions("docker") == ["0.9.0", "1.0.0"]
    b, pool, provider, factory = entities(snap, "storefront")
    latest = Renderer(templates=store).render_build(b, pool, provider, factory, REVISION)
    assert latest.template == "docker@1.0.0"
    pinned_model = b.model.model_copy(update={"spec": b.spec.model_copy(update={"templateVersion": "0.9.0"})})
    pinned = Renderer(templates=store).render_build(_entity(b, pinned_model), pool, provider, factory, REVISION)
    assert pinned.template == "docker@0.9.0"
    assert pinned.run["spec"]["pipelineRef"] == {"name": "if-docker-0-9-0"}
    pipeline = [o for o in pinned.objects if o["kind"] == "Pipeline"][0]
    assert pipeline["metadata"]["name"] == "if-docker-0-9-0"
    for obj in pinned.objects[-2:]:
        assert obj["metadata"]["annotations"]["imagefactory.dev/template"] == "docker@0.9.0"
    missing = b.model.model_copy(update={"spec": b.spec.model_copy(update={"templateVersion": "2.0.0"})})
    with pytest.raises(RenderError, match=r"2\.0\.0 .*available: 0\.9\.0, 1\.0\.0"):
        Renderer(templates=store).render_build(_entity(b, missing), pool, provider, factory, REVISION)


def test_every_method_has_a_consistent_template():
    store = TemplateStore()
    assert sorted(store.methods()) == ["buildx", "docker", "kaniko", "nix", "packer", "paketo"]
    for method in store.methods():
        tv = store.get(method)
        pipeline, _ = store.pipeline(tv)  # raises if metadata params differ from the Pipeline's
        declared = {p["name"]: p for p in pipeline["spec"]["params"]}
        assert [p["type"] for p in tv.metadata["params"]] == [declared[n].get("type", "string") for n in tv.param_names]
        task_names = {t["name"] for t in pipeline["spec"]["tasks"]}
        assert set(tv.metadata["resources"]["tasks"]) <= task_names
        assert pipeline["spec"]["tasks"][0]["name"] == "clone"
        # Every user value is a param consumed through env or args, never in a script's text.
        for task in pipeline["spec"]["tasks"]:
            for step in task["taskSpec"]["steps"]:
                assert "$(params." not in step.get("script", ""), (method, step["name"])


def test_pipelinerun_params_match_the_pipeline(result):
    for rendered in result.builds.values():
        if rendered.backend != "tekton":
            continue
        pipeline = [o for o in rendered.objects if o["kind"] == "Pipeline"][0]
        declared = {p["name"]: p for p in pipeline["spec"]["params"]}
        given = {p["name"] for p in rendered.run["spec"]["params"]}
        assert given <= set(declared)
        assert {n for n, p in declared.items() if "default" not in p} <= given


def test_broken_templates_are_reported_clearly(tmp_path, snap):
    b, pool, provider, factory = entities(snap, "storefront")
    cases = {
        "{% if build.image %}x{% endif %}": "condition",
        "{{ build.image }}": "JSON-quoting filter",
        "{{ build.image[3:] | q }}": "changes a build value",
    }
    for snippet, message in cases.items():
        root = _copy_templates(tmp_path / str(abs(hash(snippet))))
        run = root / "docker" / "pipelinerun.yaml.j2"
        run.write_text(run.read_text().replace("name: {{ template.pipelineName | q }}", f"name: {snippet}"))
        with pytest.raises(RenderError, match=message):
            Renderer(templates=TemplateStore(root)).render_build(b, pool, provider, factory, REVISION)


# -- placement stand-in ------------------------------------------------------------------------

def test_placement_stub(snap):
    pool, provider = choose_placement(snap.builds["gateway"], snap)
    assert (pool.name, provider.name) == ("cloud-multiarch", "cloud")
    unplaced = snap.builds["storefront"].model.model_copy(
        update={"spec": snap.builds["storefront"].spec.model_copy(update={"placement": None})})
    pool, _ = choose_placement(_entity(snap.builds["storefront"], unplaced), snap)
    assert pool.name == "cloud-buildkit"  # first by name that accepts docker for team web
    provider_only = snap.builds["edge-proxy"].model.model_copy(update={"spec": snap.builds["edge-proxy"].spec.model_copy(
        update={"placement": snap.builds["edge-proxy"].spec.placement.model_copy(update={"pool": None})})})
    assert choose_placement(_entity(snap.builds["edge-proxy"], provider_only), snap)[0].name == "edge-buildkit"


def test_one_bad_build_does_not_stop_the_others(snap):
    result = render_snapshot(snap, REVISION, placements={"storefront": ("cloud", "cloud-multiarch")}, renderer=Renderer())
    assert "does not accept method docker" in result.errors["build/storefront"]
    assert "checkout" in result.builds and "storefront" not in result.builds


# -- the command -------------------------------------------------------------------------------

def test_render_command_yaml_and_json(tmp_path):
    proc = cli("render", "--repo", str(REPO))
    assert proc.returncode == 0, proc.stderr
    docs = [d for d in yaml.safe_load_all(proc.stdout) if d]
    assert {d["kind"] for d in docs} >= {"PipelineRun", "Pipeline", "Job", "BuildKitPool", "Secret", "Deployment"}
    assert "# cluster: cloud" in proc.stdout and "PRIVATE KEY" not in proc.stdout and "LS0tLS1CRUdJTi" not in proc.stdout
    proc = cli("render", "--repo", str(REPO), "--build", "checkout", "--output", "json")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert set(data["builds"]) == {"checkout"}
    assert data["builds"]["checkout"]["kind"] == "PipelineRun"
    assert any(o["kind"] == "BuildKitPool" for o in data["clusters"]["edge"])


def test_render_command_writes_files_per_cluster(tmp_path):
    out = tmp_path / "out"
    proc = cli("render", "--repo", str(REPO), "--output-dir", str(out))
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["cloud", "edge", "lab"]
    files = sorted((out / "lab").iterdir())
    assert files[0].name.startswith("000-namespace-")
    text = "".join(p.read_text() for p in out.rglob("*.yaml"))
    assert "PRIVATE KEY" not in text and "LS0tLS1CRUdJTi" not in text


def test_render_command_errors(tmp_path):
    proc = cli("render", "--repo", str(REPO), "--build", "nope")
    assert proc.returncode == 2 and "no build named nope" in proc.stderr
    repo = tmp_path / "repo"
    shutil.copytree(REPO, repo)
    (repo / "builds" / "web" / "broken.yaml").write_text((REPO / "builds/web/checkout.yaml").read_text()
                                                         .replace("name: checkout", "name: broken")
                                                         .replace("pool: cloud-tekton", "pool: edge-buildkit"))
    proc = cli("render", "--repo", str(repo), "-o", "json")
    assert proc.returncode == 1
    assert "build/broken" in json.loads(proc.stdout)["errors"]


# -- helpers -----------------------------------------------------------------------------------

def _entity(entity, model, name=None):
    from dataclasses import replace
    return replace(entity, model=model, name=name or entity.name)


def _pool_on(snap, pool_name, node_pool):
    pool = snap.pools[pool_name]
    model = pool.model.model_copy(update={"spec": pool.spec.model_copy(update={"nodePool": node_pool})})
    return _entity(pool, model)


def _copy_templates(tmp_path: Path) -> Path:
    root = tmp_path / "pipeline-templates"
    shutil.copytree(DEFAULT_ROOT, root)
    return root


def _secrets(objects) -> dict:
    return {(o["metadata"]["namespace"], o["metadata"]["name"]): o["data"] for o in objects if o["kind"] == "Secret"}


def _cert(b64: str):
    from cryptography import x509
    return x509.load_pem_x509_certificate(base64.b64decode(b64))


def _sans(cert) -> list[str]:
    from cryptography import x509
    return sorted(cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName))


def _verify(ca, leaf) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec
    ca.public_key().verify(leaf.signature, leaf.tbs_certificate_bytes, ec.ECDSA(leaf.signature_hash_algorithm))
    assert leaf.issuer == ca.subject


def test_empty_label_values_become_node_affinity_not_selector():
    """node-role.kubernetes.io/worker: "" means "has the label"; 1.20's apply breaks on "" values."""
    from reconciler.rendering import render_build

    snap = Loader().load_directory(str(Path(__file__).parent.parent / "examples-repo"))
    build, pool = snap.builds["base-debug"], snap.pools["openshift-general"]
    rendered = render_build(build, pool, snap.providers["openshift-corp"], snap.factory.model, "rev")
    pod = rendered.run["spec"]["taskRunTemplate"]["podTemplate"]
    assert "nodeSelector" not in pod
    terms = pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert terms == [{"matchExpressions": [{"key": "node-role.kubernetes.io/worker", "operator": "Exists"}]}]
