"""Seeded synthetic GitOps repositories: N builds, 50 providers, 200 pools, as real Git repos."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

TYPES = {"eks": "aws-iam", "gke": "gcp-workload-identity", "aks": "azure-managed-identity",
         "oke": "oci-instance-principal", "vks": "kubeconfig", "openshift": "kubeconfig",
         "rancher": "kubeconfig", "kubernetes": "kubeconfig"}
AUTH = {
    "aws-iam": "    method: aws-iam\n    clusterName: c{i}\n",
    "gcp-workload-identity": "    method: gcp-workload-identity\n    project: proj-{i:05d}\n    location: europe-west4\n    clusterName: c{i}\n",
    "azure-managed-identity": "    method: azure-managed-identity\n",
    "oci-instance-principal": "    method: oci-instance-principal\n    clusterId: ocid1.cluster.oc1.iad.c{i}\n    region: us-ashburn-1\n",
    "kubeconfig": "    method: kubeconfig\n    kubeconfig: /etc/kube/c{i}.yaml\n",
}
METHODS = ["docker", "kaniko", "buildx", "packer", "nix", "paketo"]
TEAMS = [f"team-{i:02d}" for i in range(20)]


def _write(root: Path, rel: str, text: str) -> None:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def build_yaml(name: str, method: str, rng: random.Random, version: int = 1) -> str:
    source = f"    git: https://git.example.com/{name}.git\n    revision: v{version}.{rng.randint(0, 99)}\n"
    if method == "packer":
        source += "    template: packer/image.pkr.hcl\n"
    elif method == "nix":
        source += "    flake: \".#image\"\n"
    extra = ""
    roll = rng.random()
    if roll < 0.05:
        extra = "  requirements:\n    gpu: {count: 1}\n"
    elif roll < 0.15:
        extra = "  platforms: [linux/amd64, linux/arm64]\n"
    elif roll < 0.2:
        extra = "  requirements:\n    memory: 48Gi\n"
    return (f"# yaml-language-server: $schema=../../schemas/buildrequest.schema.json\n"
            f"apiVersion: imagefactory.dev/v1alpha1\nkind: BuildRequest\nmetadata:\n  name: {name}\n"
            f"spec:\n  method: {method}\n  source:\n{source}  image: registry.example.com/{name}:{version}.0\n{extra}")


def generate(root: Path, builds: int, providers: int = 50, pools: int = 200, seed: int = 42) -> Path:
    """Write the repository and commit it; returns ``root``."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    teams = "".join(f"    - name: {t}\n" for t in TEAMS)
    _write(root, "factory.yaml", (
        "apiVersion: imagefactory.dev/v1alpha1\nkind: FactoryConfig\nmetadata:\n  name: bench\nspec:\n"
        "  roles:\n    - name: admin\n      permissions: [infrastructure:configure, infrastructure:manage]\n"
        "    - name: developer\n      permissions: [infrastructure:select, infrastructure:view, build:create:with-infra]\n"
        f"  teams:\n{teams}  members:\n    - identity: admin@example.com\n      roles: [admin]\n"))
    types = list(TYPES)
    for i in range(providers):
        typ = types[i % len(types)]
        auth = AUTH[TYPES[typ]].format(i=i)
        _write(root, f"providers/p{i:03d}.yaml", (
            f"apiVersion: imagefactory.dev/v1alpha1\nkind: Provider\nmetadata:\n  name: p{i:03d}\nspec:\n"
            f"  type: {typ}\n  endpoint: https://p{i:03d}.k8s.example.com\n  auth:\n{auth}"
            "  nodePools:\n    - name: general\n      capacity: {cpu: \"64\", memory: 256Gi}\n      architectures: [amd64]\n"
            "    - name: arm\n      architectures: [arm64]\n"
            "    - name: gpu\n      capacity: {gpu: 4, memory: 512Gi}\n      gpuType: nvidia-a100\n"
            "    - name: multi\n      architectures: [amd64, arm64]\n"))
    node_pools = ["general", "arm", "gpu", "multi"]
    for j in range(pools):
        methods = rng.sample(METHODS, rng.randint(2, 6))
        pool_teams = '["*"]' if rng.random() < 0.5 else "[" + ", ".join(rng.sample(TEAMS, 3)) + "]"
        _write(root, f"pools/pool{j:03d}.yaml", (
            f"apiVersion: imagefactory.dev/v1alpha1\nkind: Pool\nmetadata:\n  name: pool{j:03d}\nspec:\n"
            f"  provider: p{j % providers:03d}\n  nodePool: {node_pools[j % 4]}\n  backend: tekton\n"
            f"  methods: [{', '.join(methods)}]\n  teams: {pool_teams}\n  maxConcurrentBuilds: {rng.randint(2, 20)}\n"))
    for k in range(builds):
        team = TEAMS[k % len(TEAMS)]
        _write(root, f"builds/{team}/b{k:05d}.yaml", build_yaml(f"b{k:05d}", rng.choice(METHODS), rng))
    env = {**os.environ, "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
           "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"}
    # Packed, as a clone the reconciler fetches would be.
    # gc.auto=0: a background auto-gc after the big commit would race the explicit gc.
    for cmd in (["init", "-q", "-b", "main"], ["config", "gc.auto", "0"], ["add", "-A"],
                ["commit", "-q", "-m", "generated"], ["gc", "-q"]):
        subprocess.run(["git", "-C", str(root), *cmd], check=True, env=env)
    return root
