"""Seed 000's decision tree and capability table, one row per branch, on the in-memory world."""

from __future__ import annotations

import pytest

from reconciler.models.status import Selection
from reconciler.selection import ProviderHealth

from .test_selection_world import build, decide, healthy, pool, provider, node

# (id, team, build, catalog args, state, infrastructure, pool, words in the reason)
TREE = [
    # Build method? Docker/Kaniko/Buildx -> K8s available? -> yes -> Kubernetes
    ("docker-k8s-available", "web", build("docker"), {}, "Admitted", "kubernetes", "eks-general",
     ["Docker builds run on Kubernetes", "highest-priority"]),
    ("kaniko-k8s-available", "web", build("kaniko"), {}, "Admitted", "kubernetes", "eks-general", ["Kaniko"]),
    ("buildx-k8s-available", "web", build("buildx"), {}, "Admitted", "kubernetes", "eks-general", ["Buildx"]),
    # ... K8s available? -> no -> build nodes (only build-node pools are on the cluster the team may use)
    ("docker-k8s-unavailable", "platform", build("docker"), {"only": ["onprem"]}, "Admitted", "build_nodes",
     "airgap-kaniko", ["no pool on Kubernetes can run it, so it falls back to build nodes"]),
    # Packer/Nix/Paketo -> Special requirements? -> no -> Kubernetes
    ("packer-no-special", "web", build("packer"), {}, "Admitted", "kubernetes", "eks-general",
     ["Packer builds without special requirements run on Kubernetes"]),
    ("nix-no-special", "web", build("nix"), {}, "Admitted", "kubernetes", "eks-general", ["Nix"]),
    ("paketo-no-special", "web", build("paketo"), {}, "Admitted", "kubernetes", "eks-general", ["Paketo"]),
    # -> yes -> GPU/High memory -> K8s node pool available? -> yes -> Kubernetes
    ("packer-gpu-k8s", "ml", build("packer", gpu={"count": 1, "type": "nvidia-a100"}), {}, "Admitted", "kubernetes",
     "eks-gpu", ["GPU required", "only pool"]),
    ("nix-high-memory-k8s", "data", build("nix", memory="400Gi"), {}, "Admitted", "kubernetes", "vks-highmem",
     ["High memory required (400Gi memory)"]),
    # ... -> no -> build nodes (a GPU node pool exists only as build nodes)
    ("packer-gpu-build-nodes", "ml", build("packer", gpu={"count": 1}),
     {"providers": [provider("lab", "kubernetes", [node("general"), node("gpu-box", gpu=2, gpu_type="nvidia-l4",
                                                                          build_nodes=True)])],
      "pools": [pool("lab-general", "lab", "general"), pool("lab-gpu", "lab", "gpu-box")], "health": {}},
     "Admitted", "build_nodes", "lab-gpu", ["GPU required", "falls back to build nodes"]),
    # -> Air-gapped -> build nodes
    ("nix-air-gapped", "ml", build("nix", airGapped=True), {}, "Admitted", "build_nodes", "airgap-nix",
     ["Air-gapped builds run on build nodes"]),
    ("kaniko-air-gapped", "ml", build("kaniko", airGapped=True), {}, "Admitted", "build_nodes", "airgap-kaniko",
     ["Air-gapped"]),
    # -> Legacy system -> build nodes
    ("paketo-legacy", "platform", build("paketo", legacySystem=True), {}, "Admitted", "build_nodes",
     "openshift-legacy", ["Legacy-system builds run on build nodes"]),
    ("packer-legacy", "platform", build("packer", legacySystem=True), {}, "Admitted", "build_nodes",
     "openshift-legacy", ["Legacy-system"]),
    # Custom hardware (the seed's build-node edge case), matched by name
    ("custom-hardware", "platform", build("docker", customHardware="xilinx-fpga"), {}, "Admitted", "build_nodes",
     "fpga", ["Custom hardware xilinx-fpga required"]),
]

