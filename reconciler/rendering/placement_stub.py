"""A stand-in for selection, so ``image-factory render`` works on its own. To be replaced.

The rule: the build's ``spec.placement`` when it names a provider (and a pool, or else that
provider's first pool by name that fits); otherwise the first pool by name that accepts the
build's method and team, whose provider admits the team, and whose node pool has every
architecture the build targets. Capabilities, health, load and other requirements are *not*
considered -- that is selection's job (``reconciler.selection``).
"""

from __future__ import annotations

from typing import Any


def _admits(team: str | None, teams: list[str]) -> bool:
    return "*" in teams or (team is not None and team in teams)


def fits(build: Any, pool: Any, provider: Any) -> bool:
    if not (build.spec.method in pool.spec.methods and _admits(build.team, pool.spec.teams)
            and _admits(build.team, provider.spec.tenants)):
        return False
    node_pool = next((n for n in provider.spec.nodePools if n.name == pool.spec.nodePool), None)
    wanted = {p.split("/")[1] for p in build.spec.platforms}
    return node_pool is not None and wanted <= set(node_pool.architectures)


def choose_placement(build: Any, snapshot: Any) -> tuple[Any, Any] | None:
    """(pool, provider) Entities for ``build``, or None when nothing fits."""
    placement = build.spec.placement
    for name in sorted(snapshot.pools):
        pool = snapshot.pools[name]
        provider = snapshot.providers.get(pool.spec.provider)
        if provider is None:
            continue
        if placement is not None:
            if pool.spec.provider != placement.provider or (placement.pool and name != placement.pool):
                continue
            if placement.pool:  # the user named the pool: take it as is
                return pool, provider
        if fits(build, pool, provider):
            return pool, provider
    return None
