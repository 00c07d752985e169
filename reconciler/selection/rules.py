"""The filters every candidate pool goes through, in order, and what each says.

A pool is excluded by the first rule it fails; that rule, worded for the pool, is the
reason its alternative carries. When no pool is left, the rule that removed the last ones
says why the build is Rejected ("no provider offers arm64 to team web").

Order: tenancy, method, architecture, gpu, cpu, memory, air-gapped, legacy, hardware,
health, backend, infrastructure, placement. Hard facts about the build come before the
cluster's current state, and the request's own choices come last, so a rejected placement
can say whether its target could have run the build at all.
"""

from __future__ import annotations

from typing import Iterator

from .catalog import Catalog, PoolFacts
from .requirements import Needs
from .routing import BUILD_NODES, KIND_WORDS, KUBERNETES, Route

TITLES = {
    "tenancy": "Open to the team?",
    "method": "Accepts the method?",
    "architecture": "Architectures?",
    "gpu": "GPUs?",
    "cpu": "CPU?",
    "memory": "Memory?",
    "air-gapped": "Air-gapped?",
    "legacy": "Legacy system?",
    "hardware": "Custom hardware?",
    "health": "Provider usable?",
    "backend": "Backend installed?",
    "infrastructure": "Infrastructure kind?",
    "placement": "Placement offered?",
}


def _and(words) -> str:
    words = list(words)
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " and " + words[-1]


def team_words(team: str | None) -> str:
    return f"team {team}" if team else "every team"


def _gpu(needs: Needs) -> str:
    return f"{needs.gpu}x {needs.gpu_type + ' ' if needs.gpu_type else ''}GPU"


def _kind_mask(catalog: Catalog, allowed) -> int:
    mask = 0
    if KUBERNETES in allowed:
        mask |= catalog.kubernetes
    if BUILD_NODES in allowed:
        mask |= catalog.build_nodes
    return mask


def placement_mask(catalog: Catalog, needs: Needs) -> int:
    mask = catalog.on_provider(needs.placement_provider or "")
    if needs.placement_pool:
        pool = catalog.by_name.get(needs.placement_pool)
        mask &= pool.bit if pool is not None else 0
    return mask


def filters(catalog: Catalog, needs: Needs, team: str | None, route: Route, waive_tenancy: bool) -> Iterator[tuple[str, int]]:
    """(rule, mask of pools that pass it) for the rules that apply to this build."""
    if not waive_tenancy:
        admits, serves = catalog.tenancy(team)
        yield "tenancy", admits & serves
    yield "method", catalog.method(needs.method)
    yield "architecture", catalog.architectures(needs.architectures)
    if needs.gpu:
        yield "gpu", catalog.gpu(needs.gpu, needs.gpu_type)
    if needs.cpu is not None:
        yield "cpu", catalog.cpu(needs.cpu)
    if needs.memory is not None:
        yield "memory", catalog.memory(needs.memory)
    if needs.air_gapped:
        yield "air-gapped", catalog.air_gapped
    if needs.legacy:
        yield "legacy", catalog.legacy
    if needs.hardware:
        yield "hardware", catalog.hardware(needs.hardware)
    yield "health", catalog.all & ~catalog.unhealthy
    yield "backend", catalog.all & ~catalog.backend_bad
    if len(route.allowed) < 2:
        yield "infrastructure", _kind_mask(catalog, route.allowed)
    if route.mode != "auto" and needs.placement_provider:
        yield "placement", placement_mask(catalog, needs)


def passed(rule: str, kept: int, before: int, needs: Needs, team: str | None, route: Route,
           dropped: list[PoolFacts]) -> str:
    """The outcome of one filter, for the path."""
    n = f"{kept} of {before}"
    if rule == "tenancy":
        return f"{n} pools are open to {team_words(team)}"
    if rule == "method":
        return f"{n} accept {needs.method} builds"
    if rule == "architecture":
        return f"{n} offer {_and(needs.architectures)} ({', '.join(needs.platforms)})"
    if rule == "gpu":
        return f"{n} have at least {_gpu(needs)} per node"
    if rule == "cpu":
        return f"{n} have at least {needs.cpu_text} CPUs per node (or do not declare their CPUs)"
    if rule == "memory":
        return f"{n} have at least {needs.memory_text} of memory per node (or do not declare it)"
    if rule == "air-gapped":
        return f"{n} are air-gapped"
    if rule == "legacy":
        return f"{n} run legacy systems"
    if rule == "hardware":
        return f"{n} have {needs.hardware}"
    if rule == "health":
        if not dropped:
            return f"{n}: no provider among them is Unhealthy"
        return f"{n} are on usable providers; Unhealthy: " + "; ".join(_health_words(dropped))
    if rule == "backend":
        if not dropped:
            return f"{n}: every backend they need is installed"
        return f"{n} can run their backend; " + "; ".join(sorted({p.backend_problem for p in dropped}))
    if rule == "infrastructure":
        kind = KIND_WORDS[next(iter(route.allowed))]
        return f"{n} are on {kind}" + ("" if route.mode != "auto" else f" ({route.why.lower()})")
    if rule == "placement":
        return f"{n} match the requested placement"
    return n


