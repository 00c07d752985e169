"""One pass on the clusters: observe, apply what differs, prune; every provider on its own.

``sync(conn, desired)`` does one cluster; ``sync_all(pool, targets)`` does many concurrently,
and a provider that cannot be reached, or fails in any way, gets its own error in its report
while the others go on.
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Iterable, Sequence

from .applying import ApplyReport, ObjectResult, apply_objects
from .connecting import Connection, Credentials
from .errors import ClusterError
from .objects import ObjectKey, RunState, run_state
from .observing import Observed, kinds_for, observe
from .pooling import ConnectionPool
from .pruning import PruneReport, PruneResult, prune_objects

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Target:
    """What one provider should hold after this pass."""

    provider: str
    spec: Any  # the Provider's spec
    desired: Sequence[dict[str, Any]]
    credentials: Credentials | None = None
    namespaces: Sequence[str] | None = None  # scope (see observe); None: the whole cluster
    # False when the repository (or this provider's part of it) failed to load: prune nothing
    source_ok: bool = True
    allow_empty: bool = False


@dataclass
class SyncReport:
    provider: str
    observed: Observed | None = None
    applied: ApplyReport | None = None
    pruned: PruneReport | None = None
    error: str | None = None  # the provider as a whole failed (connect, or every list)
    transient: bool = False  # the error may pass by itself (retry next pass)
    requests: int = 0
    writes: int = 0

    @property
    def ok(self) -> bool:
        """Nothing failed: the provider was reached, every kind listed, every object applied
        as desired and every prune step carried out."""
        return self.error is None and not (self.observed and self.observed.errors) and \
            (self.applied is None or self.applied.ok) and (self.pruned is None or self.pruned.ok)

    def runs(self) -> dict[ObjectKey, RunState]:
        """Every run's state after this pass: as observed, or as the server answered a write."""
        out = self.observed.runs() if self.observed else {}
        for result in self.applied.results if self.applied else ():
            if result.wrote and result.live is not None:
                state = run_state(result.live)
                if state is not None:
                    out[result.key] = state
        return out

    def for_build(self, build: str) -> tuple[list[ObjectResult], list[PruneResult]]:
        applied = self.applied.for_build(build) if self.applied else []
        pruned = [r for r in self.pruned.results if r.build == build] if self.pruned else []
        return applied, pruned


def sync(conn: Connection, desired: Iterable[dict[str, Any]], *, source_ok: bool = True, allow_empty: bool = False,
         prune: bool = True, force: bool | None = None, now: float | None = None,
         namespaces: Iterable[str] | None = None) -> SyncReport:
    """Observe, apply what differs, prune what is no longer desired, on one cluster.

    ``namespaces``: scope the pass to these namespaces (see ``observe``); default the cluster."""
    desired = list(desired)
    report = SyncReport(conn.provider)
    before = dict(conn.stats)
    try:
        observed = observe(conn, kinds_for(desired), namespaces=namespaces)
        report.observed = observed
        if observed.errors and not observed.listed:
            first = next(iter(observed.errors.values()))
            report.error, report.transient = str(first), first.transient
            return report
        report.applied = apply_objects(conn, desired, observed, force=force)
        if prune:
            report.pruned = prune_objects(conn, desired, observed, source_ok=source_ok, allow_empty=allow_empty, now=now)
    finally:
        after = conn.stats
        report.requests = after.get("requests", 0) - before.get("requests", 0)
        report.writes = after.get("writes", 0) - before.get("writes", 0)
    return report


def sync_all(pool: ConnectionPool, targets: Iterable[Target], *, workers: int = 4, prune: bool = True,
             force: bool | None = None, now: float | None = None) -> dict[str, SyncReport]:
    """``sync`` every target concurrently; each provider's failure stays in its own report."""
    targets = list(targets)

    def one(target: Target) -> SyncReport:
        try:
            conn = pool.get(target.provider, target.spec, target.credentials)
            return sync(conn, target.desired, source_ok=target.source_ok, allow_empty=target.allow_empty,
                        prune=prune, force=force, now=now, namespaces=target.namespaces)
        except ClusterError as exc:
            return SyncReport(target.provider, error=str(exc), transient=exc.transient)
        except Exception as exc:  # a bug must not stop the other providers either
            log.exception("cluster pass for provider %s failed", target.provider)
            return SyncReport(target.provider, error=f"internal error: {type(exc).__name__}")

    if not targets:
        return {}
    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(targets))), thread_name_prefix="sync") as executor:
        return {t.provider: r for t, r in zip(targets, executor.map(one, targets))}
