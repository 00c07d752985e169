"""Seed 000's decision tree: which kind of infrastructure a build goes to, and why.

    Build method?
      Docker / Kaniko / Buildx  -> K8s available?  yes -> Kubernetes, no -> build nodes
      Packer / Nix / Paketo     -> Special requirements?
                                     no                -> Kubernetes
                                     GPU / high memory -> K8s node pool available? yes -> Kubernetes, no -> build nodes
                                     air-gapped        -> build nodes
                                     legacy system     -> build nodes

Special requirements are honoured for every method (the seed's selector analyses the
requirements of every build; the drawing shows them on one branch). Custom hardware is one
of the seed's build-node edge cases: build nodes first, then any Kubernetes node pool that
has it. "K8s available?" itself is answered by the filters in ``deciding``: whether any
Kubernetes pool open to the team can run the build.
"""

from __future__ import annotations

from dataclasses import dataclass

from .decisions import Step
from .requirements import Needs

KUBERNETES, BUILD_NODES = "kubernetes", "build_nodes"
BOTH = frozenset({KUBERNETES, BUILD_NODES})
KIND_WORDS = {KUBERNETES: "Kubernetes", BUILD_NODES: "build nodes"}


@dataclass(frozen=True)
class Route:
    mode: str  # "auto" | "select" (user placement / infrastructure) | "force" (admin override)
    preferred: str  # kind tried first
    allowed: frozenset[str]  # kinds allowed at all
    why: str  # the start of the reason sentence
    steps: tuple[Step, ...]

    @property
    def fallback(self) -> str | None:
        other = BUILD_NODES if self.preferred == KUBERNETES else KUBERNETES
        return other if other in self.allowed else None


def _gpu_words(needs: Needs) -> str:
    kind = f"{needs.gpu_type} " if needs.gpu_type else ""
    return f"{needs.gpu}x {kind}GPU"


def tree(needs: Needs, default_infrastructure: str = "auto") -> tuple[str, frozenset[str], str, list[Step]]:
    """(preferred kind, allowed kinds, reason opening, steps) of the automatic route."""
    rule = needs.rule
    steps: list[Step] = []
    if rule.branch == "dockerfile":
        steps.append(Step("Build method?", f"{needs.method}: Docker, Kaniko and Buildx builds go to Kubernetes when it is "
                                           f"available, else to build nodes ({rule.criterion})"))
    else:
        steps.append(Step("Build method?", f"{needs.method}: Packer, Nix and Paketo builds go to Kubernetes unless they "
                                           f"have special requirements ({rule.criterion})"))
    if needs.air_gapped or needs.legacy:
        words = " and ".join(w for w, on in (("air-gapped", needs.air_gapped), ("legacy-system", needs.legacy)) if on)
        steps.append(Step("Special requirements?", f"{words}: these builds go to build nodes only"))
        return BUILD_NODES, frozenset({BUILD_NODES}), f"{words[0].upper()}{words[1:]} builds run on build nodes", steps
    if needs.hardware:
        steps.append(Step("Special requirements?", f"custom hardware {needs.hardware}: special hardware is a build-node "
                                                   "edge case, so build nodes first, then any Kubernetes node pool that has it"))
        return BUILD_NODES, BOTH, f"Custom hardware {needs.hardware} required", steps
    if needs.gpu or needs.high_memory:
        parts = []
        if needs.gpu:
            parts.append(("GPU", _gpu_words(needs)))
        if needs.high_memory:
            parts.append(("high memory", f"{needs.memory_text} memory"))
        what = " and ".join(p[0] for p in parts)
        detail = ", ".join(p[1] for p in parts)
        steps.append(Step("Special requirements?", f"{what} ({detail}): a Kubernetes node pool if one has the capacity, "
                                                   "else build nodes"))
        return KUBERNETES, BOTH, f"{what[0].upper()}{what[1:]} required ({detail})", steps
    steps.append(Step("Special requirements?", "none (no GPU, high memory, air-gap, legacy system or custom hardware)"))
    if default_infrastructure == BUILD_NODES:
        steps.append(Step("Factory default", "factory.yaml spec.defaults.infrastructure is build_nodes: build nodes first"))
        return BUILD_NODES, BOTH, f"{rule.label} build on build nodes (the factory's default)", steps
    if default_infrastructure == KUBERNETES:
        return KUBERNETES, BOTH, f"{rule.label} builds run on Kubernetes (the factory's default)", steps
    if rule.branch == "dockerfile":
        return KUBERNETES, BOTH, f"{rule.label} builds run on Kubernetes when it is available", steps
    return KUBERNETES, BOTH, f"{rule.label} builds without special requirements run on Kubernetes", steps


def route_for(needs: Needs, mode: str, default_infrastructure: str = "auto") -> Route:
    preferred, allowed, why, steps = tree(needs, default_infrastructure)
    if mode == "auto":
        return Route(mode, preferred, allowed, why, tuple(steps))
    wanted = needs.infrastructure
    where = f"{needs.placement_provider}/{needs.placement_pool}" if needs.placement_pool else needs.placement_provider
    if wanted != "auto":
        preferred, allowed = wanted, frozenset({wanted})
    else:
        allowed = BOTH  # a placement overrides the tree's kind; the tree still orders the choice
    asked = []
    if wanted != "auto":
        asked.append(f"infrastructure {wanted}")
    if where:
        asked.append(f"placement {where}")
    asked_words = " and ".join(asked)
    if mode == "force":
        waived = ("the tree's routing and the named pool's team restrictions are waived; fit and health are not"
                  if where else "the tree's routing is waived; team restrictions, fit and health are not")
        steps.append(Step("Admin override", f"force: true with {asked_words}: {waived}"))
        return Route(mode, preferred, allowed, f"Admin override ({asked_words})", tuple(steps))
    steps.append(Step("User selection", f"the build asks for {asked_words}; honoured only among the pools offered to it"))
    return Route(mode, preferred, allowed, f"{asked_words[0].upper()}{asked_words[1:]} requested", tuple(steps))
