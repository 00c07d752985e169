"""Who holds which permissions: factory.yaml roles and members, looked up by identity.

Identities are compared case-insensitively (Git records e-mails as people type them).
Unknown identities hold no permissions and belong to no team.
"""

from __future__ import annotations

from typing import Any


def _members(factory: Any, identity: str):
    spec = _spec(factory)
    if spec is None:
        return []
    wanted = identity.strip().lower()
    return [m for m in spec.members if m.identity.strip().lower() == wanted]


def _spec(factory: Any):
    if factory is None:
        return None
    model = getattr(factory, "model", factory)  # an Entity or the FactoryConfig itself
    return model.spec


def _role_permissions(spec: Any, role_names) -> set[str]:
    roles = {r.name: r for r in spec.roles}
    held: set[str] = set()
    for name in role_names:
        role = roles.get(name)
        if role is not None:
            held.update(role.permissions)
    return held


def permissions_of(factory: Any, identity: str) -> frozenset[str]:
    """Every permission the member with ``identity`` holds through their roles."""
    spec = _spec(factory)
    held: set[str] = set()
    for member in _members(factory, identity):
        held |= _role_permissions(spec, member.roles)
    return frozenset(held)


def roles_of(factory: Any, identity: str) -> tuple[str, ...]:
    return tuple(sorted({r for m in _members(factory, identity) for r in m.roles}))


def teams_of(factory: Any, identity: str) -> frozenset[str]:
    return frozenset(t for m in _members(factory, identity) for t in m.teams)


def team_permissions(factory: Any, team: str) -> frozenset[str]:
    """The permissions that *every* member of ``team`` holds (what any of them could do).

    Empty when the team has no members.
    """
    spec = _spec(factory)
    if spec is None:
        return frozenset()
    sets = [_role_permissions(spec, m.roles) for m in spec.members if team in m.teams]
    if not sets:
        return frozenset()
    return frozenset(set.intersection(*sets))
