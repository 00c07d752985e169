"""Prune: remove what the reconciler created and no longer wants, and nothing else.

Rules, in order:

1. Nothing is pruned when the desired state is not trustworthy: ``source_ok=False`` (the
   repository failed to load), or the desired set for this cluster is empty and
   ``allow_empty`` is not given (Argo CD's ``allowEmpty`` lesson: an empty set is far more
   often a broken render than a real wish to delete everything).
2. Only observed objects labelled ``app.kubernetes.io/managed-by=image-factory`` *and*
   ``imagefactory.dev/build`` are candidates; an object without our labels is never touched.
   Objects with a controller owner (garbage-collected with their owner), objects already being
   deleted, and Namespaces (unless ``settings.prune_namespaces``: deleting one deletes
   everything in it) are left alone.
3. A run that is still going (PipelineRun/TaskRun) is **cancelled** (``spec.status:
   Cancelled``), not deleted; a running Job is deleted (a Job has no cancel). A finished run is
   kept for ``settings.finished_retention`` after it finished, then deleted.
4. Other objects of a build (ServiceAccount, ConfigMap, ...) are kept while one of its runs is
   still going, then deleted.

Deletes carry a UID precondition (an object re-created since it was observed is not deleted)
and ``propagationPolicy: Background``.
"""

from __future__ import annotations

import datetime
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from .connecting import Connection
from .errors import ClusterError, Conflict, NotFound
from .objects import (ObjectKey, ResultCounts, build_of, controller_owner, is_managed, key_of, parse_time, pool_of,
                      run_state)
from .observing import Observed
from .settings import FIELD_MANAGER

PruneAction = Literal["deleted", "cancelled", "kept", "failed"]


@dataclass(frozen=True)
class PruneResult:
    key: ObjectKey
    build: str | None
    pool: str | None
    action: PruneAction
    reason: str
    error: ClusterError | None = field(default=None, compare=False, repr=False)

    @property
    def ok(self) -> bool:
        return self.action != "failed"

    def describe(self) -> str:
        return f"{self.key}: {self.action} ({self.reason})"


@dataclass
class PruneReport(ResultCounts):
    provider: str
    results: list[PruneResult] = field(default_factory=list)
    skipped: str | None = None  # why nothing at all was pruned
    requests: int = 0
    writes: int = 0


    def by_action(self, action: PruneAction) -> list[ObjectKey]:
        return [r.key for r in self.results if r.action == action]


@dataclass(frozen=True)
class _Step:
    obj: dict[str, Any]
    do: Literal["delete", "cancel", "keep"]
    reason: str


