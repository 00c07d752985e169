"""Checks across objects: every name one object gives must exist where it points."""

from __future__ import annotations

from typing import Any, Iterator

from ..problems import Problem
from ..source.yamldocs import line_of


def check_references(factory: Any, providers: dict, pools: dict, builds: dict,
                     broken: dict[str, set[str]] | None = None) -> list[Problem]:
    """Dangling names, as problems. Names in ``broken`` (objects whose own file failed to
    validate) count as existing, so one bad file gives one error, not a cascade."""
    broken = broken or {}
    providers_known = set(providers) | broken.get("Provider", set())
    pools_known = set(pools) | broken.get("Pool", set())
    return (list(_factory(factory)) + list(_providers(factory, providers))
            + list(_pools(factory, providers, pools, providers_known))
            + list(_builds(factory, providers, pools, builds, providers_known, pools_known)))


def _at(entity: Any, path: tuple, message: str) -> Problem:
    field = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in path).replace(".[", "[")
    return Problem(entity.path, line_of(entity.lines, path, entity.line), field, message)


def _teams(factory: Any) -> set[str] | None:
    return {t.name for t in factory.spec.teams} if factory is not None else None


def _factory(factory: Any) -> Iterator[Problem]:
    if factory is None:
        return
    spec = factory.spec
    roles = {r.name for r in spec.roles}
    teams = _teams(factory)
    for kind, names in (("role", [r.name for r in spec.roles]), ("team", [t.name for t in spec.teams])):
        seen = set()
        for i, name in enumerate(names):
            if name in seen:
                yield _at(factory, ("spec", kind + "s", i, "name"), f"{kind} '{name}' is defined twice")
            seen.add(name)
    identities = set()
    for i, member in enumerate(spec.members):
        if member.identity in identities:
            yield _at(factory, ("spec", "members", i, "identity"), f"'{member.identity}' is listed twice")
        identities.add(member.identity)
        for j, role in enumerate(member.roles):
            if role not in roles:
                yield _at(factory, ("spec", "members", i, "roles", j), f"role '{role}' is not defined in spec.roles")
        for j, team in enumerate(member.teams):
            if team not in teams:
                yield _at(factory, ("spec", "members", i, "teams", j), f"team '{team}' is not defined in spec.teams")


def _providers(factory: Any, providers: dict) -> Iterator[Problem]:
    teams = _teams(factory)
    if teams is None:
        return
    for provider in providers.values():
        for i, tenant in enumerate(provider.spec.tenants):
            if tenant != "*" and tenant not in teams:
                yield _at(provider, ("spec", "tenants", i), f"team '{tenant}' is not defined in factory.yaml spec.teams")


def _pools(factory: Any, providers: dict, pools: dict, providers_known: set[str]) -> Iterator[Problem]:
    teams = _teams(factory)
    for pool in pools.values():
        spec = pool.spec
        provider = providers.get(spec.provider)
        if provider is None:
            if spec.provider not in providers_known:
                yield _at(pool, ("spec", "provider"), f"provider '{spec.provider}' does not exist{_known(providers)}")
            continue
        node_pools = {np.name: np for np in provider.spec.nodePools}
        if spec.nodePool not in node_pools:
            yield _at(pool, ("spec", "nodePool"),
                      f"provider {spec.provider} has no node pool '{spec.nodePool}' (it has {', '.join(sorted(node_pools))})")
        if teams is not None:
            for i, team in enumerate(spec.teams):
                if team != "*" and team not in teams:
                    yield _at(pool, ("spec", "teams", i), f"team '{team}' is not defined in factory.yaml spec.teams")


def _builds(factory: Any, providers: dict, pools: dict, builds: dict, providers_known: set[str],
            pools_known: set[str]) -> Iterator[Problem]:
    teams = _teams(factory)
    for build in builds.values():
        if teams is not None and build.team not in teams:
            yield _at(build, ("metadata", "name"),
                      f"team '{build.team}' (from the folder builds/{build.team}/) is not defined in factory.yaml spec.teams")
        placement = build.spec.placement
        if placement is None:
            continue
        if placement.provider not in providers:
            if placement.provider not in providers_known:
                yield _at(build, ("spec", "placement", "provider"),
                          f"provider '{placement.provider}' does not exist{_known(providers)}")
            continue
        if placement.pool is not None:
            pool = pools.get(placement.pool)
            if pool is None and placement.pool not in pools_known:
                yield _at(build, ("spec", "placement", "pool"), f"pool '{placement.pool}' does not exist{_known(pools)}")
            elif pool is not None and pool.spec.provider != placement.provider:
                yield _at(build, ("spec", "placement", "pool"),
                          f"pool '{placement.pool}' is on provider {pool.spec.provider}, not {placement.provider}")


def _known(entities: dict, limit: int = 6) -> str:
    names = sorted(entities)
    if not names:
        return ""
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f" (known: {shown})"