# Seed 000's Provider Capability Matching table.
CAPABILITIES = [
    ("gpu-eks-p4", "ml", build(gpu={"count": 4, "type": "nvidia-a100"}), {"only": ["aws"]}, "eks-gpu"),
    ("gpu-gke-v100", "ml", build(gpu={"count": 2, "type": "nvidia-v100"}), {"only": ["gcp"]}, "gke-gpu"),
    ("gpu-aks-nc", "ml", build(gpu={"count": 1, "type": "nvidia-t4"}), {"only": ["azure"]}, "aks-gpu"),
    ("gpu-any-type-tie-by-name", "ml", build(gpu={"count": 1}), {}, "eks-gpu"),  # aws < azure < gcp
    ("high-memory-node-pool", "data", build(memory="300Gi"), {}, "vks-highmem"),
    ("multi-arch-eks-graviton", "web", build(platforms=["linux/arm64"]), {"only": ["aws"]}, "eks-graviton"),
    ("multi-arch-gke-arm", "web", build(platforms=["linux/arm64"]), {"only": ["gcp"]}, "gke-arm"),
    ("multi-arch-aks-ampere", "web", build(platforms=["linux/arm64"]), {"only": ["azure"]}, "aks-ampere"),
    ("multi-arch-one-node-pool-with-both", "web", build("buildx", platforms=["linux/amd64", "linux/arm64"]), {},
     "edge-buildkit"),
    ("air-gapped-build-nodes", "platform", build(airGapped=True), {}, "airgap-kaniko"),
    ("legacy-build-nodes-openshift", "platform", build(legacySystem=True), {}, "openshift-legacy"),
]


@pytest.mark.parametrize("team,b,args,state,infrastructure,pool_name,words", [r[1:] for r in TREE], ids=[r[0] for r in TREE])
def test_decision_tree(team, b, args, state, infrastructure, pool_name, words):
    d = decide(b, team=team, **args)
    assert (d.state, d.infrastructure, d.pool) == (state, infrastructure, pool_name), d.reason
    for word in words:
        assert word in d.reason
    assert d.path[0].rule == "Who chooses?"
    rules = [s.rule for s in d.path]
    assert "Build method?" in rules and "Special requirements?" in rules
    assert rules[-1] == "Capacity"
    Selection.model_validate(d.to_status())


@pytest.mark.parametrize("team,b,args,pool_name", [r[1:] for r in CAPABILITIES], ids=[r[0] for r in CAPABILITIES])
def test_capability_table(team, b, args, pool_name):
    d = decide(b, team=team, **args)
    assert d.state == "Admitted" and d.pool == pool_name, d.reason


REJECTIONS = [
    ("no-provider-offers-arm64", "data", build(platforms=["linux/arm64"]), {"only": ["corp", "vsphere"]},
     "No provider offers arm64 to team data"),
    ("no-single-node-pool-multi-arch", "data", build(platforms=["linux/amd64", "linux/arm64"]), {},
     "No single node pool offers amd64 and arm64 together to team data"),
    ("gpu-too-many", "ml", build(gpu={"count": 16}), {}, "No pool open to team ml has 16x GPU per node"),
    ("gpu-wrong-type", "ml", build(gpu={"count": 1, "type": "nvidia-h100"}), {}, "nvidia-h100"),
    ("memory-too-big", "data", build(memory="2Ti"), {}, "2Ti of memory per node (the largest has 512Gi)"),
    ("cpu-too-many", "data", build(cpu="128"), {}, "128 CPUs per node (the largest has 64)"),
    ("no-team-access", "nobody", build(), {"only": ["onprem", "corp"]}, "No pool is open to team nobody"),
    ("method-not-accepted", "platform", build("buildx"), {"only": ["onprem"]},
     "No pool open to team platform accepts buildx builds"),
    ("air-gapped-not-on-build-nodes", "web", build(airGapped=True),
     {"providers": [provider("dark", "kubernetes", [node("k8s", capabilities=["air-gapped"])])],
      "pools": [pool("dark-k8s", "dark", "k8s")], "health": {}},
     "Air-gapped builds run on build nodes, but no pool on build nodes can run it (pools elsewhere that could: dark/dark-k8s)"),
    ("hardware-missing", "web", build(customHardware="xilinx-fpga"), {}, "No node pool open to team web has xilinx-fpga"),
]


