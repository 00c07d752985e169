"""The cluster layer: the only package that talks to Kubernetes.

Public API (everything else in this package is an implementation detail)::

    pool = ConnectionPool(ClusterSettings())                 # one per process; close() at exit
    conn = pool.get(name, provider.spec, credentials)        # credentials: field -> plaintext bytes | None
    health = check_health(conn, provider.spec)               # ClusterHealth(state, reason, ...).to_selection()
    observed = observe(conn, kinds_for(desired))             # managed objects by label, one LIST per kind
    report = apply_objects(conn, desired, observed)          # SSA of what differs; per-object results
    pruned = prune_objects(conn, desired, observed, source_ok=snapshot_loaded)
    diff = diff_objects(conn, desired)                       # server dry-run vs live, masked unified diffs
    sync(conn, desired) / sync_all(pool, [Target(...)])      # observe + apply + prune, providers isolated
    observed.runs()                                          # {ObjectKey: RunState} of PipelineRuns/Jobs

``observe``/``sync``/``diff_objects`` take ``namespaces=`` to limit a pass to some namespaces
(a shared cluster, or RBAC that covers only those).

Objects are plain dicts (what rendering makes). Errors: ``ClusterUnavailable`` (transient),
``ClusterRejected`` and subclasses, ``ConnectFailed`` (terminal); see ``errors``.
"""

from .applying import ApplyReport, FieldConflict, ObjectResult, apply_objects
from .comparing import Verdict, compare, unified_diff
from .connecting import Connection, Credentials, connect, file_credentials, no_credentials, sealed_credentials
from .diffing import DiffReport, ObjectDiff, diff_objects
from .errors import (ClusterError, ClusterRejected, ClusterUnavailable, Conflict, ConnectFailed, ConnectUnavailable,
                     Forbidden, Invalid, NotFound, Unauthorized, scrub)
from .health import ClusterHealth, NodePoolHealth, check_all, check_health
from .objects import ObjectKey, RunState, build_of, is_managed, key_of, run_state
from .observing import MANAGED_KINDS, Observed, get_object, kinds_for, list_objects, namespaces_of, observe
from .pooling import ConnectionPool
from .pruning import PruneReport, PruneResult, plan_prune, prune_objects
from .settings import (APPLIED_HASH_ANNOTATION, BUILD_LABEL, DEFAULT_SETTINGS, FIELD_MANAGER, MANAGED_BY_LABEL,
                       MANAGED_BY_VALUE, MANAGED_SELECTOR, POOL_LABEL, REVISION_ANNOTATION, ClusterSettings)
from .syncing import SyncReport, Target, sync, sync_all

__all__ = [
    "APPLIED_HASH_ANNOTATION", "BUILD_LABEL", "DEFAULT_SETTINGS", "FIELD_MANAGER", "MANAGED_BY_LABEL", "MANAGED_BY_VALUE",
    "MANAGED_KINDS", "MANAGED_SELECTOR", "POOL_LABEL", "REVISION_ANNOTATION",
    "ApplyReport", "ClusterError", "ClusterHealth", "ClusterRejected", "ClusterSettings", "ClusterUnavailable",
    "Conflict", "ConnectFailed", "ConnectUnavailable", "Connection", "ConnectionPool", "Credentials", "DiffReport",
    "FieldConflict", "Forbidden", "Invalid", "NodePoolHealth", "NotFound", "ObjectDiff", "ObjectKey", "ObjectResult",
    "Observed", "PruneReport", "PruneResult", "RunState", "SyncReport", "Target", "Unauthorized", "Verdict",
    "apply_objects", "build_of", "check_all", "check_health", "compare", "connect", "diff_objects", "file_credentials",
    "get_object", "is_managed", "key_of", "kinds_for", "list_objects", "namespaces_of", "no_credentials", "observe", "plan_prune",
    "prune_objects", "run_state", "scrub", "sealed_credentials", "sync", "sync_all", "unified_diff",
]
