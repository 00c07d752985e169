"""Who may choose (placement, force), health, capacity, ties and determinism."""

from __future__ import annotations

import json
import random

import pytest

from reconciler.models.status import Selection
from reconciler.selection import Actor, Catalog, ProviderHealth, select, select_all

from .test_selection_world import (ADMIN, DEVELOPER, VIEWER, build, catalog, decide, healthy, pool, world_pools,
                                   world_providers)

# -- user placement (infrastructure:select) ----------------------------------------------

def test_placement_among_offered_is_honoured():
    d = decide(build(placement={"provider": "gcp", "pool": "gke-general"}), team="web")
    assert (d.state, d.provider, d.pool) == ("Admitted", "gcp", "gke-general")
    assert d.reason.startswith("Placement gcp/gke-general requested; it is offered to team web")
    assert d.confidence == 1.0  # a person named the pool: the lead is full
    Selection.model_validate(d.to_status())


def test_placement_on_provider_only_picks_the_best_pool_there():
    d = decide(build(placement={"provider": "azure"}), team="web")
    assert d.pool == "aks-general"
    assert "on the requested provider" in d.reason


def test_placement_not_offered_is_rejected_and_lists_offers():
    d = decide(build(placement={"provider": "aws", "pool": "eks-gpu"}), team="web")
    assert d.state == "Rejected"
    assert "placement aws/eks-gpu is not offered to this build" in d.reason.lower()
    assert "eks-gpu: pool serves teams ml, not web" in d.reason
    assert "offered: aws/eks-general" in d.reason


def test_placement_that_cannot_run_the_build_is_rejected():
    d = decide(build(platforms=["linux/arm64"], placement={"provider": "aws", "pool": "eks-general"}), team="web")
    assert d.state == "Rejected"
    assert "offers amd64, not arm64" in d.reason
    assert "aws/eks-graviton" in d.reason  # offered instead


def test_placement_without_permission_is_rejected_with_what_auto_would_do():
    d = decide(build(placement={"provider": "gcp", "pool": "gke-general"}), team="web", permissions=VIEWER,
               identity="molly@acme.example")
    assert d.state == "Rejected"
    assert "infrastructure:select" in d.reason and "molly@acme.example" in d.reason
    assert "automatic selection would pick aws/eks-general" in d.reason
    assert any(a.score is not None for a in d.alternatives)


def test_user_infrastructure_choice_among_offered_is_honoured():
    d = decide(build(infrastructure="build_nodes"), team="platform")
    assert (d.state, d.infrastructure) == ("Admitted", "build_nodes")
    assert d.reason.startswith("Infrastructure build_nodes requested")


def test_user_infrastructure_choice_nothing_offered_is_rejected():
    d = decide(build("buildx", infrastructure="build_nodes"), team="platform")
    assert d.state == "Rejected"
    assert "The build asks for build_nodes" in d.reason


# -- admin force (infrastructure:manage) -------------------------------------------------

def test_force_with_manage_is_an_admin_override_even_outside_the_team():
    b = build(placement={"provider": "aws", "pool": "eks-gpu"}, force=True, infrastructure="kubernetes")
    d = decide(b, team="web", permissions=ADMIN, identity="alice@acme.example")
    assert (d.state, d.pool) == ("Admitted", "eks-gpu")
    assert d.reason.startswith("Admin override")
    assert any(s.rule == "Admin override" for s in d.path)


def test_force_infrastructure_kind_overrides_the_tree():
    d = decide(build(infrastructure="build_nodes", force=True), team="platform", permissions=ADMIN)
    assert d.infrastructure == "build_nodes" and d.reason.startswith("Admin override")


def test_force_without_manage_is_rejected_and_says_why():
    b = build(placement={"provider": "aws", "pool": "eks-gpu"}, force=True)
    d = decide(b, team="web", permissions=DEVELOPER, identity="wendy@acme.example")
    assert d.state == "Rejected"
    assert "force: true" in d.reason and "infrastructure:manage" in d.reason and "wendy@acme.example" in d.reason


def test_force_cannot_make_a_pool_run_what_it_cannot():
    b = build(platforms=["linux/arm64"], placement={"provider": "aws", "pool": "eks-general"}, force=True)
    d = decide(b, team="web", permissions=ADMIN)
    assert d.state == "Rejected" and "offers amd64, not arm64" in d.reason


def test_force_cannot_use_an_unhealthy_provider():
    b = build(placement={"provider": "aws", "pool": "eks-general"}, force=True)
    d = decide(b, team="web", permissions=ADMIN, health=healthy(aws=ProviderHealth("Unhealthy", "API down")))
    assert d.state == "Rejected" and "aws is Unhealthy: API down" in d.reason


def test_no_actor_means_no_permissions():
    d = select(build(placement={"provider": "gcp"}), catalog(health=healthy()), team="web")
    assert d.state == "Rejected" and "the requester does not hold" in d.reason


# -- health --------------------------------------------------------------------------------

