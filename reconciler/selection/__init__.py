"""Infrastructure selection: which provider and pool runs a build, and why (seed 000).

Public API::

    catalog = Catalog.build(providers, pools, health=None, load=None, factory=None)
    decision = select(build_entity, catalog, actor=Actor(identity, permissions))
    decisions = select_all(snapshot.builds, catalog, actor=lambda build: Actor(...))
    decision.to_status()   # the status.selection block
    decision.to_dict()     # everything, for JSON

Modules: ``requirements`` (what a build needs), ``health`` (provider health input),
``catalog`` (per-pool facts and indexes), ``routing`` (the seed's tree), ``rules`` (the
filters and their words), ``scoring`` (score, order, confidence), ``deciding`` (select),
``decisions`` (the Decision), ``explaining`` (text for people).
"""

from .catalog import Catalog, PoolFacts
from .decisions import Actor, Alternative, Decision, Step
from .deciding import select, select_all
from .health import HEALTH_STATES, UNKNOWN, ProviderHealth, health_from_mapping
from .requirements import METHOD_RULES, Needs, needs_of

__all__ = [
    "HEALTH_STATES",
    "METHOD_RULES",
    "UNKNOWN",
    "Actor",
    "Alternative",
    "Catalog",
    "Decision",
    "Needs",
    "PoolFacts",
    "ProviderHealth",
    "Step",
    "health_from_mapping",
    "needs_of",
    "select",
    "select_all",
]
