"""The small parts of selection: quantities, needs, health files, roles, lazy alternatives."""

from __future__ import annotations

import pytest

from reconciler.policy.roles import permissions_of, roles_of, team_permissions, teams_of
from reconciler.selection import METHOD_RULES, health_from_mapping, needs_of
from reconciler.selection.decisions import Alternative, Alternatives
from reconciler.selection.requirements import architecture, quantity
from reconciler.source.loading import Loader

from .test_selection_world import build

EXAMPLES = "examples-repo"


@pytest.mark.parametrize("text,value", [("500m", 0.5), ("2", 2.0), ("1.5", 1.5), ("4Gi", 4 * 2**30),
                                        ("16G", 16e9), ("1e3", 1000.0), (None, None)])
def test_quantity(text, value):
    assert quantity(text) == pytest.approx(value) if value is not None else quantity(text) is None


def test_architecture_of_platforms():
    assert [architecture(p) for p in ("linux/amd64", "linux/arm/v7", "linux/arm64")] == ["amd64", "arm", "arm64"]


def test_needs_merge_method_and_request_and_are_interned():
    n = needs_of(build("nix", platforms=["linux/arm64", "linux/amd64"], gpu={"count": 2}, memory="64Gi").spec)
    assert n.architectures == ("amd64", "arm64") and n.multi_arch
    assert n.gpu == 2 and n.high_memory and n.special == ("gpu", "high-memory")
    assert n.rule.branch == "special" and n.rule.prefers_capability == "fast-storage"
    assert needs_of(build("nix", platforms=["linux/arm64", "linux/amd64"], gpu={"count": 2}, memory="64Gi").spec) is n


def test_every_method_has_a_rule_from_the_mapping():
    assert set(METHOD_RULES) == {"docker", "kaniko", "buildx", "packer", "nix", "paketo"}
    assert {r.branch for r in METHOD_RULES.values()} == {"dockerfile", "special"}
    assert all(r.primary == "kubernetes" and r.fallback == "build_nodes" for r in METHOD_RULES.values())


def test_health_file_parsing():
    health, problems = health_from_mapping({
        "a": {"state": "Healthy", "tekton": False},
        "b": "Degraded",
        "c": {"state": "Sick"},
        "d": {"state": "Healthy", "colour": "green"},
        "e": {"state": "Healthy", "tekton": "yes"},
    })
    assert health["a"].tekton_installed is False and health["b"].state == "Degraded"
    assert set(health) == {"a", "b"}
    assert len(problems) == 3 and any("Sick" in p for p in problems) and any("colour" in p for p in problems)
    assert health_from_mapping([1, 2])[1]


def test_roles_from_the_examples():
    factory = Loader().load_directory(EXAMPLES).factory
    assert "infrastructure:manage" in permissions_of(factory, "ALICE@acme.example")
    assert permissions_of(factory, "stranger@example.com") == frozenset()
    assert teams_of(factory, "wendy@acme.example") == {"web"}
    assert roles_of(factory, "wendy@acme.example") == ("developer",)
    assert team_permissions(factory, "web") == {"infrastructure:select", "infrastructure:view", "build:create:with-infra"}
    assert team_permissions(factory, "no-such-team") == frozenset()
    assert permissions_of(None, "x") == frozenset()


def test_alternatives_are_built_once_on_first_use():
    calls = []

    def make():
        calls.append(1)
        return [Alternative("p", "q", "because")]

    alts = Alternatives(make)
    assert "not built yet" in repr(alts) and not calls
    assert len(alts) == 1 and alts[0].pool == "q" and list(alts) == [Alternative("p", "q", "because")]
    assert alts == (Alternative("p", "q", "because"),) and len(calls) == 1
    assert alts[0].to_dict() == {"provider": "p", "pool": "q", "reason": "because", "score": None}