def test_all_providers_unhealthy_is_rejected_with_the_reasons():
    health = {n: ProviderHealth("Unhealthy", f"{n} API unreachable") for n in ("aws", "gcp", "azure", "edge")}
    d = decide(build(), team="web", health=health)
    assert d.state == "Rejected"
    assert d.reason.startswith("Every pool that could run it is on an Unhealthy provider")
    assert "aws: aws API unreachable" in d.reason and "gcp: gcp API unreachable" in d.reason
    assert all(a.rule == "health" for a in d.alternatives if a.pool in ("eks-general", "gke-general"))


def test_degraded_only_is_used_and_the_reason_says_so():
    health = {"aws": ProviderHealth("Unhealthy", "down"), "gcp": ProviderHealth("Degraded", "2 of 4 nodes NotReady"),
              "azure": ProviderHealth("Unhealthy", "down"), "edge": ProviderHealth("Unhealthy", "down")}
    d = decide(build(), team="web", health=health)
    assert (d.state, d.pool) == ("Admitted", "gke-general")
    assert "gcp is Degraded: 2 of 4 nodes NotReady, used because no healthy pool can run it" in d.reason
    assert any(s.rule == "K8s available?" and "only on Degraded providers" in s.outcome for s in d.path)
    assert d.confidence < 0.8


def test_healthy_beats_degraded_even_with_lower_priority():
    d = decide(build(), team="web", health=healthy(aws=ProviderHealth("Degraded", "slow API")))
    assert d.provider != "aws"
    eks = next(a for a in d.alternatives if a.pool == "eks-general")
    assert "Degraded: slow API; a healthy pool can run the build" in eks.reason


def test_degraded_kubernetes_loses_to_healthy_build_nodes():
    # Health comes before the kind: Degraded only when nothing healthy fits (seed 001 + issue).
    health = {"onprem": ProviderHealth("Healthy"), "corp": ProviderHealth("Degraded", "etcd slow")}
    d = decide(build(), team="platform", only=["onprem", "corp"], health=health)
    assert d.infrastructure == "build_nodes" and d.provider == "onprem"


def test_tekton_missing_leaves_only_kaniko_job_and_buildkit_pools():
    health = healthy(onprem=ProviderHealth("Degraded", "Tekton not installed", tekton_installed=False))
    d = decide(build("nix", airGapped=True), team="ml", health=health)
    assert d.state == "Rejected"
    assert "Tekton is not installed on onprem" in d.reason
    ok = decide(build("kaniko", airGapped=True), team="ml", health=health)
    assert ok.pool == "airgap-kaniko" and ok.state == "Admitted"


def test_buildkit_controller_missing_excludes_controller_pools():
    health = healthy(edge=ProviderHealth("Healthy", buildkit_controller=False))
    d = decide(build("buildx", platforms=["linux/amd64", "linux/arm64"]), team="web", health=health)
    assert d.state == "Rejected" and "BuildKit controller" in d.reason


# -- capacity --------------------------------------------------------------------------------

def test_capacity_full_is_queued_with_counts():
    pools = [pool("only", "aws", "general", max_builds=3)]
    d = decide(build(), team="web", pools=pools, load={"only": 3})
    assert d.state == "Queued" and d.pool == "only"
    assert "3/3 builds running" in d.reason
    Selection.model_validate(d.to_status())


def test_full_pool_loses_to_an_equal_pool_with_room():
    pools = [pool("a-pool", "aws", "general", max_builds=2), pool("b-pool", "aws", "general", max_builds=2)]
    d = decide(build(), team="web", pools=pools, load={"a-pool": 2})
    assert (d.state, d.pool) == ("Admitted", "b-pool")
    assert "full (2/2 builds running)" in next(a.reason for a in d.alternatives if a.pool == "a-pool")


def test_load_comes_from_pool_status_when_not_given():
    pools = [pool("only", "aws", "general", max_builds=1, running=1)]
    assert decide(build(), team="web", pools=pools).state == "Queued"


def test_select_all_reserves_slots_within_a_pass():
    c = catalog(pools=[pool("only", "aws", "general", max_builds=2)], health=healthy())
    builds = [_entity(build(name=f"b{i}"), "web") for i in range(3)]
    decisions = select_all(builds, c, actor=Actor("x", DEVELOPER))
    assert [decisions[f"b{i}"].state for i in range(3)] == ["Admitted", "Admitted", "Queued"]
    assert "2/2 builds running" in decisions["b2"].reason
    # without reservation every build sees the same load
    again = select_all(builds, c, actor=Actor("x", DEVELOPER), reserve=False)
    assert {d.state for d in again.values()} == {"Admitted"}


def test_started_builds_keep_their_slots_and_finished_ones_free_theirs():
    """A build added later (b0 sorts first) never pushes a running build out of its slot, and a
    finished build takes no slot."""
    c = catalog(pools=[pool("only", "aws", "general", max_builds=2)], health=healthy())
    builds = [_entity(build(name=f"b{i}"), "web") for i in range(4)]
    decisions = select_all(builds, c, actor=Actor("x", DEVELOPER), standing={"b2": "running", "b3": "finished"})
    assert {n: d.state for n, d in decisions.items()} == {"b0": "Admitted", "b1": "Queued", "b2": "Admitted",
                                                          "b3": "Admitted"}


