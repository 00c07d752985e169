"""A small in-memory world of providers and pools for the selection tests, built from models.

One provider per row of seed 000's capability table: EKS (general, Graviton, A100 GPUs), GKE
(general, Arm, V100 GPUs), AKS (general, Ampere, T4 GPUs), a plain on-premises cluster with
air-gapped and FPGA build nodes, OpenShift with RHEL 7 build nodes, Rancher with a mixed
amd64+arm64 node pool, and vKS with a 512Gi high-memory node pool.
"""

from __future__ import annotations

from reconciler.models import BuildRequest, Pool, Provider
from reconciler.selection import Actor, Catalog, ProviderHealth, select

ALL_METHODS = ["docker", "kaniko", "buildx", "packer", "nix", "paketo"]
DEVELOPER = frozenset({"infrastructure:select", "infrastructure:view", "build:create:with-infra"})
ADMIN = DEVELOPER | {"infrastructure:manage", "infrastructure:configure", "infrastructure:monitor"}
VIEWER = frozenset({"infrastructure:view"})


def node(name, archs=("amd64",), cpu="16", memory="64Gi", gpu=0, gpu_type=None, build_nodes=False,
         capabilities=(), hardware=()):
    out = {"name": name, "architectures": list(archs), "capacity": {"cpu": cpu, "memory": memory, "gpu": gpu},
           "capabilities": list(capabilities), "buildNodes": build_nodes, "hardware": list(hardware)}
    if gpu_type:
        out["gpuType"] = gpu_type
    return out


def provider(name, type_, nodes, tenants=("*",), capabilities=(), buildkit=False):
    auth = {"eks": {"method": "aws-iam", "clusterName": name}}.get(type_, {"method": "in-cluster"})
    return Provider.model_validate({
        "apiVersion": "imagefactory.dev/v1alpha1", "kind": "Provider", "metadata": {"name": name},
        "spec": {"type": type_, "endpoint": "https://k8s.example.com", "auth": auth, "tenants": list(tenants),
                 "capabilities": list(capabilities), "nodePools": nodes, "buildkitController": buildkit},
    })


def pool(name, provider_name, node_pool, methods=ALL_METHODS, teams=("*",), backend="tekton", max_builds=5,
         priority=0, buildkit_mode=None, running=None):
    spec = {"provider": provider_name, "nodePool": node_pool, "backend": backend, "methods": list(methods),
            "teams": list(teams), "maxConcurrentBuilds": max_builds, "priority": priority}
    if buildkit_mode:
        spec["buildkit"] = {"mode": buildkit_mode}
    doc = {"apiVersion": "imagefactory.dev/v1alpha1", "kind": "Pool", "metadata": {"name": name}, "spec": spec}
    if running is not None:
        doc["status"] = {"running": running}
    return Pool.model_validate(doc)


def build(method="docker", platforms=None, infrastructure="auto", placement=None, force=False, name="app", **req):
    source = {"git": "https://github.com/acme/app.git"}
    if method == "packer":
        source["template"] = "image.pkr.hcl"
    if method == "nix":
        source["flake"] = ".#image"
    spec = {"method": method, "source": source, "image": "registry.acme.example/app:1", "requirements": req,
            "infrastructure": infrastructure, "force": force}
    if platforms:
        spec["platforms"] = list(platforms)
    if placement:
        spec["placement"] = placement
    return BuildRequest.model_validate({"apiVersion": "imagefactory.dev/v1alpha1", "kind": "BuildRequest",
                                        "metadata": {"name": name}, "spec": spec})


def world_providers():
    return [
        provider("aws", "eks", [node("general", cpu="32", memory="128Gi"), node("graviton", archs=["arm64"]),
                                node("gpu-a100", cpu="96", memory="1152Gi", gpu=8, gpu_type="nvidia-a100",
                                     capabilities=["gpu", "high-memory"])]),
        provider("gcp", "gke", [node("general"), node("tau-arm", archs=["arm64"]),
                                node("gpu-v100", memory="104Gi", gpu=2, gpu_type="nvidia-v100", capabilities=["gpu"])]),
        provider("azure", "aks", [node("general"), node("ampere", archs=["arm64"]),
                                  node("gpu-nc", cpu="24", memory="220Gi", gpu=4, gpu_type="nvidia-t4",
                                       capabilities=["gpu"])]),
        provider("onprem", "kubernetes", [
            node("airgap", cpu="32", memory="128Gi", build_nodes=True, capabilities=["air-gapped"]),
            node("fpga", build_nodes=True, capabilities=["custom-hardware"], hardware=["xilinx-fpga"])],
            tenants=["platform", "ml"], capabilities=["air-gapped"]),
        provider("corp", "openshift", [node("workers", cpu="32", memory="128Gi"),
                                       node("rhel7", build_nodes=True, capabilities=["legacy"])],
                 tenants=["platform", "data"]),
        provider("edge", "rancher", [node("mixed", archs=["amd64", "arm64"])], tenants=["web", "mobile"], buildkit=True),
        provider("vsphere", "vks", [node("highmem", cpu="64", memory="512Gi", capabilities=["high-memory"])],
                 tenants=["data", "platform"]),
    ]


def world_pools():
    return [
        pool("eks-general", "aws", "general", priority=10),
        pool("eks-graviton", "aws", "graviton"),
        pool("eks-gpu", "aws", "gpu-a100", teams=["ml"]),
        pool("gke-general", "gcp", "general"),
        pool("gke-arm", "gcp", "tau-arm"),
        pool("gke-gpu", "gcp", "gpu-v100", teams=["ml"]),
        pool("aks-general", "azure", "general"),
        pool("aks-ampere", "azure", "ampere"),
        pool("aks-gpu", "azure", "gpu-nc", teams=["ml"]),
        pool("airgap-kaniko", "onprem", "airgap", methods=["docker", "kaniko"], backend="kaniko-job"),
        pool("airgap-nix", "onprem", "airgap", methods=["nix", "packer"]),
        pool("fpga", "onprem", "fpga", methods=["docker"], teams=["platform"]),
        pool("openshift-general", "corp", "workers"),
        pool("openshift-legacy", "corp", "rhel7", methods=["docker", "packer", "paketo"], teams=["platform"]),
        pool("edge-buildkit", "edge", "mixed", methods=["docker", "buildx"], backend="buildkit", buildkit_mode="controller"),
        pool("vks-highmem", "vsphere", "highmem"),
    ]


def catalog(providers=None, pools=None, health=None, load=None, only=None, factory=None):
    providers = world_providers() if providers is None else providers
    pools = world_pools() if pools is None else pools
    if only is not None:
        providers = [p for p in providers if p.metadata.name in only]
        pools = [q for q in pools if q.spec.provider in only]
    return Catalog.build(providers, pools, health=health, load=load, factory=factory)


def healthy(*names, **states):
    """Health for the world: every named provider Healthy, others as given in ``states``."""
    out = {n: ProviderHealth("Healthy") for n in ("aws", "gcp", "azure", "onprem", "corp", "edge", "vsphere")}
    out.update(states)
    return out


def decide(b, team="web", permissions=DEVELOPER, identity="dev@acme.example", **catalog_args):
    catalog_args.setdefault("health", healthy())
    return select(b, catalog(**catalog_args), team=team, actor=Actor(identity, frozenset(permissions)))


def test_world_is_valid_and_complete():
    c = catalog()
    assert not c.skipped
    assert len(c.pools) == len(world_pools())
    assert {p.infrastructure for p in c.pools} == {"kubernetes", "build_nodes"}
