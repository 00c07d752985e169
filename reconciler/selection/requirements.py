"""What a build needs: the build method's defaults merged with the request's own requirements.

The method side comes from seed 000's decision tree and Build Method Mapping: which branch
of the tree a method takes, its primary and fallback infrastructure, and the mapping's
selection criterion (a soft preference that only moves the score). The request side comes
from ``spec.platforms``, ``spec.requirements``, ``spec.infrastructure``, ``spec.placement``
and ``spec.force``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

# A build asking for more memory than this per node is a "high memory" build (seed 000's
# special requirements: GPU / High Memory -> a Kubernetes node pool if one has the capacity).
HIGH_MEMORY_BYTES = 32 * 2**30
CLOUD_TYPES = frozenset({"eks", "gke", "aks", "oke"})


@dataclass(frozen=True)
class MethodRule:
    method: str
    label: str
    # "dockerfile": Docker/Kaniko/Buildx -> "K8s available?"
    # "special": Packer/Nix/Paketo -> "Special requirements?"
    branch: str
    primary: str  # infrastructure the mapping prefers
    fallback: str
    criterion: str  # the mapping's "selection criteria", shown by explain
    prefers_capability: str | None = None
    prefers_provider_types: frozenset[str] = frozenset()


METHOD_RULES: dict[str, MethodRule] = {
    r.method: r
    for r in (
        MethodRule("docker", "Docker", "dockerfile", "kubernetes", "build_nodes", "always prefer Kubernetes"),
        MethodRule("kaniko", "Kaniko", "dockerfile", "kubernetes", "build_nodes", "always prefer Kubernetes"),
        MethodRule("buildx", "Buildx", "dockerfile", "kubernetes", "build_nodes", "Kubernetes for multi-arch"),
        MethodRule("packer", "Packer", "special", "kubernetes", "build_nodes", "Kubernetes for cloud integration",
                   prefers_provider_types=CLOUD_TYPES),
        MethodRule("nix", "Nix", "special", "kubernetes", "build_nodes", "Kubernetes for caching",
                   prefers_capability="fast-storage"),
        MethodRule("paketo", "Paketo", "special", "kubernetes", "build_nodes", "Kubernetes for supply chain"),
    )
}

_QUANTITY = re.compile(r"^\+?([0-9]+(?:\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]+|[KMGTPE]i?|m|k|u|n)?$")
_SUFFIX = {
    None: 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9, "k": 1e3, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12, "P": 1e15, "E": 1e18,
    "Ki": 2.0**10, "Mi": 2.0**20, "Gi": 2.0**30, "Ti": 2.0**40, "Pi": 2.0**50, "Ei": 2.0**60,
}


@lru_cache(maxsize=4096)
def quantity(text: str | None) -> float | None:
    """A Kubernetes quantity as a number of base units (cores, bytes): '500m' -> 0.5, '4Gi' -> 4*2**30."""
    if text is None:
        return None
    match = _QUANTITY.match(str(text).strip())
    if not match:
        raise ValueError(f"'{text}' is not a Kubernetes quantity")
    number, suffix = match.groups()
    if suffix and suffix[0] in "eE":
        return float(number + suffix)
    return float(number) * _SUFFIX[suffix]


def architecture(platform: str) -> str:
    """'linux/arm64' -> 'arm64', 'linux/arm/v7' -> 'arm'."""
    parts = platform.split("/")
    return parts[1] if len(parts) > 1 else parts[0]


@dataclass(frozen=True)
class Needs:
    """Everything selection reads from one build, normalised and hashable."""

    method: str
    platforms: tuple[str, ...]
    architectures: tuple[str, ...]  # sorted, distinct
    gpu: int = 0
    gpu_type: str | None = None
    cpu: float | None = None  # cores
    cpu_text: str | None = None
    memory: float | None = None  # bytes
    memory_text: str | None = None
    air_gapped: bool = False
    legacy: bool = False
    hardware: str | None = None
    infrastructure: str = "auto"
    placement_provider: str | None = None
    placement_pool: str | None = None
    force: bool = False

    @property
    def rule(self) -> MethodRule:
        return METHOD_RULES[self.method]

    @property
    def high_memory(self) -> bool:
        return self.memory is not None and self.memory > HIGH_MEMORY_BYTES

    @property
    def multi_arch(self) -> bool:
        return len(self.architectures) > 1

    @property
    def special(self) -> tuple[str, ...]:
        """The seed tree's special requirements this build has, most decisive first."""
        out = []
        if self.air_gapped:
            out.append("air-gapped")
        if self.legacy:
            out.append("legacy")
        if self.hardware:
            out.append("custom-hardware")
        if self.gpu:
            out.append("gpu")
        if self.high_memory:
            out.append("high-memory")
        return tuple(out)

    @property
    def chooses(self) -> bool:
        """The request picks infrastructure itself (placement or a kind) instead of auto."""
        return self.infrastructure != "auto" or self.placement_provider is not None

    def wants(self) -> list[str]:
        """The special requirements in words ('1x nvidia-a100 GPU', '600Gi memory', ...)."""
        parts = []
        if self.gpu:
            parts.append(f"{self.gpu}x {self.gpu_type + ' ' if self.gpu_type else ''}GPU")
        if self.cpu_text:
            parts.append(f"{self.cpu_text} CPU")
        if self.memory_text:
            parts.append(f"{self.memory_text} memory")
        if self.air_gapped:
            parts.append("air-gapped")
        if self.legacy:
            parts.append("legacy system")
        if self.hardware:
            parts.append(f"hardware {self.hardware}")
        return parts

    def describe(self) -> str:
        """'1x nvidia-a100 GPU, 600Gi memory, linux/arm64' -- what the build asks for, for reasons."""
        parts = self.wants()
        parts.append(", ".join(self.platforms))
        return ", ".join(parts)


_INTERNED: dict[tuple, Needs] = {}


def needs_of(spec: Any) -> Needs:
    """The Needs of a ``BuildSpec`` (``build.model.spec``); equal specs give the same object."""
    req = spec.requirements
    gpu = req.gpu
    placement = spec.placement
    key = (spec.method, tuple(spec.platforms), gpu.count if gpu is not None else 0, gpu.type if gpu is not None else None,
           req.cpu, req.memory, req.airGapped, req.legacySystem, req.customHardware, spec.infrastructure,
           placement.provider if placement is not None else None, placement.pool if placement is not None else None,
           spec.force)
    needs = _INTERNED.get(key)
    if needs is None:
        if len(_INTERNED) > 100_000:
            _INTERNED.clear()
        needs = _INTERNED[key] = _make(key)
    return needs


def _make(key: tuple) -> Needs:
    method, platforms, gpu, gpu_type, cpu, memory, air, legacy, hardware, infrastructure, provider, pool, force = key
    return Needs(
        method=method,
        platforms=platforms,
        architectures=tuple(sorted({architecture(p) for p in platforms})),
        gpu=gpu,
        gpu_type=gpu_type,
        cpu=quantity(cpu),
        cpu_text=cpu,
        memory=quantity(memory),
        memory_text=memory,
        air_gapped=air,
        legacy=legacy,
        hardware=hardware,
        infrastructure=infrastructure,
        placement_provider=provider,
        placement_pool=pool,
        force=force,
    )