def test_a_build_with_a_run_keeps_its_pool_while_that_pool_can_run_it():
    """b-pool would be picked now (a-pool sorts first and has room again), but the build's run
    is on b-pool: moving it would replace a started run, or re-run a finished one."""
    c = catalog(pools=[pool("a-pool", "aws", "general", max_builds=2), pool("b-pool", "aws", "general", max_builds=2)],
                health=healthy())
    builds = [_entity(build(name="moved"), "web"), _entity(build(name="fresh"), "web")]
    free = select_all(builds, c, actor=Actor("x", DEVELOPER))
    assert free["moved"].pool == "a-pool"
    kept = select_all(builds, c, actor=Actor("x", DEVELOPER), standing={"moved": "running"}, keep={"moved": "b-pool"})
    assert (kept["moved"].state, kept["moved"].pool) == ("Admitted", "b-pool")
    assert "keeps its pool" in kept["moved"].reason and "aws" in kept["moved"].reason
    assert kept["fresh"].pool == "a-pool"
    Selection.model_validate(kept["moved"].to_status())
    # A pool that can no longer run it (removed) is not kept.
    gone = select_all(builds, c, actor=Actor("x", DEVELOPER), standing={"moved": "finished"}, keep={"moved": "c-pool"})
    assert gone["moved"].pool == "a-pool"


# -- ties, determinism, confidence ------------------------------------------------------------

def test_ties_go_to_priority_then_names():
    pools = [pool("zeta", "aws", "general"), pool("alpha", "aws", "general"), pool("mid", "aws", "general", priority=1)]
    assert decide(build(), team="web", pools=pools).pool == "mid"
    tie = decide(build(), team="web", pools=pools[:2])
    assert tie.pool == "alpha"
    assert "ties go to the first provider/pool name" in tie.alternatives[0].reason
    assert tie.confidence == 0.75  # a perfect fit, but only the name decided


def test_confidence_formula():
    # score 1.0, runner-up lost on priority -> lead 1
    assert decide(build(), team="web").confidence == 1.0
    # score gap: 0.75 for gke-gpu vs aks/eks... use a world where the runner-up scores 0.9 (legacy pool)
    pools = [pool("plain", "corp", "workers", methods=["docker"]), pool("legacy", "corp", "rhel7", methods=["docker"])]
    d = decide(build(infrastructure="build_nodes"), team="platform", pools=pools, only=["corp"])
    assert d.pool == "legacy" and d.confidence == pytest.approx(round(0.9 * 1.0, 2))  # only pool on build nodes
    d = decide(build(), team="platform", pools=pools, only=["corp"])
    # plain 1.0 vs legacy (fallback kind): lead 1
    assert d.pool == "plain" and d.confidence == 1.0


def test_same_repository_same_decisions_whatever_the_order():
    rng = random.Random(4)
    providers, pools = world_providers(), world_pools()
    health = healthy(gcp=ProviderHealth("Degraded", "x"))
    builds = [_entity(build(m, name=f"b{i}", **req), team) for i, (m, req, team) in enumerate([
        ("docker", {}, "web"), ("buildx", {}, "mobile"), ("nix", {"gpu": {"count": 1}}, "ml"),
        ("packer", {"legacySystem": True}, "platform"), ("kaniko", {"airGapped": True}, "ml"),
        ("paketo", {"memory": "200Gi"}, "data"), ("docker", {}, "web"), ("docker", {}, "web")])]
    first = None
    for _ in range(5):
        rng.shuffle(providers), rng.shuffle(pools), rng.shuffle(builds)
        c = Catalog.build(providers, pools, health, load={"eks-general": 9})
        out = select_all(builds, c, actor=Actor("x", DEVELOPER))
        dump = json.dumps({k: out[k].to_dict() for k in sorted(out)}, sort_keys=True)
        first = first or dump
        assert dump == first


def test_to_status_matches_the_status_model_and_to_dict_has_everything():
    d = decide(build(gpu={"count": 1}), team="ml")
    status = d.to_status()
    model = Selection.model_validate(status)
    assert model.pool == d.pool and len(model.alternatives) == len(d.alternatives)
    assert set(status) == {"infrastructure", "provider", "pool", "reason", "confidence", "alternatives"}
    full = d.to_dict()
    assert full["state"] == "Admitted" and full["path"][0]["rule"] == "Who chooses?"
    json.dumps(full)


def test_bad_pools_are_skipped_not_fatal():
    pools = world_pools() + [pool("ghost", "nowhere", "x"), pool("wrong-node", "aws", "nope")]
    c = Catalog.build(world_providers(), pools, healthy())
    assert len(c.skipped) == 2 and "ghost" in c.skipped[0] + c.skipped[1]
    assert select(build(), c, team="web").state == "Admitted"


class _Entity:
    def __init__(self, model, team):
        self.model, self.team, self.name = model, team, model.metadata.name


def _entity(model, team):
    return _Entity(model, team)
