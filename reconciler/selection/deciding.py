"""Select infrastructure for a build: the decision tree, the filters, the order, the reason.

    catalog = Catalog.build(snapshot.providers, snapshot.pools, health, load, snapshot.factory)
    decision = select(snapshot.builds["frontend"], catalog, actor=Actor(identity, permissions))

Permissions (seed 000): choosing a placement or an infrastructure kind needs
``infrastructure:select``; ``force: true`` needs ``infrastructure:manage``. A request
without the permission is Rejected (never silently re-routed), and its alternatives still
show what automatic selection would have done.

Everything that does not depend on the pools' load is a ``Plan``, kept in the catalog per
(needs, team, mode): builds that ask for the same thing share it, and only the final pick
(free slots, load) and the reason sentence are made per build.
"""

from __future__ import annotations

import gc
import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

from . import rules
from .catalog import Catalog, Load
from .decisions import Actor, Alternative, Alternatives, Decision, Step
from .requirements import Needs, needs_of
from .routing import KIND_WORDS, KUBERNETES, Route, route_for
from .scoring import Candidate, Fit, confidence, decider, fit, pick

MANAGE = "infrastructure:manage"
SELECT = "infrastructure:select"
NOBODY = Actor()
_AUTO = Step("Who chooses?", "the factory (no placement, infrastructure: auto, no force)")


def select(build: Any, catalog: Catalog, *, team: str | None = None, actor: Actor | None = None,
           admitted: Mapping[str, int] | None = None) -> Decision:
    """The Decision for one build.

    ``build``: an Entity from the loader (its ``team`` is used) or a BuildRequest model.
    ``actor``: who asked (identity and permissions); default: nobody, with no permissions.
    ``admitted``: pool name -> builds admitted earlier in this pass, added to the load.
    """
    model = getattr(build, "model", build)
    if team is None:
        team = getattr(build, "team", None)
    return decide(needs_of(model.spec), team, actor or NOBODY, catalog, catalog.with_admitted(admitted))


def select_all(builds: Mapping[str, Any] | Iterable[Any], catalog: Catalog,
               actor: Actor | Callable[[Any], Actor] | None = None, reserve: bool = True,
               standing: Mapping[str, str] | None = None, keep: Mapping[str, str] | None = None) -> dict[str, Decision]:
    """Decisions for many builds, keyed by build name.

    With ``reserve`` every Admitted build takes a slot of its pool for the builds after it,
    so one pass never admits more builds to a pool than its ``maxConcurrentBuilds``.

    ``standing`` says where a build already is: ``"running"`` (its run was created and has
    not finished) or ``"finished"``. Running builds are decided first, so builds added later
    never push a started build out of its slot (and its run is never pruned for them);
    finished builds are decided but take no slot. The rest follow in order of (team, name).

    ``keep`` names the pool a running or finished build's run is on: the build stays there
    while that pool can still run it, even when another pool would now be picked (a slot
    freed, a pool was added), so a started run is never moved and a finished one never re-run.
    """
    standing = standing or {}
    keep = keep or {}
    items = list(builds.values()) if isinstance(builds, Mapping) else list(builds)

    def order(b: Any) -> tuple[int, str, str]:
        name = getattr(b, "model", b).metadata.name
        return (0 if standing.get(name) == "running" else 1, getattr(b, "team", None) or "", name)

    items.sort(key=order)
    load = catalog.load
    out: dict[str, Decision] = {}
    # Selection makes many small objects and no reference cycles; with the whole repository
    # in memory, the cyclic collector's full sweeps would take half the time. Pause it.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for build in items:
            model = getattr(build, "model", build)
            who = (actor(build) if callable(actor) else actor) or NOBODY
            finished = standing.get(model.metadata.name) == "finished"
            # A finished build ran already: it neither waits for a slot nor holds one.
            decision = decide(needs_of(model.spec), getattr(build, "team", None), who, catalog,
                              catalog.load if finished else load, keep=keep.get(model.metadata.name))
            if reserve and decision.state == "Admitted" and not finished:
                load = load.admit(catalog.by_name[decision.pool])  # a new Load: earlier decisions keep theirs
            out[model.metadata.name] = decision
    finally:
        if collecting:
            gc.enable()
    return out


