"""How well a pool fits a build, how candidates are ordered, and how sure a decision is.

Score of a candidate pool (0..1)::

    score = health x match
    health = 1.0 Healthy, 0.8 Unknown (not checked yet), 0.6 Degraded
    match  = 1 - penalties (at least 0):
        0.25  the node pool has GPUs and the build needs none (keep scarce GPUs free)
        0.25  the node pool has custom hardware the build does not ask for
        0.10  the node pool is high-memory and the build is not
        0.25  the node pool is air-gapped and the build is not (it may not reach its sources)
        0.10  the node pool runs a legacy system and the build does not need one
        0.20  the pool is on the route's fallback infrastructure (e.g. build nodes for a
              build the tree sends to Kubernetes)
        0.10  the build method's selection criterion is not met (seed 000's Build Method
              Mapping: Packer prefers a cloud provider, Nix fast storage)
        0.10  for each of cpu / memory the build requests but the node pool does not declare

Order of candidates (the first wins; every step is deterministic)::

    1. provider health: Healthy or Unknown before Degraded (Unhealthy never fits)
    2. infrastructure: the route's preferred kind before its fallback
    3. a free slot before a full pool (running >= maxConcurrentBuilds)
    4. higher score
    5. higher pool priority (spec.priority)
    6. provider name, then pool name, alphabetically

Confidence of a decision (0..1)::

    confidence = score(best) x (0.75 + 0.25 x lead)
    lead = how clearly the best beat the runner-up, by the first step above where they differ:
        1.0   steps 1, 2, 3 or 5 (a rule or the admins' priority decided), or no runner-up,
              or a person named the pool (placement, force)
        min(1, score gap / 0.25)   step 4
        0.0   step 6 (equally good; the name decided)

Rejected decisions have confidence 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from .catalog import PoolFacts
from .requirements import Needs

HEALTH_FACTOR = {"Healthy": 1.0, "Unknown": 0.8, "Degraded": 0.6, "Unhealthy": 0.0}
SCORE_GAP_FOR_FULL_LEAD = 0.25


@dataclass(frozen=True)
class Fit:
    """How well one pool fits one build; does not depend on the pool's load."""

    pool: PoolFacts
    score: float
    infra_rank: int  # 0 on the route's preferred kind, 1 on its fallback
    notes: tuple[str, ...]  # why the score is below 1

    @property
    def static_key(self) -> tuple:
        p = self.pool
        return (-self.score, -p.priority, p.provider, p.name)


@dataclass(frozen=True)
class Candidate:
    """A fitting pool with its load at the moment of the decision."""

    fit: Fit
    running: int

    @property
    def pool(self) -> PoolFacts:
        return self.fit.pool

    @property
    def score(self) -> float:
        return self.fit.score

    @property
    def full(self) -> bool:
        return self.running >= self.fit.pool.max_builds

    @property
    def key(self) -> tuple:
        f, p = self.fit, self.fit.pool
        return (p.tier, f.infra_rank, self.running >= p.max_builds, -f.score, -p.priority, p.provider, p.name)


def fit(pool: PoolFacts, needs: Needs, preferred: str) -> Fit:
    penalty = 0.0
    notes: list[str] = []
    if pool.gpu and not needs.gpu:
        penalty += 0.25
        notes.append("has GPUs this build does not need")
    if pool.hardware and needs.hardware not in pool.hardware:
        penalty += 0.25
        notes.append(f"has special hardware ({', '.join(sorted(pool.hardware))}) this build does not need")
    if "high-memory" in pool.capabilities and not needs.high_memory and not pool.gpu:
        penalty += 0.10
        notes.append("is a high-memory node pool and this build is not high-memory")
    if "air-gapped" in pool.capabilities and not needs.air_gapped:
        penalty += 0.25
        notes.append("is air-gapped and this build is not (it may not reach its sources)")
    if "legacy" in pool.capabilities and not needs.legacy:
        penalty += 0.10
        notes.append("runs a legacy system this build does not need")
    infra_rank = 0 if pool.infrastructure == preferred else 1
    if infra_rank:
        penalty += 0.20
        notes.append("is on build nodes, only the fallback for this build" if pool.infrastructure == "build_nodes"
                     else "is on Kubernetes, only the fallback for this build")
    rule = needs.rule
    if rule.prefers_capability and rule.prefers_capability not in pool.capabilities:
        penalty += 0.10
        notes.append(f"lacks {rule.prefers_capability}, which {rule.label} builds prefer ({rule.criterion})")
    if rule.prefers_provider_types and pool.provider_type not in rule.prefers_provider_types:
        penalty += 0.10
        notes.append(f"is not on a cloud provider, which {rule.label} builds prefer ({rule.criterion})")
    if needs.cpu is not None and pool.cpu is None:
        penalty += 0.10
        notes.append("declares no CPU capacity")
    if needs.memory is not None and pool.memory is None:
        penalty += 0.10
        notes.append("declares no memory capacity")
    health = HEALTH_FACTOR[pool.health.state]
    if health < 1.0:
        notes.append(f"is on a provider whose health is {pool.health.state}")
    return Fit(pool, round(health * max(0.0, 1.0 - penalty), 3), infra_rank, tuple(notes))


def pick(fits: list[Fit], group: int, full: int, running_of) -> tuple[Candidate, Candidate | None]:
    """The best two of one group (same health tier and kind), ``fits`` sorted by ``Fit.static_key``.

    ``group`` is the group's pool mask and ``full`` the mask of pools without a free slot:
    free pools come first in static order, then full ones.
    """
    free = group & ~full
    if not free or free == group:
        chosen = fits[:2]
    else:
        chosen = []
        for f in fits:
            if not full & f.pool.bit:
                chosen.append(f)
                if len(chosen) == 2:
                    break
        if len(chosen) < 2:  # a single free pool: the runner-up is the best full one
            chosen.append(next(f for f in fits if full & f.pool.bit))
    best = Candidate(chosen[0], running_of(chosen[0].pool))
    second = Candidate(chosen[1], running_of(chosen[1].pool)) if len(chosen) > 1 else None
    return best, second


# The step of the order (see the module docstring) that separates two candidates.
DECIDERS = ("health", "infrastructure", "capacity", "score", "priority", "name", "name")


def decider(best: Candidate, other: Candidate) -> str:
    for name, a, b in zip(DECIDERS, best.key, other.key):
        if a != b:
            return name
    return "name"


def lead(best: Candidate, runner_up: Candidate | None) -> float:
    if runner_up is None:
        return 1.0
    step = decider(best, runner_up)
    if step == "score":
        return min(1.0, (best.score - runner_up.score) / SCORE_GAP_FOR_FULL_LEAD)
    if step == "name":
        return 0.0
    return 1.0


def confidence(best: Candidate, runner_up: Candidate | None, chosen_by_person: bool = False) -> float:
    value = best.score * (0.75 + 0.25 * (1.0 if chosen_by_person else lead(best, runner_up)))
    return round(min(1.0, max(0.0, value)), 2)
