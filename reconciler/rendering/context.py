"""From repository entities to the facts every backend renders from (placement, resources, ...)."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from typing import Any

from .common import RenderError, go_duration
from .quoting import no_dollar
from .tenancy import default_timeout, service_account, team_namespace

# Seed 003's default build resources (a build that states none gets these).
DEFAULT_REQUESTS = {"cpu": "500m", "memory": "1Gi"}
DEFAULT_LIMITS = {"cpu": "1", "memory": "2Gi"}
GPU_RESOURCE = "nvidia.com/gpu"
# The pod user that owns checkouts (the clone step's uid); every step is in this group.
FS_GROUP = 65532
# Registry credentials when a build names no spec.pushSecret: this Secret of the team's
# namespace, if the team created it (mounted optionally), else the tool's own credential
# helpers (workload identity).
DEFAULT_REGISTRY_SECRET = "image-factory-registry"
# Methods whose tool builds several platforms in one run; the others build exactly one.
MULTI_PLATFORM_METHODS = frozenset({"docker", "buildx"})


@dataclass(frozen=True)
class Scheduling:
    """Where a pool's pods go: its node pool's labels and taints (None when there are none)."""

    node_selector: dict | None
    tolerations: list | None
    architectures: tuple[str, ...]
    # Labels whose value is empty (e.g. node-role.kubernetes.io/worker: "") mean "has this
    # label"; they become a required node-affinity Exists term, not a nodeSelector entry
    # (Kubernetes 1.20's server-side apply turns an empty selector value into null).
    affinity: dict | None = None


def node_pool_of(pool: Any, provider: Any) -> Any:
    name = pool.spec.nodePool
    for node_pool in provider.spec.nodePools:
        if node_pool.name == name:
            return node_pool
    raise RenderError(f"pool {pool.name}: node pool {name} is not declared by provider {provider.name}")


def scheduling(pool: Any, provider: Any) -> Scheduling:
    node_pool = node_pool_of(pool, provider)
    selector = {k: v for k, v in node_pool.labels.items() if v != ""} or None
    present = sorted(k for k, v in node_pool.labels.items() if v == "")
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": k, "operator": "Exists"} for k in present]}]}}} if present else None
    tolerations = []
    for taint in node_pool.taints:
        if taint.value:
            tolerations.append({"key": taint.key, "operator": "Equal", "value": taint.value, "effect": taint.effect})
        else:
            tolerations.append({"key": taint.key, "operator": "Exists", "effect": taint.effect})
    return Scheduling(selector, tolerations or None, tuple(node_pool.architectures), affinity)


def node_selector_for(sched: Scheduling, platforms: list[str]) -> dict | None:
    """The node pool's labels, plus ``kubernetes.io/arch`` when a single-platform build lands on
    a node pool with several architectures (so it builds natively)."""
    selector = dict(sched.node_selector or {})
    if len(platforms) == 1 and len(sched.architectures) > 1:
        arch = platforms[0].split("/")[1]
        if arch in sched.architectures:
            selector.setdefault("kubernetes.io/arch", arch)
    return selector or None


def compute_resources(requirements: Any) -> dict:
    """The build's cpu, memory and gpu as Kubernetes requests and limits (seed 003 defaults)."""
    requests = dict(DEFAULT_REQUESTS)
    limits = dict(DEFAULT_LIMITS)
    if requirements.cpu:
        requests["cpu"] = limits["cpu"] = requirements.cpu
    if requirements.memory:
        requests["memory"] = limits["memory"] = requirements.memory
    if requirements.gpu is not None:
        # Extended resources are set as limits only; the request defaults to the limit.
        limits[GPU_RESOURCE] = str(requirements.gpu.count)
    return {"requests": requests, "limits": limits}


def cache_image(image: str) -> str:
    """``registry/team/app:1.2`` -> ``registry/team/app:buildcache`` (BuildKit's registry cache)."""
    repository = image.split("@", 1)[0]
    slash = repository.rfind("/")
    colon = repository.rfind(":")
    if colon > slash:
        repository = repository[:colon]
    return f"{repository}:buildcache"


@dataclass(frozen=True)
class BuildFacts:
    """Everything about one build that the backends need, validated once."""

    name: str
    team: str
    method: str
    namespace: str
    service_account: str
    timeout: str  # Go duration, canonical form
    image: str
    platforms: tuple[str, ...]
    build_args: dict
    push_secret: str | None
    git: str
    revision: str
    context_dir: str
    dockerfile: str | None
    template: str | None
    flake: str | None
    builder: str | None
    resources: dict
    node_selector: dict | None
    tolerations: list | None
    affinity: dict | None
    provider: str
    provider_type: str
    pool: str
    source_path: str | None
    template_version: str | None


def build_facts(build: Any, pool: Any, provider: Any, factory: Any, sched: Scheduling | None = None) -> BuildFacts:
    spec = build.spec
    team = build.team
    if not team:
        raise RenderError(f"build {build.name} has no team (it must live in builds/<team>/)")
    src = spec.source
    method = spec.method
    platforms = list(spec.platforms)
    if len(platforms) > 1 and method not in MULTI_PLATFORM_METHODS:
        raise RenderError(f"method {method} builds one platform per run, not {len(platforms)}; use buildx for multi-arch images")
    dockerfile = None
    if method in ("docker", "kaniko", "buildx"):
        dockerfile = posixpath.normpath(src.dockerfile or posixpath.join(src.contextDir, "Dockerfile"))
    sched = sched or scheduling(pool, provider)
    return BuildFacts(
        name=build.name,
        team=team,
        method=method,
        namespace=team_namespace(team, factory),
        service_account=service_account(factory),
        timeout=go_duration(spec.timeout or default_timeout(factory)),
        image=no_dollar("spec.image", spec.image),
        platforms=tuple(platforms),
        build_args=dict(spec.buildArgs),
        push_secret=spec.pushSecret,
        git=no_dollar("spec.source.git", src.git),
        revision=no_dollar("spec.source.revision", src.revision),
        context_dir=no_dollar("spec.source.contextDir", src.contextDir),
        dockerfile=no_dollar("spec.source.dockerfile", dockerfile),
        template=no_dollar("spec.source.template", src.template),
        flake=no_dollar("spec.source.flake", src.flake),
        builder=no_dollar("spec.source.builder", src.builder),
        resources=compute_resources(spec.requirements),
        node_selector=node_selector_for(sched, platforms),
        tolerations=sched.tolerations,
        affinity=sched.affinity,
        provider=provider.name,
        provider_type=provider.spec.type,
        pool=pool.name,
        source_path=getattr(build, "path", None),
        template_version=spec.templateVersion,
    )


def pod_security_context() -> dict:
    """Pod-wide: checkouts are group-owned by FS_GROUP (every step can read them), default seccomp."""
    return {"fsGroup": FS_GROUP, "fsGroupChangePolicy": "OnRootMismatch", "seccompProfile": {"type": "RuntimeDefault"}}