def plan_prune(desired: Iterable[dict[str, Any]], observed: Observed, *, retention: float,
               prune_namespaces: bool = False, now: float | None = None) -> list[_Step]:
    """What pruning would do, without doing it (``prune_objects`` carries it out)."""
    now = time.time() if now is None else now
    wanted = {key_of(o) for o in desired}
    candidates = [o for k, o in sorted(observed.objects.items())
                  if k not in wanted and observed.in_scope(k) and is_managed(o) and build_of(o)]
    steps: list[_Step] = []
    busy_builds: set[str] = set()
    others: list[dict[str, Any]] = []
    for obj in candidates:
        key, meta = key_of(obj), obj.get("metadata") or {}
        owner = controller_owner(obj)
        if owner is not None:
            steps.append(_Step(obj, "keep", f"owned by {owner.get('kind')} {owner.get('name')}; removed with it"))
            continue
        if meta.get("deletionTimestamp"):
            continue  # already on its way out
        if (key.group, key.kind) == ("", "Namespace") and not prune_namespaces:
            steps.append(_Step(obj, "keep", "namespaces are never pruned: deleting one deletes everything in it"))
            continue
        state = run_state(obj)
        if state is None:
            others.append(obj)
            continue
        if not state.finished:
            busy_builds.add(build_of(obj) or "")
            if key.group == "batch":
                steps.append(_Step(obj, "delete", "a running Job of a build that is no longer desired: deleted to stop it"))
            elif state.cancel_requested:
                steps.append(_Step(obj, "keep", "cancellation requested; waiting for the run to stop"))
            else:
                steps.append(_Step(obj, "cancel", "still running, and its build is no longer desired"))
            continue
        finished = state.finished_timestamp() or parse_time(meta.get("creationTimestamp")) or now
        until = finished + retention
        if now >= until:
            steps.append(_Step(obj, "delete", f"{state.phase.lower()} run past its retention ({_span(retention)})"))
        else:
            stamp = datetime.datetime.fromtimestamp(until, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
            steps.append(_Step(obj, "keep", f"{state.phase.lower()} run kept until {stamp} (retention {_span(retention)})"))
    for obj in others:
        if (build_of(obj) or "") in busy_builds:
            steps.append(_Step(obj, "keep", "kept while a run of its build is still stopping"))
        else:
            steps.append(_Step(obj, "delete", "no longer desired"))
    return steps


def prune_objects(conn: Connection, desired: Iterable[dict[str, Any]], observed: Observed, *, source_ok: bool = True,
                  allow_empty: bool = False, now: float | None = None) -> PruneReport:
    """Prune ``observed`` against ``desired`` on one cluster (see the module doc for the rules)."""
    desired = list(desired)
    report = PruneReport(conn.provider)
    if not source_ok:
        report.skipped = "the desired state did not load completely: nothing is pruned"
        return report
    if not desired and not allow_empty:
        report.skipped = "the desired set is empty: nothing is pruned (allow_empty to prune everything)"
        return report
    settings = conn.settings
    before = dict(conn.stats)
    steps = plan_prune(desired, observed, retention=settings.finished_retention,
                       prune_namespaces=settings.prune_namespaces, now=now)
    with ThreadPoolExecutor(max_workers=max(1, settings.concurrency), thread_name_prefix=f"prune-{conn.provider}") as pool:
        report.results = list(pool.map(lambda step: _carry_out(conn, step), steps))
    after = conn.stats
    report.requests = after.get("requests", 0) - before.get("requests", 0)
    report.writes = after.get("writes", 0) - before.get("writes", 0)
    return report


def _carry_out(conn: Connection, step: _Step) -> PruneResult:
    obj = step.obj
    key, meta = key_of(obj), obj.get("metadata") or {}

    def result(action: PruneAction, reason: str, error: ClusterError | None = None) -> PruneResult:
        return PruneResult(key, build_of(obj), pool_of(obj), action, reason, error)

    if step.do == "keep":
        return result("kept", step.reason)
    try:
        rt = conn.resource(obj["apiVersion"], obj["kind"])
    except ClusterError as exc:
        return result("failed", f"{step.reason}; but: {exc}", exc)
    if rt is None:
        return result("failed", f"{step.reason}; but the cluster no longer serves {obj['apiVersion']} {obj['kind']}")
    path = rt.path(key.namespace or None, key.name)
    try:
        if step.do == "cancel":
            patch: dict[str, Any] = {"spec": {"status": "Cancelled"}}
            if meta.get("uid"):
                patch["metadata"] = {"uid": meta["uid"]}  # a precondition: 409 if it was re-created
            response = conn.request("PATCH", path, query={"fieldManager": FIELD_MANAGER}, body=patch,
                                    content_type="application/merge-patch+json", what=f"cancel {rt.plural}/{key.name}")
            conn.note_write(rt, response.json())
            return result("cancelled", step.reason)
        body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if meta.get("uid"):
            body["preconditions"] = {"uid": meta["uid"]}
        response = conn.request("DELETE", path, body=body, what=f"delete {rt.plural}/{key.name}")
        conn.note_write(rt, response.json())
        return result("deleted", step.reason)
    except NotFound:
        return result("deleted", f"{step.reason}; it was already gone")
    except Conflict as exc:
        return result("kept", "it changed since it was observed (re-created?); looked at again next pass", exc)
    except ClusterError as exc:
        return result("failed", f"{step.reason}; but: {exc}", exc)


def _span(seconds: float) -> str:
    if seconds >= 86400 and seconds % 86400 == 0:
        return f"{int(seconds // 86400)}d"
    if seconds >= 3600 and seconds % 3600 == 0:
        return f"{int(seconds // 3600)}h"
    if seconds >= 60 and seconds % 60 == 0:
        return f"{int(seconds // 60)}m"
    return f"{seconds:g}s"
