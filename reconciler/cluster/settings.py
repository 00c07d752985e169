"""Knobs of the cluster layer, and the labels that mark what the reconciler manages.

Every setting has a safe default; ``ClusterSettings`` is immutable, use ``replace()`` to derive.

Documented behaviours that a setting changes:

- ``force_conflicts`` (default False): when another field manager owns a field we apply, the
  apply is *reported* as a conflict (fields and managers named) and nothing is taken over.
  Set it to True, or give ``apply_objects(..., force=True)``, to apply with ``force=true`` and
  take those fields over.
- ``no_ready_nodes`` (default "Degraded"): the health state of a cluster whose API answers but
  that has no Ready node. Degraded, not Unhealthy, because build clusters often scale node
  pools from zero (a pending build pod is what makes the autoscaler add a node), so applying
  still makes sense; selection then prefers a Healthy cluster. Set "Unhealthy" where no
  autoscaler runs, so builds are never sent to a cluster that cannot start them.
- ``finished_retention`` (default 24 h): finished PipelineRuns and Jobs of removed builds are
  kept this long after they finish, then pruned.
- ``prune_namespaces`` (default False): a Namespace is never pruned, since deleting it deletes
  everything in it, including objects without our labels.
- ``qps``/``burst``: a token bucket per connection (client-go's model); 0 disables it.
- ``list_from_cache`` (default True): observe LISTs with a ``resourceVersion``, answered from
  the API server's watch cache instead of a quorum read from etcd (3-10x cheaper for the
  server: 35 ms instead of 110-350 ms for 500 PipelineRuns here). The version asked for is
  the connection's own last write of that resource, so a pass always sees what the previous
  one wrote (read-your-writes); what others changed may show a few milliseconds late, which
  costs at most one idempotent re-apply, and prune's UID preconditions keep a late read from
  deleting or cancelling a re-created object. False: every LIST reads etcd, in pages.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal

from ..contract import (APPLIED_HASH_ANNOTATION, BUILD_LABEL, FIELD_MANAGER, MANAGED_BY_LABEL,  # noqa: F401
                        MANAGED_BY_VALUE, POOL_LABEL, REVISION_ANNOTATION)

MANAGED_SELECTOR = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
# Annotations whose change alone is not worth a write (re-stamped with the next real change),
# the same rule as reconciler.planning.
VOLATILE_ANNOTATIONS = (REVISION_ANNOTATION,)


@dataclass(frozen=True)
class ClusterSettings:
    # requests
    connect_timeout: float = 5.0
    request_timeout: float = 30.0
    retries: int = 4  # extra attempts for transient failures (so 5 attempts in all)
    backoff_base: float = 0.25
    backoff_max: float = 10.0
    qps: float = 200.0
    burst: int = 400
    concurrency: int = 8  # requests in flight per provider
    list_from_cache: bool = True
    # connections
    idle_expiry: float = 300.0  # a pooled connection unused this long is closed
    exec_timeout: float = 60.0  # an exec credential plugin taking longer is killed
    # apply
    force_conflicts: bool = False
    # prune
    finished_retention: float = 24 * 3600.0
    prune_namespaces: bool = False
    # health
    no_ready_nodes: Literal["Degraded", "Unhealthy"] = "Degraded"

    def replace(self, **changes: object) -> "ClusterSettings":
        return replace(self, **changes)  # type: ignore[arg-type]


DEFAULT_SETTINGS = ClusterSettings()
