"""Dry-run diff: what applying (and pruning) would change on one cluster, per object.

For each desired object that differs from live (``comparing.compare``; unchanged ones cost
no request), the server is asked for the result of applying it (server-side apply with
``dryRun=All``: its defaults, its schema pruning, its admission) and that is diffed with the
live object: a normalised unified diff (no status, no server-owned metadata), with Secret
values masked. Objects prune would remove or cancel are listed too. Nothing is written.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from .applying import apply_objects
from .comparing import unified_diff, with_applied_hash
from .connecting import Connection
from .errors import NotFound
from .objects import ObjectKey, build_of, key_of, pool_of
from .observing import Observed, kinds_for, observe
from .pruning import plan_prune

DiffAction = Literal["create", "update", "unchanged", "prune", "cancel", "failed"]


@dataclass(frozen=True)
class ObjectDiff:
    key: ObjectKey
    build: str | None
    pool: str | None
    action: DiffAction
    diff: str = ""
    message: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {"action": self.action, "group": self.key.group, "kind": self.key.kind, "namespace": self.key.namespace,
                "name": self.key.name, "build": self.build, "pool": self.pool, "message": self.message,
                "diff": self.diff}


@dataclass
class DiffReport:
    provider: str
    diffs: list[ObjectDiff] = field(default_factory=list)
    prune_skipped: str | None = None
    requests: int = 0
    writes: int = 0  # always 0: asserted by the tests

    @property
    def changed(self) -> bool:
        return any(d.action in ("create", "update", "prune", "cancel") for d in self.diffs)

    @property
    def failed(self) -> list[ObjectDiff]:
        return [d for d in self.diffs if d.action == "failed"]

    def text(self) -> str:
        return "".join(d.diff for d in self.diffs if d.diff)


def diff_objects(conn: Connection, desired: Iterable[dict[str, Any]], observed: Observed | None = None, *,
                 prune: bool = True, source_ok: bool = True, allow_empty: bool = False,
                 now: float | None = None, namespaces: Iterable[str] | None = None) -> DiffReport:
    """What a pass would change on this cluster, as a diff per object (see module doc)."""
    desired = list(desired)
    before = dict(conn.stats)
    report = DiffReport(conn.provider)
    if observed is None:
        observed = observe(conn, kinds_for(desired), namespaces=namespaces)
    dry = apply_objects(conn, desired, observed, dry_run=True)
    for result, obj in zip(dry.results, desired):
        live = observed.get(result.key)
        if result.action == "unchanged":
            report.diffs.append(ObjectDiff(result.key, result.build, result.pool, "unchanged", "", result.message))
            continue
        if result.action in ("created", "updated"):
            action: DiffAction = "create" if live is None else "update"
            after = result.live or with_applied_hash(obj)
            report.diffs.append(ObjectDiff(result.key, result.build, result.pool, action,
                                           unified_diff(result.key, live, after, conn.provider), result.message))
            continue
        if result.action == "failed" and isinstance(result.error, NotFound) and live is None \
                and "namespaces" in str(result.error).lower():
            # Its namespace is created by this same pass: show the object as it would be sent.
            report.diffs.append(ObjectDiff(result.key, result.build, result.pool, "create",
                                           unified_diff(result.key, None, with_applied_hash(obj), conn.provider),
                                           "its namespace does not exist yet: shown as sent, without server defaults"))
            continue
        report.diffs.append(ObjectDiff(result.key, result.build, result.pool, "failed", "", result.message))
    if prune:
        if not source_ok:
            report.prune_skipped = "the desired state did not load completely: nothing is pruned"
        elif not desired and not allow_empty:
            report.prune_skipped = "the desired set is empty: nothing is pruned (allow_empty to prune everything)"
        else:
            steps = plan_prune(desired, observed, retention=conn.settings.finished_retention,
                               prune_namespaces=conn.settings.prune_namespaces, now=now)
            for step in steps:
                key = key_of(step.obj)
                if step.do == "delete":
                    report.diffs.append(ObjectDiff(key, build_of(step.obj), pool_of(step.obj), "prune",
                                                   unified_diff(key, step.obj, None, conn.provider), step.reason))
                elif step.do == "cancel":
                    cancelled = copy.deepcopy(step.obj)
                    cancelled.setdefault("spec", {})["status"] = "Cancelled"
                    report.diffs.append(ObjectDiff(key, build_of(step.obj), pool_of(step.obj), "cancel",
                                                   unified_diff(key, step.obj, cancelled, conn.provider), step.reason))
    after = conn.stats
    report.requests = after.get("requests", 0) - before.get("requests", 0)
    report.writes = after.get("writes", 0) - before.get("writes", 0)
    return report