# -- who chooses ---------------------------------------------------------------------

def _who(needs: Needs, actor: Actor) -> tuple[str, str | None, Step]:
    """(mode, denial, step): "auto", "select" or "force", and why a request is refused."""
    if needs.force:
        if actor.holds(MANAGE):
            return "force", None, Step("Who chooses?", f"an admin override: {actor.name} holds {MANAGE}")
        denial = (f"the build sets force: true, which needs the {MANAGE} permission, and {actor.name} does not hold "
                  "it; remove force, or ask an admin to commit it")
        return "auto", denial, Step("Who chooses?", f"force: true, but {actor.name} does not hold {MANAGE}")
    if needs.chooses:
        asked = []
        if needs.infrastructure != "auto":
            asked.append(f"infrastructure: {needs.infrastructure}")
        if needs.placement_provider:
            asked.append("a placement")
        what = " and ".join(asked)
        if actor.holds(SELECT):
            return "select", None, Step("Who chooses?", f"the build asks for {what}; {actor.name} holds {SELECT}")
        denial = (f"the build chooses its infrastructure ({what}), which needs the {SELECT} permission, and "
                  f"{actor.name} does not hold it; remove {'it' if len(asked) == 1 else 'them'} to let the factory choose")
        return "auto", denial, Step("Who chooses?", f"the build asks for {what}, but {actor.name} does not hold {SELECT}")
    return "auto", None, _AUTO


# -- the plan: everything that does not depend on load ----------------------------------

@dataclass(frozen=True)
class Plan:
    needs: Needs
    team: str | None
    route: Route
    steps: tuple[Step, ...]
    excluded: tuple[tuple[str, int], ...]  # (rule, pools it excluded)
    alive: int  # pools that can run the build
    groups: tuple[int, ...]  # alive, split by (health tier, preferred kind), best first
    rejection: str | None = None
    _ranked: dict = field(default_factory=dict, compare=False, repr=False)
    _rejected: list = field(default_factory=list, compare=False, repr=False)
    _excluded_alternatives: list = field(default_factory=list, compare=False, repr=False)

    def ranked(self, catalog: Catalog, group: int) -> list[Fit]:
        fits = self._ranked.get(group)
        if fits is None:
            fits = self._ranked[group] = sorted(
                (fit(p, self.needs, self.route.preferred) for p in catalog.members(self.groups[group])),
                key=lambda f: f.static_key)
        return fits


def plan(needs: Needs, team: str | None, mode: str, catalog: Catalog) -> Plan:
    key = (id(needs), team, mode)  # Needs are interned (equal needs, same object), and the Plan keeps it alive
    cached = catalog.plans.get(key)
    if cached is None:
        if len(catalog.plans) > 50_000:
            catalog.plans.clear()
        cached = catalog.plans[key] = _plan(needs, team, mode, catalog)
    return cached


def _plan(needs: Needs, team: str | None, mode: str, catalog: Catalog) -> Plan:
    route = route_for(needs, mode, catalog.default_infrastructure)
    providers = len(catalog.providers_for(team))
    steps: list[Step] = [Step("Providers available?", f"{providers} of {len(catalog.providers)} providers admit "
                              f"{rules.team_words(team)}" + (": several, so their capabilities are compared" if providers > 1
                              else ": a single one, used if it can run the build" if providers == 1 else ""))]
    steps.extend(route.steps)
    alive = catalog.all
    excluded: list[tuple[str, int]] = []
    waive = mode == "force" and needs.placement_provider is not None
    for rule, mask in rules.filters(catalog, needs, team, route, waive):
        before = alive
        alive &= mask
        out = before & ~alive
        if out:
            excluded.append((rule, out))
        dropped = catalog.members(out) if out and rule in ("health", "backend") else []
        steps.append(Step(rules.TITLES[rule], rules.passed(rule, alive.bit_count(), before.bit_count(), needs, team,
                                                           route, dropped)))
        if not alive:
            if rule == "placement":
                reason = _placement_refused(catalog, needs, team, route, excluded, before)
            else:
                reason = rules.nothing_fits(rule, catalog.members(before), needs, team, route)
            return Plan(needs, team, route, tuple(steps), tuple(excluded), 0, (), reason[0].upper() + reason[1:])
    groups = _groups(catalog, alive, route)
    steps.append(_available_step(catalog, alive, route))
    return Plan(needs, team, route, tuple(steps), tuple(excluded), alive, groups)


