"""Apply: server-side apply of what differs from live, and nothing else.

``apply_objects(conn, desired)`` applies a set of desired objects to one cluster:

- **Only what differs is sent.** Each desired object is compared with the observed live one
  (``comparing.compare``: applied-hash + field ownership). Unchanged objects cost nothing: a
  pass over an unchanged set sends one LIST per kind and no write at all.
- **Server-side apply**, field manager ``image-factory``, ``force=false``: a field another
  manager owns is reported as a conflict (``ObjectResult.conflicts``: field and manager), never
  taken over, unless ``settings.force_conflicts`` (or ``force=True``) says so.
- **Order**: Namespaces, then ServiceAccounts and Roles, then their bindings, then the rest; objects
  in a Namespace that failed to apply are skipped with that reason.
- **Bounded concurrency** (``settings.concurrency``) within each phase.
- **Per-object failures** are recorded on that object (and its build), the others go on.
- **Pruned fields**: what the server answers is compared with what was sent; fields it dropped
  (unknown to a CRD's schema) are reported in ``pruned_fields`` and make the object not ok.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Iterable, Literal

from .comparing import Verdict, compare, pruned_fields, with_applied_hash
from .connecting import Connection
from .errors import ClusterError, Conflict
from .objects import ObjectKey, ResultCounts, build_of, is_managed, key_of, pool_of
from .observing import Observed, kinds_for, observe
from .resources import ResourceType
from .settings import FIELD_MANAGER, MANAGED_BY_LABEL, MANAGED_BY_VALUE

Action = Literal["created", "updated", "unchanged", "conflict", "failed", "skipped"]
APPLY_CONTENT_TYPE = "application/apply-patch+yaml"  # JSON is YAML
_ROLES = {("", "ServiceAccount"), ("rbac.authorization.k8s.io", "Role"), ("rbac.authorization.k8s.io", "ClusterRole")}
# A binding comes after its role: unless the applier may ``bind``, the API server checks that
# the role's rules are the applier's own, and answers 404 while the role does not exist yet.
_BINDINGS = {("rbac.authorization.k8s.io", "RoleBinding"), ("rbac.authorization.k8s.io", "ClusterRoleBinding")}
PHASES = (0, 1, 2, 3)


@dataclass(frozen=True)
class FieldConflict:
    field: str
    manager: str
    message: str = ""


@dataclass(frozen=True)
class ObjectResult:
    key: ObjectKey
    build: str | None
    pool: str | None
    action: Action
    message: str = ""
    pruned_fields: tuple[str, ...] = ()
    conflicts: tuple[FieldConflict, ...] = ()
    error: ClusterError | None = field(default=None, compare=False, repr=False)
    live: dict[str, Any] | None = field(default=None, compare=False, repr=False)  # the server's answer

    @property
    def ok(self) -> bool:
        return self.action in ("created", "updated", "unchanged") and not self.pruned_fields

    @property
    def wrote(self) -> bool:
        return self.action in ("created", "updated")

    def describe(self) -> str:
        text = f"{self.key}: {self.action}"
        if self.message:
            text += f" ({self.message})"
        return text


@dataclass
class ApplyReport(ResultCounts):
    provider: str
    results: list[ObjectResult] = field(default_factory=list)
    requests: int = 0  # requests this call sent (including discovery and LISTs it needed)
    writes: int = 0  # of which writes (dry-run requests are not writes)
    dry_run: bool = False


    def failures(self) -> list[ObjectResult]:
        return [r for r in self.results if not r.ok]

    def written(self) -> list[ObjectKey]:
        return [r.key for r in self.results if r.wrote]

    def for_build(self, build: str) -> list[ObjectResult]:
        return [r for r in self.results if r.build == build]

    def by_key(self) -> dict[ObjectKey, ObjectResult]:
        return {r.key: r for r in self.results}


def phase_of(obj: dict[str, Any]) -> int:
    key = key_of(obj)
    if (key.group, key.kind) == ("", "Namespace"):
        return 0
    if (key.group, key.kind) in _ROLES:
        return 1
    if (key.group, key.kind) in _BINDINGS:
        return 2
    return 3


def apply_objects(conn: Connection, desired: Iterable[dict[str, Any]], observed: Observed | None = None, *,
                  force: bool | None = None, dry_run: bool = False) -> ApplyReport:
    """Server-side apply the objects of ``desired`` that differ from live (see module doc).

    ``observed``: what ``observe`` returned for this pass (listed here when not given).
    ``force``: take over conflicting fields (default ``settings.force_conflicts``).
    ``dry_run``: ask the server what applying would do (``dryRun=All``), writing nothing.
    """
    settings = conn.settings
    force = settings.force_conflicts if force is None else force
    before = dict(conn.stats)
    report = ApplyReport(conn.provider, dry_run=dry_run)
    objects = list(desired)
    results: dict[int, ObjectResult] = {}

    # 1. well-formed, labelled, unique
    seen: dict[ObjectKey, int] = {}
    valid: list[tuple[int, dict[str, Any]]] = []
    for i, obj in enumerate(objects):
        problem = _problem(obj)
        key = key_of(obj) if isinstance(obj, dict) else ObjectKey("", "?", "", "?")
        if problem is None and key in seen:
            problem = "the same object is desired twice (one of them is dropped)"
        if problem is not None:
            results[i] = _result(obj, key, "failed", problem)
            continue
        seen[key] = i
        valid.append((i, obj))

    # 2. resource types (one discovery request per group-version, cached on the connection)
    types: dict[tuple[str, str], ResourceType | ClusterError | None] = {}
    for _, obj in valid:
        k = (obj["apiVersion"], obj["kind"])
        if k not in types:
            try:
                types[k] = conn.resource(*k)
            except ClusterError as exc:
                types[k] = exc
    ready: list[tuple[int, dict[str, Any], ResourceType]] = []
    for i, obj in valid:
        rt = types[(obj["apiVersion"], obj["kind"])]
        key = key_of(obj)
        if isinstance(rt, ClusterError):
            results[i] = _result(obj, key, "failed", f"cannot look up {obj['apiVersion']} {obj['kind']}: {rt}", rt)
        elif rt is None:
            results[i] = _result(obj, key, "failed", f"the cluster does not serve {obj['apiVersion']} {obj['kind']}"
                                 " (is its CRD installed?)")
        elif rt.namespaced and not key.namespace:
            results[i] = _result(obj, key, "failed", f"{obj['kind']} is namespaced: metadata.namespace is required")
        elif not rt.namespaced and key.namespace:
            results[i] = _result(obj, key, "failed", f"{obj['kind']} is cluster-scoped: remove metadata.namespace")
        else:
            ready.append((i, obj, rt))

    # 3. what is live
    if observed is None and ready:
        observed = observe(conn, kinds_for([o for _, o, _ in ready], extra=()))

    # 4. phases: namespaces, service accounts and roles, bindings, the rest
    failed_namespaces: dict[str, str] = {}
    workers = max(1, settings.concurrency)
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix=f"apply-{conn.provider}") as pool:
        for phase in PHASES:
            batch = [(i, o, rt) for i, o, rt in ready if phase_of(o) == phase]
            todo: list[tuple[int, dict[str, Any], ResourceType, Verdict | None]] = []
            for i, obj, rt in batch:
                key = key_of(obj)
                if key.namespace in failed_namespaces:
                    results[i] = _result(obj, key, "skipped", f"namespace {key.namespace} was not applied: "
                                         f"{failed_namespaces[key.namespace]}")
                    continue
                verdict = _verdict(obj, observed)
                if verdict is not None and not verdict.changed:
                    results[i] = _unchanged(obj, key, verdict, observed)
                    continue
                todo.append((i, obj, rt, verdict))
            futures = [(i, pool.submit(_apply_one, conn, obj, rt, verdict, force, dry_run)) for i, obj, rt, verdict in todo]
            for i, future in futures:
                results[i] = future.result()
                if phase == 0 and results[i].action in ("failed", "conflict"):
                    failed_namespaces[results[i].key.name] = results[i].message
    report.results = [results[i] for i in sorted(results)]
    after = conn.stats
    report.requests = after.get("requests", 0) - before.get("requests", 0)
    report.writes = after.get("writes", 0) - before.get("writes", 0)
    return report


def _problem(obj: Any) -> str | None:
    if not isinstance(obj, dict):
        return "not an object (a mapping was expected)"
    meta = obj.get("metadata")
    if not obj.get("apiVersion") or not obj.get("kind") or not isinstance(meta, dict) or not meta.get("name"):
        return "apiVersion, kind and metadata.name are required"
    if not is_managed(obj):
        return (f"not labelled {MANAGED_BY_LABEL}={MANAGED_BY_VALUE}: the reconciler applies only objects it can "
                "find again (and prune)")
    return None


def _result(obj: Any, key: ObjectKey, action: Action, message: str = "", error: ClusterError | None = None,
            **extra: Any) -> ObjectResult:
    build = build_of(obj) if isinstance(obj, dict) else None
    pool = pool_of(obj) if isinstance(obj, dict) else None
    return ObjectResult(key, build, pool, action, message, error=error, **extra)


def _verdict(obj: dict[str, Any], observed: Observed | None) -> Verdict | None:
    """None when live is unknown (its kind could not be listed): then apply (idempotent)."""
    if observed is None or not observed.covers(obj["apiVersion"], obj["kind"]):
        return None
    return compare(obj, observed.get(obj))


def _unchanged(obj: dict[str, Any], key: ObjectKey, verdict: Verdict, observed: Observed | None) -> ObjectResult:
    live = observed.get(obj) if observed else None
    if verdict.missing:
        return _result(obj, key, "unchanged", _pruned_message(verdict.missing), pruned_fields=verdict.missing, live=live)
    return _result(obj, key, "unchanged", live=live)


def _pruned_message(paths: tuple[str, ...]) -> str:
    shown = ", ".join(paths[:8]) + (f" and {len(paths) - 8} more" if len(paths) > 8 else "")
    return f"the server dropped fields its schema does not know: {shown}"


def _apply_one(conn: Connection, obj: dict[str, Any], rt: ResourceType, verdict: Verdict | None, force: bool,
               dry_run: bool) -> ObjectResult:
    key = key_of(obj)
    body = with_applied_hash(obj)
    query: dict[str, Any] = {"fieldManager": FIELD_MANAGER, "force": "true" if force else "false"}
    if dry_run:
        query["dryRun"] = "All"
    what = f"apply {rt.plural}/{key.name}" + (f" in {key.namespace}" if key.namespace else "")
    try:
        response = conn.request("PATCH", rt.path(key.namespace or None, key.name), query=query, body=body,
                                content_type=APPLY_CONTENT_TYPE, what=what)
    except Conflict as exc:
        conflicts = tuple(_conflict(c) for c in exc.causes if c.get("reason", "").endswith("Conflict") or c.get("field"))
        fields = ", ".join(f"{c.field} ({c.manager})" if c.manager else c.field for c in conflicts) or str(exc)
        message = f"fields owned by another field manager: {fields}; not forced (force_conflicts is off)"
        return _result(obj, key, "conflict", message, exc, conflicts=conflicts)
    except ClusterError as exc:
        return _result(obj, key, "failed", str(exc), exc)
    live = response.json() or {}
    if not dry_run:
        conn.note_write(rt, live)
    created = response.status == 201 or (verdict is not None and verdict.action == "create")
    action: Action = "created" if created else "updated"
    why = "" if verdict is None else verdict.why
    pruned = pruned_fields(body, live)
    message = _pruned_message(pruned) if pruned else why
    return _result(obj, key, action, message, pruned_fields=pruned, live=live)


def _conflict(cause: dict[str, str]) -> FieldConflict:
    message = cause.get("message", "")
    manager = ""
    if 'conflict with "' in message:
        manager = message.split('conflict with "', 1)[1].split('"', 1)[0]
    return FieldConflict(cause.get("field", ""), manager, message)