@pytest.mark.parametrize("team,b,args,words", [r[1:] for r in REJECTIONS], ids=[r[0] for r in REJECTIONS])
def test_rejections_say_why(team, b, args, words):
    d = decide(b, team=team, **args)
    assert d.state == "Rejected"
    assert words in d.reason
    assert (d.provider, d.pool, d.infrastructure, d.confidence) == (None, None, None, 0.0)
    assert d.path[-1].rule == "Result"
    assert d.alternatives and all(a.rule for a in d.alternatives)
    Selection.model_validate(d.to_status())


def test_special_requirements_apply_to_dockerfile_methods_too():
    d = decide(build("docker", gpu={"count": 1, "type": "nvidia-v100"}), team="ml")
    assert d.pool == "gke-gpu"
    step = next(s for s in d.path if s.rule == "Special requirements?")
    assert "GPU" in step.outcome


def test_plain_build_keeps_gpu_and_special_pools_free():
    # ml may use every GPU pool, but a build without GPUs lands on a general pool.
    d = decide(build("docker"), team="ml", only=["azure"])
    assert d.pool == "aks-general"
    lost = {a.pool: a for a in d.alternatives}
    assert "GPUs this build does not need" in lost["aks-gpu"].reason
    assert lost["aks-gpu"].score < d.score


def test_air_gapped_pool_is_not_used_for_an_ordinary_build_when_kubernetes_fits():
    d = decide(build("docker"), team="platform", only=["onprem", "corp"])
    assert d.pool == "openshift-general" and d.infrastructure == "kubernetes"


def test_providers_available_step_single_and_multiple():
    single = decide(build(), team="web", only=["aws"])
    assert "1 of 1 providers admit team web: a single one" in single.path[1].outcome
    several = decide(build(), team="web")
    assert "several, so their capabilities are compared" in several.path[1].outcome


def test_alternatives_cover_every_other_pool_once():
    d = decide(build(gpu={"count": 1}), team="ml")
    names = [a.pool for a in d.alternatives]
    assert sorted(names + [d.pool]) == sorted(p.metadata.name for p in __import__(
        "tests.test_selection_world", fromlist=["world_pools"]).world_pools())
    fitting = [a for a in d.alternatives if a.score is not None]
    assert all(a.rule is None for a in fitting) and all(a.reason for a in d.alternatives)
    # fitting ones first, best first
    assert d.alternatives[: len(fitting)] == tuple(fitting)


def test_unknown_health_is_usable_but_lowers_confidence_and_says_so():
    known = decide(build(), team="web")
    unknown = decide(build(), team="web", health={})
    assert known.pool == unknown.pool == "eks-general"
    assert known.confidence == 1.0 and unknown.confidence == 0.8
    assert "not checked yet" in unknown.reason and "not checked" not in known.reason


def test_factory_default_build_nodes_prefers_build_nodes():
    from reconciler.models import FactoryConfig

    factory = FactoryConfig.model_validate({
        "metadata": {"name": "f"},
        "spec": {"roles": [{"name": "dev", "permissions": ["infrastructure:view"]}],
                 "defaults": {"infrastructure": "build_nodes"}}})
    d = decide(build(), team="platform", factory=factory)
    assert d.infrastructure == "build_nodes"
    assert any(s.rule == "Factory default" for s in d.path)


def test_health_input_validates_state():
    with pytest.raises(ValueError):
        ProviderHealth("Sick")
    assert healthy()["aws"].state == "Healthy"