def _groups(catalog: Catalog, alive: int, route: Route) -> tuple[int, ...]:
    preferred = catalog.kubernetes if route.preferred == KUBERNETES else catalog.build_nodes
    usable = alive & ~catalog.degraded
    degraded = alive & catalog.degraded
    return tuple(g for g in (usable & preferred, usable & ~preferred, degraded & preferred, degraded & ~preferred) if g)


def _available_step(catalog: Catalog, alive: int, route: Route) -> Step:
    pref_kind = route.preferred
    preferred = alive & (catalog.kubernetes if pref_kind == KUBERNETES else catalog.build_nodes)
    question = "K8s available?" if pref_kind == KUBERNETES else "Build nodes available?"
    healthy = preferred & ~catalog.degraded
    if healthy:
        answer = f"yes: {_pools(healthy.bit_count())} on {KIND_WORDS[pref_kind]} can run it"
    elif preferred and not (alive & ~catalog.degraded):
        answer = f"only on Degraded providers ({_pools(preferred.bit_count())}); nothing healthy can run it"
    else:
        other = alive & ~preferred
        fallback = KIND_WORDS[route.fallback] if route.fallback else "nothing"
        answer = (f"no{' healthy one' if preferred else ''}: falling back to {fallback} "
                  f"({_pools(other.bit_count())} can run it)")
    return Step(question, answer)


def _pools(n: int) -> str:
    return f"{n} pool" if n == 1 else f"{n} pools"


# -- the decision ------------------------------------------------------------------------

def decide(needs: Needs, team: str | None, actor: Actor, catalog: Catalog, load: Load,
           keep: str | None = None) -> Decision:
    mode, denial, who_step = _who(needs, actor)
    p = plan(needs, team, mode, catalog)
    if p.rejection is not None:
        if who_step is _AUTO and not denial:  # the same for every build with this plan
            if not p._rejected:
                p._rejected.append(_rejected(p.rejection, (who_step,) + p.steps, catalog, p, load))
            return p._rejected[0]
        return _rejected(p.rejection, (who_step,) + p.steps, catalog, p, load)
    if denial:
        best, _ = pick(p.ranked(catalog, 0), p.groups[0], load.full, load.running)
        denial += f" (automatic selection would pick {best.pool.label})"
        return _rejected(denial, (who_step,) + p.steps, catalog, p, load)
    return _choose(p, catalog, who_step, load, keep)


