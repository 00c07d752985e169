"""Observe: every object the reconciler manages on one cluster, by label, one LIST per kind.

The kinds listed are those of the desired objects plus ``MANAGED_KINDS`` (what rendering may
have created before: a kind that is no longer desired at all must still be found, to prune
it). A kind the cluster does not serve (a CRD not installed) has nothing to observe. A kind
that could not be listed is recorded in ``errors``; prune then leaves that kind alone.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable

from .connecting import Connection
from .errors import ClusterError, NotFound
from .objects import ObjectKey, RunState, build_of, key_of, run_state
from .settings import MANAGED_SELECTOR

Kind = tuple[str, str]  # (apiVersion, kind)

MANAGED_KINDS: tuple[Kind, ...] = (
    ("v1", "Namespace"),
    ("v1", "ServiceAccount"),
    ("rbac.authorization.k8s.io/v1", "Role"),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"),
    ("rbac.authorization.k8s.io/v1", "ClusterRole"),
    ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
    ("v1", "ConfigMap"),
    ("v1", "Secret"),
    ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"),
    ("apps/v1", "Deployment"),
    ("autoscaling/v1", "HorizontalPodAutoscaler"),
    ("networking.k8s.io/v1", "NetworkPolicy"),
    ("batch/v1", "Job"),
    ("tekton.dev/v1", "PipelineRun"),
    ("tekton.dev/v1", "Pipeline"),
    ("tekton.dev/v1", "Task"),
    ("buildkit.smrt-devops.net/v1alpha1", "BuildKitPool"),
    ("buildkit.smrt-devops.net/v1alpha1", "BuildKitWorker"),
    ("buildkit.smrt-devops.net/v1alpha1", "BuildKitOIDCConfig"),
)
PAGE = 500


@dataclass
class Observed:
    """What one cluster holds of ours."""

    provider: str
    objects: dict[ObjectKey, dict[str, Any]] = field(default_factory=dict)
    listed: set[Kind] = field(default_factory=set)  # kinds listed completely (incl. not served)
    absent: set[Kind] = field(default_factory=set)  # kinds the cluster does not serve
    errors: dict[Kind, ClusterError] = field(default_factory=dict)
    scope: frozenset[str] | None = None  # the namespaces observed; None: the whole cluster

    def in_scope(self, key: ObjectKey) -> bool:
        """May prune consider this object? (Within the observed namespaces, if scoped.)"""
        if self.scope is None:
            return True
        if key.namespace:
            return key.namespace in self.scope
        return (key.group, key.kind) == ("", "Namespace") and key.name in self.scope

    @property
    def complete(self) -> bool:
        return not self.errors

    def covers(self, api_version: str, kind: str) -> bool:
        """Was this kind listed completely (so absence from ``objects`` means absent)?"""
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        return any(k == kind and (v.rpartition("/")[0] if "/" in v else "") == group for v, k in self.listed)

    def get(self, obj_or_key: dict[str, Any] | ObjectKey) -> dict[str, Any] | None:
        key = obj_or_key if isinstance(obj_or_key, ObjectKey) else key_of(obj_or_key)
        return self.objects.get(key)

    def runs(self) -> dict[ObjectKey, RunState]:
        """The state of every PipelineRun, TaskRun and Job observed."""
        out = {}
        for key, obj in self.objects.items():
            state = run_state(obj)
            if state is not None:
                out[key] = state
        return out

    def by_build(self, build: str) -> list[dict[str, Any]]:
        return [o for o in self.objects.values() if build_of(o) == build]


def kinds_for(desired: Iterable[dict[str, Any]], extra: Iterable[Kind] = MANAGED_KINDS) -> list[Kind]:
    """``extra`` plus the kinds of ``desired``, one apiVersion per group and kind."""
    seen: dict[tuple[str, str], Kind] = {}
    for api_version, kind in [*extra, *((str(o.get("apiVersion", "")), str(o.get("kind", ""))) for o in desired)]:
        group = api_version.rpartition("/")[0] if "/" in api_version else ""
        seen.setdefault((group, kind), (api_version, kind))
    return list(seen.values())


def observe(conn: Connection, kinds: Iterable[Kind] = MANAGED_KINDS, *, selector: str = MANAGED_SELECTOR,
            namespaces: Iterable[str] | None = None) -> Observed:
    """List the managed objects of each kind (concurrently, bounded by ``settings.concurrency``).

    ``namespaces`` scopes the pass: namespaced kinds are listed in each of them (one LIST per
    kind and namespace) and, of cluster-scoped objects, only those Namespaces are candidates
    for pruning. For a reconciler whose RBAC covers only some namespaces, or clusters shared
    with others. None (the default): the whole cluster, one LIST per kind.
    """
    scope = frozenset(namespaces) if namespaces is not None else None
    result = Observed(conn.provider, scope=scope)
    kinds = list(dict.fromkeys(kinds))

    def one(kind: Kind) -> tuple[Kind, list[dict[str, Any]] | None, ClusterError | None]:
        try:
            if scope is None:
                return kind, list_objects(conn, kind[0], kind[1], selector=selector), None
            rt = conn.resource(*kind)
            if rt is None:
                return kind, None, None
            if not rt.namespaced:
                return kind, list_objects(conn, kind[0], kind[1], selector=selector) or [], None
            items: list[dict[str, Any]] = []
            for ns in sorted(scope):
                items.extend(list_objects(conn, kind[0], kind[1], selector=selector, namespace=ns) or [])
            return kind, items, None
        except ClusterError as exc:
            return kind, None, exc

    workers = max(1, min(conn.settings.concurrency, len(kinds)))
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"observe-{conn.provider}") as pool:
        for kind, items, error in pool.map(one, kinds):
            if error is not None:
                result.errors[kind] = error
                continue
            result.listed.add(kind)
            if items is None:
                result.absent.add(kind)
                continue
            for obj in items:
                result.objects[key_of(obj)] = obj
    return result


def namespaces_of(desired: Iterable[dict[str, Any]]) -> list[str]:
    """The namespaces a desired set lives in (its objects' namespaces and its Namespaces)."""
    out: set[str] = set()
    for obj in desired:
        meta = obj.get("metadata") or {}
        if meta.get("namespace"):
            out.add(str(meta["namespace"]))
        elif obj.get("kind") == "Namespace" and str(obj.get("apiVersion")) == "v1" and meta.get("name"):
            out.add(str(meta["name"]))
    return sorted(out)


def list_objects(conn: Connection, api_version: str, kind: str, *, selector: str | None = MANAGED_SELECTOR,
                 namespace: str | None = None) -> list[dict[str, Any]] | None:
    """Every object of a kind matching ``selector``; None when the kind is not served.

    With ``settings.list_from_cache`` the API server answers from its watch cache, no older
    than this connection's own last write of that resource (read-your-writes, without a
    quorum read); otherwise from etcd, in pages of ``PAGE``."""
    rt = conn.resource(api_version, kind)
    if rt is None:
        return None
    path = rt.path(namespace if rt.namespaced else None)
    query: dict[str, Any] = {}
    if selector:
        query["labelSelector"] = selector
    what = f"list {rt.plural}"
    if conn.settings.list_from_cache:
        # (The cache ignores limit; a limit with a non-zero resourceVersion would go to etcd.)
        written = conn.written_version(rt)
        response = conn.request("GET", path, query={**query, "resourceVersion": written or "0"}, what=what,
                                ok=(504,) if written else ())
        if response.status != 504:
            return _items(response.json() or {}, api_version, kind)
        # "Too large resource version": the cache lags; read from etcd instead.
    return list_pages(conn, path, api_version, kind, query, what)[0]


def list_pages(conn: Connection, path: str, api_version: str, kind: str, query: dict[str, Any],
               what: str) -> tuple[list[dict[str, Any]], str]:
    """A consistent LIST from etcd in pages of ``PAGE``: the items and the list's
    resourceVersion (where a watch of the same objects starts)."""
    items: list[dict[str, Any]] = []
    version = ""
    query = {**query, "limit": PAGE}
    while True:
        doc = conn.get_json(path, query=query, what=what) or {}
        version = version or str((doc.get("metadata") or {}).get("resourceVersion") or "")
        items.extend(_items(doc, api_version, kind))
        token = (doc.get("metadata") or {}).get("continue")
        if not token:
            return items, version
        query = {**query, "continue": token}


def _items(doc: dict[str, Any], api_version: str, kind: str) -> list[dict[str, Any]]:
    items = []
    for item in doc.get("items") or ():
        # LIST answers omit each item's apiVersion/kind
        item.setdefault("apiVersion", api_version)
        item.setdefault("kind", kind)
        items.append(item)
    return items


def get_object(conn: Connection, api_version: str, kind: str, name: str, namespace: str | None = None) -> dict[str, Any] | None:
    """One object, or None when it (or its kind) does not exist."""
    rt = conn.resource(api_version, kind)
    if rt is None:
        return None
    try:
        obj = conn.get_json(rt.path(namespace, name), what=f"get {rt.plural}/{name}")
    except NotFound:
        return None
    obj.setdefault("apiVersion", api_version)
    obj.setdefault("kind", kind)
    return obj