def _health_words(pools: list[PoolFacts]) -> list[str]:
    seen: dict[str, str] = {}
    for p in pools:
        seen.setdefault(p.provider, p.health.reason)
    return [f"{name}: {reason}" if reason else name for name, reason in sorted(seen.items())]


def excluded(rule: str, pool: PoolFacts, needs: Needs, team: str | None, route: Route) -> str:
    """Why ``rule`` excludes ``pool`` for this build."""
    if rule == "tenancy":
        if not pool.admits(team):
            return f"provider {pool.provider} is open to teams {', '.join(sorted(pool.tenants))}, not {team}"
        return f"pool serves teams {', '.join(sorted(pool.teams))}, not {team}"
    if rule == "method":
        return f"accepts {', '.join(sorted(pool.methods))}, not {needs.method}"
    if rule == "architecture":
        missing = [a for a in needs.architectures if a not in pool.architectures]
        return f"node pool {pool.node_pool} offers {', '.join(pool.architectures)}, not {_and(missing)}"
    if rule == "gpu":
        if not pool.gpu:
            return f"node pool {pool.node_pool} has no GPUs"
        if pool.gpu < needs.gpu:
            return f"node pool {pool.node_pool} has {pool.gpu} GPUs per node; the build needs {needs.gpu}"
        return f"node pool {pool.node_pool} has {pool.gpu_type or 'unnamed'} GPUs; the build needs {needs.gpu_type}"
    if rule == "cpu":
        return f"node pool {pool.node_pool} has {pool.cpu_text} CPUs per node; the build needs {needs.cpu_text}"
    if rule == "memory":
        return f"node pool {pool.node_pool} has {pool.memory_text} of memory per node; the build needs {needs.memory_text}"
    if rule == "air-gapped":
        return f"node pool {pool.node_pool} is not air-gapped"
    if rule == "legacy":
        return f"node pool {pool.node_pool} does not run legacy systems"
    if rule == "hardware":
        return f"node pool {pool.node_pool} has no {needs.hardware}"
    if rule == "health":
        reason = f": {pool.health.reason}" if pool.health.reason else ""
        return f"provider {pool.provider} is Unhealthy{reason}"
    if rule == "backend":
        return pool.backend_problem or "backend unavailable"
    if rule == "infrastructure":
        kind = "build nodes" if pool.infrastructure == BUILD_NODES else "an ordinary Kubernetes node pool"
        if route.mode == "auto":
            return f"is {kind}; {route.why[0].lower()}{route.why[1:]}"
        return f"is {kind}; the build asks for {needs.infrastructure}"
    if rule == "placement":
        return "not the requested placement"
    return rule


def nothing_fits(rule: str, survivors: list[PoolFacts], needs: Needs, team: str | None, route: Route) -> str:
    """Why no pool is left once ``rule`` removed ``survivors`` (the pools that reached it)."""
    who = team_words(team)
    if rule == "tenancy":
        return f"no pool is open to {who}"
    if rule == "method":
        return f"no pool open to {who} accepts {needs.method} builds"
    if rule == "architecture":
        offered = {a for p in survivors for a in p.architectures}
        missing = [a for a in needs.architectures if a not in offered]
        if missing:
            return f"no provider offers {_and(missing)} to {who} for {needs.method} builds"
        return (f"no single node pool offers {_and(needs.architectures)} together to {who} "
                "(a multi-arch build runs on one node pool that has every platform)")
    if rule == "gpu":
        have = sorted({f"{p.gpu}x {p.gpu_type or 'unnamed'}" for p in survivors if p.gpu})
        return f"no pool open to {who} has {_gpu(needs)} per node" + (f" (there are: {', '.join(have)})" if have else "")
    if rule == "cpu":
        most = max((p.cpu for p in survivors if p.cpu is not None), default=None)
        top = next((p.cpu_text for p in survivors if p.cpu == most), None)
        return f"no node pool open to {who} has {needs.cpu_text} CPUs per node" + (f" (the largest has {top})" if top else "")
    if rule == "memory":
        most = max((p.memory for p in survivors if p.memory is not None), default=None)
        top = next((p.memory_text for p in survivors if p.memory == most), None)
        return (f"no node pool open to {who} has {needs.memory_text} of memory per node"
                + (f" (the largest has {top})" if top else ""))
    if rule == "air-gapped":
        return f"no air-gapped node pool that can run this build is open to {who}"
    if rule == "legacy":
        return f"no legacy-system node pool that can run this build is open to {who}"
    if rule == "hardware":
        return f"no node pool open to {who} has {needs.hardware}"
    if rule == "health":
        return "every pool that could run it is on an Unhealthy provider: " + "; ".join(_health_words(survivors))
    if rule == "backend":
        return "every pool that could run it is unusable right now: " + "; ".join(sorted({p.backend_problem for p in survivors}))
    if rule == "infrastructure":
        kind = KIND_WORDS[next(iter(route.allowed))]
        others = ", ".join(p.label for p in survivors[:6]) + (", ..." if len(survivors) > 6 else "")
        lead = route.why if route.mode == "auto" else f"The build asks for {needs.infrastructure}"
        return f"{lead}, but no pool on {kind} can run it (pools elsewhere that could: {others})"
    return f"no pool passes {rule}"