def _choose(p: Plan, catalog: Catalog, who_step: Step, load: Load, keep: str | None = None) -> Decision:
    running_of = load.running
    best, runner_up = pick(p.ranked(catalog, 0), p.groups[0], load.full, running_of)
    if runner_up is None and len(p.groups) > 1:
        runner_up = pick(p.ranked(catalog, 1), p.groups[1], load.full, running_of)[0]
    needs, route = p.needs, p.route
    kept = catalog.by_name.get(keep) if keep and keep != best.pool.name else None
    if kept is not None and p.alive & kept.bit:  # the run's pool can still run it: stay
        best, runner_up = Candidate(fit(kept, needs, route.preferred), running_of(kept)), best
    else:
        kept = None
    pool = best.pool
    by_person = route.mode != "auto" and bool(needs.placement_pool)
    step = decider(best, runner_up) if runner_up is not None else None
    queued = best.full
    usage = f"{best.running}/{pool.max_builds} builds running"
    path = (who_step,) + p.steps + (
        Step("Best fit", f"{pool.label}: score {best.score:.2f}, priority {pool.priority}"
             + (f"; ahead of {runner_up.pool.label} on {step}" if runner_up else "; no other pool can run it")
             + (f" (below 1 because it {'; '.join(best.fit.notes)})" if best.fit.notes else "")),
        Step("Capacity", f"{usage}: " + ("full, so the build is queued" if queued else "a slot is free, admitted")),
    )
    reason = _reason(p, best, step, by_person) if kept is None else \
        (f"its run is on {pool.label}, and a build keeps its pool once its run exists "
         f"({runner_up.pool.label} would be picked for it now)")
    if queued:
        reason += f"; it is full ({usage}), so the build waits for a slot"

    alternatives = _LostTo(p, catalog, load, best)
    return Decision("Queued" if queued else "Admitted", pool.infrastructure, pool.provider, pool.name, reason,
                    confidence(best, runner_up, by_person), Alternatives(alternatives, head=alternatives), path,
                    best.score)


class _LostTo:
    """The alternatives of a chosen pool, made when asked (``limit``: only the closest).

    An object rather than a closure: the last pass's decisions are kept between passes, and
    a closure costs a function and a cell per captured name for each of 10,000 decisions."""

    __slots__ = ("p", "catalog", "load", "best")

    def __init__(self, p: Plan, catalog: Catalog, load: Load, best: Candidate) -> None:
        self.p, self.catalog, self.load, self.best = p, catalog, load, best

    def __call__(self, limit: int | None = None) -> list[Alternative]:
        p, catalog, best, running_of = self.p, self.catalog, self.best, self.load.running
        preferred, pool = p.route.preferred, best.pool
        candidates = (Candidate(fit(q, p.needs, preferred), running_of(q)) for q in catalog.members(p.alive))
        fitting = _closest(candidates, None if limit is None else limit + 1)  # + the chosen pool
        out = [Alternative(c.pool.provider, c.pool.name, _lost(best, c), c.score) for c in fitting if c.pool is not pool]
        return _with_excluded(out, catalog, p, limit)


def _closest(candidates: Iterable[Candidate], limit: int | None) -> list[Candidate]:
    """The candidates in order (``Candidate.key``); only the first ``limit`` when given."""
    if limit is None:
        return sorted(candidates, key=_key)
    return heapq.nsmallest(limit, candidates, key=_key)


def _key(candidate: Candidate) -> tuple:
    return candidate.key


def _with_excluded(out: list[Alternative], catalog: Catalog, p: Plan, limit: int | None) -> list[Alternative]:
    """``out`` followed by the pools a rule excluded, cut to ``limit``."""
    if limit is None:
        out.extend(_excluded_alternatives(catalog, p))
        return out
    del out[limit:]
    if len(out) < limit:
        out.extend(_excluded_alternatives(catalog, p)[:limit - len(out)])
    return out


def _reason(p: Plan, best: Candidate, step: str | None, by_person: bool) -> str:
    pool, route = best.pool, p.route
    head = route.why
    if best.fit.infra_rank:
        head += (f", but no pool on {KIND_WORDS[route.preferred]} can run it, so it falls back to "
                 f"{KIND_WORDS[pool.infrastructure]}")
    who = rules.team_words(p.team)
    if by_person:
        tail = "the pool can run the build" if route.mode == "force" else f"it is offered to {who} and can run the build"
    else:
        if p.alive & (p.alive - 1) == 0:
            which = "the only pool"
        elif step == "health":
            which = "the only healthy pool"
        elif step == "infrastructure":
            which = f"the only pool on {KIND_WORDS[pool.infrastructure]}"
        elif step == "capacity":
            which = "the best pool with a free slot"
        elif step == "score":
            which = "the best-fitting pool"
        elif step == "priority":
            which = "the highest-priority pool"
        else:
            which = "the first by name of several equally good pools"
        there = " on the requested provider" if route.mode != "auto" and p.needs.placement_provider else ""
        tail = f"{pool.label} is {which}{there} for {who} that can run it"
    reason = f"{head}; {tail}"
    state = pool.health.state
    if state == "Degraded":
        why = f": {pool.health.reason}" if pool.health.reason else ""
        reason += f"; {pool.provider} is Degraded{why}, used because no healthy pool can run it"
    elif state == "Unknown":
        reason += f" (health of {pool.provider} not checked yet)"
    return reason


def _lost(best: Candidate, other: Candidate) -> str:
    step = decider(best, other)
    p = other.pool
    if step == "health":
        why = f": {p.health.reason}" if p.health.reason else ""
        return f"provider {p.provider} is Degraded{why}; a healthy pool can run the build"
    if step == "infrastructure":
        return f"it is on {KIND_WORDS[p.infrastructure]}, only the fallback for this build"
    if step == "capacity":
        return f"full ({other.running}/{p.max_builds} builds running)"
    if step == "score":
        return f"scores lower than {best.score:.2f}: it {'; '.join(other.fit.notes)}"
    if step == "priority":
        return f"lower priority ({p.priority} vs {best.pool.priority})"
    return f"as good as {best.pool.label}; ties go to the first provider/pool name in alphabetical order"


def _excluded_alternatives(catalog: Catalog, p: Plan) -> list[Alternative]:
    """The pools a rule excluded, with why; the same for every build of the plan, so made once."""
    if not p._excluded_alternatives:
        p._excluded_alternatives.extend(
            Alternative(q.provider, q.name, rules.excluded(rule, q, p.needs, p.team, p.route), None, rule)
            for rule, mask in p.excluded for q in catalog.members(mask))
    return p._excluded_alternatives


def _placement_refused(catalog: Catalog, needs: Needs, team: str | None, route: Route,
                       excluded: list[tuple[str, int]], offered: int) -> str:
    where = f"{needs.placement_provider}/{needs.placement_pool}" if needs.placement_pool else needs.placement_provider
    target = rules.placement_mask(catalog, needs)
    if not target:
        why = "it does not exist" if needs.placement_pool else "it has no pools"
    else:
        reasons = []
        for rule, mask in excluded:
            for q in catalog.members(mask & target):
                reasons.append(f"{q.name}: {rules.excluded(rule, q, needs, team, route)}")
        why = "; ".join(reasons[:4]) + ("; ..." if len(reasons) > 4 else "")
    options = catalog.members(offered)
    listed = ", ".join(q.label for q in options[:8]) + (f" and {len(options) - 8} more" if len(options) > 8 else "")
    return (f"placement {where} is not offered to this build ({why}); offered: {listed}" if options
            else f"placement {where} is not offered to this build ({why}), and no pool is")


def _rejected(reason: str, path: tuple[Step, ...], catalog: Catalog, p: Plan, load: Load) -> Decision:
    reason = reason[0].upper() + reason[1:]
    path = path + (Step("Result", f"Rejected: {reason}"),)

    alternatives = _Refused(p, catalog, load)
    return Decision("Rejected", None, None, None, reason, 0.0, Alternatives(alternatives, head=alternatives), path,
                    None)


class _Refused:
    """The alternatives of a refused request, made when asked (see ``_LostTo``)."""

    __slots__ = ("p", "catalog", "load")

    def __init__(self, p: Plan, catalog: Catalog, load: Load) -> None:
        self.p, self.catalog, self.load = p, catalog, load

    def __call__(self, limit: int | None = None) -> list[Alternative]:
        p, catalog, running_of = self.p, self.catalog, self.load.running
        fitting = _closest((Candidate(fit(q, p.needs, p.route.preferred), running_of(q))
                            for q in catalog.members(p.alive)), limit)
        out = [Alternative(c.pool.provider, c.pool.name, _REFUSED, c.score) for c in fitting]
        return _with_excluded(out, catalog, p, limit)


_REFUSED = "could run the build, but the request was refused"
